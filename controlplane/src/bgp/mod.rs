//! Announcing VIPs to routers over BGP, for N active directors behind ECMP
//! (issue 16). [`announcer`] decides, from the services' quorum, the
//! workers' liveness, drains and shutdown, which VIPs are announced;
//! [`exabgp`] speaks ExaBGP's process API, the BGP speaker ferrovs drives.
//!
//! Why ExaBGP: it is packaged in Debian, it exists for exactly this
//! (programs that inject and withdraw routes as their health changes), and
//! its API is text lines on a pipe, so no client library or RPC stack comes
//! with it. BIRD and FRR would need their configuration rewritten and
//! reloaded for every change; GoBGP would bring gRPC.

pub mod adopt;
pub mod announcer;
pub mod drain;
pub mod driver;
pub mod exabgp;
pub mod relay;
