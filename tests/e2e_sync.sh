#!/usr/bin/env bash
# End-to-end test of connection sync (issue 16): two ferrovs directors in a
# VRRP pair with keepalived's `lvs_sync_daemon`, three real HTTP servers,
# and N long-lived TCP connections (curl downloading /big at a bounded
# rate, its sha256 checked). The master is killed with SIGKILL mid-stream;
# the backup, which received the connections in IPVS sync messages, takes
# the VIP over and forwards them at once: every download must complete
# intact. In DR, NAT and FULLNAT.
#
#   tests/e2e_sync.sh [dr nat fullnat]   (default: all three)
#   CONNS=200 RATE=96k BIG_MIB=1 tests/e2e_sync.sh   (the defaults)
#   SYNC=off tests/e2e_sync.sh dr   the control run: without lvs_sync_daemon
#                                   the failover must break the downloads
#   WORKERS=2 tests/e2e_sync.sh     two workers per director
#
# The directors are a sync group of two instances, as LVS-NAT pairs run
# keepalived: VI_1 holds the VIP on the client side (and is the instance
# the sync daemon follows), VI_2 on the server side holds what real
# servers send replies to (NAT's gateway address, FULLNAT's local
# addresses), so that the new master's gratuitous ARPs reach them.
#
# Load is bounded: N curl processes at RATE each for BIG_MIB MiB (about
# 11 s at the defaults), one worker per director.
#
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$(dirname "$FERROVS")/ferrovsadm}
MODES=${*:-dr nat fullnat}
CONNS=${CONNS:-200}
RATE=${RATE:-96k}
BIG_MIB=${BIG_MIB:-1}
SYNC=${SYNC:-on}
WORKERS=${WORKERS:-1}
RUN_ID=sy$$
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-sync.XXXXXX)
LAB_NAME=""
declare -A PIDS=()
# The downloads, each in a session of its own (setsid): its group is killed
# whole (bash, curl, sha256sum) by that id.
DL_PIDS=()

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first: cargo build --release -p ferrovs-controlplane" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

stop_all() {
    for k in "${!PIDS[@]}"; do kill -TERM "${PIDS[$k]}" 2>/dev/null; done
    sleep 0.5
    for k in "${!PIDS[@]}"; do
        kill -KILL "${PIDS[$k]}" 2>/dev/null
        wait "${PIDS[$k]}" 2>/dev/null
    done
    PIDS=()
    for p in "${DL_PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
    for p in "${DL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    DL_PIDS=()
}
cleanup() {
    stop_all
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# vrrp_instance NAME IF VRID PRIO ADDRESS...
vrrp_instance() {
    local name=$1 ifc=$2 vrid=$3 prio=$4; shift 4
    echo "vrrp_instance $name {"
    echo "    state BACKUP"
    echo "    interface $ifc"
    echo "    virtual_router_id $vrid"
    echo "    priority $prio"
    echo "    advert_int 1"
    echo "    virtual_ipaddress {"
    for a in "$@"; do echo "        $a/32"; done
    echo "    }"
    echo "}"
}

# director_conf FILE DIRECTOR(1|2) PRIO MODE
director_conf() {
    local file=$1 dn=$2 prio=$3 mode=$4 ifa ifb kind rport=80 side_b
    if [ "$dn" = 1 ]; then
        ifa=$FVS_DIRECTOR_IF_CLIENT ifb=$FVS_DIRECTOR_IF_SERVER
    else
        ifa=$FVS_DIRECTOR2_IF_CLIENT ifb=$FVS_DIRECTOR2_IF_SERVER
    fi
    case $mode in
        dr) kind=DR; side_b=$FVS_NAT_GW ;;
        nat) kind=NAT; rport=8080; side_b=$FVS_NAT_GW ;;
        fullnat) kind=FNAT; side_b=$FVS_LIPS ;;
    esac
    {
        echo "global_defs {"
        echo "    router_id FVS_SYNC_D$dn"
        [ "$SYNC" = on ] && echo "    lvs_sync_daemon $ifa VI_1"
        echo "}"
        echo "ferrovs {"
        echo "    interface $ifa"
        echo "    interface $ifb"
        echo "    workers $WORKERS"
        echo "    conn_table_size 65536"
        echo "    control_socket $WORK/d$dn.sock"
        echo "    http_listen 127.0.0.1:$((19280 + dn))"
        echo "}"
        echo "vrrp_sync_group G {"
        echo "    group {"
        echo "        VI_1"
        echo "        VI_2"
        echo "    }"
        echo "}"
        vrrp_instance VI_1 "$ifa" 51 "$prio" "$FVS_VIP"
        # shellcheck disable=SC2086
        vrrp_instance VI_2 "$ifb" 52 "$prio" $side_b
        if [ "$mode" = fullnat ]; then
            echo "local_address_group LAG1 {"
            echo "    $FVS_LIP_RANGE"
            echo "}"
        fi
        echo "virtual_server $FVS_VIP 80 {"
        echo "    lb_algo rr"
        echo "    lb_kind $kind"
        echo "    protocol TCP"
        [ "$mode" = fullnat ] && echo "    laddr_group_name LAG1"
        for ip in $FVS_RS_IPS; do echo "    real_server $ip $rport { weight 1 }"; done
        echo "}"
    } >"$file"
}

start_ferrovs() { # DIRECTOR CONF
    local dn=$1 conf=$2 ns=$FVS_NS_DIRECTOR
    [ "$dn" = 2 ] && ns=$FVS_NS_DIRECTOR2
    ip netns exec "$ns" "$FERROVS" run -f "$conf" >>"$WORK/d$dn.log" 2>&1 &
    PIDS[d$dn]=$!
    for _ in $(seq 50); do [ -S "$WORK/d$dn.sock" ] && return 0; sleep 0.1; done
    return 1
}
adm() { local dn=$1; shift; FERROVS_CTL=$WORK/d$dn.sock "$FERROVSADM" "$@"; }
state() { FERROVS_CTL=$WORK/d$1.sock "$FERROVS" status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["vrrp"][0]["state"])' 2>/dev/null || echo DOWN; }
# established DIRECTOR — the director's ESTABLISHED connections to the VIP.
established() { adm "$1" -Lnc 2>/dev/null | awk -v v="$FVS_VIP:80" '$3 == "ESTABLISHED" && $5 == v' | wc -l; }
metric() { # DIRECTOR NAME — a metric's value (sum over its series)
    local ns=$FVS_NS_DIRECTOR
    [ "$1" = 2 ] && ns=$FVS_NS_DIRECTOR2
    ip netns exec "$ns" curl -s "http://127.0.0.1:$((19280 + $1))/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {print s + 0}'
}
wait_until() { # SECONDS CMD... — polls every 100 ms
    local limit=$(($1 * 10)); shift
    for _ in $(seq "$limit"); do "$@" && return 0; sleep 0.1; done
    return 1
}
at_least() { local want=$1; shift; [ "$("$@")" -ge "$want" ]; }

test_mode() {
    local mode=$1 env_text
    echo "# $mode: $CONNS downloads at $RATE through a VRRP pair, kill -9 of the master"
    env_text=$("$LAB" up --mode "$mode" --directors 2 --name "fvs-$RUN_ID-$mode" --big-mib "$BIG_MIB" 2>"$WORK/lab.err") || {
        bad "$mode: lab did not come up: $(tail -2 "$WORK/lab.err")"
        return
    }
    eval "$env_text"
    LAB_NAME=$FVS_LAB_NAME
    # A small receive buffer: curl reads at RATE, so the window, not the
    # client's buffer, holds the server back, and the data is still in
    # flight when the master dies (with Linux's default 6 MiB buffers
    # the whole file would arrive at once and curl read it afterwards).
    ip netns exec "$FVS_NS_CLIENT" sysctl -qw net.ipv4.tcp_rmem="4096 65536 65536"
    rm -f "$WORK"/d?.log "$WORK"/d?.sock
    director_conf "$WORK/d1.conf" 1 150 "$mode"
    director_conf "$WORK/d2.conf" 2 100 "$mode"
    "$FERROVS" check -f "$WORK/d1.conf" >"$WORK/check.out" 2>&1
    check "$mode: ferrovs check accepts lvs_sync_daemon" [ $? = 0 ]
    start_ferrovs 2 "$WORK/d2.conf" && start_ferrovs 1 "$WORK/d1.conf" || {
        bad "$mode: ferrovs did not start: $(tail -3 "$WORK"/d?.log)"
        stop_all; "$LAB" down "$LAB_NAME" >/dev/null 2>&1; LAB_NAME=""
        return
    }
    if wait_until 10 bash -c "[ \"\$(FERROVS_CTL=$WORK/d1.sock $FERROVS status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"vrrp\"][0][\"state\"])' 2>/dev/null)\" = MASTER ]"; then
        ok "$mode: director 1 is MASTER"
    else
        bad "$mode: director 1 never became MASTER ($(state 1))"
    fi
    check "$mode: director 2 is BACKUP" [ "$(state 2)" = BACKUP ]
    local ifa1=$FVS_DIRECTOR_IF_CLIENT ifa2=$FVS_DIRECTOR2_IF_CLIENT
    wait_until 3 bash -c "FERROVS_CTL=$WORK/d1.sock $FERROVSADM -L --daemon | grep -q master"
    local d1d d2d
    d1d=$(adm 1 -L --daemon)
    d2d=$(adm 2 -L --daemon)
    check "$mode: ferrovsadm -L --daemon on the master ($d1d)" \
        [ "$d1d" = "master sync daemon (mcast=$ifa1, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]
    check "$mode: ferrovsadm -L --daemon on the backup ($d2d)" \
        [ "$d2d" = "backup sync daemon (mcast=$ifa2, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]

    # The downloads: each writes its sha256 (or nothing) to its own file.
    mkdir -p "$WORK/dl"
    rm -f "$WORK"/dl/*
    local i
    for i in $(seq "$CONNS"); do
        setsid ip netns exec "$FVS_NS_CLIENT" bash -c "curl -s --max-time 120 --limit-rate $RATE http://$FVS_VIP/big | sha256sum | cut -d' ' -f1 >$WORK/dl/$i.sum" &
        DL_PIDS+=($!)
    done
    if wait_until 20 at_least "$CONNS" established 1; then
        ok "$mode: the master holds $CONNS established connections"
    else
        bad "$mode: the master holds $(established 1) established connections, not $CONNS"
        adm 1 -Lnc 2>&1 | head -5
        tail -5 "$WORK/d1.log"
    fi
    local synced
    if [ "$SYNC" != on ]; then
        bad "$mode: control run without sync: the backup holds $(established 2) connections"
    elif wait_until 10 at_least "$CONNS" established 2; then
        synced=$(established 2)
        ok "$mode: the backup holds them too, synced ($synced ESTABLISHED)"
    else
        bad "$mode: the backup holds $(established 2) of $CONNS connections"
        adm 2 -Lnc 2>&1 | head -4
        # What the backup's sync daemon saw, and what its workers did.
        ip netns exec "$FVS_NS_DIRECTOR2" curl -s --max-time 2 "http://127.0.0.1:19282/metrics" 2>/dev/null |
            grep -E '^ferrovs_(sync|worker_sync)' | grep -v ' 0$' | head -20
        adm 2 -L --daemon 2>&1 | head -2
    fi
    local sent
    sent=$(metric 1 ferrovs_sync_entries_sent_total)
    check "$mode: the master counts its sent entries ($sent)" [ "$sent" -ge "$CONNS" ]
    local running
    running=$(find "$WORK/dl" -name '*.sum' -size +0 | wc -l)
    check "$mode: the downloads are still streaming when the master dies ($running of $CONNS done)" [ "$running" -eq 0 ]

    kill -KILL "${PIDS[d1]}" 2>/dev/null
    wait "${PIDS[d1]}" 2>/dev/null
    unset "PIDS[d1]"
    if wait_until 8 bash -c "[ \"\$(FERROVS_CTL=$WORK/d2.sock $FERROVS status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"vrrp\"][0][\"state\"])' 2>/dev/null)\" = MASTER ]"; then
        ok "$mode: kill -9 of the master: director 2 takes over"
    else
        bad "$mode: director 2 did not take over ($(state 2))"
    fi
    # Every download ends (curl exits at the latest at --max-time).
    for p in "${DL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    DL_PIDS=()
    local good
    good=$(cat "$WORK"/dl/*.sum 2>/dev/null | grep -cx "$FVS_BIG_SHA256")
    check "$mode: $good of $CONNS downloads completed across the failover with their sha256 intact" [ "$good" -eq "$CONNS" ]
    d2d=$(adm 2 -L --daemon)
    check "$mode: the new master runs the master sync daemon ($d2d)" \
        [ "$d2d" = "master sync daemon (mcast=$ifa2, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]
    local inst drop
    inst=$(metric 2 ferrovs_sync_entries_installed_total)
    check "$mode: the backup counted its installs ($inst)" [ "$inst" -ge "$CONNS" ]
    drop=$(metric 2 ferrovs_sync_dropped_entries_total)
    check "$mode: the backup dropped no entry ($drop)" [ "$drop" = 0 ]
    stop_all
    "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    LAB_NAME=""
}

for m in $MODES; do
    case $m in
        dr | nat | fullnat) test_mode "$m" ;;
        *) bad "unknown mode $m" ;;
    esac
done

# The ipvsadm commands against a running director without lvs_sync_daemon.
echo "# ferrovsadm --start-daemon / --stop-daemon"
env_text=$("$LAB" up --mode dr --directors 1 --name "fvs-$RUN_ID-adm" --big-mib 1 2>"$WORK/lab.err") && {
    eval "$env_text"
    LAB_NAME=$FVS_LAB_NAME
    {
        echo "ferrovs {"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers 1"
        echo "    control_socket $WORK/d1.sock"
        echo "    http_listen 127.0.0.1:19281"
        echo "}"
        echo "virtual_server $FVS_VIP 80 {"
        echo "    lb_kind DR"
        echo "    protocol TCP"
        for ip in $FVS_RS_IPS; do echo "    real_server $ip 80"; done
        echo "}"
    } >"$WORK/adm.conf"
    rm -f "$WORK/d1.sock"
    if start_ferrovs 1 "$WORK/adm.conf"; then
        check "no sync daemon at start" [ -z "$(adm 1 -L --daemon)" ]
        adm 1 --start-daemon master --mcast-interface "$FVS_DIRECTOR_IF_CLIENT" --syncid 9 --mcast-port 8849 --mcast-ttl 2
        check "--start-daemon master" [ $? = 0 ]
        wait_until 3 bash -c "[ -n \"\$(FERROVS_CTL=$WORK/d1.sock $FERROVSADM -L --daemon)\" ]"
        check "-L --daemon lists it ($(adm 1 -L --daemon))" \
            [ "$(adm 1 -L --daemon)" = "master sync daemon (mcast=$FVS_DIRECTOR_IF_CLIENT, syncid=9, maxlen=1472, group=224.0.0.81, port=8849, ttl=2)" ]
        err=$(adm 1 --start-daemon master --mcast-interface "$FVS_DIRECTOR_IF_CLIENT" 2>&1)
        check "a second master is refused ($err)" bash -c "[[ '$err' == *'already running'* ]]"
        err=$(adm 1 --start-daemon backup --mcast-interface nosuchif0 2>&1)
        check "an unknown interface is refused ($err)" bash -c "[[ '$err' == *nosuchif0* ]]"
        err=$(adm 1 --start-daemon backup --syncid 300 2>&1)
        check "a bad sync id is refused in ipvsadm's words ($err)" bash -c "[[ '$err' == *'illegal syncid specified'* ]]"
        adm 1 --stop-daemon master
        wait_until 3 bash -c "[ -z \"\$(FERROVS_CTL=$WORK/d1.sock $FERROVSADM -L --daemon)\" ]"
        check "--stop-daemon master stops it" [ -z "$(adm 1 -L --daemon)" ]
        err=$(adm 1 --stop-daemon master 2>&1)
        check "stopping it again is refused ($err)" bash -c "[[ '$err' == *'no master sync daemon'* ]]"
    else
        bad "ferrovs did not start: $(tail -3 "$WORK/d1.log")"
    fi
    stop_all
    "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    LAB_NAME=""
} || bad "lab did not come up: $(tail -2 "$WORK/lab.err")"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
