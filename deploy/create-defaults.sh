#!/bin/sh
# podroute-create-defaults DIR: creates each podroute.io/v1 object of
# DIR/<resource>.<name>.yaml that does not exist yet, and never changes one
# that does (HTTP 409 is success). Run by ipamd's init container with the
# pod's ServiceAccount (base/defaults.yaml says why). Until the CRDs serve
# (HTTP 404 right after `kubectl apply` created them) it tries again every
# second, for PODROUTE_CRD_WAIT seconds (default 120). Any other answer
# fails the init container with the API server's words.
#
# The environment tests/tests/deploy/defaults.rs points it at a fake API server
# with: PODROUTE_API (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)
# and PODROUTE_SA_DIR (the ServiceAccount's token and ca.crt).
set -eu

dir=${1:?usage: podroute-create-defaults DIR}
sa=${PODROUTE_SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}
api=${PODROUTE_API:-https://${KUBERNETES_SERVICE_HOST:?not in a pod}:${KUBERNETES_SERVICE_PORT:?not in a pod}}
wait=${PODROUTE_CRD_WAIT:-120}
token=$(cat "$sa/token")

found=0
for file in "$dir"/*.yaml; do
  [ -e "$file" ] || continue
  found=1
  key=${file##*/}
  resource=${key%%.*}
  url="$api/apis/podroute.io/v1/$resource"
  tries=0
  while :; do
    # The token goes on curl's command line: only this pod's processes
    # can see it there (no hostPID), and they can read the file anyway.
    answer=$(curl --silent --show-error --cacert "$sa/ca.crt" \
      --header "Authorization: Bearer $token" \
      --header 'Content-Type: application/yaml' \
      --header 'Accept: application/json' \
      --data-binary "@$file" --request POST \
      --write-out '\n%{http_code}' "$url") || {
      echo "podroute-create-defaults: $key: cannot reach $api" >&2
      exit 1
    }
    code=$(printf '%s\n' "$answer" | tail -n 1)
    case $code in
      201)
        echo "podroute-create-defaults: $key: created"
        break
        ;;
      409)
        echo "podroute-create-defaults: $key: exists, left as it is"
        break
        ;;
      404)
        tries=$((tries + 1))
        if [ "$tries" -ge "$wait" ]; then
          echo "podroute-create-defaults: $key: $url still not served after ${wait}s: are the CRDs installed?" >&2
          exit 1
        fi
        sleep 1
        ;;
      *)
        echo "podroute-create-defaults: $key: HTTP $code from $url:" >&2
        printf '%s\n' "$answer" | sed '$d' >&2
        exit 1
        ;;
    esac
  done
done
if [ "$found" = 0 ]; then
  echo "podroute-create-defaults: no *.yaml in $dir" >&2
  exit 1
fi
