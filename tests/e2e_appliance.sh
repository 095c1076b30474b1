#!/usr/bin/env bash
# End-to-end tests of the appliance: `ferrovs run` on AF_XDP in a lab of
# network namespaces (scripts/lab.sh), real curl clients, real HTTP servers.
#
#   tests/e2e_appliance.sh [dr nat fullnat tun]     (default: all four)
#   BACKEND=afpacket|dpdk tests/e2e_appliance.sh ... (default afxdp;
#                        tests/e2e_afpacket.sh, tests/e2e_dpdk.sh)
#   OFFLOADS=on tests/e2e_appliance.sh ...           (TSO/GSO left on)
#   FAST_PATH=on tests/e2e_appliance.sh dr           (xdp_fast_path on: the
#                        lab's veths need it asked for; see below)
#
# With BACKEND=dpdk the director's veths are handed to DPDK (net_af_packet
# vdevs, two queue pairs each) the way a NIC is bound to vfio-pci: the
# kernel keeps no address, ARP or IPv6 on them. The director's addresses and
# routes go on the exception TAPs ferrovs creates (fvs0, fvs1), so health
# checks (HTTP_GET on every server) and VRRP (against Debian's keepalived in
# a second director) run through the exception path, which is tested too.
#
# For each forwarding mode, with 2 workers: rr, wrr, wlc and sh/mh with
# persistence; mode-specific checks (client address seen by the servers,
# replies around the director, NAT port mapping, FULLNAT local addresses);
# ferrovsadm output and connection entries. In DR and NAT also: drain and
# delete under a running download, live reload (SIGHUP) under a running
# download, and a bad configuration on reload. Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
# shellcheck source=scripts/lab-dpdk.sh
. "$ROOT/scripts/lab-dpdk.sh"
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
MODES=${*:-dr nat fullnat tun}
BACKEND=${BACKEND:-afxdp}
RUN_ID=e2e$$
PASS=0
FAIL=0
CURRENT_LAB=""
FERROVS_PID=""
WORK=$(mktemp -d /tmp/ferrovs-e2e.XXXXXX)

[ "$(id -u)" -eq 0 ] || { echo "e2e tests need root (network namespaces)" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] && [ -x "$FERROVSADM" ] || { echo "build first: cargo build --release -p ferrovs-controlplane" >&2; echo "0 passed, 1 failed"; exit 1; }

cleanup() {
    stop_keepalived
    stop_ferrovs
    [ -n "$CURRENT_LAB" ] && "$LAB" down "$CURRENT_LAB" >/dev/null 2>&1
    CURRENT_LAB=""
    jobs -p | xargs -r kill 2>/dev/null
    rm -rf "$WORK"
    # The EAL makes its runtime directory even with --no-shconf.
    rm -rf /var/run/dpdk/fvs-"$RUN_ID"-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }
client_curl() { in_ns "$FVS_NS_CLIENT" curl -s --max-time 5 "$@"; }

stop_ferrovs() {
    if [ -n "$FERROVS_PID" ]; then
        kill -TERM "$FERROVS_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$FERROVS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FERROVS_PID" 2>/dev/null
        wait "$FERROVS_PID" 2>/dev/null
        FERROVS_PID=""
    fi
}

vrrp_state() {
    FERROVS_CTL=$WORK/ctl.sock "$FERROVS" status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["vrrp"][0]["state"])' 2>/dev/null || echo DOWN
}

start_ferrovs() {
    local conf=$1
    if [ "$BACKEND" = dpdk ] && ! in_ns "$FVS_NS_DIRECTOR" ip link show fvs0 >/dev/null 2>&1; then
        dpdk_take_nics
    fi
    # `ip netns exec` execs ferrovs in place, so $! is ferrovs itself.
    FERROVS_CTL=$WORK/ctl.sock ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$conf" >>"$WORK/ferrovs.log" 2>&1 &
    FERROVS_PID=$!
    for _ in $(seq 100); do
        if [ -S "$WORK/ctl.sock" ] && adm -Ln >/dev/null 2>&1; then
            [ "$BACKEND" = dpdk ] || return 0
            dpdk_addresses || break
            # ferrovs follows the addresses (every 2 s); VRRP takes the
            # VIP after its master-down interval.
            for _ in $(seq 100); do
                [ "$(vrrp_state)" = MASTER ] && grep -q "fvs1: addresses now" "$WORK/ferrovs.log" && return 0
                sleep 0.1
            done
            echo "ferrovs (DPDK) did not take the VIP: $(vrrp_state)" >&2
            break
        fi
        kill -0 "$FERROVS_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "ferrovs did not start:" >&2
    tail -20 "$WORK/ferrovs.log" >&2
    return 1
}

# write_conf FILE MODE SCHED [weights...] — a keepalived.conf for the lab.
write_conf() {
    local file=$1 mode=$2 sched=$3; shift 3
    local weights=("${@:-1 1 1}")
    [ $# -eq 0 ] && weights=(1 1 1)
    local kind rport=80 extra=""
    case $mode in
        dr) kind=DR ;;
        nat) kind=NAT; rport=8080 ;;
        tun) kind=TUN ;;
        fullnat) kind=FNAT; extra="    laddr_group_name LAG1" ;;
    esac
    {
        echo "! ferrovs e2e ($mode, $sched)"
        echo "global_defs {"
        echo "    router_id FVS_E2E"
        echo "}"
        echo "ferrovs {"
        if [ "$BACKEND" = dpdk ]; then
            echo "    backend dpdk"
            echo "    interface fvs0"
            echo "    interface fvs1"
            echo "    dpdk {"
            echo "        eal_args \"--no-huge -m 512 --no-pci --no-shconf --file-prefix=fvs-$RUN_ID-$mode\""
            echo "        eal_args \"--vdev=net_af_packet0,iface=$FVS_DIRECTOR_IF_CLIENT,qpairs=2\""
            echo "        eal_args \"--vdev=net_af_packet1,iface=$FVS_DIRECTOR_IF_SERVER,qpairs=2\""
            echo "        port fvs0 net_af_packet0"
            echo "        port fvs1 net_af_packet1"
            echo "    }"
        else
            echo "    backend $BACKEND"
            echo "    interface $FVS_DIRECTOR_IF_CLIENT"
            echo "    interface $FVS_DIRECTOR_IF_SERVER"
        fi
        echo "    workers 2"
        echo "    conn_table_size 65536"
        [ "$BACKEND" = afxdp ] && [ "$FAST_PATH" != auto ] && echo "    xdp_fast_path $FAST_PATH"
        echo "}"
        if [ "$BACKEND" = dpdk ]; then
            echo "vrrp_instance VI_1 {"
            echo "    state MASTER"
            echo "    interface fvs0"
            echo "    virtual_router_id 51"
            echo "    priority 150"
            echo "    advert_int 1"
            echo "    virtual_ipaddress {"
            echo "        $FVS_VIP"
            # With two directors the NAT servers' gateway is a VRRP address.
            [ "$mode" = nat ] && echo "        $FVS_NAT_GW"
            echo "    }"
            echo "}"
        fi
        if [ "$mode" = fullnat ]; then
            echo "local_address_group LAG1 {"
            echo "    $FVS_LIP_RANGE"
            echo "}"
        fi
        echo "virtual_server $FVS_VIP 80 {"
        if [ "$BACKEND" = dpdk ]; then echo "    delay_loop 2"; else echo "    delay_loop 6"; fi
        echo "    lb_algo $sched"
        echo "    lb_kind $kind"
        echo "    protocol TCP"
        [ -n "$extra" ] && echo "$extra"
        local i=0
        for ip in $FVS_RS_IPS; do
            echo "    real_server $ip $rport {"
            echo "        weight ${weights[$i]}"
            if [ "$BACKEND" = dpdk ]; then
                echo "        HTTP_GET {"
                echo "            url {"
                echo "                path /health"
                echo "                status_code 200"
                echo "            }"
                echo "            connect_timeout 1"
                echo "            retry 1"
                echo "            delay_before_retry 1"
                echo "        }"
            fi
            echo "    }"
            i=$((i + 1))
        done
        echo "}"
    } >"$file"
}

# requests N [curl args...] — prints one server name per line.
requests() {
    local n=$1; shift
    for _ in $(seq "$n"); do client_curl "$@" "http://$FVS_VIP/" || echo "ERROR"; done
}

count_of() { grep -c "^$1\$" "$2" || true; }

within() { # within VALUE EXPECTED TOLERANCE
    local v=$1 e=$2 t=$3
    [ "$v" -ge $((e - t)) ] && [ "$v" -le $((e + t)) ]
}

all_from_servers() { ! grep -qv '^rs[123]$' "$1"; }

# set_sched SCHED [FLAGS] [PERSIST] — edit the live service.
set_sched() {
    local s=$1 flags=${2:-} p=${3:-}
    local args=(-E -t "$FVS_VIP:80" -s "$s")
    [ -n "$flags" ] && args+=(-b "$flags")
    [ -n "$p" ] && args+=(-p "$p")
    adm "${args[@]}"
}

set_weights() {
    local i=1 rport=80
    [ "$MODE" = nat ] && rport=8080
    local fwd
    case $MODE in dr) fwd=-g ;; nat) fwd=-m ;; tun) fwd=-i ;; fullnat) fwd=--fullnat ;; esac
    for w in "$@"; do
        local ipvar=FVS_RS${i}_IP
        adm -e -t "$FVS_VIP:80" -r "${!ipvar}:$rport" "$fwd" -w "$w" || return 1
        i=$((i + 1))
    done
}

test_schedulers() {
    local out=$WORK/answers
    # rr, equal weights: each server a third (each worker keeps its own
    # round-robin cursor, so allow a little slack).
    set_sched rr
    requests 60 >"$out"
    check "$MODE rr: every answer from a real server" all_from_servers "$out"
    check "$MODE rr: even split $(for r in rs1 rs2 rs3; do printf '%s=%s ' $r "$(count_of $r "$out")"; done)" \
        bash -c "[ $(count_of rs1 "$out") -ge 17 ] && [ $(count_of rs2 "$out") -ge 17 ] && [ $(count_of rs3 "$out") -ge 17 ]"

    # wrr 3:2:1.
    set_sched wrr && set_weights 3 2 1
    requests 60 >"$out"
    check "$MODE wrr 3:2:1: $(for r in rs1 rs2 rs3; do printf '%s=%s ' $r "$(count_of $r "$out")"; done)" \
        bash -c "$(declare -f within); within $(count_of rs1 "$out") 30 4 && within $(count_of rs2 "$out") 20 4 && within $(count_of rs3 "$out") 10 4"

    # wlc, equal weights: finished connections linger as inactive ones
    # (TIME_WAIT), which wlc counts; it sends new ones where the overhead is
    # least, so the servers' InActConn even out whatever came before.
    set_weights 1 1 1 && set_sched wlc
    requests 60 >"$out"
    local inact
    inact=$(adm -Ln | awk '$1 == "->" && $2 ~ /^198/ {print $6}' | sort -n | tr '\n' ' ')
    check "$MODE wlc: inactive connections even out (InActConn $inact)" \
        bash -c "set -- $inact; [ \$# -eq 3 ] && [ \$((\$3 - \$1)) -le 3 ]"

    # sh and mh with persistence: one client, one server; many clients, several.
    for s in sh mh; do
        set_sched "$s" "" 300
        requests 20 >"$out"
        check "$MODE $s+persistence: one client sticks to one server" \
            bash -c "[ \$(sort -u '$out' | wc -l) -eq 1 ] && grep -q '^rs' '$out'"
        : >"$out"
        for ip in $FVS_CLIENT_IPS; do client_curl --interface "$ip" "http://$FVS_VIP/" >>"$out" || echo ERROR >>"$out"; done
        check "$MODE $s+persistence: clients spread over servers ($(sort "$out" | uniq -c | tr -s ' \n' ' '))" \
            bash -c "all_from() { ! grep -qv '^rs[123]\$' \"\$1\"; }; all_from '$out' && [ \$(sort -u '$out' | wc -l) -ge 2 ]"
    done
    set_sched rr
}

test_mode_specifics() {
    local ip
    ip=$(client_curl "http://$FVS_VIP/ip")
    case $MODE in
        dr | tun)
            check "$MODE: the real server sees the real client ($ip)" \
                bash -c "echo '$ip' | grep -q 'client=$FVS_CLIENT_IP:'"
            requests 10 >/dev/null
            local out
            out=$(adm -Ln --stats --exact | awk -v v="$FVS_VIP:80" '$2 == v {print $5}')
            check "$MODE: replies bypass the director (service OutPkts=$out)" [ "$out" = 0 ]
            ;;
        nat)
            check "$MODE: port mapping VIP:80 to the servers' :8080 ($ip)" \
                bash -c "echo '$ip' | grep -q 'local=198.18.1.1[123]:8080' && echo '$ip' | grep -q 'client=$FVS_CLIENT_IP:'"
            ;;
        fullnat)
            check "$MODE: the real server sees a local address ($ip)" \
                bash -c "echo '$ip' | grep -Eq 'client=198\.18\.1\.10[0-3]:'"
            ;;
    esac
}

test_admin_output() {
    local l
    l=$(adm -Ln)
    check "$MODE: -Ln header lines are ipvsadm's" bash -c "printf '%s\n' '$l' | head -3 | diff -q - <(printf 'IP Virtual Server version 1.2.1 (size=65536)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n') >/dev/null"
    local fwd
    case $MODE in dr) fwd=Route ;; nat) fwd=Masq ;; tun) fwd=Tunnel ;; fullnat) fwd=FullNat ;; esac
    check "$MODE: -Ln server lines ($fwd)" \
        bash -c "[ \$(printf '%s\n' '$l' | grep -Ec '^  -> 198\.18\.1\.1[123]:[0-9]+ +$fwd +[0-9]+ +[0-9]+ +[0-9]+ +\$') -eq 3 ]"
    # A connection held open shows up in -Lnc.
    in_ns "$FVS_NS_CLIENT" curl -s --max-time 10 --limit-rate 200k -o /dev/null "http://$FVS_VIP/big" &
    local cpid=$!
    sleep 1
    local c
    c=$(adm -Lnc)
    kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
    check "$MODE: -Lnc lists the open connection" \
        bash -c "printf '%s\n' '$c' | head -2 | grep -q '^pro expire state       source             virtual            destination\$' && printf '%s\n' '$c' | grep -Eq '^TCP [0-9]{2}:[0-9]{2}  ESTABLISHED 198\.18\.0\.10:[0-9]+ +$FVS_VIP:80 '"
}

# big_download OUTFILE [rate] — background download of /big; sets DL_PID.
big_download() {
    (in_ns "$FVS_NS_CLIENT" curl -s --max-time 120 --limit-rate "${2:-8M}" "http://$FVS_VIP/big" | sha256sum | cut -d' ' -f1 >"$1") &
    DL_PID=$!
}

established_dest() {
    adm -Lnc | awk '$3 == "ESTABLISHED" && $5 == "'"$FVS_VIP:80"'" {print $6; exit}'
}

test_drain_and_delete() {
    local sum=$WORK/drain.sum pid dest
    big_download "$sum"
    pid=$DL_PID
    sleep 1.5
    dest=$(established_dest)
    if [ -z "$dest" ]; then bad "$MODE drain: no established download to drain"; kill "$pid"; return; fi
    local fwd
    case $MODE in dr) fwd=-g ;; nat) fwd=-m ;; tun) fwd=-i ;; fullnat) fwd=--fullnat ;; esac
    adm -e -t "$FVS_VIP:80" -r "$dest" "$fwd" -w 0
    local last=${dest%:*} name
    last=${last##*.}
    name=rs$((last - 10))
    requests 15 >"$WORK/after"
    check "$MODE drain: new connections avoid quiesced $name" bash -c "! grep -q '^$name\$' '$WORK/after' && ! grep -q ERROR '$WORK/after'"
    wait "$pid"
    check "$MODE drain: the running download from $name completed intact" [ "$(cat "$sum")" = "$FVS_BIG_SHA256" ]
    adm -d -t "$FVS_VIP:80" -r "$dest"
    check "$MODE delete: $dest removed live" bash -c "! FERROVS_CTL=$WORK/ctl.sock $FERROVSADM -Ln | grep -q '$dest'"
    requests 6 >"$WORK/after"
    check "$MODE delete: service still answers" all_from_servers "$WORK/after"
}

test_reload() {
    local conf=$1 sum=$WORK/reload.sum pid
    write_conf "$conf" "$MODE" rr 1 1 1
    kill -HUP "$FERROVS_PID"; sleep 0.5
    big_download "$sum"
    pid=$DL_PID
    sleep 1.5
    write_conf "$conf" "$MODE" wrr 5 1 1
    kill -HUP "$FERROVS_PID"
    sleep 0.5
    check "$MODE reload: new configuration in force" bash -c "FERROVS_CTL=$WORK/ctl.sock $FERROVSADM -Ln | grep -q '^TCP  $FVS_VIP:80 wrr\$' && FERROVS_CTL=$WORK/ctl.sock $FERROVSADM -Ln | grep -Eq '^  -> $FVS_RS1_IP:[0-9]+ +[A-Za-z]+ +5 '"
    wait "$pid"
    check "$MODE reload: download across the reload completed intact" [ "$(cat "$sum")" = "$FVS_BIG_SHA256" ]

    # A broken file is refused; the running configuration stays.
    local before after
    before=$(adm -Sn)
    printf 'virtual_server %s 80 {\n    lb_algo nosuchsched\n    real_server 999.1.1.1 80 {\n}\n' "$FVS_VIP" >"$conf"
    kill -HUP "$FERROVS_PID"
    sleep 0.5
    after=$(adm -Sn)
    check "$MODE bad reload: running configuration kept" [ "$before" = "$after" ]
    check "$MODE bad reload: error logged with its location" grep -Eq "ERROR.*$conf:[0-9]+:[0-9]+" "$WORK/ferrovs.log"
    requests 5 >"$WORK/after"
    check "$MODE bad reload: still serving" all_from_servers "$WORK/after"
}

# --- DPDK only: the exception path -------------------------------------

ka_state() {
    if in_ns "$FVS_NS_DIRECTOR2" ip -4 addr show dev "$FVS_DIRECTOR2_IF_CLIENT" | grep -q " $FVS_VIP/"; then echo MASTER; else echo BACKUP; fi
}
wait_until() { # wait_until SECONDS CMD... — polls every 100 ms
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
start_keepalived() { # PRIORITY
    KA_CONF=$WORK/ka-$1.conf
    {
        echo "global_defs {"
        echo "    router_id KA_D2"
        echo "}"
        echo "vrrp_instance VI_1 {"
        echo "    state BACKUP"
        echo "    interface $FVS_DIRECTOR2_IF_CLIENT"
        echo "    virtual_router_id 51"
        echo "    priority $1"
        echo "    advert_int 1"
        echo "    virtual_ipaddress {"
        echo "        $FVS_VIP"
        [ "$MODE" = nat ] && echo "        $FVS_NAT_GW"
        echo "    }"
        echo "}"
    } >"$KA_CONF"
    in_ns "$FVS_NS_DIRECTOR2" keepalived -n -l -D -P -f "$KA_CONF" \
        -p "$WORK/ka-$1.pid" -r "$WORK/ka-vrrp-$1.pid" -c "$WORK/ka-check-$1.pid" -b "$WORK/ka-bfd-$1.pid" >>"$WORK/ka.log" 2>&1 &
    KA_PID=$!
}
stop_keepalived() {
    [ -n "${KA_PID:-}" ] || return 0
    kill -TERM "$KA_PID" 2>/dev/null
    wait "$KA_PID" 2>/dev/null
    # keepalived's VRRP child outlives its parent.
    for _ in $(seq 50); do
        pgrep -f "keepalived .*$KA_CONF" >/dev/null || break
        sleep 0.1
    done
    pkill -KILL -f "keepalived .*$KA_CONF" 2>/dev/null
    KA_PID=""
}
in_list() { adm -Ln | grep -q " $1:"; }
not_in_list() { ! in_list "$1"; }
metric_sum() { # metric_sum NAME — summed over workers, from /metrics
    in_ns "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:9180/metrics |
        awk -v n="$1" '$1 ~ "^"n"\\{" {s += $2} END {print s + 0}'
}

xdp_on() { in_ns "$FVS_NS_DIRECTOR" ip link show dev "$1" | grep -q "prog/xdp"; }
xdp_off_both() { ! xdp_on "$FVS_DIRECTOR_IF_CLIENT" && ! xdp_on "$FVS_DIRECTOR_IF_SERVER"; }

# AF_XDP: the XDP program is on while ferrovs runs; the director's own
# traffic stays the kernel's and never reaches a worker; the program is gone
# after SIGKILL (its BPF link dies with the process) and after a start that
# fails half way; a restart serves again.
test_xdp_lifecycle() {
    # (The configuration file the suite started with was broken on purpose
    # by the reload tests.)
    local conf=$WORK/xdp.conf
    write_conf "$conf" "$MODE" rr
    check "$MODE afxdp: XDP program on both interfaces" \
        eval 'xdp_on "$FVS_DIRECTOR_IF_CLIENT" && xdp_on "$FVS_DIRECTOR_IF_SERVER"'
    # The director's own traffic: ping and a TCP exchange with a server in
    # the director's namespace, on its own address.
    local rx0 rx1
    rx0=$(metric_sum ferrovs_worker_rx_packets)
    in_ns "$FVS_NS_DIRECTOR" python3 -c 'import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("'"$FVS_DIRECTOR_IP_CLIENT"'", 2222)); s.listen(1); s.settimeout(10)
c,_=s.accept(); c.sendall(c.recv(100).upper()); c.close()' &
    local srv=$!
    sleep 0.3
    check "$MODE afxdp: ping to the director's own address" \
        eval 'in_ns "$FVS_NS_CLIENT" ping -c 10 -i 0.05 -W 1 -q "$FVS_DIRECTOR_IP_CLIENT" >/dev/null' 
    check "$MODE afxdp: TCP to the director's own address (as SSH would)" \
        eval '[ "$(in_ns "$FVS_NS_CLIENT" python3 -c "import socket; s=socket.create_connection((\"$FVS_DIRECTOR_IP_CLIENT\", 2222), 5); s.sendall(b\"hello\"); print(s.recv(100).decode())")" = HELLO ]'
    wait "$srv" 2>/dev/null
    rx1=$(metric_sum ferrovs_worker_rx_packets)
    # ARP copies may reach a worker (neighbour learning); ping and TCP may not.
    check "$MODE afxdp: the director's own traffic never reached a worker ($((rx1 - rx0)) frames)" \
        test $((rx1 - rx0)) -lt 5
    kill -KILL "$FERROVS_PID" 2>/dev/null
    wait "$FERROVS_PID" 2>/dev/null
    FERROVS_PID=""
    wait_until 5 xdp_off_both
    check "$MODE afxdp: no XDP program left after SIGKILL" xdp_off_both
    # A start that fails half way (the second interface does not exist).
    local bad_conf=$WORK/halfway.conf
    sed "s/^    interface $FVS_DIRECTOR_IF_SERVER\$/    interface $FVS_DIRECTOR_IF_SERVER\n    interface fvsnope0/" "$conf" >"$bad_conf"
    FERROVS_CTL=$WORK/ctl-bad.sock timeout 20 ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$bad_conf" >"$WORK/halfway.log" 2>&1
    check "$MODE afxdp: a start that fails half way says why" grep -q "fvsnope0" "$WORK/halfway.log" ||
        tail -5 "$WORK/halfway.log" >&2
    wait_until 5 xdp_off_both
    check "$MODE afxdp: no XDP program left after a failed start" xdp_off_both
    rm -f "$WORK/ctl.sock"
    if start_ferrovs "$conf"; then
        ok "$MODE afxdp: restarted after SIGKILL"
        requests 12 >"$WORK/after-kill"
        check "$MODE afxdp: serving again after the restart" all_from_servers "$WORK/after-kill"
    else
        bad "$MODE afxdp: restart after SIGKILL"
    fi
}

# The director's addresses are followed by netlink notification: an address
# added or removed is in the dataplane's snapshot at once, not at the next
# poll. (Bounded at 1 s, half the old poll's period; the time is printed.)
test_net_events() {
    local extra=${FVS_CLIENT_NET%.0/*}.222 n0 t0 t
    # The port as ferrovs names it: with DPDK, its exception interface.
    local ifc=$FVS_DIRECTOR_IF_CLIENT
    [ "$BACKEND" = dpdk ] && ifc=fvs0
    addr_lines() { grep -c "$ifc: addresses now" "$WORK/ferrovs.log"; }
    seen_within() { # MS CMD...: polls every 10 ms; prints the ms taken
        local limit=$1; shift
        t0=$(date +%s%N)
        while :; do
            "$@" && { echo $((($(date +%s%N) - t0) / 1000000)); return 0; }
            [ $((($(date +%s%N) - t0) / 1000000)) -ge "$limit" ] && return 1
            sleep 0.01
        done
    }
    has_extra() { grep "$ifc: addresses now" "$WORK/ferrovs.log" | tail -1 | grep -q "$extra,"; }
    lacks_extra() { [ "$(addr_lines)" -gt "$n0" ] && ! has_extra; }
    # The issue's bound: the kernel's change reaches the daemon at once
    # (rtnetlink notifications), not at the next poll.
    in_ns "$FVS_NS_DIRECTOR" ip addr add "$extra/32" dev "$ifc"
    t=$(seen_within 100 has_extra) && ok "$MODE: an address added to the director is followed (${t} ms)" ||
        bad "$MODE: an added address was not followed within 100 ms"
    n0=$(addr_lines)
    in_ns "$FVS_NS_DIRECTOR" ip addr del "$extra/32" dev "$ifc"
    t=$(seen_within 100 lacks_extra) && ok "$MODE: an address removed from the director is followed (${t} ms)" ||
        bad "$MODE: a removed address was not followed within 100 ms"

    # A link that goes away, with its address, is followed too: a veth
    # pair made in the director's namespace for this, then deleted (the
    # southbound logs links that come and go).
    local lk=fvsnl0 laddr=${FVS_CLIENT_NET%.0/*}.223
    link_logged() { grep -q "netlink: link $lk (index [0-9]*) $1" "$WORK/ferrovs.log"; }
    if in_ns "$FVS_NS_DIRECTOR" ip link add "$lk" type veth peer name "${lk}p" &&
        in_ns "$FVS_NS_DIRECTOR" ip addr add "$laddr/32" dev "$lk" &&
        in_ns "$FVS_NS_DIRECTOR" ip link set "$lk" up; then
        seen_within 1000 link_logged added >/dev/null ||
            bad "$MODE: a link added to the director was not logged within 1 s"
        in_ns "$FVS_NS_DIRECTOR" ip link del "$lk"
        t=$(seen_within 100 link_logged removed) && ok "$MODE: a link removed from the director is followed (${t} ms)" ||
            bad "$MODE: a removed link was not followed within 100 ms"
    else
        bad "$MODE: could not make a veth pair in the director's namespace"
        in_ns "$FVS_NS_DIRECTOR" ip link del "$lk" 2>/dev/null
    fi
}

# AF_PACKET cannot forward GSO super-frames: when a sender has TSO on, the
# drop is counted and the log names the command that fixes the sender.
# Replies from rs1 reach the director unsegmented once both rs1's veth and
# the switch's port towards the director keep TSO on.
test_afpacket_gso() {
    local rs1ns=${FVS_NS_RS%% *} swif=p$FVS_DIRECTOR_IF_SERVER
    in_ns "$rs1ns" ethtool -K "$FVS_RS1_IF" tx on tso on gso on >/dev/null
    in_ns "$FVS_NS_SWITCH" ethtool -K "$swif" tx on tso on gso on >/dev/null
    for _ in 1 2 3; do client_curl --max-time 2 -o /dev/null "http://$FVS_VIP/big"; done
    wait_until 6 grep -q "GSO super-frames" "$WORK/ferrovs.log"
    check "$MODE afpacket: GSO drops are logged with the fix" \
        grep -q "ethtool -K IFACE tso off gso off" "$WORK/ferrovs.log"
    check "$MODE afpacket: GSO drops are counted in /metrics" \
        test "$(metric_sum ferrovs_afpacket_rx_gso_total)" -gt 0
    in_ns "$rs1ns" ethtool -K "$FVS_RS1_IF" tx off tso off gso off >/dev/null
    in_ns "$FVS_NS_SWITCH" ethtool -K "$swif" tx off tso off gso off >/dev/null
}

test_exception_path() {
    check "$MODE dpdk: the client pings the director's own address (through the TAP)" \
        bash -c "ip netns exec '$FVS_NS_CLIENT' ping -c 3 -W 1 -q '$FVS_DIRECTOR_IP_CLIENT' | grep -q ' 3 received, 0% packet loss'"
    local kout kin
    kout=$(metric_sum ferrovs_worker_kernel_out_packets_total)
    kin=$(metric_sum ferrovs_worker_kernel_in_packets_total)
    check "$MODE dpdk: frames both ways on the exception path (to kernel $kout, from kernel $kin)" \
        bash -c "[ '$kout' -gt 0 ] && [ '$kin' -gt 0 ]"
    local pool
    pool=$(metric_sum ferrovs_mempool_buffers)
    check "$MODE dpdk: mempool occupancy exported (pool of $pool buffers)" [ "$pool" -gt 0 ]

    # HTTP_GET from the director's kernel to the real servers, through the
    # exception path both ways.
    "$LAB" rs-fail "$CURRENT_LAB" rs1 500 >/dev/null
    if wait_until 12 not_in_list "$FVS_RS1_IP"; then ok "$MODE dpdk: HTTP_GET takes failing rs1 out"; else bad "$MODE dpdk: rs1 still listed after failing"; fi
    "$LAB" rs-ok "$CURRENT_LAB" rs1 >/dev/null
    if wait_until 12 in_list "$FVS_RS1_IP"; then ok "$MODE dpdk: HTTP_GET brings rs1 back"; else bad "$MODE dpdk: rs1 did not come back"; fi

    # VRRP with Debian's keepalived on the second director: ferrovs's
    # adverts leave through the TAP, keepalived's come in through it.
    start_keepalived 100
    sleep 4.5
    check "$MODE dpdk: keepalived (100) hears ferrovs (150) and stays BACKUP" [ "$(ka_state)" = BACKUP ]
    check "$MODE dpdk: ferrovs stays MASTER" [ "$(vrrp_state)" = MASTER ]
    stop_keepalived
    start_keepalived 200
    if wait_until 10 bash -c "[ \"\$(FERROVS_CTL=$WORK/ctl.sock $FERROVS status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"vrrp\"][0][\"state\"])')\" = BACKUP ]"; then
        ok "$MODE dpdk: keepalived (200) preempts, ferrovs hears it and backs off"
    else
        bad "$MODE dpdk: ferrovs did not back off ($(vrrp_state), keepalived $(ka_state))"
        tail -15 "$WORK/ka.log"; grep -i vrrp "$WORK/ferrovs.log" | tail -10
    fi
    stop_keepalived
    if wait_until 6 bash -c "[ \"\$(FERROVS_CTL=$WORK/ctl.sock $FERROVS status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"vrrp\"][0][\"state\"])')\" = MASTER ]"; then
        ok "$MODE dpdk: keepalived stops, ferrovs is MASTER again"
    else
        bad "$MODE dpdk: ferrovs did not take the VIP back ($(vrrp_state))"
    fi
    requests 6 >"$WORK/after"
    check "$MODE dpdk: serving again after the VRRP round trip" all_from_servers "$WORK/after"
}

# FAST_PATH=on turns the XDP fast path on for the lab's veths (auto leaves it
# off there): established DR flows are forwarded by ferrovs's XDP program.
# A veth delivers what an XDP program transmits only if its peer runs an
# XDP program too, so the director's peers in the switch get one that
# passes everything.
FAST_PATH=${FAST_PATH:-auto}
case $FAST_PATH in on | off | auto) ;; *) echo "FAST_PATH=on|off|auto" >&2; exit 2 ;; esac
xdp_pass_peers() {
    local obj=$WORK/xdp_pass.o
    if [ ! -f "$obj" ]; then
        printf '%s\n' '#include <linux/bpf.h>' \
            '__attribute__((section("xdp"), used)) int pass(struct xdp_md *c) { return XDP_PASS; }' \
            '__attribute__((section("license"), used)) char LICENSE[] = "GPL";' >"$WORK/xdp_pass.c"
        clang -O2 -target bpf -idirafter "/usr/include/$(gcc -dumpmachine)" \
            -c "$WORK/xdp_pass.c" -o "$obj" || return 1
    fi
    local i
    for i in "$FVS_DIRECTOR_IF_CLIENT" "$FVS_DIRECTOR_IF_SERVER"; do
        ip -n "$FVS_NS_SWITCH" link set dev "p$i" xdpdrv obj "$obj" sec xdp || return 1
    done
}

# DR with the fast path on: after the handshake a connection's segments are
# forwarded by the XDP program (its counter grows, the workers' receive
# counters by less than the segments sent); the FIN still reaches a worker,
# which takes the entry back; answers still come from the servers.
test_fast_path() {
    local fp0 off0 rm0 rx0 fp1 off1 rm1 rx1
    fp0=$(metric_sum ferrovs_xdp_prog_fast_path_total)
    off0=$(metric_sum ferrovs_worker_fast_path_offloaded_total)
    rm0=$(metric_sum ferrovs_worker_fast_path_removed_total)
    rx0=$(metric_sum ferrovs_worker_rx_packets_total)
    # One download of /big: many segments (the client's ACKs) on one
    # established flow, which must arrive intact; then short connections.
    local sum
    sum=$(in_ns "$FVS_NS_CLIENT" curl -s --max-time 60 "http://$FVS_VIP/big" | sha256sum | cut -d' ' -f1)
    requests 10 >"$WORK/fast"
    sleep 1.2 # the per-server counters are harvested every second
    fp1=$(metric_sum ferrovs_xdp_prog_fast_path_total)
    off1=$(metric_sum ferrovs_worker_fast_path_offloaded_total)
    rm1=$(metric_sum ferrovs_worker_fast_path_removed_total)
    rx1=$(metric_sum ferrovs_worker_rx_packets_total)
    check "$MODE fast path: download intact" [ "$sum" = "$FVS_BIG_SHA256" ]
    check "$MODE fast path: answers from the servers" all_from_servers "$WORK/fast"
    check "$MODE fast path: connections offloaded ($((off1 - off0)))" [ $((off1 - off0)) -ge 10 ]
    check "$MODE fast path: segments forwarded in XDP ($((fp1 - fp0)); workers received $((rx1 - rx0)))" \
        [ $((fp1 - fp0)) -gt 0 ]
    check "$MODE fast path: FIN reached the workers, entries taken back ($((rm1 - rm0)))" \
        [ $((rm1 - rm0)) -ge 10 ]
}

# OFFLOADS=on leaves TSO/GSO and checksum offload on the lab's veths, as a
# container or VM lab has them: the AF_XDP backend must cope (its XDP program
# makes the director's peers segment; partial checksums are completed).
OFFLOADS=${OFFLOADS:-off}
LAB_UP_ARGS=(--offloads "$OFFLOADS")
[ "$BACKEND" = dpdk ] && LAB_UP_ARGS+=(--directors 2)

for MODE in $MODES; do
    echo "# mode $MODE ($BACKEND, offloads $OFFLOADS)"
    env_text=$("$LAB" up --mode "$MODE" --name "fvs-$RUN_ID-$MODE" "${LAB_UP_ARGS[@]}" 2>"$WORK/lab.err") || {
        bad "$MODE: lab did not come up: $(tail -3 "$WORK/lab.err")"
        continue
    }
    eval "$env_text"
    CURRENT_LAB=$FVS_LAB_NAME
    if [ "$BACKEND" = afxdp ] && [ "$FAST_PATH" = on ] && ! xdp_pass_peers; then
        bad "$MODE: no XDP program on the director's peers (FAST_PATH=on)"
    fi
    : >"$WORK/ferrovs.log"
    conf=$WORK/$MODE.conf
    write_conf "$conf" "$MODE" rr
    if start_ferrovs "$conf"; then
        ok "$MODE: ferrovs started with 2 workers"
        test_schedulers
        test_mode_specifics
        test_admin_output
        if [ "$MODE" = dr ] || [ "$MODE" = nat ]; then
            test_drain_and_delete
            test_reload "$conf"
        fi
        [ "$BACKEND" = dpdk ] && test_exception_path
        [ "$MODE" = dr ] && test_net_events
        [ "$BACKEND" = afxdp ] && [ "$MODE" = dr ] && [ "$FAST_PATH" = on ] && test_fast_path
        [ "$BACKEND" = afxdp ] && [ "$MODE" = dr ] && test_xdp_lifecycle
        [ "$BACKEND" = afpacket ] && [ "$MODE" = nat ] && [ "$OFFLOADS" = off ] && test_afpacket_gso
    else
        bad "$MODE: ferrovs did not start"
    fi
    stop_ferrovs
    check "$MODE: ferrovs stopped cleanly on SIGTERM" grep -q "ferrovs stopped" "$WORK/ferrovs.log"
    "$LAB" down "$CURRENT_LAB" >/dev/null 2>&1
    CURRENT_LAB=""
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
