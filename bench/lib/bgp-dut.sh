# shellcheck shell=bash disable=SC2034 # sets variables for the sourcing scripts
# The set-up bench/fib-ingest and bench/observe share, sourced by both: an
# injector namespace runs BIRD with N static IPv4 /24s (11.0.0.0/24 upwards)
# and announces them over eBGP on a veth pair to the device under test (DUT)
# in a fresh namespace: podroute-bgpd, BIRD 2 with its kernel protocol, or FRR
# 8 bgpd+zebra. With PEERS above 1 the injector offers PEERS-1 more sessions
# that announce nothing. Routes are counted from the Main table's `Prefixes:`
# in the namespace's /proc/net/fib_triestat. See bench/README.md.
#
# The sourcing script sets BENCH (its name, for messages and the lock) and
# may set PEERS (default 1), IMPORT_POLICY (default 1), TIMEOUT and KEEP
# before calling bench_start, which makes the work folder and the injector's
# namespace and cleans both up on exit.

# The link, the ASes and the table.
INJ_IP=192.0.2.1
DUT_IP=192.0.2.2
LINK_LEN=24
INJ_AS=65000
DUT_AS=65001
# The quiet sessions: session K (1 to PEERS-1) from 198.18.1.K on the DUT to
# 198.18.0.K on the injector (RFC 2544's benchmarking range). Each has its
# own address at both ends: BIRD runs one session per neighbour address.
EXTRA_NET=198.18
EXTRA_LEN=16
MAX_PEERS=200
# The table: N consecutive /24s from here (11.0.0.0/24 .. 26.66.63.0/24 for 1M).
FIRST_OCTET=11
MAX_N=4000000 # stays below 73.0.0.0: clear of 127/8 and 192.0.2.0/24
FRR_DIR=/usr/lib/frr
# A stopped DUT gets this long after SIGTERM before SIGKILL.
STOP_GRACE_S=10
# Counting (wait_count).
POLL_MS=15
POLL_BUDGET=4      # counting uses at most 1/(1+this) of a core
PREDICT_MAX_MS=250 # longest wait between two counts while routes move

PEERS=${PEERS:-1}
IMPORT_POLICY=${IMPORT_POLICY:-1}
TIMEOUT=${TIMEOUT:-300}
KEEP=${KEEP:-0}

die() {
  echo "$BENCH: $*" >&2
  exit 1
}
log() { echo "$BENCH: $*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 not found; scripts/setup.sh installs it"; }

# --- the run: lock, work folder, cleanup -------------------------------------

# Takes the lock (one run at a time: two would share the CPU and spoil each
# other's figures), makes the work folder and the injector's namespace, and
# sets the cleanup. $1: the namespaces' prefix.
bench_start() {
  local lock=/run/lock/podroute-$BENCH.lock l1 l5 l15
  exec {BENCH_LOCK_FD}>"$lock"
  flock -n "$BENCH_LOCK_FD" || die "another $BENCH is running (it holds $lock)"
  PREFIX=$1-$$
  WORK=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
  chmod 755 "$WORK" # FRR's daemons run as the frr user and need to get in
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  read -r l1 l5 l15 _ </proc/loadavg
  LOADAVG="$l1 $l5 $l15" # how busy the machine was: the figures move with it
  NAMESPACES=()
  FAILED=0 # a DUT timed out or exited: keep its logs
  INJ_NS=$PREFIX-inj
  INJ_SOCK=$WORK/injector/bird.ctl
  INJ_PID=$WORK/injector/bird.pid
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  ip netns add "$INJ_NS"
  NAMESPACES+=("$INJ_NS")
  ip -n "$INJ_NS" link set lo up
}

# Every process in a namespace of ours was started by us: stop those by pid,
# then delete the namespaces. Runs on any exit, Ctrl-C included.
cleanup() {
  local status=$? ns pids=() i
  trap - EXIT INT TERM HUP
  for ns in "${NAMESPACES[@]}"; do
    [[ -e /run/netns/$ns ]] || continue
    mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null)
  done
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "${pids[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  for ns in "${NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  if ((KEEP)) || ((status != 0)) || ((FAILED)); then
    # The generated tables are large and easily made again.
    ((KEEP)) || rm -f "$WORK"/injector/bird-*.conf
    log "work folder kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}

# --- timing and counting ---------------------------------------------------

# Not `read -t` on a silent pipe: bash 5.2 aborts ("longjmp causes
# uninitialized stack frame") when Ctrl-C lands in it, and skips the cleanup.
nap() { sleep "$1"; }

# Microseconds since the epoch, into REPLY (no fork).
now_us() { REPLY=${EPOCHREALTIME/./}; }

# Seconds with three decimals from microseconds.
secs() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); }

# The Main table's prefix count in the namespace of process $1, into REPLY.
# The kernel walks the whole trie for this (~6 ms of CPU at 300k routes
# here). One read to the end: `read` line by line seeks back after each
# line, and a seek on a seq_file makes the kernel compute it all again.
fib_count() {
  local data rest
  read -r -d '' data <"/proc/$1/net/fib_triestat" || true
  rest=${data#*$'\n'Main:$'\n'}
  [[ $rest != "$data" ]] || die "no Main table in /proc/$1/net/fib_triestat"
  rest=${rest#*Prefixes:}
  rest=${rest%%$'\n'*}
  REPLY=${rest//[[:space:]]/}
  [[ $REPLY =~ ^[0-9]+$ ]] || die "no Prefixes: for Main in /proc/$1/net/fib_triestat"
}

CLK_TCK=$(getconf CLK_TCK)

# The CPU time this shell has used (the counting is done by the shell itself:
# `fib_count` forks nothing), in ms, into REPLY.
self_cpu_ms() {
  local stat f
  read -r stat <"/proc/$BASHPID/stat"
  read -r -a f <<<"${stat##*) }" # f[11], f[12]: utime, stime (fields 14, 15)
  REPLY=$(((f[11] + f[12]) * 1000 / CLK_TCK))
}

# The CPU time of the given processes, every thread, in ns, into REPLY
# (schedstat's time on a CPU; a thread that ended takes its share along).
cpu_ns() {
  local pid f ns sum=0
  for pid in "$@"; do
    for f in "/proc/$pid/task/"*/schedstat; do
      read -r ns _ 2>/dev/null <"$f" && sum=$((sum + ns))
    done
  done
  REPLY=$sum
}

# --- injector --------------------------------------------------------------

INJ_PROTO=dut # the injector's BGP protocol with the table

inj_birdc() { ip netns exec "$INJ_NS" birdc -s "$INJ_SOCK" "$@"; }

# Session $1 (0: the one with the table): its name on the injector, the
# injector's end and the DUT's end, into PEER_NAME, INJ_END, DUT_END.
session_ends() {
  if (($1 == 0)); then
    PEER_NAME=$INJ_PROTO INJ_END=$INJ_IP DUT_END=$DUT_IP
  else
    PEER_NAME=x$1 INJ_END=$EXTRA_NET.0.$1 DUT_END=$EXTRA_NET.1.$1
  fi
}

# BIRD's config with N static /24s; generated once per N by awk.
write_injector_conf() {
  local n=$1 conf=$2 k routes
  {
    cat <<EOF
# $BENCH injector: $n IPv4 /24s from $FIRST_OCTET.0.0.0, over eBGP to the DUT.
router id $INJ_IP;
protocol device { }
protocol static table4 {
  ipv4;
EOF
    awk -v n="$n" -v first="$FIRST_OCTET" 'BEGIN {
      for (i = 0; i < n; i++)
        printf "  route %d.%d.%d.0/24 blackhole;\n", first + int(i / 65536), int(i / 256) % 256, i % 256
    }'
    echo "}"
    for ((k = 0; k < PEERS; k++)); do
      session_ends "$k"
      routes=all
      ((k == 0)) || routes=none
      cat <<EOF
# Passive: every DUT connects by itself, as it would to a real peer.
# No graceful restart: a disabled protocol means withdraw now, not keep stale.
protocol bgp $PEER_NAME {
  local $INJ_END as $INJ_AS;
  neighbor $DUT_END as $DUT_AS;
  passive on;
  graceful restart off;
  long lived graceful restart off;
  ipv4 { import none; export $routes; };
}
EOF
    done
  } >"$conf"
}

# Starts the injector for N routes and waits until BIRD holds all of them.
start_injector() {
  local n=$1 t0 got=''
  local conf=$WORK/injector/bird-$n.conf
  mkdir -p "$WORK/injector"
  stop_injector
  log "N=$n: generating the injector's table"
  write_injector_conf "$n" "$conf"
  now_us
  t0=$REPLY
  ip netns exec "$INJ_NS" bird -c "$conf" -s "$INJ_SOCK" -P "$INJ_PID" ||
    die "the injector's BIRD refused $conf"
  while :; do
    if [[ -S $INJ_SOCK ]]; then
      got=$(inj_birdc show route count 2>/dev/null | awk '/in table master4/ { print $1 }') || got=
      [[ $got == "$n" ]] && break
    fi
    now_us
    (((REPLY - t0) / 1000000 < TIMEOUT)) || die "the injector holds ${got:-no} routes of $n after ${TIMEOUT}s"
    nap 0.2
  done
  now_us
  log "N=$n: injector holds $n routes (loaded in $(secs $((REPLY - t0))) s)"
}

stop_injector() {
  local pid i
  [[ -f $INJ_PID ]] || return 0
  read -r pid <"$INJ_PID" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    nap 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$INJ_PID" "$INJ_SOCK"
}

# `birdc $1` (enable, disable) for each of the injector's BGP protocols (not
# its static table: that would load it again).
injector_sessions_do() {
  inj_birdc "$1" "$INJ_PROTO" >/dev/null || die "birdc $1 $INJ_PROTO failed"
  if ((PEERS > 1)); then
    inj_birdc "$1" '"x*"' >/dev/null || die "birdc $1 x* failed"
  fi
}

# How many of the injector's PEERS protocols are in state $1 (`show
# protocols` Info: Passive, Active, Established, ...; `listening` for
# Passive or Active), into REPLY.
injector_sessions() {
  REPLY=$(inj_birdc show protocols 2>/dev/null | awk -v want="$1" -v first="$INJ_PROTO" '
    $2 == "BGP" && ($1 == first || $1 ~ /^x[0-9]+$/) {
      if (want == "listening" ? ($NF == "Passive" || $NF == "Active") : $NF == want) n++
    }
    END { print n + 0 }')
}

# Waits until all PEERS protocols are in state $1 (as above), at most
# $2 seconds; false if they are not by then.
wait_injector_sessions() {
  local t0
  now_us
  t0=$REPLY
  while :; do
    injector_sessions "$1"
    ((REPLY == PEERS)) && return 0
    now_us
    (((REPLY - t0) / 1000000 < $2)) || return 1
    nap 0.1
  done
}

# --- DUT namespace ---------------------------------------------------------

RUN=0
DUT_NS=
ANCHOR= # a process in DUT_NS whose /proc/PID/net is that namespace's

# A fresh DUT namespace with a veth to the injector, and an anchor process.
make_dut_ns() {
  local k i
  RUN=$((RUN + 1))
  DUT_NS=$PREFIX-dut$RUN
  ip netns add "$DUT_NS"
  NAMESPACES+=("$DUT_NS")
  ip -n "$DUT_NS" link set lo up
  ip link add eth0 netns "$DUT_NS" type veth peer name "dut$RUN" netns "$INJ_NS"
  ip -n "$DUT_NS" addr add "$DUT_IP/$LINK_LEN" dev eth0
  ip -n "$INJ_NS" addr add "$INJ_IP/$LINK_LEN" dev "dut$RUN"
  for ((k = 1; k < PEERS; k++)); do
    session_ends "$k"
    ip -n "$DUT_NS" addr add "$DUT_END/$EXTRA_LEN" dev eth0
    ip -n "$INJ_NS" addr add "$INJ_END/$EXTRA_LEN" dev "dut$RUN"
  done
  ip -n "$DUT_NS" link set eth0 up
  ip -n "$INJ_NS" link set "dut$RUN" up
  # Any rule unmerges the local table from main (the kernel keeps them in one
  # trie until then), so each count walks main only: half the cost. This one
  # repeats the default `32766: lookup main` and changes no lookup.
  ip -n "$DUT_NS" rule add pref 32765 lookup main
  ip netns exec "$DUT_NS" sleep infinity &
  ANCHOR=$!
  # Until `ip netns exec` has switched, its /proc/PID/net is the host's.
  for ((i = 0; i < 100; i++)); do
    [[ /proc/$ANCHOR/ns/net -ef /run/netns/$DUT_NS ]] && return 0
    nap 0.01
  done
  die "the anchor process never entered $DUT_NS"
}

drop_dut_ns() {
  kill -TERM "$ANCHOR" 2>/dev/null || true
  wait "$ANCHOR" 2>/dev/null || true
  ip netns del "$DUT_NS" 2>/dev/null || true
}

# --- DUTs: configure, start, list, stop --------------------------------------

DUT_DIR=
DUT_PIDFILES=() # files holding the pids of the DUT's daemons
DUT_PID=        # or the pid itself, for one started in the foreground

# The DUT takes everything and sends nothing back. Its session K is named as
# the injector names it (the table's: `injector`).
write_podroute_conf() {
  local k
  cat <<EOF
apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  asNumber: $DUT_AS
  routerID: $DUT_IP
  connectRetryTime: 1
EOF
  for ((k = 0; k < PEERS; k++)); do
    session_ends "$k"
    ((k)) || PEER_NAME=injector
    cat <<EOF
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {name: $PEER_NAME}
spec:
  peerIP: $INJ_END
  asNumber: $INJ_AS
EOF
    ((k == 0)) || echo "  sourceAddress: $DUT_END"
    if ((IMPORT_POLICY)); then
      echo "  importPolicy: {defaultAction: accept}"
    fi
  done
}

write_bird_conf() {
  local k
  cat <<EOF
# $BENCH DUT: BGP from the injector into the kernel.
router id $DUT_IP;
protocol device { }
protocol kernel kernel4 {
  ipv4 { import none; export all; };
  merge paths off;
}
EOF
  for ((k = 0; k < PEERS; k++)); do
    session_ends "$k"
    ((k)) || PEER_NAME=injector
    cat <<EOF
protocol bgp $PEER_NAME {
  local $DUT_END as $DUT_AS;
  neighbor $INJ_END as $INJ_AS;
  connect delay time 1; # BIRD's least: its first connect comes 1 s after start
  ipv4 { import all; export none; };
}
EOF
  done
}

# FRR sends nothing back to the peer a route came from; with more peers an
# outbound route-map that denies all keeps it from sending the table on.
write_frr_confs() {
  local k
  printf 'hostname dut\n' >"$DUT_DIR/zebra.conf"
  {
    echo "hostname dut"
    ((PEERS == 1)) || echo "route-map NOTHING deny 10"
    echo "router bgp $DUT_AS"
    echo " bgp router-id $DUT_IP"
    echo " no bgp ebgp-requires-policy"
    for ((k = 0; k < PEERS; k++)); do
      session_ends "$k"
      echo " neighbor $INJ_END remote-as $INJ_AS"
      ((k == 0)) || echo " neighbor $INJ_END update-source $DUT_END"
      echo " neighbor $INJ_END timers connect 1"
    done
    echo " address-family ipv4 unicast"
    for ((k = 0; k < PEERS; k++)); do
      session_ends "$k"
      echo "  neighbor $INJ_END activate"
      ((PEERS == 1)) || echo "  neighbor $INJ_END route-map NOTHING out"
    done
    echo " exit-address-family"
  } >"$DUT_DIR/bgpd.conf"
}

# Starts DUT $1 in DUT_NS with its files in DUT_DIR; the rest of the
# arguments go to podroute-bgpd (BGPD: its path). Its start time is taken
# just before this.
start_dut() {
  local dut=$1 d
  shift
  DUT_PIDFILES=()
  DUT_PID=
  mkdir -p "$DUT_DIR"
  case $dut in
    podroute)
      write_podroute_conf >"$DUT_DIR/bgpd.yaml"
      ip netns exec "$DUT_NS" "$BGPD" --config "$DUT_DIR/bgpd.yaml" \
        --admin-socket "$DUT_DIR/bgpd.sock" --log-level info "$@" \
        </dev/null >"$DUT_DIR/bgpd.log" 2>&1 &
      DUT_PID=$!
      ;;
    bird)
      write_bird_conf >"$DUT_DIR/bird.conf"
      DUT_PIDFILES=("$DUT_DIR/bird.pid")
      ip netns exec "$DUT_NS" bird -c "$DUT_DIR/bird.conf" -s "$DUT_DIR/bird.ctl" \
        -P "$DUT_DIR/bird.pid" >"$DUT_DIR/bird.out" 2>&1
      ;;
    frr)
      # FRR drops to the frr user, which must own the folder of its sockets.
      write_frr_confs
      chown frr:frr "$DUT_DIR"
      for d in zebra bgpd; do
        DUT_PIDFILES+=("$DUT_DIR/$d.pid")
        local extra=()
        # Debian's default netlink receive buffer for zebra (/etc/frr/daemons).
        [[ $d == zebra ]] && extra=(-s 90000000)
        # -d returns once the daemon is up, so bgpd finds zebra's socket.
        ip netns exec "$DUT_NS" "$FRR_DIR/$d" -d -f "$DUT_DIR/$d.conf" \
          -i "$DUT_DIR/$d.pid" -z "$DUT_DIR/zserv.api" --vty_socket "$DUT_DIR" \
          -P 0 --log "file:$DUT_DIR/$d.log" "${extra[@]}" >"$DUT_DIR/$d.out" 2>&1
      done
      ;;
  esac
}

# The DUT's daemons' pids, into DUT_PIDS (those whose pid file is written).
dut_pids() {
  local f pid
  DUT_PIDS=()
  [[ -n $DUT_PID ]] && DUT_PIDS+=("$DUT_PID")
  for f in "${DUT_PIDFILES[@]}"; do
    [[ -s $f ]] && read -r pid <"$f" && DUT_PIDS+=("$pid")
  done
  return 0
}

# True while every known DUT daemon runs.
dut_alive() {
  local pid
  dut_pids
  ((${#DUT_PIDS[@]})) || return 0 # still starting: pid files not yet written
  for pid in "${DUT_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || return 1
  done
}

# Sum of the DUT daemons' $1 from /proc/PID/status (VmHWM: peak resident
# set; VmRSS: now), in kB, into REPLY; empty when none of them runs any more.
dut_mem_kb() {
  local pid key value rest sum=0 seen=0
  dut_pids
  for pid in "${DUT_PIDS[@]}"; do
    while read -r key value rest; do
      if [[ $key == "$1:" ]]; then
        sum=$((sum + value))
        seen=1
      fi
    done 2>/dev/null <"/proc/$pid/status" || true
  done
  ((seen)) && REPLY=$sum || REPLY=
}

# The end of the DUT's logs, for a run that did not finish.
show_dut_logs() {
  local f
  for f in "$DUT_DIR"/*.log "$DUT_DIR"/*.out; do
    [[ -s $f ]] || continue
    log "last lines of $f:"
    tail -n 5 "$f" | sed 's/^/    /' >&2
  done
}

stop_dut() {
  local i
  dut_pids
  ((${#DUT_PIDS[@]})) || return 0
  kill -TERM "${DUT_PIDS[@]}" 2>/dev/null || true
  for ((i = 0; i < STOP_GRACE_S * 10; i++)); do
    kill -0 "${DUT_PIDS[@]}" 2>/dev/null || break
    nap 0.1
  done
  kill -KILL "${DUT_PIDS[@]}" 2>/dev/null || true
  [[ -n $DUT_PID ]] && { wait "$DUT_PID" 2>/dev/null || true; }
  return 0
}

# --- counting routes -----------------------------------------------------------

# A moment was seen at T_DONE by a count that came $1 µs after the one
# before: it happened within that gap. POLL_GAP keeps the widest.
note_gap() {
  local gap=$(((T_DONE - ${1:-$T_DONE}) / 1000))
  ((gap <= POLL_GAP)) || POLL_GAP=$gap
}

# Polls the DUT's route count (above BASE) until `$1` holds for it (all: N
# routes; none), the timeout passes from T_START, or the DUT exits. Sets
# COUNT, T_FIRST (first time a route was seen, when $2 is `first`), T_DONE,
# OUTCOME (ok, timeout, exited) and raises POLL_GAP (see note_gap: how late a
# time can be); adds to POLLS and POLL_CPU_MS. Each count goes to
# DUT_DIR/counts-$1.txt: ms since T_START, routes.
#
# Each count costs the kernel a walk of the whole trie (~10 ms of CPU at
# 500k routes), so counts are few where they tell little: once routes move,
# the next count comes after half the time the average rate so far predicts
# for the rest (at most PREDICT_MAX_MS), so they close in on the moment the
# target is reached. Besides, the counting uses at most 1/(1+POLL_BUDGET) of
# one core since the phase began, and counts never come closer than POLL_MS.
wait_count() {
  local until=$1 track_first=${2:-} t_phase cpu0 cpu ok polls=0 prev='' wait_ms
  local count0='' moved left since='' moved0='' predict_ms
  local trace
  exec {trace}>>"$DUT_DIR/counts-$until.txt"
  T_FIRST=
  now_us
  t_phase=$REPLY
  self_cpu_ms
  cpu0=$REPLY
  while :; do
    fib_count "$ANCHOR"
    COUNT=$((REPLY - BASE))
    now_us
    T_DONE=$REPLY
    printf '%s %d\n' "$(((T_DONE - T_START) / 1000))" "$COUNT" >&"$trace"
    polls=$((polls + 1))
    if [[ $track_first == first && -z $T_FIRST ]] && ((COUNT > 0)); then
      T_FIRST=$T_DONE
      note_gap "$prev"
    fi
    case $until in
      all) ((COUNT >= N)) && ok=1 || ok=0 ;;
      none) ((COUNT <= 0)) && ok=1 || ok=0 ;;
    esac
    if ((ok)); then
      note_gap "$prev"
      OUTCOME=ok
      break
    fi
    prev=$T_DONE
    if (((T_DONE - T_START) / 1000000 >= TIMEOUT)); then
      OUTCOME=timeout
      break
    fi
    if ((polls % 16 == 0)) && ! dut_alive; then
      OUTCOME=exited
      break
    fi
    self_cpu_ms
    cpu=$((REPLY - cpu0))
    wait_ms=$((cpu * (1 + POLL_BUDGET) - (T_DONE - t_phase) / 1000))
    ((wait_ms > POLL_MS)) || wait_ms=$POLL_MS
    # Routes moved so far and left to move, and how long that took.
    [[ -n $count0 ]] || count0=$COUNT
    case $until in
      all) moved=$COUNT left=$((N - COUNT)) ;;
      none) moved=$((count0 - COUNT)) left=$COUNT ;;
    esac
    # The rate counts from the first count that saw routes move.
    ((moved <= 0)) || [[ -n $since ]] || since=$T_DONE moved0=$moved
    moved=$((moved - ${moved0:-0}))
    if ((moved > 0 && T_DONE > since)); then
      predict_ms=$((left * ((T_DONE - since) / 1000) / moved / 2))
      ((predict_ms < PREDICT_MAX_MS)) || predict_ms=$PREDICT_MAX_MS
      ((predict_ms < wait_ms)) || wait_ms=$predict_ms
    fi
    printf -v wait_ms '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000))
    nap "$wait_ms"
  done
  exec {trace}>&-
  self_cpu_ms
  POLL_CPU_MS=$((POLL_CPU_MS + REPLY - cpu0))
  POLLS=$((POLLS + polls))
}
