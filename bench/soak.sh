#!/usr/bin/env bash
# A soak: mixed load against one `dlisten serve` for DURATION seconds, then a
# check that everything it held came back and nothing was lost.
#
#   client ns [veth 198.18.0.2/16] <-> [veth, net_af_packet] server ns (dlisten 198.18.0.1, 1 worker)
#
# `serve` runs one application, so the run has two phases, each with its own
# server and its own idle -> peak -> after check:
#   http (DURATION * (100 - ECHO_SHARE) %): wrk keep-alive (-c 50) and wrk with
#     `Connection: close` (-c 10) on :80, slowhttptest (slow headers and slow
#     bodies, alternating), a SYN flood, vanishing clients;
#   echo (the rest): clients that send 1 B .. 4 MiB and check they get exactly
#     those bytes back (one of them reads slowly), the SYN flood, vanishing
#     clients in mid-transfer.
# SYN flood: hping3 from spoofed sources 198.18.4.x (no interface has them,
# so nobody answers the SYN-ACKs: request socks fill, cookies), at FLOOD_RATE
# SYN/s, by default half the capacity a 3 s probe measured (received packets
# per busy second of the worker), in 10 s chunks each bounded by -c and timeout.
# Vanishing clients: every VANISH_EVERY s a new address 198.18.2-3.x/32 opens
# VANISH_N connections (http: idle keep-alive, half a request head, requests
# whose answers it never reads; echo: 8 MiB both ways), then the address is
# removed and the process killed (-9): nothing answers any more, so the server
# must time them out, retransmit and give up (--retries2 RETRIES2).
#
# Every SAMPLE s one CSV row (bench/out/soak-<date>.csv): RSS, the gauges of
# `dlisten stats --json` (connections, request socks, TIME_WAIT, buffer bytes,
# mbufs in use), accept and SYN queue lengths, the drop and loss counters.
# After each phase: the load stops, then up to SETTLE_MAX s (at least
# SETTLE_MIN: TIME_WAIT is 60 s, a request sock lives 63 s) for connections,
# request socks, TIME_WAIT and buffer bytes to return to their idle values and
# mbufs in use to within MBUF_TOL of idle. PASS needs, per phase: those back;
# RSS after <= idle + RSS_TOL_MB and no growth in the last quarter of the load
# beyond the first half's peak + RSS_PLATEAU_MB; no non-2xx answer and no
# echo mismatch or stall; TcpInCsumErrors, DlConnMemRefused and
# TcpExtTCPTimeWaitOverflow 0; the server alive, no panic, curl answered and
# /health 200 after the load.
#
# Only 198.18.0.0/15, inside namespaces this script creates and removes (trap);
# every load loop stops by itself at the phase's end.
#
# Usage (root): bench/soak.sh                 # 30 minutes
#               DURATION=180 bench/soak.sh    # a short check
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DLISTEN:-target/release/dlisten}
DURATION=${DURATION:-1800}
ECHO_SHARE=${ECHO_SHARE:-20}
SAMPLE=${SAMPLE:-10}
CHUNK=${CHUNK:-60}
FLOOD_RATE=${FLOOD_RATE:-}
VANISH_EVERY=${VANISH_EVERY:-20}
VANISH_N=${VANISH_N:-12}
ECHO_THREADS=${ECHO_THREADS:-4}
RETRIES2=${RETRIES2:-6}
APP_TIMEOUT=${APP_TIMEOUT:-30}
SETTLE_MIN=${SETTLE_MIN:-65}
SETTLE_MAX=${SETTLE_MAX:-300}
RSS_TOL_MB=${RSS_TOL_MB:-64}
RSS_PLATEAU_MB=${RSS_PLATEAU_MB:-16}
MBUF_TOL=${MBUF_TOL:-32}
TOOL=bench/soak_tool.py
PY=${PYTHON:-python3}

[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (namespaces, DPDK)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "soak.sh: $BIN not built (cargo build --release)" >&2; exit 2; }
for t in wrk hping3 slowhttptest curl jq ethtool; do
    command -v $t >/dev/null || { echo "soak.sh: $t missing (deploy/setup.sh)" >&2; exit 2; }
done

T=dlsk$$
S=${T}s; C=${T}c
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/out
CSV=bench/out/soak-$STAMP.csv
LOGD=bench/out/soak-$STAMP
mkdir -p "$LOGD"
T0=$(date +%s)
PIDS=()
SPID=
cleanup() {
    set +e
    touch "$LOGD/stop"
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -n "$SPID" ] && kill -INT "$SPID" 2>/dev/null && sleep 2 && kill -KILL "$SPID" 2>/dev/null
    ip netns del $C 2>/dev/null; ip netns del $S 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add $S; ip netns add $C
for ns in $S $C; do ip -n $ns link set lo up; ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip link add ${T}c0 netns $C type veth peer name ${T}s0 netns $S
ip -n $C addr add 198.18.0.2/16 dev ${T}c0
# The peer's checksum offload would leave TCP checksums unfinished (README: net_af_xdp).
ip netns exec $C ethtool -K ${T}c0 tx off >/dev/null
ip -n $C link set ${T}c0 up; ip -n $S link set ${T}s0 up
# Many connections open and close: room for the client's ephemeral ports.
ip netns exec $C sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1

inc() { ip netns exec $C "$@"; }
now() { date +%s; }
say() { echo "[$(( $(now) - T0 ))s] $*"; }

start_server() { # app port
    local app=$1 port=$2
    PREFIX=${T}$app
    ip netns exec $S nice -n 10 "$BIN" serve --addr 198.18.0.1 --listen 198.18.0.1:$port --app $app \
        --workers 1 --idle-sleep-us 20 --retries2 "$RETRIES2" \
        --http-header-timeout "$APP_TIMEOUT" --http-keepalive-timeout "$APP_TIMEOUT" --http-body-timeout "$APP_TIMEOUT" \
        --metrics 127.0.0.1:9810 \
        -- --no-huge -m 512 --no-pci --no-shconf --log-level lib.eal:error --file-prefix $PREFIX \
        --vdev net_af_packet0,iface=${T}s0 > "$LOGD/serve-$app.log" 2>&1 &
    SPID=$!
    for _ in $(seq 300); do grep -q "dlisten: ready" "$LOGD/serve-$app.log" && return 0; sleep 0.1; done
    echo "soak.sh: dlisten did not start:" >&2; cat "$LOGD/serve-$app.log" >&2; exit 1
}

snap() { $PY $TOOL snap "$BIN" "$PREFIX" "$SPID"; }

# Received packets per busy second during a short flood: what one worker takes.
probe_capacity() { # port
    local a b
    a=$(snap)
    inc timeout 5 nice -n 10 hping3 -q -S -a 198.18.5.1 -p "$1" --flood -c 300000 198.18.0.1 >/dev/null 2>&1 || true
    b=$(snap)
    jq -n --argjson a "$a" --argjson b "$b" \
        '(($b.DlRxFrames - $a.DlRxFrames) / (($b.busy_s - $a.busy_s) | if . > 0 then . else 1 end)) | floor'
}

flood_loop() { # port rate
    local port=$1 rate=$2 k=0 left d iv
    iv=$(( 1000000 / rate )); [ $iv -ge 1 ] || iv=1
    while left=$(( END - $(now) )); [ $left -ge 2 ]; do
        d=$(( left < 10 ? left : 10 ))
        k=$(( k % 254 + 1 ))
        inc timeout $(( d + 2 )) nice -n 10 hping3 -q -S -a 198.18.4.$k -p "$port" -i u$iv -c $(( rate * d )) 198.18.0.1 \
            >> "$LOGD/flood.log" 2>&1 || true
    done
}

wrk_loop() { # keepalive|close conns
    local mode=$1 conns=$2 left d hdr=()
    [ "$mode" = close ] && hdr=(-H 'Connection: close')
    while left=$(( END - $(now) )); [ $left -ge 5 ]; do
        d=$(( left < CHUNK ? left : CHUNK ))
        inc timeout $(( d + 20 )) nice -n 10 wrk -t1 -c"$conns" -d${d}s --timeout 5s "${hdr[@]}" http://198.18.0.1/ \
            >> "$LOGD/wrk-$mode.log" 2>&1 || true
    done
}

slow_loop() {
    local left d mode=-H
    while left=$(( END - $(now) )); [ $left -ge 10 ]; do
        d=$(( left < CHUNK ? left : CHUNK ))
        inc timeout $(( d + 30 )) nice -n 10 slowhttptest $mode -c 100 -r 20 -i 5 -x 16 -s 65536 -p 5 -l $d \
            -u http://198.18.0.1/ >> "$LOGD/slow.log" 2>&1 || true
        if [ $mode = -H ]; then mode=-B; else mode=-H; fi
    done
}

vanish_loop() { # port kind
    local port=$1 kind=$2 k=$VANISH_BASE addr vp out
    while [ $(( END - $(now) )) -ge $(( VANISH_EVERY / 2 + 5 )) ]; do
        k=$(( k + 1 ))
        addr=198.18.$(( 2 + k / 250 )).$(( k % 250 + 1 ))
        out=$LOGD/vanish-$k.out
        ip -n $C addr add $addr/32 dev ${T}c0
        inc nice -n 10 $PY $TOOL vanish $addr 198.18.0.1 "$port" "$kind" "$VANISH_N" > "$out" 2>&1 &
        vp=$!
        for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.1; done
        sleep 2
        # First nothing answers for the address, then the client is gone.
        ip -n $C addr del $addr/32 dev ${T}c0
        kill -KILL $vp 2>/dev/null || true; wait $vp 2>/dev/null || true
        echo "$addr $(grep -o 'ready [0-9]*' "$out" || echo 'ready 0')" >> "$LOGD/vanish-$kind.log"
        sleep $(( VANISH_EVERY - 2 ))
    done
}

FAILS=()
fail() { FAILS+=("$PHASE: $*"); say "FAIL: $*"; }

# phase NAME APP PORT SECONDS
phase() {
    PHASE=$1; local app=$2 port=$3 secs=$4 idle rate cap loads=() p
    say "phase $PHASE: dlisten --app $app on :$port for $secs s"
    start_server "$app" "$port"
    sleep 3
    snap > "$LOGD/idle-$PHASE.json"
    if [ -z "$FLOOD_RATE" ]; then
        cap=$(probe_capacity "$port")
        rate=$(( cap / 2 ))
        say "capacity probe: $cap packets per busy second; SYN flood at $rate/s"
    else
        rate=$FLOOD_RATE; cap=-
    fi
    [ "$rate" -ge 100 ] || rate=100
    echo "$PHASE capacity $cap flood_rate $rate" >> "$LOGD/params.txt"
    rm -f "$LOGD/stop"
    $PY $TOOL sample "$BIN" "$PREFIX" "$SPID" "$PHASE" "$CSV" "$SAMPLE" "$LOGD/stop" "$T0" &
    local sampler=$!; PIDS+=($sampler)
    START=$(now); END=$(( START + secs ))
    flood_loop "$port" "$rate" & loads+=($!)
    vanish_loop "$port" "$app" & loads+=($!)
    if [ "$app" = http ]; then
        wrk_loop keepalive 50 & loads+=($!)
        wrk_loop close 10 & loads+=($!)
        slow_loop & loads+=($!)
    else
        inc nice -n 10 $PY $TOOL echo 198.18.0.1 "$port" "$secs" "$ECHO_THREADS" "$LOGD/echo.json" \
            > "$LOGD/echo.log" 2>&1 & loads+=($!)
    fi
    PIDS+=("${loads[@]}")
    for p in "${loads[@]}"; do wait "$p" || true; done
    LOAD_END=$(( $(now) - T0 ))
    say "load stopped; waiting for TIME_WAIT, request socks and give-ups (${SETTLE_MIN}..${SETTLE_MAX} s)"
    $PY $TOOL settle "$BIN" "$PREFIX" "$SPID" "$LOGD/idle-$PHASE.json" "$SETTLE_MIN" "$SETTLE_MAX" "$MBUF_TOL" \
        > "$LOGD/after-$PHASE.json"
    # Alive and answering?
    local body health
    body=$(inc curl -s -m 5 http://198.18.0.1:$port/ 2>/dev/null || true)
    if [ "$app" = echo ]; then
        body=$(inc timeout 10 $PY -c 'import socket, sys
s = socket.create_connection(("198.18.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"soak-probe"); s.shutdown(socket.SHUT_WR); b = b""
while (c := s.recv(100)): b += c
print(b.decode())' "$port" 2>/dev/null || true)
    fi
    health=$(ip netns exec $S curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:9810/health || true)
    sleep "$SAMPLE"; touch "$LOGD/stop"; wait $sampler 2>/dev/null || true
    kill -0 "$SPID" 2>/dev/null || fail "the server died"
    kill -INT "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=
    evaluate "$app" "$body" "$health"
}

evaluate() { # app body health
    local app=$1 body=$2 health=$3 idle after g
    idle=$(cat "$LOGD/idle-$PHASE.json"); after=$(cat "$LOGD/after-$PHASE.json")
    if grep -qi 'panicked' "$LOGD/serve-$app.log"; then fail "a thread panicked (serve-$app.log)"; fi
    case $app in
        http) [ "$body" = "hello from dlisten" ] || fail "curl after the load got '$body'" ;;
        echo) [ "$body" = "soak-probe" ] || fail "echo after the load got '$body'" ;;
    esac
    [ "$health" = 200 ] || fail "/health answered $health"
    [ "$(jq .settled <<<"$after")" = true ] || fail "not back to idle after $(jq .settle_s <<<"$after") s"
    for g in TcpInCsumErrors DlConnMemRefused TcpExtTCPTimeWaitOverflow; do
        [ "$(jq ".$g" <<<"$after")" = 0 ] || fail "$g = $(jq ".$g" <<<"$after")"
    done
    local rss_idle rss_after
    rss_idle=$(jq .rss_kb <<<"$idle"); rss_after=$(jq .rss_kb <<<"$after")
    [ "$rss_after" -le $(( rss_idle + RSS_TOL_MB * 1024 )) ] || fail "RSS $rss_idle -> $rss_after kB (tolerance $RSS_TOL_MB MiB)"
    # A leak grows with time; tables that reached their size under a steady load do not.
    local plateau
    plateau=$(awk -F, -v ph=$PHASE -v s=$((START - T0)) -v e=$((LOAD_END)) '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $col["phase"] == ph && $col["t_s"] >= s && $col["t_s"] <= e {
            t = ($col["t_s"] - s) / (e - s); r = $col["rss_kb"]
            if (t <= 0.5 && r > first) first = r
            if (t >= 0.75 && r > last) last = r }
        END { print first, last }' "$CSV")
    set -- $plateau
    [ "${2:-0}" -le $(( ${1:-0} + RSS_PLATEAU_MB * 1024 )) ] ||
        fail "RSS still growing: first half peak $1 kB, last quarter $2 kB (tolerance $RSS_PLATEAU_MB MiB)"
    echo "$PHASE rss_first_half_peak_kb ${1:-0} rss_last_quarter_peak_kb ${2:-0}" >> "$LOGD/params.txt"
    if [ "$app" = http ]; then
        local non2xx
        non2xx=$(cat "$LOGD"/wrk-*.log | awk '/Non-2xx/ { n += $NF } END { print n + 0 }')
        [ "$non2xx" = 0 ] || fail "$non2xx non-2xx answers"
    else
        local m st
        m=$(jq .mismatch "$LOGD/echo.json" 2>/dev/null || echo missing)
        st=$(jq .stalled "$LOGD/echo.json" 2>/dev/null || echo missing)
        [ "$m" = 0 ] || fail "echo mismatches: $m"
        [ "$st" = 0 ] || fail "echo transfers stalled: $st"
    fi
}

# The table: idle -> peak -> after, per phase.
report() {
    local ph idle after
    echo
    echo "soak $STAMP: $DURATION s of load (http $HTTP_S s, echo $ECHO_S s), samples every $SAMPLE s in $CSV, logs in $LOGD"
    cat "$LOGD/params.txt"
    for ph in http echo; do
        [ -f "$LOGD/after-$ph.json" ] || continue
        idle=$(cat "$LOGD/idle-$ph.json"); after=$(cat "$LOGD/after-$ph.json")
        echo
        echo "phase $ph (settled: $(jq .settled <<<"$after") after $(jq .settle_s <<<"$after") s)"
        printf '| %-18s | %10s | %10s | %10s |\n' figure idle peak after
        printf '| %-18s | %10s | %10s | %10s |\n' --- ---: ---: ---:
        for g in rss_kb mbufs_in_use connections request_socks time_wait conn_mem_bytes accept_queue syn_queue; do
            printf '| %-18s | %10s | %10s | %10s |\n' $g "$(jq .$g <<<"$idle")" \
                "$(awk -F, -v ph=$ph -v g=$g 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == g) c = i; next }
                    $2 == ph && $c > m { m = $c } END { print m + 0 }' "$CSV")" "$(jq .$g <<<"$after")"
        done
        echo "counters over the phase (after - idle):"
        jq -r --argjson a "$idle" 'to_entries | map(select(.key | test("^(Tcp|Dl)")))
            | map("  \(.key) \(.value - ($a[.key] // 0))") | .[]' <<<"$after" | awk '$2 != 0'
    done
    echo
    if [ -f "$LOGD/wrk-keepalive.log" ]; then
        for m in keepalive close; do
            awk -v m=$m '/requests in/ { r += $1; d = $4; sub(",", "", d); t += (d ~ /[0-9]m$/) ? d * 60 : d + 0 }
                /Socket errors/ { gsub(",", ""); c += $4; rd += $6; w += $8; to += $10 }
                /Non-2xx/ { n += $NF }
                END { printf "wrk %s: %d requests in %.0f s (%.0f/s), socket errors connect %d read %d write %d timeout %d, non-2xx %d\n",
                      m, r, t, (t > 0 ? r / t : 0), c, rd, w, to, n }' "$LOGD/wrk-$m.log"
        done
    fi
    [ ! -f "$LOGD/echo.json" ] || echo "echo: $(cat "$LOGD/echo.json")"
    awk '/packets transmitted/ { n += $1 } END { print "SYN flood: " n + 0 " SYNs sent (hping3 chunks that finished)" }' "$LOGD/flood.log" 2>/dev/null || true
    for k in http echo; do
        [ ! -f "$LOGD/vanish-$k.log" ] || awk -v k=$k '{ n++; c += $3 } END { print "vanished " k " clients: " n " rounds, " c " connections" }' "$LOGD/vanish-$k.log"
    done
    [ ! -f "$LOGD/slow.log" ] || echo "slowhttptest: $(grep -c 'test type' "$LOGD/slow.log" || true) runs"
    echo
    if [ ${#FAILS[@]} -eq 0 ]; then
        echo "PASS"
    else
        printf '%s\n' "${FAILS[@]}"; echo "FAIL"
    fi
}

ECHO_S=$(( DURATION * ECHO_SHARE / 100 ))
HTTP_S=$(( DURATION - ECHO_S ))
VANISH_BASE=0
phase http http 80 "$HTTP_S"
VANISH_BASE=250
if [ "$ECHO_S" -gt 0 ]; then phase echo echo 7 "$ECHO_S"; fi
report | tee "$LOGD/summary.txt"
[ ${#FAILS[@]} -eq 0 ]
