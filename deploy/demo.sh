#!/usr/bin/env bash
# The main job, as root on Debian 12: dlisten on a net_tap device inside a
# network namespace this script creates, real Linux clients against it, then
# dlisten's counters. Installs what it needs first (deploy/setup.sh).
# Traffic stays inside the namespace; addresses are from 198.18.0.0/15 only.
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
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

echo "== starting dlisten in namespace $NS on net_tap ($TAP), owning $SERVER, 2 workers"
ip netns exec "$NS" "$BIN" serve --addr "$SERVER" --workers 2 --idle-sleep-us 20 -- \
  --no-huge -m 512 --no-pci --no-shconf --file-prefix "dldemo$$" \
  --vdev "net_tap0,iface=$TAP" --log-level lib.eal:error >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  grep -q "dlisten: ready" "$LOG" && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "dlisten exited early" >&2; exit 1; }
  sleep 0.1
done
grep "^dlisten:" "$LOG"
ip -n "$NS" addr add "$CLIENT/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up

echo
echo "== the Linux kernel ($CLIENT) pings dlisten ($SERVER)"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 "$SERVER" || true
echo
echo "== the kernel's TCP client connects to a closed port: dlisten answers RST (connection refused)"
ip netns exec "$NS" nc -z -v -w 2 "$SERVER" 80 || true
echo
echo "== the kernel's UDP to a closed port: ICMP port unreachable"
ip netns exec "$NS" /usr/bin/python3 -c "
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.connect(('$SERVER', 9)); u.send(b'hello')
try:
    u.recv(64); print('answered?!')
except ConnectionRefusedError:
    print('udp to $SERVER:9 -> connection refused (ICMP port unreachable)')
" || true
echo
echo "== neighbour table of the kernel side"
ip -n "$NS" neigh show dev "$TAP"
echo
echo "== stopping dlisten (SIGINT) and its counters"
kill -INT "$PID"
wait "$PID" || true
PID=""
sed -n '/^dlisten: stopping/,$p' "$LOG"
