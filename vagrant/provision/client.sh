#!/usr/bin/env bash
# Provisions the client of the Vagrant lab (run by the Vagrantfile, as root,
# from the synced folder /vagrant). Vagrant itself puts the client's lab
# address (LAB_CLIENT) on the lab NIC; this installs the traffic tools and
# checks that the real servers answer on the lab network.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=client.sh
LAB_ROOT=${LAB_ROOT:-/vagrant}
# shellcheck source=lib.sh
. "$LAB_ROOT/vagrant/provision/lib.sh"
need_root

apt_install iproute2 procps ethtool curl wrk python3 tcpdump

ifn=$(wait_iface_of_mac "$(mac_of "$LAB_CLIENT")" 60) || die "no lab NIC (MAC $(mac_of "$LAB_CLIENT"))"
ip -4 -o addr show dev "$ifn" | grep -q " $LAB_CLIENT/" || die "the lab NIC $ifn does not hold $LAB_CLIENT"

# The real servers may come up after the client (`vagrant up` order, or a
# single `vagrant up client`): report, do not fail.
for rip in "$LAB_RS1" "$LAB_RS2" "$LAB_RS3"; do
    if got=$(curl -sS --max-time 3 "http://$rip:$LAB_DR_PORT/" 2>&1); then
        log "real server $rip answers: $got"
    else
        log "real server $rip does not answer (yet): $got"
    fi
done
log "client ready: $LAB_CLIENT on $ifn; try: curl http://$LAB_VIP/ (DR), curl http://$LAB_VIP:$LAB_FNAT_PORT/ (FULLNAT)"
