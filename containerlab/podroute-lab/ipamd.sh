#!/bin/sh
# The lab's podroute-ipamd under real containerlab (`cmd:` of the node
# labelled role: ipamd; podlab starts ipamd itself and does not run this
# file). It serves the folder every container of the lab binds at
# /run/podroute-lab, where the nodes' bgpd and CNI plugin find its socket,
# and hands out /26 blocks of the pool in /etc/podroute/pools.yaml.
set -eu

shared=/run/podroute-lab
mkdir -p "$shared" /var/lib/podroute/ipam
# A socket left by an earlier deploy of the lab would stop the bind.
rm -f "$shared/ipamd.sock"

# --release-cooldown 0: a lab's pods come and go quickly; their addresses
# may be handed out again at once.
exec podroute-ipamd \
	--admin-socket "$shared/ipamd.sock" \
	--data-dir /var/lib/podroute/ipam \
	--manifests /etc/podroute/pools.yaml \
	--release-cooldown 0
