//! IPVS schedulers, one file each. Provisional: only the public API below is
//! fixed; the per-scheduler files fill it in.

use crate::service::Dest;
use std::net::Ipv4Addr;

/// The IPVS scheduler names (`ipvsadm -s`, keepalived `lb_algo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Mh,
    Lblc,
    Lblcr,
    Fo,
    Ovf,
    Twos,
}

/// IPVS service scheduler flags `IP_VS_SVC_F_SCHED1..3`. For sh and mh,
/// flag1 is `*-fallback` and flag2 is `*-port`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    pub flag1: bool,
    pub flag2: bool,
    pub flag3: bool,
}

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Clone, Copy, Debug)]
pub struct SchedInput {
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
}

/// A service's scheduler with whatever it precomputes from the server list
/// (built by the control plane when it builds a snapshot).
#[derive(Debug)]
pub struct Scheduler {
    kind: SchedKind,
    flags: SchedFlags,
}

/// Per worker, per service mutable scheduler state.
#[derive(Debug, Default)]
pub struct SchedState {
    rr_next: usize,
}

impl SchedState {
    pub fn new(_seed: u64) -> SchedState {
        SchedState::default()
    }
}

impl Scheduler {
    pub fn new(kind: SchedKind, flags: SchedFlags, _dests: &[Dest]) -> Scheduler {
        Scheduler { kind, flags }
    }
    pub fn kind(&self) -> SchedKind {
        self.kind
    }
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }
    /// Index into `dests` of the server for a new connection, or None when
    /// no server is available. `now_s` is the worker clock in seconds.
    pub fn pick(&self, dests: &[Dest], st: &mut SchedState, _input: &SchedInput, _now_s: u32) -> Option<usize> {
        let n = dests.len();
        for k in 0..n {
            let i = (st.rr_next + k) % n;
            if dests[i].is_available() {
                st.rr_next = i + 1;
                return Some(i);
            }
        }
        None
    }
}
