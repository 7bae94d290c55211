//! Mutual TLS on every hop, and bounded accepting.
//!
//! - [`accept`]: the accept loop every listener shares (a cap on
//!   connections in progress, back-off on accept errors, rate-limited
//!   logging) and bounded TLS handshakes on the gRPC port; it lives in the
//!   adapter SDK, so that adapters' ports have the same bounds;
//! - [`tls`]: the gRPC port's server side (client certificates checked
//!   against the trust bundle and the revocation lists), reloaded on
//!   change or SIGHUP, and the one PEM-to-root-store helper;
//! - [`adapter_tls`]: the gateway's client side towards adapters, which
//!   checks that each adapter is the agency the routing table names;
//! - [`client`]: mTLS channels for agency systems, the demo and tests.

pub use samverka_adapter::accept;
pub mod adapter_tls;
pub mod client;
pub mod tls;
