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
// Fast path (DR): before a frame to a STEER address goes to a socket, its
// IPv4 TCP/UDP 5-tuple is looked up in `flows`, which the workers fill with
// the DR connections they have seen established (TCP) or confirmed (UDP).
// A hit is forwarded here, as the worker would forward it: the MACs
// rewritten to the real server's next hop, the TTL lowered with an
// incremental header checksum update, then XDP_TX (same interface) or a
// redirect through `tx_ports` (another interface of ferrovs). The worker
// never sees it: no copy into an XDP socket, no skb on transmit. This is
// the split Katran makes (its XDP program forwards flows from an LRU
// connection table and leaves everything else to the kernel); here the
// worker keeps the state machine, so whatever changes a connection's state
// or needs an answer goes to it as before: SYN, FIN and RST segments, TTL 1
// (ICMP time exceeded), IP options, fragments, tagged frames, and frames
// whose TCP/UDP checksum looks like CHECKSUM_PARTIAL (the worker completes
// it; see port/afxdp/mod.rs). The program stamps `last_seen` on the entry
// (the worker's timers read it before expiring the connection) and counts
// packets and bytes per real server in `dest_stats` (harvested into the
// service and server counters).
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
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ADDR_STEER 1
#define ADDR_NAT_SRC 2
#define ADDR_OWN 4

// Indexes of `stats`.
#define ST_STEERED 0
#define ST_PASSED 1
#define ST_NO_SOCKET 2
#define ST_FAST 3
#define ST_MAX 4

// Per-real-server counters of the fast path (DestId → slot).
#define MAX_DESTS 16384

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

// Keep in step with dataplane/src/fastpath.rs (FlowKey, FlowValue).
struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_value {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex; // egress interface
	__u32 dest_id; // the worker's DestId, for dest_stats
	__u32 flags;   // 0: DR (the only mode offloaded so far)
	__u64 last_seen; // bpf_ktime_get_ns() of the last packet forwarded
};

// The client→VIP tuple of offloaded connections. A plain hash, allocated on
// insert: entries are removed by the workers when their connections end,
// never evicted behind their back; when it is full an insert fails and the
// flow simply stays on the slow path. max_entries is set at load.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} flows SEC(".maps");

// Interfaces the fast path may redirect to (ifindex → ifindex).
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct dest_counts {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, struct dest_counts);
} dest_stats SEC(".maps");

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

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

// Forwards an offloaded DR flow's frame; returns -1 to leave it to the
// worker. `ip` is untagged IPv4 right after `eth` (checked by the caller).
static __always_inline int fast_path(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
				     void *end)
{
	struct flow_key k = {};
	__u16 *csum;

	// Options, fragments and TTL 1 are the worker's (the first two are rare,
	// the last needs an ICMP answer).
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)) || ip->ttl <= 1)
		return -1;
	void *l4 = ip + 1;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *t = l4;
		if ((void *)(t + 1) > end)
			return -1;
		// State changes stay with the worker's state machine.
		if (t->syn || t->fin || t->rst)
			return -1;
		k.sport = t->source;
		k.dport = t->dest;
		csum = &t->check;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *u = l4;
		if ((void *)(u + 1) > end)
			return -1;
		k.sport = u->source;
		k.dport = u->dest;
		csum = &u->check;
	} else {
		return -1;
	}
	k.saddr = ip->saddr;
	k.daddr = ip->daddr;
	k.proto = ip->protocol;

	struct flow_value *v = bpf_map_lookup_elem(&flows, &k);
	if (!v)
		return -1;

	// A frame from a local sender on a veth with checksum offload carries
	// only the pseudo-header sum; forwarded as it is, the real server would
	// drop it. The worker completes such checksums.
	__u16 l4len = bpf_ntohs(ip->tot_len) - sizeof(*ip);
	__u32 ph = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) +
		   (ip->daddr >> 16) + bpf_htons(ip->protocol) + bpf_htons(l4len);
	if (*csum == fold(ph))
		return -1;

	__u32 out = v->ifindex;
	int xdp_tx = out == ctx->ingress_ifindex;
	if (!xdp_tx && !bpf_map_lookup_elem(&tx_ports, &out))
		return -1;

	__builtin_memcpy(eth->h_dest, v->dmac, 6);
	__builtin_memcpy(eth->h_source, v->smac, 6);
	// TTL - 1: the header's checksum word (TTL, protocol) drops by 0x0100;
	// the same incremental update as the kernel's ip_decrease_ttl.
	__u32 c = ip->check;
	c += bpf_htons(0x0100);
	ip->check = (__u16)(c + (c >= 0xffff));
	ip->ttl -= 1;

	// Timers read this before expiring the connection. Written at most
	// every 100 ms, so that a flow spread over CPUs does not bounce the line
	// on every frame.
	__u64 now = bpf_ktime_get_ns();
	if (now - v->last_seen > 100000000ULL)
		v->last_seen = now;

	__u32 d = v->dest_id;
	struct dest_counts *dc = bpf_map_lookup_elem(&dest_stats, &d);
	if (dc) {
		dc->packets += 1;
		dc->bytes += bpf_ntohs(ip->tot_len);
	}
	count(ST_FAST);
	if (xdp_tx)
		return XDP_TX;
	return bpf_redirect_map(&tx_ports, out, 0);
}

SEC("xdp")
int ferrovs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__be16 proto;
	int tagged = 0;

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
		tagged = 1;
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
	if (dst_bits & ADDR_STEER) {
		if (!tagged) {
			int r = fast_path(ctx, eth, ip, end);
			if (r >= 0)
				return r;
		}
		return steer(ctx);
	}
	// 224.0.0.0/4 and 255.255.255.255 belong to the kernel (VRRP adverts).
	__u8 first = ((__u8 *)&ip->daddr)[0];
	if (first >= 224)
		return pass();
	if (!(dst_bits & ADDR_OWN) && (addr_bits(ip->saddr) & ADDR_NAT_SRC))
		return steer(ctx);
	return pass();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
