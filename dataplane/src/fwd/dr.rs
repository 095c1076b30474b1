//! Direct routing (`-g`, `lb_kind DR`): the MAC header changes, and the
//! TTL drops by one as for every IPVS transmitter (`decrement_ttl` in
//! `__ip_vs_get_out_rt`, Linux >= 4.3; the worker does it before calling
//! here). The real server holds the VIP on a loopback and answers the
//! client itself.

use crate::wire::{ethernet, Mac};

#[inline(always)]
pub fn rewrite(frame: &mut [u8], src: &Mac, dst: &Mac) {
    ethernet::set_src(frame, src);
    ethernet::set_dst(frame, dst);
}
