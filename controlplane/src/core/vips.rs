//! VIP ownership: the addresses the vrrp_instances carry and whether this
//! director holds them (the dataplane answers for a VIP only while it
//! does).

use super::Core;
use std::net::IpAddr;

impl Core {
    /// VRRP took (`held`) or released these VIPs.
    pub(super) fn vips_held(&mut self, vips: &[IpAddr], held: bool) {
        for v in vips {
            self.vrrp_vips.insert(*v, held);
        }
        self.publish_or_log("publishing VIP ownership");
    }

    /// After a VRRP reload: the VIPs the instances list now. Removed ones
    /// go, new ones start released; held ones stay held.
    pub(super) fn vips_listed(&mut self, vips: &[IpAddr]) {
        let before = self.vrrp_vips.clone();
        self.vrrp_vips.retain(|a, _| vips.contains(a));
        for v in vips {
            self.vrrp_vips.entry(*v).or_insert(false);
        }
        if self.vrrp_vips != before {
            self.publish_or_log("publishing VIP ownership");
        }
    }
}
