#!/usr/bin/env bash
# End-to-end flood defence: spoofed SYN and UDP floods against `ferrovs run`
# in a namespace lab (scripts/lab.sh), with legitimate clients alongside.
#
#   tests/e2e_flood.sh [dr nat fullnat tun]     (default: all four)
#   BACKEND=afpacket tests/e2e_flood.sh ...     (default afxdp)
#   FLOOD_SECONDS=N (default 6)  TABLE=N (conn_table_size, default 16384)
#   FLOOD_RATE=PPS (default 120000; 0: as fast as the generator's core can)
#   FULLNAT_RATE=PPS (default FLOOD_RATE / 2; see below)
#   RS_DROP_SPOOFED=1: the real servers drop the spoofed range in every
#                      mode and for both floods (see below)
#   FULLNAT_MIN_PCT=N: the share of requests that must succeed during the
#                      SYN flood in FULLNAT (default 99, the goal; see below)
#
# One worker, a table of TABLE entries. Per mode, a generator namespace on
# the client segment runs ferrovs-pktgen (AF_XDP, TX only), pinned to the
# core the worker does not use, sending TCP SYNs from random spoofed
# addresses of 198.19.0.0/16 and random ports at FLOOD_RATE, for
# FLOOD_SECONDS (at least 10 × TABLE SYNs, checked: 44 × at the defaults).
# The rate is bounded because what is tested is the table, not this lab's
# packet capacity: on a 2-vCPU machine the worker's vCPU also runs the
# real servers' stacks (below) and takes about 210 kpps; a flood at the
# generator's full speed (about 260 kpps) is then dropped in the veths and
# the AF_XDP ring before the worker sees it, legitimate packets with it at
# the same rate (a fifth), and what fails is the lab (any director drops
# at random past its packet capacity). Meanwhile:
#   - curl requests from the client, in 8 parallel loops for as long as the
#     flood lasts (connect timeout 8 s, 10 s in all): at least 99 % of at
#     least 16 must succeed;
#   - one download of /big, started before the flood and paced to outlast
#     it: it must finish with the right sha256;
# and right after the flood 20 requests must all succeed. /metrics must show
# the evictions, and ferrovs must still run.
# In DR and NAT also a spoofed UDP flood against a UDP service (VIP:5353,
# scripts/lab-udp-echo.py on the real servers): legitimate request/answer
# exchanges (each from a new socket, asked again after 1 s up to twice, as
# a resolver does) at least 99 % answered, a flow from before the flood
# kept on one server throughout (UDP does not retransmit: of its
# datagrams, sent every 50 ms, 80 % must be answered on the overloaded
# path), 100 % right after the flood.
#
# The real servers drop the spoofed range (a route of type unreachable with
# reverse-path filtering) for the UDP flood and in TUN mode: there the
# lab's real servers are Python (the UDP echo, the userspace IPIP
# decapsulator of kernels without ipip) and could not take the flood, which
# says nothing about the director. In DR, NAT and FULLNAT the SYN flood
# reaches the real servers' kernels, which answer it with SYN cookies. In
# this lab that work runs on the worker's vCPU (the real servers' stacks
# run inside the worker's transmit calls to the veths), which a real
# director does not pay; RS_DROP_SPOOFED=1 takes it out (and with it, in
# NAT, the SYN-ACKs to spoofed sources through the director; FULLNAT's real
# servers see the director's local addresses as sources, nothing to drop).
# So in FULLNAT the servers' SYN-cookie work and their SYN-ACKs, which
# cross the director, stay on the worker's vCPU whatever is set: there the
# flood runs at half FLOOD_RATE (FULLNAT_RATE), still 22 × the table at
# the defaults. FULLNAT_MIN_PCT exists to see how far it falls short at a
# higher rate. This script runs without the SYN proxy, which
# answers the flood at the director before any server sees it: that is
# tests/e2e_synproxy.sh.
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
UDP_ECHO=$ROOT/scripts/lab-udp-echo.py
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
PKTGEN=${PKTGEN:-$ROOT/target/release/ferrovs-pktgen}
MODES=${*:-dr nat fullnat tun}
BACKEND=${BACKEND:-afxdp}
FLOOD_SECONDS=${FLOOD_SECONDS:-6}
FLOOD_RATE=${FLOOD_RATE:-120000}
FULLNAT_RATE=${FULLNAT_RATE:-$((FLOOD_RATE / 2))}
TABLE=${TABLE:-16384}
SPOOF_NET=198.19.0.0
UDP_PORT=5353
RUN_ID=fl$$
PASS=0
FAIL=0
CURRENT_LAB=""
GEN_NS=""
FERROVS_PID=""
WORK=$(mktemp -d /tmp/ferrovs-flood.XXXXXX)

[ "$(id -u)" -eq 0 ] || { echo "e2e tests need root (network namespaces)" >&2; echo "0 passed, 1 failed"; exit 1; }
for b in "$FERROVS" "$FERROVSADM" "$PKTGEN"; do
    [ -x "$b" ] || { echo "build first: cargo build --release -p ferrovs-controlplane -p ferrovs-perf ($b missing)" >&2; echo "0 passed, 1 failed"; exit 1; }
done

teardown() {
    stop_ferrovs
    jobs -p | xargs -r kill 2>/dev/null
    [ -n "$GEN_NS" ] && ip netns del "$GEN_NS" 2>/dev/null
    GEN_NS=""
    [ -n "$CURRENT_LAB" ] && "$LAB" down "$CURRENT_LAB" >/dev/null 2>&1
    CURRENT_LAB=""
}
cleanup() {
    teardown
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }

stop_ferrovs() {
    if [ -n "$FERROVS_PID" ]; then
        kill -TERM "$FERROVS_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$FERROVS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FERROVS_PID" 2>/dev/null
        wait "$FERROVS_PID" 2>/dev/null
        FERROVS_PID=""
    fi
}

start_ferrovs() {
    FERROVS_CTL=$WORK/ctl.sock ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$1" >>"$WORK/ferrovs.log" 2>&1 &
    FERROVS_PID=$!
    for _ in $(seq 100); do
        [ -S "$WORK/ctl.sock" ] && adm -Ln >/dev/null 2>&1 && return 0
        kill -0 "$FERROVS_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "ferrovs did not start:" >&2
    tail -20 "$WORK/ferrovs.log" >&2
    return 1
}

metrics() { in_ns "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:9180/metrics; }
# metric NAME [LABEL_FILTER] — summed over the samples whose labels match.
metric() {
    metrics | awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"\\{" && index($1, f) {s += $2} END {printf "%d\n", s + 0}'
}

write_conf() {
    local file=$1 mode=$2 kind rport=80 ip
    case $mode in
        dr) kind=DR ;;
        nat) kind=NAT; rport=8080 ;;
        tun) kind=TUN ;;
        fullnat) kind=FNAT ;;
    esac
    {
        echo "! ferrovs flood e2e ($mode)"
        echo "global_defs {"
        echo "    router_id FVS_FLOOD"
        echo "}"
        echo "ferrovs {"
        echo "    backend $BACKEND"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers 1"
        echo "    conn_table_size $TABLE"
        echo "}"
        if [ "$mode" = fullnat ]; then
            echo "local_address_group LAG1 {"
            echo "    $FVS_LIP_RANGE"
            echo "}"
        fi
        local proto port rp
        for proto in TCP UDP; do
            port=80 rp=$rport
            [ $proto = UDP ] && port=$UDP_PORT rp=$UDP_PORT
            echo "virtual_server $FVS_VIP $port {"
            echo "    delay_loop 6"
            echo "    lb_algo rr"
            echo "    lb_kind $kind"
            echo "    protocol $proto"
            [ "$mode" = fullnat ] && echo "    laddr_group_name LAG1"
            for ip in $FVS_RS_IPS; do
                echo "    real_server $ip $rp {"
                echo "        weight 1"
                echo "    }"
            done
            echo "}"
        done
    } >"$file"
}

# The flood's generator: a namespace with a veth on the client segment's
# bridge (named after the lab, removed by cleanup).
make_generator() {
    local sfx=${FVS_CLIENT_IF#cla-}
    GEN_NS=$FVS_LAB_NAME-gen
    GEN_IF=gga-$sfx
    ip netns add "$GEN_NS" || return 1
    ip -n "$GEN_NS" link set lo up
    in_ns "$GEN_NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip link add name "$GEN_IF" address 02:00:c6:13:00:01 netns "$GEN_NS" type veth \
        peer name "p$GEN_IF" netns "$FVS_NS_SWITCH" || return 1
    ip -n "$FVS_NS_SWITCH" link set "p$GEN_IF" master "bra-$sfx" up &&
        ip -n "$GEN_NS" link set "$GEN_IF" up
}

# The core the worker does not use (ferrovs pins worker 0 to core 1 when
# there is a core to spare).
GEN_CPU=0

# flood SECONDS ARGS... — starts the generator in the background; sets
# GEN_PID, output in $WORK/gen.out.
flood() {
    local secs=$1 rate=$FLOOD_RATE; shift
    [ "$MODE" = fullnat ] && rate=$FULLNAT_RATE
    in_ns "$GEN_NS" taskset -c "$GEN_CPU" "$PKTGEN" --dev "$GEN_IF" --io afxdp \
        --dst-mac "$FVS_DIRECTOR_MAC_CLIENT" --dst "$FVS_VIP" --src-net "$SPOOF_NET" \
        --random-src --seconds "$secs" --rate "$rate" "$@" >"$WORK/gen.out" 2>"$WORK/gen.err" &
    GEN_PID=$!
}

gen_sent() { sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$WORK/gen.out"; }

# The real servers drop packets from the spoofed range before they reach
# a socket: a route of type unreachable fails the reverse-path check
# (strict in DR, NAT, FULLNAT; loose on TUN's tunl0, which must accept
# packets whose route back is another interface).
rs_drop_spoofed() {
    local ns
    for ns in $FVS_NS_RS; do
        ip -n "$ns" route replace unreachable "$SPOOF_NET/16"
        if [ "$MODE" = tun ]; then
            in_ns "$ns" sysctl -q -w net.ipv4.conf.tunl0.rp_filter=2
        fi
    done
}

# legit_loop FILE — curl requests until the generator is gone; one line
# per request: the HTTP code (000: failed).
legit_loop() {
    local out=$1 code
    while kill -0 "$GEN_PID" 2>/dev/null; do
        code=$(in_ns "$FVS_NS_CLIENT" curl -s -o /dev/null -w '%{http_code}' \
            --connect-timeout 8 --max-time 10 "http://$FVS_VIP/")
        echo "$code" >>"$out"
    done
}

test_syn_flood() {
    local big=$WORK/big.$MODE dl_pid i loops=() total okn pct sent after=0 ev full rx
    rm -f "$big" "$WORK"/legit.*
    # A download that outlasts the flood: 8 MiB at 1 MiB/s.
    in_ns "$FVS_NS_CLIENT" curl -s --max-time 60 --limit-rate 1M -o "$big" "http://$FVS_VIP/big" &
    dl_pid=$!
    sleep 1
    # At least 10 x the table however slow a loaded machine makes the
    # generator (it sends past FLOOD_SECONDS until then, 4 x at most).
    flood "$FLOOD_SECONDS" --tcp-syn --dport 80 --min-count $((10 * TABLE + 1000))
    sleep 0.3
    for i in 1 2 3 4 5 6 7 8; do
        legit_loop "$WORK/legit.$i" &
        loops+=($!)
    done
    wait "$GEN_PID"
    wait "${loops[@]}"
    sent=$(gen_sent)
    total=$(cat "$WORK"/legit.* 2>/dev/null | wc -l)
    okn=$(cat "$WORK"/legit.* 2>/dev/null | grep -c '^200$')
    pct=$(awk -v o="$okn" -v t="$total" 'BEGIN {printf "%.2f", t ? 100 * o / t : 0}')
    rx=$(metric ferrovs_worker_rx_packets_total)
    check "$MODE: the SYN flood was at least 10 × the table ($sent SYNs in $(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$WORK/gen.out")s: $(sed 's/.*mpps=\([0-9.]*\).*/\1/' "$WORK/gen.out") Mpps offered; the worker received $rx packets)" \
        [ "${sent:-0}" -ge $((10 * TABLE)) ]
    # The goal is 99 % in every mode; FULLNAT_MIN_PCT lowers it for FULLNAT
    # alone (see the header: in this lab its real servers' answers to the
    # flood run on the worker's vCPU and cannot be dropped at the servers).
    local need=99
    [ "$MODE" = fullnat ] && need=${FULLNAT_MIN_PCT:-99}
    check "$MODE: during the SYN flood $okn of $total requests succeeded ($pct %, need ≥ $need %)" \
        awk -v o="$okn" -v t="$total" -v n="$need" 'BEGIN {exit !(t >= 16 && o * 100 >= n * t)}'
    for i in $(seq 20); do
        [[ "$(in_ns "$FVS_NS_CLIENT" curl -s --max-time 5 "http://$FVS_VIP/")" =~ ^rs[123]$ ]] && after=$((after + 1))
    done
    check "$MODE: right after the flood 20 of 20 requests succeed ($after)" [ "$after" -eq 20 ]
    wait "$dl_pid"
    check "$MODE: the download established before the flood finished intact" \
        bash -c "[ \"\$(sha256sum <'$big' | cut -d' ' -f1)\" = '$FVS_BIG_SHA256' ]"
    ev=$(metric ferrovs_worker_connections_evicted_total 'reason="tcp_half_open"')
    full=$(metric ferrovs_worker_drops_total 'reason="conn_table_full"')
    check "$MODE: /metrics counts the evictions (tcp_half_open=$ev, revived=$(metric ferrovs_worker_connections_revived_total), conn_table_full drops=$full, pressure entered $(metric ferrovs_worker_conn_table_pressure_entered_total) times)" \
        [ "$ev" -gt 0 ]
    check "$MODE: ferrovs still runs after the SYN flood" kill -0 "$FERROVS_PID"
    diagnostics
}

# What the director dropped and why, and its sockets' ring figures.
diagnostics() {
    echo "# $MODE: $(metrics | awk '$1 ~ /^ferrovs_worker_drops_total/ && $2 > 0 {sub(/.*reason="/, "", $1); sub(/".*/, "", $1); printf "%s=%s ", $1, $2}')"
    echo "# $MODE: lost before the worker (AF_XDP ring full): $(metrics | awk '$1 ~ /^ferrovs_xdp_rx_ring_full/ {n += $2} END {print n + 0}')"
    echo "# $MODE: $(metrics | awk '$1 ~ /^ferrovs_xdp_/ && $2 > 0 && $1 !~ /_bytes/ {printf "%s=%s ", $1, $2}' | head -c 600)"
}

start_udp_echo() {
    local i ns ip
    for i in 1 2 3; do
        ns=FVS_NS_RS$i ip=FVS_RS${i}_IP
        ip netns exec "${!ns}" setsid "$(command -v python3)" "$UDP_ECHO" serve --name "rs$i" \
            --port "$UDP_PORT" --addr "$FVS_VIP" --addr "${!ip}" --ready "$WORK/udp$i.ready" \
            </dev/null >"$WORK/udp$i.log" 2>&1 &
    done
    for _ in $(seq 50); do
        [ -e "$WORK/udp1.ready" ] && [ -e "$WORK/udp2.ready" ] && [ -e "$WORK/udp3.ready" ] && return 0
        sleep 0.1
    done
    echo "UDP echo servers did not start: $(cat "$WORK"/udp*.log)" >&2
    return 1
}

udp_probe() { in_ns "$FVS_NS_CLIENT" python3 "$UDP_ECHO" probe --dst "$FVS_VIP" --port "$UDP_PORT" "$@"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, d))" "$1"; }

test_udp_flood() {
    local r sent req ans first s_sent s_ans s_srv after ev
    start_udp_echo || { bad "$MODE: UDP echo servers"; return; }
    r=$(udp_probe --requests 10 --retries 2)
    check "$MODE: UDP service answers before the flood ($r)" [ "$(echo "$r" | jget answered)" = 10 ]
    rs_drop_spoofed
    # A long-lived flow, from before the flood until after it.
    touch "$WORK/flooding"
    udp_probe --workers 0 --while-exists "$WORK/flooding" --stream-interval 0.05 >"$WORK/stream.json" &
    local spid=$!
    sleep 0.5
    flood "$FLOOD_SECONDS" --dport "$UDP_PORT" --min-count $((10 * TABLE + 1000))
    sleep 0.3
    r=$(udp_probe --until-gone "$GEN_PID" --workers 4 --timeout 1 --retries 2 --pause 0.01)
    wait "$GEN_PID"
    rm -f "$WORK/flooding"
    wait "$spid"
    sent=$(gen_sent)
    req=$(echo "$r" | jget requests) ans=$(echo "$r" | jget answered) first=$(echo "$r" | jget first_try)
    s_sent=$(jget "stream['sent']" <"$WORK/stream.json") s_ans=$(jget "stream['answered']" <"$WORK/stream.json")
    s_srv=$(jget "len(stream['servers'])" <"$WORK/stream.json")
    check "$MODE: the UDP flood was at least 10 × the table ($sent datagrams)" [ "${sent:-0}" -ge $((10 * TABLE)) ]
    check "$MODE: during the UDP flood $ans of $req exchanges answered ($first at the first try; need ≥ 99 %)" \
        awk -v o="$ans" -v t="$req" 'BEGIN {exit !(t >= 20 && o * 100 >= 99 * t)}'
    # UDP does not retransmit: what the director owes the flow is its entry
    # (one server throughout, never evicted); what a datagram lost on the
    # overloaded path costs is counted, and most must arrive.
    check "$MODE: a UDP flow from before the flood kept its server ($s_srv server(s); answered $s_ans of $s_sent)" \
        awk -v o="$s_ans" -v t="$s_sent" -v n="$s_srv" 'BEGIN {exit !(t >= 20 && o * 100 >= 80 * t && n == 1)}'
    r=$(udp_probe --requests 20 --retries 0 --timeout 1)
    after=$(echo "$r" | jget answered)
    check "$MODE: right after the UDP flood 20 of 20 answered at the first try ($after)" [ "$after" = 20 ]
    ev=$(metric ferrovs_worker_connections_evicted_total 'reason="udp_unconfirmed"')
    check "$MODE: /metrics counts the UDP evictions (udp_unconfirmed=$ev)" [ "$ev" -gt 0 ]
    check "$MODE: ferrovs still runs after the UDP flood" kill -0 "$FERROVS_PID"
}

for MODE in $MODES; do
    case $MODE in dr | nat | fullnat | tun) ;; *) echo "unknown mode $MODE" >&2; exit 2 ;; esac
    echo "== $MODE"
    env_out=$("$LAB" up --mode "$MODE" --name "$RUN_ID-$MODE" --big-mib 8 2>"$WORK/lab.err") || {
        bad "$MODE: lab up: $(tail -3 "$WORK/lab.err")"
        continue
    }
    eval "$env_out"
    CURRENT_LAB=$FVS_LAB_NAME
    if ! make_generator; then
        bad "$MODE: generator namespace"
        teardown
        continue
    fi
    write_conf "$WORK/ferrovs.conf" "$MODE"
    : >"$WORK/ferrovs.log"
    if ! start_ferrovs "$WORK/ferrovs.conf"; then
        bad "$MODE: ferrovs starts"
        teardown
        continue
    fi
    got=$(in_ns "$FVS_NS_CLIENT" curl -s --max-time 5 "http://$FVS_VIP/")
    check "$MODE: a request before the flood ($got)" bash -c "[[ '$got' =~ ^rs[123]$ ]]"
    if [ "$MODE" = tun ] || [ "${RS_DROP_SPOOFED:-0}" = 1 ]; then rs_drop_spoofed; fi
    test_syn_flood
    case $MODE in dr | nat) test_udp_flood ;; esac
    grep -iE 'panic|error' "$WORK/ferrovs.log" | head -5
    teardown
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
