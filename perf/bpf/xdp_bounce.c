// SPDX-License-Identifier: Apache-2.0
// perf/veth_pps.sh's I/O ceiling: bounce every frame back out of the
// interface it came in on (XDP_TX), source and destination MACs swapped.
// Nothing else: no parsing beyond the Ethernet header, no maps.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_bounce(struct xdp_md *ctx)
{
	unsigned char *d = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	unsigned char t[6];

	if (d + 14 > end)
		return XDP_DROP;
	__builtin_memcpy(t, d, 6);
	__builtin_memcpy(d, d + 6, 6);
	__builtin_memcpy(d + 6, t, 6);
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
