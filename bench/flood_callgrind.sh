#!/usr/bin/env bash
# Instructions per flood SYN and per checked reply of `dlisten flood`,
# counted by callgrind (repeatable, unlike wall-clock time on a shared
# machine). The generator's work only: the next SYN (tuple, ISN, flow slot)
# and its frame from the template; a SYN-ACK parsed and checked against its
# flow; over IPv4 (syn, reply) and IPv6 (syn6, reply6). DPDK's part (mbuf
# allocation, the PMD's TX) is not in these figures:
# bench/flood_memif.sh times the whole path.
#
# Each mode runs examples/flood_syn twice, LO and HI packets, only
# flood_burst / check_burst collected, and
#     Ir per packet = (Ir(HI) - Ir(LO)) / (HI - LO)
# so setup cancels out.
#
# Then the whole send path, DPDK included: `dlisten flood --mode syn` under
# callgrind sending LO and HI SYNs over memif to examples/memif_sink (which
# runs natively, so it always keeps up), only the generator's loop
# (flood::drive: RX polls, the generator, the template, mbuf allocation,
# memif's TX) collected, without the end-of-run sweep of the flow table
# (Generator::finish, toggled off again). The ring has 8192 slots and the
# counts stay below that (MEMIF_LO, MEMIF_HI), so the ring never fills
# whatever the sink's scheduling: a full ring would add polls that depend
# on the machine's load. Root is needed for DPDK's memif socket.
#
# usage: bench/flood_callgrind.sh [LO HI]      (default 100000 200000)
set -euo pipefail
cd "$(dirname "$0")/.."

LO=${1:-100000}
HI=${2:-200000}
MEMIF_LO=2000
MEMIF_HI=6000
OUT=bench/out
mkdir -p "$OUT"

command -v valgrind >/dev/null || { echo "flood_callgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --example flood_syn >&2
BIN=target/release/examples/flood_syn

ir() { # mode function count -> collected Ir
  local f="$OUT/callgrind.flood-$1.$3.out"
  valgrind --tool=callgrind --callgrind-out-file="$f" --toggle-collect="*$2*" "$BIN" "$1" "$3" \
    >"$OUT/run.flood-$1.$3.log" 2>"$OUT/valgrind.flood-$1.$3.log" || {
    echo "flood_callgrind.sh: $1 $3 failed:" >&2
    cat "$OUT/run.flood-$1.$3.log" >&2
    exit 1
  }
  grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}'
}

cargo build --release --bin dlisten --example memif_sink >&2
EAL=(--no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error)

ir_memif() { # count -> collected Ir of the generator's loop
  local f="$OUT/callgrind.flood-memif.$1.out" sock
  sock=$(mktemp -u /tmp/dlflood-cg-XXXXXX.sock)
  target/release/examples/memif_sink 300 -- "${EAL[@]}" -l 0 --file-prefix "dlcgsink$$" \
    --vdev "net_memif0,role=server,socket=$sock,rsize=13" >"$OUT/run.flood-memif-sink.$1.log" 2>&1 &
  local sink=$!
  sleep 2
  if ! valgrind --tool=callgrind --callgrind-out-file="$f" --toggle-collect='*flood*drive*' --toggle-collect='*Generator*finish*' \
    target/release/dlisten flood --mode syn --dst 198.18.0.1:80 --dst-mac 02:00:00:00:00:01 --count "$1" \
    --duration 200 --timeout-ms 1 -- "${EAL[@]}" -l 1 --file-prefix "dlcgflood$$" \
    --vdev "net_memif0,role=client,socket=$sock,rsize=13" >"$OUT/run.flood-memif.$1.log" 2>&1 \
    || ! grep -q "SynSent  *$1\$" "$OUT/run.flood-memif.$1.log"; then
    kill -INT "$sink"; wait "$sink" || true; rm -f "$sock"
    echo "flood_callgrind.sh: memif $1 failed:" >&2
    cat "$OUT/run.flood-memif.$1.log" >&2
    exit 1
  fi
  kill -INT "$sink"; wait "$sink" || true; rm -f "$sock"
  grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}'
}

row() { awk -v m="$1" -v lo="$2" -v hi="$3" -v a="$4" -v b="$5" 'BEGIN { printf "%-8s %8s %8s %12s %12s %10.1f\n", m, lo, hi, a, b, (b - a) / (hi - lo) }'; }
printf '%-8s %8s %8s %12s %12s %10s\n' mode lo hi "Ir(lo)" "Ir(hi)" Ir/pkt
for spec in syn:flood_burst reply:check_burst syn6:flood_burst reply6:check_burst; do
  mode=${spec%%:*} fn=${spec#*:}
  row "$mode" "$LO" "$HI" "$(ir "$mode" "$fn" "$LO")" "$(ir "$mode" "$fn" "$HI")"
done
row memif "$MEMIF_LO" "$MEMIF_HI" "$(ir_memif "$MEMIF_LO")" "$(ir_memif "$MEMIF_HI")"
