# shellcheck shell=bash
# bench/dataplane/lib.sh: the measuring half of bench/dataplane, sourced by
# run.sh. It knows nothing of podlab: it works on two node namespaces with
# one pod namespace each (the DP_A_* and DP_B_* variables below), builds a
# Flannel-style VXLAN overlay between them, and measures a path with iperf3
# (TCP throughput), ping (per-packet RTTs), DF pings (the largest packet
# that crosses unfragmented) and traceroute (the hops).
#
# Set before calling dp_overlay_up:
#   DP_A_NODE_NS DP_A_NODE_IP DP_A_POD_NS DP_A_OVL_NET DP_A_OVL_IP
#   DP_B_NODE_NS DP_B_NODE_IP DP_B_POD_NS DP_B_OVL_NET DP_B_OVL_IP
#   DP_OVL_CIDR (the overlay's whole range, Flannel's "Network"; a /24 per
#   node in it)

# Flannel's vxlan backend: device flannel.<VNI>, VNI 1, UDP 8472 (Flannel's
# default, the port Linux used before IANA's 4789).
DP_VXLAN_VNI=1
DP_VXLAN_DEV=flannel.$DP_VXLAN_VNI
# Flannel's bridge, and the pod's veth pair into it.
DP_BRIDGE=cni0
DP_HOST_VETH=vethdp0
DP_POD_IF=ovl0
DP_VXLAN_PORT=8472
# Outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14: Flannel sets the
# device (and its pods) to the uplink's MTU minus this.
DP_VXLAN_OVERHEAD=50
DP_IPERF_PORT=5201
# IPv4 20 + ICMP 8: a ping payload of S bytes is an IP packet of S + 28.
DP_ICMP_OVERHEAD=28

dp_in() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# The output interface of NS's route to DST (from local address SRC if given).
dp_route_dev() {
  local ns=$1 dst=$2 src=${3:-}
  ip -n "$ns" -o route get "$dst" ${src:+from "$src"} |
    awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}'
}

# The `mtu` metric of NS's route to DST (empty when the route sets none:
# then the interface's MTU applies).
dp_route_mtu() {
  local ns=$1 dst=$2 src=${3:-}
  ip -n "$ns" -o route get "$dst" ${src:+from "$src"} |
    awk '{for (i = 1; i < NF; i++) if ($i == "mtu") { print $(i + 1); exit }}'
}

dp_link_mtu() {
  ip -n "$1" -o link show dev "$2" | awk '{for (i = 1; i < NF; i++) if ($i == "mtu") { print $(i + 1); exit }}'
}

dp_link_mac() {
  ip -n "$1" -o link show dev "$2" | awk '{for (i = 1; i < NF; i++) if ($i == "link/ether") { print $(i + 1); exit }}'
}

# One side of the overlay, as flanneld's vxlan backend and Flannel's CNI
# config (the bridge plugin) set a node and a pod up: a VXLAN device bound
# to the node's address with learning off (flanneld writes every neighbour
# itself), MTU the uplink's minus the encapsulation, the node's /24 network
# address on it; a bridge cni0 holding the /24's first address as the pods'
# gateway; the pod on its own veth pair into cni0 (ovl0 inside), MTU as the
# VXLAN device's, an address from the /24 and the overlay's range through
# cni0. The pod's podroute interface and default route stay as they are, so
# one pod namespace serves both paths (podroute's policy agent filters its
# own podr* interfaces only: the overlay's packets are not its business).
dp_overlay_side() {
  local node_ns=$1 node_ip=$2 pod_ns=$3 ovl_net=$4 ovl_ip=$5
  local uplink mtu gw
  # A node's own address routes through lo; the uplink is the device the
  # address sits on.
  uplink=$(ip -n "$node_ns" -o addr show to "$node_ip/32" | awk '{print $2; exit}')
  [[ -n $uplink ]] || { echo "dataplane: no interface holds $node_ip in $node_ns" >&2; return 1; }
  mtu=$(($(dp_link_mtu "$node_ns" "$uplink") - DP_VXLAN_OVERHEAD))
  ip -n "$node_ns" link add "$DP_VXLAN_DEV" type vxlan id "$DP_VXLAN_VNI" \
    local "$node_ip" dev "$uplink" dstport "$DP_VXLAN_PORT" nolearning
  ip -n "$node_ns" link set "$DP_VXLAN_DEV" mtu "$mtu" up
  ip -n "$node_ns" addr add "${ovl_net%/*}/32" dev "$DP_VXLAN_DEV"
  gw=$(dp_first_host "$ovl_net")
  ip -n "$node_ns" link add "$DP_BRIDGE" type bridge
  ip -n "$node_ns" addr add "$gw/${ovl_net#*/}" dev "$DP_BRIDGE"
  ip -n "$node_ns" link add "$DP_HOST_VETH" mtu "$mtu" type veth peer name "$DP_POD_IF" netns "$pod_ns" mtu "$mtu"
  ip -n "$node_ns" link set "$DP_HOST_VETH" master "$DP_BRIDGE" up
  ip -n "$node_ns" link set "$DP_BRIDGE" up
  ip -n "$pod_ns" link set "$DP_POD_IF" up
  ip -n "$pod_ns" addr add "$ovl_ip/${ovl_net#*/}" dev "$DP_POD_IF"
  ip -n "$pod_ns" route add "$DP_OVL_CIDR" via "$gw" dev "$DP_POD_IF"
}

# The first host address of a /24 (Flannel's gateway on cni0).
dp_first_host() {
  local net=${1%/*}
  echo "${net%.*}.$((${net##*.} + 1))"
}

# What flanneld writes on a node for each other node: its VTEP's MAC in the
# FDB (-> the other node's address) and in the neighbour table (for its /24's
# network address), and the route to its /24 through the VXLAN device.
dp_overlay_peer() {
  local node_ns=$1 peer_ns=$2 peer_ip=$3 peer_net=$4 mac
  mac=$(dp_link_mac "$peer_ns" "$DP_VXLAN_DEV")
  bridge -n "$node_ns" fdb append "$mac" dev "$DP_VXLAN_DEV" dst "$peer_ip" self permanent
  ip -n "$node_ns" neigh replace "${peer_net%/*}" lladdr "$mac" dev "$DP_VXLAN_DEV" nud permanent
  ip -n "$node_ns" route add "$peer_net" via "${peer_net%/*}" dev "$DP_VXLAN_DEV" onlink
}

dp_overlay_up() {
  dp_overlay_side "$DP_A_NODE_NS" "$DP_A_NODE_IP" "$DP_A_POD_NS" "$DP_A_OVL_NET" "$DP_A_OVL_IP"
  dp_overlay_side "$DP_B_NODE_NS" "$DP_B_NODE_IP" "$DP_B_POD_NS" "$DP_B_OVL_NET" "$DP_B_OVL_IP"
  dp_overlay_peer "$DP_A_NODE_NS" "$DP_B_NODE_NS" "$DP_B_NODE_IP" "$DP_B_OVL_NET"
  dp_overlay_peer "$DP_B_NODE_NS" "$DP_A_NODE_NS" "$DP_A_NODE_IP" "$DP_A_OVL_NET"
}

# Removes what dp_overlay_up made (whatever of it exists): the devices
# take their addresses, routes, neighbours and FDB entries with them, the
# host veth its pod end.
dp_overlay_down() {
  local ns
  for ns in "$DP_A_NODE_NS" "$DP_B_NODE_NS"; do
    ip -n "$ns" link del "$DP_VXLAN_DEV" 2>/dev/null || true
    ip -n "$ns" link del "$DP_HOST_VETH" 2>/dev/null || true
    ip -n "$ns" link del "$DP_BRIDGE" 2>/dev/null || true
  done
}

# Polls until CMD... succeeds, at most TIMEOUT seconds.
dp_wait() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "dataplane: timed out after ${timeout} s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Starts an iperf3 server in NS (on every address) and waits until it
# listens; prints its pid.
dp_iperf_server() {
  local ns=$1 log=$2
  ip netns exec "$ns" iperf3 -s -p "$DP_IPERF_PORT" >"$log" 2>&1 &
  local pid=$!
  dp_wait "iperf3 listening in $ns" 10 dp_listening "$ns" || return 1
  echo "$pid"
}

dp_listening() {
  [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$DP_IPERF_PORT") ]]
}

# One iperf3 TCP run (one stream, the first second left out as slow start)
# from NS to DST (from local address SRC if given); prints
# "bits_per_second retransmits sender_cpu_% receiver_cpu_%" from the JSON
# (the receiver's byte count; iperf3's own CPU accounting). The JSON is kept
# in FILE.
dp_iperf() {
  local ns=$1 dst=$2 seconds=$3 file=$4 src=${5:-}
  ip netns exec "$ns" iperf3 -c "$dst" -p "$DP_IPERF_PORT" -t "$seconds" -O 1 -J \
    ${src:+-B "$src"} >"$file" || true
  dp_iperf_parse "$file"
}

dp_iperf_parse() {
  # iperf3 -J prints one key per line; the totals are in "end", objects
  # "sum_sent" (retransmits) and "sum_received" (the receiver's rate).
  awk '
    /"error":/ { print "iperf3: " $0 > "/dev/stderr"; bad = 1 }
    /"end":/ { end = 1 }
    end && /"sum_sent":/ { sect = "sent" }
    end && /"sum_received":/ { sect = "received" }
    sect == "sent" && /"retransmits":/ { gsub(/,/, "", $2); retr = $2 }
    sect == "received" && /"bits_per_second":/ { gsub(/,/, "", $2); bps = $2 }
    /}/ { sect = "" }
    end && /"host_total":/ { gsub(/,/, "", $2); host = $2 }
    end && /"remote_total":/ { gsub(/,/, "", $2); remote = $2 }
    END {
      if (bad || bps == "") exit 1
      printf "%s %s %.1f %.1f\n", bps, (retr == "" ? 0 : retr), host, remote
    }' "$1"
}

# COUNT pings from NS to DST every INTERVAL s (from SRC if given); prints
# one RTT in ms per reply received.
dp_ping() {
  local ns=$1 dst=$2 count=$3 interval=$4 src=${5:-}
  ip netns exec "$ns" ping -n -c "$count" -i "$interval" -W 1 ${src:+-I "$src"} "$dst" |
    awk -F'time=' 'NF == 2 { split($2, t, " "); print t[1] }' || true
}

# Whether one ping with the Don't Fragment bit and PAYLOAD bytes gets an
# answer (a too-large packet fails at once, locally or by the router's
# "fragmentation needed").
dp_df_ok() {
  local ns=$1 dst=$2 payload=$3 src=${4:-}
  ip netns exec "$ns" ping -n -c 1 -W 1 -M "do" -s "$payload" ${src:+-I "$src"} "$dst" >/dev/null 2>&1
}

# The path's MTU measured with DF pings: the largest IP packet that gets an
# answer, between 68 and the sending interface's MTU (binary search; the
# top is tried first, one ping when the path takes full-size packets).
dp_path_mtu() {
  local ns=$1 dst=$2 src=${3:-} dev hi lo mid
  dev=$(dp_route_dev "$ns" "$dst" "$src")
  hi=$(($(dp_link_mtu "$ns" "$dev") - DP_ICMP_OVERHEAD))
  if dp_df_ok "$ns" "$dst" "$hi" "$src"; then
    echo $((hi + DP_ICMP_OVERHEAD))
    return
  fi
  lo=$((68 - DP_ICMP_OVERHEAD))
  dp_df_ok "$ns" "$dst" "$lo" "$src" || { echo 0; return; }
  # Invariant: lo answers, hi does not.
  while ((hi - lo > 1)); do
    mid=$(((lo + hi) / 2))
    if dp_df_ok "$ns" "$dst" "$mid" "$src"; then lo=$mid; else hi=$mid; fi
  done
  echo $((lo + DP_ICMP_OVERHEAD))
}

# The hops from NS to DST, space-separated ("*" for a hop that did not
# answer).
dp_trace() {
  local ns=$1 dst=$2 src=${3:-}
  ip netns exec "$ns" traceroute -n -q 1 -w 1 -m 12 ${src:+-s "$src"} "$dst" 2>/dev/null |
    awk 'NR > 1 { printf "%s%s", sep, $2; sep = " " } END { print "" }'
}

# Statistics over numbers on stdin: "n min p50 p99 max mean" (p50/p99 by
# nearest rank).
dp_stats() {
  sort -g | awk '
    { v[++n] = $1; sum += $1 }
    END {
      if (n == 0) { print "0 - - - - -"; exit }
      p50 = v[int((n * 50 + 99) / 100)]
      p99 = v[int((n * 99 + 99) / 100)]
      printf "%d %s %s %s %s %.6g\n", n, v[1], p50, p99, v[n], sum / n
    }'
}
