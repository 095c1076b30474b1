//! The two hash primitives the IPVS hashing schedulers use, so that ferrovs
//! fills its tables the way the kernel does.
//!
//! - `hash_32` (include/linux/hash.h): multiply by the 32-bit golden ratio and
//!   keep the top bits. sh, dh and the lblc/lblcr caches hash with it.
//! - `hsiphash` (lib/siphash.c): mh hashes one 32-bit word with it. On 64-bit
//!   kernels hsiphash is SipHash-1-3 (one compression round, three
//!   finalization rounds) with two 64-bit key words, truncated to 32 bits;
//!   only 32-bit kernels use HalfSipHash. We follow the 64-bit flavour, which
//!   is what every DPDK-capable director runs.
//!
//! SipHash is written out here rather than taken from a crate because mh needs
//! the 1-3 variant with the kernel's keys on a single 4-byte word, and the
//! crate that provides it is not a dependency of the dataplane.

/// `GOLDEN_RATIO_32` from include/linux/hash.h.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// Kernel `hash_32(val, bits)`: the top `bits` bits of `val * GOLDEN_RATIO_32`.
#[inline(always)]
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// A 128-bit SipHash key as two 64-bit words (`hsiphash_key_t` on 64-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SipKey(pub u64, pub u64);

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-C-D of a 4-byte message (the little-endian bytes of `word`). A
/// message shorter than 8 bytes is a single final block: the bytes in the low
/// end and the length in the top byte.
#[inline(always)]
fn sip_u32<const C: usize, const D: usize>(key: SipKey, word: u32) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    let b = (4u64 << 56) | word as u64;
    v[3] ^= b;
    for _ in 0..C {
        sip_round(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Kernel `hsiphash(&word, 4, key)` on a 64-bit (little-endian) machine.
#[inline]
pub(crate) fn hsiphash_u32(key: SipKey, word: u32) -> u32 {
    sip_u32::<1, 3>(key, word) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_hash_32_is_golden_ratio_top_bits() {
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
        assert_eq!(hash_32(0, 8), 0);
        // Every result fits the requested width.
        for v in [0xdead_beefu32, 0xffff_ffff, 0x0a00_0001] {
            assert!(hash_32(v, 8) < 256);
            assert!(hash_32(v, 10) < 1024);
        }
    }

    /// Our SipHash core with the standard 2-4 rounds must agree with the
    /// standard library's SipHash-2-4; hsiphash differs only in round counts.
    #[test]
    #[allow(deprecated)]
    fn sched_sip_core_matches_std_siphash24() {
        use std::hash::{Hasher, SipHasher};
        let keys = [
            SipKey(0, 0),
            SipKey(0x0706050403020100, 0x0f0e0d0c0b0a0908),
            SipKey(2654435761, 2654435761),
        ];
        for key in keys {
            for word in [0u32, 1, 0x0302_0100, 0x0a00_0001, 0xffff_ffff] {
                let mut h = SipHasher::new_with_keys(key.0, key.1);
                h.write(&word.to_le_bytes());
                assert_eq!(
                    sip_u32::<2, 4>(key, word),
                    h.finish(),
                    "key {key:?} word {word:#x}"
                );
            }
        }
    }

    #[test]
    fn sched_hsiphash_is_keyed_and_deterministic() {
        let k1 = SipKey(2654435761, 2654435761);
        let k2 = SipKey(2654446892, 2654446892);
        assert_eq!(hsiphash_u32(k1, 42), hsiphash_u32(k1, 42));
        assert_ne!(hsiphash_u32(k1, 42), hsiphash_u32(k2, 42));
        assert_ne!(hsiphash_u32(k1, 42), hsiphash_u32(k1, 43));
    }
}
