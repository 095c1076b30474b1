//! FULLNAT reply steering with rte_flow, as DPVS does it.
//!
//! A FULLNAT connection owned by worker `w` uses a local port `p` with
//! `p % workers == w` (the local-port allocator gives each worker that slice
//! of every local address's range). Replies from the real server carry `p`
//! as destination port, so when `workers` is a power of two, the masked
//! port `p & (workers - 1)` equals `w` and the NIC can deliver the reply to
//! queue `w` directly: one rule per local address, worker and protocol,
//! `ETH / IPV4 dst == laddr / TCP|UDP dst & (workers-1) == w -> QUEUE w`.
//! Without such rules RSS may deliver the reply to another worker, which
//! hands it over in software.

use super::Device;
use ferrovs_ffi as ffi;
use std::ffi::{c_void, CStr};
use std::net::Ipv4Addr;
use std::ptr::{self, NonNull};

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp,
    Udp,
}

impl Device {
    /// Installs FULLNAT reply steering for `laddrs` (see the module docs)
    /// and returns the number of rules created: 2 x addresses x queues, or
    /// 0 with one queue (everything reaches queue 0 anyway). Replaces the
    /// rules of an earlier call.
    ///
    /// Every rule is validated before any is created; `Err(reason)` when the
    /// queue count is not a power of two or the device cannot do it, and
    /// then nothing has changed (the caller falls back to the software
    /// hand-over).
    pub fn steer_fullnat(&self, laddrs: &[Ipv4Addr]) -> Result<usize, String> {
        let q = self.queues();
        if !q.is_power_of_two() {
            return Err(format!(
                "{}: {q} queues is not a power of two, so a port mask cannot name the worker",
                self.name()
            ));
        }
        if q == 1 {
            return Ok(0);
        }
        let mut flows = self.lock();
        let rules: Vec<(Ipv4Addr, L4, u16)> = laddrs
            .iter()
            .flat_map(|&a| {
                [L4::Tcp, L4::Udp]
                    .into_iter()
                    .flat_map(move |l4| (0..q).map(move |w| (a, l4, w)))
            })
            .collect();
        for &(a, l4, w) in &rules {
            rule(self.port_id(), a, l4, w, q, false).map_err(|e| {
                format!(
                    "{}: rte_flow_validate({a} {l4:?} -> queue {w}): {e}",
                    self.name()
                )
            })?;
        }
        for old in flows.drain(..) {
            destroy(self.port_id(), old);
        }
        for &(a, l4, w) in &rules {
            match rule(self.port_id(), a, l4, w, q, true) {
                Ok(Some(f)) => flows.push(f),
                Ok(None) => unreachable!("create returns a flow"),
                Err(e) => {
                    for f in flows.drain(..) {
                        destroy(self.port_id(), f);
                    }
                    return Err(format!(
                        "{}: rte_flow_create({a} {l4:?} -> queue {w}): {e}",
                        self.name()
                    ));
                }
            }
        }
        Ok(flows.len())
    }
}

/// Validates (`create == false`) or creates one steering rule.
fn rule(
    port: u16,
    laddr: Ipv4Addr,
    l4: L4,
    w: u16,
    queues: u16,
    create: bool,
) -> Result<Option<NonNull<ffi::rte_flow>>, String> {
    let mut attr = ffi::rte_flow_attr::default();
    attr.set_ingress(1);

    let mut ip_spec = ffi::rte_flow_item_ipv4::default();
    let mut ip_mask = ffi::rte_flow_item_ipv4::default();
    ip_spec.hdr.dst_addr = u32::from(laddr).to_be();
    ip_mask.hdr.dst_addr = u32::MAX;

    let port_spec = w.to_be();
    let port_mask = (queues - 1).to_be();
    let mut tcp_spec = ffi::rte_flow_item_tcp::default();
    let mut tcp_mask = ffi::rte_flow_item_tcp::default();
    tcp_spec.hdr.dst_port = port_spec;
    tcp_mask.hdr.dst_port = port_mask;
    let mut udp_spec = ffi::rte_flow_item_udp::default();
    let mut udp_mask = ffi::rte_flow_item_udp::default();
    udp_spec.hdr.dst_port = port_spec;
    udp_mask.hdr.dst_port = port_mask;
    let (l4_type, l4_spec, l4_mask): (_, *const c_void, *const c_void) = match l4 {
        L4::Tcp => (
            ffi::RTE_FLOW_ITEM_TYPE_TCP,
            ptr::from_ref(&tcp_spec).cast(),
            ptr::from_ref(&tcp_mask).cast(),
        ),
        L4::Udp => (
            ffi::RTE_FLOW_ITEM_TYPE_UDP,
            ptr::from_ref(&udp_spec).cast(),
            ptr::from_ref(&udp_mask).cast(),
        ),
    };
    let item = |type_, spec: *const c_void, mask: *const c_void| ffi::rte_flow_item {
        type_,
        spec,
        last: ptr::null(),
        mask,
    };
    let pattern = [
        item(ffi::RTE_FLOW_ITEM_TYPE_ETH, ptr::null(), ptr::null()),
        item(
            ffi::RTE_FLOW_ITEM_TYPE_IPV4,
            ptr::from_ref(&ip_spec).cast(),
            ptr::from_ref(&ip_mask).cast(),
        ),
        item(l4_type, l4_spec, l4_mask),
        item(ffi::RTE_FLOW_ITEM_TYPE_END, ptr::null(), ptr::null()),
    ];
    let queue = ffi::rte_flow_action_queue { index: w };
    let actions = [
        ffi::rte_flow_action {
            type_: ffi::RTE_FLOW_ACTION_TYPE_QUEUE,
            conf: ptr::from_ref(&queue).cast(),
        },
        ffi::rte_flow_action {
            type_: ffi::RTE_FLOW_ACTION_TYPE_END,
            conf: ptr::null(),
        },
    ];
    let mut err = ffi::rte_flow_error::default();
    if create {
        // SAFETY: attr, pattern (END-terminated) and actions (END-terminated)
        // and everything they point to are live locals for the call, which
        // copies what it keeps; `err` is writable.
        let f = unsafe {
            ffi::rte_flow_create(port, &attr, pattern.as_ptr(), actions.as_ptr(), &mut err)
        };
        match NonNull::new(f) {
            Some(f) => Ok(Some(f)),
            None => Err(flow_error(&err, ffi::rte_errno())),
        }
    } else {
        // SAFETY: as above.
        let ret = unsafe {
            ffi::rte_flow_validate(port, &attr, pattern.as_ptr(), actions.as_ptr(), &mut err)
        };
        if ret == 0 {
            Ok(None)
        } else {
            Err(flow_error(&err, -ret))
        }
    }
}

fn destroy(port: u16, f: NonNull<ffi::rte_flow>) {
    let mut err = ffi::rte_flow_error::default();
    // SAFETY: `f` is a rule created on `port` and not yet destroyed.
    unsafe { ffi::rte_flow_destroy(port, f.as_ptr(), &mut err) };
}

/// The driver's message (if any) and the errno text.
fn flow_error(err: &ffi::rte_flow_error, errno: i32) -> String {
    let msg = if err.message.is_null() {
        None
    } else {
        // SAFETY: a non-NULL message is a NUL-terminated string owned by the
        // driver (usually static).
        Some(
            unsafe { CStr::from_ptr(err.message) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    let text = ffi::strerror(errno);
    match msg {
        Some(m) => format!("{m} ({text}, errno {errno})"),
        None => format!("{text} (errno {errno})"),
    }
}
