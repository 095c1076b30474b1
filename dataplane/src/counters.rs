//! Per-worker counters: what was received, sent, handed over, created,
//! expired, and every drop by its reason.

use crate::stats::Counter;

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// Why a packet was not forwarded.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Stable name for metrics and logs.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    Truncated => "truncated": "Frame shorter than its headers.",
    BadIpVersion => "bad_ip_version": "IPv4 ethertype with another IP version.",
    BadIhl => "bad_ihl": "IPv4 header length below 20 bytes.",
    BadTotalLen => "bad_total_len": "IPv4 total length inconsistent with the frame.",
    BadIpChecksum => "bad_ip_checksum": "IPv4 header checksum wrong.",
    BadL4Header => "bad_l4_header": "TCP/UDP header truncated or with a bad data offset.",
    Fragment => "fragment": "IPv4 fragment of a protocol not forwarded in fragments (ICMP and others; UDP and TCP fragments are, frag.rs), or a TCP fragment of a SYN-proxied connection still waiting for its server.",
    FragTiny => "frag_tiny": "IPv4 first fragment too short to hold its whole UDP header (RFC 1858, RFC 3128: the tiny fragment attack).",
    FragBad => "frag_bad": "IPv4 fragment past 65535 bytes, not the last and not a multiple of 8 bytes, disagreeing with its datagram's last fragment, overlapping another fragment of its datagram (which gives the datagram up, as Linux does), or of a datagram in too many pieces.",
    FragDuplicate => "frag_duplicate": "IPv4 fragment whose bytes were already forwarded, or of a datagram already complete.",
    FragOrphan => "frag_orphan": "IPv4 later fragment whose first fragment found no connection (it was itself dropped, counted under its own reason).",
    FragHoldFull => "frag_hold_full": "IPv4 fragment that came before its first with no room to hold it (48 per datagram, 256 per worker).",
    FragTimeout => "frag_timeout": "IPv4 fragment held for a first fragment that did not come within 3 s.",
    FragEvicted => "frag_evicted": "IPv4 fragment held for a datagram whose entry was evicted, the oldest first, to make room for a new datagram.",
    TtlExceeded => "ttl_exceeded": "Packet that would leave with TTL (hop limit) 0: dropped and, as Linux's ip_forward and IPVS's decrement_ttl do, answered with ICMP time exceeded (rate-limited).",
    MartianSource => "martian_source": "Source no host may use (0/8, 127/8, multicast, class E, 255.255.255.255; ::, ::1, ff00::/8) or an address of the director's own: dropped before scheduling, as Linux's ip_route_input_slow / ip6_rcv_core drop martians before IPVS sees them.",
    NotOurs => "not_ours": "Destination is neither an active VIP, a local address nor a tracked reply: never relayed.",
    VipInactive => "vip_inactive": "VIP held by the other director (VRRP backup).",
    NoService => "no_service": "No virtual service for this protocol and port.",
    NoConnection => "no_connection": "TCP segment without SYN and without a connection.",
    NoDest => "no_dest": "No available real server.",
    ConnTableFull => "conn_table_full": "Connection table full of established and closing connections (nothing half-open or unconfirmed to evict): new flow refused.",
    Addrs6PoolFull => "addrs6_pool_full": "New IPv6 flow refused: its worker's IPv6 connections already name as many distinct VIP, server and local addresses as its pool holds (twice what the configuration names, at least 4096, at most 65535; conn/addr_pool.rs).",
    LaddrExhausted => "laddr_exhausted": "No free FULLNAT local port.",
    NoRoute => "no_route": "No route to the next hop.",
    NeighFull => "neigh_full": "Neighbour table or its pending queue full.",
    NeighUnresolved => "neigh_unresolved": "Next hop did not answer ARP.",
    NeighRefused => "neigh_refused": "ARP/NDP that may not update the neighbour cache: a broadcast, multicast or zero sender MAC, a martian or own sender address, another MAC within the 1 s lock time, or a full cache with nothing to evict.",
    TxFull => "tx_full": "Transmit queue full.",
    HandoverFull => "handover_full": "Ring to the owning worker full.",
    NoBuffer => "no_buffer": "No packet buffer for a generated packet.",
    Ipv6 => "ipv6": "IPv6 header malformed: another IP version under the IPv6 ethertype, or a payload length the frame does not hold.",
    Ipv6NotConfigured => "ipv6_not_configured": "IPv6 frame on a director with no IPv6 address, VIP or service: left to the kernel (counted here without an exception path).",
    Ipv6ExtHeaders => "ipv6_ext_headers": "IPv6 extension headers refused: more than eight, one running past the packet, or Hop-by-Hop not first (RFC 8200 §4.1).",
    Ipv6Routing => "ipv6_routing_header": "IPv6 Routing header of type 0 (RFC 5095) or with segments left: the director is not the packet's final destination.",
    Ipv6Fragment => "ipv6_fragment": "IPv6 fragment of a protocol not forwarded in fragments (ICMPv6 and others; TCP and UDP fragments are, frag.rs).",
    NdpInvalid => "ndp_invalid": "Neighbour Discovery message that fails RFC 4861 §7.1 validation (hop limit not 255, checksum, length, options).",
    NdpIgnored => "ndp_ignored": "Neighbour solicitation not for an active address of ours, or an advertisement nobody asked for.",
    Nat64Untranslatable => "nat64_untranslatable": "NAT64: a packet RFC 7915 does not translate here (a fragment, an ICMP type without an equivalent).",
    OtherEthertype => "other_ethertype": "Neither IPv4, IPv6 nor ARP.",
    VlanTagged => "vlan_tagged": "Frame with an 802.1Q/802.1ad tag (VLAN id not 0) on an untagged port: left to the kernel (counted here without an exception path), never balanced.",
    OtherHost => "other_host": "Unicast frame for another host's MAC (Linux's PACKET_OTHERHOST): a switch flooding, or a promiscuous port.",
    UnsupportedProto => "unsupported_proto": "IP protocol not balanced (not TCP, UDP or ICMP).",
    IcmpUnmatched => "icmp_unmatched": "ICMP to a VIP that is neither an echo nor an error about a tracked flow.",
    ArpIgnored => "arp_ignored": "ARP not for an active address of ours.",
    TooBig => "too_big": "Packet too big for the tunnel with DF set (ICMP sent back).",
    ToKernel => "to_kernel": "Traffic for the director itself, left to the kernel.",
    SynproxyBadCookie => "synproxy_bad_cookie": "SYN proxy: an ACK without a connection whose cookie is wrong or expired (nothing created).",
    SynproxyMartian => "synproxy_martian": "SYN proxy: SYN from a source no SYN-ACK may go to (0/8, loopback, multicast, broadcast, an address of the director's own); a guard behind martian_source, which drops these first in every mode.",
    SynproxyEarly => "synproxy_early": "SYN proxy: client segment that arrived before the real server's handshake completed and found no free hold slot, or waited too long (the client retransmits).",
}

pub const NUM_DROP_REASONS: usize = DropReason::ALL.len();

/// One counter per [`DropReason`] (a newtype only because `Default` is not
/// derived for arrays longer than 32).
#[derive(Debug)]
pub struct Drops(pub [Counter; NUM_DROP_REASONS]);

impl Default for Drops {
    fn default() -> Drops {
        Drops(std::array::from_fn(|_| Counter::default()))
    }
}

impl std::ops::Deref for Drops {
    type Target = [Counter; NUM_DROP_REASONS];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// One worker's counters. The worker is the only writer.
#[derive(Default, Debug)]
pub struct WorkerCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub drops: Drops,
    /// Packets this worker passed to their owner.
    pub handover_out: Counter,
    /// Packets this worker received from another worker.
    pub handover_in: Counter,
    /// Frames passed to the kernel's exception interface, and frames the
    /// kernel sent out through it (DPDK only).
    pub kernel_out: Counter,
    pub kernel_in: Counter,
    pub conns_created: Counter,
    pub conns_expired: Counter,
    pub conns_active: Counter,
    /// Gauges the worker refreshes between bursts: neighbour entries and
    /// packets waiting for ARP.
    pub neigh_entries: Counter,
    pub neigh_queued: Counter,
    /// FULLNAT local ports held by the worker's connections (a gauge).
    pub laddr_ports_in_use: Counter,
    pub templates_full: Counter,
    /// Connections evicted to make room for a new one in a full table:
    /// half-open TCP, unconfirmed UDP (oldest first).
    pub evicted_tcp_half_open: Counter,
    pub evicted_udp_unconfirmed: Counter,
    /// Evicted half-open connections brought back by the client's next
    /// segment (their ghost, `conn::ghost`).
    pub conns_revived: Counter,
    /// Connections made for a mid-flow TCP segment under `sloppy_tcp`
    /// (a flow another director started, behind ECMP).
    pub conns_picked_up: Counter,
    /// Client segments that would have established a NAT/FULLNAT
    /// connection under pressure before the real server answered (IPVS
    /// secure_tcp), left half-open.
    pub secure_tcp_held: Counter,
    /// Gauges of the connection table: eviction candidates in it, its
    /// capacity, whether it is under pressure (0/1); and, as counters, the
    /// times pressure started and the candidates the eviction ring gave up
    /// (copied from the table).
    pub conns_unconfirmed: Counter,
    pub conn_capacity: Counter,
    pub conn_pressure: Counter,
    pub conn_pressure_entered: Counter,
    pub conns_untracked: Counter,
    /// SYN proxy (`fwd/synproxy.rs`): SYN-ACKs with a cookie sent, client
    /// ACKs whose cookie validated (a connection and a SYN to the real
    /// server each) or failed, real-server handshakes completed and
    /// refused (a RST passed on to the client), and client segments that
    /// came before the real server's handshake: held in the worker's
    /// bounded buffer, released when it completed, dropped.
    pub synproxy_cookies_sent: Counter,
    pub synproxy_cookies_validated: Counter,
    pub synproxy_cookies_failed: Counter,
    pub synproxy_rs_established: Counter,
    pub synproxy_rs_refused: Counter,
    /// SYNs sent to a real server again because the client retransmitted
    /// a held segment.
    pub synproxy_syn_retransmitted: Counter,
    pub synproxy_early_held: Counter,
    pub synproxy_early_released: Counter,
    pub synproxy_early_dropped: Counter,
    pub arp_replies: Counter,
    pub arp_requests: Counter,
    /// Neighbour advertisements sent (answers to solicitations for our
    /// IPv6 addresses) and solicitations sent (resolving next hops).
    pub ndp_adverts: Counter,
    pub ndp_solicits: Counter,
    pub icmp_translated: Counter,
    pub fragments_sent: Counter,
    /// IPv4 fragments (frag.rs): datagrams tracked, fragments passed on
    /// to forwarding (first and later ones; what becomes of them is
    /// counted as of any packet), later fragments held for their first
    /// and released when it came, entries given up incomplete when they
    /// timed out or were evicted to make room, fragments passed to the
    /// next worker looking for their connection (`chain_fragment`).
    pub frag_datagrams: Counter,
    pub frag_forwarded: Counter,
    pub frag_held: Counter,
    pub frag_released: Counter,
    pub frag_expired: Counter,
    pub frag_evicted: Counter,
    pub frag_chained: Counter,
    /// XDP fast path (`fastpath`): DR connections offered to the XDP
    /// program's flow map and taken back, offers the map refused (full),
    /// and timer firings that found the program still forwarding the flow.
    pub fast_offloaded: Counter,
    pub fast_removed: Counter,
    pub fast_refused: Counter,
    pub fast_kept: Counter,
    /// Connection sync (`sync.rs`): records this worker put in its ring
    /// as a master, records a full ring refused, and received connections
    /// and templates installed or refused (no such service or real server,
    /// a FULLNAT local address unknown or in use, a full table).
    pub sync_recorded: Counter,
    pub sync_ring_full: Counter,
    pub sync_installed: Counter,
    pub sync_refused: Counter,
    /// TCP segments without a connection passed to the next worker
    /// looking for a synced one (`SyncShared::holds_installed`).
    pub sync_chained: Counter,
    /// Polls that found packets / polls that found none.
    pub busy_polls: Counter,
    pub idle_polls: Counter,
}

impl WorkerCounters {
    #[inline(always)]
    pub fn drop(&self, r: DropReason) {
        self.drops[r as usize].inc();
    }
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize].get()
    }
}
