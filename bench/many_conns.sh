#!/usr/bin/env bash
# Many idle HTTP keep-alive connections: what each costs dlisten (RSS) and
# what it costs the kernel's listener (slab and socket memory) for the same
# kernel clients.
#
#   (a) dlisten serve (1 worker, --app http, default limits) on net_tap in a
#       namespace; the clients are that namespace's kernel.
#   (b) the kernel's listener (bench/many_conns.py server, epoll) in a second
#       namespace behind a veth pair; the same clients in a third.
#
# The clients (bench/many_conns.py client) open COUNT connections from
# several source addresses in 198.18.0.0/15 (25 000 each), send one request
# each, read the answer, and stay idle. Everything is bounded (COUNT and
# DEADLINE seconds) and lives in namespaces this script creates and removes.
# Needs root and a release build (cargo build --release).
#
# Usage: bench/many_conns.sh [COUNT]     (default 100000; DEADLINE=600)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DLISTEN:-target/release/dlisten}
N=${1:-100000}
DEADLINE=${DEADLINE:-600}
PY=bench/many_conns.py
TAG=dlmc$$
SERVER=198.18.0.1
EAL=(--no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error)
OUT=$(mktemp -d /tmp/$TAG.XXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in ${TAG}d ${TAG}k ${TAG}c; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || { echo "bench/many_conns.sh: run as root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release" >&2; exit 1; }
# A file per connection: the clients (and the kernel's listener) are split
# into processes of at most PER_PROC connections, under the open-file limit.
ulimit -n "$(ulimit -Hn)"
PER_PROC=$(( $(ulimit -n) - 1000 ))
[ "$PER_PROC" -gt 15000 ] && PER_PROC=15000
PROCS=$(( (N + PER_PROC - 1) / PER_PROC ))
# One source address per client process (15 000 ports each).
SOURCES=()
for i in $(seq 1 "$PROCS"); do SOURCES+=("198.18.1.$i"); done

newns() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.ip_local_port_range="10000 64999" \
        net.ipv4.tcp_max_syn_backlog=4096 net.core.somaxconn=4096
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
slab_kb() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }
sockmem_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }'; }

# clients NS: PROCS client processes in NS, each COUNT/PROCS connections
# from its own source address; waits until all are idle. Sets READY="ok failed".
clients() {
    local ns=$1 k left=$N n ok=0 failed=0
    CLIENT_PIDS=()
    for k in $(seq 1 "$PROCS"); do
        n=$(( left < PER_PROC ? left : PER_PROC )); left=$((left - n))
        mkfifo "$OUT/$ns.$k.in"
        ip netns exec "$ns" timeout $((DEADLINE + 30)) python3 "$PY" client "$SERVER" 80 "$n" "${SOURCES[k - 1]}" "$DEADLINE" \
            < "$OUT/$ns.$k.in" > "$OUT/$ns.$k.client" 2>&1 &
        CLIENT_PIDS+=("$!")
        PIDS+=("$!")
        # Held open for writing until release_clients: EOF tells it to stop.
        eval "exec {fd_$k}> $OUT/$ns.$k.in"
    done
    for k in $(seq 1 "$PROCS"); do
        for _ in $(seq 1 $((DEADLINE * 10))); do
            grep -q '^ready' "$OUT/$ns.$k.client" && break
            kill -0 "${CLIENT_PIDS[k - 1]}" 2>/dev/null || break
            sleep 0.1
        done
        grep -q '^ready' "$OUT/$ns.$k.client" || { echo "client $k did not finish:" >&2; cat "$OUT/$ns.$k.client" >&2; exit 1; }
        ok=$((ok + $(awk '/^ready/ { print $2 }' "$OUT/$ns.$k.client")))
        failed=$((failed + $(awk '/^ready/ { print $3 }' "$OUT/$ns.$k.client")))
    done
    READY="$ok $failed"
}
release_clients() {
    local k v
    for k in $(seq 1 "$PROCS"); do v=fd_$k; eval "exec ${!v}>&-"; done
    for p in "${CLIENT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

echo "== (a) dlisten: $N idle keep-alive connections from ${#SOURCES[@]} source addresses ($PROCS client processes)"
newns ${TAG}d
# Idle for as long as the run takes: a keep-alive timeout (armed, so its
# timer is in the figure) longer than the run.
ip netns exec ${TAG}d "$BIN" serve --addr $SERVER --listen $SERVER:80 --app http --workers 1 --backlog 4096 \
    --http-keepalive-timeout 600 --somaxconn 4096 --max-syn-backlog 4096 --idle-sleep-us 20 --control-socket "/run/dlisten/$TAG.sock" -- \
    "${EAL[@]}" -l 1 --file-prefix $TAG --vdev "net_tap0,iface=${TAG}t" > "$OUT/dlisten" 2>&1 &
DL=$!
PIDS+=("$DL")
for _ in $(seq 300); do grep -q "dlisten: ready" "$OUT/dlisten" && break; sleep 0.1; done
grep -q "dlisten: ready" "$OUT/dlisten" || { cat "$OUT/dlisten" >&2; exit 1; }
ip -n ${TAG}d addr add 198.18.0.2/16 dev ${TAG}t
for s in "${SOURCES[@]}"; do ip -n ${TAG}d addr add "$s/16" dev ${TAG}t; done
ip -n ${TAG}d link set ${TAG}t up
ip netns exec ${TAG}d curl -s --max-time 5 -o /dev/null "http://$SERVER/" || { echo "dlisten does not answer" >&2; exit 1; }
sleep 1
RSS0=$(rss_kb $DL); SLAB0=$(slab_kb); T0=$(date +%s.%N)
clients ${TAG}d
T1=$(date +%s.%N)
sleep 2
RSS1=$(rss_kb $DL); SLAB1=$(slab_kb)
read -r OK FAILED <<< "$READY"
DL_PER=$(per_conn "$RSS1" "$RSS0" "$OK")
CL_SLAB=$(per_conn "$SLAB1" "$SLAB0" "$OK")
printf "idle connections: %s (failed %s) in %.1f s\n" "$OK" "$FAILED" "$(echo "$T1 - $T0" | bc)"
echo "dlisten RSS: $((RSS0 / 1024)) -> $((RSS1 / 1024)) MiB: $DL_PER bytes per idle connection"
echo "kernel slab (the clients' side): $CL_SLAB bytes per connection"
release_clients
kill -INT $DL
wait $DL || true
echo "dlisten's exit report (counters that stayed 0 are not listed):"
grep -E "DlConnMemRefused|DlConnLimitRefused|TcpPassiveOpens|TcpExtListenDrops" "$OUT/dlisten" || true
ip netns del ${TAG}d

echo
echo "== (b) the kernel's listener: the same $N clients over a veth pair"
newns ${TAG}k
newns ${TAG}c
ip link add ${TAG}a netns ${TAG}k type veth peer name ${TAG}b netns ${TAG}c
ip -n ${TAG}k addr add $SERVER/16 dev ${TAG}a
ip -n ${TAG}c addr add 198.18.0.2/16 dev ${TAG}b
for s in "${SOURCES[@]}"; do ip -n ${TAG}c addr add "$s/16" dev ${TAG}b; done
ip -n ${TAG}k link set ${TAG}a up
ip -n ${TAG}c link set ${TAG}b up
KS=()
for k in $(seq 1 "$PROCS"); do
    # No `timeout` in between: $! must be the listener itself (it stops on its own deadline).
    ip netns exec ${TAG}k python3 "$PY" server $SERVER 80 $((DEADLINE + 30)) > "$OUT/kserver.$k" 2>&1 &
    KS+=("$!")
    PIDS+=("$!")
done
for k in $(seq 1 "$PROCS"); do
    for _ in $(seq 100); do grep -q listening "$OUT/kserver.$k" && break; sleep 0.1; done
done
sleep 1
krss() { local t=0 p; for p in "${KS[@]}"; do t=$((t + $(rss_kb "$p"))); done; echo $t; }
KRSS0=$(krss); SLAB0=$(slab_kb); MEM0=$(sockmem_pages)
clients ${TAG}c
sleep 2
KRSS1=$(krss); SLAB1=$(slab_kb); MEM1=$(sockmem_pages)
read -r KOK KFAILED <<< "$READY"
BOTH_SLAB=$(per_conn "$SLAB1" "$SLAB0" "$KOK")
echo "idle connections: $KOK (failed $KFAILED)"
echo "kernel slab, clients and listener together: $BOTH_SLAB bytes per connection;" \
     "the listener's share (minus the clients' from (a)): $((BOTH_SLAB - CL_SLAB)) bytes"
echo "kernel TCP buffer memory (sockstat mem): $MEM0 -> $MEM1 pages"
echo "python listener RSS (user space, not the kernel): $(per_conn "$KRSS1" "$KRSS0" "$KOK") bytes per connection"
release_clients
echo
echo "summary: dlisten $DL_PER B/conn (RSS); kernel listener $((BOTH_SLAB - CL_SLAB)) B/conn (slab) + socket buffers"
