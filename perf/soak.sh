#!/usr/bin/env bash
# Soak benchmark: `ferrovs run` (AF_XDP) in the namespace lab
# (scripts/lab.sh) for a long time under mixed traffic and faults, watching
# its memory, its connection table and what it drops. A benchmark, not a
# CI test (scripts/test.sh does not run it). Run as root.
#
#   perf/soak.sh [--minutes 30] [--mode dr|nat|fullnat|tun] [--json FILE]
#                [--workers 1|2] [--rate 30] [--long 16] [--table 65536]
#                [--flood-pps 100000] [--flood-seconds 10] [--keep]
#
# For the whole run, concurrently:
#   - new short connections: HTTP/1.1 GET / with `Connection: close` to
#     VIP:80 from the client, --rate per second in all (4 threads, paced;
#     connect timeout 8 s, read 5 s), each request logged with its result;
#   - --long long-lived connections to a TCP echo service on VIP:9000,
#     opened at the start and held to the end, a line echoed every 2 s on
#     each; a reset, a close, a wrong echo, an echo from another real
#     server or no echo within 20 s is a lost connection (there must be
#     none);
#   - a reload (kill -HUP) every 10 s, alternating rs1's weight on VIP:80
#     between 1 and 2 (checked in `ferrovsadm -Ln` after each reload);
#   - every 60 s (from 30 s on) one real server, in turn rs1 rs2 rs3, has
#     its HTTP server stopped for 25 s and started again: VIP:80's TCP_CHECK
#     (delay_loop 2, connect_timeout 1, retry 1) takes it out and brings it
#     back (the echo service on 9000 is not touched: its connections stay);
#   - `ferrovsadm -Lnc` every 30 s (from 15 s on), and once in the middle of
#     every flood (a full table's listing, the largest thing the control
#     plane allocates, so its high-water mark is reached in warm-up);
#   - a spoofed SYN flood to VIP:80 from random sources of 198.19.0.0/16,
#     `ferrovs-pktgen --tcp-syn --random-src --rate --flood-pps` for
#     --flood-seconds from a generator namespace on the client segment.
#     Floods come every min(300 s, run/3), the first half an interval in:
#     30 min -> at 2.5, 7.5, ... 27.5 min (six); 5 min -> at 50, 150,
#     250 s (three), so a short run still has a flood in warm-up and two
#     after it.
# Every 10 s it samples ferrovs's VmRSS (/proc/PID/status) and /metrics
# (connections, unconfirmed, pressure, drops and evictions by reason,
# reloads). At the end it prints a table and a summary (perf/soak_helper.py
# report) and writes them as JSON (--json). Warm-up, excluded from the RSS
# verdict, is the first 20 % of the run or until 30 s after the first
# flood, whichever is later (the first flood is the first to touch every
# slot of the connection table and of the ghost cache: their pages become
# resident then, once). RSS is "flat" when its level at the end (the median
# of the last three samples) exceeds its level after warm-up (the median of
# the first three samples after it) by at most max(4 MiB, 2 %); the peak
# is reported beside (a sample that lands on a -Lnc listing of the whole
# table sees allocations that are given back). Short requests may fail
# only while a stopped server has not yet been taken out, or during a
# flood (to 3 s after each). A failure outside those windows is
# "stale_entry" when its source port was used less than 120 s (TIME_WAIT)
# before by a connection that went to a server that is out now (the SYN
# followed that old entry to the dead server), else "unexplained". The
# run passes when RSS is flat, no long-lived connection was lost, no short
# failure is stale_entry or unexplained, every reload succeeded and was
# applied, and ferrovs still runs. Exit status 0
# on pass, 1 on fail, 2 on a setup error.
#
# Loads are bounded: --rate requests/s, --long connections, the flood's
# --flood-pps packets/s for --flood-seconds, pinned to CPU 0 (ferrovs pins
# its first worker to CPU 1 when it can). Addresses: the lab's 198.18.0.0/15
# only. Everything (namespaces, processes, files) goes away on exit, also on
# failure or Ctrl-C; --keep keeps the work directory (logs, samples).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
HELPER=$ROOT/perf/soak_helper.py
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
PKTGEN=${PKTGEN:-$ROOT/target/release/ferrovs-pktgen}

MINUTES=30 MODE=nat JSON="" WORKERS=1 RATE=30 LONG=16 TABLE=65536
FLOOD_PPS=100000 FLOOD_SECONDS=10 KEEP=0
ECHO_PORT=9000
SPOOF_NET=198.19.0.0

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
    case $1 in
    --minutes) MINUTES=${2:-}; shift 2 ;;
    --mode) MODE=${2:-}; shift 2 ;;
    --json) JSON=${2:-}; shift 2 ;;
    --workers) WORKERS=${2:-}; shift 2 ;;
    --rate) RATE=${2:-}; shift 2 ;;
    --long) LONG=${2:-}; shift 2 ;;
    --table) TABLE=${2:-}; shift 2 ;;
    --flood-pps) FLOOD_PPS=${2:-}; shift 2 ;;
    --flood-seconds) FLOOD_SECONDS=${2:-}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "soak.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
    esac
done
die() { echo "soak.sh: $*" >&2; exit 2; }
case $MODE in dr | nat | fullnat | tun) ;; *) die "--mode dr|nat|fullnat|tun" ;; esac
case $WORKERS in 1 | 2) ;; *) die "--workers 1|2" ;; esac
[[ $MINUTES =~ ^[0-9]+$ ]] && [ "$MINUTES" -ge 2 ] && [ "$MINUTES" -le 1440 ] || die "--minutes 2..1440"
[[ $RATE =~ ^[0-9]+$ ]] && [ "$RATE" -ge 1 ] && [ "$RATE" -le 500 ] || die "--rate 1..500"
[[ $LONG =~ ^[0-9]+$ ]] && [ "$LONG" -ge 1 ] && [ "$LONG" -le 500 ] || die "--long 1..500"
[[ $TABLE =~ ^[0-9]+$ ]] && [ "$TABLE" -ge 1024 ] || die "--table: at least 1024"
[[ $FLOOD_PPS =~ ^[0-9]+$ ]] && [ "$FLOOD_PPS" -ge 1 ] && [ "$FLOOD_PPS" -le 2000000 ] || die "--flood-pps 1..2000000"
[[ $FLOOD_SECONDS =~ ^[0-9]+$ ]] && [ "$FLOOD_SECONDS" -ge 1 ] && [ "$FLOOD_SECONDS" -le 60 ] || die "--flood-seconds 1..60"
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for b in "$FERROVS" "$FERROVSADM" "$PKTGEN"; do
    [ -x "$b" ] || die "build first: cargo build --release -p ferrovs-controlplane -p ferrovs-perf ($b missing)"
done
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3)

WORK=$(mktemp -d /tmp/ferrovs-soak.XXXXXX)
RUN_ID=sk$$
CURRENT_LAB="" GEN_NS="" FPID="" BG_PIDS=() STARTED_PIDS=()

stop_pid() {   # stop_pid PID: TERM, up to 5 s, then KILL
    local p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}
cleanup() {
    local p
    rm -f "$WORK/running"
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${STARTED_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$FPID" ] && stop_pid "$FPID"
    FPID=""
    [ -n "$GEN_NS" ] && ip netns del "$GEN_NS" 2>/dev/null
    GEN_NS=""
    # lab.sh down also ends every process left in the lab's namespaces.
    [ -n "$CURRENT_LAB" ] && "$LAB" down "$CURRENT_LAB" >/dev/null 2>&1
    CURRENT_LAB=""
    if [ "$KEEP" = 1 ]; then echo "soak.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }
now() { date +%s.%N | cut -c1-14; }
event() { echo "$(now) $*" >>"$WORK/events.log"; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
running() { [ -e "$WORK/running" ] && [ "$(date +%s)" -lt "$END" ]; }
# sleep_until EPOCH: sleeps, in steps, while the run lasts.
sleep_until() {
    local t=$1 n
    while running; do
        n=$(date +%s.%N)
        awk -v n="$n" -v t="$t" 'BEGIN {exit !(n >= t)}' && return 0
        sleep 0.5
    done
    return 1
}

# ------------------------------------------------------------------ setup

log "lab up ($MODE)"
env_out=$("$LAB" up --mode "$MODE" --name "$RUN_ID" --big-mib 1 2>"$WORK/lab.err") ||
    die "lab up failed: $(tail -3 "$WORK/lab.err")"
eval "$env_out"
CURRENT_LAB=$FVS_LAB_NAME

# The echo service for the long-lived connections on every real server.
for i in 1 2 3; do
    ns=FVS_NS_RS$i
    ip netns exec "${!ns}" setsid "$PY" "$HELPER" echo-serve --name "rs$i" --port "$ECHO_PORT" \
        --ready "$WORK/echo$i.ready" </dev/null >"$WORK/echo$i.log" 2>&1 &
    STARTED_PIDS+=($!)
done
for _ in $(seq 50); do
    [ -s "$WORK/echo1.ready" ] && [ -s "$WORK/echo2.ready" ] && [ -s "$WORK/echo3.ready" ] && break
    sleep 0.1
done
[ -s "$WORK/echo3.ready" ] || die "echo services did not start: $(cat "$WORK"/echo*.log)"

# The flood's generator: a namespace with a veth on the client segment's
# bridge (as tests/e2e_flood.sh makes it).
sfx=${FVS_CLIENT_IF#cla-}
GEN_NS=$FVS_LAB_NAME-gen
GEN_IF=gga-$sfx
ip netns add "$GEN_NS" || die "generator namespace"
ip -n "$GEN_NS" link set lo up
in_ns "$GEN_NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add name "$GEN_IF" address 02:00:c6:13:00:01 netns "$GEN_NS" type veth \
    peer name "p$GEN_IF" netns "$FVS_NS_SWITCH" || die "generator veth"
ip -n "$FVS_NS_SWITCH" link set "p$GEN_IF" master "bra-$sfx" up
ip -n "$GEN_NS" link set "$GEN_IF" up

# keepalived.conf: VIP:80 (short requests, failing servers, the weight the
# reloads alternate) and VIP:9000 (the long-lived connections), both with
# TCP_CHECK on every real server.
write_conf() {   # write_conf FILE RS1_WEIGHT
    local file=$1 w1=$2 kind rport=80 ip i port
    case $MODE in dr) kind=DR ;; nat) kind=NAT; rport=8080 ;; tun) kind=TUN ;; fullnat) kind=FNAT ;; esac
    {
        echo "! ferrovs soak ($MODE), rs1 weight $w1"
        echo "global_defs {"
        echo "    router_id FVS_SOAK"
        echo "}"
        echo "ferrovs {"
        echo "    backend afxdp"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers $WORKERS"
        echo "    conn_table_size $TABLE"
        echo "    control_socket $WORK/ctl.sock"
        echo "    http_listen 127.0.0.1:9180"
        echo "}"
        if [ "$MODE" = fullnat ]; then
            echo "local_address_group LAG1 {"
            echo "    $FVS_LIP_RANGE"
            echo "}"
        fi
        for port in 80 $ECHO_PORT; do
            echo "virtual_server $FVS_VIP $port {"
            echo "    delay_loop 2"
            echo "    lb_algo wrr"
            echo "    lb_kind $kind"
            echo "    protocol TCP"
            [ "$MODE" = fullnat ] && echo "    laddr_group_name LAG1"
            i=0
            for ip in $FVS_RS_IPS; do
                i=$((i + 1))
                echo "    real_server $ip $([ $port = 80 ] && echo $rport || echo $port) {"
                if [ $port = 80 ] && [ $i = 1 ]; then echo "        weight $w1"; else echo "        weight 1"; fi
                echo "        TCP_CHECK {"
                echo "            connect_timeout 1"
                echo "            retry 1"
                echo "            delay_before_retry 1"
                echo "        }"
                echo "    }"
            done
            echo "}"
        done
    } >"$file"
}
write_conf "$WORK/w1.conf" 1
write_conf "$WORK/w2.conf" 2
cp "$WORK/w1.conf" "$WORK/ferrovs.conf"
"$FERROVS" check -f "$WORK/ferrovs.conf" >/dev/null 2>"$WORK/check.err" || die "config rejected: $(cat "$WORK/check.err")"

log "ferrovs up (afxdp, $WORKERS worker(s), conn_table_size $TABLE)"
ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$WORK/ferrovs.conf" >"$WORK/ferrovs.log" 2>&1 &
FPID=$!
for _ in $(seq 100); do
    [ -S "$WORK/ctl.sock" ] && adm -Ln >/dev/null 2>&1 && break
    kill -0 "$FPID" 2>/dev/null || break
    sleep 0.1
done
adm -Ln >/dev/null 2>&1 || die "ferrovs did not start: $(tail -20 "$WORK/ferrovs.log")"
[ "$(cat "/proc/$FPID/comm" 2>/dev/null)" = ferrovs ] || die "pid $FPID is not ferrovs"
metrics() { in_ns "$FVS_NS_DIRECTOR" curl -s --max-time 3 http://127.0.0.1:9180/metrics; }
# Every server in both services before the clients start.
for _ in $(seq 50); do
    [ "$(adm -Ln | grep -c '^  -> [0-9]')" -eq 6 ] && break
    sleep 0.2
done
[ "$(adm -Ln | grep -c '^  -> [0-9]')" -eq 6 ] || die "not all real servers up: $(adm -Ln)"
got=$(in_ns "$FVS_NS_CLIENT" curl -s --max-time 5 "http://$FVS_VIP/")
[[ $got =~ ^rs[123]$ ]] || die "no answer through the VIP ('$got')"

# ------------------------------------------------------------------ the run

DUR=$((MINUTES * 60))
START=$(date +%s)
END=$((START + DUR))
FLOOD_EVERY=$((DUR / 3 < 300 ? DUR / 3 : 300))
FIRST_FLOOD=$((FLOOD_EVERY / 2))
WARM=$((DUR / 5))
[ $((FIRST_FLOOD + FLOOD_SECONDS + 30)) -gt "$WARM" ] && WARM=$((FIRST_FLOOD + FLOOD_SECONDS + 30))
touch "$WORK/running"
event start "mode=$MODE workers=$WORKERS minutes=$MINUTES"
log "running $MINUTES min: floods every ${FLOOD_EVERY}s from ${FIRST_FLOOD}s, warm-up ${WARM}s"

# Samples every 10 s: VmRSS and /metrics.
sampler() {
    local n=0 t rss
    mkdir -p "$WORK/metrics"
    while :; do
        t=$(now)
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$FPID/status" 2>/dev/null)
        if [ -z "$rss" ]; then event ferrovs_gone; break; fi
        metrics >"$WORK/metrics/$n.txt" 2>/dev/null
        echo "$t $rss $WORK/metrics/$n.txt" >>"$WORK/samples.tsv"
        n=$((n + 1))
        running || break
        sleep_until "$((START + n * 10))" || { [ "$(date +%s)" -ge "$END" ] && continue; break; }
    done
}

# rs1's weight on VIP:80 as -Ln shows it ("" when rs1 is not listed).
rs1_weight() {
    adm -Ln | awk -v v="$FVS_VIP:80" -v a="$FVS_RS1_IP" '
        $1 == "TCP" { svc = $2 } svc == v && $1 == "->" && index($2, a ":") == 1 { print $4 }'
}

reloader() {
    local n=0 w got
    while sleep_until "$((START + (n + 1) * 10))"; do
        n=$((n + 1))
        w=$((n % 2 + 1))
        cp "$WORK/w$w.conf" "$WORK/ferrovs.conf.new" && mv "$WORK/ferrovs.conf.new" "$WORK/ferrovs.conf"
        kill -HUP "$FPID" || { event reload "n=$n signal-failed"; continue; }
        sleep 1.5
        got=$(rs1_weight)
        if [ -z "$got" ] || [ "$got" = "$w" ]; then event reload "n=$n weight=$w seen=${got:-unlisted}"
        else event reload "n=$n weight=$w seen=$got mismatch"; fi
    done
}

# Stop and start a real server's HTTP server (the lab records its pid).
httpd_pid() {
    awk -v r="$1" '$2 == r && $3 ~ /python/ {print $1}' "$FVS_RUN_DIR/pids" |
        while read -r p; do kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q lab-rs-httpd && echo "$p"; done | tail -1
}
listed() { adm -Ln | awk -v v="$FVS_VIP:80" -v a="$1" '$1 == "TCP" { svc = $2 } svc == v && $1 == "->" && index($2, a ":") == 1 { f = 1 } END { exit !f }'; }
failer() {
    local k=0 rs ip p t0 t1 ns argv
    while sleep_until "$((START + 30 + k * 60))"; do
        rs=rs$((k % 3 + 1)) k=$((k + 1))
        ip=FVS_RS${rs#rs}_IP ip=${!ip} ns=FVS_NS_RS${rs#rs} ns=${!ns}
        p=$(httpd_pid "$rs")
        [ -n "$p" ] || { event rs_error "$rs no httpd pid"; continue; }
        tr '\0' '\n' <"/proc/$p/cmdline" >"$WORK/httpd.$rs.argv"
        t0=$(now)
        # Logged before the kill: a request the dying server drops at once
        # must fall inside the failure window that starts here.
        event rs_stop "$rs pid=$p"
        kill "$p"
        t1=""
        for _ in $(seq 60); do
            if ! listed "$ip"; then t1=$(now); event rs_out "$rs after=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1fs", b - a}')"; break; fi
            sleep 0.25
        done
        [ -n "$t1" ] || event rs_error "$rs still listed 15 s after its server stopped"
        sleep_until "$(awk -v a="$t0" 'BEGIN {printf "%.2f", a + 25}')"
        # Still out after every reload of the last 25 s?
        listed "$ip" && event readded "$rs listed while its server is stopped"
        mapfile -t argv <"$WORK/httpd.$rs.argv"
        ip netns exec "$ns" setsid "${argv[@]}" </dev/null >>"$WORK/httpd.$rs.log" 2>&1 &
        echo "$! $rs ${argv[0]}" >>"$FVS_RUN_DIR/pids"
        t0=$(now)
        event rs_start "$rs pid=$!"
        for _ in $(seq 60); do
            if listed "$ip"; then event rs_back "$rs after=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1fs", b - a}')"; break; fi
            sleep 0.25
        done
    done
}

list_conns() {   # list_conns [WHY]: one `ferrovsadm -Lnc`, timed, as an event
    local t0 rc rows
    t0=$(date +%s%N)
    adm -Lnc >"$WORK/lnc.txt" 2>&1
    rc=$?
    rows=$(grep -c '^TCP\|^UDP' "$WORK/lnc.txt")
    event lnc "rc=$rc rows=$rows ms=$((($(date +%s%N) - t0) / 1000000))${1:+ $1}"
}

lister() {
    local n=0
    while sleep_until "$((START + 15 + n * 30))"; do
        n=$((n + 1))
        list_conns
    done
}

# A flood, with one more listing in its middle: the listing of a full table
# is the control plane's largest allocation, and it comes with every flood
# (the first one in warm-up), so that a repeated high-water mark is not
# mistaken for growth, and growth from repeating it is seen.
flooder() {
    local k=0 out gen
    while sleep_until "$((START + FIRST_FLOOD + k * FLOOD_EVERY))"; do
        k=$((k + 1))
        [ $(($(date +%s) + FLOOD_SECONDS)) -le "$END" ] || break
        event flood_start "n=$k"
        in_ns "$GEN_NS" taskset -c 0 "$PKTGEN" --dev "$GEN_IF" --io afxdp \
            --dst-mac "$FVS_DIRECTOR_MAC_CLIENT" --dst "$FVS_VIP" --src-net "$SPOOF_NET" \
            --random-src --tcp-syn --dport 80 --rate "$FLOOD_PPS" --seconds "$FLOOD_SECONDS" \
            >"$WORK/gen.$k.out" 2>"$WORK/gen.$k.err" &
        gen=$!
        sleep $((FLOOD_SECONDS / 2))
        list_conns during-flood
        wait "$gen"
        out=$(tr -s ' \n' ' ' <"$WORK/gen.$k.out" | head -c 200)
        event flood_end "${out:-generator failed: $(tail -c 200 "$WORK/gen.$k.err")}"
    done
}

in_ns "$FVS_NS_CLIENT" "$PY" "$HELPER" hold --dst "$FVS_VIP" --port "$ECHO_PORT" --conns "$LONG" \
    --interval 2 --stall 20 --stop-file "$WORK/running" --out "$WORK/hold.json" 2>"$WORK/hold.err" &
HOLD_PID=$!
in_ns "$FVS_NS_CLIENT" "$PY" "$HELPER" short --dst "$FVS_VIP" --port 80 --rate "$RATE" --threads 4 \
    --stop-file "$WORK/running" --log "$WORK/short.log" 2>"$WORK/short.err" &
SHORT_PID=$!
BG_PIDS+=("$HOLD_PID" "$SHORT_PID")
sampler & BG_PIDS+=($!); SAMPLER_PID=$!
reloader & BG_PIDS+=($!)
failer & BG_PIDS+=($!)
lister & BG_PIDS+=($!)
flooder & BG_PIDS+=($!)

# Progress once a minute; stop early if ferrovs dies.
while [ "$(date +%s)" -lt "$END" ]; do
    sleep 5
    kill -0 "$FPID" 2>/dev/null || { log "ferrovs exited!"; event ferrovs_gone; break; }
    el=$(($(date +%s) - START))
    if [ $((el % 60)) -lt 5 ]; then
        log "t=${el}s RSS $(awk '/^VmRSS:/ {print $2, $3}' "/proc/$FPID/status") short=$(wc -l <"$WORK/short.log" 2>/dev/null) $(tr -d '{}"' <"$WORK/hold.json" 2>/dev/null | cut -d, -f1-4)"
    fi
done
wait "$SAMPLER_PID" 2>/dev/null
rm -f "$WORK/running"
event end
END_T=$(now)
# The clients stop when the "running" file goes (within their timeouts);
# the other loops end at END. (No bare `wait`: the echo services are our
# children too, and run until the lab goes.)
for _ in $(seq 60); do
    kill -0 "$HOLD_PID" 2>/dev/null || kill -0 "$SHORT_PID" 2>/dev/null || break
    sleep 0.5
done
for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
BG_PIDS=()
cp "$WORK/ferrovs.log" "$WORK/ferrovs.final.log"
grep -iE 'panic' "$WORK/ferrovs.log" | head -3 >&2

echo
"$PY" "$HELPER" report --work "$WORK" --start "$START" --end "$END_T" --warmup-end "$((START + WARM))" \
    --mode "$MODE" --workers "$WORKERS" ${JSON:+--json "$JSON"}
rc=$?
exit "$rc"
