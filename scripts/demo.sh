#!/usr/bin/env bash
# The main job: setup, a release build, then the leaf-spine lab
# (containerlab/leaf-spine.clab.yml: two FRR spines, two racks of two FRR
# leaves and two podroute nodes each, an external client) brought up as
# network namespaces on this machine, with podroute-bgpd and the policy agent
# on every node and one ipamd. Then, step by step: the BGP sessions, the
# kernel routes, pods pinging and moving data across racks, the fabric's
# hops, a NetworkPolicy refusing a connection and podctl saying why, and a
# node's bgpd killed and restarted without losing a ping. Ends with a
# summary of every check; exits 1 if any failed.
#
#   scripts/demo.sh           # tears the lab down at the end
#   scripts/demo.sh --keep    # leaves it up to explore
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
case "${1:-}" in
  --keep) keep=1 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac

scripts/setup.sh
echo "demo: building (release)"
cargo build --release --workspace --locked

podlab=$PWD/target/release/podlab
topo=containerlab/leaf-spine.clab.yml
lab=leaf-spine
ns=demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; "$@"; }

# Checks and their outcome, for the summary.
checks=()
results=()
record() { checks+=("$1"); results+=("$2"); printf '   -> %s: %s\n' "$2" "$1"; }
# check DESCRIPTION COMMAND...: runs it (output shown), records pass or fail.
check() {
  local what=$1; shift
  if "$@"; then record "$what" PASS; else record "$what" FAIL; fi
}
# wait_for SECONDS COMMAND...: polls every half second until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

cleanup() {
  if ((keep)); then
    cat <<MSG

The lab is up. Explore it:
  $podlab status $topo
  $podlab pods $lab
  $podlab podctl $lab n1 -- bgp peers             # podctl against n1's daemons
  $podlab pod exec $lab $ns/client -- ping WEB_IP
  $podlab exec $lab spine1 -- vtysh                # FRR shell on a spine
Remove it:
  $podlab down $topo
MSG
  else
    step "tear down"
    "$podlab" down "$topo" || true
  fi
}

step "bring up leaf-spine: 2 spines, 2 racks x (2 leaves + 2 nodes), ipamd, an external client"
run "$podlab" up "$topo"
trap cleanup EXIT

step "BGP: every node peers with both leaves of its rack (eBGP, AS per rack)"
sessions_up() {
  local node
  for node in n1 n2 n3 n4; do
    [[ $("$podlab" podctl "$lab" "$node" -- bgp peers -o json | python3 -c '
import json, sys
print(sum(p["state"] == "Established" for p in json.load(sys.stdin)["peers"]))') -ge 2 ]] || return 1
  done
}
check "every node has both leaves Established" wait_for 60 sessions_up
run "$podlab" podctl "$lab" n1 -- bgp peers
run "$podlab" exec "$lab" spine1 -- vtysh -c 'show bgp ipv4 unicast summary'

step "pods: client on n1 (rack r1), web on n3 (rack r2), each made by the CNI plugin"
run "$podlab" pod create "$lab" --node n1 --namespace "$ns" --name client --labels app=client
run "$podlab" pod create "$lab" --node n3 --namespace "$ns" --name web --labels app=web --port 80/TCP
run "$podlab" pods "$lab"
pod_ip() { "$podlab" pods "$lab" -o json | python3 -c '
import json, sys
want = sys.argv[1]
for pod in json.load(sys.stdin):
    if f"{pod[\"namespace\"]}/{pod[\"name\"]}" == want:
        print(pod["ips"][0]); break' "$1"; }
client_ip=$(pod_ip "$ns/client")
web_ip=$(pod_ip "$ns/web")
echo "client $client_ip, web $web_ip"

step "n1's kernel routes: the other nodes' pod blocks, proto podroute, over both leaves (ECMP)"
web_block_on_n1() { "$podlab" exec "$lab" n1 -- ip route get "$web_ip" | grep -q 'via 10.1.0'; }
check "n1 has a route to web's block through its leaves" wait_for 30 web_block_on_n1
run "$podlab" exec "$lab" n1 -- ip route show proto podroute

step "a ping across racks, pod to pod"
check "client pings web across racks" \
  run "$podlab" pod exec "$lab" "$ns/client" -- ping -c 3 -W 2 "$web_ip"

step "full-size packets: no encapsulation, the link's whole MTU (1472 + 28 = 1500, don't fragment)"
check "1500-byte packets pass unfragmented" \
  run "$podlab" pod exec "$lab" "$ns/client" -- ping -c 2 -W 2 -M "do" -s 1472 "$web_ip"
no_tunnels() { ! "$podlab" exec "$lab" n1 -- ip -d -o link show | grep -Eq 'vxlan|ipip|geneve|gre'; }
check "no tunnel device on n1" no_tunnels

step "a TCP transfer across racks (iperf3, 3 s)"
# A daemon in web's namespace: removed with the namespace at teardown.
run "$podlab" pod exec "$lab" "$ns/web" -- iperf3 -s -D -p 5201
iperf_listening() { "$podlab" pod exec "$lab" "$ns/web" -- ss -Hltn 'sport = :5201' | grep -q 5201; }
wait_for 10 iperf_listening || true
iperf_ok() { "$podlab" pod exec "$lab" "$ns/client" -- iperf3 -c "$web_ip" -p 5201 -t 3 -f m; }
check "client sends to web over TCP" run iperf_ok

step "the path: the fabric's own hops (leaf, spine, leaf, node), no tunnel"
trace() { "$podlab" pod exec "$lab" "$ns/client" -- traceroute -n -q 1 -w 1 -m 8 "$web_ip"; }
trace_out=$(trace || true)
echo "$trace_out"
fabric_hops() { grep -q ' 10\.254\.' <<<"$trace_out" && grep -q "$web_ip" <<<"$trace_out"; }
check "traceroute crosses the spine and reaches web" fabric_hops

step "NetworkPolicy: web accepts port 80 only from app=frontend"
policy=$(mktemp --suffix=.yaml)
cat >"$policy" <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-frontend, namespace: $ns}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: frontend}}
    ports:
    - {protocol: TCP, port: 80}
YAML
cat "$policy"
connects() {
  "$podlab" pod exec "$lab" "$ns/client" -- "$podlab" probe connect --timeout-ms 1000 "tcp:$web_ip:80" |
    grep -q '"ok":true'
}
check "before the policy, client connects to web:80" connects
run "$podlab" apply "$lab" "$policy"
refused() { ! connects; }
check "after the policy, the connection is refused" wait_for 30 refused
run "$podlab" podctl "$lab" n3 -- policy explain --from "$ns/client" --to "$ns/web" --port 80/TCP || true
explained() {
  "$podlab" podctl "$lab" n3 -- policy explain --from "$ns/client" --to "$ns/web" --port 80/TCP |
    grep -qi 'web-from-frontend'
}
check "podctl policy explain names the policy" explained
run "$podlab" delete "$lab" "$policy"
rm -f "$policy"
check "the policy deleted, client connects again" wait_for 30 connects

step "graceful restart: n1's bgpd killed (SIGKILL) and restarted while client pings web every 50 ms"
pinglog=$(mktemp)
"$podlab" pod exec "$lab" "$ns/client" -- ping -i 0.05 -c 240 -W 1 "$web_ip" >"$pinglog" 2>&1 &
ping_pid=$!
sleep 1
run "$podlab" stop "$lab" n1 bgpd --signal KILL
echo "n1's bgpd is dead; its routes stay in n1's kernel and the leaves keep n1's block (GR helpers)"
sleep 3
run "$podlab" start "$lab" n1 bgpd
check "n1's sessions are back" wait_for 60 sessions_up
wait "$ping_pid" || true
tail -n 2 "$pinglog"
no_loss() { grep -q ' 0% packet loss' "$pinglog"; }
check "no ping lost across the restart" no_loss
rm -f "$pinglog"

step "summary"
failed=0
for i in "${!checks[@]}"; do
  printf '  %-4s %s\n' "${results[$i]}" "${checks[$i]}"
  [[ ${results[$i]} == PASS ]] || failed=$((failed + 1))
done
if ((failed)); then
  echo "demo: $failed of ${#checks[@]} checks failed"
  exit 1
fi
echo "demo: all ${#checks[@]} checks passed"
