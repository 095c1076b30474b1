//! Ethernet II frames with up to two 802.1Q / 802.1ad tags.

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

pub type Mac = [u8; 6];
pub const BROADCAST: Mac = [0xff; 6];

/// Where the layer-3 header of a frame starts, after any VLAN tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2 {
    pub ethertype: u16,
    pub l3_offset: usize,
    /// VLAN id of the innermost tag, if any.
    pub vlan: Option<u16>,
}

/// Reads the Ethernet header and VLAN tags. None when the frame is too short.
#[inline]
pub fn parse(frame: &[u8]) -> Option<L2> {
    if frame.len() < HEADER_LEN {
        return None;
    }
    let mut off = 12;
    let mut vlan = None;
    let mut et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    // At most two tags (802.1ad outer + 802.1Q inner); more is garbage.
    for _ in 0..2 {
        if et != ETHERTYPE_VLAN && et != ETHERTYPE_QINQ {
            break;
        }
        if frame.len() < off + 2 + VLAN_TAG_LEN {
            return None;
        }
        vlan = Some(u16::from_be_bytes([frame[off + 2], frame[off + 3]]) & 0x0fff);
        off += VLAN_TAG_LEN;
        et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    }
    Some(L2 {
        ethertype: et,
        l3_offset: off + 2,
        vlan,
    })
}

#[inline(always)]
pub fn dst(frame: &[u8]) -> Mac {
    frame[0..6].try_into().unwrap()
}
#[inline(always)]
pub fn src(frame: &[u8]) -> Mac {
    frame[6..12].try_into().unwrap()
}
#[inline(always)]
pub fn set_dst(frame: &mut [u8], mac: &Mac) {
    frame[0..6].copy_from_slice(mac)
}
#[inline(always)]
pub fn set_src(frame: &mut [u8], mac: &Mac) {
    frame[6..12].copy_from_slice(mac)
}

/// Writes an Ethernet header (with a VLAN tag when `vlan` is set) at the
/// start of `buf`; returns its length.
pub fn write_header(
    buf: &mut [u8],
    dst: &Mac,
    src: &Mac,
    vlan: Option<u16>,
    ethertype: u16,
) -> usize {
    buf[0..6].copy_from_slice(dst);
    buf[6..12].copy_from_slice(src);
    match vlan {
        Some(v) => {
            buf[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            buf[14..16].copy_from_slice(&(v & 0x0fff).to_be_bytes());
            buf[16..18].copy_from_slice(&ethertype.to_be_bytes());
            HEADER_LEN + VLAN_TAG_LEN
        }
        None => {
            buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
            HEADER_LEN
        }
    }
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_tagged() {
        let mut f = [0u8; 64];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        assert_eq!(
            parse(&f),
            Some(L2 {
                ethertype: ETHERTYPE_IPV4,
                l3_offset: 14,
                vlan: None
            })
        );
        let n = write_header(
            &mut f,
            &BROADCAST,
            &[2, 0, 0, 0, 0, 1],
            Some(42),
            ETHERTYPE_ARP,
        );
        assert_eq!(n, 18);
        assert_eq!(
            parse(&f),
            Some(L2 {
                ethertype: ETHERTYPE_ARP,
                l3_offset: 18,
                vlan: Some(42)
            })
        );
        assert_eq!(parse(&f[..15]), None);
        assert_eq!(parse(&f[..13]), None);
    }
}
