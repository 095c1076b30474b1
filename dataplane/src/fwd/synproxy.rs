//! SYN proxy for NAT and FULLNAT virtual servers (DPVS `syn_proxy`), as
//! pure functions over byte slices; `worker.rs` only hooks them in.
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

use crate::conn::Tuple;
use crate::wire::checksum::Delta;
use crate::wire::tcp::{self, Segment, SynOptions, TcpPacket};
use crate::wire::{ipv4, l4};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// MSS values a cookie can carry (Linux's `msstab`).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Length of a cookie time slot.
pub const SLOT_SECS: u64 = 64;
/// The MSS the director announces in its SYN-ACK.
pub const DIRECTOR_MSS: u16 = 1460;
/// The window scale the director announces to clients that offer one.
pub const DIRECTOR_WSCALE: u8 = 7;
/// The (unscaled) window of the SYN-ACK: bounds what a client sends before
/// the real server's handshake completes.
pub const SYNACK_WINDOW: u16 = 14600;
/// Stored instead of the server's shift when no rescaling applies (the
/// client offered no window scale, so neither side scales).
pub const NO_RESCALE: u8 = 0x0f;
/// TTL of the segments the director makes.
pub const TTL: u8 = 64;
/// Largest IPv4 + TCP length [`answer_syn`] and [`syn_to_rs`] write.
pub const MAX_SEGMENT_LEN: usize = 20 + 20 + 12;

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
fn mac24(key: &CookieKey, t: &Tuple, isn: u32, slot: u64, data: u8) -> u32 {
    let mut b = [0u8; 25];
    b[0..4].copy_from_slice(&t.saddr);
    b[4..8].copy_from_slice(&t.daddr);
    b[8..10].copy_from_slice(&t.sport.to_be_bytes());
    b[10..12].copy_from_slice(&t.dport.to_be_bytes());
    b[12..16].copy_from_slice(&isn.to_be_bytes());
    b[16..24].copy_from_slice(&slot.to_be_bytes());
    b[24] = data;
    let mut h = SipHasher24::new_with_keys(key.k0, key.k1);
    h.write(&b);
    (h.finish() as u32) & 0x00ff_ffff
}

/// The cookie for a client SYN with tuple `t` (client → VIP), ISN `isn`
/// and options `o`, at `now_s`.
pub fn make_cookie(key: &CookieKey, t: &Tuple, isn: u32, o: &SynOptions, now_s: u64) -> u32 {
    let s = slot(now_s);
    let mss = o.mss.unwrap_or(536);
    let idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8;
    let ws = o.wscale.map_or(WS_NONE, |w| w.min(tcp::MAX_WSCALE));
    let data = ((s as u8 & 1) << 7) | (idx << 5) | (ws << 1) | o.sack_perm as u8;
    (mac24(key, t, isn, s, data) << 8) | data as u32
}

/// The options a cookie carries, read without checking it.
#[inline]
pub fn cookie_options(cookie: u32) -> CookieOptions {
    let data = cookie as u8;
    let ws = (data >> 1) & 0x0f;
    CookieOptions {
        mss: MSS_TABLE[((data >> 5) & 3) as usize],
        wscale: (ws != WS_NONE).then_some(ws),
        sack_perm: data & 1 != 0,
    }
}

/// Checks `cookie` for tuple `t` and client ISN `isn` at `now_s`: it must
/// have been made in the current or the previous time slot with this key.
pub fn check_cookie(
    key: &CookieKey,
    t: &Tuple,
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
    (mac24(key, t, isn, s, data) == cookie >> 8).then(|| cookie_options(cookie))
}

/// Turns the client SYN at the start of `ip` (its IPv4 header, then TCP)
/// into the director's SYN-ACK in place, and returns the SYN-ACK's IPv4
/// length and its cookie. `ip` must be at least [`MAX_SEGMENT_LEN`] long;
/// the caller has validated the headers.
pub fn answer_syn(ip: &mut [u8], key: &CookieKey, now_s: u64, ip_id: u16) -> (usize, u32) {
    let v = ipv4::Ipv4Packet::new_unchecked(&*ip);
    let (src, dst) = (v.src_addr(), v.dst_addr());
    let th = TcpPacket::new_checked(v.payload()).expect("validated by the caller");
    let (sport, dport) = (th.src_port(), th.dst_port());
    let isn = th.seq();
    let o = th.syn_options();
    let t = Tuple {
        proto: ipv4::PROTO_TCP,
        saddr: src,
        sport,
        daddr: dst,
        dport,
    };
    let cookie = make_cookie(key, &t, isn, &o, now_s);
    let mine = SynOptions {
        mss: Some(DIRECTOR_MSS),
        wscale: o.wscale.map(|_| DIRECTOR_WSCALE),
        sack_perm: o.sack_perm,
        timestamp: None,
    };
    let mut opts = [0u8; 12];
    let n = tcp::emit_syn_options(&mut opts, &mine);
    let len = tcp::write_segment(
        ip,
        &Segment {
            src: dst,
            dst: src,
            sport: dport,
            dport: sport,
            seq: cookie,
            ack: isn.wrapping_add(1),
            flags: l4::TCP_SYN | l4::TCP_ACK,
            window: SYNACK_WINDOW,
            ttl: TTL,
            ip_id,
            options: &opts[..n],
        },
    );
    (len, cookie)
}

/// Writes the SYN to the real server at the start of `out` (an IPv4
/// header, then TCP): from `src:sport` (the client for NAT, the local
/// address for FULLNAT) to `dst:dport`, with the client's ISN and the
/// options from its cookie. `client_window` is the raw window of the
/// client's ACK. Returns the length written.
#[allow(clippy::too_many_arguments)]
pub fn syn_to_rs(
    out: &mut [u8],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    client_isn: u32,
    o: &CookieOptions,
    client_window: u16,
    ip_id: u16,
) -> usize {
    let so = SynOptions {
        mss: Some(o.mss),
        wscale: o.wscale,
        sack_perm: o.sack_perm,
        timestamp: None,
    };
    let mut opts = [0u8; 12];
    let n = tcp::emit_syn_options(&mut opts, &so);
    // A SYN's window is never scaled.
    let window = ((client_window as u32) << o.wscale.unwrap_or(0)).min(65535) as u16;
    tcp::write_segment(
        out,
        &Segment {
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
        },
    )
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
    let client_scales = cookie_options(cookie).wscale.is_some();
    ServerSynAck {
        delta: tcp::seq(th).wrapping_sub(cookie),
        ws_rs: if client_scales {
            o.wscale.unwrap_or(0)
        } else {
            NO_RESCALE
        },
    }
}

/// Turns the real server's SYN-ACK at the start of `ip` into the ACK that
/// completes its handshake, in place: from `src:sport` (client or local
/// address) back to the server, `seq` = the server's ack, `ack` = its
/// ISN + 1. `window` is raw, in the client's scale. Returns the length.
pub fn ack_to_rs(ip: &mut [u8], src: ([u8; 4], u16), window: u16, ip_id: u16) -> usize {
    let v = ipv4::Ipv4Packet::new_unchecked(&*ip);
    let rs = v.src_addr();
    let th = TcpPacket::new_checked(v.payload()).expect("validated by the caller");
    let rport = th.src_port();
    let (seq, ack) = (th.ack(), th.seq().wrapping_add(1));
    tcp::write_segment(
        ip,
        &Segment {
            src: src.0,
            dst: rs,
            sport: src.1,
            dport: rport,
            seq,
            ack,
            flags: l4::TCP_ACK,
            window,
            ttl: TTL,
            ip_id,
            options: &[],
        },
    )
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
}
