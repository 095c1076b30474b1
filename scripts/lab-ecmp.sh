#!/usr/bin/env bash
# ferrovs active-active lab: three directors behind a router that balances
# over them with ECMP, learning the VIP from each director over BGP (FRR's
# bgpd and zebra in the router namespace), three DR real servers with a
# long-lived TCP service, and a client with many source addresses.
#
#   scripts/lab-ecmp.sh up [--name NAME] [--speaker none|exabgp]
#   scripts/lab-ecmp.sh down [NAME | --all]
#   scripts/lab-ecmp.sh exec NAME ROLE cmd...   ROLE: client router dir1 dir2 dir3 rs1 rs2 rs3 switch
#   scripts/lab-ecmp.sh env [NAME]              print a lab's variables again
#   scripts/lab-ecmp.sh list                    the labs this script made
#   scripts/lab-ecmp.sh vtysh NAME [-c CMD]...  FRR's shell on the lab's router
#   scripts/lab-ecmp.sh ferrovs-conf NAME dirN [--bgp] [--sloppy] [--workdir DIR] [--rs "1 2 3"] [--algo mh]
#                        [--backend afxdp|afpacket] [--kind dr|fullnat [--preempt-delay S]] [--persist S]
#                                               a ferrovs configuration for dirN
#   scripts/lab-ecmp.sh speaker NAME dirN start|kill|announce|withdraw
#                                               a plain ExaBGP on dirN (see --speaker)
#
# `up` prints sourceable FVE_* shell variables (also written to
# /run/ferrovs-lab-ecmp/NAME.env) and nothing else on stdout:
#     eval "$(scripts/lab-ecmp.sh up)"; ...; scripts/lab-ecmp.sh down "$FVE_LAB_NAME"
#
# Topology (addresses only from 198.18.0.0/15; VIP 198.18.10.100, on no link):
#
#     client 198.18.0.10-.41 (32 source addresses)
#        |
#   ---[bra]--- client segment 198.18.0.0/24
#        |
#     router .0.1 / .2.1 / .1.1   FRR: AS 65000, one eBGP session per director,
#        |                        maximum-paths 8; kernel multipath hash on L4
#   ---[brc]--- uplink segment 198.18.2.0/24 (BGP, and the VIP's traffic)
#        |            |            |
#      dir1 .2.11   dir2 .2.12   dir3 .2.13   AS 65011 / 65012 / 65013
#      dir1 .1.11   dir2 .1.12   dir3 .1.13
#        |            |            |
#   ---[brb]--- server segment 198.18.1.0/24 (router .1.1 is the servers' gateway)
#        |          |          |
#       rs1 .21    rs2 .22    rs3 .23     DR: VIP/32 on lo, arp_ignore/arp_announce
#                                         (scripts/rs-config.sh), lab-longconn.py
#                                         server on the VIP's port 9000
#
# The router routes the VIP /32 to every director that announces it, picking
# one per flow from the 5-tuple (net.ipv4.fib_multipath_hash_policy=1). The
# directors forward in DR mode, the real servers answer the client through
# the router. FRR runs in the router namespace only, from its own
# configuration and state under /run/ferrovs-lab-ecmp/NAME/frr (never the
# host's /etc/frr or its service); `down` stops it with the namespace.
#
# `--speaker exabgp` starts, in every director, a plain ExaBGP (no ferrovs)
# that announces the VIP with next-hop self; `speaker NAME dirN withdraw`,
# `announce`, `kill` (SIGKILL: the session drops at once) and `start` drive it.
# It validates the routing half of the lab without ferrovs's own BGP; with
# ferrovs's `bgp { }` block (`ferrovs-conf --bgp`) ferrovs runs ExaBGP itself
# and `--speaker none` (the default) is what you want.
set -euo pipefail

STATE_ROOT=/run/ferrovs-lab-ecmp
PREFIX=fve-
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LONGCONN=$SCRIPT_DIR/lab-longconn.py
ROLES="switch client router dir1 dir2 dir3 rs1 rs2 rs3"
FRR_DIR=/usr/lib/frr

NET_A=198.18.0 # client segment
NET_B=198.18.1 # server segment
NET_C=198.18.2 # uplink segment
PLEN=24
VIP=198.18.10.100
VPORT=9000
ROUTER_A=$NET_A.1 ROUTER_B=$NET_B.1 ROUTER_C=$NET_C.1
ROUTER_AS=65000
CLIENT_IP=$NET_A.10
CLIENT_SOURCES=$(for i in $(seq 10 41); do printf '%s.%d ' "$NET_A" "$i"; done)
CLIENT_SOURCES=${CLIENT_SOURCES% }
DIR_C=("" "$NET_C.11" "$NET_C.12" "$NET_C.13")
DIR_B=("" "$NET_B.11" "$NET_B.12" "$NET_B.13")
DIR_AS=("" 65011 65012 65013)
RS_IP=("" "$NET_B.21" "$NET_B.22" "$NET_B.23")
# FULLNAT's local addresses: dirN holds LIP[N] in a server-side VRRP
# instance (VRID 60+N) that the other two back up.
LIP=("" "$NET_B.101" "$NET_B.102" "$NET_B.103")
HOLD_TIME=9

log() { echo "lab-ecmp.sh: $*" >&2; }
die() { echo "lab-ecmp.sh: error: $*" >&2; exit 1; }

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, veths and bridges need CAP_NET_ADMIN)"
}

# Debian packages: what scripts/lab.sh needs, FRR (bgpd, zebra, vtysh) and
# ExaBGP (for --speaker exabgp; ferrovs's bgp block runs it too). The
# packaged FRR service must not start on the host: where no policy-rc.d
# forbids it already, one does for the time of the installation.
ensure_packages() {
    local missing=() c p policy=/usr/sbin/policy-rc.d ours=0
    for c in ip:iproute2 python3:python3 ethtool:ethtool sysctl:procps setsid:util-linux \
        "$FRR_DIR/bgpd":frr vtysh:frr exabgp:exabgp; do
        p=${c%%:*}
        if [ "${p#/}" != "$p" ]; then [ -x "$p" ] && continue; else command -v "$p" >/dev/null 2>&1 && continue; fi
        case " ${missing[*]} " in *" ${c#*:} "*) ;; *) missing+=("${c#*:}") ;; esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]} (and no apt-get to install them)"
    log "installing ${missing[*]}"
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
        [ $ours = 1 ] && rm -f "$policy"
        die "installing ${missing[*]} failed"
    }
    [ $ours = 1 ] && rm -f "$policy"
    [ -x "$FRR_DIR/bgpd" ] && [ -x "$FRR_DIR/zebra" ] || die "FRR's bgpd/zebra not in $FRR_DIR after installing frr"
}

python_bin() {
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

norm_name() {
    local n=$1
    case $n in "$PREFIX"*) ;; *) n=$PREFIX$n ;; esac
    [[ $n =~ ^fve-[a-z0-9]([a-z0-9-]{0,26}[a-z0-9])?$ ]] ||
        die "bad lab name '$1': lowercase letters, digits and '-', at most 32 characters"
    echo "$n"
}

suffix_of() { printf '%s' "$1" | sha1sum | cut -c1-6; }
ns_of() { echo "$1-$2"; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# MAC from the address: 02:00:c6:12:SEG:HOST (as scripts/lab.sh).
mac_of() {
    local ip=$1
    IFS=. read -r _ _ s h <<<"$ip"
    printf '02:00:c6:12:%02x:%02x' "$s" "$h"
}

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
    local name=$1 r ns pids pid i left victims=()
    # Every process in the lab's namespaces (FRR, the servers, whatever a
    # test started there: ferrovs, its ExaBGP), else a namespace outlives
    # `ip netns del`.
    for r in $ROLES; do
        ns=$(ns_of "$name" "$r")
        [ -e "/var/run/netns/$ns" ] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        for pid in $pids; do victims+=("$pid"); done
    done
    if [ ${#victims[@]} -gt 0 ]; then
        kill -TERM "${victims[@]}" 2>/dev/null || true
        for i in $(seq 1 50); do
            left=0
            for pid in "${victims[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
            [ $left -eq 0 ] && break
            sleep 0.1
        done
        [ $left -eq 0 ] || kill -KILL "${victims[@]}" 2>/dev/null || true
    fi
    for r in $ROLES; do
        ns=$(ns_of "$name" "$r")
        [ -e "/var/run/netns/$ns" ] || continue
        ip netns del "$ns" 2>/dev/null || log "cannot delete namespace $ns"
    done
    rm -rf "${STATE_ROOT:?}/$name" "$STATE_ROOT/$name.env"
    rmdir "$STATE_ROOT" 2>/dev/null || true
}

# ---------------------------------------------------------------- building

# link ROLE SEG IFNAME MAC: a veth from ROLE to the switch's bridge SEG,
# offloads off on both ends (as scripts/lab.sh: no GSO super-frames or
# partial checksums towards a userspace forwarder). Directors get two queue
# pairs (the AF_XDP backend binds one socket per worker and queue).
link() {
    local role=$1 seg=$2 ifn=$3 mac=$4 swif=p$3 q=()
    [ ${#swif} -le 15 ] || die "interface name $swif too long"
    case $role in dir*) q=(numrxqueues 2 numtxqueues 2) ;; esac
    ip link add name "$ifn" address "$mac" netns "$(ns_of "$NAME" "$role")" "${q[@]}" type veth \
        peer name "$swif" netns "$NS_SWITCH" "${q[@]}"
    ip -n "$NS_SWITCH" link set "$swif" master "br$seg-$SFX" up
    ip -n "$(ns_of "$NAME" "$role")" link set "$ifn" up
    nsx "$(ns_of "$NAME" "$role")" ethtool -K "$ifn" tx off tso off gso off gro off >/dev/null
    nsx "$NS_SWITCH" ethtool -K "$swif" tx off tso off gso off gro off >/dev/null
}

base_ns() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    nsx "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

start_bg() { # start_bg ROLE LOGFILE cmd... : background process in ROLE's namespace
    local role=$1 logf=$2; shift 2
    ip netns exec "$(ns_of "$NAME" "$role")" setsid "$@" </dev/null >"$logf" 2>&1 &
    echo "$! $role $1" >>"$RUN/pids"
    echo $!
}

wait_for() { # wait_for SECONDS WHAT PID LOG cmd...: until cmd succeeds
    local secs=$1 what=$2 pid=$3 logf=$4 i
    shift 4
    for i in $(seq 1 $((secs * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || die "$what exited during start-up: $(tail -n 5 "$logf" 2>/dev/null)"
        sleep 0.1
    done
    die "$what not ready after ${secs}s: $(tail -n 5 "$logf" 2>/dev/null)"
}

# FRR: zebra (the kernel's routes, ECMP included) and bgpd, started
# directly with every path under $RUN/frr: configuration, pid files, the
# zserv socket and the vty sockets that vtysh uses (--vty_socket).
frr_conf() {
    local d
    cat <<EOF
! written by scripts/lab-ecmp.sh for lab $NAME
frr defaults traditional
hostname $NAME-router
log file $RUN/frr/bgpd.log informational
!
! Policies first: a route-map a neighbour names before it exists filters
! everything until the session is refreshed.
ip prefix-list VIPS seq 5 permit ${VIP%.*}.0/24 ge 32
route-map DIRECTORS-IN permit 10
 match ip address prefix-list VIPS
exit
route-map DIRECTORS-OUT deny 10
exit
!
router bgp $ROUTER_AS
 bgp router-id $ROUTER_C
 ! Equal paths from different neighbour ASes (one AS per director).
 bgp bestpath as-path multipath-relax
 bgp log-neighbor-changes
EOF
    for d in 1 2 3; do
        echo " neighbor ${DIR_C[$d]} remote-as ${DIR_AS[$d]}"
        echo " neighbor ${DIR_C[$d]} description dir$d"
        echo " neighbor ${DIR_C[$d]} timers 3 $HOLD_TIME"
        echo " neighbor ${DIR_C[$d]} timers connect 2"
    done
    echo " !"
    echo " address-family ipv4 unicast"
    echo "  maximum-paths 8"
    # From the directors only host routes in the VIP range; to them nothing
    # (they only announce).
    for d in 1 2 3; do
        echo "  neighbor ${DIR_C[$d]} route-map DIRECTORS-IN in"
        echo "  neighbor ${DIR_C[$d]} route-map DIRECTORS-OUT out"
    done
    echo " exit-address-family"
    echo "!"
}

start_frr() {
    local ns f pid
    ns=$(ns_of "$NAME" router)
    f=$RUN/frr
    mkdir -p "$f"
    printf 'hostname %s-router\nlog file %s/zebra.log informational\n' "$NAME" "$f" >"$f/zebra.conf"
    frr_conf >"$f/bgpd.conf"
    # The daemons drop to the frr user (its vty group frrvty), as packaged:
    # the state directory is theirs.
    chown -R frr:frr "$f"
    pid=$(start_bg router "$f/zebra.out" "$FRR_DIR/zebra" -f "$f/zebra.conf" -i "$f/zebra.pid" \
        -z "$f/zserv.api" --vty_socket "$f" -P 0)
    wait_for 15 "zebra" "$pid" "$f/zebra.out" test -S "$f/zserv.api"
    pid=$(start_bg router "$f/bgpd.out" "$FRR_DIR/bgpd" -f "$f/bgpd.conf" -i "$f/bgpd.pid" \
        -z "$f/zserv.api" --vty_socket "$f" -P 0 -l "$ROUTER_C" -p 179)
    wait_for 15 "bgpd" "$pid" "$f/bgpd.out" vtysh_run -c 'show bgp summary'
}

vtysh_run() { # vtysh_run ARGS...: vtysh in the router namespace of $NAME
    nsx "$(ns_of "$NAME" router)" vtysh --vty_socket "$STATE_ROOT/$NAME/frr" "$@"
}

# ExaBGP without ferrovs, for --speaker exabgp: its process is `tail -F`
# of a command file, so that each line appended to the file is an API
# command ("announce route ..."). It connects to the router itself.
speaker_conf() {
    local d=$1
    cat <<EOF
process cmds {
    run /usr/bin/tail -n +1 -F $RUN/dir$d/exabgp.cmds;
    encoder text;
}
neighbor $ROUTER_C {
    router-id ${DIR_C[$d]};
    local-address ${DIR_C[$d]};
    local-as ${DIR_AS[$d]};
    peer-as $ROUTER_AS;
    hold-time $HOLD_TIME;
    family {
        ipv4 unicast;
    }
    api {
        processes [ cmds ];
    }
}
EOF
}

speaker_start() {
    local d=$1 pid
    mkdir -p "$RUN/dir$d"
    speaker_conf "$d" >"$RUN/dir$d/exabgp.conf"
    [ -e "$RUN/dir$d/exabgp.cmds" ] || echo "announce route $VIP/32 next-hop self" >"$RUN/dir$d/exabgp.cmds"
    # setsid: ExaBGP in a session of its own (no terminal, no job control).
    env exabgp.daemon.user=root exabgp.daemon.daemonize=false \
        exabgp.log.destination=stdout exabgp.api.ack=false exabgp.tcp.bind='' \
        exabgp.api.cli=false \
        ip netns exec "$(ns_of "$NAME" "dir$d")" setsid exabgp "$RUN/dir$d/exabgp.conf" \
        </dev/null >>"$RUN/dir$d/exabgp.log" 2>&1 &
    pid=$!
    echo "$pid dir$d exabgp" >>"$RUN/pids"
    echo "$pid" >"$RUN/dir$d/exabgp.mainpid"
}

speaker_kill() {
    local d=$1 pid
    pid=$(cat "$RUN/dir$d/exabgp.mainpid" 2>/dev/null) || die "no ExaBGP started on dir$d"
    # ExaBGP and its `tail` (its child), by their ids: SIGKILL, the kernel
    # closes the BGP session's socket and the router drops the session at once.
    local kids
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    rm -f "$RUN/dir$d/exabgp.mainpid"
}

setup_rs() {
    local i=$1 ns ifn
    ns=$(ns_of "$NAME" "rs$i")
    ifn=s${i}b-$SFX
    nsx "$ns" "$SCRIPT_DIR/rs-config.sh" dr "$VIP" "$ifn" --addr "${RS_IP[$i]}/$PLEN" --gw "$ROUTER_B" >/dev/null ||
        die "configuring rs$i (rs-config.sh dr) failed"
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
    local name="" speaker=none
    while [ $# -gt 0 ]; do
        case $1 in
        --name) name=${2:-}; shift 2 ;;
        --speaker) speaker=${2:-}; shift 2 ;;
        -h | --help) usage 0 ;;
        *) die "up: unknown argument '$1'" ;;
        esac
    done
    case $speaker in none | exabgp) ;; *) die "up: --speaker none|exabgp" ;; esac
    need_root
    ensure_packages
    [ -n "$name" ] || name=$PREFIX$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
    NAME=$(norm_name "$name")
    PY=$(python_bin)
    SFX=$(suffix_of "$NAME")
    RUN=$STATE_ROOT/$NAME
    NS_SWITCH=$(ns_of "$NAME" switch)
    lab_exists "$NAME" && die "lab $NAME exists; remove it first: $0 down $NAME"

    UP_DONE=0
    trap on_up_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$RUN"
    : >"$RUN/pids"
    log "building $NAME (3 directors behind an ECMP router, speaker $speaker)"

    local r ns a d i seg
    for r in $ROLES; do base_ns "$(ns_of "$NAME" "$r")"; done
    for seg in a b c; do
        ip -n "$NS_SWITCH" link add "br$seg-$SFX" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
        ip -n "$NS_SWITCH" link set "br$seg-$SFX" up
    done

    # Client: 32 source addresses, default route via the router.
    ns=$(ns_of "$NAME" client)
    link client a "cla-$SFX" "$(mac_of "$CLIENT_IP")"
    for a in $CLIENT_SOURCES; do ip -n "$ns" addr add "$a/$PLEN" dev "cla-$SFX"; done
    ip -n "$ns" route add default via "$ROUTER_A"
    # net.core.txrehash=0: a TCP socket keeps its flow hash. Veths carry a
    # packet's hash (skb->hash, from the socket) across namespaces, and the
    # router's multipath selection uses a hash it finds rather than hashing
    # the headers itself; by default Linux picks a new hash for a socket at
    # each retransmission timeout, so a flow stuck on a dead or ignorant
    # director would hop to another one, which no router on a wire does
    # (it hashes the 5-tuple: one flow, one next hop). With rehashing off
    # each flow keeps one next hop for as long as the route is the same.
    nsx "$ns" sysctl -q -w net.ipv4.ip_local_port_range="20000 60999" net.core.txrehash=0

    # Router: forwards, ECMP hashed on the 5-tuple, no rp_filter (DR replies
    # come from the VIP on the server side), no redirects.
    ns=$(ns_of "$NAME" router)
    link router a "rta-$SFX" "$(mac_of "$ROUTER_A")"
    link router b "rtb-$SFX" "$(mac_of "$ROUTER_B")"
    link router c "rtc-$SFX" "$(mac_of "$ROUTER_C")"
    ip -n "$ns" addr add "$ROUTER_A/$PLEN" dev "rta-$SFX"
    ip -n "$ns" addr add "$ROUTER_B/$PLEN" dev "rtb-$SFX"
    ip -n "$ns" addr add "$ROUTER_C/$PLEN" dev "rtc-$SFX"
    nsx "$ns" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
    for a in a b c; do
        nsx "$ns" sysctl -q -w "net.ipv4.conf.rt$a-$SFX.rp_filter=0" "net.ipv4.conf.rt$a-$SFX.send_redirects=0"
    done

    # Directors: their own addresses on the uplink and the server segment,
    # never the VIP; ip_forward=0 (ferrovs forwards, the kernel must not
    # send a second copy); default route via the router.
    for d in 1 2 3; do
        ns=$(ns_of "$NAME" "dir$d")
        mkdir -p "$RUN/dir$d"
        link "dir$d" c "d${d}c-$SFX" "$(mac_of "${DIR_C[$d]}")"
        link "dir$d" b "d${d}b-$SFX" "$(mac_of "${DIR_B[$d]}")"
        ip -n "$ns" addr add "${DIR_C[$d]}/$PLEN" dev "d${d}c-$SFX"
        ip -n "$ns" addr add "${DIR_B[$d]}/$PLEN" dev "d${d}b-$SFX"
        ip -n "$ns" route add default via "$ROUTER_C"
        nsx "$ns" sysctl -q -w net.ipv4.ip_forward=0 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
            "net.ipv4.conf.d${d}c-$SFX.rp_filter=0" "net.ipv4.conf.d${d}b-$SFX.rp_filter=0"
    done

    # Real servers (DR) and their long-lived-connection servers.
    local pids=()
    for i in 1 2 3; do
        mkdir -p "$RUN/rs$i"
        link "rs$i" b "s${i}b-$SFX" "$(mac_of "${RS_IP[$i]}")"
        setup_rs "$i"
        pids[i]=$(start_bg "rs$i" "$RUN/rs$i/longconn.log" "$PY" "$LONGCONN" server --port "$VPORT" \
            --name "rs$i" --ready "$RUN/rs$i/ready")
    done
    for i in 1 2 3; do
        wait_for 15 "long-lived-connection server of rs$i" "${pids[i]}" "$RUN/rs$i/longconn.log" test -s "$RUN/rs$i/ready"
    done

    start_frr
    if [ "$speaker" = exabgp ]; then
        for d in 1 2 3; do speaker_start "$d"; done
    fi

    write_env "$speaker" >"$RUN/env.tmp"
    mv "$RUN/env.tmp" "$STATE_ROOT/$NAME.env"
    UP_DONE=1
    trap - EXIT INT TERM
    cat "$STATE_ROOT/$NAME.env"
    log "lab $NAME is up; env in $STATE_ROOT/$NAME.env; remove it with: $0 down $NAME"
}

q() { printf "%s='%s'\n" "$1" "$2"; }

write_env() {
    local d i
    echo "# ferrovs ECMP lab $NAME; source this file"
    q FVE_LAB_NAME "$NAME"
    q FVE_RUN_DIR "$RUN"
    q FVE_ENV_FILE "$STATE_ROOT/$NAME.env"
    q FVE_LAB_SH "$SCRIPT_DIR/lab-ecmp.sh"
    q FVE_SPEAKER "$1"
    q FVE_VIP "$VIP"
    q FVE_VPORT "$VPORT"
    q FVE_NS_SWITCH "$NS_SWITCH"
    q FVE_NS_CLIENT "$(ns_of "$NAME" client)"
    q FVE_NS_ROUTER "$(ns_of "$NAME" router)"
    q FVE_CLIENT_IF "cla-$SFX"
    q FVE_CLIENT_SOURCES "$CLIENT_SOURCES"
    q FVE_ROUTER_AS "$ROUTER_AS"
    q FVE_ROUTER_IP "$ROUTER_C"
    q FVE_ROUTER_IP_SERVER "$ROUTER_B"
    q FVE_ROUTER_IP_CLIENT "$ROUTER_A"
    q FVE_FRR_DIR "$RUN/frr"
    q FVE_HOLD_TIME "$HOLD_TIME"
    q FVE_DIRECTORS "dir1 dir2 dir3"
    for d in 1 2 3; do
        q "FVE_NS_DIR$d" "$(ns_of "$NAME" "dir$d")"
        q "FVE_DIR${d}_IP" "${DIR_C[$d]}"
        q "FVE_DIR${d}_IP_SERVER" "${DIR_B[$d]}"
        q "FVE_DIR${d}_AS" "${DIR_AS[$d]}"
        q "FVE_DIR${d}_IFS" "d${d}c-$SFX d${d}b-$SFX"
        q "FVE_DIR${d}_MAC" "$(mac_of "${DIR_C[$d]}")"
    done
    q FVE_RS_NAMES "rs1 rs2 rs3"
    q FVE_RS_IPS "${RS_IP[1]} ${RS_IP[2]} ${RS_IP[3]}"
    for i in 1 2 3; do
        q "FVE_NS_RS$i" "$(ns_of "$NAME" "rs$i")"
        q "FVE_RS${i}_IP" "${RS_IP[$i]}"
    done
    q FVE_LONGCONN "$LONGCONN"
}

# ---------------------------------------------------------------- commands

resolve_name() {
    local n=${1:-${FVE_LAB_NAME:-}} labs
    if [ -n "$n" ]; then norm_name "$n"; return; fi
    labs=$(list_labs)
    [ -n "$labs" ] || die "no lab exists"
    [ "$(echo "$labs" | wc -l)" -eq 1 ] || die "several labs exist, name one: $(echo "$labs" | tr '\n' ' ')"
    echo "$labs"
}

need_lab() { # need_lab NAME: sets NAME and RUN
    NAME=$(resolve_name "$1")
    RUN=$STATE_ROOT/$NAME
    [ -d "$RUN" ] || die "no lab $NAME (is it up?)"
}

dir_num() {
    case $1 in dir1 | dir2 | dir3) echo "${1#dir}" ;; *) die "no director '$1' (dir1 dir2 dir3)" ;; esac
}

cmd_down() {
    local name="" all=0 n
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
        for n in $(list_labs); do log "removing $n"; teardown "$n"; done
        return 0
    fi
    if [ -z "$name" ] && [ -z "${FVE_LAB_NAME:-}" ] && [ -z "$(list_labs)" ]; then
        return 0
    fi
    teardown "$(resolve_name "$name")"
}

cmd_exec() {
    [ $# -ge 3 ] || die "usage: $0 exec NAME ROLE cmd..."
    local name role ns
    name=$(norm_name "$1") role=$2; shift 2
    case " $ROLES " in *" $role "*) ;; *) die "unknown role '$role' ($ROLES)" ;; esac
    ns=$(ns_of "$name" "$role")
    [ -e "/var/run/netns/$ns" ] || die "no namespace $ns (is lab $name up?)"
    exec ip netns exec "$ns" "$@"
}

cmd_vtysh() {
    [ $# -ge 1 ] || die "usage: $0 vtysh NAME [vtysh arguments]"
    need_lab "$1"; shift
    vtysh_run "$@"
}

# A ferrovs configuration for one director: DR, mh with the source port in
# the hash (every director builds the same Maglev table), one worker, both
# interfaces; --sloppy and --bgp add the active-active keywords.
# --kind fullnat: FULLNAT with the local addresses of all three directors
# (LIP above), each in its own server-side VRRP instance: dirN's priority
# 150 on its own, 99 or 98 on the others', so that a dead director's
# address (and with it the replies of its flows) moves to a survivor that
# learnt those flows from the connection sync; `preempt_delay` (default 10)
# is how long a director that comes back waits, learning the flows of the
# address it takes back, before it does (and before it announces the VIP:
# it announces only while it holds a local address). The instances track
# the uplink: a director that cannot reach the clients gives its address up.
# Every director runs both sync daemons (`sync_active_active`, syncid 61).
cmd_ferrovs_conf() {
    [ $# -ge 2 ] || die "usage: $0 ferrovs-conf NAME dirN [--bgp] [--sloppy] [--workdir DIR] [--rs \"1 2 3\"] [--backend B] [--algo mh] [--kind dr|fullnat] [--preempt-delay S] [--persist S]"
    need_lab "$1"
    local d bgp=0 sloppy=0 work i rs="1 2 3" backend="" algo=mh kind=dr pdelay=10 k persist=
    d=$(dir_num "$2"); shift 2
    work=$RUN/dir$d
    while [ $# -gt 0 ]; do
        case $1 in
        --bgp) bgp=1; shift ;;
        --sloppy) sloppy=1; shift ;;
        --workdir) work=${2:-}; shift 2 ;;
        --rs) rs=${2:-}; shift 2 ;;
        --backend) backend=${2:-}; shift 2 ;;
        --algo) algo=${2:-}; shift 2 ;;
        --kind) kind=${2:-}; shift 2 ;;
        --preempt-delay) pdelay=${2:-}; shift 2 ;;
        --persist) persist=${2:-}; shift 2 ;;
        *) die "ferrovs-conf: unknown argument '$1'" ;;
        esac
    done
    case $kind in dr | fullnat) ;; *) die "ferrovs-conf: --kind dr|fullnat" ;; esac
    # shellcheck disable=SC1090
    . "$STATE_ROOT/$NAME.env"
    local sfx ifs
    ifs=$(eval echo "\$FVE_DIR${d}_IFS")
    sfx=${ifs%% *}; sfx=${sfx#d?c-}
    cat <<EOF
# ferrovs on dir$d of lab $NAME (scripts/lab-ecmp.sh ferrovs-conf)
global_defs {
    router_id ferrovs-dir$d
}
ferrovs {
    interface d${d}c-$sfx
    interface d${d}b-$sfx
    workers 1${backend:+
    backend $backend}
    control_socket $work/ctl.sock
    http_listen 127.0.0.1:$((19280 + d))
EOF
    [ $sloppy = 1 ] && echo "    sloppy_tcp on"
    # FULLNAT: both sync daemons always, on the server segment.
    [ "$kind" = fullnat ] && echo "    sync_active_active d${d}b-$sfx id 61"
    if [ $bgp = 1 ]; then
        cat <<EOF
    bgp {
        router_id ${DIR_C[$d]}
        local_as ${DIR_AS[$d]}
        neighbor $ROUTER_C {
            peer_as $ROUTER_AS
            local_address ${DIR_C[$d]}
            hold_time $HOLD_TIME
        }
    }
EOF
    fi
    echo "}"
    if [ "$kind" = fullnat ]; then
        for k in 1 2 3; do
            cat <<EOF
vrrp_instance LIP$k {
    state BACKUP
    interface d${d}b-$sfx
    virtual_router_id $((60 + k))
    priority $([ "$k" = "$d" ] && echo 150 || echo $((100 - (d - k + 3) % 3)))
    advert_int 1
    preempt_delay $pdelay
    track_interface {
        d${d}c-$sfx
    }
    virtual_ipaddress {
        ${LIP[$k]}/$PLEN
    }
}
EOF
        done
        echo "local_address_group LIPS {"
        for k in 1 2 3; do echo "    ${LIP[$k]}"; done
        echo "}"
    fi
    cat <<EOF
virtual_server $VIP $VPORT {
    lb_algo $algo
EOF
    [ "$algo" = mh ] && echo "    mh-port"
    [ -n "$persist" ] && echo "    persistence_timeout $persist"
    if [ "$kind" = fullnat ]; then
        echo "    lb_kind FNAT"
        echo "    laddr_group_name LIPS"
    else
        echo "    lb_kind DR"
    fi
    cat <<EOF
    protocol TCP
EOF
    for i in $rs; do
        case $i in 1 | 2 | 3) ;; *) die "ferrovs-conf: --rs takes numbers of real servers (\"1 2 3\")" ;; esac
        echo "    real_server ${RS_IP[$i]} $VPORT { weight 1 }"
    done
    echo "}"
}

cmd_speaker() {
    [ $# -eq 3 ] || die "usage: $0 speaker NAME dirN start|kill|announce|withdraw"
    need_lab "$1"
    local d
    d=$(dir_num "$2")
    case $3 in
    start) speaker_start "$d" ;;
    kill) speaker_kill "$d" ;;
    announce | withdraw)
        [ -f "$RUN/dir$d/exabgp.cmds" ] || die "no ExaBGP on dir$d (up --speaker exabgp)"
        echo "$3 route $VIP/32 next-hop self" >>"$RUN/dir$d/exabgp.cmds"
        ;;
    *) die "speaker: start|kill|announce|withdraw" ;;
    esac
}

cmd_env() {
    local name
    name=$(resolve_name "${1:-}")
    [ -f "$STATE_ROOT/$name.env" ] || die "no env file for $name"
    cat "$STATE_ROOT/$name.env"
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
    vtysh) cmd_vtysh "$@" ;;
    ferrovs-conf) cmd_ferrovs_conf "$@" ;;
    speaker) cmd_speaker "$@" ;;
    -h | --help | help) usage 0 ;;
    *) die "unknown command '$cmd'" ;;
    esac
}

main "$@"
