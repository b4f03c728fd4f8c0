#!/usr/bin/env bash
# dlisten vs the Linux kernel listener, in two parts (PARTS="flood clients").
#
# flood: measured with `dlisten flood`:
#   (a) dlisten serve over net_memif        (two DPDK processes, shared memory)
#   (a6) the same over IPv6: a dual-stack [::]:80 listener, SYNs to [2001:2::1]:80
#   (b) dlisten serve on a veth via net_af_packet
#   (c) the kernel's listener (python, backlog 4096) on the same kind of veth
#   (d) the same kernel listener over IPv6, [2001:2::1]:80 on the same veth
#       (`dlisten flood` answering the kernel's neighbour solicitations)
#
# clients: real kernel clients (wrk, a Python uploader) on one veth, against
#   dlisten serve over net_af_xdp, dlisten serve over net_af_packet, and
#   nginx (http) / a Python reader (discard) on the kernel. Per target: wrk
#   with `Connection: close` (handshakes/s), wrk keep-alive (requests/s), one
#   connection uploading into `discard` (MiB/s). The server is pinned to
#   SERVER_CPU, and the kernel's work for it is steered there and counted as
#   its own: RPS on its veth (af_packet, kernel), the veth's threaded NAPI
#   pinned there (af_xdp: the XDP program and the copy into the UMEM run in
#   it). Server CPU = the server's user+sys + its NAPI thread + SERVER_CPU's
#   softirq+irq time; the client's side is steered to GEN_CPU the same way.
#
# Every run is bounded (--count and --duration, wrk -d, an upload byte cap);
# only 198.18.0.0/15 and 2001:2::/48 are used, inside namespaces this script creates and
# removes (trap). Needs root, ethtool, wrk, nginx (deploy/setup.sh) and a
# built binary (cargo build --release, or DLISTEN=target/debug/dlisten).
#
# Usage: bench/compare.sh [SYN_COUNT] [HANDSHAKES]    (defaults 200000, 20000)
#        PARTS=clients ROUNDS=2 CDUR=8 CONNS=64 bench/compare.sh
#        PARTS=clients CTESTS=up bench/compare.sh     (only the upload)
set -euo pipefail
cd "$(dirname "$0")/.."
# The newer of the release and debug builds, unless DLISTEN says.
BIN=${DLISTEN:-target/release/dlisten}
if [ -z "${DLISTEN:-}" ] && { [ ! -x "$BIN" ] || [ target/debug/dlisten -nt "$BIN" ]; }; then BIN=target/debug/dlisten; fi
"$BIN" flood --help > /dev/null || { echo "$BIN has no flood subcommand: rebuild" >&2; exit 1; }
SYNS=${1:-200000}
HS=${2:-20000}
RATE=${RATE:-}            # empty: as fast as the port takes them
# One core each, so the two busy-polling processes do not take turns.
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
PARTS=${PARTS:-flood clients}
CDUR=${CDUR:-8}           # seconds per wrk run, and the upload's time cap
ROUNDS=${ROUNDS:-2}       # the clients part runs its targets in turn, ROUNDS times
CONNS=${CONNS:-64}        # wrk connections
UPLOAD_MB=${UPLOAD_MB:-4096}  # the upload's byte cap
CTESTS=${CTESTS:-close keep up}  # the clients part's tests, any of these
CTARGETS=${CTARGETS:-xdp afpacket kernel}  # the clients part's targets (kernel is the reference)
SERVE_ARGS=${SERVE_ARGS:-}  # more `dlisten serve` flags in the clients part (e.g. --rmem-max-kb 256)
# net_af_xdp's serve flags: on a veth, Linux 6.18 can stop the client's
# transmit queue for good once a large window fills the veth's 256-entry
# ring (bench/RESULTS.md); windows of at most 256 KiB stay below it.
XDP_SERVE_ARGS=${XDP_SERVE_ARGS---rmem-max-kb 256}
IDLE_US=${IDLE_US:-5}     # dlisten --idle-sleep-us in the clients part (it shares its core with its NAPI thread)
# More net_af_xdp devargs. busy_budget=0: no preferred busy polling; with the
# veth NAPI in a thread on the server core, a busy-polling recvfrom per empty
# poll only competes with it (about 1.4x fewer handshakes/s here with it on).
XDP_ARGS=${XDP_ARGS-,busy_budget=0}
TAG=dlcmp$$
EAL=(--no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error)
OUT=$(mktemp -d /tmp/$TAG.XXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for ns in ${TAG}c ${TAG}s ${TAG}k ${TAG}rc ${TAG}rs; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f /run/dlisten/$TAG*.memif
}
trap cleanup EXIT
mkdir -p /run/dlisten

# CPU seconds (user+sys) a process has used so far.
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
# System-wide softirq+system seconds (the kernel listener's work has no process).
kernel_cpu() { awk '/^cpu / { printf "%.2f", ($4 + $7 + $8) / 100 }' /proc/stat; }
val() { awk -v k="$2" '$1 == k { print $2 }' "$1" | tail -1; }
lat() { awk -v k="$2" -v c="$3" 'index($0, k) == 1 { n = split($0, f, /  +/); print f[c] }' "$1" | tail -1; }

wait_ready() { for _ in $(seq 300); do grep -q "dlisten: ready" "$1" && return 0; sleep 0.1; done; echo "server not ready: $1" >&2; cat "$1" >&2; exit 1; }

newns() { ip netns add "$1"; ip netns exec "$1" ip link set lo up; ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; }

# flood NAME NETNS VDEV MODE ARGS...: run the generator, keep its output in $OUT/NAME.
flood() {
    local name=$1 ns=$2 vdev=$3 mode=$4; shift 4
    local pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    "${pre[@]}" timeout 120 "$BIN" flood --mode "$mode" --dst "$DST" --duration 20 \
        ${RATE:+--rate $RATE} "$@" -- "${EAL[@]}" -l "$GEN_CPU" --file-prefix "$TAG$name" --vdev "$vdev" > "$OUT/$name" 2>&1 \
        || { echo "flood $name failed:" >&2; cat "$OUT/$name" >&2; }
}

# The target and the three source prefixes of run_suite (IPv4; IPv6 for (d)).
DST=198.18.0.1:80
SRC_SYN=198.18.1.0/24 SRC_HS=198.18.2.0/24 SRC_MIXED=198.18.3.0/24

# run_suite LABEL CLIENT_NS CLIENT_VDEV CPU_FN: syn, handshake and mixed, with server CPU per run.
declare -A ROW
run_suite() {
    local label=$1 ns=$2 vdev=$3 cpufn=$4
    local c0 c1 t0 t1
    c0=$($cpufn); t0=$(date +%s.%N)
    # Each mode from its own sources: a request sock left by the SYN run would
    # answer a reused tuple with a SYN-ACK for the old ISN.
    flood "$label-syn" "$ns" "$vdev" syn --src "$SRC_SYN" --count "$SYNS"
    c1=$($cpufn); t1=$(date +%s.%N)
    ROW[$label,syn_cores]=$(echo "($c1 - $c0) / ($t1 - $t0)" | bc -l)
    c0=$($cpufn); t0=$(date +%s.%N)
    flood "$label-hs" "$ns" "$vdev" handshake --src "$SRC_HS" --count "$HS" --concurrency 64
    c1=$($cpufn); t1=$(date +%s.%N)
    ROW[$label,hs_cores]=$(echo "($c1 - $c0) / ($t1 - $t0)" | bc -l)
    flood "$label-mixed" "$ns" "$vdev" mixed --src "$SRC_MIXED" --count "$SYNS" --concurrency 16
}

want() { [[ " $PARTS " == *" $1 "* ]]; }
wantc() { [[ " $CTESTS " == *" $1 "* ]]; }

if want flood; then
# (a) dlisten over memif
SOCK=/run/dlisten/${TAG}a.memif
"$BIN" serve --addr 198.18.0.1 --listen 198.18.0.1:80 --backlog 4096 --cores "$SERVER_CPU" \
    -- "${EAL[@]}" -l "$SERVER_CPU" --file-prefix ${TAG}as \
    --vdev net_memif0,role=server,socket=$SOCK > "$OUT/serve-memif" 2>&1 &
SPID=$!; PIDS+=($SPID); wait_ready "$OUT/serve-memif"
cpu_a() { cpu_of "$SPID"; }
run_suite memif "" "net_memif0,role=client,socket=$SOCK" cpu_a
kill -INT $SPID; wait $SPID || true

# (a6) dlisten over memif, IPv6: the same server with 2001:2::1 and a
# dual-stack [::]:80 listener, sources from 2001:2:0:N::/120.
SOCK=/run/dlisten/${TAG}a6.memif
"$BIN" serve --addr 198.18.0.1 --addr 2001:2::1 --listen '[::]:80' --backlog 4096 --cores "$SERVER_CPU" \
    -- "${EAL[@]}" -l "$SERVER_CPU" --file-prefix ${TAG}a6s \
    --vdev net_memif0,role=server,socket=$SOCK > "$OUT/serve-memif6" 2>&1 &
SPID=$!; PIDS+=($SPID); wait_ready "$OUT/serve-memif6"
DST='[2001:2::1]:80'
SRC_SYN=2001:2:0:4::/120 SRC_HS=2001:2:0:5::/120 SRC_MIXED=2001:2:0:6::/120
run_suite memif6 "" "net_memif0,role=client,socket=$SOCK" cpu_a
kill -INT $SPID; wait $SPID || true
DST=198.18.0.1:80
SRC_SYN=198.18.1.0/24 SRC_HS=198.18.2.0/24 SRC_MIXED=198.18.3.0/24

# (b) dlisten on a veth through af_packet: client ns <-> server ns
newns ${TAG}c; newns ${TAG}s
ip link add ${TAG}vc netns ${TAG}c type veth peer name ${TAG}vs netns ${TAG}s
ip netns exec ${TAG}c ip link set ${TAG}vc up
ip netns exec ${TAG}s ip link set ${TAG}vs up
ip netns exec ${TAG}s "$BIN" serve --addr 198.18.0.1 --listen 198.18.0.1:80 --backlog 4096 --cores "$SERVER_CPU" \
    -- "${EAL[@]}" -l "$SERVER_CPU" --file-prefix ${TAG}bs --vdev net_af_packet0,iface=${TAG}vs > "$OUT/serve-afp" 2>&1 &
SPID=$!; PIDS+=($SPID); wait_ready "$OUT/serve-afp"
cpu_b() { cpu_of "$SPID"; }
run_suite afpacket ${TAG}c "net_af_packet0,iface=${TAG}vc" cpu_b
kill -INT $SPID; wait $SPID || true
ip netns del ${TAG}s

# (c) the kernel: a python listener on 198.18.0.1 in its own namespace
newns ${TAG}k
# The client's veth went with the server namespace's peer; a fresh pair to the kernel.
ip netns exec ${TAG}c ip link del ${TAG}vc 2>/dev/null || true
ip link add ${TAG}vc netns ${TAG}c type veth peer name ${TAG}vk netns ${TAG}k
ip netns exec ${TAG}c ip link set ${TAG}vc up
CLIENT_IF=${TAG}vc
ip netns exec ${TAG}k ip addr add 198.18.0.1/16 dev ${TAG}vk
ip netns exec ${TAG}k ip link set ${TAG}vk up
ip netns exec ${TAG}k sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
ip netns exec ${TAG}k taskset -c "$SERVER_CPU" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.1", 80)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' & KPID=$!; PIDS+=($KPID)
sleep 0.5
run_suite kernel ${TAG}c "net_af_packet0,iface=$CLIENT_IF" kernel_cpu
kill "$KPID" 2> /dev/null || true; wait "$KPID" 2> /dev/null || true

# (d) the same kernel over IPv6: 2001:2::1/48 on its veth (no DAD: usable at
# once), a python listener on [2001:2::1]:80, sources from 2001:2:0:N::/120
# (255 each: every source is a neighbour entry, Linux's gc_thresh3 is 1024).
ip netns exec ${TAG}k sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.${TAG}vk.disable_ipv6=0
ip netns exec ${TAG}k ip -6 addr add 2001:2::1/48 dev ${TAG}vk nodad
ip netns exec ${TAG}k taskset -c "$SERVER_CPU" python3 -c '
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("2001:2::1", 80)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' & KPID=$!; PIDS+=($KPID)
sleep 0.5
DST='[2001:2::1]:80'
SRC_SYN=2001:2:0:1::/120 SRC_HS=2001:2:0:2::/120 SRC_MIXED=2001:2:0:3::/120
run_suite kernel6 ${TAG}c "net_af_packet0,iface=$CLIENT_IF" kernel_cpu
kill "$KPID" 2> /dev/null || true; wait "$KPID" 2> /dev/null || true

# One table (memif6, kernel6: dlisten over memif and the kernel, over IPv6).
printf '\n%-9s %12s %12s %10s %10s %10s %12s %10s %10s\n' target "SYN-ACK/s" "handshk/s" "p50 us" "p99 us" "p99.9 us" "legit ok %" "syn cores" "hs cores"
for t in memif memif6 afpacket kernel kernel6; do
    printf '%-9s %12s %12s %10s %10s %10s %12s %10.2f %10.2f\n' $t \
        "$(val "$OUT/$t-syn" SynAckPerSec)" "$(val "$OUT/$t-hs" HandshakesPerSec)" \
        "$(lat "$OUT/$t-hs" "connect (syn->synack)" 4)" "$(lat "$OUT/$t-hs" "connect (syn->synack)" 6)" \
        "$(lat "$OUT/$t-hs" "connect (syn->synack)" 7)" "$(val "$OUT/$t-mixed" HandshakePercent)" \
        "${ROW[$t,syn_cores]}" "${ROW[$t,hs_cores]}"
done
per_core() { echo "scale=0; $(val "$OUT/$1-$2" "$3") / (${ROW[$1,$4]} + 0.0001)" | bc -l; }
echo
for t in memif memif6 afpacket; do
    a=$(per_core $t syn SynAckPerSec syn_cores); k=$(per_core kernel syn SynAckPerSec syn_cores)
    b=$(per_core $t hs HandshakesPerSec hs_cores); l=$(per_core kernel hs HandshakesPerSec hs_cores)
    echo "$t/kernel per core: SYN-ACKs $(echo "scale=2; $a / ($k + 1)" | bc -l)x ($a vs $k /s/core), handshakes $(echo "scale=2; $b / ($l + 1)" | bc -l)x ($b vs $l /s/core)"
done
a=$(per_core memif6 syn SynAckPerSec syn_cores); k=$(per_core memif syn SynAckPerSec syn_cores)
b=$(per_core memif6 hs HandshakesPerSec hs_cores); l=$(per_core memif hs HandshakesPerSec hs_cores)
echo "dlisten (memif) IPv6/IPv4 per core: SYN-ACKs $(echo "scale=2; $a / ($k + 1)" | bc -l)x ($a vs $k /s/core), handshakes $(echo "scale=2; $b / ($l + 1)" | bc -l)x ($b vs $l /s/core)"
a=$(per_core kernel6 syn SynAckPerSec syn_cores); k=$(per_core kernel syn SynAckPerSec syn_cores)
b=$(per_core kernel6 hs HandshakesPerSec hs_cores); l=$(per_core kernel hs HandshakesPerSec hs_cores)
echo "kernel IPv6/IPv4 per core: SYN-ACKs $(echo "scale=2; $a / ($k + 1)" | bc -l)x ($a vs $k /s/core), handshakes $(echo "scale=2; $b / ($l + 1)" | bc -l)x ($b vs $l /s/core)"
fi

if want clients; then
for tool in ethtool wrk nginx; do
    command -v $tool > /dev/null || { echo "$tool not found: run deploy/setup.sh" >&2; exit 1; }
done
HZ=$(getconf CLK_TCK)
CNS=${TAG}rc; SNS=${TAG}rs
# Short names: the veth's NAPI thread is "napi/<dev>-<id>", 15 characters at most.
VC=xc$$; VS=xs$$
cpumask() { printf '%x' $((1 << $1)); }
newns $CNS; newns $SNS
ip link add $VC netns $CNS type veth peer name $VS netns $SNS
ip netns exec $CNS ip addr add 198.18.0.2/24 dev $VC
ip netns exec $CNS ip link set $VC up
ip netns exec $SNS ip link set $VS up
# The client's transmit checksum offload off (net_af_xdp and net_af_packet
# would get partial checksums); the same veth settings for every target.
ip netns exec $CNS ethtool -K $VC tx off > /dev/null
# Each side's receive work on its own core: RPS (the XDP path ignores it; its
# NAPI thread is pinned below).
ip netns exec $CNS sh -c "echo $(cpumask "$GEN_CPU") > /sys/class/net/$VC/queues/rx-0/rps_cpus"
ip netns exec $SNS sh -c "echo $(cpumask "$SERVER_CPU") > /sys/class/net/$VS/queues/rx-0/rps_cpus"
ip netns exec $CNS sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
ip netns exec $SNS sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096

# The server's veth NAPI threads (there are some only while an XDP program is on).
napi_pids() { ps -e -o pid=,comm= | awk -v n="napi/$VS-" 'index($2, n) == 1 { print $1 }'; }
# Run the veth's NAPI in a thread of its own, on the server's core (a veth
# has NAPI only with an XDP program on; without, the write fails: no thread).
pin_napi() {
    ip netns exec $SNS sh -c "echo 1 > /sys/class/net/$VS/threaded" 2> /dev/null || return 0
    sleep 0.2
    for k in $(napi_pids); do taskset -pc "$SERVER_CPU" "$k" > /dev/null; done
}
ticks_of() { [ -r "/proc/$1/stat" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" || echo 0; }
# Server CPU ticks: its processes, its NAPI threads, SERVER_CPU's irq+softirq.
server_ticks() {
    local t=0 n=0 p
    for p in "${SERVER_PIDS[@]}"; do t=$((t + $(ticks_of "$p"))); done
    for p in $(napi_pids); do n=$((n + $(ticks_of "$p"))); done
    awk -v c="cpu$SERVER_CPU" -v t=$t -v n=$n '$1 == c { print t, n, $7 + $8 }' /proc/stat
}
# GEN_CPU's irq+softirq ticks (the client's receive work; wrk's own time comes from `times`).
client_soft_ticks() { awk -v c="cpu$GEN_CPU" '$1 == c { print $7 + $8 }' /proc/stat; }

# measure NAME CMD...: run a client command on GEN_CPU (output in
# $OUT/NAME.ROUND) and add to the totals of NAME: what it did (OPS: requests
# or MiB, over SECS, its own duration), and the server's and the client's CPU
# seconds over WALL.
declare -A OPS SECS SRV SRVP SRVN SRVS CLI WALL
ROUND=0
measure() {
    local name=$1; shift
    local f=$OUT/$name.$ROUND s0 s1 c0 c1 t0 t1
    s0=$(server_ticks); c0=$(client_soft_ticks); t0=$(date +%s.%N)
    # `times` prints the children's user and system time on its second line.
    ip netns exec $CNS bash -c '"$@"; times' _ timeout $((CDUR + 30)) taskset -c "$GEN_CPU" "$@" > "$f" 2>&1 || true
    s1=$(server_ticks); c1=$(client_soft_ticks); t1=$(date +%s.%N)
    local kids ops secs
    kids=$(tail -1 "$f" | awk '{ for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } } END { print s + 0 }')
    # wrk: "N requests in 5.09s"; the uploader: "UploadMiB N in S".
    read -r ops secs < <(awk '/ requests in / { sub(/s,$/, "", $4); print $1, $4 } /^UploadMiB / { print $2, $4 }' "$f") \
        || echo "$name round $ROUND: no result: $(tail -3 "$f" | head -1)" >&2
    OPS[$name]=$(echo "${OPS[$name]:-0} + ${ops:-0}" | bc -l)
    SECS[$name]=$(echo "${SECS[$name]:-0} + ${secs:-0}" | bc -l)
    WALL[$name]=$(echo "${WALL[$name]:-0} + $t1 - $t0" | bc -l)
    local p0 n0 q0 p1 n1 q1
    read -r p0 n0 q0 <<< "$s0"; read -r p1 n1 q1 <<< "$s1"
    SRVP[$name]=$(echo "${SRVP[$name]:-0} + ($p1 - $p0) / $HZ" | bc -l)
    SRVN[$name]=$(echo "${SRVN[$name]:-0} + ($n1 - $n0) / $HZ" | bc -l)
    SRVS[$name]=$(echo "${SRVS[$name]:-0} + ($q1 - $q0) / $HZ" | bc -l)
    SRV[$name]=$(echo "${SRVP[$name]} + ${SRVN[$name]} + ${SRVS[$name]}" | bc -l)
    CLI[$name]=$(echo "${CLI[$name]:-0} + $kids + ($c1 - $c0) / $HZ" | bc -l)
    if grep -q "Socket errors" "$f"; then echo "$name round $ROUND: $(grep "Socket errors" "$f")" >&2; fi
}

URL=http://198.18.0.1/
wrk_close() { measure "$1-close" wrk -t1 -c"$CONNS" -d"${CDUR}s" --timeout 2s -H "Connection: close" $URL; }
wrk_keep() { measure "$1-keep" wrk -t1 -c"$CONNS" -d"${CDUR}s" --timeout 2s $URL; }
UPLOAD='
import socket, sys, time
cap, secs = int(sys.argv[1]) << 20, float(sys.argv[2])
buf = bytes(1 << 20)
s = socket.create_connection(("198.18.0.1", 9), timeout=10)
sent, t0 = 0, time.monotonic()
while sent < cap and time.monotonic() - t0 < secs:
    s.sendall(buf); sent += len(buf)
s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass   # the reader closes after the last byte: all of it arrived
print("UploadMiB %d in %.3f" % (sent >> 20, time.monotonic() - t0))
'
upload() { measure "$1-up" python3 -c "$UPLOAD" "$UPLOAD_MB" "$CDUR"; }

# dlisten_on LABEL VDEV APP PORT: start dlisten serve on the server's veth.
dlisten_on() {
    local label=$1 vdev=$2 app=$3 port=$4 log=$OUT/serve-$1-$3.$ROUND extra=$SERVE_ARGS
    [ "$label" = xdp ] && extra="$XDP_SERVE_ARGS $SERVE_ARGS"
    ip netns exec $SNS "$BIN" serve --addr 198.18.0.1 --listen 198.18.0.1:"$port" --app "$app" --backlog 4096 \
        --cores "$SERVER_CPU" --idle-sleep-us "$IDLE_US" $extra \
        -- "${EAL[@]}" -l "$SERVER_CPU" --file-prefix "$TAG$label$app" --vdev "$vdev" > "$log" 2>&1 &
    SPID=$!; PIDS+=($SPID); SERVER_PIDS=($SPID); wait_ready "$log"
    pin_napi
}
dlisten_stop() { kill -INT "$SPID"; wait "$SPID" || true; }

run_dlisten() {
    local t=$1 vdev
    case $t in
        xdp) vdev=net_af_xdp0,iface=$VS${XDP_ARGS:-} ;;
        afpacket) vdev=net_af_packet0,iface=$VS ;;
    esac
    if wantc close || wantc keep; then
        dlisten_on $t "$vdev" http 80
        if wantc close; then wrk_close $t; fi
        if wantc keep; then wrk_keep $t; fi
        dlisten_stop
    fi
    if wantc up; then
        dlisten_on $t "$vdev" discard 9
        upload $t
        dlisten_stop
    fi
    grep -h "partial checksums" "$OUT"/serve-$t-*.$ROUND >&2 || true
}

# The kernel: nginx (one process, no master) and a Python reader, on the same veth and core.
cat > "$OUT/nginx.conf" <<NGX
worker_processes 1;
error_log $OUT/nginx.err;
pid $OUT/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 198.18.0.1:80 backlog=4096;
        location / { return 200 "hello from dlisten\n"; }
    }
}
NGX
run_kernel() {
    ip netns exec $SNS ip addr add 198.18.0.1/24 dev $VS
    ip netns exec $SNS taskset -c "$SERVER_CPU" nginx -c "$OUT/nginx.conf" -g "daemon off; master_process off;" &
    local npid=$!; PIDS+=($npid)
    ip netns exec $SNS taskset -c "$SERVER_CPU" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.1", 9)); s.listen(16)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept()
    while c.recv_into(buf): pass
    c.close()
' & local dpid=$!; PIDS+=($dpid)
    SERVER_PIDS=($npid $dpid)
    sleep 0.5
    ip netns exec $CNS curl -sf --max-time 3 -o /dev/null $URL || { echo "nginx does not answer:" >&2; cat "$OUT/nginx.err" >&2; }
    if wantc close; then wrk_close kernel; fi
    if wantc keep; then wrk_keep kernel; fi
    if wantc up; then upload kernel; fi
    kill "$npid" "$dpid" 2>/dev/null || true
    wait "$npid" "$dpid" 2>/dev/null || true
    ip netns exec $SNS ip addr flush dev $VS
}

# Interleaved rounds, so that load from outside falls on every target alike.
for ROUND in $(seq "$ROUNDS"); do
    for t in $CTARGETS; do
        if [ "$t" = kernel ]; then run_kernel; else run_dlisten "$t"; fi
    done
done

declare -A PC
printf '\nreal clients on one veth: server on cpu %s, client on cpu %s, %s rounds of %s s per test, wrk -t1 -c%s\n' \
    "$SERVER_CPU" "$GEN_CPU" "$ROUNDS" "$CDUR" "$CONNS"
printf '%-9s %-6s %14s %10s %10s %16s   %s\n' target test rate "srv cores" "cli cores" "per srv core" "srv cores: process + NAPI thread + softirq"
for t in $CTARGETS; do
    for k in $CTESTS; do
        n=$t-$k
        unit=/s; [ $k = up ] && unit=MiB/s
        rate=$(echo "${OPS[$n]} / (${SECS[$n]} + 0.0001)" | bc -l)
        srv=$(echo "${SRV[$n]} / ${WALL[$n]}" | bc -l)
        cli=$(echo "${CLI[$n]} / ${WALL[$n]}" | bc -l)
        PC[$n]=$(echo "$rate / ($srv + 0.0001)" | bc -l)
        printf '%-9s %-6s %8.1f %-5s %10.2f %10.2f %10.1f %-5s   %.2f + %.2f + %.2f\n' $t $k "$rate" $unit "$srv" "$cli" "${PC[$n]}" $unit \
            "$(echo "${SRVP[$n]} / ${WALL[$n]}" | bc -l)" "$(echo "${SRVN[$n]} / ${WALL[$n]}" | bc -l)" "$(echo "${SRVS[$n]} / ${WALL[$n]}" | bc -l)"
    done
done
echo
for k in $CTESTS; do
    what=$(case $k in close) echo "handshakes (wrk Connection: close)";; keep) echo "requests (wrk keep-alive)";; up) echo "MiB uploaded (one connection into discard)";; esac)
    line="per server core, $what:"
    for t in $CTARGETS; do
        [ "$t" = kernel ] && continue
        line="$line $t/kernel $(printf '%.2f' "$(echo "${PC[$t-$k]:-0} / (${PC[kernel-$k]:-0} + 0.0001)" | bc -l)")x"
    done
    if [[ " $CTARGETS " == *" xdp "* && " $CTARGETS " == *" afpacket "* ]]; then
        line="$line, xdp/afpacket $(printf '%.2f' "$(echo "${PC[xdp-$k]:-0} / (${PC[afpacket-$k]:-0} + 0.0001)" | bc -l)")x"
    fi
    echo "$line"
done
fi
echo "raw outputs: $OUT"
