#!/usr/bin/env bash
# Readies DPDK on a director of the Vagrant lab before ferrovs starts
# (ExecStartPre of ferrovs.service; director.sh runs it once too). Idempotent.
#
#   - hugepages: at least LAB_HUGEPAGES (512) x 2 MiB, as /etc/sysctl.d asks
#     at boot (vm.nr_hugepages); hugetlbfs is mounted by systemd on
#     /dev/hugepages;
#   - vfio-pci, with vfio's enable_unsafe_noiommu_mode=1: VMs usually have no
#     (virtual) IOMMU; where one is present, vfio uses it and this is unused;
#   - the lab NIC (PCI address in /etc/ferrovs/lab-nic, found by director.sh
#     from the NIC's MAC) unbound from virtio-pci's netdev driver and bound to
#     vfio-pci with dpdk-devbind.py. The virtio PMD drives it from there.
set -euo pipefail
PROG=director-dpdk.sh
LAB_HUGEPAGES=${LAB_HUGEPAGES:-512}
[ "$(id -u)" -eq 0 ] || { echo "$PROG: must run as root" >&2; exit 1; }
[ -r /etc/ferrovs/lab-nic ] || { echo "$PROG: no /etc/ferrovs/lab-nic: run vagrant/provision/director.sh first" >&2; exit 1; }
# shellcheck source=/dev/null
. /etc/ferrovs/lab-nic   # PCI=... MAC=...
log() { echo "$PROG: $*" >&2; }

have=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)
if [ "$have" -lt "$LAB_HUGEPAGES" ]; then
    sysctl -q -w vm.nr_hugepages="$LAB_HUGEPAGES"
    have=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)
    [ "$have" -ge "$LAB_HUGEPAGES" ] ||
        { log "only $have of $LAB_HUGEPAGES hugepages of 2 MiB could be reserved (memory too fragmented or too small: reboot the VM)"; exit 1; }
fi
grep -qs ' hugetlbfs ' /proc/mounts || { mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages; }

# /etc/modprobe.d/ferrovs-lab-vfio.conf (director.sh) sets the option when
# vfio loads; if it is loaded already, the parameter is writable.
modprobe vfio-pci
noiommu=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode
if [ -w "$noiommu" ] && [ "$(cat "$noiommu")" != Y ]; then echo 1 >"$noiommu"; fi

dev=/sys/bus/pci/devices/$PCI
[ -e "$dev" ] || { log "no PCI device $PCI (the lab NIC)"; exit 1; }
driver() { if [ -e "$1/driver" ]; then basename "$(readlink "$1/driver")"; else echo none; fi; }
if [ "$(driver "$dev")" != vfio-pci ]; then
    # Its netdev, if it has one: down, or dpdk-devbind.py may call it active.
    for n in "$dev"/net/* "$dev"/virtio*/net/*; do
        [ -e "$n" ] && ip link set dev "${n##*/}" down
    done
    dpdk-devbind.py --bind=vfio-pci "$PCI"
fi
[ "$(driver "$dev")" = vfio-pci ] || { log "$PCI is not bound to vfio-pci: $(dpdk-devbind.py --status-dev net 2>&1 | grep -F "$PCI")"; exit 1; }
log "$PCI (MAC $MAC) on vfio-pci; $have hugepages of 2 MiB"
