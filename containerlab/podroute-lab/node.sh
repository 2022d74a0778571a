#!/bin/sh
# A podroute node under real containerlab (`cmd:` of every node; podlab
# starts the same daemons itself and does not run this file): installs the
# CNI plugin and its conflist for this node, then runs podroute-bgpd on the
# lab's cluster file and podroute-policy-agent on the lab's manifests
# folder, both restarted when they exit, as kubelet restarts a DaemonSet's
# containers. The lab's ipamd (ipamd.sh) serves the socket in the folder
# every container of the lab binds at /run/podroute-lab.
set -eu

node=$(hostname)           # containerlab names the container's host after the node
shared=/run/podroute-lab
ipamd="unix://$shared/ipamd.sock"

mkdir -p "$shared/manifests" /run/podroute
# Pod traffic is forwarded by the node (docker starts containers without).
sysctl -qw net.ipv4.ip_forward=1

# For a runtime (or cnitool) in the container; the node runs without it.
podroute-cni install --ipamd-endpoint "$ipamd" --node-name "$node" \
	|| echo "node.sh: podroute-cni install failed" >&2

# Runs "$@" again whenever it exits: at once after a long run (a restart
# within the leaves' BFD detection time keeps graceful restart in force),
# after a second when it keeps failing.
supervise() {
	while :; do
		started=$(date +%s)
		"$@" || echo "node.sh: $1 exited ($?)" >&2
		[ $(($(date +%s) - started)) -ge 10 ] || sleep 1
	done
}

# bgpd asks ipamd for this node's blocks: wait (a while) for its socket.
i=0
while [ ! -S "$shared/ipamd.sock" ] && [ "$i" -lt 60 ]; do
	sleep 1
	i=$((i + 1))
done

supervise podroute-bgpd --config /etc/podroute/bgpd.yaml --node "$node" --ipamd "$ipamd" &
supervise podroute-policy-agent --node "$node" --manifests "$shared/manifests" &
wait
