//! The EAL: process-wide DPDK state, lcores and thread registration.

use super::{DevInfo, DpdkError};
use crate::wire::Mac;
use ferrovs_ffi as ffi;
use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr, CString};
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Where the process is in the EAL's one-way life: DPDK can be initialised
/// once per process, and not again after `rte_eal_cleanup`.
enum State {
    Uninit,
    Live(Weak<Eal>),
    Cleaned,
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);

/// Mempools that a [`Device`](super::Device) could not free because mbufs of
/// them were still in use; while non-zero, the EAL's memory must stay
/// mapped, so [`Eal`]'s drop skips `rte_eal_cleanup`.
pub(super) static LEAKED_POOLS: AtomicUsize = AtomicUsize::new(0);

/// The initialised EAL. Every [`Device`](super::Device) holds an `Arc` to it,
/// so the last handle goes after the last device is closed.
pub struct Eal {
    main_lcore: u32,
}

/// A job for an lcore, boxed twice so that a thin pointer crosses the C
/// boundary.
type Job = Box<dyn FnOnce() + Send>;

impl Eal {
    /// Initialises the EAL once per process with `args` (the program name is
    /// added in front). A second call, while a handle is alive, returns the
    /// same `Arc` and ignores its `args`: the EAL cannot be initialised twice
    /// (`EALREADY`), not even after the last handle has gone.
    ///
    /// The EAL pins the calling thread to the main lcore's CPUs (DPDK's
    /// contract); threads it spawns later inherit that, so pass `--lcores` /
    /// `-l` to leave the control plane's CPUs where they belong.
    pub fn init(args: &[String]) -> Result<Arc<Eal>, DpdkError> {
        let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Live(weak) => {
                return weak.upgrade().ok_or_else(|| {
                    DpdkError::code(
                        "rte_eal_init: the EAL is being cleaned up",
                        ffi::EALREADY as i32,
                    )
                })
            }
            State::Cleaned => {
                return Err(DpdkError::code(
                    "rte_eal_init: the EAL was cleaned up and cannot start again in this process",
                    ffi::EALREADY as i32,
                ))
            }
            State::Uninit => {}
        }
        let mut cargs = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once("ferrovs").chain(args.iter().map(String::as_str)) {
            cargs.push(CString::new(a).map_err(|_| {
                DpdkError::code(
                    format!("EAL argument {a:?} contains a NUL byte"),
                    ffi::EINVAL as i32,
                )
            })?);
        }
        let mut argv: Vec<*mut c_char> = cargs.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as c_int;
        argv.push(std::ptr::null_mut());
        // The EAL may keep pointers into argv (getopt permutes it; some
        // drivers keep their argument strings), so argv lives as long as the
        // process: a one-time leak of a few hundred bytes.
        let argv: &'static mut [*mut c_char] = argv.leak();
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, and stays valid forever; STATE's lock makes this the only
        // rte_eal_init call of the process.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::rte_errno("rte_eal_init"));
        }
        // SAFETY: the EAL is initialised.
        let main_lcore = unsafe { ffi::rte_get_main_lcore() };
        let eal = Arc::new(Eal { main_lcore });
        *state = State::Live(Arc::downgrade(&eal));
        Ok(eal)
    }

    /// The lcore of the thread that initialised the EAL.
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// Probed ethdevs: port id, device name, driver and MAC.
    pub fn devices(&self) -> Vec<DevInfo> {
        let mut out = Vec::new();
        // SAFETY: the EAL is initialised (self exists); rte_eth_find_next
        // accepts any id and returns RTE_MAX_ETHPORTS past the last port.
        let mut p = unsafe { ffi::rte_eth_find_next(0) };
        while u32::from(p) < ffi::RTE_MAX_ETHPORTS {
            out.push(DevInfo {
                port_id: p,
                name: port_name(p).unwrap_or_default(),
                driver: driver_name(p).unwrap_or_default(),
                mac: port_mac(p).unwrap_or_default(),
            });
            // SAFETY: as above.
            p = unsafe { ffi::rte_eth_find_next(p + 1) };
        }
        out
    }

    /// The EAL worker lcores (all enabled lcores but the main one).
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore starts after `i`; -1 wraps to 0
        loop {
            // SAFETY: the EAL is initialised; any `i` is accepted.
            i = unsafe { ffi::rte_get_next_lcore(i, 1, 0) };
            if i >= ffi::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// Runs `f` on EAL worker lcore `lcore`. Fails with `EINVAL` for an
    /// lcore that is not a worker and `EBUSY` for one still running a job.
    /// A panic in `f` is caught at the lcore boundary (unwinding into C is
    /// undefined) after the panic hook has reported it.
    pub fn launch(&self, lcore: u32, f: Box<dyn FnOnce() + Send>) -> Result<(), DpdkError> {
        if !self.worker_lcores().contains(&lcore) {
            return Err(DpdkError::code(
                format!("launch: lcore {lcore} is not an EAL worker lcore"),
                ffi::EINVAL as i32,
            ));
        }
        let job: *mut Job = Box::into_raw(Box::new(f));
        // SAFETY: `trampoline` matches lcore_function_t; `job` is a valid
        // Box<Job> that the trampoline takes back exactly once, and only if
        // the launch succeeds.
        let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), job.cast(), lcore) };
        if ret != 0 {
            // SAFETY: the launch failed, so the trampoline never runs and
            // `job` is still ours to free.
            drop(unsafe { Box::from_raw(job) });
            return Err(DpdkError::ret(
                format!("rte_eal_remote_launch on lcore {lcore}"),
                ret,
            ));
        }
        Ok(())
    }

    /// Waits until every worker lcore has finished its job.
    pub fn wait_all(&self) {
        // SAFETY: the EAL is initialised; called from any thread, it only
        // waits on the lcores' states.
        unsafe { ffi::rte_eal_mp_wait_lcore() }
    }
}

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> that `launch` leaked for this one call.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        *state = State::Cleaned;
        // SAFETY: the EAL is initialised; waiting is allowed from the main
        // thread or any other.
        unsafe { ffi::rte_eal_mp_wait_lcore() };
        if LEAKED_POOLS.load(Ordering::Acquire) == 0 {
            // SAFETY: no Device is left (each holds an Arc<Eal>), no mbuf is
            // in use (no leaked pool), and no lcore runs a job; cleanup
            // releases the EAL's memory.
            unsafe { ffi::rte_eal_cleanup() };
        }
    }
}

fn eal_live() -> bool {
    matches!(
        &*STATE.lock().unwrap_or_else(PoisonError::into_inner),
        State::Live(w) if w.strong_count() > 0
    )
}

/// Unregisters the lcore of a thread that [`register_thread`] registered,
/// when that thread exits, so that lcore ids (RTE_MAX_LCORE = 128) are not
/// used up by threads that come and go.
struct Registration(Cell<bool>);

impl Drop for Registration {
    fn drop(&mut self) {
        if self.0.get() && eal_live() {
            // SAFETY: this thread registered itself and the EAL is still up.
            unsafe { ffi::rte_thread_unregister() };
        }
    }
}

thread_local! {
    static REGISTRATION: Registration = const { Registration(Cell::new(false)) };
}

/// Gives the calling thread (one not created by the EAL) an lcore id with
/// `rte_thread_register`, so that mempool per-lcore caches serve it, and
/// returns the id. A thread that has one already (an EAL lcore or a
/// registered thread) gets it back. The id is released when the thread
/// exits. Fails when the EAL is not initialised or all RTE_MAX_LCORE ids
/// are taken.
pub fn register_thread() -> Result<u32, DpdkError> {
    if !eal_live() {
        return Err(DpdkError::code(
            "rte_thread_register: the EAL is not initialised",
            ffi::E_RTE_NO_CONFIG as i32,
        ));
    }
    // SAFETY: reads the calling thread's lcore id (a thread-local).
    let id = unsafe { ffi::rte_lcore_id() };
    if id != ffi::LCORE_ID_ANY {
        return Ok(id);
    }
    // SAFETY: the EAL is initialised; registers the calling thread only.
    if unsafe { ffi::rte_thread_register() } != 0 {
        return Err(DpdkError::rte_errno("rte_thread_register"));
    }
    REGISTRATION.with(|r| r.0.set(true));
    // SAFETY: as above.
    let id = unsafe { ffi::rte_lcore_id() };
    if id == ffi::LCORE_ID_ANY {
        // Registration "succeeds" without an id in a secondary process.
        return Err(DpdkError::code(
            "rte_thread_register: no lcore id was given",
            ffi::ENOSPC as i32,
        ));
    }
    Ok(id)
}

/// `rte_eth_dev_get_name_by_port`.
pub(super) fn port_name(port: u16) -> Option<String> {
    let mut buf = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has the RTE_ETH_NAME_MAX_LEN bytes the function requires.
    let ret = unsafe { ffi::rte_eth_dev_get_name_by_port(port, buf.as_mut_ptr()) };
    if ret != 0 {
        return None;
    }
    // SAFETY: on success the name is NUL-terminated within buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The driver name from `rte_eth_dev_info_get`.
pub(super) fn driver_name(port: u16) -> Option<String> {
    let info = dev_info(port).ok()?;
    if info.driver_name.is_null() {
        return None;
    }
    // SAFETY: driver_name points to the driver's static NUL-terminated name.
    Some(
        unsafe { CStr::from_ptr(info.driver_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// `rte_eth_dev_info_get`.
pub(super) fn dev_info(port: u16) -> Result<ffi::rte_eth_dev_info, DpdkError> {
    let mut info = ffi::rte_eth_dev_info::default();
    // SAFETY: `info` is a writable rte_eth_dev_info.
    let ret = unsafe { ffi::rte_eth_dev_info_get(port, &mut info) };
    if ret != 0 {
        return Err(DpdkError::ret(
            format!("rte_eth_dev_info_get(port {port})"),
            ret,
        ));
    }
    Ok(info)
}

/// `rte_eth_macaddr_get`.
pub(super) fn port_mac(port: u16) -> Option<Mac> {
    let mut a = ffi::rte_ether_addr::default();
    // SAFETY: `a` is a writable rte_ether_addr.
    let ret = unsafe { ffi::rte_eth_macaddr_get(port, &mut a) };
    (ret == 0).then_some(a.addr_bytes)
}

/// The CPU's time-stamp counter, as DPDK's `rte_rdtsc` reads it: a cheap
/// clock for timing single polls (constant-rate and non-stop on the
/// machines DPDK runs on). Elsewhere than x86_64, nanoseconds since the
/// first call.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}

/// Removes the runtime directory of an EAL started with `--file-prefix=
/// prefix` (by this process or another of the same user), as the EAL
/// places it: under /var/run/dpdk as root, else under $XDG_RUNTIME_DIR/dpdk
/// or /tmp/dpdk. The EAL makes it even with `--no-shconf` and never removes
/// it; once nothing will attach to that EAL as a secondary process it can
/// go (what is open in it stays usable).
pub fn remove_runtime_dir(prefix: &str) {
    let mut bases = vec!["/var/run/dpdk".to_string(), "/tmp/dpdk".to_string()];
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
        bases.push(format!("{x}/dpdk"));
    }
    for b in bases {
        let _ = std::fs::remove_dir_all(format!("{b}/{prefix}"));
    }
}
