//! What the control plane learns from the kernel about the director's
//! network, and asks of it: links, addresses and routes over rtnetlink,
//! followed by notification rather than polled. `net_state` is the model
//! (sans-IO); `netlink` feeds it. `dataplane` is the other edge below the
//! control plane: the workers, as it publishes to and asks them.

pub mod dataplane;
pub mod net_state;
pub mod netlink;

pub use dataplane::Dataplane;
pub use net_state::{
    Addr, KernelRoute, Link, LinkStats, LinkStatsMap, NetError, NetEvent, NetState,
};
pub use netlink::Southbound;
