//! Last words: a MASTER whose process dies sends priority 0 on its way
//! out, as it does at SIGTERM (RFC 5798 §6.4.3: a master that shuts down
//! sends an advert with priority 0), so that the backup takes over within
//! its skew time instead of a master-down interval later, while the dead
//! director's ARP entries still draw the VIPs' traffic into nothing.
//!
//! The driver keeps the priority-0 adverts of every instance that holds
//! its VIPs ready here, encoded; a panic in any thread of the daemon (a
//! worker's included) sends them from the panic hook, before the process
//! aborts (release builds abort on panic; the hook makes every build do
//! so, as a half-dead director is worse than a dead one). The hook only
//! reads an `ArcSwap` and calls `sendto`: it takes no lock the panicking
//! thread could hold.

use super::io::VrrpSocket;
use arc_swap::ArcSwap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Once};

/// One priority-0 advert and where it goes.
#[derive(Clone)]
pub struct Farewell {
    pub sock: VrrpSocket,
    pub dst: IpAddr,
    pub msg: Vec<u8>,
}

static WORDS: LazyLock<ArcSwap<Vec<Farewell>>> =
    LazyLock::new(|| ArcSwap::from_pointee(Vec::new()));
static HOOK: Once = Once::new();

/// What to send if the process dies now (the driver calls this whenever
/// its instances' states may have changed; empty once they stopped).
pub fn set(words: Vec<Farewell>) {
    WORDS.store(Arc::new(words));
}

/// Sends the last words; how many went.
pub fn say() -> usize {
    WORDS
        .load()
        .iter()
        .filter(|f| f.sock.send(&f.msg, f.dst).is_ok())
        .count()
}

/// Installs the panic hook once: last words, the usual message, and (when
/// `abort`) the end of the process.
pub fn install_panic_hook(abort: bool) {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let n = say();
            prev(info);
            if n > 0 {
                eprintln!("ferrovs: sent priority 0 for the VIPs it held ({n} adverts)");
            }
            if abort {
                std::process::abort();
            }
        }));
    });
}
