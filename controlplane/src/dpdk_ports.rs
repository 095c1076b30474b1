//! The DPDK backend for `ferrovs run`: starts the EAL from
//! `ferrovs { dpdk { eal_args ... } }`, opens one RX/TX queue pair per
//! worker on every port, creates the exception TAPs the kernel keeps the
//! director's own traffic on, steers FULLNAT replies with NIC flow rules
//! where the device can, and runs the workers on EAL lcores.
//!
//! Naming follows DPVS's KNI: each `interface NAME` of the configuration is
//! the kernel's name for the exception interface of one DPDK port. The
//! director's addresses and routes go on that interface (ifupdown,
//! systemd-networkd or `ip addr add`, after ferrovs has created it); the
//! daemon follows them.

use crate::daemon::{OpenRequest, Opened, PortError, SpawnError};
use crate::port_device::PortDevice;
use ferrovs_dataplane::port::dpdk::{register_thread, Device, DeviceConfig, DpdkPort, Eal};
use std::sync::Arc;
use tracing::{info, warn};

/// EAL arguments: the configured ones, with defaults for what they leave
/// out (an lcore per worker, quiet logs).
pub fn eal_args(configured: &[String], workers: usize, cpus: usize) -> Vec<String> {
    let mut args = configured.to_vec();
    // Any spelling of an lcore choice: -l LIST, -lLIST, -c MASK, --lcores=...
    let given = |prefixes: &[&str]| {
        configured
            .iter()
            .any(|a| prefixes.iter().any(|p| a.starts_with(p)))
    };
    if !given(&["-l", "-c", "--lcores"]) {
        // Main lcore on CPU 0; worker lcores on the other CPUs, sharing
        // them when there are fewer CPUs than workers.
        let cpus = cpus.max(1);
        let mut map = vec!["0@0".to_string()];
        for w in 0..workers {
            let cpu = if cpus > 1 { 1 + w % (cpus - 1) } else { 0 };
            map.push(format!("{}@{cpu}", w + 1));
        }
        args.push(format!("--lcores={}", map.join(",")));
    }
    if !given(&["--log-level"]) {
        args.push("--log-level=notice".into());
    }
    args
}

/// The device behind each interface: the `port` lines, then the probed
/// devices nobody named, in port-id order.
fn device_names(req: &OpenRequest, probed: &[String]) -> Result<Vec<String>, PortError> {
    let named = &req.settings.dpdk.ports;
    let mut free = probed
        .iter()
        .filter(|d| !named.iter().any(|(_, n)| n == *d))
        .filter(|d| !d.starts_with("net_tap"));
    req.ifaces
        .iter()
        .map(|i| match named.iter().find(|(n, _)| n == i) {
            Some((_, dev)) => Ok(dev.clone()),
            None => free.next().cloned().ok_or_else(|| PortError::NoDevice {
                iface: i.clone(),
                probed: if probed.is_empty() {
                    "none".to_string()
                } else {
                    probed.join(", ")
                },
            }),
        })
        .collect()
}

struct DpdkDevice {
    name: String,
    dev: Arc<Device>,
}

impl PortDevice for DpdkDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn link_up(&self) -> bool {
        self.dev.link().up
    }
    fn stat(&self, name: &str) -> u64 {
        let s = self.dev.stats();
        match name {
            "rx_packets" => s.ipackets,
            "tx_packets" => s.opackets,
            "rx_dropped" => s.imissed + s.rx_nombuf,
            "tx_dropped" => s.oerrors,
            "rx_errors" => s.ierrors,
            _ => 0,
        }
    }
    fn buffers(&self) -> Option<(u64, u64)> {
        let (used, size) = self.dev.mempool_usage();
        Some((used as u64, size as u64))
    }
}

/// Opens the DPDK ports for `run`.
pub fn open(req: &OpenRequest) -> Result<Opened<DpdkPort>, PortError> {
    let d = &req.settings.dpdk;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let args = eal_args(&d.eal_args, req.workers, cpus);
    info!("starting the DPDK EAL: {}", args.join(" "));
    let eal = Eal::init(&args).map_err(|error| PortError::Dpdk {
        context: "DPDK EAL".into(),
        error,
    })?;
    let probed: Vec<String> = eal.devices().into_iter().map(|x| x.name).collect();
    let names = device_names(req, &probed)?;
    let queues = u16::try_from(req.workers).map_err(|_| PortError::TooManyWorkers)?;
    let cfg = DeviceConfig {
        queues,
        rx_desc: d.rx_desc,
        tx_desc: d.tx_desc,
        mbufs: d.mbufs,
        // VRRP adverts go to a multicast MAC; the dataplane sorts frames by
        // address anyway.
        promiscuous: true,
    };
    let mut ports: Vec<Vec<DpdkPort>> = (0..req.workers).map(|_| Vec::new()).collect();
    let mut kernel: Vec<Vec<DpdkPort>> = (0..req.workers).map(|_| Vec::new()).collect();
    let mut macs = Vec::new();
    let mut devices: Vec<Arc<dyn PortDevice>> = Vec::new();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    for (ifname, dev_name) in req.ifaces.iter().zip(&names) {
        let (dev, qs) = Device::open(&eal, dev_name, &cfg).map_err(|error| PortError::Dpdk {
            context: format!("{ifname} ({dev_name})"),
            error,
        })?;
        let mac = dev.mac();
        info!(
            "{ifname}: DPDK device {dev_name} (port {}), {} queue(s), MAC {}",
            dev.port_id(),
            queues,
            mac.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        );
        for (w, q) in qs.into_iter().enumerate() {
            ports[w].push(q);
        }
        // The kernel's side of the port: same name as configured, same MAC.
        let tap_cfg = DeviceConfig {
            promiscuous: false,
            ..cfg
        };
        let (tap, tqs) =
            Device::create_tap(&eal, ifname, mac, &tap_cfg).map_err(|error| PortError::Dpdk {
                context: format!("{ifname}: creating the exception interface"),
                error,
            })?;
        for (w, q) in tqs.into_iter().enumerate() {
            kernel[w].push(q);
        }
        if let Err(e) = (req.link_up)(ifname) {
            warn!("{ifname}: bringing the exception interface up: {e}");
        }
        if d.flow_steering && !req.laddrs.is_empty() && req.workers > 1 {
            if !req.workers.is_power_of_two() {
                info!("{ifname}: FULLNAT replies steered in software ({} workers is not a power of two)", req.workers);
            } else {
                match dev.steer_fullnat(&req.laddrs) {
                    Ok(n) => info!("{ifname}: FULLNAT replies steered by {n} NIC flow rules"),
                    Err(e) => info!(
                        "{ifname}: FULLNAT replies steered in software (no NIC flow rules: {e})"
                    ),
                }
            }
        }
        macs.push(mac);
        devices.push(Arc::new(DpdkDevice {
            name: ifname.clone(),
            dev,
        }));
        keep.push(Box::new(tap));
    }
    let lcores = eal.worker_lcores();
    let spawn_eal = eal.clone();
    keep.push(Box::new(eal));
    if lcores.len() < req.workers {
        warn!(
            "{} EAL worker lcore(s) for {} workers: the others run on registered threads",
            lcores.len(),
            req.workers
        );
    }
    Ok(Opened {
        ports,
        kernel,
        macs: Some(macs),
        devices,
        spawn: Some(Box::new(move |w, body| {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let run: Box<dyn FnOnce() + Send> = Box::new(move || {
                body();
                let _ = done_tx.send(());
            });
            match lcores.get(w) {
                Some(&lcore) => {
                    spawn_eal
                        .launch(lcore, run)
                        .map_err(|error| SpawnError::Lcore { lcore, error })?;
                }
                None => {
                    std::thread::Builder::new()
                        .name(format!("ferrovs-w{w}"))
                        .spawn(move || {
                            // An lcore id, so that the mempool's per-lcore
                            // cache serves this thread.
                            if let Err(e) = register_thread() {
                                warn!("worker {w}: rte_thread_register: {e}");
                            }
                            run()
                        })
                        .map_err(SpawnError::Thread)?;
                }
            }
            Ok(Box::new(move || {
                let _ = done_rx.recv();
            }) as Box<dyn FnOnce() + Send>)
        })),
        keep,
        on_publish: None,
        handover: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lcores_share_cpus_when_short() {
        let a = eal_args(&["--no-huge".into()], 2, 2);
        assert_eq!(
            a,
            ["--no-huge", "--lcores=0@0,1@1,2@1", "--log-level=notice"]
        );
        let a = eal_args(
            &["-l".into(), "0-3".into(), "--log-level=debug".into()],
            3,
            8,
        );
        assert_eq!(a, ["-l", "0-3", "--log-level=debug"]);
        let a = eal_args(&[], 3, 8);
        assert_eq!(a[0], "--lcores=0@0,1@1,2@2,3@3");
    }
}
