#!/usr/bin/env bash
# The appliance's end-to-end tests with `backend dpdk`: DPDK owns the
# director's veths through net_af_packet vdevs, the kernel keeps the
# director's own traffic on the exception TAPs. See tests/e2e_appliance.sh.
#
#   tests/e2e_dpdk.sh [dr nat fullnat tun]     (default: all four)
BACKEND=dpdk exec "$(dirname "$0")/e2e_appliance.sh" "$@"
