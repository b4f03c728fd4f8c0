#!/usr/bin/env bash
# dlisten vs the Linux kernel listener, measured with `dlisten flood`.
#
#   (a) dlisten serve over net_memif        (two DPDK processes, shared memory)
#   (b) dlisten serve on a veth via net_af_packet
#   (c) the kernel's listener (python, backlog 4096) on the same kind of veth
#
# Every run is bounded (--count and --duration); only 198.18.0.0/15 is used,
# inside namespaces this script creates and removes (trap). Needs root and a
# built binary (cargo build --release, or DLISTEN=target/debug/dlisten).
#
# Usage: bench/compare.sh [SYN_COUNT] [HANDSHAKES]    (defaults 200000, 20000)
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
TAG=dlcmp$$
EAL=(--no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error)
OUT=$(mktemp -d /tmp/$TAG.XXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for ns in ${TAG}c ${TAG}s ${TAG}k; do ip netns del "$ns" 2>/dev/null || true; done
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
    "${pre[@]}" timeout 120 "$BIN" flood --mode "$mode" --dst 198.18.0.1:80 --duration 20 \
        ${RATE:+--rate $RATE} "$@" -- "${EAL[@]}" -l "$GEN_CPU" --file-prefix "$TAG$name" --vdev "$vdev" > "$OUT/$name" 2>&1 \
        || { echo "flood $name failed:" >&2; cat "$OUT/$name" >&2; }
}

# run_suite LABEL CLIENT_NS CLIENT_VDEV CPU_FN: syn, handshake and mixed, with server CPU per run.
declare -A ROW
run_suite() {
    local label=$1 ns=$2 vdev=$3 cpufn=$4
    local c0 c1 t0 t1
    c0=$($cpufn); t0=$(date +%s.%N)
    # Each mode from its own sources: a request sock left by the SYN run would
    # answer a reused tuple with a SYN-ACK for the old ISN.
    flood "$label-syn" "$ns" "$vdev" syn --src 198.18.1.0/24 --count "$SYNS"
    c1=$($cpufn); t1=$(date +%s.%N)
    ROW[$label,syn_cores]=$(echo "($c1 - $c0) / ($t1 - $t0)" | bc -l)
    c0=$($cpufn); t0=$(date +%s.%N)
    flood "$label-hs" "$ns" "$vdev" handshake --src 198.18.2.0/24 --count "$HS" --concurrency 64
    c1=$($cpufn); t1=$(date +%s.%N)
    ROW[$label,hs_cores]=$(echo "($c1 - $c0) / ($t1 - $t0)" | bc -l)
    flood "$label-mixed" "$ns" "$vdev" mixed --src 198.18.3.0/24 --count "$SYNS" --concurrency 16
}

# (a) dlisten over memif
SOCK=/run/dlisten/${TAG}a.memif
"$BIN" serve --addr 198.18.0.1 --listen 198.18.0.1:80 --backlog 4096 --cores "$SERVER_CPU" \
    -- "${EAL[@]}" -l "$SERVER_CPU" --file-prefix ${TAG}as \
    --vdev net_memif0,role=server,socket=$SOCK > "$OUT/serve-memif" 2>&1 &
SPID=$!; PIDS+=($SPID); wait_ready "$OUT/serve-memif"
cpu_a() { cpu_of "$SPID"; }
run_suite memif "" "net_memif0,role=client,socket=$SOCK" cpu_a
kill -INT $SPID; wait $SPID || true

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
' & PIDS+=($!)
sleep 0.5
run_suite kernel ${TAG}c "net_af_packet0,iface=$CLIENT_IF" kernel_cpu

# One table.
printf '\n%-9s %12s %12s %10s %10s %10s %12s %10s %10s\n' target "SYN-ACK/s" "handshk/s" "p50 us" "p99 us" "p99.9 us" "legit ok %" "syn cores" "hs cores"
for t in memif afpacket kernel; do
    printf '%-9s %12s %12s %10s %10s %10s %12s %10.2f %10.2f\n' $t \
        "$(val "$OUT/$t-syn" SynAckPerSec)" "$(val "$OUT/$t-hs" HandshakesPerSec)" \
        "$(lat "$OUT/$t-hs" "connect (syn->synack)" 4)" "$(lat "$OUT/$t-hs" "connect (syn->synack)" 6)" \
        "$(lat "$OUT/$t-hs" "connect (syn->synack)" 7)" "$(val "$OUT/$t-mixed" HandshakePercent)" \
        "${ROW[$t,syn_cores]}" "${ROW[$t,hs_cores]}"
done
per_core() { echo "scale=0; $(val "$OUT/$1-$2" "$3") / (${ROW[$1,$4]} + 0.0001)" | bc -l; }
echo
for t in memif afpacket; do
    a=$(per_core $t syn SynAckPerSec syn_cores); k=$(per_core kernel syn SynAckPerSec syn_cores)
    b=$(per_core $t hs HandshakesPerSec hs_cores); l=$(per_core kernel hs HandshakesPerSec hs_cores)
    echo "$t/kernel per core: SYN-ACKs $(echo "scale=2; $a / ($k + 1)" | bc -l)x ($a vs $k /s/core), handshakes $(echo "scale=2; $b / ($l + 1)" | bc -l)x ($b vs $l /s/core)"
done
echo "raw outputs: $OUT"
