//! The XDP program's fast-path maps (`flows`, `dest_stats`) as a worker's
//! port uses them: [`FlowMap`] over bpf(2).
//!
//! Raw bpf(2) rather than aya's typed maps: the workers need batched
//! updates (`BPF_MAP_UPDATE_BATCH`, one syscall for a whole queue of
//! offloads), which aya 0.14 does not offer, and each worker's port holds
//! its own duplicate of the map descriptors (aya's map objects belong to
//! the `Steering`, on the control plane's side).

use crate::fastpath::{FlowKey, FlowMap, FlowValue, Op};
// CLOCK_MONOTONIC: bpf_ktime_get_ns's clock.
use crate::port::sys::monotonic_ns;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_ANY: u64 = 0;

/// `union bpf_attr` for the element commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for the batch commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    // SAFETY: `attr` is a live, initialised bpf_attr prefix for `cmd`, of
    // the size passed; the pointers inside it point to buffers the caller
    // keeps alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The descriptors of one interface's fast-path maps.
#[derive(Debug)]
pub struct FlowMapFds {
    pub flows: OwnedFd,
    pub dest_stats: OwnedFd,
    /// Possible CPUs: a per-CPU map's value holds one slot each.
    pub ncpus: usize,
}

/// One worker's handle on an interface's flow map.
#[derive(Debug)]
pub struct XdpFlowMap {
    fds: Arc<FlowMapFds>,
    keys: Vec<FlowKey>,
    values: Vec<FlowValue>,
    percpu: Vec<u64>,
    /// Errors other than a full map or a missing key (never expected);
    /// the last one, for the log.
    pub errors: u64,
    pub last_error: Option<io::Error>,
}

impl XdpFlowMap {
    pub fn new(fds: Arc<FlowMapFds>) -> XdpFlowMap {
        let n = fds.ncpus;
        XdpFlowMap {
            fds,
            keys: Vec::with_capacity(crate::fastpath::FLUSH_BATCH),
            values: Vec::with_capacity(crate::fastpath::FLUSH_BATCH),
            percpu: vec![0; 2 * n],
            errors: 0,
            last_error: None,
        }
    }

    fn error(&mut self, e: io::Error) {
        self.errors += 1;
        self.last_error = Some(e);
    }

    /// Inserts the staged entries; returns how many the map refused.
    fn write_adds(&mut self) -> usize {
        let mut done = 0;
        let mut refused = 0;
        while done < self.keys.len() {
            let mut a = BatchAttr {
                keys: self.keys[done..].as_ptr() as u64,
                values: self.values[done..].as_ptr() as u64,
                count: (self.keys.len() - done) as u32,
                map_fd: self.fds.flows.as_raw_fd() as u32,
                elem_flags: BPF_ANY,
                ..Default::default()
            };
            match bpf(BPF_MAP_UPDATE_BATCH, &mut a) {
                Ok(()) => done = self.keys.len(),
                Err(e) => {
                    // `count` says how many went in before the failure; the
                    // one that failed is skipped (a full map refuses it:
                    // that flow stays on the slow path) and the rest retried.
                    done += a.count as usize + 1;
                    refused += 1;
                    if e.raw_os_error() != Some(libc::E2BIG) {
                        self.error(e);
                    }
                }
            }
        }
        self.keys.clear();
        self.values.clear();
        refused
    }

    fn delete(&mut self, k: &FlowKey) {
        let mut a = ElemAttr {
            map_fd: self.fds.flows.as_raw_fd() as u32,
            key: k as *const FlowKey as u64,
            ..Default::default()
        };
        if let Err(e) = bpf(BPF_MAP_DELETE_ELEM, &mut a) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                self.error(e);
            }
        }
    }
}

impl FlowMap for XdpFlowMap {
    fn apply(&mut self, ops: &[Op]) -> usize {
        // Runs of inserts go in one batch; removals one by one (there is a
        // batch delete, but it stops at the first missing key, and a key
        // may be missing: its insert was refused).
        let mut refused = 0;
        for op in ops {
            match op {
                Op::Add(k, v) => {
                    self.keys.push(*k);
                    self.values.push(*v);
                }
                Op::Del(k) => {
                    refused += self.write_adds();
                    self.delete(k);
                }
            }
        }
        refused + self.write_adds()
    }

    fn idle_ms(&mut self, key: &FlowKey) -> Option<u64> {
        let mut v = FlowValue::default();
        let mut a = ElemAttr {
            map_fd: self.fds.flows.as_raw_fd() as u32,
            key: key as *const FlowKey as u64,
            value: &mut v as *mut FlowValue as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_LOOKUP_ELEM, &mut a).ok()?;
        if v.last_seen == 0 {
            return None;
        }
        Some(monotonic_ns().saturating_sub(v.last_seen) / 1_000_000)
    }

    fn dest_totals(&mut self, dest: u32) -> Option<(u64, u64)> {
        let mut a = ElemAttr {
            map_fd: self.fds.dest_stats.as_raw_fd() as u32,
            key: &dest as *const u32 as u64,
            value: self.percpu.as_mut_ptr() as u64,
            ..Default::default()
        };
        // Out of the array (DestIds beyond the program's MAX_DESTS): not
        // counted.
        bpf(BPF_MAP_LOOKUP_ELEM, &mut a).ok()?;
        let (mut p, mut b) = (0, 0);
        for c in self.percpu.chunks_exact(2) {
            p += c[0];
            b += c[1];
        }
        Some((p, b))
    }
}
