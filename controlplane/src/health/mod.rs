//! Real-server health checking.
