#!/usr/bin/env bash
# Gives a director of the Vagrant lab its own address once ferrovs runs
# (ExecStartPost of ferrovs.service):
#
#   director-tap.sh N
#
# With the DPDK backend the kernel no longer has the lab NIC: ferrovs makes a
# TAP exception interface named after its `interface` (fvs0) with the NIC's
# MAC, and hands the kernel what is not load-balanced (ARP and traffic for
# the director's own address: VRRP, health-check replies, SSH). The
# director's address and the lab subnet's route go on that TAP. This waits
# for fvs0 (ferrovs makes it after the EAL is up), then sets it up.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=director-tap.sh
LAB_ROOT=${LAB_ROOT:-/vagrant}
# shellcheck source=lib.sh
. "$LAB_ROOT/vagrant/provision/lib.sh"
TAP=${LAB_TAP:-fvs0}
WAIT=${LAB_TAP_WAIT:-90}
case ${1:-} in 1) self=$LAB_DIRECTOR1 ;; 2) self=$LAB_DIRECTOR2 ;; *) die "usage: $PROG 1|2" ;; esac

for _ in $(seq 1 $((WAIT * 5))); do
    [ -e "/sys/class/net/$TAP" ] && break
    sleep 0.2
done
[ -e "/sys/class/net/$TAP" ] || die "ferrovs made no $TAP in $WAIT s (journalctl -u ferrovs)"

# As the namespace lab's directors: no IPv6 on lab links, no rp_filter, and
# the kernel never forwards (ferrovs does).
sysctl -q -w "net.ipv6.conf.$TAP.disable_ipv6=1" "net.ipv4.conf.$TAP.rp_filter=0" net.ipv4.ip_forward=0
ip link set dev "$TAP" up
ip addr replace "$self/$LAB_PLEN" dev "$TAP"
mac=$(cat "/sys/class/net/$TAP/address")
[ "$mac" = "$(mac_of "$self")" ] || log "warning: $TAP has MAC $mac, the lab NIC has $(mac_of "$self")"
log "$self/$LAB_PLEN on $TAP ($mac)"
