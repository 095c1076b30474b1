#!/usr/bin/env bash
# End-to-end BGP announcements (issue 16 part 2), checked on the router:
# one director namespace running `ferrovs run` with `ferrovs { bgp { } }`
# (ferrovs starts ExaBGP itself) and a router namespace running FRR's
# zebra and bgpd, peering over a veth. A real server (a Python HTTP
# server in the router namespace) is checked with TCP_CHECK, so that the
# service's quorum follows it. What FRR says (`vtysh -c 'show ip bgp'`,
# `show ip route`), not our log, decides:
#
#   - the session comes up and the VIP is learnt, installed as a route;
#   - `ferrovsadm -L --bgp` shows the neighbor up and the VIP announced;
#   - the real server stops: quorum lost, the route is withdrawn; it comes
#     back: announced again;
#   - `ferrovsadm --drain` withdraws it, `--undrain` announces it again;
#   - SIGHUP with a new `med`: the route carries it, over the same session;
#     with a new hold_time: ExaBGP starts again and the session comes back
#     with it;
#   - `ferrovs upgrade`, in place (AF_PACKET) twice and by a hand-over to
#     a new process (AF_XDP): ExaBGP goes on with its session (the router
#     counts no drop) and the route never leaves the router;
#   - SIGTERM withdraws it before ferrovs exits (the route is gone while
#     the session would still hold it for hold_time);
#   - `ferrovsadm --drain` against a ferrovs without BGP is refused clearly.
#
#   tests/e2e_bgp.sh
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
FRR_DIR=${FRR_DIR:-/usr/lib/frr}
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-bgp.XXXXXX)
# FRR drops to its own user, which must reach its state directory.
chmod 755 "$WORK"
NSD=fvs-bgp-d-$$
NSR=fvs-bgp-r-$$
# The tables' directory (a tmpfs, as an upgrade needs).
STATE=/dev/shm/ferrovs-bgp-$$
FPID=""

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
for b in "$FERROVS" "$FERROVSADM" "$FRR_DIR/zebra" "$FRR_DIR/bgpd" "$(command -v vtysh)" "$(command -v exabgp)"; do
    [ -x "$b" ] || { echo "missing $b (build with cargo build --release; apt-get install frr exabgp)" >&2; echo "0 passed, 1 failed"; exit 1; }
done

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

cleanup() {
    [ -n "$FPID" ] && kill -KILL "$FPID" 2>/dev/null
    for ns in "$NSD" "$NSR"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK" "$STATE"
}
trap cleanup EXIT

# Waits up to $1 seconds for a command to succeed.
wait_for() {
    local t=$1; shift
    for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}

vty() { ip netns exec "$NSR" vtysh --vty_socket "$WORK/frr" -c "$1" 2>/dev/null; }
learnt() { vty "show ip bgp" | grep -q "198.18.0.100/32"; }
gone() { ! learnt; }
routed() { vty "show ip route 198.18.0.100/32" | grep -q "198.18.2.11"; }
adm() { ip netns exec "$NSD" env FERROVS_CTL="$WORK/run/ctl.sock" "$FERROVSADM" "$@"; }
exabgp_pids() { ip netns pids "$NSD" | xargs -r ps -o pid=,args= -p 2>/dev/null | awk '/exabgp/ && !/bgp-relay/ {print $1}' | sort | tr '\n' ' '; }
# How many times the router's session with the director dropped.
drops() { vty "show bgp neighbors 198.18.2.11 json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["198.18.2.11"]["connectionsDropped"])' 2>/dev/null; }
gone_pid() { [ ! -e "/proc/$1" ] || grep -q ') Z' "/proc/$1/stat" 2>/dev/null; }
stop_ferrovs() { # waits for FPID, a child or not (after a hand-over it is not)
    kill -TERM "$FPID"
    for _ in $(seq 100); do gone_pid "$FPID" && break; sleep 0.1; done
    wait "$FPID" 2>/dev/null
    FPID=""
}

# upgrade_check WHAT: `ferrovs upgrade` to a fresh copy of the binary while
# a watcher asks the router for the route every 100 ms.
UPGRADES=0
upgrade_check() {
    local what=$1 before_pids before_drops bin out rc new
    before_pids=$(exabgp_pids)
    before_drops=$(drops)
    local adopted_before
    adopted_before=$(grep -c "adopted ExaBGP's API connected" "$WORK/ferrovs.log")
    UPGRADES=$((UPGRADES + 1))
    bin=$WORK/ferrovs-new$UPGRADES
    cp "$FERROVS" "$bin"
    touch "$WORK/watch"
    rm -f "$WORK/misses"
    (while [ -e "$WORK/watch" ]; do learnt || echo miss >>"$WORK/misses"; sleep 0.1; done) &
    local watcher=$!
    sleep 1
    out=$(ip netns exec "$NSD" env FERROVS_CTL="$WORK/run/ctl.sock" "$bin" upgrade "$bin" 2>&1)
    rc=$?
    check "upgrade $what: ferrovs upgrade succeeds (exit $rc)" [ "$rc" = 0 ]
    [ "$rc" = 0 ] || sed 's/^/#   /' <<<"$out"
    new=$(sed -n 's/^handing over to .* (pid \([0-9]*\))$/\1/p' <<<"$out" | tail -1)
    if [ -n "$new" ] && [ "$new" != "$FPID" ]; then
        for _ in $(seq 100); do gone_pid "$FPID" && break; sleep 0.1; done
        check "upgrade $what: the old process exited" gone_pid "$FPID"
        wait "$FPID" 2>/dev/null
        FPID=$new
    fi
    check "upgrade $what: the new binary runs" [ "$(readlink "/proc/$FPID/exe")" = "$bin" ]
    local o=""
    for _ in $(seq 50); do
        o=$(adm -L --bgp 2>/dev/null)
        grep -q 'neighbor 198.18.2.1 up' <<<"$o" && grep -q '198.18.0.100 announced' <<<"$o" && break
        sleep 0.2
    done
    check "upgrade $what: ferrovsadm -L --bgp on the new process: neighbor up, VIP announced" \
        bash -c "grep -q 'neighbor 198.18.2.1 up' <<<'$o' && grep -q '198.18.0.100 announced' <<<'$o'"
    sleep 2
    rm -f "$WORK/watch"
    wait "$watcher" 2>/dev/null
    check "upgrade $what: the same ExaBGP runs ($before_pids-> $(exabgp_pids))" [ "$(exabgp_pids)" = "$before_pids" ]
    check "upgrade $what: the router's session never dropped (drops $before_drops -> $(drops))" [ "$(drops)" = "$before_drops" ]
    check "upgrade $what: the route never left the router ($(cat "$WORK/misses" 2>/dev/null | wc -l) misses in 100 ms polls)" \
        [ ! -s "$WORK/misses" ]
    check "upgrade $what: the new process adopted ExaBGP" \
        [ "$(grep -c "adopted ExaBGP's API connected" "$WORK/ferrovs.log")" -gt "$adopted_before" ]
}

ip netns add "$NSD"
ip netns add "$NSR"
ip link add fvbgp0 netns "$NSD" type veth peer name fvbgp1 netns "$NSR"
ip -n "$NSD" addr add 198.18.2.11/24 dev fvbgp0
ip -n "$NSR" addr add 198.18.2.1/24 dev fvbgp1
for ns in "$NSD" "$NSR"; do ip -n "$ns" link set lo up; done
ip -n "$NSD" link set fvbgp0 up
ip -n "$NSR" link set fvbgp1 up
ip -n "$NSD" route add default via 198.18.2.1
ip netns exec "$NSD" ethtool -K fvbgp0 gro off gso off tso off >/dev/null 2>&1

# FRR, as a router peering with each director (ECMP over equal paths).
mkdir -p "$WORK/frr" "$WORK/run"
printf 'hostname bgp-router\n' >"$WORK/frr/zebra.conf"
cat >"$WORK/frr/bgpd.conf" <<EOF
hostname bgp-router
router bgp 65000
 bgp router-id 198.18.2.1
 no bgp ebgp-requires-policy
 neighbor 198.18.2.11 remote-as 65011
 neighbor 198.18.2.11 timers 3 9
 address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
EOF
chown -R frr:frr "$WORK/frr"
ip netns exec "$NSR" "$FRR_DIR/zebra" -f "$WORK/frr/zebra.conf" -i "$WORK/frr/zebra.pid" \
    -z "$WORK/frr/zserv.api" --vty_socket "$WORK/frr" -P 0 >"$WORK/zebra.out" 2>&1 &
disown
wait_for 10 test -S "$WORK/frr/zserv.api" || bad "zebra did not start: $(tail -3 "$WORK/zebra.out")"
ip netns exec "$NSR" "$FRR_DIR/bgpd" -f "$WORK/frr/bgpd.conf" -i "$WORK/frr/bgpd.pid" \
    -z "$WORK/frr/zserv.api" --vty_socket "$WORK/frr" -P 0 -l 198.18.2.1 -p 179 >"$WORK/bgpd.out" 2>&1 &
disown
wait_for 10 vty "show bgp summary" >/dev/null || bad "bgpd did not start: $(tail -3 "$WORK/bgpd.out")"

# The real server the checker watches: on the router's address.
start_rs() {
    ip netns exec "$NSR" python3 -m http.server 8080 --bind 198.18.2.1 >/dev/null 2>&1 &
    RS_PID=$!
    disown
}
start_rs

cat >"$WORK/ferrovs.conf" <<EOF
ferrovs {
    backend afpacket
    interface fvbgp0
    workers 1
    control_socket $WORK/run/ctl.sock
    state_dir $STATE
    http_listen 127.0.0.1:9197
    sloppy_tcp on
    bgp {
        local_as 65011
        neighbor 198.18.2.1 {
            peer_as 65000
            local_address 198.18.2.11
            hold_time 9
        }
    }
}
virtual_server 198.18.0.100 8080 {
    delay_loop 1
    lb_algo mh
    lb_kind DR
    protocol TCP
    real_server 198.18.2.1 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
}
EOF
ip netns exec "$NSD" "$FERROVS" run -f "$WORK/ferrovs.conf" >"$WORK/ferrovs.log" 2>&1 &
FPID=$!

check "the router learns the VIP over BGP" wait_for 30 learnt
check "and routes it to the director" wait_for 5 routed
check "the session is established on the router" bash -c "ip netns exec $NSR vtysh --vty_socket $WORK/frr -c 'show bgp summary' 2>/dev/null | grep -qE '^198\.18\.2\.11 .* 1 +[0-9N]'"
out=$(adm -L --bgp)
check "ferrovsadm -L --bgp: neighbor up, VIP announced" bash -c "grep -q 'neighbor 198.18.2.1 up' <<<'$out' && grep -q '198.18.0.100 announced' <<<'$out'"

# Reloads of the bgp block.
med() { vty "show ip bgp 198.18.0.100/32 json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["paths"][0].get("metric", "none"))' 2>/dev/null; }
hold_ms() { vty "show bgp neighbors 198.18.2.11 json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["198.18.2.11"]["bgpTimerHoldTimeMsecs"])' 2>/dev/null; }
d0=$(drops)
sed -i 's/^        local_as 65011$/        local_as 65011\n        med 50/' "$WORK/ferrovs.conf"
kill -HUP "$FPID"
med_is() { [ "$(med)" = "$1" ]; }
hold_is() { [ "$(hold_ms)" = "$1" ]; }
wait_for 10 med_is 50
check "reload with med 50: the router's route carries it (MED $(med))" med_is 50
check "over the same session (drops $d0 -> $(drops))" [ "$(drops)" = "$d0" ]
sed -i 's/^            hold_time 9$/            hold_time 6/' "$WORK/ferrovs.conf"
kill -HUP "$FPID"
wait_for 30 hold_is 6000
check "reload with hold_time 6: ExaBGP starts again, the session holds 6 s ($(hold_ms) ms)" [ "$(hold_ms)" = 6000 ]
check "and the route is back" wait_for 20 learnt
grep -q "restarting ExaBGP" "$WORK/ferrovs.log" || bad "the log does not say ExaBGP restarted for the reload"

kill "$RS_PID"
check "the real server fails: quorum lost, the route is withdrawn" wait_for 15 gone
out=$(adm -L --bgp)
check "ferrovsadm -L --bgp says why" grep -q '198.18.0.100 withdrawn (no quorum)' <<<"$out"
start_rs
check "it comes back: announced again" wait_for 15 learnt

adm --drain >/dev/null
check "ferrovsadm --drain withdraws the VIP" wait_for 10 gone
check "ferrovsadm -L --bgp shows the drain" bash -c "$(declare -f adm); NSD=$NSD WORK=$WORK FERROVSADM=$FERROVSADM; adm -L --bgp | grep -q 'withdrawn (draining)'"
adm --undrain >/dev/null
check "ferrovsadm --undrain announces it again" wait_for 10 learnt

upgrade_check "in place (AF_PACKET)"
# The second adopts what the first adopted.
upgrade_check "in place again"

t0=$(date +%s%N)
stop_ferrovs
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# hold_time is 9 s: had ferrovs just vanished, the router would keep the
# route that long; it is gone at once because it was withdrawn.
check "SIGTERM withdraws the VIP before ferrovs exits (exited in ${ms} ms)" gone
check "and ExaBGP stopped with it" bash -c "! ip netns pids $NSD | xargs -r ps -o comm= -p 2>/dev/null | grep -q exabgp"

# Without a bgp block: a clear refusal.
sed -e '/sloppy_tcp/,/^    }$/d' "$WORK/ferrovs.conf" >"$WORK/nobgp.conf"
ip netns exec "$NSD" "$FERROVS" run -f "$WORK/nobgp.conf" >"$WORK/nobgp.log" 2>&1 &
FPID=$!
wait_for 10 test -S "$WORK/run/ctl.sock"
sleep 0.5
out=$(adm --drain 2>&1); rc=$?
check "--drain without BGP is refused (exit $rc): $out" bash -c "[ $rc -ne 0 ] && grep -q 'BGP is not configured' <<<'$out'"
kill -TERM "$FPID"; wait "$FPID" 2>/dev/null; FPID=""

# AF_XDP: the upgrade hands the ports over to a new process beside this one.
sed -e 's/backend afpacket/backend afxdp/' "$WORK/ferrovs.conf" >"$WORK/xdp.conf"
: >"$WORK/ferrovs.log"
ip netns exec "$NSD" "$FERROVS" run -f "$WORK/xdp.conf" >"$WORK/ferrovs.log" 2>&1 &
FPID=$!
check "AF_XDP: the router learns the VIP again" wait_for 30 learnt
upgrade_check "by hand-over (AF_XDP)"
stop_ferrovs
check "AF_XDP: SIGTERM withdraws the VIP" gone
check "and ExaBGP stopped with it" bash -c "[ -z \"\$(ip netns pids $NSD | xargs -r ps -o comm= -p 2>/dev/null | grep exabgp)\" ]"

if [ "$FAIL" -ne 0 ]; then
    echo "--- ferrovs log"; grep -v ' DEBUG ' "$WORK/ferrovs.log" | tail -30
fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
