//! A new configuration (SIGHUP), in two phases. Everything the new file
//! means (table, FULLNAT local addresses, timeouts, the health checks'
//! plan, the dataplane snapshot, whether VRRP can run it) is built beside
//! the running state first; only when all of it stands is it committed,
//! together. A refused reload leaves every part as it was. Only what
//! changed is applied, as keepalived's reload does.

use super::{Core, CoreError, Desired, Level, Output, TableChange};
use ferrovs_config::ipvs::{initial_table, ServiceKey};
use ferrovs_config::{Config, Loaded};
use std::collections::HashMap;
use std::net::IpAddr;

/// A configuration file as read, with what the health checks make of it.
pub struct Reload {
    /// The file's name, for the messages.
    pub path: String,
    pub loaded: Loaded,
    /// The health checks' plan for the table: servers in both
    /// configurations keep their state (a failed one stays out). None
    /// without health checks: the files' own difference.
    pub health: Option<Vec<TableChange>>,
}

impl Core {
    pub(super) fn reload(&mut self, r: Reload) {
        self.log(
            Level::Info,
            format!("Reloading configuration file {}", r.path),
        );
        let result = self.try_reload(r);
        self.reloads.last_ok = result.is_ok();
        match &result {
            Ok(n) => {
                self.reloads.ok += 1;
                self.log(Level::Info, format!("Reload finished: {n} rule change(s)"));
            }
            Err(e) => {
                self.reloads.failed += 1;
                self.log(Level::Error, e.to_string());
            }
        }
        self.out.push(Output::Reloaded(result));
        self.out.push(Output::ViewChanged);
        // VRRP that did not run (no instance before, or its interfaces had
        // no address) starts with the configuration in force now.
        self.maybe_start_vrrp();
    }

    fn try_reload(&mut self, r: Reload) -> Result<usize, CoreError> {
        for d in r.loaded.diagnostics.warnings() {
            self.log(Level::Warn, d.to_string());
        }
        for d in r.loaded.diagnostics.errors() {
            self.log(Level::Error, d.to_string());
        }
        if r.loaded.diagnostics.has_errors() {
            let first = r
                .loaded
                .diagnostics
                .errors()
                .next()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(CoreError::ConfigErrors {
                path: r.path,
                first,
            });
        }
        let new_cfg = r.loaded.config;

        // Phase 1: the next state beside the running one.
        // Changes against the old file's (or the checks') table, which the
        // running one may no longer be (an administrator's edits): each
        // is applied as the state it leads to.
        let changes = Desired::of_all(&match r.health {
            Some(plan) => plan,
            None => TableChange::diff(&initial_table(&self.config), &initial_table(&new_cfg)),
        });
        let mut next = self.state.clone();
        if new_cfg.global.lvs_timeouts != self.config.global.lvs_timeouts {
            if let Some(t) = new_cfg.global.lvs_timeouts {
                next.timeouts.set(t.tcp, t.tcpfin, t.udp);
            }
        }
        next.laddrs = laddrs_from_config(&new_cfg);
        next.sloppy_tcp = new_cfg.ferrovs.sloppy_tcp;
        let mut t = next.table.clone();
        self.reconcile(&mut t, &changes, "reload");
        next.replace_table(t);
        // Without a VRRP driver (none ran, or it waits for addresses), the
        // new file's VIPs are known now, released until an instance takes
        // them (as at start); a running driver lists them itself after its
        // reload (`Input::VipsListed`).
        let vips = if self.vrrp_running {
            self.vrrp_vips.clone()
        } else {
            let listed = crate::vrrp::driver::vrrp_vips(&new_cfg);
            let mut v = self.vrrp_vips.clone();
            v.retain(|a, _| listed.contains(a));
            for a in listed {
                v.entry(a).or_insert(false);
            }
            v
        };
        let vip_list: Vec<_> = vips.iter().map(|(a, h)| (*a, *h)).collect();
        let snap = next
            .build(self.generation + 1, &self.net, &vip_list)
            .map_err(|e| CoreError::ReloadRejected(e.into()))?;
        // VRRP: every instance of the new file must be able to run.
        if self.vrrp_running {
            if let Some(ns) = &self.kernel {
                crate::vrrp::driver::check(&new_cfg, &self.net, self.workers_running, ns)
                    .map_err(|e| CoreError::ReloadRejected(e.into()))?;
            }
        }

        // Phase 2: all of it, now.
        if new_cfg.ferrovs != self.config.ferrovs {
            self.log(
                Level::Warn,
                "changes to the ferrovs {} block take effect at the next start",
            );
        }
        self.generation += 1;
        self.state = next;
        self.vrrp_vips = vips;
        self.out.push(Output::Publish(Box::new(snap)));
        self.out.push(Output::CommitHealthPlan);
        if self.vrrp_running {
            self.out.push(Output::ReloadVrrp(Box::new(new_cfg.clone())));
        }
        self.config = new_cfg;
        Ok(changes.len())
    }
}

/// FULLNAT local addresses of every service, from `laddr_group_name`, of
/// both families (DPVS's IPv6 local address groups; IPv4 ones for NAT64).
pub fn laddrs_from_config(cfg: &Config) -> HashMap<ServiceKey, Vec<IpAddr>> {
    let mut out = HashMap::new();
    for vs in &cfg.virtual_servers {
        let Some(g) = vs
            .laddr_group_name
            .as_ref()
            .and_then(|n| cfg.local_address_group(n))
        else {
            continue;
        };
        let addrs = g.addresses();
        for k in ferrovs_config::ipvs::service_keys(cfg, vs) {
            out.insert(k, addrs.clone());
        }
    }
    out
}
