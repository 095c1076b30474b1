//! The XDP program (dataplane/bpf/xdp_steer.c) on one interface: loaded and
//! attached with aya, its socket and address maps, its counters.
//!
//! The program is attached through a BPF link (Linux 5.9 and later), which
//! belongs to this process: when ferrovs exits, however it exits (SIGKILL
//! included), the kernel closes the link and detaches the program, so the
//! interface is left as it was and the next start finds it free. The link
//! is made here (`BPF_LINK_CREATE`) rather than by aya, whose link hides
//! its descriptor: `ferrovs upgrade` hands the link and the maps to the
//! next process ([`Steering::adopt`]), and the program stays attached
//! throughout.

use super::flows::FlowMapFds;
use aya::maps::{DevMapHash, HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// What an address is to the XDP program (bits of the `addrs` map; keep in
/// step with xdp_steer.c).
pub const ADDR_STEER: u32 = 1;
pub const ADDR_NAT_SRC: u32 = 2;
pub const ADDR_OWN: u32 = 4;

/// Where the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP): before the kernel allocates an skb.
    Driver,
    /// After the skb is built (generic XDP): any interface, slower, and GRO
    /// must be off.
    Skb,
}

/// The program's counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerStats {
    pub steered: u64,
    pub passed: u64,
    pub no_socket: u64,
    /// Frames of offloaded flows the program forwarded itself (fast path).
    pub fast: u64,
}

#[cfg(not(ferrovs_no_xdp_prog))]
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_steer.o"));

/// Descriptors of an attached program's link and maps: what the next
/// process needs to keep it and steer with it.
#[derive(Debug)]
pub struct SteeringFds {
    pub link: OwnedFd,
    pub xsks: OwnedFd,
    pub addrs: OwnedFd,
    pub addrs6: OwnedFd,
    pub stats: OwnedFd,
    pub tx_ports: OwnedFd,
    /// The fast path's flow and per-server maps, when it is on.
    pub flows: Option<(OwnedFd, OwnedFd)>,
}

impl SteeringFds {
    fn try_clone(&self) -> io::Result<SteeringFds> {
        Ok(SteeringFds {
            link: self.link.try_clone()?,
            xsks: self.xsks.try_clone()?,
            addrs: self.addrs.try_clone()?,
            addrs6: self.addrs6.try_clone()?,
            stats: self.stats.try_clone()?,
            tx_ports: self.tx_ports.try_clone()?,
            flows: match &self.flows {
                Some((a, b)) => Some((a.try_clone()?, b.try_clone()?)),
                None => None,
            },
        })
    }
}

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Attaches program `prog` to interface `ifindex` through a new BPF link
/// (`bpf(BPF_LINK_CREATE)`, attach type BPF_XDP) in `mode`.
fn xdp_link_create(prog: BorrowedFd, ifindex: u32, mode: AttachMode) -> io::Result<OwnedFd> {
    // The link_create member of union bpf_attr: prog_fd, target_ifindex,
    // attach_type, flags; the rest zero.
    let mut attr = [0u32; 16];
    attr[0] = prog.as_raw_fd() as u32;
    attr[1] = ifindex;
    attr[2] = BPF_XDP;
    attr[3] = match mode {
        AttachMode::Driver => XDP_FLAGS_DRV_MODE,
        AttachMode::Skb => XDP_FLAGS_SKB_MODE,
    };
    // SAFETY: bpf(2) with a bpf_attr-prefix buffer of the size passed; the
    // kernel reads it only during the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh link descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A duplicate of a map's descriptor.
fn dup_map(m: &aya::maps::Map) -> io::Result<OwnedFd> {
    use aya::maps::Map;
    match m {
        Map::HashMap(d)
        | Map::PerCpuArray(d)
        | Map::XskMap(d)
        | Map::DevMapHash(d)
        | Map::PerCpuHashMap(d) => d.fd().as_fd().try_clone_to_owned(),
        other => Err(io::Error::other(format!("unexpected map type {other:?}"))),
    }
}

/// The program attached to one interface.
pub struct Steering {
    // Maps before the program: all are released when this drops, the link
    // (and so the attachment) with the program.
    xsks: XskMap<MapData>,
    addrs: BpfHashMap<MapData, u32, u32>,
    addrs6: BpfHashMap<MapData, [u8; 16], u32>,
    stats: PerCpuArray<MapData, u64>,
    tx_ports: DevMapHash<MapData>,
    /// The fast path's maps, shared with the workers' ports (`None`: the
    /// fast path is off and the flow map has a single, unused slot).
    flow_fds: Option<Arc<FlowMapFds>>,
    current: HashMap<u32, u32>,
    current6: HashMap<[u8; 16], u32>,
    /// The link (closing the last descriptor detaches the program) and
    /// duplicates of the maps' descriptors, for a hand-over.
    fds: SteeringFds,
    /// The loaded object; None in a process that adopted the program.
    _ebpf: Option<Ebpf>,
    pub ifname: String,
    pub ifindex: u32,
    pub mode: AttachMode,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .finish()
    }
}

fn err(ifname: &str, what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("XDP program on {ifname}: {what}: {e}"))
}

impl Steering {
    /// Loads the program and attaches it to `ifname`: natively when the
    /// driver can, else generically (unless `native_only`). With
    /// `flow_entries` > 0 the fast path's flow map holds that many flows
    /// (allocated as they come), else the fast path is off.
    pub fn attach(
        ifname: &str,
        ifindex: u32,
        native_only: bool,
        flow_entries: u32,
    ) -> io::Result<Steering> {
        #[cfg(ferrovs_no_xdp_prog)]
        {
            let _ = (ifindex, native_only, flow_entries);
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("XDP program on {ifname}: this ferrovs was built without it (clang was missing at build time: apt-get install clang libbpf-dev, then rebuild)"),
            ))
        }
        #[cfg(not(ferrovs_no_xdp_prog))]
        {
            let mut ebpf = EbpfLoader::new()
                .map_max_entries("flows", flow_entries.max(1))
                .load(PROGRAM)
                .map_err(|e| err(ifname, "load", e))?;
            let prog: &mut Xdp = ebpf
                .program_mut("ferrovs_steer")
                .ok_or_else(|| err(ifname, "load", "no program ferrovs_steer in the object"))?
                .try_into()
                .map_err(|e| err(ifname, "load", e))?;
            prog.load().map_err(|e| err(ifname, "verifier", e))?;
            let prog_fd = prog.fd().map_err(|e| err(ifname, "load", e))?.as_fd();
            let (mode, link) = match xdp_link_create(prog_fd, ifindex, AttachMode::Driver) {
                Ok(l) => (AttachMode::Driver, l),
                Err(e) if native_only => return Err(err(ifname, "attach (native)", e)),
                Err(native) => match xdp_link_create(prog_fd, ifindex, AttachMode::Skb) {
                    Ok(l) => (AttachMode::Skb, l),
                    Err(e) => {
                        let busy = e.raw_os_error() == Some(libc::EBUSY)
                            || native.raw_os_error() == Some(libc::EBUSY);
                        let hint = if busy {
                            format!(" (another XDP program is attached: `ip link set dev {ifname} xdp off` removes it)")
                        } else {
                            String::new()
                        };
                        return Err(err(
                            ifname,
                            "attach",
                            format!("native: {native}; generic: {e}{hint}"),
                        ));
                    }
                },
            };
            let take = |ebpf: &mut Ebpf, name: &str| {
                ebpf.take_map(name)
                    .ok_or_else(|| err(ifname, "maps", format!("no map {name}")))
            };
            let map = |ebpf: &mut Ebpf, name: &str| -> io::Result<OwnedFd> {
                let m = take(ebpf, name)?;
                dup_map(&m).map_err(|e| err(ifname, &format!("map {name}"), e))
            };
            let fds = SteeringFds {
                link,
                xsks: map(&mut ebpf, "xsks")?,
                addrs: map(&mut ebpf, "addrs")?,
                addrs6: map(&mut ebpf, "addrs6")?,
                stats: map(&mut ebpf, "stats")?,
                tx_ports: map(&mut ebpf, "tx_ports")?,
                flows: if flow_entries > 0 {
                    Some((map(&mut ebpf, "flows")?, map(&mut ebpf, "dest_stats")?))
                } else {
                    None
                },
            };
            Self::from_fds(ifname, ifindex, mode, fds, Some(ebpf))
        }
    }

    /// The program another process attached to `ifname` and handed over
    /// with its link and maps (`ferrovs upgrade`): it stays attached, and
    /// this process steers with it from now on. The address maps are read
    /// back, so that the next sync removes what is no longer wanted.
    pub fn adopt(
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
        fds: SteeringFds,
    ) -> io::Result<Steering> {
        let mut s = Self::from_fds(ifname, ifindex, mode, fds, None)?;
        s.current = s
            .addrs
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| *v != 0)
            .collect();
        s.current6 = s
            .addrs6
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| *v != 0)
            .collect();
        Ok(s)
    }

    /// Duplicates of the link's and the maps' descriptors, for the next
    /// process.
    pub fn hand_over(&self) -> io::Result<SteeringFds> {
        self.fds.try_clone()
    }

    fn from_fds(
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
        fds: SteeringFds,
        ebpf: Option<Ebpf>,
    ) -> io::Result<Steering> {
        use aya::maps::Map;
        let data = |fd: &OwnedFd, name: &str| -> io::Result<MapData> {
            let fd = fd
                .try_clone()
                .map_err(|e| err(ifname, &format!("map {name}"), e))?;
            MapData::from_fd(fd).map_err(|e| err(ifname, &format!("map {name}"), e))
        };
        let xsks = XskMap::try_from(Map::XskMap(data(&fds.xsks, "xsks")?))
            .map_err(|e| err(ifname, "map xsks", e))?;
        let addrs = BpfHashMap::try_from(Map::HashMap(data(&fds.addrs, "addrs")?))
            .map_err(|e| err(ifname, "map addrs", e))?;
        let addrs6 = BpfHashMap::try_from(Map::HashMap(data(&fds.addrs6, "addrs6")?))
            .map_err(|e| err(ifname, "map addrs6", e))?;
        let stats = PerCpuArray::try_from(Map::PerCpuArray(data(&fds.stats, "stats")?))
            .map_err(|e| err(ifname, "map stats", e))?;
        let tx_ports = DevMapHash::try_from(Map::DevMapHash(data(&fds.tx_ports, "tx_ports")?))
            .map_err(|e| err(ifname, "map tx_ports", e))?;
        let flow_fds = match &fds.flows {
            Some((flows, dest_stats)) => Some(Arc::new(FlowMapFds {
                flows: flows.try_clone().map_err(|e| err(ifname, "map flows", e))?,
                dest_stats: dest_stats
                    .try_clone()
                    .map_err(|e| err(ifname, "map dest_stats", e))?,
                ncpus: aya::util::nr_cpus().map_err(|(f, e)| err(ifname, f, e))?,
            })),
            None => None,
        };
        Ok(Steering {
            xsks,
            addrs,
            addrs6,
            stats,
            tx_ports,
            flow_fds,
            current: HashMap::new(),
            current6: HashMap::new(),
            fds,
            _ebpf: ebpf,
            ifname: ifname.to_string(),
            ifindex,
            mode,
        })
    }

    /// Whether this build carries the XDP program; the error says how to get
    /// it.
    pub fn available() -> Result<(), String> {
        if cfg!(ferrovs_no_xdp_prog) {
            Err("this ferrovs was built without its XDP program (clang was missing at build time: apt-get install clang libbpf-dev, then rebuild)".into())
        } else {
            Ok(())
        }
    }

    /// Steers queue `queue`'s frames to socket `fd`.
    pub fn set_socket(&mut self, queue: u32, fd: RawFd) -> io::Result<()> {
        self.xsks
            .set(queue, fd, 0)
            .map_err(|e| err(&self.ifname, &format!("socket for queue {queue}"), e))
    }

    /// Makes the address map equal to `want` (address → ADDR_* bits),
    /// touching only what changed.
    pub fn set_addrs(&mut self, want: &HashMap<Ipv4Addr, u32>) -> io::Result<()> {
        let want: HashMap<u32, u32> = want
            .iter()
            .map(|(a, b)| (u32::from_ne_bytes(a.octets()), *b))
            .collect();
        sync_map(&mut self.addrs, &mut self.current, &want)
            .map_err(|e| err(&self.ifname, "address map", e))
    }

    /// [`Steering::set_addrs`] for IPv6 addresses.
    pub fn set_addrs6(&mut self, want: &HashMap<Ipv6Addr, u32>) -> io::Result<()> {
        let want: HashMap<[u8; 16], u32> = want.iter().map(|(a, b)| (a.octets(), *b)).collect();
        sync_map(&mut self.addrs6, &mut self.current6, &want)
            .map_err(|e| err(&self.ifname, "IPv6 address map", e))
    }

    /// The program's counters.
    pub fn stats(&self) -> SteerStats {
        let sum = |i: u32| -> u64 { self.stats.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        SteerStats {
            steered: sum(0),
            passed: sum(1),
            no_socket: sum(2),
            fast: sum(3),
        }
    }

    /// The fast path's maps, for the workers' ports (`None` when it is off).
    pub fn flow_fds(&self) -> Option<Arc<FlowMapFds>> {
        self.flow_fds.clone()
    }

    /// Lets the fast path redirect to interface `ifindex` (another port of
    /// ferrovs; the interface the frame came in on needs no entry: XDP_TX).
    pub fn allow_tx_port(&mut self, ifindex: u32) -> io::Result<()> {
        self.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|e| err(&self.ifname, &format!("tx port {ifindex}"), e))
    }
}

/// Makes `map` (mirrored in `current`) hold exactly the non-zero entries of
/// `want`, touching only what changed.
fn sync_map<K>(
    map: &mut BpfHashMap<MapData, K, u32>,
    current: &mut HashMap<K, u32>,
    want: &HashMap<K, u32>,
) -> Result<(), aya::maps::MapError>
where
    K: aya::Pod + Eq + std::hash::Hash,
{
    let gone: Vec<K> = current
        .keys()
        .filter(|k| want.get(*k).is_none_or(|b| *b == 0))
        .copied()
        .collect();
    for k in gone {
        match map.remove(&k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e),
        }
        current.remove(&k);
    }
    for (k, v) in want.iter().filter(|(_, v)| **v != 0) {
        if current.get(k) != Some(v) {
            map.insert(k, v, 0)?;
            current.insert(*k, *v);
        }
    }
    Ok(())
}
