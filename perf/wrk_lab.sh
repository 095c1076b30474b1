#!/usr/bin/env bash
# Throughput through the director versus straight to one real server, in the
# namespace lab: wrk from the client to the VIP (ferrovs in DR mode, three
# real servers) and to one real server directly (through the lab's router).
# A benchmark, not a test: it prints the figures. Run as root.
#
#   perf/wrk_lab.sh [--mode dr|nat|fullnat|tun] [--seconds 10] [--connections 32]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=dr SECONDS_=10 CONNS=32
while [ $# -gt 0 ]; do
    case $1 in
        --mode) MODE=$2; shift 2 ;;
        --seconds) SECONDS_=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release -q -p ferrovs-controlplane
NAME=fvs-wrk
WORK=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    scripts/lab.sh down "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
scripts/lab.sh down "$NAME" >/dev/null 2>&1 || true
eval "$(scripts/lab.sh up --mode "$MODE" --name "$NAME" --big-mib 1 2>/dev/null)"
kind=$(echo "$MODE" | tr a-z A-Z); [ "$MODE" = fullnat ] && kind=FNAT
rport=80
{
    echo "ferrovs {"
    echo "    interface $FVS_DIRECTOR_IF_CLIENT"
    echo "    interface $FVS_DIRECTOR_IF_SERVER"
    echo "    workers 1"
    echo "}"
    [ "$MODE" = fullnat ] && printf 'local_address_group L { %s }\n' "$FVS_LIP_RANGE"
    echo "virtual_server $FVS_VIP 80 {"
    echo "    lb_algo rr"
    echo "    lb_kind $kind"
    echo "    protocol TCP"
    [ "$MODE" = fullnat ] && echo "    laddr_group_name L"
    for ip in $FVS_RS_IPS; do echo "    real_server $ip $rport { weight 1 }"; done
    echo "}"
} >"$WORK/k.conf"
FERROVS_CTL=$WORK/ctl.sock ip netns exec "$FVS_NS_DIRECTOR" target/release/ferrovs run -f "$WORK/k.conf" >"$WORK/log" 2>&1 &
pid=$!
for _ in $(seq 100); do FERROVS_CTL=$WORK/ctl.sock target/release/ferrovsadm -Ln >/dev/null 2>&1 && break; sleep 0.1; done

run_wrk() { ip netns exec "$FVS_NS_CLIENT" wrk -t1 -c"$CONNS" -d"${SECONDS_}s" --latency "$@"; }
echo "== setup: $(nproc) vCPUs; ferrovs 1 worker, AF_PACKET, $MODE, 3 real servers (python http.server); wrk -t1 -c$CONNS -d${SECONDS_}s"
echo "== through the VIP (http://$FVS_VIP/)"
run_wrk "http://$FVS_VIP/" | grep -E "Requests/sec|Latency|Transfer/sec|50%|99%|requests in"
echo "== straight to one real server (http://$FVS_RS1_IP/, through the lab router)"
ip netns exec "$FVS_NS_CLIENT" wrk -t1 -c"$CONNS" -d"${SECONDS_}s" --latency "http://$FVS_RS1_IP/" 2>/dev/null | grep -E "Requests/sec|Latency|Transfer/sec|50%|99%|requests in" || true
echo "== ferrovsadm -Ln --stats"
FERROVS_CTL=$WORK/ctl.sock target/release/ferrovsadm -Ln --stats
