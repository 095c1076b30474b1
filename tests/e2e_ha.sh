#!/usr/bin/env bash
# End-to-end tests of high availability in the namespace lab: two ferrovs
# directors, and ferrovs with the real keepalived (Debian's, VRRP only) as
# its peer, in both roles, VRRPv2 and v3, multicast and unicast, auth PASS;
# and VRRPv3 over IPv6 with keepalived in both roles (part ipv6).
#
#   tests/e2e_ha.sh [pair keepalived scripts reload upgrade lnc stall strangers garp ipv6]   (default: all)
#
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
# The other binaries next to it (a CARGO_TARGET_DIR build puts them there).
FERROVSADM=${FERROVSADM:-$(dirname "$FERROVS")/ferrovsadm}
PKTGEN=${PKTGEN:-$(dirname "$FERROVS")/ferrovs-pktgen}
PARTS=${*:-pair keepalived scripts reload upgrade lnc stall strangers garp ipv6}
RUN_ID=ha$$
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-ha.XXXXXX)
# The ipv6 part's HTTP servers' run directories: outside $WORK, whose
# processes stop_all ends between the roles.
WORK6=$(mktemp -d /tmp/ferrovs-ha6.XXXXXX)
LAB_NAME=""
declare -A PIDS=()

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first: cargo build --release -p ferrovs-controlplane" >&2; echo "0 passed, 1 failed"; exit 1; }
command -v keepalived >/dev/null || { echo "keepalived is not installed" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

stop_all() {
    for k in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$k]}" 2>/dev/null
    done
    sleep 0.5
    for k in "${!PIDS[@]}"; do
        kill -KILL "${PIDS[$k]}" 2>/dev/null
        wait "${PIDS[$k]}" 2>/dev/null
    done
    PIDS=()
    # keepalived's VRRP child outlives its parent: wait for every process
    # of this run to be gone before the next one starts.
    pkill -f "$WORK/" 2>/dev/null
    for _ in $(seq 30); do pgrep -f "$WORK/" >/dev/null || break; sleep 0.1; done
    pkill -KILL -f "$WORK/" 2>/dev/null
    rm -f "$WORK"/ka*.pid
}
cleanup() {
    stop_all
    declare -F stop_httpd6 >/dev/null && stop_httpd6
    rm -rf "$WORK6"
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_up() {
    local env_text
    env_text=$("$LAB" up --mode dr --directors 2 --name "fvs-$RUN_ID-$1" --big-mib 1 2>"$WORK/lab.err") || {
        bad "lab did not come up: $(tail -2 "$WORK/lab.err")"
        return 1
    }
    eval "$env_text"
    LAB_NAME=$FVS_LAB_NAME
}
lab_down() {
    stop_all
    "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    LAB_NAME=""
}

# vrrp_block NAME IF PRIO VERSION MODE(mcast|ucast) SRC PEER [extra lines...]
vrrp_block() {
    local name=$1 ifc=$2 prio=$3 ver=$4 mode=$5 src=$6 peer=$7; shift 7
    echo "vrrp_instance VI_1 {"
    echo "    state BACKUP"
    echo "    interface $ifc"
    echo "    virtual_router_id 51"
    echo "    priority $prio"
    echo "    advert_int ${ADVERT_INT:-1}"
    echo "    version $ver"
    if [ "$ver" = 2 ]; then
        echo "    authentication {"
        echo "        auth_type PASS"
        echo "        auth_pass s3cret"
        echo "    }"
    fi
    if [ "$mode" = ucast ]; then
        echo "    unicast_src_ip $src"
        echo "    unicast_peer {"
        echo "        $peer"
        echo "    }"
    fi
    for l in "$@"; do echo "    $l"; done
    echo "    virtual_ipaddress {"
    echo "        $FVS_VIP/32"
    echo "    }"
    echo "}"
}

# ferrovs_conf FILE DIRECTOR(1|2) PRIO VERSION MODE [vrrp extra lines...]
ferrovs_conf() {
    local file=$1 dn=$2 prio=$3 ver=$4 mode=$5; shift 5
    local ifa ifb src peer
    if [ "$dn" = 1 ]; then
        ifa=$FVS_DIRECTOR_IF_CLIENT ifb=$FVS_DIRECTOR_IF_SERVER src=$FVS_DIRECTOR_IP_CLIENT peer=$FVS_DIRECTOR2_IP_CLIENT
    else
        ifa=$FVS_DIRECTOR2_IF_CLIENT ifb=$FVS_DIRECTOR2_IF_SERVER src=$FVS_DIRECTOR2_IP_CLIENT peer=$FVS_DIRECTOR_IP_CLIENT
    fi
    {
        echo "global_defs {"
        echo "    router_id FVS_D$dn"
        echo "    script_user root"
        echo "}"
        echo "ferrovs {"
        echo "    interface $ifa"
        echo "    interface $ifb"
        echo "    workers 1"
        echo "    control_socket $WORK/d$dn.sock"
        echo "    http_listen 127.0.0.1:$((19180 + dn))"
        [ -n "${EXTRA_FERROVS:-}" ] && echo "$EXTRA_FERROVS"
        echo "}"
        [ -n "${EXTRA_GLOBAL:-}" ] && echo "$EXTRA_GLOBAL"
        vrrp_block VI_1 "$ifa" "$prio" "$ver" "$mode" "$src" "$peer" "$@"
        echo "virtual_server $FVS_VIP 80 {"
        echo "    lb_algo rr"
        echo "    lb_kind DR"
        echo "    protocol TCP"
        for ip in $FVS_RS_IPS; do echo "    real_server $ip 80 { weight 1 }"; done
        echo "}"
    } >"$file"
}

keepalived_conf() {
    local file=$1 prio=$2 ver=$3 mode=$4; shift 4
    {
        echo "global_defs {"
        echo "    router_id KA_D2"
        echo "    vrrp_version $ver"
        echo "}"
        vrrp_block VI_1 "$FVS_DIRECTOR2_IF_CLIENT" "$prio" "$ver" "$mode" "$FVS_DIRECTOR2_IP_CLIENT" "$FVS_DIRECTOR_IP_CLIENT" "$@"
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
start_keepalived() { # CONF
    ip netns exec "$FVS_NS_DIRECTOR2" keepalived -n -l -D -P -f "$1" \
        -p "$WORK/ka.pid" -r "$WORK/ka-vrrp.pid" -c "$WORK/ka-check.pid" -b "$WORK/ka-bfd.pid" >>"$WORK/ka.log" 2>&1 &
    PIDS[ka]=$!
}
kill9() {
    kill -KILL "${PIDS[$1]}" 2>/dev/null
    wait "${PIDS[$1]}" 2>/dev/null
    unset "PIDS[$1]"
}
term() { kill -TERM "${PIDS[$1]}" 2>/dev/null; wait "${PIDS[$1]}" 2>/dev/null; unset "PIDS[$1]"; }

ferrovs_state() { # DIRECTOR
    FERROVS_CTL=$WORK/d$1.sock "$FERROVS" status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["vrrp"][0]["state"])' 2>/dev/null || echo DOWN
}
# grep reads all of ip's output: with -q it would exit at the first match,
# ip could die of SIGPIPE, and pipefail would call a MASTER a BACKUP.
ka_state() {
    if ip netns exec "$FVS_NS_DIRECTOR2" ip -4 addr show dev "$FVS_DIRECTOR2_IF_CLIENT" | grep " $FVS_VIP/" >/dev/null; then echo MASTER; else echo BACKUP; fi
}
# wait_for SECONDS CMD EXPECTED — polls every 50 ms; prints the seconds taken.
wait_for() {
    local limit=$1 cmd=$2 want=$3 t0 now
    t0=$(date +%s%N)
    while :; do
        [ "$($cmd)" = "$want" ] && { now=$(date +%s%N); echo "scale=2; ($now - $t0) / 1000000000" | bc; return 0; }
        now=$(date +%s%N)
        [ $(((now - t0) / 1000000)) -ge $((limit * 1000)) ] && return 1
        sleep 0.05
    done
}
d1() { ferrovs_state 1; }
d2() { ferrovs_state 2; }

vip_mac() { ip netns exec "$FVS_NS_CLIENT" ip neigh show "$FVS_VIP" | awk '{print $5}'; }

test_pair() {
    echo "# two ferrovs directors"
    lab_up pair || return
    ferrovs_conf "$WORK/d1.conf" 1 150 2 mcast
    ferrovs_conf "$WORK/d2.conf" 2 100 2 mcast
    start_ferrovs 2 "$WORK/d2.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    local t
    t=$(wait_for 8 d1 MASTER) && ok "higher priority becomes MASTER (${t}s)" || bad "director 1 never became MASTER ($(d1))"
    check "lower priority stays BACKUP" [ "$(d2)" = BACKUP ]
    local got
    got=$(ip netns exec "$FVS_NS_CLIENT" curl -s --max-time 3 "http://$FVS_VIP/")
    check "the master serves the VIP ($got)" bash -c "[[ '$got' == rs? ]]"
    check "the client's ARP entry for the VIP is director 1's MAC" [ "$(vip_mac)" = "$FVS_DIRECTOR_MAC_CLIENT" ]

    # Failover under a client loop: requests every 100 ms.
    (for _ in $(seq 120); do
        if ip netns exec "$FVS_NS_CLIENT" curl -s --max-time 0.3 "http://$FVS_VIP/" >/dev/null; then echo "$(date +%s%N) ok"; else echo "$(date +%s%N) fail"; fi
        sleep 0.1
    done) >"$WORK/loop" &
    local loop=$!
    sleep 2
    kill9 d1
    t=$(wait_for 8 d2 MASTER) && ok "kill -9 of the master: backup takes over in ${t}s (master-down 3.61s)" || bad "backup did not take over"
    check "takeover within the master-down interval" bash -c "[ \$(echo '${t:-99} <= 4.2' | bc) = 1 ]"
    wait "$loop"
    local gap
    gap=$(python3 - "$WORK/loop" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
longest, start = 0, None
for t, r in rows:
    t = int(t) / 1e9
    if r == "fail":
        start = t if start is None else start
    else:
        if start is not None:
            longest = max(longest, t - start)
        start = None
print(f"{longest:.2f}" if rows and rows[-1][1] == "ok" else "999")
PY
)
    check "the client loop sees only the takeover gap (${gap}s)" bash -c "[ \$(echo '$gap <= 5.0' | bc) = 1 ]"
    check "after failover the client reaches the VIP through director 2" [ "$(vip_mac)" = "$FVS_DIRECTOR2_MAC_CLIENT" ]

    # The old master returns and preempts.
    start_ferrovs 1 "$WORK/d1.conf"
    t=$(wait_for 8 d1 MASTER) && ok "returning master preempts (${t}s)" || bad "returning master did not preempt"
    t=$(wait_for 4 d2 BACKUP) && ok "director 2 back to BACKUP" || bad "director 2 stayed $(d2)"

    # With nopreempt it does not.
    kill9 d1
    wait_for 8 d2 MASTER >/dev/null
    ferrovs_conf "$WORK/d1np.conf" 1 150 2 mcast nopreempt
    start_ferrovs 1 "$WORK/d1np.conf"
    sleep 5
    check "nopreempt: the returning higher priority stays BACKUP ($(d1))" [ "$(d1)" = BACKUP ]
    check "nopreempt: director 2 stays MASTER" [ "$(d2)" = MASTER ]

    # A clean stop sends priority 0: the backup takes over in about skew.
    term d2
    t=$(wait_for 4 d1 MASTER) && ok "SIGTERM: priority 0 hands over in ${t}s (skew 0.41s)" || bad "no handover after SIGTERM"
    check "handover after SIGTERM well under master-down" bash -c "[ \$(echo '${t:-99} <= 1.5' | bc) = 1 ]"
    lab_down
}

test_keepalived() {
    echo "# ferrovs with keepalived as the peer"
    lab_up ka || return
    local ver mode
    for ver in ${HA_VERSIONS:-2 3}; do
        for mode in ${HA_MODES:-mcast ucast}; do
            local tag="v$ver $mode"
            # ferrovs higher: it wins, keepalived backs off; kill it, keepalived takes over.
            ferrovs_conf "$WORK/d1.conf" 1 150 "$ver" "$mode"
            keepalived_conf "$WORK/ka.conf" 100 "$ver" "$mode"
            : >"$WORK/ka.log"
            start_keepalived "$WORK/ka.conf"
            start_ferrovs 1 "$WORK/d1.conf"
            local t
            t=$(wait_for 10 d1 MASTER) && ok "$tag: ferrovs (150) wins against keepalived (100) (${t}s)" || bad "$tag: ferrovs did not become MASTER ($(d1))"
            wait_for 5 ka_state BACKUP >/dev/null
            check "$tag: keepalived is BACKUP" [ "$(ka_state)" = BACKUP ]
            kill9 d1
            t=$(wait_for 8 ka_state MASTER) && ok "$tag: kill -9 ferrovs, keepalived takes over in ${t}s" || bad "$tag: keepalived did not take over"
            # keepalived higher: ferrovs backs off; a clean keepalived stop hands over.
            stop_all
            ferrovs_conf "$WORK/d1.conf" 1 100 "$ver" "$mode"
            keepalived_conf "$WORK/ka.conf" 150 "$ver" "$mode"
            : >"$WORK/ka.log"
            start_keepalived "$WORK/ka.conf"
            sleep 4.5
            start_ferrovs 1 "$WORK/d1.conf"
            sleep 4.5
            check "$tag: keepalived (150) stays MASTER" [ "$(ka_state)" = MASTER ]
            check "$tag: ferrovs (100) is BACKUP" [ "$(d1)" = BACKUP ]
            # Only the master may answer ARP for the VIP: the client, asking
            # afresh, learns keepalived's MAC.
            ip netns exec "$FVS_NS_CLIENT" ip neigh flush to "$FVS_VIP" 2>/dev/null
            ip netns exec "$FVS_NS_CLIENT" curl -s --max-time 1 -o /dev/null "http://$FVS_VIP/" 2>/dev/null
            sleep 0.3
            check "$tag: a backup ferrovs does not answer ARP for the VIP ($(vip_mac))" [ "$(vip_mac)" = "$FVS_DIRECTOR2_MAC_CLIENT" ]
            term ka
            t=$(wait_for 5 d1 MASTER) && ok "$tag: keepalived stops cleanly, ferrovs takes over in ${t}s" || bad "$tag: ferrovs did not take over after keepalived stopped"
            stop_all
        done
    done
    lab_down
}

test_scripts() {
    echo "# notify scripts and vrrp_script weights"
    lab_up scr || return
    local flag=$WORK/fail-flag notes=$WORK/notes
    cat >"$WORK/notify.sh" <<EOF
#!/bin/sh
echo "\$*" >> $notes
EOF
    chmod 755 "$WORK/notify.sh"
    printf '#!/bin/sh\n! test -f %s\n' "$flag" >"$WORK/check.sh"
    chmod 755 "$WORK/check.sh"
    EXTRA_GLOBAL=$(printf 'vrrp_script chk {\n    script %s\n    interval 1\n    weight -60\n    fall 2\n    rise 2\n}' "$WORK/check.sh")
    ferrovs_conf "$WORK/d1.conf" 1 150 2 mcast "notify $WORK/notify.sh" "notify_master \"$WORK/notify.sh master-hook\"" "track_script {" "    chk" "}"
    EXTRA_GLOBAL="" ferrovs_conf "$WORK/d2.conf" 2 100 2 mcast
    start_ferrovs 2 "$WORK/d2.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    if ! wait_for 10 d1 MASTER >/dev/null; then
        bad "director 1 not MASTER ($(d1)): $(tail -3 "$WORK/d1.log")"
        lab_down
        return
    fi
    ok "director 1 MASTER with its script passing"
    sleep 0.5
    check "notify ran with keepalived's arguments (INSTANCE VI_1 MASTER 150)" grep -qx "INSTANCE VI_1 MASTER 150" "$notes"
    check "notify_master ran" grep -qx "master-hook" "$notes"
    touch "$flag"
    local t
    t=$(wait_for 10 d2 MASTER) && ok "a failing vrrp_script (weight -60) moves mastership (${t}s)" || bad "mastership did not move ($(d1)/$(d2))"
    check "director 1 went BACKUP and notify said so" bash -c "[ \$(FERROVS_CTL=$WORK/d1.sock $FERROVS status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"vrrp\"][0][\"effective_priority\"])') = 90 ] && grep -qx 'INSTANCE VI_1 BACKUP 90' '$notes'"
    rm -f "$flag"
    t=$(wait_for 10 d1 MASTER) && ok "script passing again: director 1 preempts back (${t}s)" || bad "director 1 did not come back"
    lab_down
}

d1_field() { # FIELD of the first instance in `ferrovs status`, or NONE
    FERROVS_CTL=$WORK/d1.sock "$FERROVS" status 2>/dev/null | python3 -c "import json,sys; v=json.load(sys.stdin)['vrrp']; print(v[0]['$1'] if v else 'NONE')" 2>/dev/null || echo DOWN
}
ka_masters() { grep -c "Entering MASTER STATE" "$WORK/ka.log"; }
# The ferrovs configuration without its vrrp_instance.
drop_vrrp() { awk '/^vrrp_instance/ { skip = 1 } skip && /^}/ { skip = 0; next } !skip' "$1" >"$1.new" && mv "$1.new" "$1"; }

test_upgrade() {
    echo "# ferrovs upgrade keeps VRRP: no priority 0, the new process resumes MASTER; keepalived as the peer"
    lab_up up || return
    local km pid out
    # The tables in a tmpfs (ferrovs keeps them on the heap elsewhere, and
    # then an upgrade asks for --force).
    EXTRA_FERROVS="    state_dir /dev/shm/ferrovs-ha-$$" ferrovs_conf "$WORK/d1.conf" 1 150 3 mcast
    keepalived_conf "$WORK/ka.conf" 100 3 mcast
    : >"$WORK/ka.log"
    start_keepalived "$WORK/ka.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    if ! wait_for 10 d1 MASTER >/dev/null || ! wait_for 5 ka_state BACKUP >/dev/null; then
        bad "upgrade: no MASTER/BACKUP pair to start from ($(d1)/$(ka_state))"
        lab_down
        return
    fi
    km=$(ka_masters)
    pid=${PIDS[d1]}
    cp "$FERROVS" "$WORK/ferrovs-new"
    out=$(FERROVS_CTL=$WORK/d1.sock "$WORK/ferrovs-new" upgrade "$WORK/ferrovs-new" 2>&1)
    local rc=$?
    check "upgrade: ferrovs upgrade succeeds ($(echo "$out" | tail -1))" [ "$rc" = 0 ]
    # On AF_XDP a new process takes the ports over (its pid is in the
    # answer) and the old one exits; elsewhere the process executes the
    # new binary in its place.
    local newpid
    newpid=$(echo "$out" | sed -n 's/^handing over to .* (pid \([0-9]*\))$/\1/p' | tail -1)
    if [ -n "$newpid" ] && [ "$newpid" != "$pid" ]; then
        for _ in $(seq 100); do grep -q ') Z' "/proc/$pid/stat" 2>/dev/null || [ ! -e "/proc/$pid" ] && break; sleep 0.05; done
        wait "$pid" 2>/dev/null
        check "upgrade: the old process exited" bash -c "[ ! -e /proc/$pid ]"
        pid=$newpid
        PIDS[d1]=$newpid
    fi
    check "upgrade: the new binary runs" [ "$(readlink "/proc/$pid/exe")" = "$WORK/ferrovs-new" ]
    check "upgrade: the new process is MASTER at once" [ "$(d1)" = MASTER ]
    check "upgrade: it says it resumed" grep -q "resuming as MASTER of VI_1" "$WORK/d1.log"
    # Longer than keepalived's master-down interval (3 s and its skew):
    # had the old process sent priority 0, or the new one waited as BACKUP,
    # keepalived would have taken the VIP.
    sleep 4
    check "upgrade: keepalived never became MASTER ($(ka_masters) vs $km)" [ "$(ka_masters)" = "$km" ]
    check "upgrade: keepalived is BACKUP" [ "$(ka_state)" = BACKUP ]
    check "upgrade: ferrovs is still MASTER" [ "$(d1)" = MASTER ]
    check "upgrade: the VIP serves" bash -c "ip netns exec $FVS_NS_CLIENT curl -s --max-time 3 -o /dev/null -w '%{http_code}' http://$FVS_VIP/ | grep -qx 200"
    lab_down
    rm -rf "/dev/shm/ferrovs-ha-$$"
}

test_reload() {
    echo "# SIGHUP reloads VRRP as keepalived does; keepalived as the peer"
    lab_up rl || return
    local t tr km
    ferrovs_conf "$WORK/d1.conf" 1 150 3 mcast
    keepalived_conf "$WORK/ka.conf" 100 3 mcast
    : >"$WORK/ka.log"
    start_keepalived "$WORK/ka.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    if ! wait_for 10 d1 MASTER >/dev/null || ! wait_for 5 ka_state BACKUP >/dev/null; then
        bad "reload: no MASTER/BACKUP pair to start from ($(d1)/$(ka_state))"
        lab_down
        return
    fi
    tr=$(d1_field transitions)
    km=$(ka_masters)
    # A reload that does not touch VRRP: a real server's weight. Waiting
    # longer than keepalived's master-down interval shows no advert was
    # missed.
    sed -i '0,/weight 1 }/s//weight 7 }/' "$WORK/d1.conf"
    kill -HUP "${PIDS[d1]}"
    sleep 4
    check "reload without VRRP changes: ferrovs stays MASTER, no transition" [ "$(d1)/$(d1_field transitions)" = "MASTER/$tr" ]
    check "reload without VRRP changes: keepalived never became MASTER" [ "$(ka_masters)" = "$km" ]
    check "reload without VRRP changes: the table change is in force" bash -c "FERROVS_CTL=$WORK/d1.sock $FERROVSADM -Ln | grep -Eq ' +Route +7 '"
    # A lower priority than keepalived's: keepalived preempts.
    ferrovs_conf "$WORK/d1.conf" 1 50 3 mcast
    kill -HUP "${PIDS[d1]}"
    t=$(wait_for 10 ka_state MASTER) && ok "reload to priority 50: keepalived (100) preempts (${t}s)" || bad "reload to priority 50: keepalived did not take over"
    check "reload to priority 50: ferrovs is BACKUP at its new priority" bash -c "[ \"\$(FERROVS_CTL=$WORK/d1.sock $FERROVS status | python3 -c 'import json,sys; v=json.load(sys.stdin)[\"vrrp\"][0]; print(v[\"state\"], v[\"priority\"])')\" = 'BACKUP 50' ]"
    # Back to 150: ferrovs preempts in turn.
    ferrovs_conf "$WORK/d1.conf" 1 150 3 mcast
    kill -HUP "${PIDS[d1]}"
    t=$(wait_for 10 d1 MASTER) && ok "reload to priority 150: ferrovs preempts back (${t}s)" || bad "reload to priority 150: ferrovs did not become MASTER ($(d1))"
    wait_for 5 ka_state BACKUP >/dev/null
    # The instance removed: it stops as at shutdown, priority 0, and
    # keepalived takes over after its skew time, not a master-down interval.
    drop_vrrp "$WORK/d1.conf"
    kill -HUP "${PIDS[d1]}"
    t=$(wait_for 3 ka_state MASTER) && ok "reload without the instance: it hands over at once (${t}s)" || bad "reload without the instance: keepalived did not take over within 3 s"
    check "reload without the instance: no instance runs" [ "$(d1_field state)" = NONE ]
    # And added back: it starts as BACKUP and preempts with 150.
    ferrovs_conf "$WORK/d1.conf" 1 150 3 mcast
    kill -HUP "${PIDS[d1]}"
    t=$(wait_for 10 d1 MASTER) && ok "reload with the instance again: it starts and preempts (${t}s)" || bad "reload with the instance again: not MASTER ($(d1))"
    check "ferrovs still runs after the reloads" kill -0 "${PIDS[d1]}"
    # Started from a file without any vrrp_instance (no VRRP driver runs),
    # then a reload brings the first one: VRRP starts with the reload, not
    # at the next start, and preempts keepalived with 150.
    term d1
    drop_vrrp "$WORK/d1.conf"
    rm -f "$WORK/d1.sock"
    start_ferrovs 1 "$WORK/d1.conf"
    wait_for 5 d1_state NONE >/dev/null
    check "started without vrrp_instance: no instance runs" [ "$(d1_field state)" = NONE ]
    ferrovs_conf "$WORK/d1.conf" 1 150 3 mcast
    kill -HUP "${PIDS[d1]}"
    t=$(wait_for 10 d1 MASTER) && ok "first vrrp_instance by reload: VRRP starts and preempts (${t}s)" || bad "first vrrp_instance by reload: not MASTER ($(d1))"
    wait_for 5 ka_state BACKUP >/dev/null
    check "first vrrp_instance by reload: keepalived went BACKUP" [ "$(ka_state)" = BACKUP ]
    lab_down
}
d1_state() { d1_field state; }

test_lnc() {
    echo "# ferrovsadm -Lnc of a million connections while VRRPv3 runs at 0.1 s against keepalived"
    lab_up lnc || return
    local tr km n t0 t1 k
    export ADVERT_INT=0.1
    EXTRA_FERROVS="    conn_table_size 2097152" \
        EXTRA_GLOBAL=$(printf 'virtual_server %s 9 {\n    lb_algo sh\n    lb_kind DR\n    protocol UDP\n    real_server %s 9 { weight 1 }\n}' "$FVS_VIP" "${FVS_RS_IPS%% *}") \
        ferrovs_conf "$WORK/d1.conf" 1 150 3 mcast
    keepalived_conf "$WORK/ka.conf" 100 3 mcast
    unset ADVERT_INT
    : >"$WORK/ka.log"
    start_keepalived "$WORK/ka.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    if ! wait_for 10 d1 MASTER >/dev/null || ! wait_for 5 ka_state BACKUP >/dev/null; then
        bad "lnc: no MASTER/BACKUP pair to start from ($(d1)/$(ka_state))"
        lab_down
        return
    fi
    # A million UDP flows from 198.19.0.0/16, one datagram each per pass;
    # the second pass fills in what a veth dropped.
    for k in 1 2; do
        ip netns exec "$FVS_NS_CLIENT" "$PKTGEN" --dev "$FVS_CLIENT_IF" \
            --dst-mac "$FVS_DIRECTOR_MAC_CLIENT" --dst "$FVS_VIP" --dport 9 --flows 1000000 --once \
            --rate 200000 >"$WORK/pktgen.log" 2>&1 || bad "lnc: ferrovs-pktgen failed: $(tail -2 "$WORK/pktgen.log")"
    done
    sleep 1
    n=$(FERROVS_CTL=$WORK/d1.sock "$FERROVSADM" -Lnc | grep -c '^UDP ')
    echo "# -Lnc lists $n connections"
    check "lnc: the table holds about a million connections ($n)" [ "$n" -ge 950000 ]
    tr=$(d1_field transitions)
    km=$(ka_masters)
    for k in 1 2 3; do
        t0=$(date +%s%N)
        FERROVS_CTL=$WORK/d1.sock "$FERROVSADM" -Lnc >/dev/null
        t1=$(date +%s%N)
        echo "# -Lnc #$k took $(((t1 - t0) / 1000000)) ms"
    done
    sleep 1
    check "lnc: ferrovs stayed MASTER with no transition" [ "$(d1)/$(d1_field transitions)" = "MASTER/$tr" ]
    check "lnc: keepalived never became MASTER" [ "$(ka_masters)" = "$km" ]
    lab_down
}

# stall_thread TID SECONDS: stops one thread (ptrace interrupt; the
# process's other threads run on), then lets it go.
stall_thread() {
    python3 - "$1" "$2" <<'PY'
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000
tid, secs = int(sys.argv[1]), float(sys.argv[2])
if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
    sys.exit("PTRACE_SEIZE: errno %d" % ctypes.get_errno())
libc.ptrace(PTRACE_INTERRUPT, tid, None, None)
os.waitpid(tid, WALL)
time.sleep(secs)
libc.ptrace(PTRACE_DETACH, tid, None, None)
PY
}
worker_tid() { # PID NAME
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { basename "$t"; return 0; }
    done
    return 1
}

test_stall() {
    echo "# a worker that stops polling: the director gives its VIPs up to keepalived"
    lab_up st || return
    local t tid
    ferrovs_conf "$WORK/d1.conf" 1 150 2 mcast
    keepalived_conf "$WORK/ka.conf" 100 2 mcast
    : >"$WORK/ka.log"
    start_keepalived "$WORK/ka.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    if ! wait_for 10 d1 MASTER >/dev/null || ! wait_for 5 ka_state BACKUP >/dev/null; then
        bad "stall: no MASTER/BACKUP pair to start from ($(d1)/$(ka_state))"
        lab_down
        return
    fi
    if ! tid=$(worker_tid "${PIDS[d1]}" ferrovs-w0); then
        bad "stall: no ferrovs-w0 thread"
        lab_down
        return
    fi
    stall_thread "$tid" 6 &
    local stall=$!
    t=$(wait_for 5 ka_state MASTER) && ok "stall: keepalived takes over from a director whose worker stopped (${t}s)" ||
        bad "stall: keepalived did not take over ($(d1)/$(ka_state))"
    check "stall: the director is in FAULT" [ "$(d1)" = FAULT ]
    check "stall: the stall is logged" grep -q "worker 0 has not polled" "$WORK/d1.log"
    wait "$stall"
    t=$(wait_for 10 d1 MASTER) && ok "stall: the worker polls again and the director preempts back (${t}s)" ||
        bad "stall: the director did not come back ($(d1))"
    check "stall: counted in the status" bash -c "[ \"\$(FERROVS_CTL=$WORK/d1.sock $FERROVS status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"workers\"][\"stalls\"])')\" = 1 ]"
    lab_down
}

# forge_advert SRC TTL PRIO COUNT: VRRPv3 adverts for VRID 51 from the
# client's namespace (a stranger on the director's LAN), sent as whole
# Ethernet frames so that the source address and TTL are the forger's.
forge_advert() {
    ip netns exec "$FVS_NS_CLIENT" python3 "$ROOT/scripts/lab-probe.py" send-vrrp --dev "$FVS_CLIENT_IF" \
        --dst-mac "$FVS_DIRECTOR_MAC_CLIENT" --src "$1" --dst "$FVS_DIRECTOR_IP_CLIENT" --ttl "$2" \
        --prio "$3" --vip "$FVS_VIP" --count "$4" --vrid 51
}

# Adverts from strangers (keepalived's check_unicast_src, always on in
# ferrovs): a forged unicast advert at priority 254 from an address that is
# no unicast_peer, or from the peer's address at a TTL below 255, does not
# take the VIPs; the same advert from the peer at TTL 255 does (the control
# that shows the forger's frames arrive).
test_strangers() {
    echo "# forged unicast VRRP adverts from a stranger on the LAN"
    lab_up str || return
    local tr stranger=${FVS_CLIENT_NET%.0/*}.66 t
    ferrovs_conf "$WORK/d1.conf" 1 150 3 ucast
    keepalived_conf "$WORK/ka.conf" 100 3 ucast
    : >"$WORK/ka.log"
    start_keepalived "$WORK/ka.conf"
    start_ferrovs 1 "$WORK/d1.conf"
    if ! wait_for 10 d1 MASTER >/dev/null || ! wait_for 5 ka_state BACKUP >/dev/null; then
        bad "strangers: no MASTER/BACKUP pair to start from ($(d1)/$(ka_state))"
        lab_down
        return
    fi
    tr=$(d1_field transitions)
    forge_advert "$stranger" 255 254 30
    check "strangers: an advert from a non-peer does not take the VIPs" [ "$(d1)/$(d1_field transitions)" = "MASTER/$tr" ]
    check "strangers: it is logged as keepalived logs it" grep -q "unicast source address $stranger not a unicast peer" "$WORK/d1.log"
    forge_advert "$FVS_DIRECTOR2_IP_CLIENT" 64 254 30
    check "strangers: the peer's address at TTL 64 does not take the VIPs" [ "$(d1)/$(d1_field transitions)" = "MASTER/$tr" ]
    check "strangers: the TTL is logged" grep -q "TTL/HL 64 from $FVS_DIRECTOR2_IP_CLIENT not in range \[255, 255\]" "$WORK/d1.log"
    local fp
    forge_advert "$FVS_DIRECTOR2_IP_CLIENT" 255 254 5 &
    fp=$!
    t=$(wait_for 3 d1 BACKUP) && ok "strangers: control: the same advert from the peer at TTL 255 is obeyed (${t}s)" ||
        bad "strangers: control: the forged peer advert was not obeyed ($(d1))"
    wait "$fp"
    t=$(wait_for 10 d1 MASTER) && ok "strangers: the director is MASTER again once the forger stops (${t}s)" ||
        bad "strangers: the director did not come back ($(d1))"
    lab_down
}

# Gratuitous ARP at failover for an instance with 40 VIPs: every VIP gets
# garp_master_repeat (5) GARPs, vrrp_garp_interval (5 ms) apart on the
# interface, as keepalived paces them; before, they went back to back into
# the worker's 16-slot queue and most VIPs got none.
test_garp() {
    echo "# gratuitous ARP pacing for 40 VIPs"
    lab_up garp || return
    local base=${FVS_CLIENT_NET%.0/*} v
    {
        echo "global_defs {"
        echo "    router_id FVS_GARP"
        echo "    vrrp_garp_interval 0.005"
        echo "    vrrp_garp_master_delay 0"
        echo "}"
        echo "ferrovs {"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers 1"
        echo "    control_socket $WORK/d1.sock"
        echo "    http_listen 127.0.0.1:19181"
        echo "}"
        echo "vrrp_instance VI_1 {"
        echo "    state BACKUP"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    virtual_router_id 61"
        echo "    priority 150"
        echo "    advert_int 1"
        echo "    virtual_ipaddress {"
        for v in $(seq 150 189); do echo "        $base.$v/32"; done
        echo "    }"
        echo "}"
    } >"$WORK/garp.conf"
    ip netns exec "$FVS_NS_CLIENT" python3 - "$FVS_CLIENT_IF" "$FVS_DIRECTOR_MAC_CLIENT" 9 >"$WORK/garps" 2>&1 <<'PY' &
import socket, struct, sys, time
ifc, mac, secs = sys.argv[1], bytes(int(x, 16) for x in sys.argv[2].split(":")), float(sys.argv[3])
SO_TIMESTAMPNS = 35
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.bind((ifc, 0))
s.settimeout(0.2)
end = time.time() + secs
while time.time() < end:
    try:
        f, anc, _, _ = s.recvmsg(128, 64)
    except socket.timeout:
        continue
    # The kernel's receive time, not when Python got round to reading.
    t = time.time()
    for lvl, typ, data in anc:
        if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
            sec, ns = struct.unpack("qq", data[:16])
            t = sec + ns / 1e9
    # From the director, a request whose sender and target are the VIP.
    if len(f) >= 42 and f[6:12] == mac and f[20:22] == b"\x00\x01" and f[28:32] == f[38:42]:
        print("%.6f %s" % (t, socket.inet_ntoa(f[28:32])), flush=True)
PY
    local sniff=$!
    sleep 0.5
    start_ferrovs 1 "$WORK/garp.conf"
    wait_for 8 d1 MASTER >/dev/null || bad "garp: the director did not become MASTER ($(d1))"
    wait "$sniff"
    local vips counts
    vips=$(awk '{print $2}' "$WORK/garps" | sort -u | wc -l)
    counts=$(awk '{print $2}' "$WORK/garps" | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')
    check "garp: every one of the 40 VIPs announced ($vips)" [ "$vips" = 40 ]
    check "garp: each VIP got garp_master_repeat = 5 GARPs (counts seen: $counts)" [ "$counts" = "5 " ]
    # Spacing on the wire: the pacer hands one frame to the worker every
    # 5 ms. A worker descheduled on this shared 2-vCPU machine can send two
    # queued frames together, so single gaps vary; the median and mean gap
    # are the interval (before, all 200 left within a millisecond or two).
    local median mean
    median=$(awk 'NR > 1 {print $1 - p} {p = $1}' "$WORK/garps" | sort -n | awk '{a[NR] = $1} END {printf "%.4f", a[int((NR + 1) / 2)]}')
    mean=$(awk 'NR == 1 {f = $1} {l = $1} END {printf "%.4f", (l - f) / (NR - 1)}' "$WORK/garps")
    check "garp: paced vrrp_garp_interval apart (median gap ${median}s, mean ${mean}s)" \
        bash -c "[ \$(echo '$median >= 0.004 && $mean >= 0.0045' | bc) = 1 ]"
    lab_down
}

# --- VRRPv3 over IPv6 against keepalived (issue 15, item 6) ---------------
# The IPv6 half of the lab as tests/e2e_ipv6.sh builds it (2001:2::/48,
# RFC 5180; no DAD, so link-local addresses are usable at once): client
# 2001:2::10, router ::1 / 2001:2:0:1::1, director ::2 / 2001:2:0:1::2,
# director 2 (keepalived) ::3, real servers 2001:2:0:1::11-13 with VIP6 on
# lo for DR, answering on IPv6 with the lab's HTTP server.
VIP6=2001:2::100
CLIENT6=2001:2::10
ROUTER6_A=2001:2::1
ROUTER6_B=2001:2:0:1::1
DIR6_A=2001:2::2
DIR6_B=2001:2:0:1::2
DIR2_6=2001:2::3
RS6=("" 2001:2:0:1::11 2001:2:0:1::12 2001:2:0:1::13)
HTTPD6_PIDS=""

ipv6_on() { # NS IF...
    local ns=$1 i; shift
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    for i in lo "$@"; do ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$i.accept_dad=0"; done
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
    for i in lo "$@"; do ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$i.disable_ipv6=0"; done
}

lab_ipv6() {
    local i ns ifn
    ipv6_on "$FVS_NS_CLIENT" "$FVS_CLIENT_IF"
    ip -n "$FVS_NS_CLIENT" addr add "$CLIENT6/64" dev "$FVS_CLIENT_IF" nodad
    ip -n "$FVS_NS_CLIENT" -6 route add default via "$ROUTER6_A"
    ipv6_on "$FVS_NS_ROUTER" "$FVS_ROUTER_IF_CLIENT" "$FVS_ROUTER_IF_SERVER"
    ip -n "$FVS_NS_ROUTER" addr add "$ROUTER6_A/64" dev "$FVS_ROUTER_IF_CLIENT" nodad
    ip -n "$FVS_NS_ROUTER" addr add "$ROUTER6_B/64" dev "$FVS_ROUTER_IF_SERVER" nodad
    ip netns exec "$FVS_NS_ROUTER" sysctl -q -w net.ipv6.conf.all.forwarding=1
    ipv6_on "$FVS_NS_DIRECTOR" "$FVS_DIRECTOR_IF_CLIENT" "$FVS_DIRECTOR_IF_SERVER"
    ip netns exec "$FVS_NS_DIRECTOR" sysctl -q -w net.ipv6.conf.all.forwarding=0
    ip -n "$FVS_NS_DIRECTOR" addr add "$DIR6_A/64" dev "$FVS_DIRECTOR_IF_CLIENT" nodad
    ip -n "$FVS_NS_DIRECTOR" addr add "$DIR6_B/64" dev "$FVS_DIRECTOR_IF_SERVER" nodad
    ip -n "$FVS_NS_DIRECTOR" -6 route add default via "$ROUTER6_A"
    ipv6_on "$FVS_NS_DIRECTOR2" "$FVS_DIRECTOR2_IF_CLIENT"
    ip -n "$FVS_NS_DIRECTOR2" addr add "$DIR2_6/64" dev "$FVS_DIRECTOR2_IF_CLIENT" nodad
    for i in 1 2 3; do
        ns=FVS_NS_RS$i ifn=FVS_RS${i}_IF
        ipv6_on "${!ns}" "${!ifn}"
        ip -n "${!ns}" addr add "${RS6[$i]}/64" dev "${!ifn}" nodad
        ip -n "${!ns}" -6 route add default via "$ROUTER6_B"
        ip -n "${!ns}" addr add "$VIP6/128" dev lo nodad
        ip netns exec "${!ns}" setsid python3 "$ROOT/scripts/lab-rs-httpd.py" --ipv6 --name "rs$i" --port 80 \
            --run-dir "$WORK6/rs$i/" --big-mib 1 </dev/null >"$WORK6/rs$i.log" 2>&1 &
        HTTPD6_PIDS="$HTTPD6_PIDS $!"
    done
    for i in 1 2 3; do
        for _ in $(seq 50); do [ -e "$WORK6/rs$i/ready" ] && break; sleep 0.1; done
        [ -e "$WORK6/rs$i/ready" ] || return 1
    done
}
stop_httpd6() {
    local p
    for p in $HTTPD6_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    HTTPD6_PIDS=""
}

# vrrp6_block IF PRIO MODE(mcast|ucast) SRC PEER — an IPv6 instance: no
# version given (keepalived and ferrovs both make it VRRPv3), the VIP
# first, so the instance's family is IPv6. PEER may carry options.
vrrp6_block() {
    local ifc=$1 prio=$2 mode=$3 src=$4 peer=$5
    echo "vrrp_instance VI_6 {"
    echo "    state BACKUP"
    echo "    interface $ifc"
    echo "    virtual_router_id 61"
    echo "    priority $prio"
    echo "    advert_int 1"
    if [ "$mode" = ucast ]; then
        echo "    unicast_src_ip $src"
        echo "    unicast_peer {"
        echo "        $peer"
        echo "    }"
    fi
    echo "    virtual_ipaddress {"
    echo "        $VIP6/128"
    echo "    }"
    echo "}"
}
ferrovs_conf6() { # FILE PRIO MODE
    {
        echo "ferrovs {"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers 1"
        echo "    control_socket $WORK/d1.sock"
        echo "    http_listen 127.0.0.1:19181"
        echo "}"
        # keepalived 2.2.7 sends IPv6 unicast adverts at the kernel's
        # default hop limit (64) unless given unicast_ttl (RFC 5798 §5.1.2.3
        # asks 255); ferrovs checks a peer's hop limit, so its peer entry
        # says what keepalived sends, as a user's would.
        vrrp6_block "$FVS_DIRECTOR_IF_CLIENT" "$2" "$3" "$DIR6_A" "$DIR2_6 min_ttl 64"
        echo "virtual_server $VIP6 80 {"
        echo "    lb_algo rr"
        echo "    lb_kind DR"
        echo "    protocol TCP"
        for i in 1 2 3; do echo "    real_server ${RS6[$i]} 80 { weight 1 }"; done
        echo "}"
    } >"$1"
}
keepalived_conf6() { # FILE PRIO MODE
    {
        echo "global_defs {"
        echo "    router_id KA_D2"
        echo "}"
        vrrp6_block "$FVS_DIRECTOR2_IF_CLIENT" "$2" "$3" "$DIR2_6" "$DIR6_A"
    } >"$1"
}
ka_state6() {
    if ip netns exec "$FVS_NS_DIRECTOR2" ip -6 addr show dev "$FVS_DIRECTOR2_IF_CLIENT" | grep " $VIP6/" >/dev/null; then echo MASTER; else echo BACKUP; fi
}
ka_log_master() { grep -q 'Entering MASTER STATE' "$WORK/ka.log" && echo yes || echo no; }
vip6_mac() { ip netns exec "$FVS_NS_CLIENT" ip -6 neigh show "$VIP6" dev "$FVS_CLIENT_IF" | awk '{print $3}'; }
d1_dropped() {
    ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:19181/metrics |
        awk '$1 ~ /^ferrovs_vrrp_dropped_adverts(_total)?\{instance="VI_6"\}$/ {print $2}'
}

# forge6 SRC HOPLIMIT COUNT — priority-254 VRRPv3 adverts for VRID 61 with
# VIP6, from the client to ff02::12 (checksum over the IPv6 pseudo-header
# computed here), one every 200 ms.
forge6() {
    ip netns exec "$FVS_NS_CLIENT" python3 - "$FVS_CLIENT_IF" "$1" "$2" "$3" "$VIP6" <<'PY'
import socket, struct, sys, time
ifc, src, hops, count, vip = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
idx = socket.if_nametoindex(ifc)
dst = "ff02::12"
msg = bytearray(struct.pack("!BBBBHH", 0x31, 61, 254, 1, 100, 0) + socket.inet_pton(socket.AF_INET6, vip))
ph = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!I3xB", len(msg), 112)
data = ph + bytes(msg)
s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
while s >> 16:
    s = (s & 0xffff) + (s >> 16)
msg[6:8] = struct.pack("!H", ~s & 0xffff)
sk = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
sk.bind((src, 0, 0, idx if src.startswith("fe80") else 0))
for _ in range(count):
    sk.sendto(bytes(msg), (dst, 0, 0, idx))
    time.sleep(0.2)
PY
}

# sniff_na SECONDS — unsolicited neighbour advertisements for VIP6 from the
# director's MAC seen by the client, one line each: time, target.
sniff_na() {
    ip netns exec "$FVS_NS_CLIENT" python3 - "$FVS_CLIENT_IF" "$FVS_DIRECTOR_MAC_CLIENT" "$1" "$VIP6" <<'PY'
import socket, struct, sys, time
ifc, mac, secs, vip = sys.argv[1], bytes(int(x, 16) for x in sys.argv[2].split(":")), float(sys.argv[3]), sys.argv[4]
target = socket.inet_pton(socket.AF_INET6, vip)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
s.bind((ifc, 0))
s.settimeout(0.2)
end = time.time() + secs
while time.time() < end:
    try:
        f = s.recv(256)
    except socket.timeout:
        continue
    # Ethernet from the director, IPv6 next header 58, ICMPv6 type 136 (NA),
    # not solicited (RFC 4861 §7.2.6: S clear, O set), target VIP6.
    if len(f) >= 78 and f[6:12] == mac and f[20] == 58 and f[54] == 136 and f[58] & 0x40 == 0 and f[58] & 0x20 and f[62:78] == target:
        print("%.6f %s" % (time.time(), vip), flush=True)
PY
}

test_ipv6() {
    echo "# VRRPv3 over IPv6 with keepalived as the peer"
    lab_up v6 || return
    if ! lab_ipv6; then
        bad "ipv6: the lab's IPv6 half did not come up"
        stop_httpd6
        lab_down
        return
    fi
    local mode t tag got seen i
    for mode in ${HA_MODES:-mcast ucast}; do
        tag="ipv6 $mode"
        # ferrovs 150 MASTER, keepalived 100 BACKUP.
        ferrovs_conf6 "$WORK/d1v6.conf" 150 "$mode"
        keepalived_conf6 "$WORK/ka6.conf" 100 "$mode"
        if ! "$FERROVS" check -f "$WORK/d1v6.conf" >"$WORK/check6" 2>&1; then
            bad "$tag: ferrovs check refused the IPv6 instance: $(cat "$WORK/check6")"
            continue
        fi
        # ferrovs first: keepalived then hears its adverts from its start,
        # and would become MASTER after its master-down interval (3.61 s)
        # if it did not accept them.
        start_ferrovs 1 "$WORK/d1v6.conf"
        t=$(wait_for 10 d1 MASTER) && ok "$tag: ferrovs (150) becomes MASTER (${t}s)" || bad "$tag: ferrovs did not become MASTER ($(d1)): $(tail -3 "$WORK/d1.log")"
        : >"$WORK/ka.log"
        start_keepalived "$WORK/ka6.conf"
        sleep 5
        check "$tag: keepalived (100) stays BACKUP (no $VIP6 on its interface)" [ "$(ka_state6)" = BACKUP ]
        check "$tag: keepalived never entered MASTER: it takes ferrovs's IPv6 adverts" bash -c "grep -q 'Entering BACKUP STATE' '$WORK/ka.log' && ! grep -q 'Entering MASTER STATE' '$WORK/ka.log'"
        seen=""
        for i in $(seq 6); do
            got=$(ip netns exec "$FVS_NS_CLIENT" curl -6 -s -g --max-time 3 "http://[$VIP6]/")
            [[ $got =~ ^rs[123]$ ]] && seen="$seen $got"
        done
        check "$tag: curl -6 to [$VIP6] served through ferrovs (DR) ($seen)" [ "$(echo "$seen" | wc -w)" -eq 6 ]
        check "$tag: the client's neighbour entry for $VIP6 is ferrovs's MAC ($(vip6_mac))" [ "$(vip6_mac)" = "$FVS_DIRECTOR_MAC_CLIENT" ]
        if [ "$mode" = mcast ]; then
            # Forged adverts (priority 254, valid checksum) from the client:
            # a global source, or hop limit 254, are refused and counted;
            # from its link-local address at hop limit 255 they win, which
            # shows the forger's adverts are otherwise good.
            local before after ll
            ll=$(ip netns exec "$FVS_NS_CLIENT" ip -6 addr show dev "$FVS_CLIENT_IF" scope link | awk '/inet6/ {sub(/\/.*/, "", $2); print $2; exit}')
            before=$(d1_dropped)
            forge6 "$CLIENT6" 255 10
            check "$tag: a forged advert from a global source is ignored (ferrovs $(d1))" [ "$(d1)" = MASTER ]
            forge6 "$ll" 254 10
            check "$tag: a forged advert with hop limit 254 is ignored (ferrovs $(d1))" [ "$(d1)" = MASTER ]
            after=$(d1_dropped)
            check "$tag: the refused adverts are counted in ferrovs_vrrp_dropped_adverts (${before:-none} -> ${after:-none})" \
                bash -c "[ -n '$after' ] && [ \$(echo '${after:-0} - ${before:-0} >= 20' | bc) = 1 ]"
            forge6 "$ll" 255 5
            check "$tag: the same advert from link-local $ll at hop limit 255 is obeyed (ferrovs $(d1))" [ "$(d1)" = BACKUP ]
            t=$(wait_for 8 d1 MASTER) && ok "$tag: the forger gone, ferrovs is MASTER again (${t}s)" || bad "$tag: ferrovs did not come back ($(d1))"
            sleep 1
        fi
        kill9 d1
        t=$(wait_for 8 ka_state6 MASTER) && ok "$tag: kill -9 ferrovs, keepalived takes over in ${t}s" || bad "$tag: keepalived did not take over"
        check "$tag: takeover within master-down (3 x 1 s + skew 0.61 s) and polling" bash -c "[ \$(echo '${t:-99} <= 4.3' | bc) = 1 ]"
        stop_all

        # keepalived 150 MASTER, ferrovs 100 BACKUP.
        ferrovs_conf6 "$WORK/d1v6.conf" 100 "$mode"
        keepalived_conf6 "$WORK/ka6.conf" 150 "$mode"
        : >"$WORK/ka.log"
        start_keepalived "$WORK/ka6.conf"
        # Its own word that it is MASTER, not only the VIP on the interface
        # (which a stopped predecessor may have left).
        t=$(wait_for 10 ka_log_master yes) || bad "$tag: keepalived (150) did not become MASTER: $(tail -3 "$WORK/ka.log")"
        start_ferrovs 1 "$WORK/d1v6.conf"
        sleep 4.5
        check "$tag: keepalived (150) stays MASTER ($(ip netns exec "$FVS_NS_DIRECTOR2" ip -6 -o addr show dev "$FVS_DIRECTOR2_IF_CLIENT" | awk '{printf "%s ", $4}'))" [ "$(ka_state6)" = MASTER ]
        check "$tag: ferrovs (100) is BACKUP" [ "$(d1)" = BACKUP ]
        ip netns exec "$FVS_NS_CLIENT" ip -6 neigh flush to "$VIP6" 2>/dev/null
        ip netns exec "$FVS_NS_CLIENT" ping -6 -c 1 -W 1 "$VIP6" >/dev/null 2>&1
        sleep 0.3
        check "$tag: a backup ferrovs does not answer neighbour solicitations for $VIP6 ($(vip6_mac))" [ "$(vip6_mac)" = "$FVS_DIRECTOR2_MAC_CLIENT" ]
        sniff_na 9 >"$WORK/nas" 2>&1 &
        local sniff=$!
        sleep 0.5
        term ka
        t=$(wait_for 5 d1 MASTER) && ok "$tag: keepalived stops cleanly (priority 0), ferrovs takes over in ${t}s" || bad "$tag: ferrovs did not take over after keepalived stopped"
        sleep 1
        # No traffic from the client since: only ferrovs's unsolicited NA
        # (override flag) can have moved the entry.
        check "$tag: unsolicited NA moved the client's entry for $VIP6 to ferrovs's MAC ($(vip6_mac))" [ "$(vip6_mac)" = "$FVS_DIRECTOR_MAC_CLIENT" ]
        wait "$sniff"
        check "$tag: garp_master_repeat (5) unsolicited NAs for $VIP6 at once, 5 more after garp_master_delay (5 s) ($(wc -l <"$WORK/nas") seen)" [ "$(wc -l <"$WORK/nas")" -eq 10 ]
        stop_all
        cp "$WORK/ka.log" "$WORK/ka-ipv6-$mode.log"
    done
    stop_httpd6
    lab_down
}

for p in $PARTS; do
    case $p in
        stall) test_stall ;;
        lnc) test_lnc ;;
        pair) test_pair ;;
        keepalived) test_keepalived ;;
        scripts) test_scripts ;;
        reload) test_reload ;;
        upgrade) test_upgrade ;;
        strangers) test_strangers ;;
        garp) test_garp ;;
        ipv6) test_ipv6 ;;
    esac
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
