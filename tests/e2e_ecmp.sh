#!/usr/bin/env bash
# End-to-end test of active-active directors behind ECMP (issue 16, part 2),
# in the lab of scripts/lab-ecmp.sh: three ferrovs directors (DR, mh with
# the port, sloppy_tcp) announce the VIP over BGP to an FRR router that
# balances over them; 1000 long-lived connections (scripts/lab-longconn.py,
# every exchange checked with a running sha256) run through each change:
#
#   remove   kill -9 the ferrovs of dir2: the router withdraws its path; at
#            least 99 % of the connections stay intact
#   add      start it again: the router balances over three again; >= 99 %
#   drain    `ferrovsadm --drain` on dir1: its path is withdrawn (seen on
#            the router) while it keeps serving; 100 %; then --undrain
#   graceful (ferrovs's speaker) `ferrovsadm --drain --stop-after 60` on
#            dir1: withdrawn, serves its connections (100 %), and its
#            process exits 0 by itself once they have ended; then dir1
#            with `drain_timeout 60` takes SIGTERM: the same; dir1 starts
#            again afterwards
#   linkdown dir3's uplink goes down without a word: the router withdraws
#            after the BGP hold time (9 s); >= 99 %; then the link comes back
#   rschange what breaks: rs3 leaves every director's configuration (SIGHUP)
#            as dir1 drains; measured, and the flows of rs1 and rs2 must
#            survive (>= 98 %)
#   sigterm  (ferrovs's speaker) SIGTERM on dir3: its path is withdrawn
#            before it stops forwarding; >= 99 %
#   sync     lb_algo rr and both sync daemons on every director: kill -9
#            of dir2 keeps >= 99 %
#   persist  persistence_timeout with rr and the sync: once a client's
#            first connection was synced, its connections through every
#            director reach the same real server, before and after kill -9
#            of dir2 (>= 99 % intact)
#
# Every routing fact is read on the router with vtysh (FRR's own JSON) and
# from its kernel's route, never from ferrovs's logs.
#
#   tests/e2e_ecmp.sh [remove add drain graceful linkdown rschange sigterm]
#                                      (default: all)
#   SPEAKER=exabgp tests/e2e_ecmp.sh   a plain ExaBGP per director announces
#                                      (lab-ecmp.sh --speaker exabgp), ferrovs
#                                      without its bgp block; drain = withdraw
#   BACKEND=afpacket                   (default: ferrovs's, AF_XDP here)
#   SLOPPY=off                         ferrovs without sloppy_tcp (to see
#                                      what it is for: the test then fails)
#   KIND=fullnat tests/e2e_ecmp.sh    FULLNAT behind ECMP (lab-ecmp.sh
#                                      ferrovs-conf --kind fullnat): every
#                                      director has the local addresses of
#                                      all, holds its own in a server-side
#                                      VRRP instance the others back up, and
#                                      runs both sync daemons from its start
#                                      (sync_active_active);
#                                      the same parts but sync, whose goals
#                                      hold through the sync alone (FULLNAT's
#                                      local ports cannot be hashed); the
#                                      graceful bound is 20 s (a drained
#                                      director relays the replies to its
#                                      local address until it stops)
#   SYNC_OFF=1 tests/e2e_ecmp.sh sync  the sync part without the sync
#                                      daemons: reports what rr alone keeps
#                                      (persist: fails, to show what the
#                                      sync is for)
#   CONNS=1000 HOLD=10                 connections; seconds of traffic after
#                                      each change has converged
#   FERROVS=path/to/ferrovs            (default target/release/ferrovs)
#
# Prints "N passed, M failed"; the measured percentages are in the ok/FAIL
# lines. Runs in about two minutes.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab-ecmp.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$(dirname "$FERROVS")/ferrovsadm}
SPEAKER=${SPEAKER:-ferrovs}
SLOPPY=${SLOPPY:-on}
KIND=${KIND:-dr}
BACKEND=${BACKEND:-}
CONNS=${CONNS:-1000}
HOLD=${HOLD:-10}
STALL=${STALL:-25}
RUN_ID=ecmp$$
# The service's scheduler (the sync part changes it).
ALGO=mh
PERSIST="" # set: write_conf adds persistence_timeout
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-ecmp.XXXXXX)
LAB_NAME=""
CLIENT_PID=""
LONGCONN=()
declare -A PIDS=()
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
if [ "$KIND" = fullnat ]; then
    PARTS=${*:-remove add drain graceful linkdown rschange sigterm}
    GRACE=20
else
    PARTS=${*:-remove add drain graceful linkdown rschange sigterm sync persist}
    GRACE=60
fi
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
note() { echo "# $*"; }

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first: cargo build --release -p ferrovs-controlplane" >&2; echo "0 passed, 1 failed"; exit 1; }
case $SPEAKER in ferrovs | exabgp) ;; *) echo "SPEAKER=ferrovs|exabgp" >&2; echo "0 passed, 1 failed"; exit 1 ;; esac

cleanup() {
    [ -n "$CLIENT_PID" ] && kill -KILL "$CLIENT_PID" 2>/dev/null
    local k
    for k in "${!PIDS[@]}"; do kill -TERM "${PIDS[$k]}" 2>/dev/null; done
    sleep 0.3
    for k in "${!PIDS[@]}"; do kill -KILL "${PIDS[$k]}" 2>/dev/null; wait "${PIDS[$k]}" 2>/dev/null; done
    # The lab's teardown ends whatever is left in its namespaces (ExaBGP
    # children included).
    [ -n "$LAB_NAME" ] && cp "$FVE_FRR_DIR"/*.log "$WORK/" 2>/dev/null
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

vty() { "$LAB" vtysh "$LAB_NAME" -c "$1"; }

# The router's view, as FRR and its kernel say it:
# established      the directors whose BGP session is Established
# bgp_paths        the directors (next hops) of the VIP's valid BGP paths
# fib_nexthops     the next hops FRR installed in the kernel for the VIP
# kernel_nexthops  the next hops of the kernel's route (ip route)
established() {
    vty 'show bgp ipv4 unicast summary json' | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
peers = d.get("peers") or d.get("ipv4Unicast", {}).get("peers", {})
print(" ".join(sorted(a for a, p in peers.items() if p.get("state") == "Established")))'
}
bgp_paths() {
    vty "show ip bgp $FVE_VIP/32 json" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
hops = [p["nexthops"][0]["ip"] for p in d.get("paths", []) if p.get("valid")]
print(" ".join(sorted(hops)))'
}
bgp_multipath() { # the number of valid paths FRR marks best or multipath
    vty "show ip bgp $FVE_VIP/32 json" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for p in d.get("paths", []) if p.get("valid") and (p.get("multipath") or p.get("bestpath"))))'
}
fib_nexthops() {
    vty "show ip route $FVE_VIP/32 json" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
r = [x for x in d.get(sys.argv[1], []) if x.get("protocol") == "bgp" and x.get("installed")]
print(" ".join(sorted(h["ip"] for x in r for h in x["nexthops"] if h.get("fib"))))' "$FVE_VIP/32"
}
kernel_nexthops() {
    ip netns exec "$FVE_NS_ROUTER" ip -4 route show "$FVE_VIP/32" |
        awk '/nexthop via/ {print $3} /^[0-9.]+ via/ {print $3}' | sort | tr '\n' ' ' | sed 's/ $//'
}
dir_ip() { eval echo "\$FVE_DIR${1#dir}_IP"; }
dir_ns() { eval echo "\$FVE_NS_DIR${1#dir}"; }
ips_of() { local d out=""; for d in "$@"; do out="$out $(dir_ip "$d")"; done; echo "$out" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'; }

# routed_to DIRS...: FRR's BGP paths, its FIB and the kernel all name exactly
# these directors.
routed_to() {
    local want
    want=$(ips_of "$@")
    [ "$(bgp_paths)" = "$want" ] && [ "$(fib_nexthops)" = "$want" ] && [ "$(kernel_nexthops)" = "$want" ]
}
# wait_until SECONDS cmd...: polls every 0.2 s; prints the seconds it took.
wait_until() {
    local limit=$1 t0 now
    shift
    t0=$(date +%s%N)
    while :; do
        if "$@" >/dev/null 2>&1; then
            now=$(date +%s%N)
            echo "scale=1; ($now - $t0) / 1000000000" | bc
            return 0
        fi
        now=$(date +%s%N)
        [ $(((now - t0) / 1000000)) -ge $((limit * 1000)) ] && return 1
        sleep 0.2
    done
}

# Frames the switch sent to each director's uplink port (the bridge port's
# tx counter in the switch namespace: nothing of ferrovs's).
uplink_frames() { # DIR
    local n=${1#dir} ifs
    ifs=$(eval echo "\$FVE_DIR${n}_IFS")
    ip netns exec "$FVE_NS_SWITCH" cat "/sys/class/net/p${ifs%% *}/statistics/tx_packets"
}

DRAIN_TIMEOUT="" # set: write_conf adds `drain_timeout` to the bgp block
write_conf() { # DIR [REAL SERVERS ("1 2 3")]
    local d=$1 rs=${2:-1 2 3} args=()
    [ "$SPEAKER" = ferrovs ] && args+=(--bgp)
    [ "$SLOPPY" = on ] && args+=(--sloppy)
    [ -n "$BACKEND" ] && args+=(--backend "$BACKEND")
    args+=(--algo "$ALGO" --kind "$KIND")
    [ -n "$PERSIST" ] && args+=(--persist "$PERSIST")
    mkdir -p "$WORK/$d"
    "$LAB" ferrovs-conf "$LAB_NAME" "$d" --workdir "$WORK/$d" --rs "$rs" "${args[@]}" |
        if [ -n "$DRAIN_TIMEOUT" ]; then
            sed "/^ *local_as /a\\        drain_timeout $DRAIN_TIMEOUT"
        else
            cat
        fi >"$WORK/$d/ferrovs.conf"
}
start_ferrovs() { # DIR
    local d=$1
    write_conf "$d" || return 1
    rm -f "$WORK/$d/ctl.sock"
    ip netns exec "$(dir_ns "$d")" "$FERROVS" run -f "$WORK/$d/ferrovs.conf" >>"$WORK/$d/ferrovs.log" 2>&1 &
    PIDS[$d]=$!
    local i
    for i in $(seq 100); do
        [ -S "$WORK/$d/ctl.sock" ] && return 0
        kill -0 "${PIDS[$d]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "ferrovs on $d did not start: $(tail -5 "$WORK/$d/ferrovs.log")" >&2
    return 1
}
# Both sync daemons on DIR's server-side interface: it sends its
# connections to the other directors and installs theirs.
sync_daemons() { # DIR
    local d=$1 ifs ifb
    ifs=$(eval echo "\$FVE_DIR${d#dir}_IFS")
    ifb=${ifs##* }
    { adm "$d" --start-daemon master --mcast-interface "$ifb" --syncid 61 &&
        adm "$d" --start-daemon backup --mcast-interface "$ifb" --syncid 61; } >"$WORK/sync-$d.out" 2>&1 ||
        { echo "--start-daemon on $d: $(tail -2 "$WORK/sync-$d.out")" >&2; return 1; }
}
kill9_ferrovs() { # DIR
    kill -KILL "${PIDS[$1]}" 2>/dev/null
    wait "${PIDS[$1]}" 2>/dev/null
    unset "PIDS[$1]"
}
adm() { # DIR args...
    local d=$1
    shift
    FERROVS_CTL=$WORK/$d/ctl.sock "$FERROVSADM" "$@"
}
active_conns() { # DIR: the connections ferrovs's table holds (ipvsadm -Ln's columns)
    adm "$1" -L -n 2>/dev/null | awk '$1 == "->" && $2 ~ /:/ && $2 !~ /RemoteAddress/ {a += $5 + $6} END {print a + 0}'
}

metric() { # DIR NAME: the sum of a counter over its labels
    local n=${1#dir}
    ip netns exec "$(dir_ns "$1")" curl -s --max-time 3 "http://127.0.0.1:$((19280 + n))/metrics" |
        awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
# The sync's counters on each running director (FULLNAT: for the record).
sync_counters() {
    local d out=""
    for d in dir1 dir2 dir3; do
        [ -v "PIDS[$d]" ] || continue
        out="$out $d: sent $(metric "$d" ferrovs_sync_entries_sent_total) received $(metric "$d" ferrovs_sync_entries_received_total) installed $(metric "$d" ferrovs_sync_entries_installed_total) dropped $(ip netns exec "$(dir_ns "$d")" curl -s --max-time 3 "http://127.0.0.1:$((19280 + ${d#dir}))/metrics" | awk '/^ferrovs_sync_dropped_(entries|messages)_total/ && $2 > 0 {sub(/.*reason="/, "", $1); sub(/".*/, "", $1); printf "%s=%s,", $1, $2}');"
    done
    echo "$out"
}
# Long-lived connections: start, wait until every one has been answered once.
# longconn TAG CONNS DURATION: LONGCONN is the command line of the
# long-lived client from the client's addresses, its report to TAG.json
# (an array, so that a background start's $! is the client itself: `ip
# netns exec` execs it in place).
longconn() {
    local sources
    sources=$(echo "$FVE_CLIENT_SOURCES" | tr ' ' ',')
    LONGCONN=(ip netns exec "$FVE_NS_CLIENT" "$PY" "$FVE_LONGCONN" client --dst "$FVE_VIP" --port "$FVE_VPORT"
        --conns "$2" --sources "$sources" --interval 0.2 --stall-timeout "$STALL" --duration "$3"
        --report "$WORK/$1.json")
}
client_start() { # TAG
    local tag=$1 i
    rm -f "$WORK/$tag.ready" "$WORK/$tag.json"
    longconn "$tag" "$CONNS" 240
    "${LONGCONN[@]}" --ready "$WORK/$tag.ready" >"$WORK/$tag.log" 2>&1 &
    CLIENT_PID=$!
    for i in $(seq 300); do
        [ -s "$WORK/$tag.ready" ] && break
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        sleep 0.1
    done
    local opened
    opened=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["opened"])' "$WORK/$tag.ready" 2>/dev/null || echo 0)
    if [ "$opened" = "$CONNS" ]; then
        ok "$tag: $CONNS connections open through the VIP, each answered once"
        return 0
    fi
    bad "$tag: only ${opened:-0} of $CONNS connections opened: $(tail -3 "$WORK/$tag.log")"
    return 1
}
# client_stop TAG MIN_PCT: stop the client, every connection finishes its
# exchange; check the intact share.
client_stop() {
    local tag=$1 min=$2 i
    kill -TERM "$CLIENT_PID" 2>/dev/null
    for i in $(seq $(((STALL + 30) * 10))); do
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        sleep 0.1
    done
    wait "$CLIENT_PID" 2>/dev/null
    CLIENT_PID=""
    if [ ! -s "$WORK/$tag.json" ]; then
        bad "$tag: the client wrote no report: $(tail -3 "$WORK/$tag.log")"
        return
    fi
    local line
    line=$("$PY" - "$WORK/$tag.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
other = {k: v for k, v in r["states"].items() if k != "intact"}
print(r["intact"], r["opened"], "%.2f" % r["intact_pct"],
      ",".join("%s=%d" % kv for kv in sorted(r["by_rs"].items())),
      ",".join("%s=%d" % kv for kv in sorted(other.items())) or "none",
      r["max_rtt_s"], r["conns_with_slow_exchange"], r["exchanges"])
PY
)
    local intact opened pct by_rs other maxrtt slow exch
    read -r intact opened pct by_rs other maxrtt slow exch <<<"$line"
    note "$tag: $exch exchanges; real servers $by_rs; longest exchange ${maxrtt}s; $slow connections had an exchange over 1 s; failed: $other"
    [ "$KIND" = fullnat ] && note "$tag: sync:$(sync_counters)"
    if [ "${3:-}" = report ]; then
        note "$tag: $intact/$opened connections intact ($pct %)"
    elif [ "$(echo "$pct >= $min" | bc)" = 1 ] && [ "$opened" = "$CONNS" ]; then
        ok "$tag: $intact/$opened connections intact ($pct %, goal >= $min %)"
    else
        bad "$tag: $intact/$opened connections intact ($pct %, goal >= $min %); first failures: $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["failures"][:3])' "$WORK/$tag.json")"
    fi
    RESULTS="${RESULTS:-}$tag=$pct% "
}

remove_dir() { # DIR: the failure
    kill9_ferrovs "$1"
    [ "$SPEAKER" = exabgp ] && "$LAB" speaker "$LAB_NAME" "$1" kill
    return 0
}
add_dir() { # DIR
    start_ferrovs "$1" || return 1
    [ "$SPEAKER" = exabgp ] && "$LAB" speaker "$LAB_NAME" "$1" start
    return 0
}
drain_dir() {
    if [ "$SPEAKER" = exabgp ]; then "$LAB" speaker "$LAB_NAME" "$1" withdraw; else adm "$1" --drain; fi
}
undrain_dir() {
    if [ "$SPEAKER" = exabgp ]; then "$LAB" speaker "$LAB_NAME" "$1" announce; else adm "$1" --undrain; fi
}

# ------------------------------------------------------------------ the run

labspk=none
[ "$SPEAKER" = exabgp ] && labspk=exabgp
note "${KIND^^}, speaker $SPEAKER, sloppy_tcp $SLOPPY, backend ${BACKEND:-default}, $CONNS connections, ferrovs $FERROVS"
if ! env_text=$("$LAB" up --name "fve-$RUN_ID" --speaker "$labspk" 2>"$WORK/lab.err"); then
    bad "the lab did not come up: $(tail -3 "$WORK/lab.err")"
    echo "$PASS passed, $FAIL failed"
    exit 1
fi
eval "$env_text"
LAB_NAME=$FVE_LAB_NAME
ok "lab $LAB_NAME up (FRR router, three directors, three DR real servers)"
# The router's route changes, time-stamped, for the record (KEEP=1 keeps it).
ip netns exec "$FVE_NS_ROUTER" ip -ts monitor route >"$WORK/routes.log" 2>&1 &
PIDS[monitor]=$!

for d in dir1 dir2 dir3; do
    if ! start_ferrovs "$d"; then
        bad "ferrovs did not start on $d: $(tail -3 "$WORK/$d/ferrovs.log")"
        echo "$PASS passed, $FAIL failed"
        exit 1
    fi
done
ok "ferrovs runs on dir1 dir2 dir3"

ALL=$(ips_of dir1 dir2 dir3)
t=$(wait_until 30 routed_to dir1 dir2 dir3) &&
    ok "the router has the VIP over BGP from all three directors, in its FIB and kernel, in ${t}s" ||
    bad "the router does not route the VIP to all three (BGP: $(bgp_paths); FIB: $(fib_nexthops); kernel: $(kernel_nexthops))"
check "three BGP sessions Established on the router ($(established))" [ "$(established)" = "$ALL" ]
check "FRR uses all three paths (multipath: $(bgp_multipath))" [ "$(bgp_multipath)" = 3 ]
if [ "$KIND" = fullnat ]; then
    check "every director runs both sync daemons from sync_active_active" \
        bash -c "$(declare -f adm); WORK=$WORK FERROVSADM=$FERROVSADM; for d in dir1 dir2 dir3; do [ \$(adm \$d -L --daemon | grep -c 'syncid=61') = 2 ] || exit 1; done"
fi
vty 'show bgp summary' | sed -n '/^Neighbor/,/^$/p' | sed 's/^/#   /'
vty "show ip bgp $FVE_VIP/32" | sed 's/^/#   /' | head -20
ip netns exec "$FVE_NS_ROUTER" ip -4 route show "$FVE_VIP/32" | sed 's/^/#   kernel: /'
if [ "$SPEAKER" = ferrovs ]; then
    adm dir1 -L --bgp 2>&1 | sed 's/^/#   dir1 ferrovsadm -L --bgp: /'
fi

# --- remove: kill -9 one director under load.
if part remove && client_start remove; then
    sleep 2
    declare -A f0=()
    for d in dir1 dir2 dir3; do f0[$d]=$(uplink_frames "$d"); done
    sleep 2
    share=""
    spread=1
    for d in dir1 dir2 dir3; do
        n=$(($(uplink_frames "$d") - f0[$d]))
        share="$share $d=$n"
        [ "$n" -ge 200 ] || spread=0
    done
    check "ECMP spreads the client's flows over the three directors (frames in 2 s:$share)" [ $spread = 1 ]
    note "connections in the directors' tables: dir1=$(active_conns dir1) dir2=$(active_conns dir2) dir3=$(active_conns dir3)"
    remove_dir dir2
    t=$(wait_until $((FVE_HOLD_TIME + 6)) routed_to dir1 dir3) &&
        ok "remove: kill -9 of dir2's ferrovs; the router withdrew its path in ${t}s ($(bgp_paths))" ||
        bad "remove: the router still routes to dir2 (BGP: $(bgp_paths); kernel: $(kernel_nexthops))"
    sleep "$HOLD"
    client_stop remove 99
fi

# --- add: dir2 comes back under load (started here if remove did not run).
if part add && [ -v "PIDS[dir2]" ]; then
    remove_dir dir2
    wait_until $((FVE_HOLD_TIME + 6)) routed_to dir1 dir3 >/dev/null || bad "add: dir2 could not be removed first"
fi
if part add && client_start add; then
    sleep 3
    f2=$(uplink_frames dir2)
    add_dir dir2 || bad "add: ferrovs did not start again on dir2"
    t=$(wait_until 30 routed_to dir1 dir2 dir3) &&
        ok "add: dir2 back; the router balances over three again in ${t}s" ||
        bad "add: the router did not take dir2 back (BGP: $(bgp_paths); kernel: $(kernel_nexthops))"
    sleep "$HOLD"
    n=$(($(uplink_frames dir2) - f2))
    check "add: flows move to dir2 again ($n frames to it)" [ "$n" -ge 500 ]
    note "connections in the directors' tables: dir1=$(active_conns dir1) dir2=$(active_conns dir2) dir3=$(active_conns dir3)"
    client_stop add 99
fi

# --- drain: graceful withdrawal keeps every connection.
if part drain && client_start drain; then
    sleep 3
    if drain_dir dir1 >"$WORK/drain.out" 2>&1; then
        ok "drain: $([ "$SPEAKER" = exabgp ] && echo "ExaBGP withdraw" || echo "ferrovsadm --drain") on dir1 accepted"
    else
        bad "drain: dir1 refused: $(tail -3 "$WORK/drain.out")"
    fi
    t=$(wait_until 15 routed_to dir2 dir3) &&
        ok "drain: the router withdrew dir1's path in ${t}s (BGP: $(bgp_paths); kernel: $(kernel_nexthops))" ||
        bad "drain: the router still routes to dir1 (BGP: $(bgp_paths); kernel: $(kernel_nexthops))"
    check "drain: dir1's BGP session stays up ($(established))" [ "$(established)" = "$ALL" ]
    if [ "$SPEAKER" = ferrovs ]; then
        adm dir1 -L --bgp 2>&1 | sed 's/^/#   dir1 drained, ferrovsadm -L --bgp: /'
        check "drain: dir1's ferrovs still runs" kill -0 "${PIDS[dir1]}"
    fi
    sleep "$HOLD"
    client_stop drain 100
    undrain_dir dir1 >"$WORK/undrain.out" 2>&1 || bad "undrain: dir1 refused: $(tail -3 "$WORK/undrain.out")"
    t=$(wait_until 15 routed_to dir1 dir2 dir3) &&
        ok "undrain: dir1 announces again, the router balances over three in ${t}s" ||
        bad "undrain: dir1 not back (BGP: $(bgp_paths))"
fi

# --- graceful: a drain that ends the process. Once the router has moved,
# dir1 receives nothing more (the other directors take its flows over, as
# in drain), so it stops after its drain's minimum and 5 s without traffic,
# long before the 60 s bound; the client's connections must all survive.
# graceful_exit TAG: dir1 withdrawn, then gone by itself (exit 0) within
# the bound; the client keeps 100 %.
graceful_exit() {
    local tag=$1 t t0 rc waited
    t0=$(date +%s%N)
    adm dir1 -L --bgp 2>&1 | sed "s/^/#   dir1 $tag, ferrovsadm -L --bgp: /"
    t=$(wait_until 15 routed_to dir2 dir3) &&
        ok "$tag: the router withdrew dir1's path in ${t}s (BGP: $(bgp_paths))" ||
        bad "$tag: the router still routes to dir1 (BGP: $(bgp_paths); kernel: $(kernel_nexthops))"
    for _ in $(seq 700); do
        kill -0 "${PIDS[dir1]}" 2>/dev/null || break
        sleep 0.1
    done
    waited=$(echo "scale=1; ($(date +%s%N) - $t0) / 1000000000" | bc)
    if kill -0 "${PIDS[dir1]}" 2>/dev/null; then
        bad "$tag: dir1's ferrovs still runs ${waited}s after the drain began ($(active_conns dir1) connections)"
        kill9_ferrovs dir1
    else
        wait "${PIDS[dir1]}"
        rc=$?
        unset "PIDS[dir1]"
        check "$tag: dir1's ferrovs exited $rc (goal 0) by itself, ${waited}s after the drain began (bound $GRACE s)" \
            test "$rc" = 0 -a "$(echo "$waited < $GRACE + 3" | bc)" = 1
    fi
    grep -E "drain over|stopping|SIGTERM" "$WORK/dir1/ferrovs.log" | tail -3 | sed "s/^/#   dir1 log: /"
    sleep "$HOLD"
    client_stop "$tag" 100
}
if part graceful && [ "$SPEAKER" = exabgp ]; then
    note "graceful: skipped (ferrovs's own speaker only: a plain ExaBGP does not stop ferrovs)"
elif part graceful && client_start graceful; then
    sleep 3
    if adm dir1 --drain --stop-after $GRACE >"$WORK/graceful.out" 2>&1; then
        ok "graceful: ferrovsadm --drain --stop-after $GRACE on dir1 accepted"
    else
        bad "graceful: dir1 refused: $(tail -3 "$WORK/graceful.out")"
    fi
    graceful_exit graceful
    # The same through SIGTERM and drain_timeout.
    DRAIN_TIMEOUT=$GRACE
    add_dir dir1 || bad "graceful: ferrovs did not start again on dir1"
    DRAIN_TIMEOUT=""
    wait_until 30 routed_to dir1 dir2 dir3 >/dev/null || bad "graceful: dir1 not back (BGP: $(bgp_paths))"
    if client_start graceful-sigterm; then
        sleep 3
        kill -TERM "${PIDS[dir1]}"
        graceful_exit graceful-sigterm
    fi
    [ -v "PIDS[dir1]" ] || add_dir dir1 || bad "graceful: ferrovs did not start again on dir1"
    t=$(wait_until 30 routed_to dir1 dir2 dir3) &&
        ok "graceful: dir1 started again, the router balances over three in ${t}s" ||
        bad "graceful: dir1 not back (BGP: $(bgp_paths))"
fi

# --- linkdown: dir3's uplink goes down silently (no BGP close): the router
# withdraws after the hold time, its flows stall until then.
if part linkdown && client_start linkdown; then
    sleep 3
    up3=${FVE_DIR3_IFS%% *}
    ip netns exec "$FVE_NS_DIR3" ip link set "$up3" down
    t=$(wait_until $((FVE_HOLD_TIME + 6)) routed_to dir1 dir2) &&
        ok "linkdown: dir3's uplink down; the router withdrew its path after ${t}s (hold time ${FVE_HOLD_TIME}s)" ||
        bad "linkdown: the router still routes to dir3 (BGP: $(bgp_paths); kernel: $(kernel_nexthops))"
    sleep "$HOLD"
    client_stop linkdown 99
    ip netns exec "$FVE_NS_DIR3" ip link set "$up3" up
    # The kernel dropped dir3's default route with its link; the system's
    # network configuration puts it back (here: the test, as the lab made
    # it). DR never needed it (replies bypass the director), FULLNAT does.
    ip netns exec "$FVE_NS_DIR3" ip route replace default via "$FVE_ROUTER_IP"
    t=$(wait_until 40 routed_to dir1 dir2 dir3) &&
        ok "linkdown: the uplink back, dir3 announces again in ${t}s" ||
        bad "linkdown: dir3 not back after its link came up (BGP: $(bgp_paths))"
fi

# --- rschange: what breaks. rs3 leaves the configuration of every director
# (SIGHUP) at the same moment as dir1 drains. A director keeps its own
# connections to rs3 (a removed server drains), but a flow that changes
# director now is scheduled from the new Maglev table; those of rs3's flows
# go to rs1 or rs2, which reset them. Flows of rs1 and rs2 keep their
# server (Maglev moves only a few of them) and survive.
if part rschange && client_start rschange; then
    sleep 3
    for d in dir1 dir2 dir3; do write_conf "$d" "1 2" && kill -HUP "${PIDS[$d]}"; done
    drain_dir dir1 >"$WORK/drain2.out" 2>&1 || bad "rschange: dir1 refused to drain: $(tail -3 "$WORK/drain2.out")"
    wait_until 15 routed_to dir2 dir3 >/dev/null || bad "rschange: the router still routes to dir1 (BGP: $(bgp_paths))"
    sleep "$HOLD"
    client_stop rschange 0 report
    read -r on_rs3 lost_rs3 other lost_other < <("$PY" - "$WORK/rschange.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fails = r["failures"]
lost = r["opened"] - r["intact"]
lost3 = sum(1 for f in fails if f["rs"] == "rs3")
on3 = r["by_rs"].get("rs3", 0)
ok = lost == len(fails)
print(on3, lost3 if ok else -1, r["opened"] - on3, lost - lost3 if ok else -1)
PY
)
    note "rschange: of $on_rs3 connections to rs3, $lost_rs3 lost; of $other to rs1 and rs2, $lost_other lost"
    if [ "$lost_other" -ge 0 ] && [ $(((other - lost_other) * 100)) -ge $((other * 98)) ]; then
        ok "rschange: the connections of rs1 and rs2 survive ($((other - lost_other))/$other)"
    else
        bad "rschange: the connections of rs1 and rs2 do not survive ($((other - lost_other))/$other)"
    fi
    # Back to three real servers and three directors.
    for d in dir1 dir2 dir3; do write_conf "$d" && kill -HUP "${PIDS[$d]}"; done
    undrain_dir dir1 >"$WORK/undrain2.out" 2>&1
    wait_until 15 routed_to dir1 dir2 dir3 >/dev/null || bad "rschange: dir1 not back after --undrain (BGP: $(bgp_paths))"
fi

# --- sigterm: SIGTERM withdraws first and forwards until the routers have
# moved the flows (ferrovs's speaker only).
if part sigterm && [ "$SPEAKER" = ferrovs ] && client_start sigterm; then
    sleep 3
    kill -TERM "${PIDS[dir3]}" 2>/dev/null
    t=$(wait_until 15 routed_to dir1 dir2) &&
        ok "sigterm: SIGTERM on dir3, its path withdrawn in ${t}s" ||
        bad "sigterm: the router still routes to dir3 after SIGTERM (BGP: $(bgp_paths))"
    wait "${PIDS[dir3]}" 2>/dev/null
    unset "PIDS[dir3]"
    sleep "$HOLD"
    client_stop sigterm 99
fi

# --- sync: where hashing alone cannot answer. With `rr` a director that
# takes a flow over would schedule it afresh, to another real server, which
# resets it, unless it knows the flow: every director runs the connection
# sync as master and backup at once on the server segment (ferrovsadm
# --start-daemon, IPVS's messages to 224.0.0.81), so that each hears the
# other two. A director dies: its flows move to the other two, which send
# them to the real servers it had picked.
# reconfigure_all TAG: every director runs the current ALGO and PERSIST
# (a running one reloads, a stopped one starts), then both sync daemons
# where they do not run yet (none with SYNC_OFF).
reconfigure_all() {
    local tag=$1 d
    for d in dir1 dir2 dir3; do
        if [ -v "PIDS[$d]" ]; then
            write_conf "$d" && kill -HUP "${PIDS[$d]}"
        else
            add_dir "$d" || bad "$tag: ferrovs did not start on $d"
        fi
    done
    sleep 1
    [ -n "${SYNC_OFF:-}" ] && return
    for d in dir1 dir2 dir3; do
        adm "$d" -L --daemon 2>/dev/null | grep -q syncid || sync_daemons "$d" ||
            bad "$tag: --start-daemon on $d: $(tail -2 "$WORK/sync-$d.out")"
    done
}
if part sync && [ "$SPEAKER" = ferrovs ]; then
    ALGO=rr
    reconfigure_all sync
    [ -n "${SYNC_OFF:-}" ] && note "sync: SYNC_OFF: no sync daemons, what rr alone keeps is reported"
    [ -z "${SYNC_OFF:-}" ] && check "sync: every director runs lb_algo rr and both sync daemons" \
        bash -c "$(declare -f adm); WORK=$WORK FERROVSADM=$FERROVSADM; for d in dir1 dir2 dir3; do adm \$d -Ln | grep -q ' rr' && [ \$(adm \$d -L --daemon | grep -c syncid) = 2 ] || exit 1; done"
    wait_until 30 routed_to dir1 dir2 dir3 >/dev/null || bad "sync: the router does not route to all three (BGP: $(bgp_paths))"
    if client_start sync; then
        sleep 3
        for d in dir1 dir3; do
            [ -n "${SYNC_OFF:-}" ] && break
            n=$(metric "$d" ferrovs_sync_entries_installed_total)
            check "sync: $d installed the other directors' connections ($n)" [ "$n" -gt 0 ]
        done
        remove_dir dir2
        t=$(wait_until $((FVE_HOLD_TIME + 6)) routed_to dir1 dir3) &&
            ok "sync: kill -9 of dir2's ferrovs; the router withdrew its path in ${t}s" ||
            bad "sync: the router still routes to dir2 (BGP: $(bgp_paths))"
        sleep "$HOLD"
        client_stop sync 99 ${SYNC_OFF:+report}
    fi
fi

# --- persist: persistence templates across directors. Connections of one
# client address are spread over the three directors by the router; the
# template its first connection made on one director reaches the others
# with that connection's sync record (at its third packet), so a client's
# later connections reach the same real server whichever director takes
# them. Its very first connections, opened at once on several directors
# before any sync, may each make a template of their own (IPVS's sync has
# the same race): a short first client opens one connection per address
# and the check is on what follows.
# src_servers TAG: "src rs" lines, one per client address that reached a
# single real server; a line "src MIXED" for one that reached several.
src_servers() {
    "$PY" - "$WORK/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for src, per in sorted(r.get("by_src", {}).items()):
    print(src, next(iter(per)) if len(per) == 1 else "MIXED")
PY
}
client_once() { # TAG CONNS: connections opened, one exchange round, closed
    longconn "$1" "$2" 2
    "${LONGCONN[@]}" >"$WORK/$1.log" 2>&1
}
if part persist && [ "$SPEAKER" = ferrovs ]; then
    ALGO=rr PERSIST=300
    reconfigure_all persist
    wait_until 30 routed_to dir1 dir2 dir3 >/dev/null || bad "persist: the router does not route to all three (BGP: $(bgp_paths))"
    client_once persist-first 32
    src_servers persist-first >"$WORK/persist-first.map"
    sleep 1
    if client_start persist; then
        sleep 3
        remove_dir dir2
        wait_until $((FVE_HOLD_TIME + 6)) routed_to dir1 dir3 >/dev/null || bad "persist: the router still routes to dir2 (BGP: $(bgp_paths))"
        sleep 2
        client_once persist-after 96
        sleep "$HOLD"
        client_stop persist 99
        src_servers persist >"$WORK/persist.map"
        src_servers persist-after >"$WORK/persist-after.map"
        for tag in persist persist-after; do
            same=$(join "$WORK/persist-first.map" "$WORK/$tag.map" | awk '$2 == $3 && $2 != "MIXED"' | wc -l)
            total=$(wc -l <"$WORK/$tag.map")
            what="the 1000 long-lived connections, through three directors"
            [ "$tag" = persist-after ] && what="96 connections opened after kill -9 of dir2, through the other two"
            check "persist: $same of $total client addresses reach their first connection's real server in $what" \
                [ "$same" = "$total" -a "$total" = 32 ]
        done
        note "persist: first connections' servers: $(awk '{print $2}' "$WORK/persist-first.map" | sort | uniq -c | tr '\n' ' ')"
    fi
    ALGO=mh PERSIST=""
fi

note "measured: ${RESULTS:-nothing}"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
