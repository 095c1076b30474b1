// SPDX-License-Identifier: Apache-2.0
// perf/veth_pps.sh's sink: drop IPv4 frames at once (the veth counts them
// in rx_packets first), so the sink's own stack costs no CPU the director
// could use; pass everything else (ARP: the director resolves the sink).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	unsigned char *d = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	if (d + 14 > end)
		return XDP_PASS;
	if (d[12] == 0x08 && d[13] == 0x00)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
