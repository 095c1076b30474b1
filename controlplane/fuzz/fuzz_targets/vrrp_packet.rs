//! Arbitrary VRRP input into the receive path. The first input byte picks
//! the TTL / hop limit the socket would report; its low bit the family:
//!
//! - IPv4: the rest is a datagram as a raw IPv4 socket hands it over,
//!   through the IP header split (`vrrp::io::parse_ip`);
//! - IPv6: the rest is the VRRP message as a raw IPv6 socket hands it over
//!   (no header), from a link-local or global source (second byte's low
//!   bit) to ff02::12;
//!
//! then the advert codec with keepalived's checks (`Advert::parse`), and,
//! for what parses, the state machine of a BACKUP and of a MASTER instance
//! of the family (each version over IPv4).
#![no_main]

use ferrovs_config::model::GarpSettings;
use ferrovs_controlplane::vrrp::io::parse_ip;
use ferrovs_controlplane::vrrp::{
    Advert, AdvertTarget, Event, Instance, InstanceConfig, RxInfo, Version,
};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

fn cfg(version: Version, priority: u8, master: bool, v6: bool) -> InstanceConfig {
    let (vip, primary, group): (IpAddr, IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100).into(),
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).into(),
        )
    } else {
        (
            Ipv4Addr::new(198, 18, 0, 100).into(),
            Ipv4Addr::new(198, 18, 0, 1).into(),
            Ipv4Addr::new(224, 0, 0, 18).into(),
        )
    };
    InstanceConfig {
        name: "VI_1".into(),
        vrid: 51,
        version,
        priority,
        advert_int: Duration::from_secs(1),
        initial_master: master,
        resume_master: false,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        auth_pass: None,
        vips: vec![vip],
        excluded: vec![],
        primary_ip: primary,
        target: AdvertTarget::Multicast(group),
        garp: GarpSettings::default(),
        skip_check_adv_addr: false,
        tracks: Vec::new(),
        peers: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ttl, rest)) = data.split_first() else {
        return;
    };
    let v6 = ttl & 1 == 1;
    let (src, dst, payload): (IpAddr, IpAddr, Vec<u8>) = if v6 {
        let Some((&s, msg)) = rest.split_first() else {
            return;
        };
        let src = if s & 1 == 1 {
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)
        } else {
            Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x66)
        };
        (
            src.into(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).into(),
            msg.to_vec(),
        )
    } else {
        let Some(r) = parse_ip(rest) else {
            return;
        };
        (r.src, r.dst, r.payload)
    };
    let Ok(advert) = Advert::parse(&payload, src, dst) else {
        return;
    };
    let _ = advert.encode(src, dst);
    let t0 = Instant::now();
    let versions: &[Version] = if v6 {
        &[Version::V3]
    } else {
        &[Version::V2, Version::V3]
    };
    for &version in versions {
        for (priority, master) in [(100, false), (255, true)] {
            let mut i = Instance::new(cfg(version, priority, master, v6));
            i.handle(Event::Start, t0);
            let rx = RxInfo { src, dst, ttl };
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
