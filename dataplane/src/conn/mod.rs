//! Connection tracking: entries, the IPVS TCP state machine, the per-worker
//! table with its expiry wheel, flood defence (pressure levels and the
//! eviction of half-open and unconfirmed entries, oldest first), and the
//! persistence templates shared by all workers.

pub mod addr_pool;
pub mod entry;
pub mod evict;
pub mod ghost;
pub mod index;
pub mod pressure;
pub mod state;
pub mod table;
pub mod template;
pub mod timer;

pub use entry::{Addrs6, Conn, Tuple, Tuple6};
pub use pressure::Pressure;
pub use state::{Dir, TcpState, Timeouts, TCP_STATES};
pub use table::{ConnTable, Refused6, TableFull};
