// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
//
// ferrovs' XDP program for the AF_XDP backend: steer to the workers' XDP
// sockets only what the balancer owns, pass everything else to the kernel
// untouched (the director's own SSH, health-check replies, VRRP, routing
// protocols, ARP for its own addresses).
//
// What is steered, per IPv4 frame (untagged or one 802.1Q/802.1ad tag):
//   - frames to an address marked STEER in `addrs` (an active VIP or FULLNAT
//     local address): the traffic ferrovs balances, and FULLNAT replies;
//   - frames from an address marked NAT_SRC (a real server of a NAT service)
//     to an address that is not marked OWN: NAT replies on their way back to
//     clients (LVS NAT: real servers route through the director). A real
//     server's replies to the director's own address (health checks) pass;
//   - ARP whose target is an address marked STEER, so that the dataplane
//     answers for the VIPs it serves; and nothing for an inactive VIP (a VRRP
//     backup), whose address is simply absent.
// The same for IPv6 (`addrs6`, keyed by the 16-byte address): frames to a
// STEER address, NAT66 replies, and neighbour solicitations whose target is
// a STEER address (the dataplane answers NDP for its VIPs, RFC 4861 §7.2.3).
// Neighbour advertisements always pass: the kernel resolves its own
// neighbours with them, and the workers get a copy from a packet socket.
// Broadcast and multicast destinations and everything else pass.
//
// The control plane keeps `addrs` equal to the published snapshot (VRRP
// ownership, reload). `xsks` maps the receive queue to the socket of the
// worker that owns it; a frame for a queue without a socket is counted and
// passed (the kernel drops it: VIPs are not its addresses).
//
// Built by dataplane/build.rs with clang -target bpf; loaded by
// dataplane/src/port/afxdp/steer.rs.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ADDR_STEER 1
#define ADDR_NAT_SRC 2
#define ADDR_OWN 4

// Indexes of `stats`.
#define ST_STEERED 0
#define ST_PASSED 1
#define ST_NO_SOCKET 2
#define ST_MAX 3

#define MAX_QUEUES 256

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// IPv4 address (network order, as in the header) -> ADDR_* bits.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} addrs SEC(".maps");

struct addr6 {
	__u8 a[16];
};

// IPv6 address -> ADDR_* bits.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr6);
	__type(value, __u32);
} addrs6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

static __always_inline void count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &i);
	if (c)
		*c += 1;
}

static __always_inline __u32 addr_bits(__be32 a)
{
	__u32 *v = bpf_map_lookup_elem(&addrs, &a);
	return v ? *v : 0;
}

static __always_inline __u32 addr6_bits(const void *a)
{
	struct addr6 k;
	__builtin_memcpy(&k, a, sizeof(k));
	__u32 *v = bpf_map_lookup_elem(&addrs6, &k);
	return v ? *v : 0;
}

// The start of an ICMPv6 neighbour solicitation (RFC 4861 §4.3).
struct nd_solicit {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be32 reserved;
	__u8 target[16];
};

#define ICMPV6_NS 135

static __always_inline int steer(struct xdp_md *ctx);
static __always_inline int pass(void);

static __always_inline int ipv6(struct xdp_md *ctx, void *l3, void *end)
{
	struct ipv6hdr *ip6 = l3;
	if ((void *)(ip6 + 1) > end)
		return pass();
	__u32 dst_bits = addr6_bits(&ip6->daddr);
	if (dst_bits & ADDR_STEER)
		return steer(ctx);
	// Solicitations go to the target's solicited-node multicast group: what
	// they ask for is the target. No extension header comes before NDP's
	// ICMPv6 in practice; one that does is the kernel's.
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		struct nd_solicit *ns = (void *)(ip6 + 1);
		if ((void *)(ns + 1) <= end && ns->type == ICMPV6_NS &&
		    (addr6_bits(ns->target) & ADDR_STEER))
			return steer(ctx);
	}
	// ff00::/8 belongs to the kernel (VRRP, MLD, NDP of its own).
	if (ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return pass();
	if (!(dst_bits & ADDR_OWN) && (addr6_bits(&ip6->saddr) & ADDR_NAT_SRC))
		return steer(ctx);
	return pass();
}

static __always_inline int pass(void)
{
	count(ST_PASSED);
	return XDP_PASS;
}

static __always_inline int steer(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &q)) {
		count(ST_NO_SOCKET);
		return XDP_PASS;
	}
	count(ST_STEERED);
	return bpf_redirect_map(&xsks, q, XDP_PASS);
}

SEC("xdp")
int ferrovs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return pass();
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		// 802.1Q tag: TCI then the inner ethertype.
		__be16 *tag = l3;
		if ((void *)(tag + 2) > end)
			return pass();
		proto = tag[1];
		l3 = tag + 2;
	}

	if (proto == bpf_htons(ETH_P_ARP)) {
		struct arp_ipv4 *a = l3;
		if ((void *)(a + 1) > end)
			return pass();
		if (a->ptype != bpf_htons(ETH_P_IP) || a->plen != 4)
			return pass();
		if (addr_bits(a->tpa) & ADDR_STEER)
			return steer(ctx);
		return pass();
	}
	if (proto == bpf_htons(ETH_P_IPV6))
		return ipv6(ctx, l3, end);
	if (proto != bpf_htons(ETH_P_IP))
		return pass();

	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > end)
		return pass();
	__u32 dst_bits = addr_bits(ip->daddr);
	if (dst_bits & ADDR_STEER)
		return steer(ctx);
	// 224.0.0.0/4 and 255.255.255.255 belong to the kernel (VRRP adverts).
	__u8 first = ((__u8 *)&ip->daddr)[0];
	if (first >= 224)
		return pass();
	if (!(dst_bits & ADDR_OWN) && (addr_bits(ip->saddr) & ADDR_NAT_SRC))
		return steer(ctx);
	return pass();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
