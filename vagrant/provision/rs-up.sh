#!/usr/bin/env bash
# Boot-time configuration of real server N of the Vagrant lab (the unit
# ferrovs-lab-rs.service runs it): finds the lab NIC by its MAC and runs the
# namespace lab's own real-server script, scripts/rs-config.sh, on it.
#
#   rs-up.sh N
#
# Mode dr: the VIP on lo with arp_ignore=1 / arp_announce=2, rp_filter=1. That
# is also all FULLNAT needs (nothing special), so one configuration serves
# both virtual services. No --gw: the client and the directors' local
# addresses are on-link, and the default route stays on the management NIC.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=rs-up.sh
LAB_ROOT=${LAB_ROOT:-/vagrant}
# shellcheck source=lib.sh
. "$LAB_ROOT/vagrant/provision/lib.sh"
need_root
[ $# -eq 1 ] || die "usage: $PROG N"
case $1 in 1) rip=$LAB_RS1 ;; 2) rip=$LAB_RS2 ;; 3) rip=$LAB_RS3 ;; *) die "real server number 1, 2 or 3" ;; esac

mac=$(mac_of "$rip")
ifn=$(wait_iface_of_mac "$mac" 60) || die "no NIC with MAC $mac (the lab NIC) after 60 s"
# No IPv6 on the lab link (no DAD, router solicitations or MLD in captures).
sysctl -q -w "net.ipv6.conf.$ifn.disable_ipv6=1"
ip link set dev "$ifn" up
"$LAB_ROOT/scripts/rs-config.sh" dr "$LAB_VIP" "$ifn" --addr "$rip/$LAB_PLEN"
log "rs$1: $rip/$LAB_PLEN on $ifn, VIP $LAB_VIP on lo (DR; FULLNAT needs nothing more)"
