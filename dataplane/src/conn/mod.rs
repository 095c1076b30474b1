//! Connection tracking: entries, the IPVS TCP state machine, the per-worker
//! table with its expiry wheel, and the persistence templates shared by all
//! workers.

pub mod entry;
pub mod index;
pub mod state;
pub mod table;
pub mod template;
pub mod timer;

pub use entry::{Conn, Tuple};
pub use state::{Dir, TcpState, Timeouts};
pub use table::{ConnTable, TableFull};
