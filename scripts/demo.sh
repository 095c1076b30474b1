#!/usr/bin/env bash
# The demo: installs what is needed, builds, brings up a lab of network
# namespaces in DR mode, runs ferrovs from examples/keepalived-dr.conf,
# sends traffic from the client, and shows which real server answered how
# often, the `ferrovsadm -Ln` table and the statistics. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

[ "$(id -u)" -eq 0 ] || { echo "run the demo as root (it builds network namespaces)" >&2; exit 1; }
need=()
for p in build-essential pkg-config iproute2 curl python3 ethtool procps clang llvm libbpf-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }

echo "== building"
cargo build --release -q -p ferrovs-controlplane
FERROVS=$ROOT/target/release/ferrovs
export FERROVS_CTL=/run/ferrovs-demo/ctl.sock
mkdir -p /run/ferrovs-demo

LAB_NAME=fvs-demo
scripts/lab.sh down "$LAB_NAME" >/dev/null 2>&1 || true
pid=""
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    scripts/lab.sh down "$LAB_NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== bringing up the lab (DR)"
eval "$(scripts/lab.sh up --mode dr --name "$LAB_NAME" --big-mib 1)"
grep -q "$FVS_DIRECTOR_IF_CLIENT" examples/keepalived-dr.conf || {
    echo "examples/keepalived-dr.conf names other interfaces than the lab's ($FVS_DIRECTOR_IFS)" >&2
    exit 1
}

echo "== ferrovs check -f examples/keepalived-dr.conf --dump"
"$FERROVS" check -f examples/keepalived-dr.conf --dump

echo "== starting ferrovs in the director namespace"
ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f examples/keepalived-dr.conf >/run/ferrovs-demo/ferrovs.log 2>&1 &
pid=$!
for _ in $(seq 100); do
    target/release/ferrovsadm -Ln >/dev/null 2>&1 && break
    sleep 0.1
done

echo "== 120 requests from the client (198.18.0.10) to http://$FVS_VIP/"
for _ in $(seq 120); do
    ip netns exec "$FVS_NS_CLIENT" curl -s --max-time 5 "http://$FVS_VIP/" || echo "no answer"
done | sort | uniq -c | awk '{printf "  %-6s answered %3d times\n", $2, $1}'
echo "   (weights 3:2:1 under wrr: about 60, 40 and 20)"

echo "== what a real server sees"
ip netns exec "$FVS_NS_CLIENT" curl -s --max-time 5 "http://$FVS_VIP/ip"

echo "== ferrovsadm -Ln"
target/release/ferrovsadm -Ln
echo "== ferrovsadm -Ln --stats"
target/release/ferrovsadm -Ln --stats
sleep 2
echo "== ferrovsadm -Ln --rate"
target/release/ferrovsadm -Ln --rate
echo "== ferrovsadm -Lnc (first lines)"
target/release/ferrovsadm -Lnc | head -6
echo "== done; the lab and ferrovs are torn down on exit (log: /run/ferrovs-demo/ferrovs.log)"
