#!/usr/bin/env bash
# Instructions per flood SYN and per checked reply of `dlisten flood`,
# counted by callgrind (repeatable, unlike wall-clock time on a shared
# machine). The generator's work only: the next SYN (tuple, ISN, flow slot)
# and its frame from the template; a SYN-ACK parsed and checked against its
# flow. DPDK's part (mbuf allocation, the PMD's TX) is not in these figures:
# bench/flood_memif.sh times the whole path.
#
# Each mode runs examples/flood_syn twice, LO and HI packets, only
# flood_burst / check_burst collected, and
#     Ir per packet = (Ir(HI) - Ir(LO)) / (HI - LO)
# so setup cancels out.
#
# usage: bench/flood_callgrind.sh [LO HI]      (default 100000 200000)
set -euo pipefail
cd "$(dirname "$0")/.."

LO=${1:-100000}
HI=${2:-200000}
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

printf '%-8s %12s %12s %10s\n' mode "Ir($LO)" "Ir($HI)" Ir/pkt
for spec in syn:flood_burst reply:check_burst; do
  mode=${spec%%:*} fn=${spec#*:}
  lo=$(ir "$mode" "$fn" "$LO")
  hi=$(ir "$mode" "$fn" "$HI")
  printf '%-8s %12s %12s %10.1f\n' "$mode" "$lo" "$hi" "$(echo "($hi - $lo) / ($HI - $LO)" | bc -l)"
done
