#!/usr/bin/env bash
# The main job, as root on Debian 12: dlisten on a net_tap device inside a
# network namespace this script creates, real Linux clients against it, then
# dlisten's counters. Installs what it needs first (deploy/setup.sh).
# Traffic stays inside the namespace; addresses are from 198.18.0.0/15 and
# 2001:2::/48 only.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/demo.sh: run as root (it creates a network namespace and a tap device)" >&2
  exit 1
fi
./deploy/setup.sh
echo "== building dlisten (release)"
cargo build --release --quiet
BIN=target/release/dlisten

NS="dldemo$$"
TAP="dldemo$$"
SERVER=198.18.0.1
CLIENT=198.18.0.2
SERVER6=2001:2::1
CLIENT6=2001:2::2
LOG=$(mktemp -t dlisten-demo.XXXXXX)
PID=""

cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -INT "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
# IPv6 on, without router solicitations or duplicate address detection to wait for.
ip netns exec "$NS" sysctl -qw net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.default.accept_ra=0 \
  net.ipv6.conf.default.accept_dad=0

SOCK="/run/dlisten/dldemo$$.sock"
HGRM=$(mktemp -d -t dlisten-hgrm.XXXXXX)
echo "== starting dlisten in namespace $NS on net_tap ($TAP): owns $SERVER and $SERVER6, serves http on [::]:80 (IPv4 too), 2 workers"
ip netns exec "$NS" "$BIN" serve --addr "$SERVER" --addr "$SERVER6" --listen "[::]:80" --app http --backlog 64 \
  --workers 2 --idle-sleep-us 20 --hgrm-dir "$HGRM" --control-socket "$SOCK" -- \
  --no-huge -m 512 --no-pci --no-shconf --file-prefix "dldemo$$" \
  --vdev "net_tap0,iface=$TAP" --log-level lib.eal:error >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  grep -q "dlisten: ready" "$LOG" && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "dlisten exited early" >&2; exit 1; }
  sleep 0.1
done
grep -E "^(dlisten:|State|LISTEN)" "$LOG"
ip -n "$NS" addr add "$CLIENT/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up
ip -n "$NS" -6 addr add "$CLIENT6/64" dev "$TAP" nodad

echo
echo "== the Linux kernel ($CLIENT) pings dlisten ($SERVER)"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 "$SERVER" || true
echo
echo "== a closed port: the kernel's client is refused (RST)"
ip netns exec "$NS" nc -z -v -w 2 "$SERVER" 81 || true
echo
echo "== curl"
ip netns exec "$NS" curl -sS -i --max-time 5 "http://$SERVER/"
echo
echo "== the same listener over IPv6: ping -6 and curl -6 from $CLIENT6"
ip netns exec "$NS" ping -6 -c 3 -i 0.2 -W 2 "$SERVER6" || true
ip netns exec "$NS" curl -6 -sS -i --max-time 5 "http://[$SERVER6]/"
echo
echo "== wrk, keep-alive, 5 s"
ip netns exec "$NS" wrk -t1 -c16 -d5s --latency "http://$SERVER/" | sed -n '1,20p'
echo
echo "== wrk, a new connection per request (Connection: close), 5 s"
ip netns exec "$NS" wrk -t1 -c16 -d5s --latency -H "Connection: close" "http://$SERVER/" | sed -n '1,20p'
echo
echo "== SYN flood: hping3 from a spoofed in-range source (198.18.0.3), 20000 SYNs, while curl keeps working"
ip netns exec "$NS" hping3 -q -S -p 80 -a 198.18.0.3 -i u100 -c 20000 "$SERVER" >/dev/null 2>&1 &
FLOOD=$!
sleep 0.5
ok=0
for _ in $(seq 1 20); do
  ip netns exec "$NS" curl -s --max-time 3 -o /dev/null "http://$SERVER/" && ok=$((ok + 1))
done
echo "curl during the flood: $ok of 20 succeeded"
wait "$FLOOD" || true
echo
echo "== dlisten stats (live, from the control socket)"
"$BIN" stats --socket "$SOCK" || true
echo
echo "== stopping dlisten (SIGINT): counters and latency percentiles"
kill -INT "$PID"
wait "$PID" || true
PID=""
sed -n '/^dlisten: stopping/,$p' "$LOG"
echo
echo "HdrHistogram percentile distributions (.hgrm) are in $HGRM"
