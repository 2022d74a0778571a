#!/usr/bin/env bash
# bench/dataplane: what a pod's packets get from plain routing. Two pods on
# nodes in different racks of the leaf-spine lab, made by `podlab pod
# create` (the real CNI plugin, blocks announced by podroute-bgpd through
# the FRR fabric), measured in the same run against two anchors on the same
# hosts and the same fabric:
#   direct   the nodes themselves, node address to node address: the ceiling;
#   podroute pod to pod, routed, no encapsulation;
#   overlay  the same pods over a VXLAN overlay set up as Flannel's vxlan
#            backend sets it up (bench/dataplane/lib.sh), MTU 1450.
# Per path: iperf3 TCP throughput (one stream, R runs of S s, the paths
# interleaved and the order turning each round, so drift hits all alike),
# ping RTTs (R rounds of N pings), the MTU (interface, route, and the
# largest packet that DF pings get through), and the hops (traceroute).
# Waits for a quiet machine first. See bench/README.md, "dataplane".
#
#   bench/dataplane/run.sh [--reps R] [--seconds S] [--pings N] [--interval S]
#                          [--topology FILE] [--nodes A,B] [--quiet-load L]
#                          [--quiet-seconds S] [--quiet-timeout S] [--no-wait]
#                          [--out DIR] [--keep] [--namespaces FILE] [--debug]
#
# Results: the report (Markdown) on stdout and in
# bench/results/dataplane-<UTC time>.md, every sample in .json. Needs root.
set -euo pipefail
export LC_ALL=C # '.' decimals in awk and printf

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO"
# shellcheck source=bench/dataplane/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat >&2 <<EOF
usage: bench/dataplane/run.sh [options]   (as root)

  --reps R            iperf3 runs and ping rounds per path [5]
  --seconds S         length of one iperf3 run, after 1 s left out [10]
  --pings N           pings per path and round [100]
  --interval S        between two pings [0.01]
  --topology FILE     the lab [containerlab/leaf-spine.clab.yml]
  --nodes A,B         the sending and the receiving node [n1,n3]
  --quiet-load L      wait until the 1-minute load average is below L ... [0.5]
  --quiet-seconds S   ... for S seconds in a row [30]
  --quiet-timeout S   give up waiting after S seconds (exit 3) [1200]
  --no-wait           measure at once, however busy the machine is
  --out DIR           where the .md and .json go [bench/results]
  --keep              leave the lab up (podlab down --name NAME FILE removes it)
  --debug             debug builds (to try the script; figures from release)
  --namespaces FILE   no build and no lab: measure between namespaces made
                      elsewhere, named in FILE (shell: the DP_A_* and DP_B_*
                      node and pod variables of bench/dataplane/lib.sh)
EOF
  exit 2
}

reps=5
seconds=10
pings=100
interval=0.01
topology=containerlab/leaf-spine.clab.yml
nodes=n1,n3
quiet_load=0.5
quiet_seconds=30
quiet_timeout=1200
wait_quiet=1
out_dir=bench/results
keep=0
ns_file=
profile=release
while (($#)); do
  case $1 in
    --reps) reps=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --pings) pings=${2:?}; shift 2 ;;
    --interval) interval=${2:?}; shift 2 ;;
    --topology) topology=${2:?}; shift 2 ;;
    --nodes) nodes=${2:?}; shift 2 ;;
    --quiet-load) quiet_load=${2:?}; shift 2 ;;
    --quiet-seconds) quiet_seconds=${2:?}; shift 2 ;;
    --quiet-timeout) quiet_timeout=${2:?}; shift 2 ;;
    --no-wait) wait_quiet=0; shift ;;
    --out) out_dir=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    --debug) profile=debug; shift ;;
    --namespaces) ns_file=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
IFS=, read -r node_a node_b <<<"$nodes"
[[ -n $node_a && -n $node_b ]] || usage

say() { echo "dataplane: $*" >&2; }
die() {
  say "$*"
  exit 1
}

[[ $EUID == 0 ]] || die "run as root (namespaces, iperf3 and ping inside them)"
for tool in iperf3 ping traceroute ip bridge ss awk cargo; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done

lab=dpbench$$
podlab=${CARGO_TARGET_DIR:-$REPO/target}/$profile/podlab
work=$(mktemp -d /tmp/dpbench.XXXXXX)
servers=()
lab_up=0
overlay_made=0
cleanup() {
  local pid
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Namespaces made elsewhere are left as they were found.
  [[ -n $ns_file && $overlay_made == 1 ]] && dp_overlay_down
  if ((lab_up)); then
    if ((keep)); then
      say "lab $lab left up: $podlab down --name $lab $topology"
    else
      "$podlab" down --name "$lab" "$topology" >/dev/null || say "podlab down $lab failed"
    fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A node's address: the source it uses towards the other rack's pod.
src_to() {
  ip -n "$1" -o route get "$2" | awk '{for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit }}'
}

# Makes pod dpbench/NAME on NODE; prints its IPv4 address (`pod create`
# prints the pod's addresses).
pod_create() {
  local node=$1 name=$2
  "$podlab" pod create "$lab" --node "$node" --namespace dpbench --name "$name" >"$work/pod-$name.log" 2>&1 || {
    cat "$work/pod-$name.log" >&2
    die "podlab pod create on $node failed"
  }
  grep -oE '\b([0-9]{1,3}\.){3}[0-9]{1,3}\b' "$work/pod-$name.log" | head -n1
}

# The lab: one pod on each of the two nodes; their namespaces and addresses
# go into the DP_* variables.
start_lab() {
  [[ -f $topology ]] || die "no topology $topology"
  # podlab runs the daemons and the CNI plugin from its own folder, so all
  # of them are built, in release as a cluster would run them.
  say "building ($profile)"
  local flags=(-q)
  [[ $profile == release ]] && flags+=(--release)
  cargo build "${flags[@]}" -p podroute-lab -p podroute-bgpd -p podroute-ipam \
    -p podroute-policy -p podroute-cni -p podctl
  say "lab $lab: podlab up $topology"
  lab_up=1
  "$podlab" up --name "$lab" "$topology" >"$work/up.log" 2>&1 || {
    cat "$work/up.log" >&2
    die "podlab up failed"
  }
  DP_A_POD_IP=$(pod_create "$node_a" a)
  DP_B_POD_IP=$(pod_create "$node_b" b)
  [[ -n $DP_A_POD_IP && -n $DP_B_POD_IP ]] || die "no IPv4 address in podlab pod create's output"
  # The namespaces' names, asked from inside them rather than guessed.
  DP_A_NODE_NS=$("$podlab" exec "$topology" "$node_a" --name "$lab" -- ip netns identify)
  DP_B_NODE_NS=$("$podlab" exec "$topology" "$node_b" --name "$lab" -- ip netns identify)
  DP_A_POD_NS=$("$podlab" pod exec "$lab" dpbench/a -- ip netns identify)
  DP_B_POD_NS=$("$podlab" pod exec "$lab" dpbench/b -- ip netns identify)
  say "pods: a $DP_A_POD_IP on $node_a, b $DP_B_POD_IP on $node_b"
  # The blocks travel by BGP (node, leaves, spines, leaves, node); pod a
  # reaches pod b once they have.
  dp_wait "pod a to reach pod b (BGP)" 180 ip netns exec "$DP_A_POD_NS" ping -n -c 1 -W 1 "$DP_B_POD_IP"
  DP_A_NODE_IP=$(src_to "$DP_A_NODE_NS" "$DP_B_POD_IP")
  DP_B_NODE_IP=$(src_to "$DP_B_NODE_NS" "$DP_A_POD_IP")
  # The anchors need the nodes' own addresses routed across the racks
  # (direct, and the overlay's outer packets), as any real fabric routes
  # them: leaf-spine's leaves announce their rack LANs.
  dp_wait "node $node_a to reach node $node_b (the lab must route node addresses)" 60 \
    ip netns exec "$DP_A_NODE_NS" ping -n -c 1 -W 1 "$DP_B_NODE_IP"
}

if [[ -n $ns_file ]]; then
  # shellcheck source=/dev/null
  source "$ns_file"
  topology=$ns_file
else
  start_lab
fi

# The overlay: a range outside the lab's pools, a /24 per node as Flannel
# gives out.
DP_OVL_CIDR=10.245.0.0/16
DP_A_OVL_NET=10.245.1.0/24 DP_A_OVL_IP=10.245.1.2
DP_B_OVL_NET=10.245.2.0/24 DP_B_OVL_IP=10.245.2.2
overlay_made=1
dp_overlay_up
dp_wait "the overlay" 30 ip netns exec "$DP_A_POD_NS" ping -n -c 1 -W 1 -I "$DP_A_OVL_IP" "$DP_B_OVL_IP"

# Per path: the sending namespace, the destination, the source address.
paths=(direct podroute overlay)
declare -A p_ns=([direct]=$DP_A_NODE_NS [podroute]=$DP_A_POD_NS [overlay]=$DP_A_POD_NS)
declare -A p_dst=([direct]=$DP_B_NODE_IP [podroute]=$DP_B_POD_IP [overlay]=$DP_B_OVL_IP)
declare -A p_src=([direct]=$DP_A_NODE_IP [podroute]=$DP_A_POD_IP [overlay]=$DP_A_OVL_IP)
declare -A p_what=(
  [direct]="node $node_a to node $node_b, node addresses"
  [podroute]="pod to pod, routed (podroute)"
  [overlay]="pod to pod, VXLAN (Flannel-style)"
)

# iperf3 servers: pod b answers for podroute and the overlay, node b for
# direct.
servers+=("$(dp_iperf_server "$DP_B_POD_NS" "$work/iperf3-pod-b.log")")
servers+=("$(dp_iperf_server "$DP_B_NODE_NS" "$work/iperf3-node-b.log")")

# What each path is, measured before the timed part: the sending interface
# and its MTU, the route's mtu metric, the largest packet DF pings get
# through and what the next byte up gets, the hops.
declare -A m_dev m_ifmtu m_rtmtu m_pmtu m_over m_hops
for p in "${paths[@]}"; do
  ns=${p_ns[$p]} dst=${p_dst[$p]} src=${p_src[$p]}
  # A first ping resolves neighbours (the pod's gateway by proxy ARP).
  dp_wait "$p: $dst to answer" 10 ip netns exec "$ns" ping -n -c 1 -W 1 -I "$src" "$dst" || exit 1
  m_dev[$p]=$(dp_route_dev "$ns" "$dst" "$src")
  m_ifmtu[$p]=$(dp_link_mtu "$ns" "${m_dev[$p]}")
  m_rtmtu[$p]=$(dp_route_mtu "$ns" "$dst" "$src")
  m_pmtu[$p]=$(dp_path_mtu "$ns" "$dst" "$src")
  # The next byte up, as ping says it.
  m_over[$p]=$(ip netns exec "$ns" ping -n -c 1 -W 1 -M "do" -s $((m_pmtu[$p] - DP_ICMP_OVERHEAD + 1)) \
    -I "$src" "$dst" 2>&1 | grep -m1 -iE 'too long|frag|loss' | sed 's/^ping: //' || true)
  m_hops[$p]=$(dp_trace "$ns" "$dst" "$src")
  say "$p: ${m_dev[$p]} mtu ${m_ifmtu[$p]}, route mtu ${m_rtmtu[$p]:-none}, path MTU ${m_pmtu[$p]}; hops ${m_hops[$p]}"
done
fabric_mtu=$(dp_link_mtu "$DP_A_NODE_NS" "$(dp_route_dev "$DP_A_NODE_NS" "$DP_B_NODE_IP")")

# Builds and tests of others on the same cores, by process name (as
# bench/kube): a sample they overlap is marked in the JSON.
builds() {
  ps -eo pid=,comm= | awk '$2 ~ /^(cargo|rustc|cargo-clippy|clippy-driver|cargo-nextest|rustdoc)$/'
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits until no build has run for $1 seconds in a row (at most 10 minutes:
# then the round runs anyway and may be measured again).
wait_no_builds() {
  local need=$1 since=$SECONDS give_up=$((SECONDS + 600))
  while ((SECONDS - since < need && SECONDS < give_up)); do
    [[ -n $(builds) ]] && since=$SECONDS
    sleep 1
  done
}

if ((wait_quiet)); then
  say "waiting for the 1-minute load average to stay below $quiet_load for $quiet_seconds s (at most $quiet_timeout s)"
  give_up=$((SECONDS + quiet_timeout))
  quiet_since=$SECONDS
  until ((SECONDS - quiet_since >= quiet_seconds)); do
    if awk -v l="$(load1)" -v q="$quiet_load" 'BEGIN {exit !(l >= q)}'; then
      quiet_since=$SECONDS
    fi
    if ((SECONDS >= give_up)); then
      say "the machine was never quiet (load average $(cut -d' ' -f1-3 /proc/loadavg) after $quiet_timeout s); nothing measured"
      exit 3
    fi
    sleep 1
  done
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "measuring; load average $load_start"

# Watches for other builds while a sample runs; `busy` says whether it saw one.
flag=$work/busy
watch_start() {
  : >"$flag"
  (while true; do [[ -n $(builds) ]] && echo busy >"$flag"; sleep 1; done) &
  watcher=$!
}
watch_stop() {
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  [[ -s $flag ]] && echo true || echo false
}

samples=$work/iperf.tsv # path rep order bps retransmits sender_cpu receiver_cpu load busy
rtts=$work/rtts         # one file per path and round
mkdir -p "$rtts"
: >"$samples"
# A round another build overlapped is measured again, once no build has
# run for 10 s (the load average cannot say: iperf3 itself loads both
# cores), at most `attempts` times; its runs go to the JSON as discarded.
attempts=3
discarded=$work/discarded.tsv
: >"$discarded"
round=$work/round.tsv
for ((rep = 1; rep <= reps; rep++)); do
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    wait_no_builds 10
    : >"$round"
    watch_start
    for ((k = 0; k < ${#paths[@]}; k++)); do
      # The order turns each round: direct first, then podroute first, ...
      p=${paths[$(((k + rep - 1) % ${#paths[@]}))]}
      l=$(load1)
      res=$(dp_iperf "${p_ns[$p]}" "${p_dst[$p]}" "$seconds" "$work/iperf-$p-$rep.json" "${p_src[$p]}") ||
        die "$p: iperf3 failed (run $rep): $(head -c 400 "$work/iperf-$p-$rep.json")"
      printf '%s\t%d\t%d\t%s\t%s\n' "$p" "$rep" $((k + 1)) "${res// /$'\t'}" "$l" >>"$round"
      say "iperf3 $p run $rep/$reps: $(awk -v b="${res%% *}" 'BEGIN {printf "%.2f", b / 1e9}') Gbit/s"
    done
    for ((k = 0; k < ${#paths[@]}; k++)); do
      p=${paths[$(((k + rep - 1) % ${#paths[@]}))]}
      dp_ping "${p_ns[$p]}" "${p_dst[$p]}" "$pings" "$interval" "${p_src[$p]}" >"$rtts/$p-$rep"
    done
    busy=$(watch_stop)
    if [[ $busy == false ]] || ((attempt == attempts)); then
      [[ $busy == true ]] && say "round $rep: another build ran meanwhile, kept after $attempts attempts"
      awk -v b="$busy" '{print $0 "\t" b}' "$round" >>"$samples"
      break
    fi
    say "round $rep: another build ran meanwhile; measuring it again"
    awk '{print $0 "\ttrue"}' "$round" >>"$discarded"
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ----
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out_dir"
json=$out_dir/dataplane-$stamp.json
md=$out_dir/dataplane-$stamp.md

# Path P's throughput over path Q's, one ratio per round: the rounds
# interleave the paths, so a ratio within one round sees the same machine.
paired() {
  awk -v p="$1" -v q="$2" '$1 == p {a[$2] = $4} $1 == q {b[$2] = $4}
    END {for (r in a) if (r in b) printf "%.4f\n", a[r] / b[r]}' "$samples"
}
# "p50 (min–max)" from dp_stats.
span() { awk '{printf "%.3f (%.3f–%.3f)", $3, $2, $5}'; }

# Column K of path P's iperf3 samples.
samples_col() { awk -v p="$1" -v k="$2" '$1 == p {print $k}' "$samples"; }
declare -A t_med t_min t_max t_retr t_scpu t_rcpu r_n r_avg r_p50 r_p99 r_max r_lost
for p in "${paths[@]}"; do
  # dp_stats: n min p50 p99 max mean.
  read -r _ lo med _ hi _ < <(samples_col "$p" 4 | dp_stats)
  t_min[$p]=$lo t_med[$p]=$med t_max[$p]=$hi
  t_retr[$p]=$(samples_col "$p" 5 | dp_stats | cut -d' ' -f3)
  t_scpu[$p]=$(samples_col "$p" 6 | dp_stats | cut -d' ' -f3)
  t_rcpu[$p]=$(samples_col "$p" 7 | dp_stats | cut -d' ' -f3)
  read -r n _ med p99 hi avg < <(cat "$rtts/$p"-* | dp_stats)
  r_n[$p]=$n r_p50[$p]=$med r_p99[$p]=$p99 r_max[$p]=$hi r_avg[$p]=$avg
  r_lost[$p]=$((reps * pings - r_n[$p]))
done
busy_runs=$(awk '$9 == "true"' "$samples" | wc -l)
redone=$(($(wc -l <"$discarded") / ${#paths[@]}))
gbit() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1e9}'; }
us() { awk -v m="$1" 'BEGIN {printf "%.0f", m * 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

{
  echo "## dataplane: pod to pod across racks, $(basename "$topology" .clab.yml) ($node_a → $node_b)"
  echo
  echo "$(nproc) cores ($cpu_model), kernel $(uname -r), podroute at $commit, $(date -u +%Y-%m-%d)."
  echo "Load average $load_start at the start, $load_end at the end. Rounds measured again because another build overlapped them: $redone;"
  echo "iperf3 runs kept that one overlapped: $busy_runs of $((reps * ${#paths[@]}))."
  echo "Per path $reps × ${seconds} s of iperf3 (one TCP stream, the first second left out), interleaved;"
  echo "$reps × $pings pings at ${interval} s. Fabric link MTU $fabric_mtu."
  echo
  echo "| path | from → to | TCP Gbit/s, median (min–max) | / direct | / overlay | retransmits (median) | CPU % sender / receiver (median) |"
  echo "|---|---|---|---|---|---|---|"
  for p in "${paths[@]}"; do
    echo "| $p: ${p_what[$p]} | ${p_src[$p]} → ${p_dst[$p]} | $(gbit "${t_med[$p]}") ($(gbit "${t_min[$p]}")–$(gbit "${t_max[$p]}")) | $(ratio "${t_med[$p]}" "${t_med[direct]}") | $(ratio "${t_med[$p]}" "${t_med[overlay]}") | ${t_retr[$p]} | ${t_scpu[$p]} / ${t_rcpu[$p]} |"
  done
  echo
  echo "| path | ping RTT µs: avg | p50 | p99 | max | p50 / direct | lost |"
  echo "|---|---|---|---|---|---|---|"
  for p in "${paths[@]}"; do
    echo "| $p | $(us "${r_avg[$p]}") | $(us "${r_p50[$p]}") | $(us "${r_p99[$p]}") | $(us "${r_max[$p]}") | $(ratio "${r_p50[$p]}" "${r_p50[direct]}") | ${r_lost[$p]} of $((reps * pings)) |"
  done
  echo
  echo "| path | sending interface, MTU | route mtu | path MTU (largest DF ping answered) | one byte more |"
  echo "|---|---|---|---|---|"
  for p in "${paths[@]}"; do
    echo "| $p | ${m_dev[$p]}, ${m_ifmtu[$p]} | ${m_rtmtu[$p]:-none} | ${m_pmtu[$p]} (\`ping -M do -s $((m_pmtu[$p] - DP_ICMP_OVERHEAD))\`) | ${m_over[$p]:-answered?} |"
  done
  echo
  echo "Hops (traceroute from the sender):"
  echo
  for p in "${paths[@]}"; do
    echo "- $p: ${p_src[$p]} → ${m_hops[$p]// / → }"
  done
  echo
  goal_ratio=$(ratio "${t_med[podroute]}" "${t_med[direct]}")
  over_ratio=$(ratio "${t_med[podroute]}" "${t_med[overlay]}")
  met95=$(awk -v r="$goal_ratio" 'BEGIN {print (r >= 0.95) ? "met" : "NOT met"}')
  met_ovl=$(awk -v r="$over_ratio" 'BEGIN {print (r > 1) ? "met" : "NOT met"}')
  echo "Goal (issue 11): podroute at least 95 % of direct: $met95 ($goal_ratio); above the overlay: $met_ovl (${over_ratio}x)."
  echo "Round by round (each round runs all three within $((3 * (seconds + 1) + 3)) s or so): podroute / direct $(paired podroute direct | dp_stats | span),"
  echo "podroute / overlay $(paired podroute overlay | dp_stats | span) (median, min–max)."
} | tee "$md"

hops_json() {
  local hops
  read -ra hops <<<"$1"
  ((${#hops[@]})) || return 0
  printf '"%s",' "${hops[@]}" | sed 's/,$//'
}

# Every sample, for whoever wants more than medians.
{
  printf '{\n  "bench": "dataplane",\n  "date": "%s",\n  "commit": "%s",\n' "$stamp" "$commit"
  printf '  "machine": {"cpus": %d, "cpu_model": "%s", "kernel": "%s", "load_start": "%s", "load_end": "%s"},\n' \
    "$(nproc)" "$cpu_model" "$(uname -r)" "$load_start" "$load_end"
  printf '  "lab": {"topology": "%s", "name": "%s", "from": "%s", "to": "%s", "fabric_mtu": %d},\n' \
    "$topology" "$lab" "$node_a" "$node_b" "$fabric_mtu"
  printf '  "method": {"reps": %d, "seconds": %s, "omit_seconds": 1, "pings": %d, "interval_s": %s, "quiet_load": %s, "quiet_seconds": %d, "waited": %s},\n' \
    "$reps" "$seconds" "$pings" "$interval" "$quiet_load" "$quiet_seconds" "$( ((wait_quiet)) && echo true || echo false)"
  printf '  "paths": {\n'
  sep=
  for p in "${paths[@]}"; do
    printf '%s    "%s": {"what": "%s", "src": "%s", "dst": "%s", "interface": "%s", "interface_mtu": %d, "route_mtu": %s, "path_mtu": %d, "one_byte_more": "%s", "hops": [%s],\n' \
      "$sep" "$p" "${p_what[$p]}" "${p_src[$p]}" "${p_dst[$p]}" "${m_dev[$p]}" "${m_ifmtu[$p]}" "${m_rtmtu[$p]:-null}" \
      "${m_pmtu[$p]}" "${m_over[$p]//\"/}" "$(hops_json "${m_hops[$p]}")"
    printf '      "tcp_bps": {"median": %s, "min": %s, "max": %s, "ratio_to_direct": %s, "ratio_to_overlay": %s},\n' \
      "${t_med[$p]}" "${t_min[$p]}" "${t_max[$p]}" "$(ratio "${t_med[$p]}" "${t_med[direct]}")" "$(ratio "${t_med[$p]}" "${t_med[overlay]}")"
    if [[ $p != direct ]]; then
      printf '      "tcp_ratio_to_direct_by_round": [%s],\n' "$(paired "$p" direct | paste -sd,)"
    fi
    printf '      "rtt_ms": {"n": %d, "lost": %d, "avg": %s, "p50": %s, "p99": %s, "max": %s}}' \
      "${r_n[$p]}" "${r_lost[$p]}" "${r_avg[$p]}" "${r_p50[$p]}" "${r_p99[$p]}" "${r_max[$p]}"
    sep=$',\n'
  done
  printf '\n  },\n  "iperf3": [\n'
  awk -F'\t' '{printf "%s    {\"path\": \"%s\", \"rep\": %d, \"order\": %d, \"bits_per_second\": %s, \"retransmits\": %d, \"sender_cpu_pct\": %s, \"receiver_cpu_pct\": %s, \"load1\": %s, \"other_build_seen\": %s}", (NR > 1 ? ",\n" : ""), $1, $2, $3, $4, $5, $6, $7, $8, $9} END {print ""}' "$samples"
  printf '  ],\n  "iperf3_discarded": [\n'
  awk -F'\t' '{printf "%s    {\"path\": \"%s\", \"rep\": %d, \"order\": %d, \"bits_per_second\": %s, \"retransmits\": %d, \"sender_cpu_pct\": %s, \"receiver_cpu_pct\": %s, \"load1\": %s, \"other_build_seen\": %s}", (NR > 1 ? ",\n" : ""), $1, $2, $3, $4, $5, $6, $7, $8, $9} END {if (NR) print ""}' "$discarded"
  printf '  ],\n  "ping": [\n'
  sep=
  for ((rep = 1; rep <= reps; rep++)); do
    for p in "${paths[@]}"; do
      printf '%s    {"path": "%s", "rep": %d, "rtt_ms": [%s]}' "$sep" "$p" "$rep" "$(paste -sd, "$rtts/$p-$rep")"
      sep=$',\n'
    done
  done
  printf '\n  ]\n}\n'
} >"$json"
say "written: $md, $json"
