//! `ferrovs upgrade` on the AF_XDP backend: the new process starts beside
//! the old one and takes its ports over, so that the forwarding pause is
//! the hand-over itself, not a process start (issue 17: at most 50 ms).
//!
//! 1. The old process checks the new binary (`crate::upgrade::check`),
//!    then starts it with one end of a SOCK_SEQPACKET pair (the descriptor
//!    number in [`ENV`]) and keeps forwarding.
//! 2. The new process reads the configuration, learns the network, builds
//!    its snapshot and makes its (empty) tables, then says `Ready`. Until
//!    then nothing of the old one is touched: a new binary that fails here
//!    is killed and the old process goes on, and `ferrovs upgrade` says why.
//! 3. The old process stops as for an upgrade by exec: no priority-0
//!    advert, the VRRP states written for the new one, health checks left
//!    as they are, the workers stopped with their tables stamped clean and
//!    their rings left untouched. It sends the `Ports`: the packet memory
//!    (a memfd), the frames it had free, and per interface the XDP
//!    program's link and maps and every socket, all as descriptors. Then
//!    it lets go of its locks and its control socket.
//! 4. The new process maps the memory and the rings again, reads the
//!    tables, starts its workers and says `Forwarding`; the old one tells
//!    systemd the new main PID and exits. The XDP program stays attached
//!    all along, so the kernel keeps steering into the sockets' rings
//!    while no process reads them, and the new workers find those frames
//!    waiting.
//!
//! The other backends upgrade by exec (`crate::upgrade`): a DPDK port
//! cannot be shared by two processes, and an AF_PACKET port is quick to
//! open again.

use ferrovs_dataplane::port::afxdp::{
    AttachMode, BindMode, IfaceHandover, RingSizes, SocketHandover, SteeringFds,
};
use ferrovs_dataplane::port::handover::Channel;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

/// The environment variable naming the new process's end of the channel.
pub const ENV: &str = "FERROVS_HANDOVER_FD";
/// Bumped whenever the messages change; both sides must agree.
pub const VERSION: u32 = 1;
/// How long the new process may take to be ready (it reads the
/// configuration, the network, and makes its tables).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the new process waits for the ports once it said Ready (the
/// old one stops VRRP and its workers first).
const PORTS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the old process waits for the new one to forward.
const FORWARDING_TIMEOUT: Duration = Duration::from_secs(10);

/// What the old process hands over.
#[derive(Debug)]
pub struct Ports {
    pub umem: OwnedFd,
    pub frames: u32,
    /// The frames the old process had free; the others are in the rings.
    pub free: Vec<u32>,
    pub ifaces: Vec<IfaceHandover>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Ready { version: u32 },
    Ports(PortsMeta),
    Forwarding { pid: u32 },
    Failed(String),
}

/// [`Ports`] without its descriptors, which follow in a fixed order: the
/// memory, then per interface the link, the maps (`xsks`, `addrs`,
/// `addrs6`, `stats`, `tx_ports`, then `flows` and `dest_stats` when
/// `flows`), then its sockets.
#[derive(Debug, Serialize, Deserialize)]
struct PortsMeta {
    version: u32,
    frames: u32,
    /// The free frames, one bit per frame, as hex.
    free: String,
    ifaces: Vec<IfaceMeta>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IfaceMeta {
    ifname: String,
    ifindex: u32,
    native: bool,
    flows: bool,
    sockets: Vec<SocketMeta>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SocketMeta {
    queue: u32,
    zero_copy: bool,
    /// Fill, completion, RX, TX.
    rings: [u32; 4],
}

fn encode(m: &Msg) -> Vec<u8> {
    serde_json::to_vec(m).unwrap_or_default()
}

fn decode(b: &[u8]) -> Result<Msg, String> {
    if b.is_empty() {
        return Err("the other process closed the channel".into());
    }
    serde_json::from_slice(b).map_err(|e| format!("unreadable hand-over message: {e}"))
}

/// The free frames as a bitmap in hex (frame offsets are multiples of
/// `frame_size`).
fn free_bitmap(free: &[u32], frames: u32, frame_size: u32) -> String {
    let mut bits = vec![0u8; (frames as usize).div_ceil(8)];
    for &f in free {
        let i = (f / frame_size) as usize;
        if let Some(b) = bits.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
    }
    bits.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_list(hex: &str, frames: u32, frame_size: u32) -> Result<Vec<u32>, String> {
    if hex.len() != (frames as usize).div_ceil(8) * 2 || !hex.is_ascii() {
        return Err("the free frames do not match the memory's size".into());
    }
    let mut v = Vec::new();
    for (k, pair) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        let b = u8::from_str_radix(s, 16).map_err(|e| e.to_string())?;
        for bit in 0..8 {
            let i = k * 8 + bit;
            if b & (1 << bit) != 0 && i < frames as usize {
                v.push(i as u32 * frame_size);
            }
        }
    }
    Ok(v)
}

/// Splits `ports` into its description and its descriptors, in order.
fn flatten(p: &Ports) -> (PortsMeta, Vec<BorrowedFd<'_>>) {
    use ferrovs_dataplane::port::afxdp::umem::FRAME_SIZE;
    let mut fds = vec![p.umem.as_fd()];
    let mut ifaces = Vec::new();
    for i in &p.ifaces {
        let s = &i.steering;
        fds.extend([
            s.link.as_fd(),
            s.xsks.as_fd(),
            s.addrs.as_fd(),
            s.addrs6.as_fd(),
            s.stats.as_fd(),
            s.tx_ports.as_fd(),
        ]);
        if let Some((a, b)) = &s.flows {
            fds.extend([a.as_fd(), b.as_fd()]);
        }
        for k in &i.sockets {
            fds.push(k.fd.as_fd());
        }
        ifaces.push(IfaceMeta {
            ifname: i.ifname.clone(),
            ifindex: i.ifindex,
            native: i.mode == AttachMode::Driver,
            flows: s.flows.is_some(),
            sockets: i
                .sockets
                .iter()
                .map(|k| SocketMeta {
                    queue: k.queue,
                    zero_copy: k.mode == BindMode::ZeroCopy,
                    rings: [k.rings.fill, k.rings.comp, k.rings.rx, k.rings.tx],
                })
                .collect(),
        });
    }
    let meta = PortsMeta {
        version: VERSION,
        frames: p.frames,
        free: free_bitmap(&p.free, p.frames, FRAME_SIZE as u32),
        ifaces,
    };
    (meta, fds)
}

/// Puts [`Ports`] back together from its description and descriptors.
fn unflatten(m: PortsMeta, fds: Vec<OwnedFd>) -> Result<Ports, String> {
    use ferrovs_dataplane::port::afxdp::umem::FRAME_SIZE;
    if m.version != VERSION {
        return Err(format!(
            "hand-over version {} where this binary speaks {VERSION}",
            m.version
        ));
    }
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or("fewer descriptors than described");
    let umem = next()?;
    let mut ifaces = Vec::new();
    for i in m.ifaces {
        let steering = SteeringFds {
            link: next()?,
            xsks: next()?,
            addrs: next()?,
            addrs6: next()?,
            stats: next()?,
            tx_ports: next()?,
            flows: if i.flows {
                Some((next()?, next()?))
            } else {
                None
            },
        };
        let mut sockets = Vec::new();
        for s in i.sockets {
            sockets.push(SocketHandover {
                queue: s.queue,
                mode: if s.zero_copy {
                    BindMode::ZeroCopy
                } else {
                    BindMode::Copy
                },
                rings: RingSizes {
                    fill: s.rings[0],
                    comp: s.rings[1],
                    rx: s.rings[2],
                    tx: s.rings[3],
                },
                fd: next()?,
            });
        }
        ifaces.push(IfaceHandover {
            ifname: i.ifname,
            ifindex: i.ifindex,
            mode: if i.native {
                AttachMode::Driver
            } else {
                AttachMode::Skb
            },
            steering,
            sockets,
        });
    }
    Ok(Ports {
        umem,
        frames: m.frames,
        free: free_list(&m.free, m.frames, FRAME_SIZE as u32)?,
        ifaces,
    })
}

/// The old process's side: the new process it started.
#[derive(Debug)]
pub struct Parent {
    ch: Channel,
    child: std::process::Child,
}

impl Parent {
    /// Starts `binary` with `args` and the channel's other end.
    pub fn spawn(plan: &crate::upgrade::Plan) -> io::Result<Parent> {
        use std::os::fd::AsRawFd;
        let (ch, theirs) = Channel::pair()?;
        let child = Command::new(&plan.binary)
            .args(&plan.args)
            .env(ENV, theirs.as_raw_fd().to_string())
            .stdin(std::process::Stdio::null())
            .spawn()?;
        drop(theirs);
        Ok(Parent { ch, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the new process is ready to take the ports.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let (b, _) = self
            .ch
            .recv(READY_TIMEOUT)
            .map_err(|e| format!("the new process did not get ready: {e}"))?;
        match decode(&b) {
            Ok(Msg::Ready { version }) if version == VERSION => Ok(()),
            Ok(Msg::Ready { version }) => Err(format!(
                "the new binary speaks hand-over version {version}, this one {VERSION}"
            )),
            Ok(Msg::Failed(why)) => Err(format!("the new process failed: {why}")),
            Ok(other) => Err(format!("unexpected hand-over message {other:?}")),
            Err(e) => Err(format!(
                "the new process stopped before it was ready ({e}); see the log"
            )),
        }
    }

    /// Sends the ports.
    pub fn send_ports(&self, p: &Ports) -> io::Result<()> {
        let (meta, fds) = flatten(p);
        self.ch.send(&encode(&Msg::Ports(meta)), &fds)
    }

    /// Waits until the new process forwards.
    pub fn wait_forwarding(&self) -> Result<(), String> {
        let (b, _) = self
            .ch
            .recv(FORWARDING_TIMEOUT)
            .map_err(|e| format!("no word from the new process: {e}"))?;
        match decode(&b)? {
            Msg::Forwarding { .. } => Ok(()),
            Msg::Failed(why) => Err(why),
            other => Err(format!("unexpected hand-over message {other:?}")),
        }
    }

    /// Stops the new process (it failed before taking anything over).
    pub fn abort(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The new process's side.
#[derive(Debug)]
pub struct Child {
    ch: Channel,
}

impl Child {
    /// The channel an old process left this one, if any.
    pub fn from_env() -> Option<io::Result<Child>> {
        Channel::inherited(ENV).map(|r| r.map(|ch| Child { ch }))
    }

    /// Says Ready and waits for the ports.
    pub fn take_over(&self) -> Result<Ports, String> {
        self.ch
            .send(&encode(&Msg::Ready { version: VERSION }), &[])
            .map_err(|e| format!("telling the old process: {e}"))?;
        let (b, fds) = self
            .ch
            .recv(PORTS_TIMEOUT)
            .map_err(|e| format!("waiting for the ports: {e}"))?;
        match decode(&b)? {
            Msg::Ports(meta) => unflatten(meta, fds),
            other => Err(format!("unexpected hand-over message {other:?}")),
        }
    }

    /// Tells the old process that this one forwards (it then exits).
    pub fn forwarding(&self) {
        let _ = self.ch.send(
            &encode(&Msg::Forwarding {
                pid: std::process::id(),
            }),
            &[],
        );
    }

    /// Tells the old process why this one gives up.
    pub fn failed(&self, why: &str) {
        let _ = self.ch.send(&encode(&Msg::Failed(why.to_string())), &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_frames_go_through_the_bitmap() {
        let free = vec![0, 2048 * 3, 2048 * 9, 2048 * 15];
        let hex = free_bitmap(&free, 16, 2048);
        assert_eq!(hex, "0982");
        assert_eq!(free_list(&hex, 16, 2048).unwrap(), free);
        assert!(free_list("08", 16, 2048).is_err());
        assert!(free_list("zz82", 16, 2048).is_err());
    }

    #[test]
    fn ports_arrive_whole_with_their_descriptors() {
        let f = || std::fs::File::open("/dev/null").unwrap().into();
        let sock = |q| SocketHandover {
            queue: q,
            mode: BindMode::Copy,
            rings: RingSizes::default(),
            fd: f(),
        };
        let p = Ports {
            umem: f(),
            frames: 64,
            free: vec![2048, 4096],
            ifaces: vec![IfaceHandover {
                ifname: "d1a".into(),
                ifindex: 7,
                mode: AttachMode::Skb,
                steering: SteeringFds {
                    link: f(),
                    xsks: f(),
                    addrs: f(),
                    addrs6: f(),
                    stats: f(),
                    tx_ports: f(),
                    flows: Some((f(), f())),
                },
                sockets: vec![sock(0), sock(1)],
            }],
        };
        let (ours, theirs) = Channel::pair().unwrap();
        // The child's end, as an exec would leave it.
        std::env::set_var("FERROVS_TEST_HANDOVER", {
            use std::os::fd::IntoRawFd;
            theirs.into_raw_fd().to_string()
        });
        let child = Channel::inherited("FERROVS_TEST_HANDOVER")
            .unwrap()
            .unwrap();
        let (meta, fds) = flatten(&p);
        ours.send(&encode(&Msg::Ports(meta)), &fds).unwrap();
        let (b, fds) = child.recv(Duration::from_secs(1)).unwrap();
        assert_eq!(fds.len(), 1 + 8 + 2);
        let Msg::Ports(meta) = decode(&b).unwrap() else {
            panic!("not ports")
        };
        let q = unflatten(meta, fds).unwrap();
        assert_eq!(q.frames, 64);
        assert_eq!(q.free, vec![2048, 4096]);
        assert_eq!(q.ifaces[0].ifname, "d1a");
        assert_eq!(q.ifaces[0].ifindex, 7);
        assert_eq!(q.ifaces[0].mode, AttachMode::Skb);
        assert!(q.ifaces[0].steering.flows.is_some());
        let qs: Vec<u32> = q.ifaces[0].sockets.iter().map(|s| s.queue).collect();
        assert_eq!(qs, vec![0, 1]);
        assert_eq!(q.ifaces[0].sockets[1].rings, RingSizes::default());
    }
}
