//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's complement sum of `data` as big-endian 16-bit words, not folded.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    // Fold the 64-bit accumulator to 32 bits without losing carries.
    let folded = (acc & 0xffff_ffff) + (acc >> 32);
    let folded = (folded & 0xffff_ffff) + (folded >> 32);
    folded as u32
}

/// Adds two partial sums (of [`sum`] or [`pseudo_header_v4`]) with the end
/// carry wrapped around, as one's complement addition does: a plain `+` of
/// two 32-bit partial sums can overflow (a long message's [`sum`] comes
/// close to 2^32).
#[inline(always)]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u32
}

/// Folds a 32-bit partial sum to 16 bits.
#[inline(always)]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for `data` (with its checksum field zeroed).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The checksum field value for a partial sum (of [`sum`] or added up from
/// field values).
#[inline(always)]
pub fn checksum_of_sum(s: u32) -> u16 {
    !fold(s)
}

/// Partial sum of the TCP/UDP IPv4 pseudo-header (RFC 793 / RFC 768).
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    u16::from_be_bytes([src[0], src[1]]) as u32
        + u16::from_be_bytes([src[2], src[3]]) as u32
        + u16::from_be_bytes([dst[0], dst[1]]) as u32
        + u16::from_be_bytes([dst[2], dst[3]]) as u32
        + proto as u32
        + len as u32
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): both addresses,
/// the upper-layer length as 32 bits and the next header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    let mut s = sum(src);
    s = add(s, sum(dst));
    add(s, (len >> 16) + (len & 0xffff) + next_header as u32)
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 16-bit field change.
#[inline(always)]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = (!csum as u32) + (!old as u32) + new as u32;
    !fold(s)
}

/// RFC 1624 for a 32-bit field (an IPv4 address) as two 16-bit words.
#[inline(always)]
pub fn update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let s = (!csum as u32)
        + (!u16::from_be_bytes([old[0], old[1]]) as u32)
        + (!u16::from_be_bytes([old[2], old[3]]) as u32)
        + u16::from_be_bytes([new[0], new[1]]) as u32
        + u16::from_be_bytes([new[2], new[3]]) as u32;
    !fold(s)
}

/// Accumulates several field changes and applies them to a checksum at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delta(u32);

impl Delta {
    #[inline(always)]
    pub fn new() -> Delta {
        Delta(0)
    }
    #[inline(always)]
    pub fn u16(&mut self, old: u16, new: u16) -> &mut Self {
        self.0 += (!old as u32) + new as u32;
        self
    }
    #[inline(always)]
    pub fn addr(&mut self, old: [u8; 4], new: [u8; 4]) -> &mut Self {
        self.u16(
            u16::from_be_bytes([old[0], old[1]]),
            u16::from_be_bytes([new[0], new[1]]),
        );
        self.u16(
            u16::from_be_bytes([old[2], old[3]]),
            u16::from_be_bytes([new[2], new[3]]),
        )
    }
    /// An IPv6 address change. Summed a 64-bit word at a time in the
    /// machine's byte order and folded, which gives the same one's
    /// complement sum as eight 16-bit words (RFC 1071 §2(C), parallel
    /// summation: `!` of a word complements each of its 16-bit parts, and
    /// 2^16 is 1 modulo 0xffff), byte-swapped on a little-endian machine
    /// (§2(B), byte order independence), which one swap of the folded
    /// 16 bits undoes. The result is 0 exactly when every 16-bit part's
    /// change is (old all ones, new all zeros), as a 16-bit sum's would be.
    #[inline(always)]
    pub fn addr6(&mut self, old: &[u8; 16], new: &[u8; 16]) -> &mut Self {
        let w = |a: &[u8; 16], i: usize| u64::from_ne_bytes(a[i..i + 8].try_into().unwrap());
        let acc =
            (!w(old, 0)) as u128 + w(new, 0) as u128 + (!w(old, 8)) as u128 + w(new, 8) as u128;
        // Under 2^66: the carries out of 64 bits come back in at the bottom.
        let (s, c) = (acc as u64).overflowing_add((acc >> 64) as u64);
        let s = s + c as u64;
        let s = (s & 0xffff_ffff) + (s >> 32);
        let s = (s & 0xffff_ffff) + (s >> 32);
        self.0 += u16::from_be(fold(s as u32)) as u32;
        self
    }
    /// The updated checksum field value.
    #[inline(always)]
    pub fn apply(&self, csum: u16) -> u16 {
        !fold((!csum as u32) + fold(self.0) as u32)
    }
    /// For UDP, where 0 means "no checksum": keep it 0, and never produce 0
    /// from a real checksum (RFC 768: transmit all ones instead).
    #[inline(always)]
    pub fn apply_udp(&self, csum: u16) -> u16 {
        if csum == 0 {
            return 0;
        }
        match self.apply(csum) {
            0 => 0xffff,
            c => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example bytes.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
    }

    #[test]
    fn partial_sums_add_without_overflow() {
        // A long run of 0xff bytes sums close to 2^32; adding a pseudo
        // header's sum must wrap its carry around, as summing it all does.
        let d = vec![0xffu8; 65532];
        let ph = pseudo_header_v4([198, 18, 0, 2], [224, 0, 0, 18], 112, 65532);
        let mut all = vec![198, 18, 0, 2, 224, 0, 0, 18, 0, 112];
        all.extend_from_slice(&65532u16.to_be_bytes());
        all.extend_from_slice(&d);
        assert_eq!(fold(add(ph, sum(&d))), fold(sum(&all)));
        assert_eq!(add(u32::MAX, 2), 2);
    }

    #[test]
    fn incremental_equals_full() {
        let mut d: Vec<u8> = (0..40u8).map(|x| x.wrapping_mul(37)).collect();
        d[10] = 0;
        d[11] = 0;
        let c = checksum(&d);
        let old = [d[12], d[13], d[14], d[15]];
        let new = [198, 18, 0, 77];
        d[12..16].copy_from_slice(&new);
        let full = checksum(&d);
        assert_eq!(update32(c, old, new), full);
        let mut delta = Delta::new();
        delta.addr(old, new);
        // Apply the same change relative to the original checksum.
        assert_eq!(delta.apply(c), full);
        let oldp = u16::from_be_bytes([d[20], d[21]]);
        d[20..22].copy_from_slice(&8080u16.to_be_bytes());
        assert_eq!(update16(full, oldp, 8080), checksum(&d));
    }

    #[test]
    fn ipv6_pseudo_header_and_address_delta() {
        let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [
            0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xff, 2,
        ];
        let mut all = src.to_vec();
        all.extend_from_slice(&dst);
        all.extend_from_slice(&70000u32.to_be_bytes());
        all.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(
            fold(pseudo_header_v6(&src, &dst, 6, 70000)),
            fold(sum(&all))
        );
        // The delta of an address change equals summing again.
        let body = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let c = !fold(add(pseudo_header_v6(&src, &dst, 17, 8), sum(&body)));
        let new = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
        let mut d = Delta::new();
        d.addr6(&dst, &new);
        assert_eq!(
            d.apply(c),
            !fold(add(pseudo_header_v6(&src, &new, 17, 8), sum(&body)))
        );
    }

    /// The word-at-a-time address delta agrees with recomputing, for
    /// addresses of all ones and zeros (where carries pile up) and random
    /// ones, over several changes in a row.
    #[test]
    fn addr6_delta_matches_recomputing() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut addr = || -> [u8; 16] {
            match next() % 4 {
                0 => [0xff; 16],
                1 => [0; 16],
                _ => ((next() as u128) << 64 | next() as u128).to_be_bytes(),
            }
        };
        let body = [0xffu8, 0xff, 0, 1, 0x80, 0, 0xfe, 0xdc];
        for _ in 0..10_000 {
            let (src, mut dst) = (addr(), addr());
            let mut c = !fold(add(pseudo_header_v6(&src, &dst, 6, 8), sum(&body)));
            for _ in 0..3 {
                let new = addr();
                let mut d = Delta::new();
                d.addr6(&dst, &new).addr6(&src, &src);
                c = d.apply(c);
                dst = new;
                let want = !fold(add(pseudo_header_v6(&src, &dst, 6, 8), sum(&body)));
                // 0x0000 and 0xffff are the same one's complement value.
                let same = c == want || matches!((c, want), (0, 0xffff) | (0xffff, 0));
                assert!(same, "{c:#x} {want:#x}");
            }
        }
    }

    #[test]
    fn odd_length() {
        assert_eq!(sum(&[0xab]), 0xab00);
    }
}
