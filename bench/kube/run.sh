#!/usr/bin/env bash
# bench/kube: what the Kubernetes sources cost on a large cluster. The
# policy agent's source (Namespaces, Pods, NetworkPolicies) and ipamd's Pod
# and Node stores read a cluster of realistic objects from the fake API
# server (podroute_k8s::fake, in the driver's process: no real API server
# can run on this machine), as the daemons do (stores that keep only what
# each daemon reads) and as a naive baseline (the same watchers keeping
# whole objects), plus the fake alone (every page listed and dropped). Each
# point is its own process: start → first rebuild, memory after the list
# and at its peak, one pod's label change → rebuilt. The drivers are
# policy-agent/examples/kube_bench.rs and ipam/examples/ipam_kube_bench.rs
# around bench/kube/driver.rs. See bench/README.md, "Kubernetes sources".
#
#   bench/kube/run.sh [--pods LIST] [--reps N] [--changes K]
#                     [--only policy,ipamd] [--quiet-seconds S]
#
# Results: bench/results/kube-<UTC time>.jsonl (one line per point) and .md
# (the tables).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO"

usage() {
  echo "usage: bench/kube/run.sh [--pods LIST] [--reps N] [--changes K] [--only policy,ipamd] [--quiet-seconds S]" >&2
  exit 2
}
pods_list=1000,10000,50000
reps=3
changes=9
only=policy,ipamd
quiet_seconds=30
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --pods) pods_list=$2 ;;
    --reps) reps=$2 ;;
    --changes) changes=$2 ;;
    --only) only=$2 ;;
    --quiet-seconds) quiet_seconds=$2 ;;
    *) usage ;;
  esac
  shift 2
done

cargo build --release -q -p podroute-policy -p podroute-ipam \
  --example kube_bench --example ipam_kube_bench
target=${CARGO_TARGET_DIR:-$REPO/target}/release/examples
declare -A driver=([policy]="$target/kube_bench" [ipamd]="$target/ipam_kube_bench")

# Builds and tests of others on the same cores: cargo, rustc and friends.
# This script's own build is over by now, so every one is someone else's.
builds() {
  ps -eo pid=,comm= | awk '$2 ~ /^(cargo|rustc|cargo-clippy|clippy-driver|cargo-nextest|rustdoc)$/'
}

# Waits until no build has run for $1 seconds in a row.
wait_quiet() {
  local need=$1 quiet_since now said=0
  quiet_since=$(date +%s)
  while true; do
    now=$(date +%s)
    if [[ -n $(builds) ]]; then
      quiet_since=$now
      if [[ $said == 0 ]]; then
        echo "waiting for other builds to end: $(builds | awk '{print $2}' | sort | uniq -c | xargs)" >&2
        said=1
      fi
    elif ((now - quiet_since >= need)); then
      return
    fi
    sleep 1
  done
}

mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/kube-$stamp.jsonl
flag=$(mktemp)
sampler=
cleanup() {
  [[ -n $sampler ]] && kill "$sampler" 2>/dev/null || true
  rm -f "$flag"
}
trap cleanup EXIT

wait_quiet "$quiet_seconds"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "quiet for ${quiet_seconds} s; load average $load_start" >&2

IFS=, read -ra sizes <<<"$pods_list"
IFS=, read -ra scenarios <<<"$only"
for pods in "${sizes[@]}"; do
  if ((pods <= 1000)); then nodes=100; else nodes=1000; fi
  namespaces=$((pods / 50 > 20 ? pods / 50 : 20))
  for ((rep = 1; rep <= reps; rep++)); do
    for scenario in "${scenarios[@]}"; do
      [[ -n ${driver[$scenario]:-} ]] || usage
      for mode in none ours naive; do
        for attempt in 1 2 3; do
          # A point that another build overlapped is measured again.
          wait_quiet 10
          : >"$flag"
          (while true; do [[ -n $(builds) ]] && echo busy >"$flag"; sleep 1; done) &
          sampler=$!
          echo "$scenario $mode: $pods pods, $nodes nodes, $namespaces namespaces (run $rep/$reps)" >&2
          line=$("${driver[$scenario]}" point --mode "$mode" --pods "$pods" --nodes "$nodes" \
            --namespaces "$namespaces" --policies 300 --changes "$changes")
          kill "$sampler" 2>/dev/null || true
          wait "$sampler" 2>/dev/null || true
          sampler=
          if [[ ! -s $flag || $attempt == 3 ]]; then
            [[ -s $flag ]] && echo "  another build ran meanwhile, a third time: kept" >&2
            echo "$line" >>"$out"
            break
          fi
          echo "  another build ran meanwhile; measuring again" >&2
        done
      done
    done
  done
done

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), \
kernel $(uname -r), podroute at $(git describe --always --dirty 2>/dev/null || echo unknown), \
load average at the start $load_start"
"${driver[policy]}" report "$out" --machine "$machine" | tee "${out%.jsonl}.md"
echo "written: $out, ${out%.jsonl}.md" >&2
