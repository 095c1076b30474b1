//! A daemon thread that panics while an instance is MASTER: the panic hook
//! sends the priority-0 adverts the driver kept ready, over the real VRRP
//! socket, before the process would abort (here it does not, so the test
//! can look). Runs in a network namespace of its own (root only; skipped
//! otherwise), on its loopback.

use ferrovs_controlplane::vrrp::io::VrrpSocket;
use ferrovs_controlplane::vrrp::last_words::{self, Farewell};
use ferrovs_controlplane::vrrp::{Advert, Version};
use futures_util::TryStreamExt;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::Ipv4Addr;
use std::time::Duration;

#[test]
fn a_panic_sends_priority_zero_for_the_vips_held() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            let lo = h
                .link()
                .get()
                .match_name("lo".to_string())
                .execute()
                .try_next()
                .await
                .unwrap()
                .unwrap()
                .header
                .index;
            h.link()
                .set(rtnetlink::LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .unwrap();
        });
        let me = Ipv4Addr::LOCALHOST;
        // A raw socket read through std's datagram API (recv(2) is the same
        // call for any datagram socket).
        let rx = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let rx = std::net::UdpSocket::from(rx);
        let sock = VrrpSocket::open("lo", 1, me.into(), &[]).unwrap();
        let advert = Advert {
            version: Version::V3,
            vrid: 51,
            priority: 0,
            interval: 100,
            addresses: vec![Ipv4Addr::new(198, 18, 0, 100).into()],
            auth_type: 0,
            auth_data: [0; 8],
        };
        last_words::set(vec![Farewell {
            sock,
            dst: me.into(),
            msg: advert.encode(me, me),
        }]);
        last_words::install_panic_hook(false);
        assert!(std::thread::spawn(|| panic!("a worker's bug"))
            .join()
            .is_err());
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).expect("no advert after the panic");
        let (_, got) = Advert::parse_ipv4(&buf[..n]).unwrap();
        assert_eq!((got.vrid, got.priority), (51, 0));
        // Once the instances have stopped (SIGTERM sent priority 0 already)
        // there is nothing more to say.
        last_words::set(Vec::new());
        assert_eq!(last_words::say(), 0);
    })
    .join()
    .unwrap();
}
