#!/usr/bin/env bash
# Instructions per SYN / per handshake of the engine alone, counted by
# callgrind (repeatable on a noisy machine, unlike wall-clock time).
#
# For each mode the example runs twice, with LO and HI flows; only
# `engine_rx` is collected (--toggle-collect), and
#     Ir per op = (Ir(HI) - Ir(LO)) / (HI - LO)
# so setup and the first table growths cancel out. Top functions per mode
# (callgrind_annotate, inclusive and exclusive) go to bench/out/.
#
# usage: bench/callgrind.sh [LO HI]      (default 10000 20000; ~1.5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

LO=${1:-10000}
HI=${2:-20000}
OUT=bench/out
mkdir -p "$OUT"

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --example engine_syn >&2
BIN=target/release/examples/engine_syn

# label | example mode | extra arguments | counts (empty: LO and HI)
MODES=(
  "queue|queue||"
  "cookie|cookie||"
  "cookie-sw-csum|cookie|--sw-csum|"
  "handshake|handshake||"
  "cookie-handshake|cookie-handshake||"
  # One connection receiving full-sized segments in order (an upload).
  "data|data||"
  # The same SYNs over IPv6 to a dual-stack [::]:80 listener.
  "cookie-ipv6|cookie|--ipv6|"
  "queue-ipv6|queue|--ipv6|"
  # A flood from 2^15 source addresses, past the 16384-entry neighbour
  # table (both counts beyond it: the full-table regime only). ~40 s.
  "cookie-spread-peers|cookie|--spread-peers|20000 30000"
)

ir_of() { # callgrind out file -> total collected Ir
  grep -E '^(summary|totals):' "$1" | head -1 | awk '{print $2}'
}

run() { # label mode count extra
  local label=$1 mode=$2 count=$3 extra=$4 f="$OUT/callgrind.$1.$3.out"
  # The example checks its own counters and fails when the run is not what
  # the mode says; never count a failed run.
  valgrind --tool=callgrind --callgrind-out-file="$f" --toggle-collect='*engine_rx*' \
    "$BIN" "$mode" "$count" $extra >"$OUT/run.$label.$count.log" 2>"$OUT/valgrind.$label.$count.log" || {
    echo "callgrind.sh: $label $count failed, see $OUT/run.$label.$count.log" >&2
    cat "$OUT/run.$label.$count.log" >&2
    exit 1
  }
  ir_of "$f"
}

# callgrind_annotate splits a function by the source file of its inlined
# lines. Self cost: add the pieces up. Inclusive cost: the pieces overlap
# (callees are counted in each), so take the largest. Per op: / op count.
per_function() { # ops self|inclusive
  python3 -c '
import re, sys
ops, kind = int(sys.argv[1]), sys.argv[2]
tot = {}
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*?):(.*?)(?: \[.*\])?$", line)
    if not m or m.group(2) == "PROGRAM TOTALS":
        continue
    fn = re.sub(r" \([\d,]+x\)$", "", m.group(3))
    ir = int(m.group(1).replace(",", ""))
    tot[fn] = tot.get(fn, 0) + ir if kind == "self" else max(tot.get(fn, 0), ir)
for fn, ir in sorted(tot.items(), key=lambda kv: -kv[1])[:30]:
    print(f"{ir / ops:9.1f}  {fn}")
' "$1" "$2"
}

printf '%-20s %8s %8s %14s %14s %10s\n' mode lo hi "Ir(lo)" "Ir(hi)" "Ir/op"
for m in "${MODES[@]}"; do
  IFS='|' read -r label mode extra counts <<<"$m"
  read -r lo_n hi_n <<<"${counts:-$LO $HI}"
  lo=$(run "$label" "$mode" "$lo_n" "$extra")
  hi=$(run "$label" "$mode" "$hi_n" "$extra")
  per_op=$(( (hi - lo) / (hi_n - lo_n) ))
  printf '%-20s %8s %8s %14s %14s %10s\n' "$label" "$lo_n" "$hi_n" "$lo" "$hi" "$per_op"
  # Per-function view of the ops between the two runs: the hi run's
  # profile per op (setup is not collected; table growth is included).
  for kind in self inclusive; do
    incl=no; [ "$kind" = inclusive ] && incl=yes
    callgrind_annotate --auto=no --threshold=100 --inclusive=$incl "$OUT/callgrind.$label.$hi_n.out" 2>/dev/null \
      | per_function "$hi_n" "$kind" >"$OUT/top.$label.$kind.txt" || true
  done
done
echo "per-function Ir per op (self and inclusive, from the hi run): $OUT/top.<mode>.{self,inclusive}.txt"
