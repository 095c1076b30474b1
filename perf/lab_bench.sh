#!/usr/bin/env bash
# Requests/s and latency through the real appliance beside the alternatives,
# in the namespace lab (scripts/lab.sh). A benchmark, not a test: it prints
# the figures. Run as root.
#
#   perf/lab_bench.sh [--seconds 5] [--conns "1 64 256"] [--modes "dr fullnat"]
#                     [--targets "direct haproxy nginx-stream ferrovs"]
#                     [--backends "afpacket"] [--json FILE] [--offloads off|on]
#                     [--no-build]   (use target/release/ferrovs as it is)
#   FAST_PATH=on perf/lab_bench.sh ...   afxdp with the XDP fast path on
#   FERROVS=/path/ferrovs FERROVSADM=/path/ferrovsadm perf/lab_bench.sh ...
#                     runs those binaries (and builds nothing)
#
# Real servers: Debian's nginx in each real server's namespace on port 80
# (`return 200 "ok\n"`, keep-alive, no access log, one worker); the lab's
# Python server is moved out of the way to port 8081. wrk runs in the
# client's namespace against each target, at each connection count, with
# keep-alive and with "Connection: close":
#
#   direct        one real server, straight through the lab's router
#   haproxy       HAProxy 2.x `mode tcp`, nbthread 1, roundrobin over the
#                 three real servers, in the director's namespace
#   nginx-stream  nginx `stream {}` proxy, one worker, same shape
#   ferrovs       `ferrovs run`, workers 1, per --modes and --backends:
#                 afpacket, afxdp, dpdk-af_packet, dpdk-af_xdp. A backend
#                 this binary or its configuration does not support is
#                 reported as skipped with ferrovs's own error.
#
# The proxies listen on 198.18.0.101:80, an address this script gives the
# director's kernel on the client segment for their runs. direct and the
# proxies do not depend on the forwarding mode: they run once, in the first
# mode's lab. Only one of the director-side programs runs at a time.
#
# Director CPU % is the CPU time (user + system, all threads, all processes
# of the program) the director-side program used during the wrk run, divided
# by the run's wall time: 100 % is one core.
#
# Installs nginx, libnginx-mod-stream, haproxy and wrk with apt-get when
# missing, and keeps their packaged services off the host.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lab-dpdk.sh
. "$ROOT/scripts/lab-dpdk.sh"

SECS=5
CONNS="1 64 256"
MODES="dr fullnat"
TARGETS="direct haproxy nginx-stream ferrovs"
BACKENDS="afpacket"
JSON=""
OFFLOADS=off
BUILD=1

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
die() { echo "lab_bench: error: $*" >&2; exit 1; }
say() { echo "lab_bench: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECS=${2:-}; shift 2 ;;
    --conns) CONNS=${2:-}; shift 2 ;;
    --modes) MODES=${2:-}; shift 2 ;;
    --targets) TARGETS=${2:-}; shift 2 ;;
    --backends) BACKENDS=${2:-}; shift 2 ;;
    --json) JSON=${2:-}; shift 2 ;;
    --offloads) OFFLOADS=${2:-}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
if ! [[ $SECS =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ] || [ "$SECS" -gt 600 ]; then die "--seconds 1..600"; fi
for c in $CONNS; do
    if ! [[ $c =~ ^[0-9]+$ ]] || [ "$c" -lt 1 ] || [ "$c" -gt 10000 ]; then die "bad --conns value '$c'"; fi
done
for m in $MODES; do case $m in dr | fullnat) ;; *) die "--modes: dr and/or fullnat, not '$m'" ;; esac; done
for t in $TARGETS; do case $t in direct | haproxy | nginx-stream | ferrovs) ;; *) die "unknown target '$t'" ;; esac; done
for b in $BACKENDS; do case $b in afpacket | afxdp | dpdk-af_packet | dpdk-af_xdp) ;; *) die "unknown backend '$b' (afpacket afxdp dpdk-af_packet dpdk-af_xdp)" ;; esac; done
case $OFFLOADS in on | off) ;; *) die "--offloads on|off" ;; esac
if [ -z "$CONNS" ] || [ -z "$MODES" ] || [ -z "$TARGETS" ]; then die "empty --conns, --modes or --targets"; fi
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"
if [ -n "$JSON" ]; then
    touch "$JSON" 2>/dev/null || die "cannot write $JSON"
    JSON=$(cd "$(dirname "$JSON")" && pwd)/$(basename "$JSON")
fi
has_target() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------------ packages

NGINX_STREAM_SO=/usr/lib/nginx/modules/ngx_stream_module.so
install_packages() {
    local missing=() created_policy=0
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    if ! /usr/sbin/nginx -V 2>&1 | grep -q -- '--with-stream ' && [ ! -e "$NGINX_STREAM_SO" ]; then
        missing+=(libnginx-mod-stream)
    fi
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get"
    say "installing ${missing[*]}"
    # Keep the packages' services from starting on the host while installing.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || {
        [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
        die "apt-get install ${missing[*]} failed"
    }
    [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        systemctl disable --now nginx haproxy >/dev/null 2>&1 || true
    fi
}
install_packages
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
# The stream module: built in, or Debian's dynamic module.
NGINX_LOAD_STREAM=""
if ! "$NGINX" -V 2>&1 | grep -q -- '--with-stream '; then
    [ -e "$NGINX_STREAM_SO" ] || die "nginx has no stream module ($NGINX_STREAM_SO missing)"
    NGINX_LOAD_STREAM="load_module $NGINX_STREAM_SO;"
fi
# Packaged services must not run on the host (we run our own instances in
# the lab's namespaces only).
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    for s in nginx haproxy; do
        if systemctl is-enabled "$s" >/dev/null 2>&1 || systemctl is-active "$s" >/dev/null 2>&1; then
            systemctl disable --now "$s" >/dev/null 2>&1 || true
        fi
    done
fi

# ------------------------------------------------------------------ ferrovs

FERROVS_GIVEN=0
if [ -n "${FERROVS:-}" ]; then BUILD=0 FERROVS_GIVEN=1; fi
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$(dirname "$FERROVS")/ferrovsadm}
if has_target ferrovs && [ $BUILD = 1 ]; then
    features=()
    case " $BACKENDS " in *" dpdk-"*)
        if pkg-config --exists libdpdk 2>/dev/null; then features=(--features dpdk); fi ;;
    esac
    say "building ferrovs (cargo build --release -p ferrovs-controlplane ${features[*]})"
    cargo build --release -q -p ferrovs-controlplane "${features[@]}" >&2 ||
        die "cargo build failed (--no-build runs the binary there is)"
fi
if has_target ferrovs && { ! [ -x "$FERROVS" ] || ! [ -x "$FERROVSADM" ]; }; then
    die "no $FERROVS or $FERROVSADM: cargo build --release -p ferrovs-controlplane"
fi

# ------------------------------------------------------------------ state, cleanup

WORK=$(mktemp -d /tmp/ferrovs-lab-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody
RESULTS=$WORK/results.tsv
: >"$RESULTS"
LAB=""
PIDS=()         # every long-running process this script started
PROXY_IP=198.18.0.101
PROXY_ADDR_ON=0
DPDK_PREFIX=fvs-lb$$

# shellcheck source=perf/procs.sh
. "$ROOT/perf/procs.sh"

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    PIDS=()
    if [ -n "$LAB" ]; then "$ROOT/scripts/lab.sh" down "$LAB" >/dev/null 2>&1 || true; fi
    LAB=""
    rm -rf /var/run/dpdk/"$DPDK_PREFIX"-* 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# bg NS LOG cmd... : start cmd in NS in the background, record its pid in BG.
# `ip netns exec` execs the command in place, so the pid is the program's.
bg() {
    local ns=$1 logf=$2; shift 2
    ip netns exec "$ns" "$@" </dev/null >"$logf" 2>&1 &
    BG=$!
    PIDS+=("$BG")
}

# ------------------------------------------------------------------ measuring

CLK_TCK=$(getconf CLK_TCK)

# Every process in the tree under PID (nginx's master and its worker).
tree_pids() {
    local pid=$1 c
    echo "$pid"
    for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do tree_pids "$c"; done
}
# CPU ticks (utime + stime, every thread) of the process tree under PID.
cpu_ticks() {
    local sum=0 p s rest
    for p in $(tree_pids "$1"); do
        s=$(cat /proc/"$p"/stat 2>/dev/null) || continue
        rest=${s##*) }                   # after "pid (comm) "
        # shellcheck disable=SC2086
        set -- $rest                     # $1 = state ... $12 utime, $13 stime
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

# run_point TARGET MODE CONNS KA URL CPU_PID
run_point() {
    local target=$1 mode=$2 conns=$3 ka=$4 url=$5 cpu_pid=$6
    local threads=2 hdr=() out t0 t1 c0 c1 cpu="-" wall
    [ "$conns" -eq 1 ] && threads=1
    [ "$ka" = close ] && hdr=(-H "Connection: close")
    [ "$cpu_pid" != "-" ] && c0=$(cpu_ticks "$cpu_pid")
    t0=$(date +%s.%N)
    out=$(timeout $((SECS + 30)) ip netns exec "$FVS_NS_CLIENT" \
        wrk -t"$threads" -c"$conns" -d"${SECS}s" --timeout 2s --latency "${hdr[@]}" "$url" 2>&1) || true
    t1=$(date +%s.%N)
    if [ "$cpu_pid" != "-" ] && ! kill -0 "$cpu_pid" 2>/dev/null; then
        say "$target $mode c=$conns $ka: the director's program exited during the run"
        printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\tfailed: exited during the run\n' \
            "$target" "$mode" "$conns" "$ka" >>"$RESULTS"
        return 1
    fi
    if [ "$cpu_pid" != "-" ]; then
        c1=$(cpu_ticks "$cpu_pid")
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')
    fi
    wall=$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", t1 - t0 }')
    echo "$out" >"$WORK/wrk-$target-$mode-$conns-$ka.txt"
    # Requests/sec, p50 and p99 in µs, errors (socket errors + non-2xx/3xx).
    local parsed
    parsed=$(echo "$out" | awk '
        function us(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n
            if (u == "ms") return n * 1000
            if (u == "s") return n * 1000000
            if (u == "m") return n * 60000000
            if (u == "h") return n * 3600000000
            return -1
        }
        /Latency Distribution/ { dist = 1; next }
        dist && $1 == "50%" { p50 = us($2) }
        dist && $1 == "99%" { p99 = us($2); dist = 0 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ {
            for (i = 3; i <= NF; i++) { v = $i; gsub(/,/, "", v); if (v ~ /^[0-9]+$/) err += v }
        }
        /Non-2xx or 3xx responses:/ { err += $NF }
        / requests in / { req = $1; d = $4; sub(/,$/, "", d); dur = us(d) / 1000000 }
        END {
            if (rps == "") { print "ERR"; exit }
            printf "%s\t%s\t%s\t%s\t%d\t%s\n", (dur > 0 ? dur : "-"), rps, (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99), err, req
        }')
    if [ "$parsed" = ERR ]; then
        local why
        why=$(echo "$out" | grep -v '^\s*$' | tail -n 2 | tr '\n\t' '  ')
        say "$target $mode c=$conns $ka: wrk gave no result: $why"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\tfailed: wrk: %s\n' \
            "$target" "$mode" "$conns" "$ka" "$wall" "$SECS" "$cpu" "$why" >>"$RESULTS"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$mode" "$conns" "$ka" "$wall" "$parsed" "$cpu" ok >>"$RESULTS"
    local rps=${parsed#*	}
    say "$(printf '%-26s %-7s c=%-4s %-9s %10s req/s, director CPU %s s' "$target" "$mode" "$conns" "$ka" "${rps%%	*}" "$cpu")"
}

skip_target() { # skip_target TARGET MODE REASON: one skipped row per point
    local c ka
    say "$1 $2: skipped: $3"
    for c in $CONNS; do
        for ka in keepalive close; do
            printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\tskipped: %s\n' "$1" "$2" "$c" "$ka" "$3" >>"$RESULTS"
        done
    done
}

run_points() { # run_points TARGET MODE URL CPU_PID
    local c ka
    for c in $CONNS; do
        for ka in keepalive close; do
            wait_http "$3" 10 || { skip_target "$1" "$2" "stopped answering $3"; return 0; }
            run_point "$1" "$2" "$c" "$ka" "$3" "$4" || return 0
        done
    done
}

# wait_http URL SECONDS [PID]: until curl from the client gets "ok".
wait_http() {
    local url=$1 secs=$2 pid=${3:-} i
    for i in $(seq $((secs * 10))); do
        [ "$(in_ns "$FVS_NS_CLIENT" curl -s --max-time 1 "$url" 2>/dev/null)" = ok ] && return 0
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ programs

start_rs_nginx() {
    local i ns dir
    for i in 1 2 3; do
        ns=FVS_NS_RS$i; ns=${!ns}
        dir=$WORK/rs$i; mkdir -p "$dir"
        cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off;
    default_type text/plain;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp;
    scgi_temp_path $dir/tmp;
    server {
        listen 80 backlog=4096;
        return 200 "ok\n";
    }
}
EOF
        bg "$ns" "$dir/nginx.out" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    done
    for i in 1 2 3; do
        local ip=FVS_RS${i}_IP
        wait_http "http://${!ip}/" 10 || die "nginx on rs$i does not answer: $(tail -n 3 "$WORK/rs$i/error.log" "$WORK/rs$i/nginx.out" 2>/dev/null)"
    done
}

proxy_addr() { # proxy_addr add|del
    if [ "$1" = add ]; then
        in_ns "$FVS_NS_DIRECTOR" ip addr add "$PROXY_IP/32" dev "$FVS_DIRECTOR_IF_CLIENT"
        PROXY_ADDR_ON=1
    elif [ $PROXY_ADDR_ON = 1 ]; then
        in_ns "$FVS_NS_DIRECTOR" ip addr del "$PROXY_IP/32" dev "$FVS_DIRECTOR_IF_CLIENT" 2>/dev/null || true
        PROXY_ADDR_ON=0
    fi
}

bench_haproxy() {
    local dir=$WORK/haproxy ip n=0 pid
    mkdir -p "$dir"
    {
        echo "global"
        echo "    nbthread 1"
        echo "    maxconn 8192"
        echo "    pidfile $dir/haproxy.pid"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 5s"
        echo "    timeout client 60s"
        echo "    timeout server 60s"
        echo "frontend fe"
        echo "    bind $PROXY_IP:80 backlog 4096"
        echo "    default_backend be"
        echo "backend be"
        echo "    balance roundrobin"
        for ip in $FVS_RS_IPS; do n=$((n + 1)); echo "    server rs$n $ip:80"; done
    } >"$dir/haproxy.cfg"
    "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/check.out" 2>&1 ||
        { skip_target haproxy - "bad config: $(tail -n 2 "$dir/check.out" | tr '\n' ' ')"; return 0; }
    bg "$FVS_NS_DIRECTOR" "$dir/haproxy.out" "$HAPROXY" -db -f "$dir/haproxy.cfg"
    pid=$BG
    if wait_http "http://$PROXY_IP/" 10 "$pid"; then
        run_points haproxy - "http://$PROXY_IP/" "$pid"
    else
        skip_target haproxy - "not answering: $(tail -n 2 "$dir/haproxy.out" | tr '\n' ' ')"
    fi
    stop_pid "$pid"; forget_pid "$pid"
}

bench_nginx_stream() {
    local dir=$WORK/nginx-stream ip pid
    mkdir -p "$dir"
    {
        [ -n "$NGINX_LOAD_STREAM" ] && echo "$NGINX_LOAD_STREAM"
        echo "worker_processes 1;"
        echo "daemon off;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log warn;"
        echo "worker_rlimit_nofile 65536;"
        echo "events { worker_connections 16384; }"
        echo "stream {"
        echo "    upstream rs {"
        for ip in $FVS_RS_IPS; do echo "        server $ip:80;"; done
        echo "    }"
        echo "    server {"
        echo "        listen $PROXY_IP:80 backlog=4096;"
        echo "        proxy_pass rs;"
        echo "    }"
        echo "}"
    } >"$dir/nginx.conf"
    bg "$FVS_NS_DIRECTOR" "$dir/nginx.out" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    pid=$BG
    if wait_http "http://$PROXY_IP/" 10 "$pid"; then
        run_points nginx-stream - "http://$PROXY_IP/" "$pid"
    else
        skip_target nginx-stream - "not answering: $(tail -n 2 "$dir/error.log" "$dir/nginx.out" 2>/dev/null | tr '\n' ' ')"
    fi
    stop_pid "$pid"; forget_pid "$pid"
}

# DPDK backends: the director's veths go to DPDK (scripts/lab-dpdk.sh).
# The lab gives directors two veth queue pairs; DPDK's net_af_xdp with one
# worker binds queue 0 only, so the switch's end sends on one queue while
# DPDK has the veth (a veth's receive queue is its peer's transmit queue).
dpdk_take_nics_bench() {
    local ifn
    dpdk_take_nics
    for ifn in $FVS_DIRECTOR_IFS; do
        in_ns "$FVS_NS_SWITCH" ethtool -L "p$ifn" tx 1 >/dev/null 2>&1 || true
    done
}
dpdk_give_back_bench() {
    local ifn
    for ifn in $FVS_DIRECTOR_IFS; do
        in_ns "$FVS_NS_SWITCH" ethtool -L "p$ifn" tx 2 >/dev/null 2>&1 || true
    done
    dpdk_give_back
}

write_ferrovs_conf() { # write_ferrovs_conf FILE BACKEND MODE
    local file=$1 backend=$2 mode=$3 kind ip
    case $mode in dr) kind=DR ;; fullnat) kind=FNAT ;; esac
    {
        echo "! perf/lab_bench.sh: $backend $mode"
        echo "ferrovs {"
        case $backend in
        afpacket | afxdp)
            echo "    backend $backend"
            echo "    interface $FVS_DIRECTOR_IF_CLIENT"
            echo "    interface $FVS_DIRECTOR_IF_SERVER"
            # FAST_PATH=on|off: the XDP fast path (auto leaves it off on
            # the lab's veths; see the README).
            [ "$backend" = afxdp ] && [ -n "${FAST_PATH:-}" ] && echo "    xdp_fast_path $FAST_PATH"
            ;;
        dpdk-af_packet | dpdk-af_xdp)
            echo "    backend dpdk"
            echo "    interface fvs0"
            echo "    interface fvs1"
            echo "    dpdk {"
            echo "        eal_args \"--no-huge -m 512 --no-pci --no-shconf --file-prefix=$DPDK_PREFIX-$mode\""
            if [ "$backend" = dpdk-af_packet ]; then
                echo "        eal_args \"--vdev=net_af_packet0,iface=$FVS_DIRECTOR_IF_CLIENT,qpairs=1\""
                echo "        eal_args \"--vdev=net_af_packet1,iface=$FVS_DIRECTOR_IF_SERVER,qpairs=1\""
                echo "        port fvs0 net_af_packet0"
                echo "        port fvs1 net_af_packet1"
            else
                echo "        eal_args \"--vdev=net_af_xdp0,iface=$FVS_DIRECTOR_IF_CLIENT,start_queue=0,queue_count=1\""
                echo "        eal_args \"--vdev=net_af_xdp1,iface=$FVS_DIRECTOR_IF_SERVER,start_queue=0,queue_count=1\""
                echo "        port fvs0 net_af_xdp0"
                echo "        port fvs1 net_af_xdp1"
            fi
            echo "    }"
            ;;
        esac
        echo "    workers 1"
        echo "    control_socket $WORK/ctl.sock"
        echo "}"
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
        for ip in $FVS_RS_IPS; do echo "    real_server $ip 80 { weight 1 }"; done
        echo "}"
    } >"$file"
}

# The lines of ferrovs's log that say why it stopped or failed.
ferrovs_error() {
    local log=$1 e
    e=$(sed -n -E 's/^[0-9T:.-]+Z +ERROR +[A-Za-z0-9_:]+: *//p' "$log" | head -n 1)
    [ -n "$e" ] || e=$(grep -i -E 'error|fail|unknown|cannot|unsupported|without' "$log" | head -n 1)
    [ -n "$e" ] || e=$(grep -v '^\s*$' "$log" | tail -n 1)
    [ -n "$e" ] || e="exited without a message"
    e=${e//$WORK\//}
    echo "$e"
}

bench_ferrovs() { # bench_ferrovs BACKEND MODE
    local backend=$1 mode=$2 target=ferrovs-$1-$2 conf=$WORK/ferrovs-$1-$2.conf
    local log=$WORK/ferrovs-$1-$2.log pid ready=0 dpdk=0 why i
    case $backend in dpdk-*) dpdk=1 ;; esac
    write_ferrovs_conf "$conf" "$backend" "$mode"
    rm -f "$WORK/ctl.sock"
    [ $dpdk = 1 ] && dpdk_take_nics_bench
    bg "$FVS_NS_DIRECTOR" "$log" env FERROVS_CTL="$WORK/ctl.sock" "$FERROVS" run -f "$conf"
    pid=$BG
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        if [ -S "$WORK/ctl.sock" ] && FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" -Ln >/dev/null 2>&1; then
            if [ $dpdk = 1 ] && ! in_ns "$FVS_NS_DIRECTOR" ip addr show dev fvs1 2>/dev/null | grep -q inet; then
                if in_ns "$FVS_NS_DIRECTOR" ip link show fvs1 >/dev/null 2>&1; then dpdk_addresses || true; fi
            fi
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ $ready = 1 ] && wait_http "http://$FVS_VIP/" 15 "$pid"; then
        run_points "$target" "$mode" "http://$FVS_VIP/" "$pid"
        say "$target: ferrovsadm -Ln --stats after the runs:"
        FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" -Ln --stats >&2 || true
    else
        if kill -0 "$pid" 2>/dev/null; then
            why="ferrovs runs but http://$FVS_VIP/ does not answer: $(grep -v '^\s*$' "$log" | tail -n 2 | tr '\n' ' ')"
        else
            wait "$pid" 2>/dev/null || true
            why=$(ferrovs_error "$log")
        fi
        skip_target "$target" "$mode" "$why"
    fi
    stop_pid "$pid"; forget_pid "$pid"
    if [ $ready = 1 ] && grep -q -i -E 'panic|error' "$log"; then
        say "$target: ferrovs log has errors:"; grep -i -E 'panic|error' "$log" | tail -n 5 >&2
    fi
    if [ $dpdk = 1 ]; then
        dpdk_give_back_bench
        rm -rf /var/run/dpdk/"$DPDK_PREFIX"-* 2>/dev/null || true
    fi
}

# ------------------------------------------------------------------ the runs

LAB_OPTS=()
"$ROOT/scripts/lab.sh" --help 2>&1 | grep -q -- '--offloads' && LAB_OPTS=(--offloads "$OFFLOADS")
first=1 OFFLOADS_SEEN="" TCP_SETTINGS=""
for mode in $MODES; do
    LAB=fvs-lb$$-$mode
    "$ROOT/scripts/lab.sh" down "$LAB" >/dev/null 2>&1 || true
    say "lab $LAB ($mode)"
    # The lab's Python server goes to 8081: nginx takes port 80 (DR needs
    # the VIP's port on the real servers).
    envs=$("$ROOT/scripts/lab.sh" up --mode "$mode" --name "$LAB" --rs-port 8081 --big-mib 1 "${LAB_OPTS[@]}") ||
        die "scripts/lab.sh up failed"
    eval "$envs"
    tso=$(in_ns "$FVS_NS_CLIENT" ethtool -k "$FVS_CLIENT_IF" 2>/dev/null | awk -F': ' '/^tcp-segmentation-offload/ {print $2}')
    OFFLOADS_SEEN="TSO ${tso:-unknown} on the lab's veths (asked: $OFFLOADS$([ ${#LAB_OPTS[@]} -gt 0 ] || echo ', lab.sh has no --offloads: its default'))"
    say "offloads: $OFFLOADS_SEEN"
    # With "Connection: close" the client often closes first (a proxy relays
    # the response before the server's FIN) and keeps each port in TIME_WAIT
    # for 60 s: after a few seconds at thousands of connections/s connect()
    # runs out of ports and the figures measure that. As load generators are
    # set up: reuse TIME_WAIT ports (timestamps keep it safe) and use the
    # whole port range, in the lab's client and director namespaces only.
    for ns in "$FVS_NS_CLIENT" "$FVS_NS_DIRECTOR"; do
        in_ns "$ns" sysctl -q -w net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"
    done
    TCP_SETTINGS="client and director: tcp_tw_reuse=1, ports 1024-65535"
    start_rs_nginx
    if [ $first = 1 ]; then
        if has_target direct; then
            run_points direct - "http://$FVS_RS1_IP/" -
        fi
        if has_target haproxy || has_target nginx-stream; then
            proxy_addr add
            has_target haproxy && bench_haproxy
            has_target nginx-stream && bench_nginx_stream
            proxy_addr del
        fi
    fi
    if has_target ferrovs; then
        for b in $BACKENDS; do
            case $b in dpdk-*) continue ;; esac    # DPDK last: it takes the veths
            bench_ferrovs "$b" "$mode"
        done
        for b in $BACKENDS; do
            case $b in dpdk-*) bench_ferrovs "$b" "$mode" ;; esac
        done
    fi
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    PIDS=()
    "$ROOT/scripts/lab.sh" down "$LAB" >/dev/null 2>&1 || true
    LAB=""
    first=0
done

# ------------------------------------------------------------------ report

ferrovs_ver=-
if has_target ferrovs; then
    if [ $FERROVS_GIVEN = 1 ]; then
        ferrovs_ver=$FERROVS
    else
        ferrovs_ver=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    fi
fi
python3 - "$RESULTS" "${JSON:-}" "$SECS" "$OFFLOADS_SEEN" "$ferrovs_ver" "$TCP_SETTINGS" <<'EOF'
import json, os, platform, sys
res, out, secs, offl, ver, tcp = sys.argv[1:7]
rows = []
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if len(f) < 13:
        continue
    target, mode, conns, ka, wall, dur, rps, p50, p99, err, req, cpu_s, status = f[:13]
    num = lambda v: None if v in ("-", "") else float(v)
    # CPU % over wrk's own duration (the wall time around it adds the
    # start-up of `ip netns exec wrk`, when nothing runs).
    secs_run = num(dur) or num(wall)
    cpu = num(cpu_s)
    rows.append(dict(nproc=os.cpu_count(), kernel=platform.release(), target=target, mode=mode,
                     conns=int(conns), keepalive=(ka == "keepalive"), seconds=secs_run,
                     requests_per_sec=num(rps), p50_us=num(p50), p99_us=num(p99),
                     errors=None if err == "-" else int(err), requests=None if req == "-" else int(req),
                     director_cpu_seconds=cpu,
                     director_cpu_pct=round(cpu / secs_run * 100, 1) if cpu is not None and secs_run else None,
                     status=status))
direct = {(r["conns"], r["keepalive"]): r["requests_per_sec"] for r in rows if r["target"] == "direct"}
for r in rows:
    d = direct.get((r["conns"], r["keepalive"]))
    r["ratio_to_direct"] = round(r["requests_per_sec"] / d, 3) if d and r["requests_per_sec"] is not None else None

def fus(v):
    if v is None: return "-"
    return f"{v/1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"
hdr = ["target", "mode", "conns", "connection", "req/s", "p50", "p99", "vs direct", "director CPU %", "errors"]
tab, skipped = [], {}
for r in rows:
    if r["status"].startswith("skipped"):
        skipped.setdefault((r["target"], r["mode"]), r["status"])
        continue
    tab.append([r["target"], r["mode"], str(r["conns"]), "keepalive" if r["keepalive"] else "close",
                "-" if r["requests_per_sec"] is None else f"{r['requests_per_sec']:,.0f}",
                fus(r["p50_us"]), fus(r["p99_us"]),
                "-" if r["ratio_to_direct"] is None else f"{r['ratio_to_direct']:.2f}",
                "-" if r["director_cpu_pct"] is None else f"{r['director_cpu_pct']:.0f}",
                "-" if r["errors"] is None else str(r["errors"]) if r["status"] == "ok" else r["status"]])
for (t, m), s in skipped.items():
    tab.append([t, m, "all", "-", s, "", "", "", "", ""])
ok_rows = [x for x in tab if not x[4].startswith("skipped")]
w = [max([len(h)] + [len(x[i]) for x in (tab if i < 4 else ok_rows)]) for i, h in enumerate(hdr)]
right = {2, 4, 5, 6, 7, 8, 9}
def line(c):
    if c[4].startswith("skipped"):
        return "| " + " | ".join(v.ljust(w[i]) for i, v in enumerate(c[:4])) + " | " + c[4] + " |" + " |" * 5
    return "| " + " | ".join(v.rjust(w[i]) if i in right else v.ljust(w[i]) for i, v in enumerate(c)) + " |"
uname = platform.uname()
print(f"# {os.cpu_count()} vCPUs, {uname.system} {uname.release}; {secs} s per point; {offl}; {tcp}; ferrovs: {ver}")
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for c in tab:
    print(line(c))
if out:
    doc = dict(machine=dict(nproc=os.cpu_count(), kernel=uname.release, machine=uname.machine),
               seconds_per_point=int(secs), offloads=offl, tcp_settings=tcp, ferrovs=ver, points=rows)
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"# JSON: {out}")
EOF
