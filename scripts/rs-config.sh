#!/usr/bin/env bash
# Configures the host it runs in as an LVS real server for one forwarding
# mode, the way LVS guides set up real servers. Run it in the real server
# itself, or in a network namespace with `ip netns exec NS rs-config.sh ...`.
# Both labs use it: the namespace lab (scripts/lab.sh, setup_rs) and the
# Vagrant lab's real servers (vagrant/provision/rs.sh), so that real servers
# are set up alike everywhere.
#
#   rs-config.sh MODE VIP IFACE [--addr CIDR] [--gw IP] [--route PREFIX=GW]...
#                [--tun-decap auto|kernel|userspace]
#
#   MODE    dr | tun | nat | fullnat
#   VIP     the virtual IP (dr, tun: held locally; nat, fullnat: not used)
#   IFACE   the interface that faces the director
#   --addr CIDR          the real server's own address, put on IFACE
#   --gw IP              default route via IP (dr, tun, fullnat: a router, or
#                        nothing when the clients are on-link; nat: the
#                        director, or the VRRP address the master holds).
#                        Without --gw the default route is left as it is.
#   --route PREFIX=GW    one more route (repeatable); the namespace lab's NAT
#                        real servers reach the client's "direct" address
#                        through the router this way
#   --tun-decap MODE     tun only: who decapsulates IPIP (default auto)
#
# Per mode:
#   dr       arp_ignore=1 arp_announce=2 (all, IFACE, lo), rp_filter=1
#            (all, IFACE), then VIP/32 on lo.
#   tun      arp_ignore=1 arp_announce=2 (all, IFACE, tunl0), rp_filter=0
#            (all, default, IFACE, tunl0), VIP/32 on tunl0. tunl0 is the
#            kernel's ipip fallback device; where the kernel has no ipip
#            (or with --tun-decap userspace) it is a TUN device instead, and
#            the caller must run scripts/lab-ipip-decap.py --dev tunl0 in the
#            same host or namespace. Prints the decapsulation in use, "kernel"
#            or "userspace", on stdout.
#   nat      rp_filter=1 (all, IFACE); the default route (--gw) must point
#            to the director.
#   fullnat  rp_filter=1 (all, IFACE); nothing else: replies go to the
#            director's local addresses, which are on-link.
#
# Nothing else goes to stdout; diagnostics go to stderr, and a failure exits
# non-zero. Running it again with the same arguments changes nothing
# (addresses and routes are replaced, not added twice), so a boot-time unit or
# a second `vagrant provision` can run it again.
set -euo pipefail

PROG=rs-config.sh
die() { echo "$PROG: error: $*" >&2; exit 1; }
usage() {
    sed -n '9,23p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

is_ipv4() {
    local IFS=. a b c d
    [[ $1 =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
    read -r a b c d <<<"$1"
    [ "$a" -le 255 ] && [ "$b" -le 255 ] && [ "$c" -le 255 ] && [ "$d" -le 255 ]
}

[ $# -ge 3 ] || usage
MODE=$1 VIP=$2 IFN=$3
shift 3
ADDR="" GW="" ROUTES=() TUN_DECAP=auto
while [ $# -gt 0 ]; do
    case $1 in
    --addr) ADDR=${2:-}; shift 2 ;;
    --gw) GW=${2:-}; shift 2 ;;
    --route) ROUTES+=("${2:-}"); shift 2 ;;
    --tun-decap) TUN_DECAP=${2:-}; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1'" ;;
    esac
done

case $MODE in dr | tun | nat | fullnat) ;; *) die "MODE must be dr, tun, nat or fullnat, not '$MODE'" ;; esac
is_ipv4 "$VIP" || die "bad VIP '$VIP'"
case $TUN_DECAP in auto | kernel | userspace) ;; *) die "--tun-decap auto|kernel|userspace" ;; esac
[ -z "$GW" ] || is_ipv4 "$GW" || die "bad --gw '$GW'"
if [ -n "$ADDR" ]; then
    if ! is_ipv4 "${ADDR%/*}" || ! [[ $ADDR =~ /([0-9]|[12][0-9]|3[0-2])$ ]]; then
        die "bad --addr '$ADDR' (want A.B.C.D/LEN)"
    fi
fi
for r in "${ROUTES[@]}"; do
    if [[ $r != *=* ]] || ! is_ipv4 "${r#*=}"; then die "bad --route '$r' (want PREFIX=GATEWAY)"; fi
done
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -e "/sys/class/net/$IFN" ] || die "no interface '$IFN' here"

# kernel_tunl0: the kernel's ipip fallback device tunl0 exists here, or can
# be made. Adding an ipip link autoloads the ipip module, whose loading
# creates tunl0 in every namespace (then the add itself fails: it exists).
kernel_tunl0() {
    ip -d link show tunl0 2>/dev/null | grep -q 'link/ipip' && return 0
    ip link add tunl0 type ipip 2>/dev/null || true
    ip -d link show tunl0 2>/dev/null | grep -q 'link/ipip'
}

# tun_tunl0: tunl0 is the TUN device an earlier run of this script made.
tun_tunl0() { ip -d link show tunl0 2>/dev/null | grep -q ' tun type tun '; }

[ -z "$ADDR" ] || ip addr replace "$ADDR" dev "$IFN"

case $MODE in
dr)
    # ARP first, then the VIP: the real server must never answer ARP for
    # or announce the VIP (arp_ignore=1: answer only for addresses of the
    # receiving interface; arp_announce=2: best local source for requests).
    sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        "net.ipv4.conf.$IFN.arp_ignore=1" "net.ipv4.conf.$IFN.arp_announce=2" \
        net.ipv4.conf.lo.arp_ignore=1 net.ipv4.conf.lo.arp_announce=2 \
        net.ipv4.conf.all.rp_filter=1 "net.ipv4.conf.$IFN.rp_filter=1"
    ip addr replace "$VIP/32" dev lo
    ;;
tun)
    sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        "net.ipv4.conf.$IFN.arp_ignore=1" "net.ipv4.conf.$IFN.arp_announce=2" \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "net.ipv4.conf.$IFN.rp_filter=0"
    decap=$TUN_DECAP
    if [ "$decap" != userspace ] && kernel_tunl0; then
        decap=kernel
    elif [ "$decap" = kernel ]; then
        die "--tun-decap kernel: this kernel has no ipip tunnels (CONFIG_NET_IPIP)"
    elif tun_tunl0; then
        decap=userspace # made by an earlier run: keep it
    elif ip link show tunl0 >/dev/null 2>&1; then
        die "--tun-decap userspace: the kernel's ipip tunl0 exists already and would decapsulate too"
    else
        # No ipip in this kernel: a TUN device of the same name plus a
        # userspace decapsulator (lab-ipip-decap.py) that behaves like it.
        decap=userspace
        ip tuntap add dev tunl0 mode tun
    fi
    sysctl -q -w net.ipv4.conf.tunl0.rp_filter=0 \
        net.ipv4.conf.tunl0.arp_ignore=1 net.ipv4.conf.tunl0.arp_announce=2
    ip addr replace "$VIP/32" dev tunl0
    ip link set tunl0 up
    echo "$decap"
    ;;
nat | fullnat)
    sysctl -q -w net.ipv4.conf.all.rp_filter=1 "net.ipv4.conf.$IFN.rp_filter=1"
    ;;
esac

[ -z "$GW" ] || ip route replace default via "$GW"
for r in "${ROUTES[@]}"; do
    ip route replace "${r%%=*}" via "${r#*=}"
done
