//! Prometheus metrics, read at scrape time from the workers' per-worker
//! cells and the control plane's state: nothing on the fast path changes
//! for them. Names follow Prometheus conventions (`ferrovs_` prefix,
//! `_total` counters, base units); labels stop at services, real servers,
//! workers and reasons, never connections.

use crate::view::ViewCell;
use ferrovs_config::ipvs::ServiceKey;
use ferrovs_dataplane::counters::DropReason;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
/// (name, help, reader) of a per-real-server gauge.
type DestGauge = (
    &'static str,
    &'static str,
    fn(&ferrovs_config::ipvsadm::ListedDest) -> i64,
);
/// (name, help, reader) of a per-worker counter.
type WorkerCounter = (
    &'static str,
    &'static str,
    fn(&ferrovs_dataplane::counters::WorkerCounters) -> u64,
);

fn family<'a>(
    enc: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
    t: MetricType,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    enc.encode_descriptor(name, help, None, t)
}

trait Samples {
    fn counter(&mut self, labels: &Labels, v: u64) -> Result<(), std::fmt::Error>;
    fn gauge(&mut self, labels: &Labels, v: i64) -> Result<(), std::fmt::Error>;
}

/// A gauge without labels (no `{}` in the output).
fn single_gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Samples for MetricEncoder<'_> {
    fn counter(&mut self, labels: &Labels, v: u64) -> Result<(), std::fmt::Error> {
        ConstCounter::new(v).encode(self.encode_family(labels)?)
    }
    fn gauge(&mut self, labels: &Labels, v: i64) -> Result<(), std::fmt::Error> {
        ConstGauge::new(v).encode(self.encode_family(labels)?)
    }
}

fn l(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// An address as ipvsadm writes it (glibc's inet_ntop for IPv6, which
/// differs from Rust's Display for IPv4-compatible forms).
fn ip_text(a: &std::net::IpAddr) -> String {
    match a {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => ferrovs_config::ipvs::ntop6(a),
    }
}

fn service_labels(k: &ServiceKey) -> Labels {
    match k {
        ServiceKey::Addr { proto, addr, port } => l(&[
            ("protocol", proto.name().to_string()),
            ("vip", ip_text(addr)),
            ("port", port.to_string()),
        ]),
        ServiceKey::Fwmark { mark, .. } => l(&[
            ("protocol", "FWM".to_string()),
            ("vip", format!("fwmark {mark}")),
            ("port", "0".to_string()),
        ]),
    }
}

/// Reads everything at scrape time.
pub struct DaemonCollector {
    view: ViewCell,
}

impl std::fmt::Debug for DaemonCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DaemonCollector")
    }
}

impl Collector for DaemonCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let d = self.view.load_full();
        let Ok(listing) = d.state.listing(None) else {
            return Ok(());
        };
        let dirs = [("in", true), ("out", false)];

        let mut f = family(
            &mut enc,
            "ferrovs_service_connections",
            "Connections scheduled by the virtual service.",
            MetricType::Counter,
        )?;
        for s in &listing.services {
            f.counter(&service_labels(&s.service.key), s.stats.conns)?;
        }
        let mut f = family(
            &mut enc,
            "ferrovs_service_packets",
            "Packets of the virtual service by direction (in: client to server).",
            MetricType::Counter,
        )?;
        for s in &listing.services {
            for (dir, inb) in dirs {
                let mut lb = service_labels(&s.service.key);
                lb.push(("direction".into(), dir.into()));
                f.counter(&lb, if inb { s.stats.inpkts } else { s.stats.outpkts })?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_service_bytes",
            "Bytes of the virtual service by direction.",
            MetricType::Counter,
        )?;
        for s in &listing.services {
            for (dir, inb) in dirs {
                let mut lb = service_labels(&s.service.key);
                lb.push(("direction".into(), dir.into()));
                f.counter(
                    &lb,
                    if inb {
                        s.stats.inbytes
                    } else {
                        s.stats.outbytes
                    },
                )?;
            }
        }

        let rs_labels = |k: &ServiceKey, a: &std::net::IpAddr, p: u16| {
            let mut lb = service_labels(k);
            lb.push(("real_server".into(), ip_text(a)));
            lb.push(("real_port".into(), p.to_string()));
            lb
        };
        let mut f = family(
            &mut enc,
            "ferrovs_real_server_connections",
            "Connections scheduled to the real server.",
            MetricType::Counter,
        )?;
        for s in &listing.services {
            for r in &s.dests {
                f.counter(
                    &rs_labels(&s.service.key, &r.dest.addr, r.dest.port),
                    r.stats.conns,
                )?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_real_server_packets",
            "Packets of the real server by direction.",
            MetricType::Counter,
        )?;
        for s in &listing.services {
            for r in &s.dests {
                for (dir, inb) in dirs {
                    let mut lb = rs_labels(&s.service.key, &r.dest.addr, r.dest.port);
                    lb.push(("direction".into(), dir.into()));
                    f.counter(&lb, if inb { r.stats.inpkts } else { r.stats.outpkts })?;
                }
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_real_server_bytes",
            "Bytes of the real server by direction.",
            MetricType::Counter,
        )?;
        for s in &listing.services {
            for r in &s.dests {
                for (dir, inb) in dirs {
                    let mut lb = rs_labels(&s.service.key, &r.dest.addr, r.dest.port);
                    lb.push(("direction".into(), dir.into()));
                    f.counter(
                        &lb,
                        if inb {
                            r.stats.inbytes
                        } else {
                            r.stats.outbytes
                        },
                    )?;
                }
            }
        }
        let gauges: [DestGauge; 4] = [
            (
                "ferrovs_real_server_active_connections",
                "ESTABLISHED connections (ipvsadm ActiveConn).",
                |r| r.active_conns as i64,
            ),
            (
                "ferrovs_real_server_inactive_connections",
                "Connections in any other state (ipvsadm InActConn).",
                |r| r.inact_conns as i64,
            ),
            (
                "ferrovs_real_server_persistent_connections",
                "Persistence templates pointing at the real server.",
                |r| r.persist_conns as i64,
            ),
            (
                "ferrovs_real_server_weight",
                "Current weight (0: quiesced or inhibited).",
                |r| r.dest.weight as i64,
            ),
        ];
        for (name, help, get) in gauges {
            let mut f = family(&mut enc, name, help, MetricType::Gauge)?;
            for s in &listing.services {
                for r in &s.dests {
                    f.gauge(
                        &rs_labels(&s.service.key, &r.dest.addr, r.dest.port),
                        get(r),
                    )?;
                }
            }
        }

        // Workers.
        let counters = d.dataplane.counters();
        let worker_counters: [WorkerCounter; 40] = [
            ("ferrovs_worker_rx_packets", "Packets received.", |c| {
                c.rx_packets.get()
            }),
            ("ferrovs_worker_rx_bytes", "Bytes received.", |c| {
                c.rx_bytes.get()
            }),
            ("ferrovs_worker_tx_packets", "Packets transmitted.", |c| {
                c.tx_packets.get()
            }),
            ("ferrovs_worker_tx_bytes", "Bytes transmitted.", |c| {
                c.tx_bytes.get()
            }),
            (
                "ferrovs_worker_handover_out_packets",
                "Packets passed to the worker owning their flow.",
                |c| c.handover_out.get(),
            ),
            (
                "ferrovs_worker_handover_in_packets",
                "Packets received from another worker.",
                |c| c.handover_in.get(),
            ),
            (
                "ferrovs_worker_connections_created",
                "Connections created.",
                |c| c.conns_created.get(),
            ),
            (
                "ferrovs_worker_connections_expired",
                "Connections expired.",
                |c| c.conns_expired.get(),
            ),
            (
                "ferrovs_worker_fast_path_offloaded",
                "DR connections offered to the XDP program's flow map (fast path).",
                |c| c.fast_offloaded.get(),
            ),
            (
                "ferrovs_worker_fast_path_removed",
                "Offloaded connections taken back from the XDP flow map (FIN/RST, expiry, next-hop change).",
                |c| c.fast_removed.get(),
            ),
            (
                "ferrovs_worker_fast_path_refused",
                "Offers the XDP flow map refused (full): those flows stay with the worker.",
                |c| c.fast_refused.get(),
            ),
            (
                "ferrovs_worker_fast_path_kept",
                "Timer firings that found the XDP program still forwarding the connection (re-armed).",
                |c| c.fast_kept.get(),
            ),
            (
                "ferrovs_worker_sync_chained",
                "TCP segments without a connection passed to the next worker looking for a synced one.",
                |c| c.sync_chained.get(),
            ),
            (
                "ferrovs_worker_busy_polls",
                "Polls that found packets.",
                |c| c.busy_polls.get(),
            ),
            ("ferrovs_worker_idle_polls", "Polls that found none.", |c| {
                c.idle_polls.get()
            }),
            (
                "ferrovs_worker_kernel_out_packets",
                "Frames for the director itself passed to the exception interface.",
                |c| c.kernel_out.get(),
            ),
            (
                "ferrovs_worker_kernel_in_packets",
                "Frames the kernel sent out through the exception interface.",
                |c| c.kernel_in.get(),
            ),
            (
                "ferrovs_worker_arp_replies",
                "ARP replies sent for VIPs and local addresses.",
                |c| c.arp_replies.get(),
            ),
            (
                "ferrovs_worker_persistence_template_refusals",
                "New connections that found the template table full.",
                |c| c.templates_full.get(),
            ),
            (
                "ferrovs_worker_secure_tcp_held",
                "Client segments that did not establish a NAT/FULLNAT connection under pressure because the real server had not answered (secure TCP).",
                |c| c.secure_tcp_held.get(),
            ),
            (
                "ferrovs_worker_connections_revived",
                "Half-open connections evicted by a flood and brought back by the client's next segment (to the same real server).",
                |c| c.conns_revived.get(),
            ),
            (
                "ferrovs_worker_connections_picked_up",
                "Connections made for a mid-flow TCP segment of a flow this director did not know (sloppy_tcp: another director started it, behind ECMP).",
                |c| c.conns_picked_up.get(),
            ),
            (
                "ferrovs_worker_conn_table_pressure_entered",
                "Times the worker's connection table came under pressure (fewer than 1/8 of its slots free).",
                |c| c.conn_pressure_entered.get(),
            ),
            (
                "ferrovs_worker_connections_untracked",
                "Half-open or unconfirmed connections the eviction ring gave up (left to their timeout).",
                |c| c.conns_untracked.get(),
            ),
            (
                "ferrovs_worker_synproxy_cookies_sent",
                "SYN proxy: SYN-ACKs carrying a cookie sent (no connection created).",
                |c| c.synproxy_cookies_sent.get(),
            ),
            (
                "ferrovs_worker_synproxy_cookies_validated",
                "SYN proxy: client ACKs whose cookie validated (a connection and a SYN to a real server each).",
                |c| c.synproxy_cookies_validated.get(),
            ),
            (
                "ferrovs_worker_synproxy_cookies_failed",
                "SYN proxy: client ACKs without a connection whose cookie was wrong or expired (dropped).",
                |c| c.synproxy_cookies_failed.get(),
            ),
            (
                "ferrovs_worker_synproxy_rs_established",
                "SYN proxy: real-server handshakes completed.",
                |c| c.synproxy_rs_established.get(),
            ),
            (
                "ferrovs_worker_synproxy_rs_refused",
                "SYN proxy: real servers that answered the SYN with a RST (passed on to the client).",
                |c| c.synproxy_rs_refused.get(),
            ),
            (
                "ferrovs_worker_synproxy_syn_retransmitted",
                "SYN proxy: SYNs sent to a real server again because the client retransmitted a held segment.",
                |c| c.synproxy_syn_retransmitted.get(),
            ),
            (
                "ferrovs_worker_synproxy_early_held",
                "SYN proxy: client segments held until their real server's handshake completed.",
                |c| c.synproxy_early_held.get(),
            ),
            (
                "ferrovs_worker_synproxy_early_released",
                "SYN proxy: held client segments forwarded once the handshake completed.",
                |c| c.synproxy_early_released.get(),
            ),
            (
                "ferrovs_worker_synproxy_early_dropped",
                "SYN proxy: early client segments dropped (no free hold slot, waited too long, or refused server); the client retransmits.",
                |c| c.synproxy_early_dropped.get(),
            ),
            (
                "ferrovs_worker_frag_datagrams",
                "IPv4 fragments: datagrams tracked by the shallow reassembly table.",
                |c| c.frag_datagrams.get(),
            ),
            (
                "ferrovs_worker_frag_forwarded",
                "IPv4 fragments passed on to forwarding with their datagram's connection.",
                |c| c.frag_forwarded.get(),
            ),
            (
                "ferrovs_worker_frag_held",
                "IPv4 fragments held because they came before their datagram's first fragment.",
                |c| c.frag_held.get(),
            ),
            (
                "ferrovs_worker_frag_released",
                "IPv4 held fragments released when their first fragment came.",
                |c| c.frag_released.get(),
            ),
            (
                "ferrovs_worker_frag_expired",
                "IPv4 fragmented datagrams given up incomplete after 3 s.",
                |c| c.frag_expired.get(),
            ),
            (
                "ferrovs_worker_frag_chained",
                "IPv4 fragments of a flow this worker had no connection for, passed to the next worker to look in its table.",
                |c| c.frag_chained.get(),
            ),
            (
                "ferrovs_worker_frag_evicted",
                "IPv4 fragmented datagrams evicted, the oldest first, to make room in a full table.",
                |c| c.frag_evicted.get(),
            ),
        ];
        for (name, help, get) in worker_counters {
            let mut f = family(&mut enc, name, help, MetricType::Counter)?;
            for (w, c) in counters.iter().enumerate() {
                f.counter(&l(&[("worker", w.to_string())]), get(c))?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_worker_drops",
            "Packets dropped, by reason.",
            MetricType::Counter,
        )?;
        for (w, c) in counters.iter().enumerate() {
            for r in DropReason::ALL {
                f.counter(
                    &l(&[("worker", w.to_string()), ("reason", r.name().to_string())]),
                    c.dropped(*r),
                )?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_worker_connections_evicted",
            "Connections evicted, oldest first, to make room for a new one in a full table, by what they were: tcp_half_open (NONE, SYN_SENT, SYN_RECV, SYNACK) or udp_unconfirmed.",
            MetricType::Counter,
        )?;
        for (w, c) in counters.iter().enumerate() {
            for (reason, v) in [
                ("tcp_half_open", c.evicted_tcp_half_open.get()),
                ("udp_unconfirmed", c.evicted_udp_unconfirmed.get()),
            ] {
                f.counter(
                    &l(&[("worker", w.to_string()), ("reason", reason.to_string())]),
                    v,
                )?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_worker_connections",
            "Connections in the worker's table.",
            MetricType::Gauge,
        )?;
        for (w, c) in counters.iter().enumerate() {
            f.gauge(
                &l(&[("worker", w.to_string())]),
                c.conns_active.get() as i64,
            )?;
        }
        let worker_gauges: [WorkerCounter; 6] = [
            (
                "ferrovs_worker_connections_unconfirmed",
                "Eviction candidates in the worker's table: half-open TCP and unconfirmed UDP connections.",
                |c| c.conns_unconfirmed.get(),
            ),
            (
                "ferrovs_worker_connection_table_size",
                "Capacity of the worker's connection table (conn_table_size).",
                |c| c.conn_capacity.get(),
            ),
            (
                "ferrovs_worker_conn_table_pressure",
                "1 while the worker's connection table is under pressure (short half-open and UDP timeouts, secure TCP), else 0.",
                |c| c.conn_pressure.get(),
            ),
            (
                "ferrovs_neighbour_entries",
                "Resolved and resolving neighbours in the worker's cache.",
                |c| c.neigh_entries.get(),
            ),
            (
                "ferrovs_neighbour_queued_packets",
                "Packets waiting for ARP resolution.",
                |c| c.neigh_queued.get(),
            ),
            (
                "ferrovs_laddr_ports_in_use",
                "FULLNAT local ports held by the worker's connections.",
                |c| c.laddr_ports_in_use.get(),
            ),
        ];
        for (name, help, get) in worker_gauges {
            let mut f = family(&mut enc, name, help, MetricType::Gauge)?;
            for (w, c) in counters.iter().enumerate() {
                f.gauge(&l(&[("worker", w.to_string())]), get(c) as i64)?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_handover_ring_packets",
            "Packets waiting in the rings towards the worker.",
            MetricType::Gauge,
        )?;
        for w in 0..d.dataplane.workers() {
            f.gauge(
                &l(&[("worker", w.to_string())]),
                d.dataplane.handover_backlog(w) as i64,
            )?;
        }
        // The FULLNAT local-port pool: in use per worker (above), and what
        // each worker's slice holds; exhaustion shows as the drop reason
        // `laddr_exhausted`.
        let laddrs: std::collections::BTreeSet<std::net::IpAddr> =
            d.state.laddrs.values().flatten().copied().collect();
        let mut f = family(
            &mut enc,
            "ferrovs_laddr_ports_capacity",
            "FULLNAT local ports in the worker's slice, over all local addresses (per real server address and port).",
            MetricType::Gauge,
        )?;
        let per = ferrovs_dataplane::fwd::fullnat::ports_per_worker(d.dataplane.workers()) as i64;
        for w in 0..d.dataplane.workers() {
            f.gauge(&l(&[("worker", w.to_string())]), per * laddrs.len() as i64)?;
        }
        // Ports: link state, device counters, packet buffers.
        let mut f = family(
            &mut enc,
            "ferrovs_port_up",
            "Whether the port's link is up.",
            MetricType::Gauge,
        )?;
        for p in &d.devices {
            f.gauge(&l(&[("port", p.name().to_string())]), p.link_up() as i64)?;
        }
        for (stat, help) in crate::port_device::STATS {
            let name = format!("ferrovs_port_{stat}");
            let mut f = family(&mut enc, &name, help, MetricType::Counter)?;
            for p in &d.devices {
                f.counter(&l(&[("port", p.name().to_string())]), p.stat(stat))?;
            }
        }
        // Per-queue figures of the backend's sockets (AF_XDP rings,
        // AF_PACKET counters), one family per figure.
        let qstats: Vec<_> = d
            .devices
            .iter()
            .flat_map(|p| {
                let n = p.name().to_string();
                p.queue_stats().into_iter().map(move |q| (n.clone(), q))
            })
            .collect();
        let mut names: Vec<_> = qstats
            .iter()
            .map(|(_, q)| (q.name, q.help, q.counter))
            .collect();
        names.dedup_by_key(|x| x.0);
        names.sort();
        names.dedup();
        for (name, help, counter) in names {
            let kind = if counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let full = format!("ferrovs_{name}");
            let mut f = family(&mut enc, &full, help, kind)?;
            for (port, q) in qstats.iter().filter(|(_, q)| q.name == name) {
                let labels = l(&[("port", port.clone()), ("queue", q.queue.to_string())]);
                if counter {
                    f.counter(&labels, q.value)?;
                } else {
                    f.gauge(&labels, q.value as i64)?;
                }
            }
        }
        let pools: Vec<_> = d
            .devices
            .iter()
            .filter_map(|p| p.buffers().map(|b| (p.name().to_string(), b)))
            .collect();
        if !pools.is_empty() {
            let mut f = family(
                &mut enc,
                "ferrovs_mempool_buffers_in_use",
                "Packet buffers of the port's pool in use (DPDK mempool).",
                MetricType::Gauge,
            )?;
            for (name, (used, _)) in &pools {
                f.gauge(&l(&[("port", name.clone())]), *used as i64)?;
            }
            let mut f = family(
                &mut enc,
                "ferrovs_mempool_buffers",
                "Packet buffers of the port's pool (DPDK mempool).",
                MetricType::Gauge,
            )?;
            for (name, (_, size)) in &pools {
                f.gauge(&l(&[("port", name.clone())]), *size as i64)?;
            }
        }
        single_gauge(
            &mut enc,
            "ferrovs_conn_table_capacity",
            "Connections each worker's table holds at most.",
            d.state.table_size as i64,
        )?;
        single_gauge(
            &mut enc,
            "ferrovs_persistence_templates",
            "Live persistence templates.",
            d.state.templates.iter(d.now_s()).count() as i64,
        )?;
        single_gauge(
            &mut enc,
            "ferrovs_draining_real_servers",
            "Removed real servers whose connections still run.",
            d.state.draining_count() as i64,
        )?;

        // VRRP.
        let vrrp = d.vrrp_status.lock().map(|v| v.clone()).unwrap_or_default();
        let mut f = family(
            &mut enc,
            "ferrovs_vrrp_state",
            "VRRP instance state (1 for the current one).",
            MetricType::Gauge,
        )?;
        for i in &vrrp {
            for st in ["INIT", "BACKUP", "MASTER", "FAULT", "STOP"] {
                f.gauge(
                    &l(&[("instance", i.name.clone()), ("state", st.to_string())]),
                    (i.state == st) as i64,
                )?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_vrrp_effective_priority",
            "Priority with tracking weights applied.",
            MetricType::Gauge,
        )?;
        for i in &vrrp {
            f.gauge(
                &l(&[("instance", i.name.clone())]),
                i.effective_priority as i64,
            )?;
        }
        let mut f = family(
            &mut enc,
            "ferrovs_vrrp_transitions",
            "State transitions of the instance.",
            MetricType::Counter,
        )?;
        for i in &vrrp {
            f.counter(&l(&[("instance", i.name.clone())]), i.transitions)?;
        }
        let mut f = family(
            &mut enc,
            "ferrovs_vrrp_dropped_adverts",
            "VRRP packets received for the instance and dropped: malformed, or refused by the receive checks (TTL/hop limit, source, auth, VIP list), IPv4 and IPv6 alike.",
            MetricType::Counter,
        )?;
        for i in &vrrp {
            f.counter(&l(&[("instance", i.name.clone())]), i.dropped_adverts)?;
        }

        // Health checks.
        let health = d.health.as_ref().map(|h| h.status()).unwrap_or_default();
        let hl = |vs: &crate::health::VirtualServerStatus, rs: &crate::health::RealServerStatus| {
            l(&[
                ("virtual_server", vs.name.clone()),
                ("real_server", ip_text(&rs.addr)),
                ("real_port", rs.port.to_string()),
            ])
        };
        let mut f = family(
            &mut enc,
            "ferrovs_real_server_up",
            "Whether the real server passes its health checks.",
            MetricType::Gauge,
        )?;
        for vs in &health {
            for rs in &vs.real_servers {
                f.gauge(&hl(vs, rs), rs.alive as i64)?;
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_healthcheck_latency_seconds",
            "How long the last health check of the real server took.",
            MetricType::Gauge,
        )?;
        for vs in &health {
            for rs in &vs.real_servers {
                if let Some(last) = &rs.last {
                    ConstGauge::new(last.latency_us as f64 / 1e6)
                        .encode(f.encode_family(&hl(vs, rs))?)?;
                }
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_healthcheck_last_success",
            "Whether the last health check of the real server passed.",
            MetricType::Gauge,
        )?;
        for vs in &health {
            for rs in &vs.real_servers {
                if let Some(last) = &rs.last {
                    f.gauge(&hl(vs, rs), last.ok as i64)?;
                }
            }
        }
        let mut f = family(
            &mut enc,
            "ferrovs_virtual_server_quorum_up",
            "Whether the virtual server's live weight meets its quorum.",
            MetricType::Gauge,
        )?;
        for vs in &health {
            f.gauge(
                &l(&[("virtual_server", vs.name.clone())]),
                vs.quorum_up as i64,
            )?;
        }

        // Lifecycle.
        let mut f = family(
            &mut enc,
            "ferrovs_reloads",
            "Configuration reloads by result.",
            MetricType::Counter,
        )?;
        f.counter(&l(&[("result", "success".into())]), d.reloads_ok)?;
        f.counter(&l(&[("result", "failure".into())]), d.reloads_failed)?;
        single_gauge(
            &mut enc,
            "ferrovs_last_reload_success",
            "Whether the last reload succeeded (1 before any).",
            d.last_reload_ok as i64,
        )?;
        single_gauge(
            &mut enc,
            "ferrovs_workers_running",
            "Whether every worker polls (0: one stopped, VRRP gave the VIPs up).",
            d.workers_running as i64,
        )?;
        let mut f = family(
            &mut enc,
            "ferrovs_worker_stalls",
            "Times a worker stopped polling for longer than 1.5 s.",
            MetricType::Counter,
        )?;
        f.counter(&l(&[]), d.worker_stalls)?;
        // Connection sync (the daemon's counters and the workers').
        let sum = |g: fn(&ferrovs_dataplane::counters::WorkerCounters) -> u64| -> u64 {
            d.dataplane.counters().iter().map(g).sum()
        };
        let st = d.sync.as_ref().map(|h| h.stats.clone()).unwrap_or_default();
        let get = crate::sync::stats::SyncStats::get;
        let listing = d
            .sync
            .as_ref()
            .and_then(|h| h.listing.lock().ok().map(|l| l.clone()))
            .unwrap_or_default();
        let mut f = family(
            &mut enc,
            "ferrovs_sync_daemon_running",
            "Whether the connection sync daemon runs in this role (master sends, backup receives).",
            MetricType::Gauge,
        )?;
        for (role, m) in [("master", true), ("backup", false)] {
            f.gauge(
                &l(&[("role", role.into())]),
                listing.iter().any(|x| x.master == m) as i64,
            )?;
        }
        for (name, help, v) in [
            (
                "ferrovs_sync_messages_sent",
                "Sync messages sent by the master.",
                get(&st.messages_sent),
            ),
            (
                "ferrovs_sync_entries_sent",
                "Connections and templates sent by the master.",
                get(&st.entries_sent),
            ),
            (
                "ferrovs_sync_messages_received",
                "Sync messages received by the backup.",
                get(&st.messages_received),
            ),
            (
                "ferrovs_sync_entries_received",
                "Entries in the sync messages the backup accepted.",
                get(&st.entries_received),
            ),
            (
                "ferrovs_sync_entries_installed",
                "Received connections and templates installed (or updated) in a worker's table.",
                sum(|c| c.sync_installed.get()),
            ),
        ] {
            let mut f = family(&mut enc, name, help, MetricType::Counter)?;
            f.counter(&l(&[]), v)?;
        }
        let mut f = family(
            &mut enc,
            "ferrovs_sync_dropped_messages",
            "Sync messages lost: sending failed, or received malformed or with another sync id.",
            MetricType::Counter,
        )?;
        for (reason, v) in [
            ("send_error", get(&st.send_errors)),
            ("bad_message", get(&st.bad_messages)),
            ("wrong_syncid", get(&st.wrong_syncid)),
        ] {
            f.counter(&l(&[("reason", reason.into())]), v)?;
        }
        let mut f = family(
            &mut enc,
            "ferrovs_sync_dropped_entries",
            "Sync entries lost: a worker's ring full on the master; on the backup a worker's request queue full, an entry not installable here (IPv6, fwmark, FULLNAT without local address), or refused by the worker (no such service or server, local port in use, table full).",
            MetricType::Counter,
        )?;
        for (reason, v) in [
            ("ring_full", sum(|c| c.sync_ring_full.get())),
            ("queue_full", get(&st.queue_full_entries)),
            ("unusable", get(&st.unusable_entries)),
            ("refused", sum(|c| c.sync_refused.get())),
        ] {
            f.counter(&l(&[("reason", reason.into())]), v)?;
        }
        let mut f = family(
            &mut enc,
            "ferrovs_build_info",
            "Build information.",
            MetricType::Gauge,
        )?;
        f.gauge(&l(&[("version", env!("CARGO_PKG_VERSION").to_string())]), 1)?;
        Ok(())
    }
}

/// The registry served at `/metrics`.
pub fn registry(view: ViewCell) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(DaemonCollector { view }));
    r
}

/// The OpenMetrics text exposition of `r` (what Prometheus asks for).
pub fn render(r: &Registry) -> String {
    let mut s = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut s, r);
    s
}

/// The same in the Prometheus text format 0.0.4, for clients that do not
/// ask for OpenMetrics (promtool, curl): there a counter's HELP and TYPE
/// lines name the `_total` sample, and there is no `# EOF`.
pub fn render_prometheus_text(r: &Registry) -> String {
    let om = render(r);
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + counters.len() * 16);
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{tag}{name}_total {tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
