//! Mutual TLS on every hop.
//!
//! - [`tls`]: the gRPC port's server side (client certificates checked
//!   against the trust bundle and the revocation lists), reloaded on
//!   change or SIGHUP, and the one PEM-to-root-store helper;
//! - [`adapter_tls`]: the gateway's client side towards adapters, which
//!   checks that each adapter is the agency the routing table names;
//! - [`client`]: mTLS channels for agency systems, the demo and tests.

pub mod adapter_tls;
pub mod client;
pub mod tls;
