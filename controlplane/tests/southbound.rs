//! The netlink southbound against the real kernel, in a network namespace of
//! the test's own (root only; skipped otherwise): changes arrive as
//! notifications, not by the periodic dump.

use ferrovs_controlplane::southbound::{NetState, Southbound};
use futures_util::TryStreamExt;
use rtnetlink::{AddressMessageBuilder, Handle, LinkVeth, RouteMessageBuilder};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Far below the southbound's 30 s resync: what is seen within it came by
/// notification. Not a speed assertion: the latency is printed.
const WAIT: Duration = Duration::from_secs(5);

fn in_own_netns(f: impl FnOnce() + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    // unshare(CLONE_NEWNET) moves only the calling thread.
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .unwrap();
}

async fn until(
    rx: &mut watch::Receiver<Arc<NetState>>,
    what: &str,
    ok: impl Fn(&NetState) -> bool,
) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(WAIT, async {
        loop {
            if ok(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert!(r.is_ok(), "not seen within {WAIT:?}: {what}");
    eprintln!("{what}: seen after {:?}", t0.elapsed());
}

async fn index(h: &Handle, name: &str) -> u32 {
    let mut l = h.link().get().match_name(name.to_string()).execute();
    l.try_next().await.unwrap().unwrap().header.index
}

#[test]
fn follows_links_addresses_and_routes_as_they_change() {
    in_own_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            let sb = Southbound::start().await.unwrap();
            assert!(sb.current().link_by_name("lo").is_some(), "the dump has lo");
            let mut rx = sb.subscribe();

            h.link()
                .add(LinkVeth::new("fvsb0", "fvsb1").build())
                .execute()
                .await
                .unwrap();
            until(&mut rx, "new link", |s| s.link_by_name("fvsb0").is_some()).await;
            sb.set_link_up("fvsb0").await.unwrap();
            sb.set_link_up("fvsb1").await.unwrap();
            until(&mut rx, "link up", |s| {
                s.link_by_name("fvsb0")
                    .is_some_and(|l| l.admin_up && l.oper_up)
            })
            .await;

            let i = index(&h, "fvsb0").await;
            let a = Ipv4Addr::new(198, 18, 0, 1);
            h.address().add(i, a.into(), 24).execute().await.unwrap();
            until(&mut rx, "address added", |s| {
                s.port("fvsb0").is_ok_and(|p| p.addrs == vec![(a, 24)])
            })
            .await;

            let gw = Ipv4Addr::new(198, 18, 0, 254);
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(Ipv4Addr::new(198, 19, 0, 0), 16)
                .gateway(gw)
                .output_interface(i)
                .build();
            h.route().add(route.clone()).execute().await.unwrap();
            until(&mut rx, "route added", |s| {
                s.port("fvsb0").is_ok_and(|p| {
                    s.routes(&[p])
                        .iter()
                        .any(|r| r.via == Some(gw) && r.len == 16)
                })
            })
            .await;
            h.route().del(route).execute().await.unwrap();
            until(&mut rx, "route removed", |s| {
                s.port("fvsb0").is_ok_and(|p| s.routes(&[p]).is_empty())
            })
            .await;

            let m = AddressMessageBuilder::<Ipv4Addr>::new()
                .index(i)
                .address(a, 24)
                .build();
            h.address().del(m).execute().await.unwrap();
            until(&mut rx, "address removed", |s| {
                s.port("fvsb0").is_ok_and(|p| p.addrs.is_empty())
            })
            .await;

            h.address().add(i, a.into(), 24).execute().await.unwrap();
            until(&mut rx, "address back", |s| {
                s.port("fvsb0").is_ok_and(|p| !p.addrs.is_empty())
            })
            .await;
            h.link().del(i).execute().await.unwrap();
            until(&mut rx, "link removed", |s| {
                s.link_by_name("fvsb0").is_none()
            })
            .await;
            assert!(
                sb.current().ipv4_addrs(i).is_empty(),
                "its addresses went with it"
            );
        });
    });
}

/// What the ports are opened with and `/metrics` counts comes from the
/// same netlink view: a veth's facts and peer, lo refused as a port, and
/// the links' counters read by the periodic link dump.
#[test]
fn gives_ports_their_facts_and_links_their_counters() {
    in_own_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            let sb = Southbound::start().await.unwrap();
            let mut rx = sb.subscribe();
            h.link()
                .add(LinkVeth::new("fvsf0", "fvsf1").build())
                .execute()
                .await
                .unwrap();
            until(&mut rx, "veth pair", |s| {
                s.link_by_name("fvsf0").is_some() && s.link_by_name("fvsf1").is_some()
            })
            .await;
            let (i0, i1) = (index(&h, "fvsf0").await, index(&h, "fvsf1").await);
            let ns = sb.current();
            let f = ns.iface("fvsf0").expect("a veth is an Ethernet port");
            assert_eq!((f.name.as_str(), f.index, f.mtu), ("fvsf0", i0, 1500));
            assert_ne!(f.mac, [0; 6]);
            assert_eq!(ns.link(i0).and_then(|l| l.iflink), Some(i1), "the peer");
            assert_eq!(
                ns.iface("lo").unwrap_err().to_string(),
                "lo is not an Ethernet interface; the dataplane's ports need Ethernet"
            );
            assert_eq!(
                ns.iface("fvsnone0").unwrap_err().to_string(),
                "no interface fvsnone0"
            );

            // Traffic on lo shows in its counters within a refresh or two.
            sb.set_link_up("lo").await.unwrap();
            until(&mut rx, "lo up", |s| {
                s.link_by_name("lo").is_some_and(|l| l.admin_up)
            })
            .await;
            let mut stats = sb.subscribe_stats();
            let before = stats.borrow().get("lo").map_or(0, |s| s.tx_packets);
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..5 {
                sock.send_to(b"x", "127.0.0.1:9").unwrap();
            }
            let t0 = Instant::now();
            let r = tokio::time::timeout(WAIT, async {
                loop {
                    if stats
                        .borrow_and_update()
                        .get("lo")
                        .is_some_and(|s| s.tx_packets >= before + 5)
                    {
                        return;
                    }
                    stats.changed().await.unwrap();
                }
            })
            .await;
            assert!(r.is_ok(), "lo's counters did not move within {WAIT:?}");
            eprintln!("lo counters: seen after {:?}", t0.elapsed());
        });
    });
}
