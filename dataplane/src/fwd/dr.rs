//! Direct routing (`-g`, `lb_kind DR`): only the MAC header changes. The
//! real server holds the VIP on a loopback and answers the client itself.

use crate::wire::{ethernet, Mac};

#[inline(always)]
pub fn rewrite(frame: &mut [u8], src: &Mac, dst: &Mac) {
    ethernet::set_src(frame, src);
    ethernet::set_dst(frame, dst);
}
