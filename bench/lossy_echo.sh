#!/usr/bin/env bash
# One connection echoing MiB through a lossy, reordering link: dlisten's echo
# app (net_af_packet) against a kernel echo server (Python) on the same link.
#
#   client ns [veth] <-> relay ns (tests/common/lossy_relay.py: LOSS % of the
#   frames dropped and REORDER % held back behind the next 3, each way) <-> [veth] server ns
#
# This kernel has no sch_netem, so the relay is a userspace AF_PACKET bridge
# (it adds its own latency and caps the rate; both targets pay it alike).
# Every run is bounded (the relay and the client stop by themselves); only
# 198.18.0.0/15, inside namespaces this script creates and removes (trap).
#
# Usage: bench/lossy_echo.sh [MIB] [LOSS] [REORDER]      (defaults 64 1 5)
#        TARGETS="dlisten kernel" ROUNDS=1 bench/lossy_echo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DLISTEN:-target/release/dlisten}
MIB=${1:-64}; LOSS=${2:-1}; REORDER=${3:-5}
TARGETS=${TARGETS:-dlisten kernel}
ROUNDS=${ROUNDS:-1}
T=dlle$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for ns in ${T}c ${T}r ${T}s; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
for ns in ${T}c ${T}r ${T}s; do ip netns add $ns; ip netns exec $ns ip link set lo up; ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip link add ${T}c0 netns ${T}c type veth peer name ${T}ra netns ${T}r
ip link add ${T}rb netns ${T}r type veth peer name ${T}s0 netns ${T}s
ip netns exec ${T}c ip addr add 198.18.0.2/24 dev ${T}c0
ip netns exec ${T}c ethtool -K ${T}c0 tx off > /dev/null
ip netns exec ${T}s ethtool -K ${T}s0 tx off > /dev/null
for d in c:c0 r:ra r:rb s:s0; do ip netns exec ${T}${d%%:*} ip link set ${T}${d#*:} up; done

CLIENT='
import socket, threading, hashlib, sys, time
n = int(sys.argv[1]) << 20
chunk = bytes((i * 2654435761 >> 13) & 0xff for i in range(1 << 20))
sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
got = 0
s = socket.create_connection(("198.18.0.1", 7), timeout=20)
def rd():
    global got
    while got < n:
        b = s.recv(1 << 20)
        if not b: break
        got_hash.update(b); got += len(b)
t = threading.Thread(target=rd); t.start()
t0 = time.monotonic()
for i in range(n >> 20):
    c = chunk[i:] + chunk[:i]; sent_hash.update(c); s.sendall(c)
t.join(120)
dt = time.monotonic() - t0
ok = got == n and got_hash.digest() == sent_hash.digest()
print("EchoMiB %d in %.2f s: %.2f MiB/s each way, %s" % (n >> 20, dt, n / dt / (1 << 20), "intact" if ok else "CORRUPT"))
'
relay() {
    ip netns exec ${T}r timeout 200 python3 tests/common/lossy_relay.py ${T}ra ${T}rb 180 "$LOSS" "$REORDER" "$1" &
    RPID=$!; PIDS+=($RPID); sleep 0.5
}
run() {
    local target=$1 round=$2 spid
    relay "$round"
    case $target in
        dlisten)
            ip netns exec ${T}s "$BIN" serve --addr 198.18.0.1 --listen 198.18.0.1:7 --app echo --cores 1 \
                -- --no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error -l 1 --file-prefix ${T}x \
                --vdev net_af_packet0,iface=${T}s0 > /tmp/$T-serve.log 2>&1 &
            spid=$!; PIDS+=($spid)
            for _ in $(seq 300); do grep -q "dlisten: ready" /tmp/$T-serve.log && break; sleep 0.1; done ;;
        kernel)
            ip netns exec ${T}s ip addr add 198.18.0.1/24 dev ${T}s0
            ip netns exec ${T}s taskset -c 1 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.1", 7)); s.listen(4)
c, _ = s.accept()
while True:
    b = c.recv(1 << 20)
    if not b: break
    c.sendall(b)
' & spid=$!; PIDS+=($spid); sleep 0.5 ;;
    esac
    printf '%-8s round %s: ' "$target" "$round"
    ip netns exec ${T}c timeout 150 taskset -c 0 python3 -c "$CLIENT" "$MIB" 2>&1 | tail -1
    kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
    kill "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true
    [ "$target" = kernel ] && ip netns exec ${T}s ip addr flush dev ${T}s0
    return 0
}
echo "one connection, $MIB MiB echoed, relay: $LOSS % loss, $REORDER % reordered each way"
for r in $(seq "$ROUNDS"); do for t in $TARGETS; do run "$t" "$r"; done; done
