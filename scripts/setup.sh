#!/usr/bin/env bash
# Installs what podroute's tests, labs and demo need on a Debian machine, as
# root, and registers our rtnetlink protocol name. Idempotent: when all is in
# place it changes nothing. It never starts FRR or BIRD system services: the
# labs start their own instances inside network namespaces.
set -euo pipefail

# Our kernel routes carry this rtnetlink protocol number (FRR holds 186-198,
# Calico's felix 80), so `ip route` prints `proto podroute`. Pod routes of the
# CNI plugin carry their own number: bgpd sweeps unknown routes of its own.
RTPROT_PODROUTE=210
RTPROT_PODROUTE_CNI=211

PACKAGES=(
  iproute2 iptables ipset conntrack iputils-ping traceroute procps psmisc util-linux kmod
  frr bird2 gobgpd etcd-server etcd-client iperf3 tcpdump ca-certificates
  # curl: bench/observe reads /metrics with it, as an operator would.
  curl
  # protoc: etcd-client (the IPAM etcd store) compiles etcd's protos with it.
  protobuf-compiler
)

log() { echo "setup: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (it installs Debian packages and makes namespaces)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  # Keep package scripts from starting services (frr, bird, etcd) here:
  # policy-rc.d exit 101 means "not allowed" to invoke-rc.d.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  # Removed however the script ends, also when CI cancels it.
  trap '[[ $own_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  trap 'exit 1' INT TERM HUP
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp /tmp/podroute-setup-apt.XXXXXX)
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    echo "setup: installing Debian packages failed (log above, kept in $apt_log)" >&2
    exit 1
  fi
  rm -f "$apt_log"
fi

# Where systemd is PID 1, make sure the distribution's own daemons stay off.
if [[ -d /run/systemd/system ]]; then
  for svc in frr bird gobgpd etcd; do
    if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
      log "disabling the system $svc service (labs run their own)"
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

proto_file=/etc/iproute2/rt_protos.d/podroute.conf
proto_line="$RTPROT_PODROUTE podroute"
cni_proto_line="$RTPROT_PODROUTE_CNI podroute-cni"
proto_now="$(cat "$proto_file" 2>/dev/null || true)"
if [[ "$proto_now" != *"$proto_line"* || "$proto_now" != *"$cni_proto_line"* ]]; then
  log "registering rtnetlink protocols $proto_line, $cni_proto_line in $proto_file"
  mkdir -p "$(dirname "$proto_file")"
  printf '# podroute: kernel routes installed by podroute-bgpd and podroute-cni\n%s\n%s\n' \
    "$proto_line" "$cni_proto_line" > "$proto_file"
fi

# Rust: the machine's toolchain (edition 2024 needs cargo 1.85 or later).
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install a Rust toolchain (1.88 or later) with rustup first" >&2
  exit 1
fi
cargo_minor=$(cargo --version | sed -E 's/^cargo 1\.([0-9]+).*/\1/')
if ((cargo_minor < 88)); then
  echo "setup: $(cargo --version) is too old; podroute needs Rust 1.88 or later" >&2
  exit 1
fi
for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "setup: cargo $tool is missing; add it with: rustup component add ${tool/fmt/rustfmt}" >&2
    exit 1
  fi
done

log "ready"
