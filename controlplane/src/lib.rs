//! ferrovs control plane.
pub mod afpacket_ports;
pub mod afxdp_ports;
pub mod check;
pub mod core;
pub mod daemon;
#[cfg(feature = "dpdk")]
pub mod dpdk_ports;
pub mod health;
pub mod heartbeat;
pub mod ipvs_state;
pub mod mailbox;
pub mod northbound;
pub mod port_device;
pub mod rate;
pub mod southbound;
pub mod view;
pub mod vrrp;
