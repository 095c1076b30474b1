//! SYN proxy for NAT and FULLNAT virtual servers, IPv4 and IPv6 (DPVS
//! `syn_proxy`), as pure functions over byte slices; `worker.rs` and
//! `worker/synproxy6.rs` only hook them in.
//!
//! ## The handshake
//!
//! 1. Client SYN to a syn-proxy service: answered at once with a SYN-ACK
//!    whose sequence number is a SYN cookie ([`answer_syn`]). No
//!    connection entry, no scheduling: a spoofed flood costs one hash and
//!    one transmitted frame per SYN, and the table stays empty. A
//!    retransmitted SYN simply gets another SYN-ACK (the same cookie while
//!    the time slot lasts).
//! 2. Client ACK without a connection: `ack - 1` must be a cookie that
//!    [`check_cookie`] accepts for this 4-tuple and `seq - 1` (the client's
//!    ISN). Only then is a real server scheduled, the connection created
//!    (state SYN_SENT, flag `F_SYNPROXY`) and a SYN sent to the real server
//!    ([`syn_to_rs`]) with the client's own ISN and the options decoded
//!    from the cookie. An ACK with a bad or expired cookie is dropped and
//!    counted; it creates nothing.
//! 3. The real server's SYN-ACK is consumed: the director records the
//!    sequence delta `rs_isn - cookie` and the server's window scale,
//!    turns the SYN-ACK into the ACK that completes the server's handshake
//!    ([`ack_to_rs`]), and releases the client data it held. From then on
//!    every segment is translated on top of the NAT/FULLNAT rewrite:
//!    server → client `seq -= delta` and the window rescaled
//!    ([`rs_to_client`]); client → server `ack += delta` and every SACK
//!    block edge `+= delta` ([`client_to_rs`]). A RST from the server (a
//!    refused connection) reaches the client with the sequence number the
//!    client expects (`cookie + 1`), through the same [`rs_to_client`].
//!
//! ## Cookies (RFC 4987 §3.6, Linux `syncookies.c`, DPVS)
//!
//! A cookie is 32 bits: the top 24 are a keyed SipHash-2-4 MAC of
//! (client address, VIP, client port, virtual port, client ISN, time slot,
//! the low 8 bits); the low 8 bits carry, in the clear, the time slot's
//! parity (bit 7), the MSS index (bits 6–5, into [`MSS_TABLE`], the
//! largest entry not above the client's MSS), the client's window scale
//! (bits 4–1, 15 = none) and SACK-permitted (bit 0). The key is random per
//! process ([`CookieKey::random`]) and shared by every worker. A time slot
//! lasts [`SLOT_SECS`] seconds; a cookie of the current or the previous
//! slot is accepted (the parity bit says which one to recompute), so a
//! cookie lives 64 to 128 s and a forged one passes with probability
//! 2^-24 per try.
//!
//! ## TCP options: what is kept
//!
//! - **MSS**: the SYN-ACK announces [`DIRECTOR_MSS`]; the server gets the
//!   client's MSS rounded down to the table (536 when the client sent none).
//! - **SACK-permitted**: echoed to the client and passed on to the server
//!   when the client offered it. Client SACK blocks are translated into the
//!   server's sequence space; the server's SACK blocks describe client
//!   sequence numbers, which are not translated, and pass unchanged.
//! - **Window scale**: when the client offers one, the SYN-ACK announces
//!   [`DIRECTOR_WSCALE`] and the server gets the client's own shift (so
//!   client windows need no change). The server chooses its shift
//!   independently; the director reads it from the server's SYN-ACK, keeps
//!   it in the connection (4 bits) and rescales every server window to the
//!   announced shift: `win << ws_rs >> 7`, saturated at 65535 (rounding
//!   down, so the client never sends more than the server offered).
//! - **Timestamps**: not kept. The SYN-ACK carries none, so by RFC 7323 the
//!   client sends none and the server is never offered them. Keeping them
//!   would need a per-flow TSval offset (the server's clock is not ours,
//!   and the client's PAWS check would drop server segments whose TSval is
//!   below the SYN-ACK's), a second 32-bit field that the 64-byte
//!   connection entry has no room for. Linux's trick of carrying the
//!   options in the TSval is not needed: they fit in the cookie.
//!
//! ## IPv6 (NAT66, FULLNAT66, NAT64)
//!
//! The same handshake, cookie layout and translation; what differs is the
//! family's alone, behind [`CookieFlow`] and the `*6` writers:
//!
//! - the MAC covers the IPv6 4-tuple ([`Tuple6`]);
//! - the cookie's MSS index points into Linux's IPv6 table
//!   (`net/ipv6/syncookies.c`: 1280, 1480, 1500 and 9000-byte links less
//!   60 bytes of headers), and a SYN without MSS means 1220
//!   (RFC 9293 §3.7.1: the IPv6 minimum MTU less 60), not IPv4's 536;
//! - the SYN-ACK announces [`DIRECTOR_MSS6`] = 1440, what Linux announces on
//!   a 1500-byte link (`tcp_v6_syn_recv_sock`'s advmss: MTU less the 40-byte
//!   IPv6 and 20-byte TCP headers). DPVS announces one configured MSS
//!   (`synproxy init_mss`, 1452 by default) for both families, which on a
//!   1500-byte link is 12 bytes more than an IPv6 segment can carry and
//!   leans on Path MTU discovery; a director that never fragments IPv6
//!   answers the first full segment with Packet Too Big, so it announces
//!   what fits instead;
//! - the director's segments are written with a fixed IPv6 header (no
//!   extension headers, flow label 0, hop limit [`TTL`]) and the TCP
//!   checksum over the IPv6 pseudo-header ([`answer_syn6`], [`syn_to_rs6`],
//!   [`ack_to_rs6`]).
//!
//! NAT64 is IPv6 towards the client (cookie, SYN-ACK) and IPv4 towards the
//! server ([`syn_to_rs`], [`ack_to_rs`] from the IPv4 local address): the
//! MSS the server is given is the client's, payload bytes being the same
//! in both families, and the sequence translation runs on the TCP header
//! before or after the RFC 7915 translation, which leaves it alone.

use crate::conn::{Tuple, Tuple6};
use crate::wire::checksum::Delta;
use crate::wire::tcp::{self, Segment, SynOptions, TcpPacket};
use crate::wire::{ipv4, ipv6, l4};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// MSS values an IPv4 cookie can carry (Linux's `msstab`).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// MSS values an IPv6 cookie can carry (Linux's IPv6 `msstab`: 1280,
/// 1480, 1500 and 9000-byte links less 60 bytes of IPv6 and TCP headers).
pub const MSS_TABLE6: [u16; 4] = [1220, 1420, 1440, 8940];
/// Length of a cookie time slot.
pub const SLOT_SECS: u64 = 64;
/// The MSS the director announces in its IPv4 SYN-ACK.
pub const DIRECTOR_MSS: u16 = 1460;
/// The MSS the director announces in its IPv6 SYN-ACK: a 1500-byte link
/// less the 40-byte IPv6 and 20-byte TCP headers (see the module notes).
pub const DIRECTOR_MSS6: u16 = 1440;
/// The window scale the director announces to clients that offer one.
pub const DIRECTOR_WSCALE: u8 = 7;
/// The (unscaled) window of the SYN-ACK: bounds what a client sends before
/// the real server's handshake completes.
pub const SYNACK_WINDOW: u16 = 14600;
/// Stored instead of the server's shift when no rescaling applies (the
/// client offered no window scale, so neither side scales).
pub const NO_RESCALE: u8 = 0x0f;
/// TTL (IPv4) and hop limit (IPv6) of the segments the director makes.
pub const TTL: u8 = 64;
/// Largest IPv4 + TCP length [`answer_syn`] and [`syn_to_rs`] write.
pub const MAX_SEGMENT_LEN: usize = 20 + 20 + 12;
/// Largest IPv6 + TCP length [`answer_syn6`] and [`syn_to_rs6`] write.
pub const MAX_SEGMENT_LEN6: usize = ipv6::HEADER_LEN + 20 + 12;

const WS_NONE: u8 = 0x0f;

/// The process's cookie secret (SipHash-2-4 key).
#[derive(Clone, Copy, Debug)]
pub struct CookieKey {
    k0: u64,
    k1: u64,
}

impl CookieKey {
    pub const fn new(k0: u64, k1: u64) -> CookieKey {
        CookieKey { k0, k1 }
    }
    /// A fresh key from the operating system's randomness (std seeds each
    /// `RandomState` from it), made once per process.
    pub fn random() -> CookieKey {
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        let t = std::collections::hash_map::RandomState::new();
        CookieKey::new(s.hash_one(0x5359_4e43u64), t.hash_one(0x4f4f_4b49u64))
    }
}

/// What a cookie depends on in a client flow (client → VIP), per address
/// family: the rest of the cookie is the same for both.
pub trait CookieFlow {
    /// The MSS values the cookie's 2-bit index selects from.
    const MSS_TABLE: [u16; 4];
    /// The MSS of a SYN that announces none (RFC 9293 §3.7.1).
    const DEFAULT_MSS: u16;
    /// Feeds (client address, VIP, client port, virtual port) to the MAC.
    fn feed(&self, h: &mut SipHasher24);
}

impl CookieFlow for Tuple {
    const MSS_TABLE: [u16; 4] = MSS_TABLE;
    const DEFAULT_MSS: u16 = 536;
    #[inline]
    fn feed(&self, h: &mut SipHasher24) {
        h.write(&self.saddr);
        h.write(&self.daddr);
        h.write(&self.sport.to_be_bytes());
        h.write(&self.dport.to_be_bytes());
    }
}

impl CookieFlow for Tuple6 {
    const MSS_TABLE: [u16; 4] = MSS_TABLE6;
    const DEFAULT_MSS: u16 = 1220;
    #[inline]
    fn feed(&self, h: &mut SipHasher24) {
        h.write(&self.saddr);
        h.write(&self.daddr);
        h.write(&self.sport.to_be_bytes());
        h.write(&self.dport.to_be_bytes());
    }
}

/// What a valid cookie says about the client's SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    pub mss: u16,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
}

/// Time slot of `now_s`.
#[inline(always)]
pub fn slot(now_s: u64) -> u64 {
    now_s / SLOT_SECS
}

#[inline]
fn mac24<F: CookieFlow>(key: &CookieKey, t: &F, isn: u32, slot: u64, data: u8) -> u32 {
    // SipHash is a streaming hash: the pieces hash as their concatenation.
    let mut h = SipHasher24::new_with_keys(key.k0, key.k1);
    t.feed(&mut h);
    h.write(&isn.to_be_bytes());
    h.write(&slot.to_be_bytes());
    h.write(&[data]);
    (h.finish() as u32) & 0x00ff_ffff
}

/// The cookie for a client SYN with tuple `t` (client → VIP), ISN `isn`
/// and options `o`, at `now_s`.
pub fn make_cookie<F: CookieFlow>(
    key: &CookieKey,
    t: &F,
    isn: u32,
    o: &SynOptions,
    now_s: u64,
) -> u32 {
    let s = slot(now_s);
    let mss = o.mss.unwrap_or(F::DEFAULT_MSS);
    let idx = F::MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8;
    let ws = o.wscale.map_or(WS_NONE, |w| w.min(tcp::MAX_WSCALE));
    let data = ((s as u8 & 1) << 7) | (idx << 5) | (ws << 1) | o.sack_perm as u8;
    (mac24(key, t, isn, s, data) << 8) | data as u32
}

/// The client's window scale a cookie carries (either family).
#[inline]
pub fn cookie_wscale(cookie: u32) -> Option<u8> {
    let ws = (cookie as u8 >> 1) & 0x0f;
    (ws != WS_NONE).then_some(ws)
}

/// The options a cookie of family `F` carries, read without checking it.
#[inline]
pub fn cookie_options<F: CookieFlow>(cookie: u32) -> CookieOptions {
    let data = cookie as u8;
    CookieOptions {
        mss: F::MSS_TABLE[((data >> 5) & 3) as usize],
        wscale: cookie_wscale(cookie),
        sack_perm: data & 1 != 0,
    }
}

/// Checks `cookie` for tuple `t` and client ISN `isn` at `now_s`: it must
/// have been made in the current or the previous time slot with this key.
pub fn check_cookie<F: CookieFlow>(
    key: &CookieKey,
    t: &F,
    isn: u32,
    cookie: u32,
    now_s: u64,
) -> Option<CookieOptions> {
    let data = cookie as u8;
    let cur = slot(now_s);
    let s = if (cur as u8 & 1) == data >> 7 {
        cur
    } else {
        cur.checked_sub(1)?
    };
    if data >> 1 & 0x0f > tcp::MAX_WSCALE && data >> 1 & 0x0f != WS_NONE {
        return None;
    }
    (mac24(key, t, isn, s, data) == cookie >> 8).then(|| cookie_options::<F>(cookie))
}

/// The director's SYN-ACK to the client SYN `th` of flow `t` (addresses
/// `client` and `vip` in the family's form), announcing `mss`; its options
/// are encoded into `opts`. Returns the segment and its cookie.
#[allow(clippy::too_many_arguments)]
fn syn_ack<'o, F: CookieFlow, A: Copy>(
    th: &[u8],
    t: &F,
    client: A,
    vip: A,
    key: &CookieKey,
    now_s: u64,
    mss: u16,
    ip_id: u16,
    opts: &'o mut [u8; 12],
) -> (Segment<'o, A>, u32) {
    let th = TcpPacket::new_checked(th).expect("validated by the caller");
    let isn = th.seq();
    let o = th.syn_options();
    let cookie = make_cookie(key, t, isn, &o, now_s);
    let mine = SynOptions {
        mss: Some(mss),
        wscale: o.wscale.map(|_| DIRECTOR_WSCALE),
        sack_perm: o.sack_perm,
        timestamp: None,
    };
    let n = tcp::emit_syn_options(opts, &mine);
    let seg = Segment {
        src: vip,
        dst: client,
        sport: th.dst_port(),
        dport: th.src_port(),
        seq: cookie,
        ack: isn.wrapping_add(1),
        flags: l4::TCP_SYN | l4::TCP_ACK,
        window: SYNACK_WINDOW,
        ttl: TTL,
        ip_id,
        options: &opts[..n],
    };
    (seg, cookie)
}

/// Turns the client SYN at the start of `ip` (its IPv4 header, then TCP)
/// into the director's SYN-ACK in place, and returns the SYN-ACK's IPv4
/// length and its cookie. `ip` must be at least [`MAX_SEGMENT_LEN`] long;
/// the caller has validated the headers.
pub fn answer_syn(ip: &mut [u8], key: &CookieKey, now_s: u64, ip_id: u16) -> (usize, u32) {
    let v = ipv4::Ipv4Packet::new_unchecked(&*ip);
    let (src, dst) = (v.src_addr(), v.dst_addr());
    let th = v.payload();
    let t = Tuple {
        proto: ipv4::PROTO_TCP,
        saddr: src,
        sport: l4::src_port(th),
        daddr: dst,
        dport: l4::dst_port(th),
    };
    let mut opts = [0u8; 12];
    let (seg, cookie) = syn_ack(th, &t, src, dst, key, now_s, DIRECTOR_MSS, ip_id, &mut opts);
    (tcp::write_segment(ip, &seg), cookie)
}

/// [`answer_syn`] for IPv6: the client SYN starts at `ip` (its IPv6
/// header), its TCP header at `ip[l4..]` (after any extension headers);
/// the SYN-ACK replaces it with a fixed IPv6 header and no extension
/// headers. `ip` must be at least [`MAX_SEGMENT_LEN6`] long.
pub fn answer_syn6(ip: &mut [u8], l4: usize, key: &CookieKey, now_s: u64) -> (usize, u32) {
    let (src, dst) = (ipv6::src(ip), ipv6::dst(ip));
    let th = &ip[l4..];
    let t = Tuple6 {
        proto: ipv6::NH_TCP,
        saddr: src,
        sport: l4::src_port(th),
        daddr: dst,
        dport: l4::dst_port(th),
    };
    let mut opts = [0u8; 12];
    let (seg, cookie) = syn_ack(th, &t, src, dst, key, now_s, DIRECTOR_MSS6, 0, &mut opts);
    (tcp::write_segment6(ip, &seg), cookie)
}

/// The SYN to the real server: from `src:sport` (the client for NAT, the
/// local address for FULLNAT) to `dst:dport`, with the client's ISN and
/// the options from its cookie, encoded into `opts`.
fn rs_syn<'o, A: Copy>(
    src: (A, u16),
    dst: (A, u16),
    client_isn: u32,
    o: &CookieOptions,
    client_window: u16,
    ip_id: u16,
    opts: &'o mut [u8; 12],
) -> Segment<'o, A> {
    let so = SynOptions {
        mss: Some(o.mss),
        wscale: o.wscale,
        sack_perm: o.sack_perm,
        timestamp: None,
    };
    let n = tcp::emit_syn_options(opts, &so);
    // A SYN's window is never scaled.
    let window = ((client_window as u32) << o.wscale.unwrap_or(0)).min(65535) as u16;
    Segment {
        src: src.0,
        dst: dst.0,
        sport: src.1,
        dport: dst.1,
        seq: client_isn,
        ack: 0,
        flags: l4::TCP_SYN,
        window,
        ttl: TTL,
        ip_id,
        options: &opts[..n],
    }
}

/// Writes the SYN to the real server at the start of `out` (an IPv4
/// header, then TCP): from `src:sport` (the client for NAT, the local
/// address for FULLNAT and NAT64) to `dst:dport`, with the client's ISN
/// and the options from its cookie. `client_window` is the raw window of
/// the client's ACK. Returns the length written.
pub fn syn_to_rs(
    out: &mut [u8],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    client_isn: u32,
    o: &CookieOptions,
    client_window: u16,
    ip_id: u16,
) -> usize {
    let mut opts = [0u8; 12];
    let seg = rs_syn(src, dst, client_isn, o, client_window, ip_id, &mut opts);
    tcp::write_segment(out, &seg)
}

/// [`syn_to_rs`] for an IPv6 real server (NAT66, FULLNAT66): a fixed IPv6
/// header, then TCP. `out` must be at least [`MAX_SEGMENT_LEN6`] long.
pub fn syn_to_rs6(
    out: &mut [u8],
    src: ([u8; 16], u16),
    dst: ([u8; 16], u16),
    client_isn: u32,
    o: &CookieOptions,
    client_window: u16,
) -> usize {
    let mut opts = [0u8; 12];
    let seg = rs_syn(src, dst, client_isn, o, client_window, 0, &mut opts);
    tcp::write_segment6(out, &seg)
}

/// What the real server's SYN-ACK tells the director.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSynAck {
    /// `rs_isn - cookie`: add to client acks, subtract from server seqs.
    pub delta: u32,
    /// The server's window scale, or [`NO_RESCALE`].
    pub ws_rs: u8,
}

/// Reads the real server's SYN-ACK (`th`: its TCP header) for a flow whose
/// client got `cookie`.
pub fn server_syn_ack(th: &[u8], cookie: u32) -> ServerSynAck {
    let o = tcp::parse_syn_options(th);
    let client_scales = cookie_wscale(cookie).is_some();
    ServerSynAck {
        delta: tcp::seq(th).wrapping_sub(cookie),
        ws_rs: if client_scales {
            o.wscale.unwrap_or(0)
        } else {
            NO_RESCALE
        },
    }
}

/// The ACK that completes the real server's handshake, answering its
/// SYN-ACK `th` (from `rs`): from `src:sport` back to the server,
/// `seq` = the server's ack, `ack` = its ISN + 1.
fn rs_ack<A: Copy>(
    th: &[u8],
    rs: A,
    src: (A, u16),
    window: u16,
    ip_id: u16,
) -> Segment<'static, A> {
    Segment {
        src: src.0,
        dst: rs,
        sport: src.1,
        dport: l4::src_port(th),
        seq: tcp::ack(th),
        ack: tcp::seq(th).wrapping_add(1),
        flags: l4::TCP_ACK,
        window,
        ttl: TTL,
        ip_id,
        options: &[],
    }
}

/// Turns the real server's SYN-ACK at the start of `ip` into the ACK that
/// completes its handshake, in place: from `src:sport` (client or local
/// address) back to the server, `seq` = the server's ack, `ack` = its
/// ISN + 1. `window` is raw, in the client's scale. Returns the length.
pub fn ack_to_rs(ip: &mut [u8], src: ([u8; 4], u16), window: u16, ip_id: u16) -> usize {
    let v = ipv4::Ipv4Packet::new_unchecked(&*ip);
    let seg = rs_ack(v.payload(), v.src_addr(), src, window, ip_id);
    tcp::write_segment(ip, &seg)
}

/// [`ack_to_rs`] for an IPv6 server's SYN-ACK: its IPv6 header at `ip`, its
/// TCP header at `ip[l4..]`; the ACK gets a fixed IPv6 header.
pub fn ack_to_rs6(ip: &mut [u8], l4: usize, src: ([u8; 16], u16), window: u16) -> usize {
    let seg = rs_ack(&ip[l4..], ipv6::src(ip), src, window, 0);
    tcp::write_segment6(ip, &seg)
}

#[inline(always)]
fn set_u32(p: &mut [u8], at: usize, v: u32, d: &mut Delta) {
    let old = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    d.u16((old >> 16) as u16, (v >> 16) as u16)
        .u16(old as u16, v as u16);
    p[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
fn apply(th: &mut [u8], d: &Delta) {
    let c = tcp::checksum_field(th);
    th[16..18].copy_from_slice(&d.apply(c).to_be_bytes());
}

/// Client → real server, after the handshake: `ack += delta` and every
/// SACK block edge `+= delta`, checksum updated incrementally. `th` is the
/// TCP header with its options (the caller has checked the data offset).
pub fn client_to_rs(th: &mut [u8], delta: u32) {
    let mut d = Delta::new();
    if l4::tcp_flags(th) & l4::TCP_ACK != 0 {
        let a = tcp::ack(th).wrapping_add(delta);
        set_u32(th, 8, a, &mut d);
    }
    // SACK blocks: collect their offsets first (the walker borrows `th`).
    let mut at = [0usize; 4];
    let mut blocks = [0usize; 4];
    let mut n = 0;
    tcp::walk_options(th, |kind, off, len| {
        if kind == tcp::OPT_SACK && n < 4 {
            at[n] = off + 2;
            blocks[n] = (len - 2) / 8;
            n += 1;
        }
    });
    for k in 0..n {
        for b in 0..blocks[k].min(4) {
            for e in 0..2 {
                let o = at[k] + b * 8 + e * 4;
                let v = u32::from_be_bytes([th[o], th[o + 1], th[o + 2], th[o + 3]]);
                set_u32(th, o, v.wrapping_add(delta), &mut d);
            }
        }
    }
    apply(th, &d);
}

/// Real server → client: `seq -= delta` and the window rescaled from the
/// server's shift `ws_rs` to [`DIRECTOR_WSCALE`] (unless `ws_rs` is
/// [`NO_RESCALE`]), checksum updated incrementally.
pub fn rs_to_client(th: &mut [u8], delta: u32, ws_rs: u8) {
    let mut d = Delta::new();
    let s = tcp::seq(th).wrapping_sub(delta);
    set_u32(th, 4, s, &mut d);
    if ws_rs != NO_RESCALE && ws_rs != DIRECTOR_WSCALE {
        let w = tcp::window(th);
        let nw = (((w as u64) << ws_rs) >> DIRECTOR_WSCALE).min(65535) as u16;
        d.u16(w, nw);
        th[14..16].copy_from_slice(&nw.to_be_bytes());
    }
    apply(th, &d);
}

/// The delta that gives a real server's RST, sent while the director waits
/// for the server's SYN-ACK (a refused connection), the sequence number
/// the client expects: `cookie + 1`.
#[inline]
pub fn rst_delta(rst_seq: u32, cookie: u32) -> u32 {
    rst_seq.wrapping_sub(cookie.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice};

    const KEY: CookieKey = CookieKey::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    const CIP: [u8; 4] = [198, 18, 0, 2];
    const VIP: [u8; 4] = [198, 18, 0, 100];
    const NOW: u64 = 1_000_000;

    fn tuple() -> Tuple {
        Tuple {
            proto: 6,
            saddr: CIP,
            sport: 40000,
            daddr: VIP,
            dport: 80,
        }
    }

    /// Checks both checksums with etherparse and returns the TCP header.
    fn verified(ip: &[u8]) -> TcpHeaderSlice<'_> {
        let h = Ipv4HeaderSlice::from_slice(ip).unwrap();
        let hh = h.to_header();
        assert_eq!(hh.header_checksum, hh.calc_header_checksum());
        let tl = h.total_len() as usize;
        let t = TcpHeaderSlice::from_slice(&ip[20..tl]).unwrap();
        let calc = t
            .to_header()
            .calc_checksum_ipv4(&hh, &ip[20 + t.slice().len()..tl])
            .unwrap();
        assert_eq!(t.checksum(), calc, "TCP checksum");
        t
    }

    fn syn(o: &SynOptions, isn: u32) -> Vec<u8> {
        let mut opts = [0u8; 40];
        let mut n = tcp::emit_syn_options(&mut opts, o);
        if let Some((a, b)) = o.timestamp {
            opts[n..n + 4].copy_from_slice(&[1, 1, 8, 10]);
            opts[n + 4..n + 8].copy_from_slice(&a.to_be_bytes());
            opts[n + 8..n + 12].copy_from_slice(&b.to_be_bytes());
            n += 12;
        }
        let mut v = vec![0u8; 64 + MAX_SEGMENT_LEN];
        let len = tcp::write_segment(
            &mut v,
            &Segment {
                src: CIP,
                dst: VIP,
                sport: 40000,
                dport: 80,
                seq: isn,
                ack: 0,
                flags: l4::TCP_SYN,
                window: 64240,
                ttl: 64,
                ip_id: 1,
                options: &opts[..n],
            },
        );
        v.truncate(len.max(MAX_SEGMENT_LEN));
        v
    }

    #[test]
    fn syn_ack_for_each_option_combination() {
        for mss in [None, Some(536), Some(1400), Some(1460), Some(9000)] {
            for ws in [None, Some(0), Some(7), Some(14)] {
                for sack in [false, true] {
                    for ts in [None, Some((77, 0))] {
                        let o = SynOptions {
                            mss,
                            wscale: ws,
                            sack_perm: sack,
                            timestamp: ts,
                        };
                        let mut p = syn(&o, 1000);
                        let (len, cookie) = answer_syn(&mut p, &KEY, NOW, 9);
                        let t = verified(&p[..len]);
                        assert!(t.syn() && t.ack() && !t.rst());
                        assert_eq!((t.source_port(), t.destination_port()), (80, 40000));
                        assert_eq!(t.sequence_number(), cookie);
                        assert_eq!(t.acknowledgment_number(), 1001);
                        assert_eq!(t.window_size(), SYNACK_WINDOW);
                        assert_eq!(&p[12..16], &VIP);
                        assert_eq!(&p[16..20], &CIP);
                        // Byte for byte: the options the director answers.
                        let mut want = vec![2, 4, 0x05, 0xb4];
                        if sack {
                            want.extend_from_slice(&[1, 1, 4, 2]);
                        }
                        if ws.is_some() {
                            want.extend_from_slice(&[1, 3, 3, DIRECTOR_WSCALE]);
                        }
                        assert_eq!(t.options(), &want[..], "{o:?}");
                        assert_eq!(len, 40 + want.len());
                        // The cookie decodes to the client's options.
                        let d = check_cookie(&KEY, &tuple(), 1000, cookie, NOW).unwrap();
                        let want_mss = match mss {
                            None | Some(536) => 536,
                            Some(1400) => 1300,
                            _ => 1460,
                        };
                        assert_eq!(d.mss, want_mss);
                        assert_eq!(d.wscale, ws);
                        assert_eq!(d.sack_perm, sack);
                    }
                }
            }
        }
    }

    #[test]
    fn cookies_expire_after_two_slots_and_resist_forgery() {
        let o = SynOptions::default();
        let c = make_cookie(&KEY, &tuple(), 5, &o, NOW);
        assert!(check_cookie(&KEY, &tuple(), 5, c, NOW).is_some());
        assert!(check_cookie(&KEY, &tuple(), 5, c, NOW + SLOT_SECS).is_some());
        assert!(check_cookie(&KEY, &tuple(), 5, c, NOW + 2 * SLOT_SECS).is_none());
        // Another ISN, port, address or key: rejected.
        assert!(check_cookie(&KEY, &tuple(), 6, c, NOW).is_none());
        let mut t2 = tuple();
        t2.sport += 1;
        assert!(check_cookie(&KEY, &t2, 5, c, NOW).is_none());
        t2 = tuple();
        t2.saddr[3] ^= 1;
        assert!(check_cookie(&KEY, &t2, 5, c, NOW).is_none());
        assert!(check_cookie(&CookieKey::new(1, 2), &tuple(), 5, c, NOW).is_none());
        // Flipping any bit (the option bits included) breaks the MAC.
        for b in 0..32 {
            assert!(check_cookie(&KEY, &tuple(), 5, c ^ (1 << b), NOW).is_none());
        }
        // Random forgeries: about 2^-24 pass; none of 100k should.
        let mut x = 0x9e37_79b9u32;
        let forged = (0..100_000)
            .filter(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                check_cookie(&KEY, &tuple(), 5, x, NOW).is_some()
            })
            .count();
        assert_eq!(forged, 0);
        assert_ne!(CookieKey::random().k0, CookieKey::random().k0);
    }

    #[test]
    fn syn_to_rs_carries_client_isn_and_cookie_options() {
        let o = CookieOptions {
            mss: 1440,
            wscale: Some(7),
            sack_perm: true,
        };
        let mut b = [0u8; MAX_SEGMENT_LEN];
        let n = syn_to_rs(
            &mut b,
            ([198, 18, 1, 100], 5000),
            ([198, 18, 1, 11], 8080),
            4242,
            &o,
            502,
            3,
        );
        let t = verified(&b[..n]);
        assert!(t.syn() && !t.ack());
        assert_eq!(t.sequence_number(), 4242);
        assert_eq!((t.source_port(), t.destination_port()), (5000, 8080));
        assert_eq!(t.window_size(), 502 << 7);
        assert_eq!(t.options(), &[2, 4, 0x05, 0xa0, 1, 1, 4, 2, 1, 3, 3, 7]);
        assert_eq!(&b[12..16], &[198, 18, 1, 100]);
        assert_eq!(&b[16..20], &[198, 18, 1, 11]);
        let o = CookieOptions {
            mss: 536,
            wscale: None,
            sack_perm: false,
        };
        let n = syn_to_rs(&mut b, (CIP, 1), ([198, 18, 1, 11], 80), 1, &o, 500, 3);
        let t = verified(&b[..n]);
        assert_eq!(t.options(), &[2, 4, 0x02, 0x18]);
        assert_eq!(t.window_size(), 500);
    }

    fn seg(flags: u8, seq: u32, ack: u32, win: u16, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 80 + payload.len()];
        let n = tcp::write_segment(
            &mut v,
            &Segment {
                src: [198, 18, 1, 11],
                dst: CIP,
                sport: 80,
                dport: 40000,
                seq,
                ack,
                flags,
                window: win,
                ttl: 64,
                ip_id: 0,
                options: opts,
            },
        );
        v.truncate(n);
        // Append a payload and fix the lengths and checksums the slow way.
        v.extend_from_slice(payload);
        let tl = v.len() as u16;
        v[2..4].copy_from_slice(&tl.to_be_bytes());
        ipv4::fill_checksum(&mut v);
        v[36..38].fill(0);
        let src: [u8; 4] = v[12..16].try_into().unwrap();
        let dst: [u8; 4] = v[16..20].try_into().unwrap();
        let ph = crate::wire::checksum::pseudo_header_v4(src, dst, 6, tl - 20);
        let c = !crate::wire::checksum::fold(crate::wire::checksum::add(
            ph,
            crate::wire::checksum::sum(&v[20..]),
        ));
        v[36..38].copy_from_slice(&c.to_be_bytes());
        verified(&v);
        v
    }

    #[test]
    fn server_syn_ack_becomes_the_ack_and_gives_the_delta() {
        let cookie = make_cookie(
            &KEY,
            &tuple(),
            99,
            &SynOptions {
                wscale: Some(7),
                ..Default::default()
            },
            NOW,
        );
        let mut p = seg(
            l4::TCP_SYN | l4::TCP_ACK,
            7_000_000,
            100,
            65160,
            &[1, 3, 3, 9],
            &[],
        );
        let s = server_syn_ack(&p[20..], cookie);
        assert_eq!(s.delta, 7_000_000u32.wrapping_sub(cookie));
        assert_eq!(s.ws_rs, 9);
        let n = ack_to_rs(&mut p, ([198, 18, 1, 100], 5000), 502, 4);
        let t = verified(&p[..n]);
        assert_eq!(n, 40);
        assert!(t.ack() && !t.syn());
        assert_eq!(
            (t.sequence_number(), t.acknowledgment_number()),
            (100, 7_000_001)
        );
        assert_eq!((t.source_port(), t.destination_port()), (5000, 80));
        assert_eq!(&p[16..20], &[198, 18, 1, 11]);
        // A client without window scale: no rescaling.
        let c2 = make_cookie(&KEY, &tuple(), 99, &SynOptions::default(), NOW);
        assert_eq!(server_syn_ack(&p[20..], c2).ws_rs, NO_RESCALE);
    }

    #[test]
    fn sequence_translation_both_ways() {
        let delta = 0xfff0_0000u32;
        // Server → client: seq -= delta, window from shift 9 to 7.
        let mut p = seg(l4::TCP_ACK, 0x0000_1000, 555, 300, &[], b"hello");
        rs_to_client(&mut p[20..], delta, 9);
        let t = verified(&p);
        assert_eq!(t.sequence_number(), 0x0010_1000);
        assert_eq!(t.acknowledgment_number(), 555);
        assert_eq!(t.window_size(), 1200);
        // Shift 3 to 7 rounds down; a huge window saturates.
        let mut p = seg(l4::TCP_ACK, 1, 1, 1000, &[], b"");
        rs_to_client(&mut p[20..], 0, 3);
        assert_eq!(verified(&p).window_size(), 62);
        let mut p = seg(l4::TCP_ACK, 1, 1, 60000, &[], b"");
        rs_to_client(&mut p[20..], 0, 14);
        assert_eq!(verified(&p).window_size(), 65535);
        let mut p = seg(l4::TCP_ACK, 1, 1, 60000, &[], b"");
        rs_to_client(&mut p[20..], 0, NO_RESCALE);
        assert_eq!(verified(&p).window_size(), 60000);

        // Client → server: ack and SACK edges += delta; seq untouched.
        let mut opts = vec![1, 1, 5, 26];
        for v in [
            0x0010_2000u32,
            0x0010_3000,
            0x0010_4000,
            0x0010_5000,
            0x0010_6000,
            0x0010_7000,
        ] {
            opts.extend_from_slice(&v.to_be_bytes());
        }
        let mut p = seg(l4::TCP_ACK, 777, 0x0010_1000, 501, &opts, b"GET /");
        client_to_rs(&mut p[20..], delta);
        let t = verified(&p);
        assert_eq!(t.sequence_number(), 777);
        assert_eq!(t.acknowledgment_number(), 0x0000_1000);
        let o = t.options();
        let edges: Vec<u32> = (0..6)
            .map(|k| u32::from_be_bytes(o[4 + 4 * k..8 + 4 * k].try_into().unwrap()))
            .collect();
        assert_eq!(edges, vec![0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000]);
        assert_eq!(&p[p.len() - 5..], b"GET /");
    }

    #[test]
    fn a_refusing_server_rst_reaches_the_client_in_sequence() {
        let cookie = 0xdead_beefu32;
        let mut p = seg(l4::TCP_RST | l4::TCP_ACK, 0, 1001, 0, &[], b"");
        let d = rst_delta(0, cookie);
        rs_to_client(&mut p[20..], d, NO_RESCALE);
        let t = verified(&p);
        assert!(t.rst());
        assert_eq!(t.sequence_number(), cookie.wrapping_add(1));
        assert_eq!(t.acknowledgment_number(), 1001);
    }

    // IPv6.

    const CIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const VIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    const RIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
    const LIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    fn tuple6() -> Tuple6 {
        Tuple6 {
            proto: 6,
            saddr: CIP6,
            sport: 40000,
            daddr: VIP6,
            dport: 80,
        }
    }

    /// Checks the IPv6 header and the TCP checksum over the IPv6
    /// pseudo-header with etherparse; returns the header and the TCP one.
    fn verified6(ip: &[u8]) -> (etherparse::Ipv6Header, TcpHeaderSlice<'_>) {
        let h = etherparse::Ipv6HeaderSlice::from_slice(ip)
            .unwrap()
            .to_header();
        assert_eq!(h.next_header, etherparse::IpNumber::TCP);
        assert_eq!(40 + h.payload_length as usize, ip.len());
        let t = TcpHeaderSlice::from_slice(&ip[40..]).unwrap();
        let calc = t
            .to_header()
            .calc_checksum_ipv6(&h, &ip[40 + t.slice().len()..])
            .unwrap();
        assert_eq!(
            t.checksum(),
            calc,
            "TCP checksum over the IPv6 pseudo-header"
        );
        (h, t)
    }

    /// A client SYN over IPv6, with `ext` bytes of a destination options
    /// header before TCP when `ext` (8 bytes, padding only).
    fn syn6(o: &SynOptions, isn: u32, ext: bool) -> (Vec<u8>, usize) {
        let mut opts = [0u8; 40];
        let n = tcp::emit_syn_options(&mut opts, o);
        let mut tcp = vec![0u8; 40 + MAX_SEGMENT_LEN6];
        let len = tcp::write_segment6(
            &mut tcp,
            &Segment {
                src: CIP6,
                dst: VIP6,
                sport: 40000,
                dport: 80,
                seq: isn,
                ack: 0,
                flags: l4::TCP_SYN,
                window: 64800,
                ttl: 64,
                ip_id: 0,
                options: &opts[..n],
            },
        );
        tcp.truncate(len);
        if !ext {
            return (tcp, 40);
        }
        // Destination options (next header TCP, length 0: 8 bytes, PadN).
        let mut v = tcp[..40].to_vec();
        v[6] = ipv6::NH_DEST_OPTS;
        let pl = (len - 40 + 8) as u16;
        v[4..6].copy_from_slice(&pl.to_be_bytes());
        v.extend_from_slice(&[ipv6::NH_TCP, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&tcp[40..]);
        (v, 48)
    }

    #[test]
    fn syn_ack6_for_each_option_combination() {
        for ext in [false, true] {
            for mss in [None, Some(1200), Some(1220), Some(1440), Some(8960)] {
                for ws in [None, Some(0), Some(7), Some(14)] {
                    for sack in [false, true] {
                        let o = SynOptions {
                            mss,
                            wscale: ws,
                            sack_perm: sack,
                            timestamp: None,
                        };
                        let (mut p, l4) = syn6(&o, 1000, ext);
                        p.resize(p.len().max(MAX_SEGMENT_LEN6), 0);
                        let (len, cookie) = answer_syn6(&mut p, l4, &KEY, NOW);
                        let (h, t) = verified6(&p[..len]);
                        assert_eq!(h.hop_limit, TTL);
                        assert_eq!((h.traffic_class, h.flow_label.value()), (0, 0));
                        assert_eq!(h.source, VIP6);
                        assert_eq!(h.destination, CIP6);
                        assert!(t.syn() && t.ack() && !t.rst());
                        assert_eq!((t.source_port(), t.destination_port()), (80, 40000));
                        assert_eq!(t.sequence_number(), cookie);
                        assert_eq!(t.acknowledgment_number(), 1001);
                        assert_eq!(t.window_size(), SYNACK_WINDOW);
                        // Byte for byte: MSS 1440 (0x05a0), then what the
                        // client offered.
                        let mut want = vec![2, 4, 0x05, 0xa0];
                        if sack {
                            want.extend_from_slice(&[1, 1, 4, 2]);
                        }
                        if ws.is_some() {
                            want.extend_from_slice(&[1, 3, 3, DIRECTOR_WSCALE]);
                        }
                        assert_eq!(t.options(), &want[..], "{o:?}");
                        assert_eq!(len, 60 + want.len());
                        // The cookie decodes to the client's options, the
                        // MSS from the IPv6 table (1220 without one).
                        let d = check_cookie(&KEY, &tuple6(), 1000, cookie, NOW).unwrap();
                        let want_mss = match mss {
                            None | Some(1200) | Some(1220) => 1220,
                            Some(1440) => 1440,
                            _ => 8940,
                        };
                        assert_eq!(d.mss, want_mss, "{o:?}");
                        assert_eq!(d.wscale, ws);
                        assert_eq!(d.sack_perm, sack);
                    }
                }
            }
        }
    }

    #[test]
    fn ipv6_cookies_bind_the_ipv6_tuple() {
        let o = SynOptions::default();
        let c = make_cookie(&KEY, &tuple6(), 5, &o, NOW);
        assert!(check_cookie(&KEY, &tuple6(), 5, c, NOW + SLOT_SECS).is_some());
        assert!(check_cookie(&KEY, &tuple6(), 5, c, NOW + 2 * SLOT_SECS).is_none());
        // Any bit of either address, either port, the ISN.
        for byte in 0..16 {
            let mut t = tuple6();
            t.saddr[byte] ^= 0x80;
            assert!(check_cookie(&KEY, &t, 5, c, NOW).is_none());
            let mut t = tuple6();
            t.daddr[byte] ^= 1;
            assert!(check_cookie(&KEY, &t, 5, c, NOW).is_none());
        }
        let mut t = tuple6();
        t.dport += 1;
        assert!(check_cookie(&KEY, &t, 5, c, NOW).is_none());
        assert!(check_cookie(&KEY, &tuple6(), 6, c, NOW).is_none());
        for b in 0..32 {
            assert!(check_cookie(&KEY, &tuple6(), 5, c ^ (1 << b), NOW).is_none());
        }
        // The IPv4 MAC input is unchanged by the shared implementation:
        // SipHash-2-4 of the 25 bytes it always hashed.
        let v4 = make_cookie(&KEY, &tuple(), 5, &o, NOW);
        let data = v4 as u8;
        let mut b = [0u8; 25];
        b[0..4].copy_from_slice(&CIP);
        b[4..8].copy_from_slice(&VIP);
        b[8..10].copy_from_slice(&40000u16.to_be_bytes());
        b[10..12].copy_from_slice(&80u16.to_be_bytes());
        b[12..16].copy_from_slice(&5u32.to_be_bytes());
        b[16..24].copy_from_slice(&slot(NOW).to_be_bytes());
        b[24] = data;
        let mut h = SipHasher24::new_with_keys(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        h.write(&b);
        assert_eq!(v4 >> 8, (h.finish() as u32) & 0x00ff_ffff);
    }

    #[test]
    fn syn_to_rs6_carries_client_isn_and_cookie_options() {
        let o = CookieOptions {
            mss: 1420,
            wscale: Some(7),
            sack_perm: true,
        };
        let mut b = [0u8; MAX_SEGMENT_LEN6];
        let n = syn_to_rs6(&mut b, (LIP6, 5000), (RIP6, 8080), 4242, &o, 502);
        assert_eq!(n, MAX_SEGMENT_LEN6);
        let (h, t) = verified6(&b[..n]);
        assert_eq!((h.source, h.destination, h.hop_limit), (LIP6, RIP6, TTL));
        assert!(t.syn() && !t.ack());
        assert_eq!(t.sequence_number(), 4242);
        assert_eq!((t.source_port(), t.destination_port()), (5000, 8080));
        assert_eq!(t.window_size(), 502 << 7);
        assert_eq!(t.options(), &[2, 4, 0x05, 0x8c, 1, 1, 4, 2, 1, 3, 3, 7]);
        // Byte for byte, the fixed header: version 6, no class or label,
        // payload 32, next header TCP, hop limit 64.
        assert_eq!(&b[..8], &[0x60, 0, 0, 0, 0, 32, 6, 64]);
        let o = CookieOptions {
            mss: 1220,
            wscale: None,
            sack_perm: false,
        };
        let n = syn_to_rs6(&mut b, (CIP6, 1), (RIP6, 80), 1, &o, 500);
        let (_, t) = verified6(&b[..n]);
        assert_eq!(t.options(), &[2, 4, 0x04, 0xc4]);
        assert_eq!(t.window_size(), 500);
    }

    #[test]
    fn server_syn_ack6_becomes_the_ack() {
        let cookie = make_cookie(
            &KEY,
            &tuple6(),
            99,
            &SynOptions {
                wscale: Some(7),
                ..Default::default()
            },
            NOW,
        );
        // The server's SYN-ACK, behind a destination options header.
        let mut p = vec![0u8; 80];
        let n = tcp::write_segment6(
            &mut p,
            &Segment {
                src: RIP6,
                dst: LIP6,
                sport: 8080,
                dport: 5000,
                seq: 7_000_000,
                ack: 100,
                flags: l4::TCP_SYN | l4::TCP_ACK,
                window: 65160,
                ttl: 64,
                ip_id: 0,
                options: &[1, 3, 3, 9],
            },
        );
        let mut q = p[..40].to_vec();
        q[6] = ipv6::NH_DEST_OPTS;
        q[4..6].copy_from_slice(&((n - 40 + 8) as u16).to_be_bytes());
        q.extend_from_slice(&[ipv6::NH_TCP, 0, 1, 4, 0, 0, 0, 0]);
        q.extend_from_slice(&p[40..n]);
        let s = server_syn_ack(&q[48..], cookie);
        assert_eq!(s.delta, 7_000_000u32.wrapping_sub(cookie));
        assert_eq!(s.ws_rs, 9);
        let n = ack_to_rs6(&mut q, 48, (LIP6, 5000), 502);
        assert_eq!(n, 60);
        let (h, t) = verified6(&q[..n]);
        assert_eq!((h.source, h.destination), (LIP6, RIP6));
        assert!(t.ack() && !t.syn() && t.options().is_empty());
        assert_eq!(
            (t.sequence_number(), t.acknowledgment_number()),
            (100, 7_000_001)
        );
        assert_eq!((t.source_port(), t.destination_port()), (5000, 8080));
        assert_eq!(t.window_size(), 502);
    }

    /// The translation is the TCP header's alone: over IPv6 the
    /// incrementally updated checksum is still right for the IPv6
    /// pseudo-header.
    #[test]
    fn sequence_translation_over_ipv6() {
        let mut opts = vec![1, 1, 5, 10];
        opts.extend_from_slice(&0x0010_2000u32.to_be_bytes());
        opts.extend_from_slice(&0x0010_3000u32.to_be_bytes());
        let mut p = vec![0u8; 40 + 20 + opts.len()];
        tcp::write_segment6(
            &mut p,
            &Segment {
                src: CIP6,
                dst: VIP6,
                sport: 40000,
                dport: 80,
                seq: 777,
                ack: 0x0010_1000,
                flags: l4::TCP_ACK,
                window: 501,
                ttl: 64,
                ip_id: 0,
                options: &opts,
            },
        );
        client_to_rs(&mut p[40..], 0xfff0_0000);
        let (_, t) = verified6(&p);
        assert_eq!(t.acknowledgment_number(), 0x0000_1000);
        assert_eq!(&t.options()[4..12], &[0, 0, 0x20, 0, 0, 0, 0x30, 0]);
        rs_to_client(&mut p[40..], 0x10, 9);
        let (_, t) = verified6(&p);
        assert_eq!(t.sequence_number(), 777 - 0x10);
        assert_eq!(t.window_size(), 501 * 4);
    }
}
