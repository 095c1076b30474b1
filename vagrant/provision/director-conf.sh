#!/usr/bin/env bash
# Prints the keepalived.conf of one director of the Vagrant lab:
#
#   director-conf.sh N PCI        N: 1 or 2; PCI: the lab NIC (0000:00:06.0)
#
# ferrovs owns the lab NIC through DPDK's virtio PMD and makes a TAP exception
# interface, fvs0, carrying the NIC's MAC: the director's own address goes on
# fvs0 (director-tap.sh), and VRRP, health checks and SSH to that address use
# it. director1 is the VRRP master (priority 150), director2 the backup (100).
# One VIP with two virtual services over the three real servers:
#   VIP:LAB_DR_PORT    DR       (real servers hold the VIP on lo)
#   VIP:LAB_FNAT_PORT  FULLNAT  (local addresses per director: LAB_LIPSn)
# VRRP is unicast between the directors' own addresses: it needs nothing of
# the DPDK port but unicast to its own MAC.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=director-conf.sh
LAB_ROOT=${LAB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=lib.sh
. "$LAB_ROOT/vagrant/provision/lib.sh"

[ $# -eq 2 ] || die "usage: $PROG N PCI"
n=$1 pci=$2
case $n in
1) self=$LAB_DIRECTOR1 peer=$LAB_DIRECTOR2 lips=$LAB_LIPS1 state=MASTER prio=150 ;;
2) self=$LAB_DIRECTOR2 peer=$LAB_DIRECTOR1 lips=$LAB_LIPS2 state=BACKUP prio=100 ;;
*) die "director number must be 1 or 2, not '$n'" ;;
esac
[[ $pci =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || die "bad PCI address '$pci'"

real_servers() {   # real_servers PORT
    local ip
    for ip in "$LAB_RS1" "$LAB_RS2" "$LAB_RS3"; do
        cat <<EOF
    real_server $ip $1 {
        weight 1
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 2
            retry 1
            delay_before_retry 1
        }
    }
EOF
    done
}

cat <<EOF
! ferrovs on director$n of the Vagrant lab (vagrant/provision/director-conf.sh
! wrote this; vagrant/lab.env has the addresses). keepalived.conf syntax.

global_defs {
    router_id FERROVS_LAB_D$n
}

ferrovs {
    backend dpdk
    interface fvs0
    workers 1
    dpdk {
        ! EAL lcores 0-1; -a allows the lab NIC only, so it is the one
        ! DPDK port and fvs0 stands for it
        eal_args "-l 0-1 -a $pci"
    }
    conn_table_size 262144
}

local_address_group LAG_D$n {
    $lips
}

vrrp_instance VI_LAB {
    state $state
    interface fvs0
    virtual_router_id $LAB_VRID
    priority $prio
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass ferrovs
    }
    unicast_src_ip $self
    unicast_peer {
        $peer
    }
    virtual_ipaddress {
        $LAB_VIP/32
    }
}

virtual_server $LAB_VIP $LAB_DR_PORT {
    delay_loop 3
    lb_algo rr
    lb_kind DR
    protocol TCP
$(real_servers "$LAB_DR_PORT")
}

virtual_server $LAB_VIP $LAB_FNAT_PORT {
    delay_loop 3
    lb_algo rr
    lb_kind FNAT
    laddr_group_name LAG_D$n
    protocol TCP
$(real_servers "$LAB_FNAT_PORT")
}
EOF
