//! Arbitrary IPv4 datagrams into the VRRP receive path: the IP header
//! split (`vrrp::io::parse_ip`), the advert codec with keepalived's checks
//! (`Advert::parse`), and, for what parses, the state machine of a BACKUP
//! and of a MASTER instance of each version. The first input byte picks the
//! TTL the socket would report.
#![no_main]

use ferrovs_config::model::GarpSettings;
use ferrovs_controlplane::vrrp::io::parse_ip;
use ferrovs_controlplane::vrrp::{
    Advert, AdvertTarget, Event, Instance, InstanceConfig, RxInfo, Version,
};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn cfg(version: Version, priority: u8, master: bool) -> InstanceConfig {
    InstanceConfig {
        name: "VI_1".into(),
        vrid: 51,
        version,
        priority,
        advert_int: Duration::from_secs(1),
        initial_master: master,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        auth_pass: None,
        vips: vec![Ipv4Addr::new(198, 18, 0, 100)],
        primary_ip: Ipv4Addr::new(198, 18, 0, 1),
        target: AdvertTarget::Multicast(Ipv4Addr::new(224, 0, 0, 18)),
        garp: GarpSettings::default(),
        skip_check_adv_addr: false,
        tracks: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ttl, datagram)) = data.split_first() else {
        return;
    };
    let Some(r) = parse_ip(datagram) else {
        return;
    };
    let Ok(advert) = Advert::parse(&r.payload, r.src, r.dst) else {
        return;
    };
    let _ = advert.encode(r.src, r.dst);
    let t0 = Instant::now();
    for version in [Version::V2, Version::V3] {
        for (priority, master) in [(100, false), (255, true)] {
            let mut i = Instance::new(cfg(version, priority, master));
            i.handle(Event::Start, t0);
            let rx = RxInfo {
                src: r.src,
                dst: r.dst,
                ttl,
            };
            i.handle(
                Event::AdvertReceived {
                    rx,
                    advert: advert.clone(),
                },
                t0 + Duration::from_millis(10),
            );
            if let Some(d) = i.next_deadline() {
                i.handle(Event::TimerFired, d);
            }
        }
    }
});
