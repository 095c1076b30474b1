/* The DPDK headers ferrovs binds (bindgen input, and the include of the
 * generated static-function wrappers). rte_config.h comes first through the
 * `-include rte_config.h` flag of `pkg-config --cflags libdpdk`. */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <rte_bus_vdev.h>
#include <rte_flow.h>

/* ffi/src/shim.c */
int ferrovs_rte_errno(void);
