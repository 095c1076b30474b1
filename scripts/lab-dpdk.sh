# The lab director's veths given to DPDK as a NIC is bound to vfio-pci,
# sourced by what runs the DPDK backend in the lab (tests/e2e_appliance.sh,
# tests/e2e_upgrade.sh, perf/lab_bench.sh, perf/upgrade_gap.sh). Reads the
# lab's variables (FVS_*, from `scripts/lab.sh up`).
#
#   dpdk_take_nics [--mac]  before ferrovs starts: no address, ARP or IPv6
#                           left to the kernel on the director's veths
#   dpdk_addresses          once ferrovs has made its exception TAPs: the
#                           director's addresses and default route on fvs0
#                           and fvs1, as ifupdown would put them
#   dpdk_give_back          the veths back to the kernel, as the lab made
#                           them
#
# The kernel would still take frames for a veth's MAC (Linux accepts any
# local address on any interface) and answer the director's traffic a
# second time. DPDK reads the MAC when it probes the port and receives in
# promiscuous mode, so the kernel's side takes another MAC and sees nothing
# but broadcast: by default in dpdk_addresses, after DPDK has probed; with
# --mac at once, so that every process that probes the port (an upgrade's
# new one) reads the same MAC as the first.

DPDK_MAC_AT_TAKE=""

dpdk_in_director() { ip netns exec "$FVS_NS_DIRECTOR" "$@"; }

dpdk_kernel_macs() {
    local ifn k=0
    for ifn in $FVS_DIRECTOR_IFS; do
        k=$((k + 1))
        dpdk_in_director ip link set dev "$ifn" address "02:fe:00:00:00:0$k"
    done
}

dpdk_take_nics() {
    local ifn
    for ifn in $FVS_DIRECTOR_IFS; do
        dpdk_in_director ip addr flush dev "$ifn"
        dpdk_in_director ip link set dev "$ifn" arp off
        dpdk_in_director sysctl -q -w "net.ipv6.conf.$ifn.disable_ipv6=1"
    done
    DPDK_MAC_AT_TAKE=""
    if [ "${1:-}" = --mac ]; then
        DPDK_MAC_AT_TAKE=1
        dpdk_kernel_macs
    fi
}

dpdk_addresses() {
    local plen=${FVS_CLIENT_NET#*/} i
    # Fine steps: perf/upgrade_gap.sh times an upgrade with this in it.
    for i in $(seq 1000); do
        dpdk_in_director ip link show fvs1 >/dev/null 2>&1 && break
        sleep 0.01
    done
    [ -n "$DPDK_MAC_AT_TAKE" ] || dpdk_kernel_macs
    dpdk_in_director ip addr replace "$FVS_DIRECTOR_IP_CLIENT/$plen" dev fvs0 &&
        dpdk_in_director ip addr replace "$FVS_DIRECTOR_IP_SERVER/$plen" dev fvs1 &&
        dpdk_in_director ip route replace default via "$FVS_ROUTER_IP_CLIENT" dev fvs0
}

dpdk_give_back() {
    local plen=${FVS_CLIENT_NET#*/} ifn
    dpdk_in_director ip link set dev "$FVS_DIRECTOR_IF_CLIENT" address "$FVS_DIRECTOR_MAC_CLIENT" arp on
    dpdk_in_director ip link set dev "$FVS_DIRECTOR_IF_SERVER" address "$FVS_DIRECTOR_MAC_SERVER" arp on
    for ifn in $FVS_DIRECTOR_IFS; do
        dpdk_in_director sysctl -q -w "net.ipv6.conf.$ifn.disable_ipv6=0"
    done
    dpdk_in_director ip addr replace "$FVS_DIRECTOR_IP_CLIENT/$plen" dev "$FVS_DIRECTOR_IF_CLIENT"
    dpdk_in_director ip addr replace "$FVS_DIRECTOR_IP_SERVER/$plen" dev "$FVS_DIRECTOR_IF_SERVER"
    dpdk_in_director ip route replace default via "$FVS_ROUTER_IP_CLIENT" dev "$FVS_DIRECTOR_IF_CLIENT"
}
