#!/usr/bin/env bash
# ferrovs namespace lab: a client, one or two directors, three real servers
# and a router, in network namespaces joined by two Linux bridges, set up for
# one LVS forwarding mode the way LVS guides set up real hosts.
#
#   scripts/lab.sh up --mode dr|nat|fullnat|tun [--name NAME] [--directors 1|2]
#                     [--rs-port PORT]... [--big-mib N] [--tun-decap auto|kernel|userspace]
#                     [--offloads off|on]
#   scripts/lab.sh down [--name NAME | NAME | --all]
#   scripts/lab.sh exec NAME ROLE cmd...   ROLE: client director director2 rs1 rs2 rs3 router switch
#   scripts/lab.sh env [NAME]              print a lab's variables again
#   scripts/lab.sh list                    the labs this script made
#   scripts/lab.sh rs-fail NAME rsN [CODE] make rsN answer CODE (500) to everything but /status/
#   scripts/lab.sh rs-ok NAME rsN          undo rs-fail
#
# `up` prints sourceable FVS_* shell variables (also written to
# /run/ferrovs-lab/NAME.env) and nothing else on stdout:
#     eval "$(scripts/lab.sh up --mode dr)"; ...; scripts/lab.sh down "$FVS_LAB_NAME"
#
# Topology (every mode; addresses only from 198.18.0.0/15):
#
#     client 198.18.0.10 (+.11-.17 extra sources, .20 "direct" source)
#        |
#   ---[bra]------------------------------ client segment 198.18.0.0/24, VIP 198.18.0.100
#        |                |                 |
#     director .2    (director2 .3)     router .1
#        |                |                 |
#   ---[brb]------------------------------ server segment 198.18.1.0/24, LIPs 198.18.1.100-103
#        |          |          |
#       rs1 .11    rs2 .12    rs3 .13
#
# The bridges live in their own "switch" namespace. The directors' kernels own
# .2/.3 on both segments (ARP, health checks, SSH) but never the VIP or the
# local addresses: ferrovs answers ARP for those and forwards their traffic
# from AF_PACKET, and the kernel (ip_forward=0) drops what ferrovs handles.
#
# Real servers per mode:
#   dr       VIP/32 on lo, arp_ignore=1 arp_announce=2, default route via the
#            router: replies go to the client around the director.
#   tun      VIP/32 on tunl0 (kernel ipip, or a userspace decapsulator when the
#            kernel has no ipip: see lab-ipip-decap.py), rp_filter=0,
#            arp_ignore/arp_announce as dr, default route via the router.
#   nat      default route via the director (198.18.1.2; with two directors the
#            VRRP gateway address 198.18.1.254 that the master must hold), and
#            one host route: the client's "direct" address 198.18.0.20 via the
#            router, so the client can reach real servers around the director.
#   fullnat  nothing special; default route via the router (replies go to the
#            local addresses, which are on the server segment).
# The router exists in every mode, so that the client can always reach the
# real servers directly (checks, benchmarks against one real server).
set -euo pipefail

STATE_ROOT=/run/ferrovs-lab
PREFIX=fvs-
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HTTPD=$SCRIPT_DIR/lab-rs-httpd.py
DECAP=$SCRIPT_DIR/lab-ipip-decap.py
ROLES="switch client director director2 rs1 rs2 rs3 router"

# Addresses (fixed: every lab is isolated in its own namespaces and switch).
NET_A=198.18.0        # client segment
NET_B=198.18.1        # server segment
PLEN=24
VIP=$NET_A.100
VPORT=80
ROUTER_A=$NET_A.1 ROUTER_B=$NET_B.1
DIR1_A=$NET_A.2 DIR1_B=$NET_B.2
DIR2_A=$NET_A.3 DIR2_B=$NET_B.3
CLIENT_IP=$NET_A.10
CLIENT_EXTRA="$NET_A.11 $NET_A.12 $NET_A.13 $NET_A.14 $NET_A.15 $NET_A.16 $NET_A.17"
CLIENT_DIRECT=$NET_A.20
RS_IP=("" "$NET_B.11" "$NET_B.12" "$NET_B.13")
LIPS="$NET_B.100 $NET_B.101 $NET_B.102 $NET_B.103"
LIP_RANGE=$NET_B.100-103
NAT_VRRP_GW=$NET_B.254

log() { echo "lab.sh: $*" >&2; }
die() { echo "lab.sh: error: $*" >&2; exit 1; }

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, veths and bridges need CAP_NET_ADMIN)"
}

# Only Debian packages: iproute2 (ip), python3, curl, ethtool, procps (sysctl).
ensure_packages() {
    local missing=() c p
    for c in ip:iproute2 python3:python3 curl:curl ethtool:ethtool sysctl:procps setsid:util-linux; do
        command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]} (and no apt-get to install them)"
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    for p in ip python3 curl ethtool sysctl setsid; do
        command -v "$p" >/dev/null 2>&1 || die "$p still missing after installing ${missing[*]}"
    done
}

python_bin() {
    # Debian's python3 first (a pyenv shim works too, but is slower to start).
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

# NAME -> fvs-NAME unless it has the prefix already; checks the characters.
norm_name() {
    local n=$1
    case $n in "$PREFIX"*) ;; *) n=$PREFIX$n ;; esac
    [[ $n =~ ^fvs-[a-z0-9]([a-z0-9-]{0,26}[a-z0-9])?$ ]] ||
        die "bad lab name '$1': lowercase letters, digits and '-', at most 32 characters"
    echo "$n"
}

# The per-run suffix of interface names: 6 hex digits of the lab name's hash
# (interface names are at most 15 characters, lab names can be longer).
suffix_of() { printf '%s' "$1" | sha1sum | cut -c1-6; }

ns_of() { echo "$1-$2"; }          # NAME ROLE -> namespace

# Labs this script made: env files, run dirs and namespaces named fvs-*-ROLE.
list_labs() {
    {
        local f n r
        for f in "$STATE_ROOT"/"$PREFIX"*; do
            [ -e "$f" ] || continue
            n=${f##*/}; n=${n%.env}
            echo "$n"
        done
        ip netns list 2>/dev/null | awk '{print $1}' | while read -r n; do
            for r in $ROLES; do
                case $n in "$PREFIX"*-"$r") echo "${n%-"$r"}"; break ;; esac
            done
        done
    } | sort -u
}

lab_exists() {
    local r
    [ -e "$STATE_ROOT/$1" ] || [ -e "$STATE_ROOT/$1.env" ] && return 0
    for r in $ROLES; do
        [ -e "/var/run/netns/$(ns_of "$1" "$r")" ] && return 0
    done
    return 1
}

# ---------------------------------------------------------------- teardown

teardown() {
    local name=$1 r ns pids pid i left
    # 1. Every process inside the lab's namespaces (our HTTP servers and
    #    decapsulators, and whatever a test started there: ferrovs, curl...),
    #    else a namespace outlives `ip netns del`. Then the recorded pids, in
    #    case a namespace was deleted under a running helper.
    local victims=()
    for r in $ROLES; do
        ns=$(ns_of "$name" "$r")
        [ -e "/var/run/netns/$ns" ] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        for pid in $pids; do victims+=("$pid"); done
    done
    if [ -f "$STATE_ROOT/$name/pids" ]; then
        while read -r pid _; do
            # only if it still is our helper of this lab (pids get reused)
            [ -r "/proc/$pid/cmdline" ] || continue
            if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "lab-.*$STATE_ROOT/$name/"; then
                victims+=("$pid")
            fi
        done <"$STATE_ROOT/$name/pids"
    fi
    if [ ${#victims[@]} -gt 0 ]; then
        kill -TERM "${victims[@]}" 2>/dev/null || true
        for i in $(seq 1 50); do                      # up to 5 s
            left=0
            for pid in "${victims[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
            [ $left -eq 0 ] && break
            sleep 0.1
        done
        [ $left -eq 0 ] || kill -KILL "${victims[@]}" 2>/dev/null || true
    fi
    # 2. The namespaces; their veths, bridges and tunnels go with them (no
    #    lab link ever lives in the root namespace).
    for r in $ROLES; do
        ns=$(ns_of "$name" "$r")
        [ -e "/var/run/netns/$ns" ] || continue
        ip netns del "$ns" 2>/dev/null || log "cannot delete namespace $ns"
    done
    # 3. Files.
    rm -rf "${STATE_ROOT:?}/$name" "$STATE_ROOT/$name.env"
    rmdir "$STATE_ROOT" 2>/dev/null || true
}

# ---------------------------------------------------------------- building

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# MAC from the address: 02:00:c6:12:SEG:HOST (c6:12 = 198.18), so that a
# capture reads by itself.
mac_of() {
    local ip=$1
    IFS=. read -r _ _ s h <<<"$ip"
    printf '02:00:c6:12:%02x:%02x' "$s" "$h"
}

# link ROLE SEG IFNAME MAC: a veth from the host ROLE to the switch's bridge SEG.
link() {
    local role=$1 seg=$2 ifn=$3 mac=$4
    local swif=p$ifn
    [ ${#swif} -le 15 ] || die "interface name $swif too long"
    # Directors get two queue pairs on both ends: the AF_XDP backend binds
    # one socket per worker to one queue each (veth's "RSS": the sending
    # end's transmit queue, picked per flow, is the receiving end's queue).
    local q=()
    case $role in director*) q=(numrxqueues 2 numtxqueues 2) ;; esac
    ip link add name "$ifn" address "$mac" netns "$(ns_of "$NAME" "$role")" "${q[@]}" type veth \
        peer name "$swif" netns "$NS_SWITCH" "${q[@]}"
    ip -n "$NS_SWITCH" link set "$swif" master "br$seg-$SFX" up
    ip -n "$(ns_of "$NAME" "$role")" link set "$ifn" up
    # Offloads off on both ends. Without this a veth hands TSO/GSO super-frames
    # (up to 64 KiB) and CHECKSUM_PARTIAL frames to its peer; a userspace
    # forwarder reading the director's veth with AF_PACKET would get frames
    # larger than the MTU and with unfinished checksums, which a real wire
    # never carries. The AF_PACKET backend completes partial checksums itself
    # (TP_STATUS_CSUM_NOT_READY), so for checksums this is belt and braces; for
    # segmentation it is what makes the veths behave like NICs on a wire.
    # `--offloads on` leaves the veths' defaults (TSO/GSO on), for benchmarks.
    if [ "$OFFLOADS" = off ]; then
        nsx "$(ns_of "$NAME" "$role")" ethtool -K "$ifn" tx off tso off gso off gro off >/dev/null
        nsx "$NS_SWITCH" ethtool -K "$swif" tx off tso off gso off gro off >/dev/null
    fi
}

base_ns() {
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # No IPv6 on lab links: no DAD, router solicitations or MLD in captures.
    nsx "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

start_bg() {   # start_bg ROLE LOGFILE cmd... : background process in ROLE's namespace
    local role=$1 logf=$2; shift 2
    ip netns exec "$(ns_of "$NAME" "$role")" setsid "$@" </dev/null >"$logf" 2>&1 &
    echo "$! $role $1" >>"$RUN/pids"
    echo $!
}

wait_file() {  # wait_file FILE PID SECONDS WHAT LOG
    local f=$1 pid=$2 secs=$3 what=$4 logf=$5 i
    for i in $(seq 1 $((secs * 10))); do
        [ -s "$f" ] && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited during start-up: $(tail -n 5 "$logf" 2>/dev/null)"
        sleep 0.1
    done
    die "$what not ready after ${secs}s: $(tail -n 5 "$logf" 2>/dev/null)"
}

# setup_rs I: the real server's address and its mode's configuration, by
# scripts/rs-config.sh (the script the Vagrant lab's real servers run too),
# run inside the namespace; then TUN's userspace decapsulator, if needed.
setup_rs() {
    local i=$1 role=rs$1 ns ifn args=() out
    ns=$(ns_of "$NAME" "rs$1")
    ifn=s${i}b-$SFX
    args=(--addr "${RS_IP[$i]}/$PLEN")
    case $MODE in
    dr | fullnat) args+=(--gw "$ROUTER_B") ;;
    tun) args+=(--gw "$ROUTER_B" --tun-decap "$TUN_DECAP") ;;
    nat) args+=(--gw "$NAT_GW" --route "$CLIENT_DIRECT/32=$ROUTER_B") ;;
    esac
    out=$(nsx "$ns" "$SCRIPT_DIR/rs-config.sh" "$MODE" "$VIP" "$ifn" "${args[@]}") ||
        die "configuring $role (rs-config.sh $MODE) failed"
    if [ "$MODE" = tun ]; then
        echo "$out" >"$RUN/tun_decap"
        if [ "$out" = userspace ]; then
            local pid
            pid=$(start_bg "$role" "$RUN/$role/decap.log" "$PY" "$DECAP" --dev tunl0 --ready "$RUN/$role/decap.ready")
            wait_file "$RUN/$role/decap.ready" "$pid" 10 "ipip decapsulator in $role" "$RUN/$role/decap.log"
        fi
    fi
}

start_httpd() {
    local role=$1 pid p args=() got
    mkdir -p "$RUN/$role"
    for p in $RS_PORTS; do args+=(--port "$p"); done
    pid=$(start_bg "$role" "$RUN/$role/httpd.log" "$PY" "$HTTPD" --name "$role" "${args[@]}" \
        --run-dir "$RUN/$role/" --big-mib "$BIG_MIB")
    echo "$pid"
}

on_up_exit() {
    local rc=$?
    if [ "$UP_DONE" = 0 ]; then
        log "up failed (exit $rc): tearing $NAME down"
        teardown "$NAME"
    fi
    exit "$rc"
}

cmd_up() {
    local mode="" name="" directors=1 rs_ports=() big_mib=64 tun_decap=auto offloads=off
    while [ $# -gt 0 ]; do
        case $1 in
        --mode) mode=${2:-}; shift 2 ;;
        --name) name=${2:-}; shift 2 ;;
        --directors) directors=${2:-}; shift 2 ;;
        --rs-port) rs_ports+=("${2:-}"); shift 2 ;;
        --big-mib) big_mib=${2:-}; shift 2 ;;
        --tun-decap) tun_decap=${2:-}; shift 2 ;;
        --offloads) offloads=${2:-}; shift 2 ;;
        -h | --help) usage 0 ;;
        *) die "up: unknown argument '$1'" ;;
        esac
    done
    case $mode in dr | nat | fullnat | tun) ;; *) die "up: --mode dr|nat|fullnat|tun is required" ;; esac
    case $directors in 1 | 2) ;; *) die "up: --directors must be 1 or 2" ;; esac
    case $tun_decap in auto | kernel | userspace) ;; *) die "up: --tun-decap auto|kernel|userspace" ;; esac
    case $offloads in off | on) OFFLOADS=$offloads ;; *) die "up: --offloads off|on" ;; esac
    if ! [[ $big_mib =~ ^[0-9]+$ ]] || [ "$big_mib" -lt 1 ] || [ "$big_mib" -gt 1024 ]; then
        die "up: --big-mib 1..1024"
    fi
    [ ${#rs_ports[@]} -gt 0 ] || rs_ports=(80 8080)
    local p
    for p in "${rs_ports[@]}"; do
        if ! [[ $p =~ ^[0-9]+$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then die "up: bad --rs-port '$p'"; fi
    done
    need_root
    ensure_packages
    [ -n "$name" ] || name=$PREFIX$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
    NAME=$(norm_name "$name")
    MODE=$mode DIRECTORS=$directors RS_PORTS="${rs_ports[*]}" BIG_MIB=$big_mib TUN_DECAP=$tun_decap
    PY=$(python_bin)
    SFX=$(suffix_of "$NAME")
    RUN=$STATE_ROOT/$NAME
    NS_SWITCH=$(ns_of "$NAME" switch)
    if [ "$DIRECTORS" = 2 ]; then NAT_GW=$NAT_VRRP_GW; else NAT_GW=$DIR1_B; fi
    lab_exists "$NAME" && die "lab $NAME exists; remove it first: $0 down $NAME"

    # From here on, a failure or an interrupt tears the half-built lab down.
    UP_DONE=0
    trap on_up_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$RUN"
    : >"$RUN/pids"
    echo "$MODE" >"$RUN/mode"
    log "building $NAME ($MODE, $DIRECTORS director(s))"

    local roles="switch client director router rs1 rs2 rs3" r
    [ "$DIRECTORS" = 2 ] && roles="$roles director2"
    for r in $roles; do base_ns "$(ns_of "$NAME" "$r")"; done

    # The switch: one bridge per segment, no STP (ports forward at once), no
    # multicast snooping (VRRP adverts are flooded as on a dumb switch).
    local seg
    for seg in a b; do
        ip -n "$NS_SWITCH" link add "br$seg-$SFX" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
        ip -n "$NS_SWITCH" link set "br$seg-$SFX" up
    done

    # Client: one primary address, extra sources (for sh/mh tests), and the
    # "direct" source that NAT-mode real servers route back via the router.
    local ns a
    ns=$(ns_of "$NAME" client)
    link client a "cla-$SFX" "$(mac_of "$CLIENT_IP")"
    ip -n "$ns" addr add "$CLIENT_IP/$PLEN" dev "cla-$SFX"
    for a in $CLIENT_EXTRA $CLIENT_DIRECT; do ip -n "$ns" addr add "$a/$PLEN" dev "cla-$SFX"; done
    ip -n "$ns" route add default via "$ROUTER_A"
    nsx "$ns" sysctl -q -w net.ipv4.conf.all.rp_filter=1 "net.ipv4.conf.cla-$SFX.rp_filter=1"

    # Router: forwards between the segments (DR/TUN replies, direct access).
    # rp_filter off: in DR/TUN it forwards packets from the VIP arriving on the
    # server side while the VIP's route points to the client side.
    ns=$(ns_of "$NAME" router)
    link router a "rta-$SFX" "$(mac_of "$ROUTER_A")"
    link router b "rtb-$SFX" "$(mac_of "$ROUTER_B")"
    ip -n "$ns" addr add "$ROUTER_A/$PLEN" dev "rta-$SFX"
    ip -n "$ns" addr add "$ROUTER_B/$PLEN" dev "rtb-$SFX"
    nsx "$ns" sysctl -q -w net.ipv4.ip_forward=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        "net.ipv4.conf.rta-$SFX.rp_filter=0" "net.ipv4.conf.rtb-$SFX.rp_filter=0" \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
        "net.ipv4.conf.rta-$SFX.send_redirects=0" "net.ipv4.conf.rtb-$SFX.send_redirects=0"

    # Directors: own addresses on both segments, default route via the router,
    # no VIP, no local addresses. ip_forward=0 so that the kernel drops (and
    # never forwards a second copy of) what ferrovs forwards from AF_PACKET;
    # rp_filter=0 so that nothing ferrovs relies on is filtered.
    local d ia ib ipa ipb
    for d in 1 2; do
        [ "$d" -le "$DIRECTORS" ] || continue
        r=director; [ "$d" = 2 ] && r=director2
        ns=$(ns_of "$NAME" "$r")
        ia=d${d}a-$SFX ib=d${d}b-$SFX
        if [ "$d" = 1 ]; then ipa=$DIR1_A ipb=$DIR1_B; else ipa=$DIR2_A ipb=$DIR2_B; fi
        link "$r" a "$ia" "$(mac_of "$ipa")"
        link "$r" b "$ib" "$(mac_of "$ipb")"
        ip -n "$ns" addr add "$ipa/$PLEN" dev "$ia"
        ip -n "$ns" addr add "$ipb/$PLEN" dev "$ib"
        ip -n "$ns" route add default via "$ROUTER_A"
        nsx "$ns" sysctl -q -w net.ipv4.ip_forward=0 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
            "net.ipv4.conf.$ia.rp_filter=0" "net.ipv4.conf.$ib.rp_filter=0"
    done

    # Real servers, then their HTTP servers.
    local i pids=()
    for i in 1 2 3; do
        mkdir -p "$RUN/rs$i"
        link "rs$i" b "s${i}b-$SFX" "$(mac_of "${RS_IP[$i]}")"
        setup_rs "$i"
    done
    for i in 1 2 3; do pids[i]=$(start_httpd "rs$i"); done
    for i in 1 2 3; do
        wait_file "$RUN/rs$i/ready" "${pids[i]}" 15 "HTTP server of rs$i" "$RUN/rs$i/httpd.log"
        for p in $RS_PORTS; do
            got=$(nsx "$(ns_of "$NAME" "rs$i")" curl -sS --max-time 5 "http://${RS_IP[$i]}:$p/") ||
                die "rs$i does not answer on ${RS_IP[$i]}:$p"
            [ "$got" = "rs$i" ] || die "rs$i answered '$got' on ${RS_IP[$i]}:$p"
        done
    done

    local big_sha
    big_sha=$("$PY" "$HTTPD" --big-sha256 --big-mib "$BIG_MIB")
    write_env "$big_sha" >"$RUN/env.tmp"
    mv "$RUN/env.tmp" "$STATE_ROOT/$NAME.env"
    UP_DONE=1
    trap - EXIT INT TERM
    cat "$STATE_ROOT/$NAME.env"
    log "lab $NAME is up; env in $STATE_ROOT/$NAME.env; remove it with: $0 down $NAME"
}

q() { printf "%s='%s'\n" "$1" "$2"; }

write_env() {
    local big_sha=$1 i tun_decap=""
    [ "$MODE" = tun ] && tun_decap=$(cat "$RUN/tun_decap")
    echo "# ferrovs lab $NAME ($MODE); source this file"
    q FVS_LAB_NAME "$NAME"
    q FVS_MODE "$MODE"
    q FVS_DIRECTORS "$DIRECTORS"
    q FVS_RUN_DIR "$RUN"
    q FVS_ENV_FILE "$STATE_ROOT/$NAME.env"
    q FVS_LAB_SH "$SCRIPT_DIR/lab.sh"
    q FVS_NS_SWITCH "$NS_SWITCH"
    q FVS_NS_CLIENT "$(ns_of "$NAME" client)"
    q FVS_NS_DIRECTOR "$(ns_of "$NAME" director)"
    [ "$DIRECTORS" = 2 ] && q FVS_NS_DIRECTOR2 "$(ns_of "$NAME" director2)"
    q FVS_NS_ROUTER "$(ns_of "$NAME" router)"
    q FVS_NS_RS "$(ns_of "$NAME" rs1) $(ns_of "$NAME" rs2) $(ns_of "$NAME" rs3)"
    for i in 1 2 3; do q "FVS_NS_RS$i" "$(ns_of "$NAME" "rs$i")"; done
    q FVS_CLIENT_NET "$NET_A.0/$PLEN"
    q FVS_SERVER_NET "$NET_B.0/$PLEN"
    q FVS_VIP "$VIP"
    q FVS_VPORT "$VPORT"
    q FVS_CLIENT_IF "cla-$SFX"
    q FVS_CLIENT_IP "$CLIENT_IP"
    q FVS_CLIENT_IPS "$CLIENT_IP $CLIENT_EXTRA"
    q FVS_CLIENT_DIRECT_IP "$CLIENT_DIRECT"
    q FVS_CLIENT_MAC "$(mac_of "$CLIENT_IP")"
    q FVS_DIRECTOR_IF_CLIENT "d1a-$SFX"
    q FVS_DIRECTOR_IF_SERVER "d1b-$SFX"
    q FVS_DIRECTOR_IFS "d1a-$SFX d1b-$SFX"
    q FVS_DIRECTOR_IP_CLIENT "$DIR1_A"
    q FVS_DIRECTOR_IP_SERVER "$DIR1_B"
    q FVS_DIRECTOR_MAC_CLIENT "$(mac_of "$DIR1_A")"
    q FVS_DIRECTOR_MAC_SERVER "$(mac_of "$DIR1_B")"
    if [ "$DIRECTORS" = 2 ]; then
        q FVS_DIRECTOR2_IF_CLIENT "d2a-$SFX"
        q FVS_DIRECTOR2_IF_SERVER "d2b-$SFX"
        q FVS_DIRECTOR2_IFS "d2a-$SFX d2b-$SFX"
        q FVS_DIRECTOR2_IP_CLIENT "$DIR2_A"
        q FVS_DIRECTOR2_IP_SERVER "$DIR2_B"
        q FVS_DIRECTOR2_MAC_CLIENT "$(mac_of "$DIR2_A")"
        q FVS_DIRECTOR2_MAC_SERVER "$(mac_of "$DIR2_B")"
    fi
    q FVS_ROUTER_IF_CLIENT "rta-$SFX"
    q FVS_ROUTER_IF_SERVER "rtb-$SFX"
    q FVS_ROUTER_IP_CLIENT "$ROUTER_A"
    q FVS_ROUTER_IP_SERVER "$ROUTER_B"
    q FVS_ROUTER_MAC_CLIENT "$(mac_of "$ROUTER_A")"
    q FVS_ROUTER_MAC_SERVER "$(mac_of "$ROUTER_B")"
    q FVS_RS_NAMES "rs1 rs2 rs3"
    q FVS_RS_IPS "${RS_IP[1]} ${RS_IP[2]} ${RS_IP[3]}"
    for i in 1 2 3; do
        q "FVS_RS${i}_IP" "${RS_IP[$i]}"
        q "FVS_RS${i}_IF" "s${i}b-$SFX"
        q "FVS_RS${i}_MAC" "$(mac_of "${RS_IP[$i]}")"
        q "FVS_RS${i}_DIR" "$RUN/rs$i"
    done
    q FVS_RS_PORTS "$RS_PORTS"
    q FVS_RS_PORT "${RS_PORTS%% *}"
    q FVS_LIPS "$LIPS"
    q FVS_LIP_RANGE "$LIP_RANGE"
    q FVS_NAT_GW "$NAT_GW"
    q FVS_TUN_DECAP "$tun_decap"
    q FVS_BIG_PATH /big
    q FVS_BIG_SIZE "$((BIG_MIB * 1048576))"
    q FVS_BIG_SHA256 "$big_sha"
}

# ---------------------------------------------------------------- commands

# The lab a command means: --name/positional NAME, else $FVS_LAB_NAME, else
# the only lab there is.
resolve_name() {
    local n=${1:-${FVS_LAB_NAME:-}} labs
    if [ -n "$n" ]; then norm_name "$n"; return; fi
    labs=$(list_labs)
    [ -n "$labs" ] || die "no lab exists"
    [ "$(echo "$labs" | wc -l)" -eq 1 ] || die "several labs exist, name one: $(echo "$labs" | tr '\n' ' ')"
    echo "$labs"
}

cmd_down() {
    local name="" all=0
    while [ $# -gt 0 ]; do
        case $1 in
        --all) all=1; shift ;;
        --name) name=${2:-}; shift 2 ;;
        -h | --help) usage 0 ;;
        -*) die "down: unknown argument '$1'" ;;
        *) name=$1; shift ;;
        esac
    done
    need_root
    if [ $all = 1 ]; then
        local n
        for n in $(list_labs); do log "removing $n"; teardown "$n"; done
        return 0
    fi
    if [ -z "$name" ] && [ -z "${FVS_LAB_NAME:-}" ] && [ -z "$(list_labs)" ]; then
        return 0 # nothing to do: idempotent
    fi
    name=$(resolve_name "$name")
    teardown "$name"
}

role_ok() {
    case $1 in switch | client | director | director2 | rs1 | rs2 | rs3 | router) return 0 ;; esac
    die "unknown role '$1' (client director director2 rs1 rs2 rs3 router switch)"
}

cmd_exec() {
    [ $# -ge 3 ] || die "usage: $0 exec NAME ROLE cmd..."
    local name role ns
    name=$(norm_name "$1") role=$2; shift 2
    role_ok "$role"
    ns=$(ns_of "$name" "$role")
    [ -e "/var/run/netns/$ns" ] || die "no namespace $ns (is lab $name up, with that role?)"
    exec ip netns exec "$ns" "$@"
}

cmd_env() {
    local name
    name=$(resolve_name "${1:-}")
    [ -f "$STATE_ROOT/$name.env" ] || die "no env file for $name"
    cat "$STATE_ROOT/$name.env"
}

cmd_rs_switch() {   # rs-fail NAME rsN [CODE] | rs-ok NAME rsN
    local what=$1 name role code=${4:-500}
    [ $# -ge 3 ] || die "usage: $0 rs-fail|rs-ok NAME rsN [CODE]"
    name=$(norm_name "$2") role=$3
    case $role in rs1 | rs2 | rs3) ;; *) die "no real server '$role'" ;; esac
    [ -d "$STATE_ROOT/$name/$role" ] || die "lab $name has no $role"
    if [ "$what" = rs-fail ]; then
        [[ $code =~ ^[1-5][0-9][0-9]$ ]] || die "bad status code '$code'"
        echo "$code" >"$STATE_ROOT/$name/$role/fail"
    else
        rm -f "$STATE_ROOT/$name/$role/fail"
    fi
}

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1; shift
    case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    exec) cmd_exec "$@" ;;
    env) cmd_env "$@" ;;
    list) list_labs ;;
    rs-fail | rs-ok) cmd_rs_switch "$cmd" "$@" ;;
    -h | --help | help) usage 0 ;;
    *) die "unknown command '$cmd'" ;;
    esac
}

main "$@"
