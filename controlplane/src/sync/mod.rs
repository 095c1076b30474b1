//! Connection synchronisation between directors, as the IPVS sync daemon
//! does it (issue 16): the master sends new connections, state changes and
//! persistence templates in batches over UDP multicast (224.0.0.81:8848 by
//! default), the backup installs them. [`message`] is the wire format,
//! byte-compatible with the kernel's version 1 (and version 0 on receive),
//! so that an operator's captures and tools read it; [`batch`] and
//! [`receive`] are the two directions' sans-IO logic, [`settings`] the
//! configuration (keepalived's `lvs_sync_daemon`, ipvsadm's
//! `--start-daemon`), [`io`] the task with the sockets that follows VRRP.
//! Which connections are sent and how a backup installs them is the
//! workers' (`ferrovs_dataplane::sync`).

pub mod batch;
pub mod io;
pub mod message;
pub mod receive;
pub mod settings;
pub mod stats;
