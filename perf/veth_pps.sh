#!/usr/bin/env bash
# Packet rate through one ferrovs worker on veth, beside two ceilings
# measured in the same run on the same veths. A benchmark, not a test: it
# prints the figures. Run as root.
#
#   perf/veth_pps.sh [--seconds 5] [--flows "1000 1000000"] [--json FILE]
#                    [--targets "kernel-fwd xdp-bounce ferrovs-afxdp ferrovs-afpacket"]
#                    [--gen-io afxdp|afpacket] [--no-threaded-napi]
#                    [--fast-path on|off]
#                    [--no-search] [--no-build]   (use target/release/* as they are)
#
#   gen ns  gen0 ==veth== fvdNNNNN  director ns  dsink ==veth== sink0  sink ns
#   198.18.10.2/24    198.18.10.1/24      198.18.11.1/24    198.18.11.2/24
#                                                    VIP 198.18.12.100 on lo
#
# (fvdNNNNN, "dgen" below, is the director's generator-side veth.) One queue
# per veth. The generator, ferrovs-pktgen (perf/src/bin/), sends 60-byte
# frames (64 on a wire) of UDP datagrams from --flows client tuples
# (198.19.0.0/16: source address and port) to port 9, to dgen's MAC,
# through the dataplane's AF_XDP port on gen0 (copy mode on veth; --gen-io
# afpacket: its AF_PACKET port, sendmmsg, which sends less on this VM).
# Every point runs --seconds; before a kernel-fwd or ferrovs point, one
# pass over all flows at 150 kpps (warms ferrovs's connection table,
# resolves the sink's neighbour).
#
#   kernel-fwd        the director's kernel forwards (ip_forward=1) to the
#                     sink's own address; counted at sink0
#   xdp-bounce        perf/bpf/xdp_bounce.c on dgen swaps the MACs and
#                     returns XDP_TX; counted where the frames come back,
#                     gen0 (the I/O ceiling of this veth pair); the
#                     generator takes the returning frames on its AF_XDP
#                     socket and frees them (--absorb)
#   ferrovs-afxdp     `ferrovs run`, workers 1, DR to the sink, VIP:9 UDP;
#   ferrovs-afpacket  counted at sink0; ferrovs's drop counters are printed
#
# --fast-path (default on) sets ferrovs's `xdp_fast_path` for afxdp: the
# confirmed DR flows are forwarded by its XDP program, redirected from
# dgen to dsink (sink0 runs an XDP program, so a veth delivers them);
# `off` measures the worker alone. ferrovs's warm-up makes two passes over
# the flows, so that every UDP flow is confirmed (and offloaded) before
# the measurement, as a flow that lasts would be.
#
# After each point, unless --no-search: the zero-loss rate, the highest
# offered rate that arrives with at most 0.5 % loss (bisection, seven 1 s
# probes below the point's generator rate; RFC 2544's throughput). At full
# offered load a director that shares its CPU with the kernel's receive
# work can collapse (the kernel's receive takes the CPU its worker needs);
# the zero-loss rate is what it forwards cleanly.
#
# "delivered" is the rx_packets delta of the counting veth over the run
# divided by the generator's sending time; "generator" is what it put on
# its TX ring per second; loss = 1 - delivered/sent. The sink drops IPv4
# frames in XDP (perf/bpf/xdp_sink.c) after the veth counted them, so its
# own stack costs no CPU; ARP passes.
#
# CPUs (2 or more): the director's work on CPU 0, the generator alone on
# CPU 1 (taskset). ferrovs runs on CPU 0 (taskset on the whole process:
# with one core left to it ferrovs pins nothing itself). RPS hands dgen's
# received frames to CPU 0 (the kernel's forwarding, ferrovs's AF_PACKET
# receive). A veth runs the XDP program of frames its peer sends in NAPI on
# the sending CPU, inside the generator's sendto: so once an XDP program
# (the bounce, ferrovs's steering) has given dgen a NAPI, it is made a
# kernel thread (/sys/class/net/DEV/threaded) pinned to CPU 0. The frames
# dgen transmits are received (sink0, or gen0 for the bounce) on CPU 0 too.
# --no-threaded-napi leaves dgen's NAPI where the veth puts it, on CPU 1:
# then the generator's CPU does the director's XDP work as well, and the
# bounce measures that CPU, not a ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=5
FLOWS="1000 1000000"
TARGETS="kernel-fwd xdp-bounce ferrovs-afxdp ferrovs-afpacket"
JSON=""
BUILD=1
GEN_IO=afxdp
THREADED_NAPI=1
SEARCH=1
FAST_PATH=on
WARM_RATE=150000

usage() { sed -n '2,67p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
die() { echo "veth_pps: error: $*" >&2; exit 1; }
say() { echo "veth_pps: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECS=${2:-}; shift 2 ;;
    --flows) FLOWS=${2:-}; shift 2 ;;
    --targets) TARGETS=${2:-}; shift 2 ;;
    --json) JSON=${2:-}; shift 2 ;;
    --gen-io) GEN_IO=${2:-}; shift 2 ;;
    --threaded-napi) THREADED_NAPI=1; shift ;;
    --no-threaded-napi) THREADED_NAPI=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-search) SEARCH=0; shift ;;
    --fast-path) FAST_PATH=${2:-}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
if ! [[ $SECS =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ] || [ "$SECS" -gt 600 ]; then die "--seconds 1..600"; fi
for f in $FLOWS; do
    if ! [[ $f =~ ^[0-9]+$ ]] || [ "$f" -lt 1 ] || [ "$f" -gt 10000000 ]; then die "bad --flows value '$f'"; fi
done
for t in $TARGETS; do
    case $t in kernel-fwd | xdp-bounce | ferrovs-afxdp | ferrovs-afpacket) ;; *) die "unknown target '$t'" ;; esac
done
case $GEN_IO in afxdp | afpacket) ;; *) die "--gen-io afxdp|afpacket" ;; esac
case $FAST_PATH in on | off) ;; *) die "--fast-path on|off" ;; esac
if [ -z "$FLOWS" ] || [ -z "$TARGETS" ]; then die "empty --flows or --targets"; fi
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"
if [ -n "$JSON" ]; then
    touch "$JSON" 2>/dev/null || die "cannot write $JSON"
    JSON=$(cd "$(dirname "$JSON")" && pwd)/$(basename "$JSON")
fi
for c in ip clang jq taskset; do command -v "$c" >/dev/null 2>&1 || die "$c is missing"; done

BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [ $BUILD = 1 ]; then
    say "building (cargo build --release -p ferrovs-controlplane -p ferrovs-perf)"
    cargo build --release -q -p ferrovs-controlplane -p ferrovs-perf >&2 ||
        die "cargo build failed (--no-build runs the binaries there are)"
fi
for b in ferrovs ferrovsadm ferrovs-pktgen; do
    [ -x "$BIN/$b" ] || die "no $BIN/$b: cargo build --release -p ferrovs-controlplane -p ferrovs-perf"
done

NPROC=$(nproc)
if [ "$NPROC" -ge 2 ]; then
    GEN_CPU=(taskset -c 1)
    FVS_CPU=(taskset -c 0)
    CPUS="generator on CPU 1, ferrovs (whole process) and dgen's RPS on CPU 0"
    [ $THREADED_NAPI = 1 ] && CPUS="$CPUS, dgen's NAPI thread on CPU 0"
else
    GEN_CPU=()
    FVS_CPU=()
    CPUS="one CPU: nothing pinned"
fi

# ------------------------------------------------------------------ state, cleanup

WORK=$(mktemp -d /tmp/ferrovs-veth-pps.XXXXXX)
SFX=$$-$RANDOM
NS_GEN=fvpps-gen-$SFX
NS_DIR=fvpps-dir-$SFX
NS_SINK=fvpps-sink-$SFX
# The director's generator-side veth: a name unique to the run, since its
# NAPI thread is found by name (pin_napi).
DGEN=fvd$(printf %05x $((RANDOM * 32 + RANDOM % 32)))
NSS=()
PIDS=()
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# shellcheck source=perf/procs.sh
. "$ROOT/perf/procs.sh"

cleanup() {
    local rc=$? p n
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ------------------------------------------------------------------ XDP programs

for p in xdp_bounce xdp_sink; do
    clang -O2 -g -target bpf -c "perf/bpf/$p.c" -o "$WORK/$p.o" \
        -idirafter /usr/include/x86_64-linux-gnu -idirafter "/usr/include/$(uname -m)-linux-gnu" ||
        die "clang could not build perf/bpf/$p.c (apt-get install clang libbpf-dev)"
done

# ------------------------------------------------------------------ topology

VIP=198.18.12.100
GEN_IP=198.18.10.2
DIR_GEN_IP=198.18.10.1
DIR_SINK_IP=198.18.11.1
SINK_IP=198.18.11.2

for n in "$NS_GEN" "$NS_DIR" "$NS_SINK"; do
    ip netns add "$n"
    NSS+=("$n")
    in_ns "$n" ip link set lo up
done
# One queue each way on every veth: one ferrovs worker owns it.
ip link add gen0 netns "$NS_GEN" numtxqueues 1 numrxqueues 1 type veth \
    peer "$DGEN" netns "$NS_DIR" numtxqueues 1 numrxqueues 1
ip link add dsink netns "$NS_DIR" numtxqueues 1 numrxqueues 1 type veth \
    peer sink0 netns "$NS_SINK" numtxqueues 1 numrxqueues 1
in_ns "$NS_GEN" ip addr add "$GEN_IP/24" dev gen0
in_ns "$NS_GEN" ip link set gen0 up
in_ns "$NS_DIR" ip addr add "$DIR_GEN_IP/24" dev "$DGEN"
in_ns "$NS_DIR" ip addr add "$DIR_SINK_IP/24" dev dsink
in_ns "$NS_DIR" ip link set "$DGEN" up
in_ns "$NS_DIR" ip link set dsink up
# The clients' network is behind the generator (rp_filter off as well).
in_ns "$NS_DIR" ip route add 198.19.0.0/16 via "$GEN_IP"
for k in all.rp_filter default.rp_filter "$DGEN.rp_filter" dsink.rp_filter; do
    in_ns "$NS_DIR" sysctl -qw "net.ipv4.conf.$k=0"
done
in_ns "$NS_DIR" sysctl -qw net.ipv4.ip_forward=0
# A DR real server: the VIP on lo, no ARP for it.
in_ns "$NS_SINK" ip addr add "$SINK_IP/24" dev sink0
in_ns "$NS_SINK" ip addr add "$VIP/32" dev lo
for k in all.arp_ignore=1 all.arp_announce=2 sink0.arp_ignore=1 sink0.arp_announce=2; do
    in_ns "$NS_SINK" sysctl -qw "net.ipv4.conf.$k"
done
in_ns "$NS_SINK" ip link set sink0 up
in_ns "$NS_SINK" ip link set dev sink0 xdpdrv obj "$WORK/xdp_sink.o" sec xdp
# The director's receive softirq (kernel forwarding, AF_PACKET copies) on
# CPU 0, the generator's CPU being 1 (see the header).
if [ "$NPROC" -ge 2 ]; then
    echo 1 | in_ns "$NS_DIR" tee "/sys/class/net/$DGEN/queues/rx-0/rps_cpus" >/dev/null
fi
if [ "$GEN_IO" = afpacket ]; then
    in_ns "$NS_GEN" ip link set dev gen0 xdpdrv obj "$WORK/xdp_sink.o" sec xdp
fi
DGEN_MAC=$(in_ns "$NS_DIR" cat "/sys/class/net/$DGEN/address")

# ------------------------------------------------------------------ measuring

# pin_napi: dgen's NAPI, where a veth runs the XDP program (ferrovs's
# steering, the bounce) on the frames its peer sends, runs on the sending
# CPU, inside the generator's sendto, unless it is threaded. Once an XDP
# program has given dgen a NAPI: make it threaded and pin its kernel thread
# (napi/<dgen>-<id>) to CPU 0, the director's.
pin_napi() {
    local pid n=0
    [ "$NPROC" -ge 2 ] && [ $THREADED_NAPI = 1 ] || return 0
    echo 1 | in_ns "$NS_DIR" tee "/sys/class/net/$DGEN/threaded" >/dev/null 2>&1 || true
    for pid in $(pgrep "^napi/$DGEN-" || true); do
        taskset -p -c 0 "$pid" >/dev/null && n=$((n + 1))
    done
    [ $n -gt 0 ] || say "  warning: no NAPI thread for $DGEN found to pin"
}
# Frames the kernel's per-CPU backlogs dropped (RPS, netif_rx), all CPUs.
backlog_drops() {
    local s=0 _p d _rest
    while read -r _p d _rest; do s=$((s + 16#$d)); done </proc/net/softnet_stat
    echo "$s"
}
rx_packets() { in_ns "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }

# gen FLOWS DST_IP ARGS... : runs the generator in the gen namespace (bounded
# by timeout), prints its "sent=... seconds=..." line.
gen() {
    local flows=$1 dst=$2; shift 2
    in_ns "$NS_GEN" timeout -s KILL $((SECS + 60)) "${GEN_CPU[@]}" "$BIN/ferrovs-pktgen" \
        --io "$GEN_IO" --dev gen0 --dst-mac "$DGEN_MAC" --dst "$dst" --flows "$flows" "$@" 2>"$WORK/gen.err" |
        tail -n 1
}
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# warm FLOWS DST_IP COUNT_NS COUNT_IF: one pass over all flows, rate-limited.
warm() {
    local before after out
    before=$(rx_packets "$3" "$4")
    out=$(gen "$1" "$2" --once --rate "$WARM_RATE") || true
    sleep 0.3
    after=$(rx_packets "$3" "$4")
    say "  warm-up: sent $(field sent "$out") of $1 flows, $((after - before)) arrived"
}

# measure TARGET FLOWS DST_IP COUNT_NS COUNT_IF [GENERATOR ARGS...]
measure() {
    local target=$1 flows=$2 dst=$3 cns=$4 cif=$5 before after out sent secs delivered
    shift 5
    local bl0 bl1
    bl0=$(backlog_drops)
    before=$(rx_packets "$cns" "$cif")
    out=$(gen "$flows" "$dst" --seconds "$SECS" "$@") || true
    sleep 0.3 # what is still in flight
    after=$(rx_packets "$cns" "$cif")
    bl1=$(backlog_drops)
    sent=$(field sent "$out")
    secs=$(field seconds "$out")
    if [ -z "$sent" ] || [ -z "$secs" ]; then
        skip "$target" "$flows" "generator failed: $(tail -n 1 "$WORK/gen.err")"
        return
    fi
    delivered=$((after - before))
    say "  $target $flows flows: sent $sent, delivered $delivered in ${secs}s, backlog drops $((bl1 - bl0)) ($out)"
    local zl=""
    [ $SEARCH = 1 ] && zl=$(zero_loss "$flows" "$dst" "$cns" "$cif" "$(awk -v s="$sent" -v t="$secs" 'BEGIN { printf "%d", s / t }')" "$@")
    printf '%s\t%s\t%s\t%s\t%s\t\t%s\n' "$target" "$flows" "$sent" "$delivered" "$secs" "$zl" >>"$RESULTS"
}

# zero_loss FLOWS DST_IP COUNT_NS COUNT_IF MAX_PPS [GENERATOR ARGS...]: the
# highest offered rate (packets/s) that arrives with at most 0.5 % loss,
# by bisection between 0 and MAX_PPS in 1 s probes (RFC 2544's
# throughput, with a tolerance for the counters' few stray frames).
zero_loss() {
    local flows=$1 dst=$2 cns=$3 cif=$4 hi=$5 lo=0 mid best=0 before after out sent i
    shift 5
    for i in 1 2 3 4 5 6 7; do
        mid=$(((lo + hi) / 2))
        [ "$mid" -ge 1000 ] || break
        before=$(rx_packets "$cns" "$cif")
        out=$(gen "$flows" "$dst" --seconds 1 --rate "$mid" "$@") || true
        sleep 0.2
        after=$(rx_packets "$cns" "$cif")
        sent=$(field sent "$out")
        [ -n "$sent" ] || break
        if [ $((after - before)) -ge $((sent - sent / 200)) ]; then
            lo=$mid best=$mid
        else
            hi=$mid
        fi
    done
    say "  zero-loss (<= 0.5 %): $best packets/s"
    echo "$best"
}
skip() { # skip TARGET FLOWS WHY
    printf '%s\t%s\t\t\t\t%s\t\n' "$1" "$2" "$3" >>"$RESULTS"
    say "  $1 $2 flows: skipped: $3"
}

bench_kernel() {
    local f
    in_ns "$NS_DIR" sysctl -qw net.ipv4.ip_forward=1
    for f in $FLOWS; do
        say "kernel-fwd, $f flows"
        warm "$f" "$SINK_IP" "$NS_SINK" sink0
        measure kernel-fwd "$f" "$SINK_IP" "$NS_SINK" sink0
    done
    in_ns "$NS_DIR" sysctl -qw net.ipv4.ip_forward=0
}

bench_bounce() {
    local f absorb=()
    [ "$GEN_IO" = afxdp ] && absorb=(--absorb)
    # XDP_TX on a veth puts the frame on the peer's (gen0's) ring, which
    # only a peer in NAPI mode has: a native XDP program on gen0, or GRO on.
    # The generator's AF_XDP port attaches ferrovs's steering program to
    # gen0 (in driver mode) while it runs, which passes the bounced frames
    # to gen0's kernel after the veth counted them; so nothing more is
    # needed here. (Without it the bounced frames are dropped, counted as
    # dgen's xdp_tx errors.)
    in_ns "$NS_DIR" ip link set dev "$DGEN" xdpdrv obj "$WORK/xdp_bounce.o" sec xdp
    pin_napi
    for f in $FLOWS; do
        say "xdp-bounce, $f flows"
        measure xdp-bounce "$f" "$VIP" "$NS_GEN" gen0 "${absorb[@]}"
    done
    in_ns "$NS_DIR" ip link set dev "$DGEN" xdpdrv off
}

bench_ferrovs() { # bench_ferrovs BACKEND
    local backend=$1 target=ferrovs-$1 conf=$WORK/ferrovs-$1.conf log=$WORK/ferrovs-$1.log
    local pid ready=0 f why
    cat >"$conf" <<EOF
ferrovs {
    backend $backend
    interface $DGEN
    interface dsink
    workers 1
    conn_table_size 2097152
    control_socket $WORK/ctl.sock
    xdp_fast_path $FAST_PATH
}
virtual_server $VIP 9 {
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server $SINK_IP 9 { weight 1 }
}
EOF
    rm -f "$WORK/ctl.sock"
    ip netns exec "$NS_DIR" env FERROVS_CTL="$WORK/ctl.sock" "${FVS_CPU[@]}" \
        "$BIN/ferrovs" run -f "$conf" </dev/null >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        if [ -S "$WORK/ctl.sock" ] && FERROVS_CTL=$WORK/ctl.sock "$BIN/ferrovsadm" -Ln >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ $ready = 1 ]; then
        [ "$backend" = afxdp ] && pin_napi
        for f in $FLOWS; do
            say "$target, $f flows"
            warm "$f" "$VIP" "$NS_SINK" sink0
            warm "$f" "$VIP" "$NS_SINK" sink0
            say "  connections after the warm-up: $(FERROVS_CTL=$WORK/ctl.sock "$BIN/ferrovsadm" -Ln --stats 2>/dev/null |
                awk '$1 == "UDP" { print $3; exit }')"
            measure "$target" "$f" "$VIP" "$NS_SINK" sink0
        done
        say "$target: ferrovsadm -Ln --stats after the runs:"
        FERROVS_CTL=$WORK/ctl.sock "$BIN/ferrovsadm" -Ln --stats >&2 || true
        if command -v curl >/dev/null 2>&1; then
            say "$target: where frames were lost (non-zero drop counters in /metrics):"
            in_ns "$NS_DIR" curl -s --max-time 3 http://127.0.0.1:9180/metrics |
                grep -E '^ferrovs_(xdp|afpacket|worker)[a-z_]*(drop|full|empty|no_socket|error|gso)[a-z_]*(\{[^}]*\})? [1-9]' >&2 || true
            say "$target: the XDP fast path (frames forwarded by the program, flows offloaded):"
            in_ns "$NS_DIR" curl -s --max-time 3 http://127.0.0.1:9180/metrics |
                grep -E '^ferrovs_(xdp_prog_fast_path|xdp_prog_steered|worker_fast_path_[a-z]+)[a-z_]*(\{[^}]*\})? ' >&2 || true
        fi
    else
        why=$(grep -i -E 'error|fail|cannot|unsupported' "$log" | head -n 1 || true)
        [ -n "$why" ] || why="ferrovs did not become ready: $(tail -n 1 "$log")"
        for f in $FLOWS; do skip "$target" "$f" "${why//$WORK\//}"; done
    fi
    stop_pid "$pid"
    forget_pid "$pid"
    if grep -q -i -E 'panic|error' "$log"; then
        say "$target: ferrovs log has errors:"
        grep -i -E 'panic|error' "$log" | tail -n 5 >&2
    fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# How busy the machine is before the run (other programs skew the figures).
cpu_busy_pct() {
    local a b
    read -r -a a < <(grep '^cpu ' /proc/stat)
    sleep 1
    read -r -a b < <(grep '^cpu ' /proc/stat)
    local tot=0 idle i
    for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $((tot > 0 ? 100 * (tot - idle) / tot : 0))
}
BUSY_BEFORE=$(cpu_busy_pct)
[ "$BUSY_BEFORE" -lt 10 ] || say "warning: the machine is ${BUSY_BEFORE}% busy before the run: the figures will be low"
say "$CPUS; $SECS s per point; flows: $FLOWS; before: load average $LOAD_BEFORE, CPU ${BUSY_BEFORE}% busy"
for t in $TARGETS; do
    case $t in
    kernel-fwd) bench_kernel ;;
    xdp-bounce) bench_bounce ;;
    ferrovs-*) bench_ferrovs "${t#ferrovs-}" ;;
    esac
done

# ------------------------------------------------------------------ report

# One JSON object per point, with Mpps, loss and the ratio to the bounce.
ROWS=$(jq -R -s '
    [split("\n")[] | select(length > 0) | split("\t")
     | {target: .[0], flows: (.[1] | tonumber),
        sent: (if .[2] == "" then null else (.[2] | tonumber) end),
        delivered: (if .[3] == "" then null else (.[3] | tonumber) end),
        seconds: (if .[4] == "" then null else (.[4] | tonumber) end),
        skipped: (if .[5] == "" then null else .[5] end),
        zero_loss_mpps: (if (.[6] // "") == "" then null else (.[6] | tonumber / 1e6) end)}
     | . + (if .sent == null then {mpps: null, gen_mpps: null, loss_pct: null}
            else {mpps: (.delivered / .seconds / 1e6),
                  gen_mpps: (.sent / .seconds / 1e6),
                  loss_pct: (if .sent > 0 then ([0, (1 - .delivered / .sent) * 100] | max) else null end)}
            end)]
    | . as $all
    | map(. as $r
          | ($all | map(select(.target == "xdp-bounce" and .flows == $r.flows and .mpps != null))
              | first | .mpps // null) as $b
          | ($all | map(select(.target == "xdp-bounce" and .flows == $r.flows and .zero_loss_mpps != null))
              | first | .zero_loss_mpps // null) as $bz
          | . + {ratio_to_xdp_bounce: (if $b == null or $b == 0 or $r.mpps == null then null else ($r.mpps / $b) end),
                 zero_loss_ratio_to_xdp_bounce: (if $bz == null or $bz == 0 or $r.zero_loss_mpps == null then null
                                                 else ($r.zero_loss_mpps / $bz) end)})
' "$RESULTS")

echo
echo "| target | flows | Mpps delivered | generator Mpps | loss % | ratio to xdp-bounce | zero-loss Mpps | zero-loss ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
jq -r '.[] | [.target, (.flows | tostring),
    (if .mpps == null then "skipped: \(.skipped)" else (.mpps * 1000 | round / 1000 | tostring) end),
    (if .gen_mpps == null then "" else (.gen_mpps * 1000 | round / 1000 | tostring) end),
    (if .loss_pct == null then "" else (.loss_pct * 10 | round / 10 | tostring) end),
    (if .ratio_to_xdp_bounce == null then "" else (.ratio_to_xdp_bounce * 100 | round / 100 | tostring) end),
    (if .zero_loss_mpps == null then "" else
        (if .loss_pct != null and .loss_pct <= 0.5 then "≥" else "" end) + (.zero_loss_mpps * 1000 | round / 1000 | tostring) end),
    (if .zero_loss_ratio_to_xdp_bounce == null then "" else (.zero_loss_ratio_to_xdp_bounce * 100 | round / 100 | tostring) end)]
    | "| " + join(" | ") + " |"' <<<"$ROWS"
echo
echo "≥: no loss at the generator's full rate, so the generator, not the target, set the figure."
echo "$NPROC CPUs, kernel $(uname -r), generator --io $GEN_IO, $CPUS, 60-byte frames, ${SECS} s per point, CPU ${BUSY_BEFORE}% busy before"

if [ -n "$JSON" ]; then
    jq -n --argjson rows "$ROWS" --arg kernel "$(uname -r)" --argjson nproc "$NPROC" \
        --argjson seconds "$SECS" --arg cpus "$CPUS" --arg genio "$GEN_IO" \
        --arg tn "$THREADED_NAPI" --arg load "$LOAD_BEFORE" --argjson busy "$BUSY_BEFORE" \
        '{nproc: $nproc, kernel: $kernel, seconds: $seconds, frame_bytes: 60, cpus: $cpus,
          generator: ("ferrovs-pktgen --io " + $genio + " on gen0"), threaded_napi: ($tn == "1"),
          loadavg_before: $load, cpu_busy_pct_before: $busy, results: $rows}' >"$JSON"
    say "JSON in $JSON"
fi
