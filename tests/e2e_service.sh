#!/usr/bin/env bash
# The systemd unit, packaging/systemd/ferrovs.service: `systemd-analyze
# verify` accepts it, and the appliance runs under exactly its capability
# bounding set (root, but only those capabilities, as systemd starts it):
# AF_XDP with its XDP program, VRRP, TCP health checks, the control socket,
# a SIGHUP reload and a clean SIGTERM, in the namespace lab (DR).
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
UNIT=$ROOT/packaging/systemd/ferrovs.service
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-svc.XXXXXX)
LAB_NAME=""
FPID=""

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }

cleanup() {
    if [ -n "$FPID" ]; then kill -TERM "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; fi
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the unit file ---------------------------------------------------------

if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s|/usr/sbin/ferrovs|$FERROVS|g" "$UNIT" >"$WORK/ferrovs.service"
    check "systemd-analyze verify accepts the unit" systemd-analyze verify "$WORK/ferrovs.service"
else
    echo "# systemd-analyze not installed: the unit is not verified"
fi
CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
check "the unit names a capability bounding set ($CAPS)" [ -n "$CAPS" ]
# setpriv's form: -all,+net_admin,+net_raw,...
BSET="-all"
MASK=0
for c in $CAPS; do
    n=$(echo "${c#CAP_}" | tr 'A-Z' 'a-z')
    BSET="$BSET,+$n"
    bit=$(python3 -c "import sys; print({'chown':0,'kill':5,'setgid':6,'setuid':7,'net_admin':12,'net_raw':13,'ipc_lock':14,'sys_resource':24,'perfmon':38,'bpf':39}['$n'])") ||
        { bad "unknown capability $c in the unit"; continue; }
    MASK=$((MASK | (1 << bit)))
done

# --- the appliance under those capabilities --------------------------------

env_text=$("$LAB" up --mode dr --name "fvs-svc$$" 2>"$WORK/lab.err") || {
    bad "lab did not come up: $(tail -3 "$WORK/lab.err")"
    echo "$PASS passed, $FAIL failed"
    exit 1
}
eval "$env_text"
LAB_NAME=$FVS_LAB_NAME

write_conf() { # WEIGHT
    {
        echo "global_defs {"
        echo "    router_id FVS_SVC"
        echo "}"
        echo "ferrovs {"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers 1"
        echo "    control_socket $WORK/ctl.sock"
        echo "    http_listen 127.0.0.1:19190"
        echo "}"
        echo "vrrp_instance VI_1 {"
        echo "    state MASTER"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    virtual_router_id 51"
        echo "    priority 150"
        echo "    advert_int 1"
        echo "    virtual_ipaddress {"
        echo "        $FVS_VIP"
        echo "    }"
        echo "}"
        echo "virtual_server $FVS_VIP 80 {"
        echo "    delay_loop 1"
        echo "    lb_algo rr"
        echo "    lb_kind DR"
        echo "    protocol TCP"
        for ip in $FVS_RS_IPS; do
            echo "    real_server $ip 80 {"
            echo "        weight $1"
            echo "        TCP_CHECK {"
            echo "            connect_timeout 1"
            echo "        }"
            echo "    }"
        done
        echo "}"
    } >"$WORK/ferrovs.conf"
}
write_conf 1

# As systemd would: root, the unit's bounding set, its memlock limit (where
# this machine lets us raise it; a container may not, and the UMEM is
# pinned under CAP_IPC_LOCK anyway). A capability this machine does not
# grant (a container's own bounding set) cannot be expected either.
PRL=()
prlimit --memlock=unlimited:unlimited true 2>/dev/null && PRL=(prlimit --memlock=unlimited:unlimited)
MASK=$((MASK & 16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
ip netns exec "$FVS_NS_DIRECTOR" "${PRL[@]}" \
    setpriv --bounding-set "$BSET" -- "$FERROVS" run -f "$WORK/ferrovs.conf" >"$WORK/ferrovs.log" 2>&1 &
FPID=$!
up=0
for _ in $(seq 100); do
    kill -0 "$FPID" 2>/dev/null || break
    [ -S "$WORK/ctl.sock" ] && adm -Ln >/dev/null 2>&1 && { up=1; break; }
    sleep 0.1
done
check "ferrovs starts under the unit's capabilities" [ "$up" = 1 ]
[ "$up" = 1 ] || tail -20 "$WORK/ferrovs.log"
# The process ferrovs runs as (prlimit and setpriv exec in turn).
cap_eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$FPID/status" 2>/dev/null)
check "its effective capabilities are exactly the unit's (CapEff $cap_eff)" [ "$((16#${cap_eff:-0}))" = "$MASK" ]
check "the XDP program is attached" bash -c "ip netns exec $FVS_NS_DIRECTOR ip link show $FVS_DIRECTOR_IF_CLIENT | grep -q xdp"
vrrp_master() { FERROVS_CTL=$WORK/ctl.sock "$FERROVS" status 2>/dev/null | grep -q '"state": "MASTER"'; }
for _ in $(seq 60); do vrrp_master && break; sleep 0.1; done
check "VRRP runs and takes the VIP" vrrp_master
serving() {
    local n=0 r
    for _ in 1 2 3 4 5 6; do
        r=$(in_ns "$FVS_NS_CLIENT" curl -s --max-time 3 "http://$FVS_VIP/")
        [[ $r =~ ^rs[123]$ ]] && n=$((n + 1))
    done
    [ "$n" = 6 ]
}
check "it serves through the VIP" serving
check "TCP health checks see the servers" bash -c "[ \$(FERROVS_CTL=$WORK/ctl.sock $FERROVS status | grep -c '\"alive\": true') -ge 3 ]"
write_conf 4
kill -HUP "$FPID"
reloaded() { adm -Ln | grep -Eq ' Route +4 '; }
for _ in $(seq 30); do reloaded && break; sleep 0.1; done
check "a SIGHUP reload applies" reloaded
check "still serving after the reload" serving
kill -TERM "$FPID"
wait "$FPID" 2>/dev/null
FPID=""
check "SIGTERM stops it cleanly" grep -q "ferrovs stopped" "$WORK/ferrovs.log"
check "no XDP program left" bash -c "! ip netns exec $FVS_NS_DIRECTOR ip link show $FVS_DIRECTOR_IF_CLIENT | grep -q xdp"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
