#!/usr/bin/env bash
# The main job: setup, a release build, then the two-node-tor lab brought up
# as network namespaces on this machine (one FRR top-of-rack router, two node
# hosts), and what it shows: the nodes, the ToR's BGP view, pings across the
# ToR. The lab stays up to explore; `--down` removes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

down_at_end=0
[[ "${1:-}" == "--down" ]] && down_at_end=1

scripts/setup.sh
echo "demo: building (release)"
cargo build --release --workspace --locked

podlab=target/release/podlab
lab=containerlab/two-node-tor.clab.yml
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

step "bring the lab up: one namespace per node, a veth pair per link, FRR on the ToR"
run "$podlab" up "$lab"

step "the ToR's BGP: AS 65000, both nodes configured as eBGP neighbours"
# The nodes run no BGP speaker yet, so the sessions wait in Active.
for _ in $(seq 1 50); do
  "$podlab" exec "$lab" tor -- vtysh -c 'show bgp summary' >/dev/null 2>&1 && break
  sleep 0.1
done
run "$podlab" exec "$lab" tor -- vtysh -c 'show bgp summary'

step "n1 reaches its ToR, and n2 through the ToR"
run "$podlab" exec "$lab" n1 -- ping -c 2 -W 2 10.0.1.1
run "$podlab" exec "$lab" n1 -- ping -c 2 -W 2 10.0.2.2
run "$podlab" exec "$lab" n1 -- traceroute -n -w 1 -q 1 10.0.2.2

step "the ToR's kernel routing table"
run "$podlab" exec "$lab" tor -- ip route

if ((down_at_end)); then
  step "tear down"
  run "$podlab" down "$lab"
else
  cat <<MSG

The lab is up. Explore it:
  $podlab status $lab
  $podlab exec $lab tor -- vtysh            # FRR shell on the ToR
  $podlab exec $lab n1 -- bash              # a shell on node n1
Remove it:
  $podlab down $lab
MSG
fi
