#!/usr/bin/env bash
# SYNs per second `dlisten flood` offers from one core over memif, against
# a sink that only drops (examples/memif_sink.rs): the generator's own
# limit, with no server in the way. Two DPDK processes joined by a memif
# socket in /tmp, --no-huge; no kernel interface, nothing leaves the machine.
#
# The flood runs on lcore FLOOD_CORE, the sink on SINK_CORE. The figures:
# the flood's SynPerSec (over its sending window), the sink's received
# rate, and the generator's runtime (busy share, capacity = frames sent per
# busy second, clocks per stage). Output and JSON in bench/out/.
#
# With SINK=null, the flood sends to DPDK's net_null PMD instead (frees
# every frame, no copy, no second process): the generator alone, with
# nothing else on the path that could be the limit.
#
# With FAMILY=ipv6, the SYNs are IPv6 ([2001:2::1]:80 from 2001:2:0:1::/120).
#
# usage: [SINK=memif|null] [FAMILY=ipv4|ipv6] bench/flood_memif.sh [SECS] [EXTRA FLOOD ARGS...]   (default 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
shift || true
# log2 of the memif ring: 4096 slots, so that the sink being descheduled
# for a moment does not stall the sender at once (1024, the default, fills
# in 100 us at 10 Mpps). 14, memif's largest, made TX take one frame per
# call here: avoid it.
RSIZE=${RSIZE:-12}
# The flood runs at this niceness (a heavy command on a shared machine);
# the sink at the caller's, so that it is not the first to starve: a sink
# that falls behind fills the ring and the figure is the sink's.
FLOOD_NICE=${FLOOD_NICE:-10}
FLOOD_CORE=${FLOOD_CORE:-1}
SINK_CORE=${SINK_CORE:-0}
OUT=bench/out
mkdir -p "$OUT"
case ${FAMILY:-ipv4} in
  ipv4) ADDRS=(--dst 198.18.0.1:80 --src 198.18.1.0/24) ;;
  ipv6) ADDRS=(--dst '[2001:2::1]:80' --src 2001:2:0:1::/120) ;;
  *) echo "FAMILY is ipv4 or ipv6" >&2; exit 2 ;;
esac

nice -n 10 cargo build --release --bin dlisten --example memif_sink >&2
EAL=(--no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error)

if [ "${SINK:-memif}" = null ]; then
  nice -n "$FLOOD_NICE" timeout $((SECS + 30)) target/release/dlisten flood --mode syn "${ADDRS[@]}" \
    --dst-mac 02:00:00:00:00:01 --duration "$SECS" --timeout-ms 1 --json "$OUT/flood_null.json" "$@" \
    -- "${EAL[@]}" -l "$FLOOD_CORE" --file-prefix "dlflood$$" --vdev net_null0,no-rx=1 \
    >"$OUT/flood_null.txt" 2>&1 || { cat "$OUT/flood_null.txt" >&2; exit 1; }
  grep -E '^flood: +[0-9]+s|SynSent|SynPerSec|TxNoMbuf|TxDropped|^runtime|^  (stage|rx|check|build|tx) ' "$OUT/flood_null.txt"
  exit 0
fi

SOCK=$(mktemp -u /tmp/dlflood-bench-XXXXXX.sock)

target/release/examples/memif_sink $((SECS + 10)) -- "${EAL[@]}" -l "$SINK_CORE" \
  --file-prefix "dlsink$$" --vdev "net_memif0,role=server,socket=$SOCK,rsize=$RSIZE" >"$OUT/flood_memif.sink.txt" 2>&1 &
SINK=$!
cleanup() { kill -INT "$SINK" 2>/dev/null || true; wait "$SINK" 2>/dev/null || true; rm -f "$SOCK"; }
trap cleanup EXIT
sleep 2

nice -n "$FLOOD_NICE" timeout $((SECS + 30)) target/release/dlisten flood --mode syn "${ADDRS[@]}" \
  --dst-mac 02:00:00:00:00:01 --duration "$SECS" --timeout-ms 1 --json "$OUT/flood_memif.json" "$@" \
  -- "${EAL[@]}" -l "$FLOOD_CORE" --file-prefix "dlflood$$" --vdev "net_memif0,role=client,socket=$SOCK,rsize=$RSIZE" \
  >"$OUT/flood_memif.txt" 2>&1 || { cat "$OUT/flood_memif.txt" >&2; exit 1; }
cleanup
trap - EXIT

grep -E '^flood: +[0-9]+s' "$OUT/flood_memif.txt"
grep -E 'SynSent|SynPerSec|TxNoMbuf|TxDropped|^runtime|^  (stage|rx|check|build|tx) ' "$OUT/flood_memif.txt"
grep -E '^sink: received' "$OUT/flood_memif.sink.txt"
