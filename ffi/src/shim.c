/* What bindgen cannot wrap. `rte_errno` is a macro over a per-lcore (that
 * is, thread-local) variable, RTE_PER_LCORE(_rte_errno); Rust cannot name a
 * C thread-local portably, so read it here. */
#include <rte_errno.h>

int ferrovs_rte_errno(void)
{
	return rte_errno;
}
