//! One tracked connection: 64 bytes, one cache line.

use super::state::TcpState;
use crate::service::{DestId, FwdMethod, ServiceId};

pub const NIL: u32 = u32::MAX;

/// Counted as ActiveConn while clear (IPVS `IP_VS_CONN_F_INACTIVE`).
pub const F_INACTIVE: u8 = 0x01;
/// Indexed by its reply tuple too (NAT and FULLNAT).
pub const F_OUT_INDEXED: u8 = 0x02;
/// Holds a reference on a persistence template.
pub const F_TEMPLATE_REF: u8 = 0x04;
/// NAT/FULLNAT: a packet from the real server has passed (for TCP, its
/// SYN-ACK: IPVS secure_tcp's condition for ESTABLISHED under pressure).
pub const F_REPLIED: u8 = 0x08;
/// UDP: the flow came back (a second client packet, or a second reply), so
/// it is no longer an eviction candidate.
pub const F_CONFIRMED: u8 = 0x10;
/// TCP: a SYN-proxied connection (`fwd/synproxy.rs`). TCP never uses
/// [`F_CONFIRMED`], so the bit is shared. Such a connection is made only
/// after the client's ACK carried a valid cookie (no spoofed source makes
/// one), so it is never an eviction candidate and `ring_seq` is free to
/// hold its sequence numbers: the cookie (the director's ISN) until the
/// real server's SYN-ACK arrives (`F_REPLIED` clear: the director is
/// still waiting for it), then the delta `rs_isn - cookie`. The high
/// nibble of `state` holds the server's window scale (or
/// `synproxy::NO_RESCALE`).
pub const F_SYNPROXY: u8 = F_CONFIRMED;
/// Filed in the table's ring of eviction candidates (half-open TCP,
/// unconfirmed UDP) under the ticket `ring_seq`.
pub const F_EVICTABLE: u8 = 0x20;
/// This connection created its persistence template (a fresh one): if it
/// is evicted half-open, the template dies with it (`F_TEMPLATE_REF` too).
pub const F_TEMPLATE_FRESH: u8 = 0x40;
/// Slot is in use (free slots chain through `next`).
pub const F_USED: u8 = 0x80;

/// A connection as IPVS tracks it: client, virtual, local (FULLNAT) and
/// destination addresses. Addresses are kept in network byte order.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Conn {
    pub caddr: [u8; 4],
    pub vaddr: [u8; 4],
    pub daddr: [u8; 4],
    /// FULLNAT: the local address; NAT: the client address (so that the
    /// reply tuple is always (daddr, dport) → (laddr, lport)).
    pub laddr: [u8; 4],
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub lport: u16,
    pub proto: u8,
    pub state: u8,
    pub fwd: FwdMethod,
    pub flags: u8,
    pub dest_id: DestId,
    pub svc_id: ServiceId,
    /// Current timeout in seconds (depends on the state).
    pub timeout_s: u32,
    /// Expiry, in wheel ticks.
    pub expires: u32,
    /// Tick of the wheel slot this entry sits in (≤ `expires` lets the wheel
    /// extend timeouts lazily without moving the entry).
    pub slot_at: u32,
    pub next: u32,
    pub prev: u32,
    /// Persistence template slot, when `F_TEMPLATE_REF`.
    pub tmpl: u32,
    /// Ticket of the entry's place in the eviction ring, when `F_EVICTABLE`;
    /// with `F_SYNPROXY` (never evictable) the cookie, then the sequence
    /// delta ([`F_SYNPROXY`]).
    pub ring_seq: u32,
}

const _: () = assert!(std::mem::size_of::<Conn>() == 64);

impl Conn {
    pub const EMPTY: Conn = Conn {
        caddr: [0; 4],
        vaddr: [0; 4],
        daddr: [0; 4],
        laddr: [0; 4],
        cport: 0,
        vport: 0,
        dport: 0,
        lport: 0,
        proto: 0,
        state: 0,
        fwd: FwdMethod::Dr,
        flags: 0,
        dest_id: 0,
        svc_id: 0,
        timeout_s: 0,
        expires: 0,
        slot_at: 0,
        next: NIL,
        prev: NIL,
        tmpl: NIL,
        ring_seq: 0,
    };

    /// The tuple client packets carry: (caddr, cport) → (vaddr, vport).
    #[inline(always)]
    pub fn in_tuple(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            saddr: self.caddr,
            sport: self.cport,
            daddr: self.vaddr,
            dport: self.vport,
        }
    }
    /// The tuple replies carry: (daddr, dport) → (laddr, lport).
    #[inline(always)]
    pub fn out_tuple(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            saddr: self.daddr,
            sport: self.dport,
            daddr: self.laddr,
            dport: self.lport,
        }
    }
    /// A SYN-proxied connection whose real server has not answered yet.
    #[inline(always)]
    pub fn synproxy_waiting(&self) -> bool {
        self.proto == crate::wire::ipv4::PROTO_TCP
            && self.flags & (F_SYNPROXY | F_REPLIED) == F_SYNPROXY
    }
    /// A SYN-proxied connection whose sequence numbers are translated.
    #[inline(always)]
    pub fn synproxy_translated(&self) -> bool {
        self.proto == crate::wire::ipv4::PROTO_TCP
            && self.flags & (F_SYNPROXY | F_REPLIED) == F_SYNPROXY | F_REPLIED
    }
    /// The real server's window scale of a SYN-proxied connection.
    #[inline(always)]
    pub fn synproxy_ws(&self) -> u8 {
        self.state >> 4
    }
    #[inline(always)]
    pub fn is_active(&self) -> bool {
        self.flags & F_INACTIVE == 0
    }

    /// Whether a flood could have made this entry, so that it may be
    /// evicted to make room for a new connection: TCP that never completed
    /// its handshake (NONE, SYN_SENT, SYN_RECV, SYNACK) and UDP that never
    /// came back ([`F_CONFIRMED`]). ESTABLISHED and closing connections
    /// never are.
    #[inline(always)]
    pub fn is_unconfirmed(&self) -> bool {
        if self.proto == crate::wire::ipv4::PROTO_TCP {
            self.flags & F_SYNPROXY == 0 && TcpState::from_u8(self.state).is_half_open()
        } else {
            self.flags & F_CONFIRMED == 0
        }
    }
}

/// A packet's (protocol, source, destination) as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub saddr: [u8; 4],
    pub sport: u16,
    pub daddr: [u8; 4],
    pub dport: u16,
}

impl Tuple {
    /// Packs the tuple into two words for hashing and comparison.
    #[inline(always)]
    pub fn words(&self) -> (u64, u64) {
        let a =
            ((u32::from_ne_bytes(self.saddr) as u64) << 32) | u32::from_ne_bytes(self.daddr) as u64;
        let b = ((self.proto as u64) << 32) | ((self.sport as u64) << 16) | self.dport as u64;
        (a, b)
    }
}

/// An IPv6 packet's (protocol, source, destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple6 {
    pub proto: u8,
    pub saddr: [u8; 16],
    pub sport: u16,
    pub daddr: [u8; 16],
    pub dport: u16,
}

impl Tuple6 {
    /// The tuple for hashing: both addresses whole, then protocol and
    /// ports.
    #[inline(always)]
    pub fn words(&self) -> (u128, u128, u64) {
        (
            u128::from_ne_bytes(self.saddr),
            u128::from_ne_bytes(self.daddr),
            ((self.proto as u64) << 32) | ((self.sport as u64) << 16) | self.dport as u64,
        )
    }
}

/// The addresses of an IPv6 connection, kept beside its [`Conn`] (same slab
/// index) in an IPv6 table: one more cache line, so an IPv6 connection
/// takes 128 bytes and IPv4's stays at 64. The `Conn`'s own 4-byte address
/// fields then hold each address folded to 32 bits (`sched::fold_v6`),
/// informative only. NAT64's IPv4 addresses (the real server and the local
/// address) are kept IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2),
/// and its `Conn` holds them as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Addrs6 {
    pub caddr: [u8; 16],
    pub vaddr: [u8; 16],
    pub daddr: [u8; 16],
    pub laddr: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<Addrs6>() == 64);

impl Addrs6 {
    /// The tuple client packets carry, with the `Conn`'s ports.
    #[inline(always)]
    pub fn in_tuple(&self, c: &Conn) -> Tuple6 {
        Tuple6 {
            proto: c.proto,
            saddr: self.caddr,
            sport: c.cport,
            daddr: self.vaddr,
            dport: c.vport,
        }
    }
    /// The tuple replies carry.
    #[inline(always)]
    pub fn out_tuple(&self, c: &Conn) -> Tuple6 {
        Tuple6 {
            proto: c.proto,
            saddr: self.daddr,
            sport: c.dport,
            daddr: self.laddr,
            dport: c.lport,
        }
    }
}

/// `a` as an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2).
#[inline(always)]
pub fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

/// The IPv4 address inside an IPv4-mapped one, if it is one.
#[inline(always)]
pub fn unmapped(a: &[u8; 16]) -> Option<[u8; 4]> {
    (a[..10] == [0; 10] && a[10] == 0xff && a[11] == 0xff).then(|| [a[12], a[13], a[14], a[15]])
}
