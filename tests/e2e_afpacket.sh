#!/usr/bin/env bash
# The appliance's end-to-end tests with `backend afpacket` (the fallback for
# kernels without AF_XDP). See tests/e2e_appliance.sh.
#
#   tests/e2e_afpacket.sh [dr nat fullnat tun]     (default: all four)
BACKEND=afpacket exec "$(dirname "$0")/e2e_appliance.sh" "$@"
