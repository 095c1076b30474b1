//! What the northbound readers (`/metrics`, the JSON API, `ferrovs status`)
//! see of the daemon: a copy of its state, published after every change
//! (arc-swap), so that a scrape or an API call never takes the daemon and
//! never waits behind a reload, a health change or a control command.
//! Counters stay live: the copy shares the services' and servers' counter
//! blocks and the dataplane's per-worker counters.

use crate::health::HealthHandle;
use crate::ipvs_state::{IpvsState, Net};
use crate::port_device::PortDevice;
use crate::southbound::Dataplane;
use crate::vrrp::driver::StatusHandle;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct View {
    pub state: IpvsState,
    /// The ports and routes the dataplane runs with.
    pub net: Net,
    pub dataplane: Arc<dyn Dataplane>,
    pub devices: Vec<Arc<dyn PortDevice>>,
    pub health: Option<HealthHandle>,
    pub vrrp_status: StatusHandle,
    pub vrrp_vips: BTreeMap<std::net::IpAddr, bool>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_reload_ok: bool,
    pub workers_running: bool,
    pub worker_stalls: u64,
    pub epoch: Instant,
    /// The connection sync daemon, when it runs.
    pub sync: Option<crate::sync::io::SyncHandle>,
    /// What the BGP task publishes, when `bgp { }` is configured.
    pub bgp: Option<Arc<ArcSwap<crate::bgp::driver::BgpStatus>>>,
}

/// Where the current view is published.
pub type ViewCell = Arc<ArcSwap<View>>;

impl View {
    /// Seconds on the workers' clock.
    pub fn now_s(&self) -> u32 {
        (crate::heartbeat::worker_clock_ms(self.epoch) / 1000) as u32
    }

    /// What `ferrovs status` and `/api/v1/status` show.
    pub fn status_json(&self) -> String {
        let vrrp = self
            .vrrp_status
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let held: Vec<String> = self
            .vrrp_vips
            .iter()
            .filter(|(_, h)| **h)
            .map(|(a, _)| a.to_string())
            .collect();
        let health = self.health.as_ref().map(|h| h.status()).unwrap_or_default();
        let v = serde_json::json!({
            "vrrp": vrrp,
            "vips_held": held,
            "health": health,
            "reloads": { "success": self.reloads_ok, "failure": self.reloads_failed },
            "workers": { "running": self.workers_running, "stalls": self.worker_stalls },
        });
        let mut v = v;
        if let (Some(b), Some(o)) = (&self.bgp, v.as_object_mut()) {
            // The speaker, its sessions, the VIPs and the drain
            // (`ferrovsadm -L --bgp` in JSON); absent without BGP.
            o.insert(
                "bgp".into(),
                serde_json::to_value(&**b.load()).unwrap_or_default(),
            );
        }
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }
}
