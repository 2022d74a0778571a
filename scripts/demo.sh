#!/usr/bin/env bash
# The main job: setup, a release build, then the leaf-spine lab
# (containerlab/leaf-spine.clab.yml: two FRR spines, two racks of two FRR
# leaves and two podroute nodes each, an external client) brought up as
# network namespaces on this machine, with podroute-bgpd and the policy agent
# on every node and one ipamd. Then, step by step: the BGP sessions, the
# kernel routes, pods pinging and moving data across racks, the fabric's
# hops, a NetworkPolicy refusing a connection and podctl saying why, and a
# node's bgpd killed and restarted without losing a ping. Ends with a
# summary of every check (also when a step breaks off); exits 1 if any
# failed.
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
work=$(mktemp -d)
finished=0

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; "$@"; }

# Checks and their outcome, for the summary.
checks=()
results=()
record() { checks+=("$1"); results+=("$2"); printf '   -> %s: %s\n' "$2" "$1"; }
# check DESCRIPTION COMMAND...: runs it, records pass or fail.
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

summary() {
  local status=$? failed=0 i
  step "summary"
  for i in "${!checks[@]}"; do
    printf '  %-4s %s\n' "${results[$i]}" "${checks[$i]}"
    [[ ${results[$i]} == PASS ]] || failed=$((failed + 1))
  done
  if ((!finished)); then
    echo "demo: stopped early (exit $status) after ${#checks[@]} checks"
    ((status != 0)) || status=1
  fi
  if ((keep)); then
    cat <<MSG

The lab is up. Explore it:
  $podlab status $topo
  $podlab pods $lab
  $podlab podctl $lab n1 -- bgp peers               # podctl against n1's daemons
  $podlab pod exec $lab $ns/client -- ping ${web_ip:-WEB_IP}
  $podlab exec $topo spine1 -- vtysh                  # FRR shell on a spine
Remove it:
  $podlab down $topo
MSG
  else
    step "tear down"
    "$podlab" down "$topo" || true
  fi
  rm -rf "$work"
  if ((failed)); then
    echo "demo: $failed of ${#checks[@]} checks failed"
    exit 1
  elif ((status != 0)); then
    exit "$status"
  fi
  echo "demo: all ${#checks[@]} checks passed"
}

step "bring up leaf-spine: 2 spines, 2 racks x (2 leaves + 2 nodes), ipamd, an external client"
trap summary EXIT
run "$podlab" up "$topo"

step "BGP: every node peers with both leaves of its rack (eBGP, AS per rack, BFD, graceful restart)"
established() { "$podlab" podctl "$lab" "$1" -- bgp peers | grep -c ' Established ' || true; }
sessions_up() {
  local node
  for node in n1 n2 n3 n4; do
    (($(established "$node") >= 2)) || return 1
  done
}
check "every node has both leaves Established" wait_for 90 sessions_up
run "$podlab" podctl "$lab" n1 -- bgp peers
run "$podlab" exec "$topo" spine1 -- vtysh -c 'show bgp ipv4 unicast summary'

step "pods: client on n1 (rack r1), web on n3 (rack r2), each made by the CNI plugin"
show "$podlab" pod create "$lab" --node n1 --namespace "$ns" --name client --labels app=client
client_ip=$("$podlab" pod create "$lab" --node n1 --namespace "$ns" --name client --labels app=client | awk '{print $1}')
show "$podlab" pod create "$lab" --node n3 --namespace "$ns" --name web --labels app=web --port 80/TCP
web_ip=$("$podlab" pod create "$lab" --node n3 --namespace "$ns" --name web --labels app=web --port 80/TCP | awk '{print $1}')
run "$podlab" pods "$lab"
echo "client $client_ip, web $web_ip"

step "n1's kernel routes: the other nodes' pod blocks, proto podroute, over both leaves (ECMP)"
# The block holding web's address, as bgpd installed it: both leaves.
web_route() { "$podlab" exec "$topo" n1 -- ip route show proto podroute match "$web_ip"; }
ecmp_to_web() {
  local route
  route=$(web_route) || return 1
  grep -q 'via 10.1.0.1 ' <<<"$route" && grep -q 'via 10.1.0.2 ' <<<"$route"
}
check "n1 routes web's block over both leaves" wait_for 60 ecmp_to_web
run "$podlab" exec "$topo" n1 -- ip route show proto podroute

step "a ping across racks, pod to pod"
ping_web() { "$podlab" pod exec "$lab" "$ns/client" -- ping -c 1 -W 1 "$web_ip"; }
check "client reaches web across racks" wait_for 30 ping_web
run "$podlab" pod exec "$lab" "$ns/client" -- ping -c 3 -W 2 "$web_ip" || true

step "full-size packets: no encapsulation, the link's whole MTU (1472 + 28 = 1500, don't fragment)"
check "1500-byte packets pass unfragmented" \
  run "$podlab" pod exec "$lab" "$ns/client" -- ping -c 2 -W 2 -M "do" -s 1472 "$web_ip"
# The kernel's own answer for web's address: out of n1's fabric port,
# to a leaf, not into a tunnel device.
plain_path() {
  local route
  route=$("$podlab" exec "$topo" n1 -- ip route get "$web_ip") || return 1
  echo "$route"
  grep -Eq "via 10\.1\.0\.[12] dev eth1 " <<<"$route"
}
check "n1 sends web's packets out of eth1 to a leaf, unencapsulated" plain_path

step "a TCP transfer across racks (iperf3, 3 s)"
# A daemon in web's namespace: it goes with the namespace at teardown.
run "$podlab" pod exec "$lab" "$ns/web" -- iperf3 -s -D -p 5201
iperf_listening() { "$podlab" pod exec "$lab" "$ns/web" -- ss -Hltn 'sport = :5201' | grep -q 5201; }
wait_for 10 iperf_listening || true
check "client sends to web over TCP" \
  run "$podlab" pod exec "$lab" "$ns/client" -- iperf3 -c "$web_ip" -p 5201 -t 3 -f m

step "the path: the fabric's own hops, nothing else (n1, a leaf, a spine, a leaf, n3, web)"
trace_out=
fabric_path() {
  trace_out=$("$podlab" pod exec "$lab" "$ns/client" -- traceroute -n -q 1 -w 2 -m 8 "$web_ip") || return 1
  # Hop lines only: " 3  10.254.13.1  0.1 ms".
  local hops
  hops=$(grep -E '^ *[0-9]+ ' <<<"$trace_out" | awk '{print $2}')
  [[ $(wc -l <<<"$hops") -eq 6 ]] &&
    [[ $(sed -n 2p <<<"$hops") == 10.1.0.* ]] &&
    [[ $(sed -n 3p <<<"$hops") == 10.254.* ]] &&
    [[ $(sed -n 4p <<<"$hops") == 10.254.* ]] &&
    [[ $(sed -n 6p <<<"$hops") == "$web_ip" ]]
}
# Retried: one late answer on a busy machine prints "*".
check "6 hops: node, leaf, spine, leaf, node, web" wait_for 30 fabric_path
echo "$trace_out"

step "NetworkPolicy: web accepts port 80 only from app=frontend"
show "$podlab" pod create "$lab" --node n2 --namespace "$ns" --name frontend --labels app=frontend
"$podlab" pod create "$lab" --node n2 --namespace "$ns" --name frontend --labels app=frontend
policy=$work/web-from-frontend.yaml
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
# probe_web POD: POD's TCP probe of web:80.
probe_web() {
  "$podlab" pod exec "$lab" "$ns/$1" -- "$podlab" probe connect --timeout-ms 1000 "tcp:$web_ip:80"
}
connects() { probe_web client | grep -q '"ok":true'; }
# A refusal is the probe's own answer, not any failure to run it; and the
# frontend pod, which the policy allows, still gets through meanwhile.
refused() { probe_web client | grep -q '"ok":false'; }
frontend_connects() { probe_web frontend | grep -q '"ok":true'; }
check "before the policy, client connects to web:80" wait_for 30 connects
run "$podlab" apply "$lab" "$policy"
check "after the policy, the connection is refused" wait_for 30 refused
check "while app=frontend still connects" wait_for 30 frontend_connects
explain() {
  "$podlab" podctl "$lab" n3 -- policy explain --from "$ns/client" --to "$ns/web" --port 80/TCP
}
run explain || true
explained() { explain | grep -qi 'denied' && explain | grep -q 'web-from-frontend'; }
check "podctl policy explain: denied, naming the policy" explained
run "$podlab" delete "$lab" "$policy"
check "the policy deleted, client connects again" wait_for 30 connects

step "graceful restart: n1's bgpd killed (SIGKILL) and restarted while client pings web every 50 ms"
pinglog=$work/ping.log
# -w: a bound, should the stop below ever miss it.
"$podlab" pod exec "$lab" "$ns/client" -- ping -i 0.05 -W 1 -w 300 "$web_ip" >"$pinglog" 2>&1 &
sleep 1
run "$podlab" stop "$lab" n1 bgpd --signal KILL
echo "n1's bgpd is dead: its routes stay in n1's kernel, the leaves keep n1's block (GR helpers)"
sleep 3
run "$podlab" start "$lab" n1 bgpd
check "n1's sessions are back" wait_for 90 sessions_up
# The restarted bgpd's own table (it starts empty): web's block learned
# again from both leaves, not only the routes the kernel kept.
relearned() {
  local paths
  paths=$("$podlab" podctl "$lab" n1 -- bgp route "$web_ip" -o json) || return 1
  grep -Eq '"peer": *"10\.1\.0\.1"' <<<"$paths" && grep -Eq '"peer": *"10\.1\.0\.2"' <<<"$paths"
}
check "the restarted bgpd learned web's block from both leaves again" wait_for 60 relearned
# A few seconds more: the restarted bgpd's end-of-RIB and stale-route sweep.
sleep 5
# The pod's ping (its own process in the pod's namespace) prints its
# statistics on SIGINT.
pkill -INT -f "^ping -i 0.05 -W 1 -w 300 $web_ip\$" || true
wait || true
tail -n 2 "$pinglog"
# SIGINT ends ping at once: an echo still in flight then counts as lost,
# so one missing answer is not a loss.
no_loss() {
  local sent got
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$pinglog")
  got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$pinglog")
  [[ -n $sent && -n $got ]] && ((sent > 100 && got >= sent - 1))
}
check "no ping lost across the restart" no_loss
finished=1
