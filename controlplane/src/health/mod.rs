//! Real-server health checking with keepalived's semantics.
pub mod checker;
pub mod names;
pub mod service;
