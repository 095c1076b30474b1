//! One ethdev: configuration, queues, mempool, control-plane queries.

use super::eal::{dev_info, driver_name, port_mac, LEAKED_POOLS};
use super::{DpdkError, DpdkPort, Eal};
use crate::neigh::QUEUE_TOTAL;
use crate::port::{BURST, HEADROOM};
use crate::wire::Mac;
use ferrovs_ffi as ffi;
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How to open a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// RX/TX queue pairs, one per worker.
    pub queues: u16,
    /// Descriptors per RX queue; 0 = the device's preferred size, else 1024.
    /// Adjusted to the device's limits.
    pub rx_desc: u16,
    /// Descriptors per TX queue; 0 as for `rx_desc`.
    pub tx_desc: u16,
    /// mbufs in the device's pool; 0 = sized automatically (see
    /// [`Device::open`]).
    pub mbufs: u32,
    /// Receive frames for any destination MAC (VRRP virtual MACs, a mirror).
    pub promiscuous: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            queues: 1,
            rx_desc: 0,
            tx_desc: 0,
            mbufs: 0,
            promiscuous: false,
        }
    }
}

/// A probed ethdev, as [`Eal::devices`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    pub port_id: u16,
    /// The device name (`rte_eth_dev_get_name_by_port`): a PCI address or a
    /// vdev name.
    pub name: String,
    pub driver: String,
    pub mac: Mac,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Mbit/s; 0 when the device does not know.
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// The basic device counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Frames the device dropped because no RX descriptor was free (the
    /// workers did not keep up).
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX mbuf allocation failures (the pool ran dry).
    pub rx_nombuf: u64,
}

/// Per-lcore mempool cache size. The per-lcore caches make alloc/free
/// lock-free in the common case; 256 is DPDK's customary value.
const POOL_CACHE: u32 = 256;
/// mbufs for everything outside the queues: control-plane allocations,
/// ring injections, hand-over rings in flight.
const POOL_SPARE: u32 = 1024;
/// Data room of one mbuf: headroom plus 2048 bytes, DPDK's default, enough
/// for a 1500-byte frame with two VLAN tags.
const DATA_ROOM: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
const _: () = assert!(DATA_ROOM as usize == HEADROOM + 2048);
/// Descriptors when neither the config nor the device says.
const DEFAULT_DESC: u16 = 1024;

/// Ports opened through [`Device`], so a second open of the same port fails
/// instead of reconfiguring it under its first user.
static OPEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Makes vdev, ring and mempool names unique in the process.
static SEQ: AtomicU32 = AtomicU32::new(0);

pub(super) fn next_seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// An mbuf pool.
pub(super) struct Pool {
    pub(super) ptr: NonNull<ffi::rte_mempool>,
    pub(super) size: u32,
}

/// An opened ethdev. Shared (`Arc`) by its [`DpdkPort`]s, its
/// [`RingHandle`](super::RingHandle) and the control plane; dropping the
/// last handle stops and closes the port, removes what this process created
/// for it (vdev, rings, flow rules), and frees its mempool.
pub struct Device {
    // Dropped after the device's own teardown (fields drop after Drop::drop),
    // so the EAL outlives the device.
    _eal: Arc<Eal>,
    port_id: u16,
    name: String,
    /// The MAC address, packed into the low 48 bits, so that `set_mac` can
    /// change it under running ports (which read it for every frame they
    /// source).
    mac: AtomicU64,
    queues: u16,
    pub(super) pool: Pool,
    /// A vdev this process created for the device (`rte_vdev_uninit`ed on
    /// drop).
    vdev: Option<CString>,
    /// The rings under a `from_rings` device, RX then TX.
    pub(super) rings: Vec<NonNull<ffi::rte_ring>>,
    /// Serialises control-path calls: ethdev control functions are not
    /// thread-safe. Holds the flow rules created by `steer_fullnat`.
    pub(super) ctl: Mutex<Vec<NonNull<ffi::rte_flow>>>,
}

// SAFETY: the raw pointers are to DPDK objects that live until the Device is
// dropped: the mempool (thread-safe MP/MC operations), the rings (MP/MC) and
// flow handles (only touched under `ctl`). Control calls are serialised by
// `ctl`; the fast path runs on DpdkPorts, one queue each.
unsafe impl Send for Device {}
// SAFETY: as for Send; &Device methods only do serialised control calls or
// thread-safe mempool reads.
unsafe impl Sync for Device {}

impl Device {
    /// Opens ethdev `name` with `cfg.queues` RX and TX queue pairs and
    /// returns one [`DpdkPort`] per pair (queue `i` for worker `i`).
    ///
    /// `name` is anything `rte_eth_dev_get_port_by_name` knows (a PCI
    /// address, a `--vdev` name, `net_af_packet0`), or `"net_xxx,args"` to
    /// create a virtual device now (`rte_vdev_init`), e.g.
    /// `"net_af_packet0,iface=eth1,qpairs=2"` (net_af_packet has one queue
    /// pair unless `qpairs` says more); such a vdev is removed on drop.
    ///
    /// The device gets RSS over IPv4/IPv6 + TCP/UDP ports when there is more
    /// than one queue and it offers RSS, no checksum offloads, and one mbuf
    /// pool of its own. Auto-sized (`cfg.mbufs == 0`), the pool holds, per
    /// queue: the RX descriptors (a PMD keeps its RX ring full), the TX
    /// descriptors (sent mbufs wait there until the NIC is done), 4 bursts
    /// (the received burst, TX staging, allocations) and the neighbour
    /// cache's parked packets; plus, per lcore that may cache (every EAL
    /// lcore and one registered thread per queue), the cache's flush
    /// threshold (1.5 x 256); plus 1024 spare; rounded up to 2^k - 1, the
    /// mempool's best size.
    pub fn open(
        eal: &Arc<Eal>,
        name: &str,
        cfg: &DeviceConfig,
    ) -> Result<(Arc<Device>, Vec<DpdkPort>), DpdkError> {
        let (dev, args) = name.split_once(',').unwrap_or((name, ""));
        if let Some(port) = port_by_name(dev)? {
            if !args.is_empty() {
                return Err(DpdkError::code(
                    format!("{dev} exists already; open it by name without arguments"),
                    ffi::EEXIST as i32,
                ));
            }
            return Device::setup(eal, port, dev.to_owned(), None, Vec::new(), cfg);
        }
        if !dev.starts_with("net_") {
            return Err(DpdkError::code(
                format!("no ethdev named {dev:?} (probed: {})", probed_names(eal)),
                ffi::ENODEV as i32,
            ));
        }
        let cdev = vdev_init(dev, args)?;
        let Some(port) = port_by_name(dev)? else {
            vdev_uninit(&cdev);
            return Err(DpdkError::code(
                format!("vdev {dev} created no ethdev of that name"),
                ffi::ENODEV as i32,
            ));
        };
        Device::setup(eal, port, dev.to_owned(), Some(cdev), Vec::new(), cfg)
    }

    /// Creates a TAP exception interface named `ifname` in the calling
    /// thread's network namespace, with MAC `mac` on both the kernel and the
    /// DPDK side, and opens it like [`Device::open`]. Frames the kernel sends
    /// on `ifname` are received on the returned ports; frames sent on them
    /// reach the kernel's stack as if received on `ifname`. Needs
    /// CAP_NET_ADMIN and /dev/net/tun. The interface goes away on drop.
    pub fn create_tap(
        eal: &Arc<Eal>,
        ifname: &str,
        mac: Mac,
        cfg: &DeviceConfig,
    ) -> Result<(Arc<Device>, Vec<DpdkPort>), DpdkError> {
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains([',', '=', '/', ' ', '\0']) {
            return Err(DpdkError::code(
                format!("invalid interface name {ifname:?} (1-15 characters, no , = / or blanks)"),
                ffi::EINVAL as i32,
            ));
        }
        let dev = format!("net_tap_fvs{}", next_seq());
        let m = mac;
        let args = format!(
            "iface={ifname},mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let cdev = vdev_init(&dev, &args)?;
        let Some(port) = port_by_name(&dev)? else {
            vdev_uninit(&cdev);
            return Err(DpdkError::code(
                format!("{dev} ({args}) created no ethdev"),
                ffi::ENODEV as i32,
            ));
        };
        Device::setup(eal, port, dev, Some(cdev), Vec::new(), cfg)
    }

    /// Configures, sets up and starts `port`. On failure everything created
    /// here, and `vdev`/`rings` handed in, is released.
    pub(super) fn setup(
        eal: &Arc<Eal>,
        port: u16,
        name: String,
        vdev: Option<CString>,
        rings: Vec<NonNull<ffi::rte_ring>>,
        cfg: &DeviceConfig,
    ) -> Result<(Arc<Device>, Vec<DpdkPort>), DpdkError> {
        // Claim the port first; the guard releases it on every error path.
        let claim = Claim::take(port, &name)?;
        let pool_name = CString::new(format!("fvs_mp{port}_{}", next_seq())).unwrap();
        let mut partial = Partial {
            port,
            vdev,
            rings,
            pool: None,
            started: false,
        };

        let info = dev_info(port)?;
        let q = cfg.queues;
        let max_q = info.max_rx_queues.min(info.max_tx_queues);
        if q == 0 || q > max_q {
            return Err(DpdkError::code(
                format!("{name}: {q} queues requested, the device has 1 to {max_q}"),
                ffi::EINVAL as i32,
            ));
        }

        let mut conf = ffi::rte_eth_conf::default();
        let want_rss = u64::from(ffi::RTE_ETH_RSS_IP | ffi::RTE_ETH_RSS_TCP | ffi::RTE_ETH_RSS_UDP);
        let rss_hf = want_rss & info.flow_type_rss_offloads;
        if q > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut(); // the device's default key
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: `conf` is a valid, fully initialised rte_eth_conf that
        // outlives the call (DPDK copies it).
        let ret = unsafe { ffi::rte_eth_dev_configure(port, q, q, &conf) };
        if ret != 0 {
            return Err(DpdkError::ret(
                format!("rte_eth_dev_configure({name}, {q} queues)"),
                ret,
            ));
        }

        let mut rx_desc = desc_or_default(cfg.rx_desc, info.default_rxportconf.ring_size);
        let mut tx_desc = desc_or_default(cfg.tx_desc, info.default_txportconf.ring_size);
        // SAFETY: both pointers are to live u16s.
        let ret =
            unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rx_desc, &mut tx_desc) };
        if ret != 0 {
            return Err(DpdkError::ret(
                format!("rte_eth_dev_adjust_nb_rx_tx_desc({name})"),
                ret,
            ));
        }

        // SAFETY: the port id is valid (dev_info succeeded).
        let socket = unsafe { ffi::rte_eth_dev_socket_id(port) }; // -1 = SOCKET_ID_ANY
                                                                  // SAFETY: the EAL is initialised.
        let lcores = unsafe { ffi::rte_lcore_count() };
        let size = if cfg.mbufs == 0 {
            auto_pool_size(q, rx_desc, tx_desc, lcores)
        } else {
            cfg.mbufs
        };
        if size < u32::from(q) * (u32::from(rx_desc) + BURST as u32) {
            return Err(DpdkError::code(
                format!(
                    "{name}: {size} mbufs cannot fill {q} RX queues of {rx_desc} descriptors \
                     plus a burst each"
                ),
                ffi::EINVAL as i32,
            ));
        }
        // DPDK refuses a cache whose flush threshold (1.5 x size) exceeds
        // the pool.
        let cache = POOL_CACHE.min(size * 2 / 3);
        // SAFETY: the name is a valid C string; the numbers are in range
        // (cache <= RTE_MEMPOOL_CACHE_MAX_SIZE, priv_size 0 is aligned).
        let mp = unsafe {
            ffi::rte_pktmbuf_pool_create(pool_name.as_ptr(), size, cache, 0, DATA_ROOM, socket)
        };
        let Some(mp) = NonNull::new(mp) else {
            return Err(DpdkError::rte_errno(format!(
                "rte_pktmbuf_pool_create({size} mbufs for {name})"
            )));
        };
        partial.pool = Some(mp);

        for i in 0..q {
            // SAFETY: the port is configured with q queues; NULL rxconf
            // selects the device's defaults; the pool outlives the queue.
            let ret = unsafe {
                ffi::rte_eth_rx_queue_setup(
                    port,
                    i,
                    rx_desc,
                    socket as u32,
                    std::ptr::null(),
                    mp.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(DpdkError::ret(
                    format!("rte_eth_rx_queue_setup({name}, queue {i}, {rx_desc} descriptors)"),
                    ret,
                ));
            }
            // SAFETY: as above; NULL txconf selects the defaults (no offloads).
            let ret = unsafe {
                ffi::rte_eth_tx_queue_setup(port, i, tx_desc, socket as u32, std::ptr::null())
            };
            if ret != 0 {
                return Err(DpdkError::ret(
                    format!("rte_eth_tx_queue_setup({name}, queue {i}, {tx_desc} descriptors)"),
                    ret,
                ));
            }
        }

        // SAFETY: the port is configured and its queues set up.
        let ret = unsafe { ffi::rte_eth_dev_start(port) };
        if ret != 0 {
            return Err(DpdkError::ret(format!("rte_eth_dev_start({name})"), ret));
        }
        partial.started = true;

        if cfg.promiscuous {
            // SAFETY: the port is valid and started.
            let ret = unsafe { ffi::rte_eth_promiscuous_enable(port) };
            // A device without MAC filtering (ring, some vdevs) has no such
            // operation and receives everything anyway.
            if ret != 0 && ret != -(ffi::ENOTSUP as i32) {
                return Err(DpdkError::ret(
                    format!("rte_eth_promiscuous_enable({name})"),
                    ret,
                ));
            }
        }
        let mac = port_mac(port).unwrap_or_default();

        // Success: the Device takes over what `partial` would undo.
        let vdev = partial.vdev.take();
        let rings = std::mem::take(&mut partial.rings);
        let pool = partial.pool.take();
        partial.started = false;
        drop(partial);
        claim.defuse();
        let dev = Arc::new(Device {
            _eal: eal.clone(),
            port_id: port,
            name,
            mac: AtomicU64::new(pack_mac(mac)),
            queues: q,
            pool: Pool {
                ptr: pool.expect("pool was created"),
                size,
            },
            vdev,
            rings,
            ctl: Mutex::new(Vec::new()),
        });
        let ports = (0..q).map(|i| DpdkPort::new(dev.clone(), i)).collect();
        Ok((dev, ports))
    }

    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The ethdev name (for a TAP device, the vdev name, not the kernel's
    /// interface name).
    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub fn mac(&self) -> Mac {
        let v = self.mac.load(Ordering::Relaxed).to_be_bytes();
        [v[2], v[3], v[4], v[5], v[6], v[7]]
    }

    /// Changes the device's MAC address (`rte_eth_dev_default_mac_addr_set`);
    /// the ports use it for the frames they source from then on.
    pub fn set_mac(&self, mac: Mac) -> Result<(), DpdkError> {
        let _g = self.lock();
        let mut a = ffi::rte_ether_addr { addr_bytes: mac };
        // SAFETY: the port is open; `a` is a valid address.
        let ret = unsafe { ffi::rte_eth_dev_default_mac_addr_set(self.port_id, &mut a) };
        if ret != 0 {
            return Err(DpdkError::ret(
                format!("rte_eth_dev_default_mac_addr_set({})", self.name),
                ret,
            ));
        }
        self.set_port_mac(mac);
        Ok(())
    }

    /// Changes only the address the ports use and report.
    pub(super) fn set_port_mac(&self, mac: Mac) {
        self.mac.store(pack_mac(mac), Ordering::Relaxed);
    }

    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// The driver's name (`net_ring`, `net_tap`, `net_ixgbe`, ...).
    pub fn driver(&self) -> String {
        let _g = self.lock();
        driver_name(self.port_id).unwrap_or_default()
    }

    /// Link state without waiting for autonegotiation; down if the device
    /// cannot tell.
    pub fn link(&self) -> Link {
        let _g = self.lock();
        let mut l = ffi::rte_eth_link::default();
        // SAFETY: the port is open (self holds it); `l` is writable.
        let ret = unsafe { ffi::rte_eth_link_get_nowait(self.port_id, &mut l) };
        if ret != 0 {
            return Link::default();
        }
        Link {
            up: l.link_status() != 0,
            speed_mbps: match l.link_speed {
                u32::MAX => 0, // RTE_ETH_SPEED_NUM_UNKNOWN
                s => s,
            },
            full_duplex: l.link_duplex() != 0,
        }
    }

    /// The device's basic counters; zero if it cannot report them.
    pub fn stats(&self) -> DevStats {
        let _g = self.lock();
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: the port is open; `s` is writable.
        if unsafe { ffi::rte_eth_stats_get(self.port_id, &mut s) } != 0 {
            return DevStats::default();
        }
        DevStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// The driver's extended counters, by name; empty if it has none.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        let _g = self.lock();
        // The number can change between the calls (queues set up); retry a
        // few times with what the last call reported.
        for _ in 0..4 {
            // SAFETY: NULL with size 0 asks for the number of counters.
            let n = unsafe { ffi::rte_eth_xstats_get_names(self.port_id, std::ptr::null_mut(), 0) };
            if n <= 0 {
                return Vec::new();
            }
            let n = n as usize;
            let mut names = vec![ffi::rte_eth_xstat_name::default(); n];
            let mut vals = vec![ffi::rte_eth_xstat::default(); n];
            // SAFETY: both buffers have room for n entries.
            let got_names = unsafe {
                ffi::rte_eth_xstats_get_names(self.port_id, names.as_mut_ptr(), n as u32)
            };
            // SAFETY: as above.
            let got_vals =
                unsafe { ffi::rte_eth_xstats_get(self.port_id, vals.as_mut_ptr(), n as u32) };
            if got_names < 0 || got_vals < 0 {
                return Vec::new();
            }
            if got_names as usize > n || got_vals as usize > n {
                continue; // grew meanwhile
            }
            return vals[..got_vals as usize]
                .iter()
                .filter_map(|v| {
                    let name = names.get(v.id as usize)?;
                    // SAFETY: DPDK NUL-terminates the names within their
                    // RTE_ETH_XSTATS_NAME_SIZE bytes.
                    let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                    Some((s.to_string_lossy().into_owned(), v.value))
                })
                .collect();
        }
        Vec::new()
    }

    /// (mbufs in use, pool size). "In use" counts mbufs held anywhere: RX
    /// descriptors, TX rings, workers, not in a per-lcore cache.
    pub fn mempool_usage(&self) -> (u32, u32) {
        // SAFETY: the pool lives as long as self; the count only reads it.
        let used = unsafe { ffi::rte_mempool_in_use_count(self.pool.ptr.as_ptr()) };
        (used, self.pool.size)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<NonNull<ffi::rte_flow>>> {
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let flows = std::mem::take(self.ctl.get_mut().unwrap_or_else(PoisonError::into_inner));
        if !flows.is_empty() {
            let mut err = ffi::rte_flow_error::default();
            // SAFETY: the port is open; `err` is writable. Flushing removes
            // every rule, ours included.
            unsafe { ffi::rte_flow_flush(self.port_id, &mut err) };
        }
        let pool = Some(self.pool.ptr);
        teardown(
            self.port_id,
            true,
            true,
            self.vdev.take(),
            std::mem::take(&mut self.rings),
            pool,
        );
        release_claim(self.port_id);
    }
}

/// What `setup` has created so far, undone on an error return. On success
/// its contents move to the Device and it is left empty.
struct Partial {
    port: u16,
    vdev: Option<CString>,
    rings: Vec<NonNull<ffi::rte_ring>>,
    pool: Option<NonNull<ffi::rte_mempool>>,
    started: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        // A failed open leaves a probed device unconfigured but not closed
        // (closing releases a hardware port for good); a vdev we created is
        // removed.
        teardown(
            self.port,
            self.started,
            false,
            self.vdev.take(),
            std::mem::take(&mut self.rings),
            self.pool.take(),
        );
    }
}

/// Stops (if started) and closes (if `close`) the port, removes `vdev`,
/// drains and frees `rings` (returning the mbufs in them), and frees the
/// pool if none of its mbufs is in use any more (else leaves it, see the
/// module docs).
fn teardown(
    port: u16,
    started: bool,
    close: bool,
    vdev: Option<CString>,
    rings: Vec<NonNull<ffi::rte_ring>>,
    pool: Option<NonNull<ffi::rte_mempool>>,
) {
    if started {
        // SAFETY: the port is valid and was started by us; no DpdkPort of it
        // is left (each holds the Device), so no queue is being polled.
        unsafe { ffi::rte_eth_dev_stop(port) };
    }
    if close {
        // SAFETY: as above; closing frees the queues and the mbufs in them.
        unsafe { ffi::rte_eth_dev_close(port) };
    }
    if let Some(v) = vdev {
        vdev_uninit(&v);
    }
    for r in rings {
        let mut objs = [std::ptr::null_mut::<std::ffi::c_void>(); BURST];
        loop {
            // SAFETY: the ring is ours and valid; objs has room for BURST
            // pointers; the ring PMD is gone, so nobody else uses the ring.
            let n = unsafe {
                ffi::rte_ring_dequeue_burst(
                    r.as_ptr(),
                    objs.as_mut_ptr(),
                    BURST as u32,
                    std::ptr::null_mut(),
                )
            };
            if n == 0 {
                break;
            }
            // SAFETY: the ring holds only mbufs that we or the ring PMD put
            // there, each owned by the ring.
            unsafe { ffi::rte_pktmbuf_free_bulk(objs.as_mut_ptr().cast(), n) };
        }
        // SAFETY: the ring is empty and unused.
        unsafe { ffi::rte_ring_free(r.as_ptr()) };
    }
    if let Some(mp) = pool {
        // SAFETY: the pool is valid; reading its counts is always allowed.
        let used = unsafe { ffi::rte_mempool_in_use_count(mp.as_ptr()) };
        if used == 0 {
            // SAFETY: no mbuf of the pool is in use and no queue or port
            // refers to it any more (the port is closed or was never
            // started with it), so nothing can allocate from it again.
            unsafe { ffi::rte_mempool_free(mp.as_ptr()) };
        } else {
            LEAKED_POOLS.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Marks a port as opened by a Device.
struct Claim(Option<u16>);

impl Claim {
    fn take(port: u16, name: &str) -> Result<Claim, DpdkError> {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if !open.get_or_insert_with(HashSet::new).insert(port) {
            return Err(DpdkError::code(
                format!("{name} (port {port}) is open already"),
                ffi::EBUSY as i32,
            ));
        }
        Ok(Claim(Some(port)))
    }
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            release_claim(p);
        }
    }
}

fn release_claim(port: u16) {
    if let Some(open) = OPEN.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        open.remove(&port);
    }
}

fn pack_mac(m: Mac) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

fn desc_or_default(asked: u16, preferred: u16) -> u16 {
    match (asked, preferred) {
        (0, 0) => DEFAULT_DESC,
        (0, p) => p,
        (a, _) => a,
    }
}

/// The automatic pool size, as documented on [`Device::open`].
fn auto_pool_size(queues: u16, rx_desc: u16, tx_desc: u16, eal_lcores: u32) -> u32 {
    let q = u32::from(queues);
    let per_queue = u32::from(rx_desc) + u32::from(tx_desc) + 4 * BURST as u32 + QUEUE_TOTAL as u32;
    let flush = POOL_CACHE * 3 / 2;
    let caches = (eal_lcores + q) * flush;
    let n = q * per_queue + caches + POOL_SPARE;
    (n + 1).next_power_of_two() - 1
}

/// `rte_eth_dev_get_port_by_name`: Ok(None) when there is no such port.
fn port_by_name(name: &str) -> Result<Option<u16>, DpdkError> {
    let c = CString::new(name).map_err(|_| {
        DpdkError::code(
            format!("device name {name:?} contains NUL"),
            ffi::EINVAL as i32,
        )
    })?;
    let mut port = 0u16;
    // SAFETY: `c` is a valid C string, `port` writable.
    let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
    Ok((ret == 0).then_some(port))
}

fn probed_names(eal: &Eal) -> String {
    let names: Vec<String> = eal.devices().into_iter().map(|d| d.name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `rte_vdev_init(name, args)`; returns the name to uninit it with.
fn vdev_init(name: &str, args: &str) -> Result<CString, DpdkError> {
    let bad = |_| {
        DpdkError::code(
            format!("vdev {name:?} {args:?} contains NUL"),
            ffi::EINVAL as i32,
        )
    };
    let cname = CString::new(name).map_err(bad)?;
    let cargs = CString::new(args).map_err(bad)?;
    // SAFETY: both are valid C strings, copied by DPDK.
    let ret = unsafe { ffi::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
    if ret != 0 {
        // rte_vdev_init returns -1 and sets rte_errno, or a negative errno.
        let e = if ret == -1 { ffi::rte_errno() } else { -ret };
        return Err(DpdkError::code(
            format!("rte_vdev_init({name}, \"{args}\")"),
            e,
        ));
    }
    Ok(cname)
}

pub(super) fn vdev_uninit(name: &CStr) {
    // SAFETY: `name` is a valid C string; removing a vdev that is already
    // gone is harmless.
    unsafe { ffi::rte_vdev_uninit(name.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_covers_descriptors_bursts_and_caches() {
        // 2 queues of 1024+1024 descriptors, 3 EAL lcores.
        let n = auto_pool_size(2, 1024, 1024, 3);
        assert!(n >= 2 * (2048 + 128 + 256) + 5 * 384 + 1024);
        assert!((n + 1).is_power_of_two());
        assert_eq!(desc_or_default(0, 0), 1024);
        assert_eq!(desc_or_default(0, 512), 512);
        assert_eq!(desc_or_default(64, 512), 64);
    }
}
