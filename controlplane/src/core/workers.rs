//! The workers' liveness (see [`crate::heartbeat`]): a worker that stops
//! polling is logged and counted, and VRRP gives the VIPs up while one is
//! stalled (its `workers` track).

use super::{Core, Level, Output};
use std::time::Instant;

impl Core {
    pub(super) fn heartbeats(&mut self, stamps: &[u64], now: Instant) {
        let now_ms = crate::heartbeat::clock_ms(self.epoch, now);
        let changes = self.workers.check(stamps, now_ms);
        if changes.is_empty() {
            return;
        }
        for c in changes {
            if c.stalled {
                self.log(
                    Level::Error,
                    format!(
                        "worker {} has not polled for {} ms: its flows are not forwarded; VRRP gives the VIPs up",
                        c.worker, c.silent_ms
                    ),
                );
            } else {
                self.log(Level::Info, format!("worker {} polls again", c.worker));
            }
        }
        let running = self.workers.all_running();
        if running != self.workers_running {
            self.workers_running = running;
            if self.vrrp_running {
                self.out.push(Output::TrackWorkers(running));
            }
        }
        self.out.push(Output::ViewChanged);
    }
}
