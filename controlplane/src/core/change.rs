//! The changes the core makes to the IPVS table.
//!
//! [`TableChange`] is exact: an add of something present, or an edit or a
//! delete of something absent, is refused with libipvs's message (what an
//! administrator's `ferrovsadm` command gets). It is also what the health
//! checks and a reload's diff say changed ([`TableChange::diff`]); the
//! ipvsadm command type stays on the administrator's path. [`Desired`] is what the
//! configuration file and the health checks say a part of the table must
//! be; against the running table (which an administrator may have edited by
//! hand) it resolves to the one exact change that makes it so, or to none.

use super::CoreError;
use ferrovs_config::ipvs::{Dest, Service, ServiceKey, Table};
use ferrovs_config::ipvsadm::rules::Command;
use ferrovs_config::ipvsadm::TableError;
use std::net::IpAddr;

/// One exact change to the table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum TableChange {
    AddService(Service),
    /// The service's settings; its servers stay.
    EditService(Service),
    DelService(ServiceKey),
    AddDest(ServiceKey, Dest),
    EditDest(ServiceKey, Dest),
    DelDest(ServiceKey, IpAddr, u16),
    /// Every service goes.
    Clear,
    /// `--set tcp tcpfin udp` (0 leaves a value unchanged).
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
}

impl TableChange {
    /// The change an ipvsadm command makes, if it makes one (`-L`, `-S`,
    /// `-Z` and `-R` do not change the table themselves).
    pub fn from_command(c: &Command) -> Option<TableChange> {
        Some(match c {
            Command::AddService(s) => TableChange::AddService(s.clone()),
            Command::EditService(s) => TableChange::EditService(s.clone()),
            Command::DelService(k) => TableChange::DelService(k.clone()),
            Command::AddDest(k, d) => TableChange::AddDest(k.clone(), d.clone()),
            Command::EditDest(k, d) => TableChange::EditDest(k.clone(), d.clone()),
            Command::DelDest(k, a, p) => TableChange::DelDest(k.clone(), *a, *p),
            Command::Clear => TableChange::Clear,
            Command::SetTimeout { tcp, tcpfin, udp } => TableChange::SetTimeouts {
                tcp: *tcp,
                tcpfin: *tcpfin,
                udp: *udp,
            },
            Command::List { .. }
            | Command::Save { .. }
            | Command::Zero(_)
            | Command::Restore
            | Command::StartDaemon(_)
            | Command::StopDaemon { .. } => return None,
        })
    }

    /// The fewest exact changes that turn table `old` into `new`;
    /// entries present in both and equal are left alone (their
    /// connections survive). A new service comes without its servers,
    /// which follow it one by one.
    pub fn diff(old: &Table, new: &Table) -> Vec<TableChange> {
        let mut out = Vec::new();
        for o in &old.services {
            if new.find(&o.key).is_none() {
                out.push(TableChange::DelService(o.key.clone()));
            }
        }
        for n in &new.services {
            match old.find(&n.key) {
                None => {
                    out.push(TableChange::AddService(without_dests(n)));
                    for d in &n.dests {
                        out.push(TableChange::AddDest(n.key.clone(), d.clone()));
                    }
                }
                Some(o) => {
                    if without_dests(o) != without_dests(n) {
                        out.push(TableChange::EditService(without_dests(n)));
                    }
                    dest_changes(&n.key, o, n, &mut out);
                }
            }
        }
        out
    }

    /// Whether the change is to the table (not to the timeouts).
    pub fn is_table(&self) -> bool {
        !matches!(self, TableChange::SetTimeouts { .. })
    }

    /// Applies a table change to `t` with libipvs's refusals; the
    /// timeouts are not the table's and leave it alone.
    pub fn apply(&self, t: &mut Table) -> Result<(), CoreError> {
        let no_service = || CoreError::Table(TableError::ServiceNotDefined);
        match self {
            TableChange::AddService(s) => {
                if t.find(&s.key).is_some() {
                    return Err(CoreError::Table(TableError::ServiceExists));
                }
                t.services.push(s.clone());
            }
            TableChange::EditService(s) => {
                let cur = t
                    .find_mut(&s.key)
                    .ok_or(CoreError::Table(TableError::NoSuchService))?;
                let dests = std::mem::take(&mut cur.dests);
                *cur = Service { dests, ..s.clone() };
            }
            TableChange::DelService(k) => {
                let before = t.services.len();
                t.services.retain(|s| &s.key != k);
                if t.services.len() == before {
                    return Err(CoreError::Table(TableError::NoSuchService));
                }
            }
            TableChange::Clear => t.services.clear(),
            TableChange::AddDest(k, d) => {
                let s = t.find_mut(k).ok_or_else(no_service)?;
                if s.dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                    return Err(CoreError::Table(TableError::DestExists));
                }
                s.dests.push(d.clone());
            }
            TableChange::EditDest(k, d) => {
                let s = t.find_mut(k).ok_or_else(no_service)?;
                let x = s
                    .dests
                    .iter_mut()
                    .find(|x| x.addr == d.addr && x.port == d.port)
                    .ok_or(CoreError::Table(TableError::NoSuchDest))?;
                *x = d.clone();
            }
            TableChange::DelDest(k, a, p) => {
                let s = t.find_mut(k).ok_or_else(no_service)?;
                let before = s.dests.len();
                s.dests.retain(|x| !(x.addr == *a && x.port == *p));
                if s.dests.len() == before {
                    return Err(CoreError::Table(TableError::NoSuchDest));
                }
            }
            TableChange::SetTimeouts { .. } => {}
        }
        Ok(())
    }
}

/// A service's settings alone (an edit leaves its servers alone).
fn without_dests(s: &Service) -> Service {
    Service {
        dests: Vec::new(),
        ..s.clone()
    }
}

/// The servers of one service that `new` adds, removes or changes.
fn dest_changes(key: &ServiceKey, o: &Service, n: &Service, out: &mut Vec<TableChange>) {
    let same = |a: &Dest, b: &Dest| a.addr == b.addr && a.port == b.port;
    for od in &o.dests {
        if !n.dests.iter().any(|nd| same(od, nd)) {
            out.push(TableChange::DelDest(key.clone(), od.addr, od.port));
        }
    }
    for nd in &n.dests {
        match o.dests.iter().find(|od| same(od, nd)) {
            None => out.push(TableChange::AddDest(key.clone(), nd.clone())),
            Some(od) if od != nd => out.push(TableChange::EditDest(key.clone(), nd.clone())),
            _ => {}
        }
    }
}

/// What the file or the health checks say a part of the table is.
#[derive(Clone, Debug, PartialEq)]
pub enum Desired {
    /// The service exists with these settings (its servers follow).
    Service(Service),
    /// The server exists in the service with these settings.
    Dest(ServiceKey, Dest),
    /// The service does not exist.
    NoService(ServiceKey),
    /// The server is not in the service.
    NoDest(ServiceKey, IpAddr, u16),
}

impl Desired {
    /// What an exact change made against another view of the table (the
    /// file's previous table, the health checks' own) means for the
    /// running one, which an administrator may have edited since: the
    /// state it leads to. `--set` and `-C` say nothing of one entry.
    pub fn of(c: &TableChange) -> Option<Desired> {
        Some(match c {
            TableChange::AddService(s) | TableChange::EditService(s) => Desired::Service(s.clone()),
            TableChange::AddDest(k, d) | TableChange::EditDest(k, d) => {
                Desired::Dest(k.clone(), d.clone())
            }
            TableChange::DelService(k) => Desired::NoService(k.clone()),
            TableChange::DelDest(k, a, p) => Desired::NoDest(k.clone(), *a, *p),
            TableChange::Clear | TableChange::SetTimeouts { .. } => return None,
        })
    }

    pub fn of_all(cs: &[TableChange]) -> Vec<Desired> {
        cs.iter().filter_map(Desired::of).collect()
    }

    /// The exact change that makes `t` so, or none when it already is
    /// (something gone already stays gone). A server of a service that
    /// does not exist resolves to the add libipvs refuses.
    pub fn resolve(&self, t: &Table) -> Option<TableChange> {
        let dest_of = |k: &ServiceKey, a: IpAddr, p: u16| {
            t.find(k)
                .is_some_and(|s| s.dests.iter().any(|x| x.addr == a && x.port == p))
        };
        match self {
            Desired::Service(s) if t.find(&s.key).is_some() => {
                Some(TableChange::EditService(s.clone()))
            }
            Desired::Service(s) => Some(TableChange::AddService(s.clone())),
            Desired::Dest(k, d) if dest_of(k, d.addr, d.port) => {
                Some(TableChange::EditDest(k.clone(), d.clone()))
            }
            Desired::Dest(k, d) => Some(TableChange::AddDest(k.clone(), d.clone())),
            Desired::NoService(k) => t.find(k).map(|_| TableChange::DelService(k.clone())),
            Desired::NoDest(k, a, p) => {
                dest_of(k, *a, *p).then(|| TableChange::DelDest(k.clone(), *a, *p))
            }
        }
    }
}
