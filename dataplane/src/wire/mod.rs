//! Zero-copy packet views and in-place rewrites (in the spirit of smoltcp's
//! `wire`): plain functions over byte slices, no allocation.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod l4;
pub mod ndp;
pub mod tcp;

pub use ethernet::Mac;
