#!/usr/bin/env bash
# The longest forwarding gap while ferrovs upgrades or restarts (issue 17):
# one flow sends a UDP datagram through the director every millisecond
# (scripts/lab-udp-echo.py gap), a real server echoes it, and the client
# records when each answer comes back. The longest time between two
# answers is how long the path was down.
#
#   perf/upgrade_gap.sh [upgrade|restart] [dr|nat|fullnat|tun]
#   ROUNDS=3 BACKEND=afpacket perf/upgrade_gap.sh upgrade dr
#   FILL=100000 perf/upgrade_gap.sh upgrade dr   with that many connections
#                                                in the table (UDP, pktgen)
#   BACKEND=dpdk perf/upgrade_gap.sh upgrade dr  DPDK on the veths
#                                                (net_af_packet), built with
#                                                --features dpdk
#
# With DPDK the exception TAPs (fvs0, fvs1) go with the process: the
# script puts the director's addresses back on the new ones as soon as
# they appear, as ifupdown's allow-hotplug would.
#
# Prints one line per round and the worst.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
# shellcheck source=scripts/lab-dpdk.sh
. "$ROOT/scripts/lab-dpdk.sh"
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
UDP_ECHO=$ROOT/scripts/lab-udp-echo.py
EVENT=${1:-upgrade}
MODE=${2:-dr}
ROUNDS=${ROUNDS:-3}
BACKEND=${BACKEND:-}
PORT=5300
WORK=$(mktemp -d /tmp/ferrovs-gap.XXXXXX)
STATE=/dev/shm/ferrovs-gap-$$
LAB_NAME=""
PID=""
ECHO_PIDS=()

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && sleep 0.5 && kill -KILL "$PID" 2>/dev/null
    for p in "${ECHO_PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    rm -rf "$STATE"
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

env_text=$("$LAB" up --mode "$MODE" --directors 1 --name "fvs-gap$$" --big-mib 1) || exit 1
eval "$env_text"
LAB_NAME=$FVS_LAB_NAME
kind=$(case $MODE in dr) echo DR ;; nat) echo NAT ;; fullnat) echo FNAT ;; tun) echo TUN ;; esac)
{
    echo "ferrovs {"
    if [ "$BACKEND" = dpdk ]; then
        echo "    backend dpdk"
        echo "    interface fvs0"
        echo "    interface fvs1"
        echo "    dpdk {"
        echo "        eal_args \"--no-huge -m 512 --no-pci --no-shconf --file-prefix=fvs-gap$$\""
        echo "        eal_args \"--vdev=net_af_packet0,iface=$FVS_DIRECTOR_IF_CLIENT\""
        echo "        eal_args \"--vdev=net_af_packet1,iface=$FVS_DIRECTOR_IF_SERVER\""
        echo "        port fvs0 net_af_packet0"
        echo "        port fvs1 net_af_packet1"
        echo "    }"
    else
        [ -n "$BACKEND" ] && echo "    backend $BACKEND"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
    fi
    echo "    workers 1"
    echo "    control_socket $WORK/ctl.sock"
    echo "    http_listen 127.0.0.1:19391"
    echo "    state_dir $STATE"
    echo "}"
    [ "$MODE" = fullnat ] && printf 'local_address_group LAG1 {\n    %s\n}\n' "$FVS_LIP_RANGE"
    echo "virtual_server $FVS_VIP $PORT {"
    echo "    lb_algo rr"
    echo "    lb_kind $kind"
    echo "    protocol UDP"
    [ "$MODE" = fullnat ] && echo "    laddr_group_name LAG1"
    for ip in $FVS_RS_IPS; do echo "    real_server $ip $PORT"; done
    echo "}"
} >"$WORK/d.conf"
for i in 1 2 3; do
    ns=FVS_NS_RS$i ip=FVS_RS${i}_IP
    ip netns exec "${!ns}" setsid "$(command -v python3)" "$UDP_ECHO" serve --name "rs$i" \
        --port "$PORT" --addr "$FVS_VIP" --addr "${!ip}" --ready "$WORK/udp$i.ready" \
        </dev/null >"$WORK/udp$i.log" 2>&1 &
    ECHO_PIDS+=($!)
done
in_director() { ip netns exec "$FVS_NS_DIRECTOR" "$@"; }
# DPDK (scripts/lab-dpdk.sh): the new process probes the ports again, so
# the kernel's MAC moves before the first one does.
[ "$BACKEND" = dpdk ] && dpdk_take_nics --mac
start() {
    rm -f "$WORK/ctl.sock"
    RUST_LOG=${RUST_LOG:-info,ferrovs_controlplane::daemon=debug} ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$WORK/d.conf" >>"$WORK/d.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        if [ -S "$WORK/ctl.sock" ]; then
            [ "$BACKEND" = dpdk ] && { dpdk_addresses || exit 1; }
            return 0
        fi
        sleep 0.05
    done
    echo "ferrovs did not start: $(tail -3 "$WORK/d.log")" >&2
    exit 1
}
start
sleep 1
if [ "${FILL:-0}" -gt 0 ]; then
    # FILL connections in the table before the rounds (UDP flows from
    # 198.19.0.0/16, one datagram each, twice for what a veth drops): the
    # new process reads them back inside the pause.
    for _ in 1 2; do
        ip netns exec "$FVS_NS_CLIENT" "$(dirname "$FERROVS")/ferrovs-pktgen" --dev "$FVS_CLIENT_IF" \
            --dst-mac "$FVS_DIRECTOR_MAC_CLIENT" --dst "$FVS_VIP" --dport "$PORT" --flows "$FILL" \
            --once --rate 200000 >"$WORK/pktgen.log" 2>&1 || { echo "pktgen: $(tail -2 "$WORK/pktgen.log")" >&2; exit 1; }
    done
    echo "table: $(FERROVS_CTL=$WORK/ctl.sock "$(dirname "$FERROVS")/ferrovsadm" -Lnc | grep -c '^UDP ') connections"
fi
worst=0
for r in $(seq "$ROUNDS"); do
    touch "$WORK/run"
    ip netns exec "$FVS_NS_CLIENT" python3 "$UDP_ECHO" gap --dst "$FVS_VIP" --port "$PORT" \
        --while-exists "$WORK/run" >"$WORK/gap.json" &
    probe=$!
    sleep 2
    case $EVENT in
        upgrade)
            # A fresh file each round: the one before runs.
            cp "$FERROVS" "$WORK/ferrovs-new$r"
            FERROVS_CTL=$WORK/ctl.sock "$WORK/ferrovs-new$r" upgrade "$WORK/ferrovs-new$r" >"$WORK/up.out" 2>&1 ||
                { echo "upgrade failed: $(cat "$WORK/up.out")" >&2; exit 1; }
            # On AF_XDP a new process took over: follow it.
            new=$(sed -n 's/^handing over to .* (pid \([0-9]*\))$/\1/p' "$WORK/up.out" | tail -1)
            [ -n "$new" ] && PID=$new
            if [ "$BACKEND" = dpdk ]; then
                # The old TAPs may still be there: wait for them to go.
                for _ in $(seq 400); do
                    in_director ip -4 addr show dev fvs1 2>/dev/null | grep -q inet || break
                    sleep 0.005
                done
                dpdk_addresses || { echo "the new process made no TAPs" >&2; exit 1; }
            fi
            ;;
        restart)
            kill -TERM "$PID"; wait "$PID" 2>/dev/null; start ;;
        *) echo "unknown event $EVENT" >&2; exit 2 ;;
    esac
    sleep 2
    rm -f "$WORK/run"
    wait "$probe"
    g=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_gap_ms"])' "$WORK/gap.json")
    echo "round $r: $EVENT ($MODE${BACKEND:+, $BACKEND}): longest gap $g ms ($(cat "$WORK/gap.json"))"
    worst=$(python3 -c "print(max($worst, $g))")
done
echo "worst gap: $worst ms"
