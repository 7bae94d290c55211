//! The samverka gateway: consent-checked, audited exchange of education and
//! employment records between agencies, over mutual TLS.
//!
//! One `GetRecords` passes these steps, in this order (the first that
//! fails answers, and every decision is audited):
//!
//! 1. [`tls`]: the handshake; the client certificate chains to the trust
//!    bundle and is not revoked (rustls with aws-lc-rs);
//! 2. [`identity`]: the calling agency, read from the certificate;
//! 3. request validation (subject id, record types, purpose, sources) and
//!    [`access`]: may this agency read these types for this purpose?
//! 4. [`consent`]: does the person hold a consent in force for it?
//! 5. [`routing`]: fan out in parallel to the adapters holding the types,
//!    within the caller's deadline, one outcome per source;
//! 6. [`audit`]: the decision is committed to the store before the answer
//!    leaves.
//!
//! # Layout
//! - [`config`]: the TOML configuration, validated at start.
//! - [`identity`], [`access`], [`consent`], [`routing`], [`audit`]: one
//!   module per step above; [`exchange`] puts them together as the
//!   `RecordExchange` service, [`consent`] also holds the `Consents`
//!   service, [`access_log`] the person's view of the audit trail.
//! - [`store`]: consents and audit entries, in SQLite or PostgreSQL.
//! - [`signing`]: compact JWS signatures with the gateway's key;
//!   [`receipt`]: the signed consent receipts made with it;
//!   [`passport`]: the competence passport as a signed verifiable
//!   credential.
//! - [`error`]: every failure and the one function mapping it to a gRPC
//!   status with a stable reason.
//! - [`server`]: builds the gateway from a config and serves it.
//! - [`client`]: mTLS channels for agency systems, the demo and tests;
//!   [`adapter_tls`]: the gateway's TLS towards adapters, which checks that
//!   each adapter is the agency the routing table names.
//! - [`demo`]: `samverka demo`, everything on one machine.
//! - [`consent_cli`]: `samverka consent`, for registrars and operators.
//! - [`audit_cli`]: `samverka audit`: verify, export and archive the trail.
//! - [`adapter_cli`]: `samverka adapter run`: a reference adapter as a
//!   process.
//! - [`rate`]: per-agency rate limiting.
//! - [`time`]: the clock and timestamp conversions.
//! - [`metrics`] and [`admin`]: Prometheus metrics, `/healthz` and
//!   `/readyz` on the operators' plain-HTTP listener; [`telemetry`]: the
//!   spans of each request, exported over OTLP.

pub mod access;
pub mod access_log;
pub mod adapter_cli;
pub mod adapter_tls;
pub mod admin;
pub mod audit;
pub mod audit_cli;
pub mod breaker;
pub mod client;
pub mod config;
pub mod consent;
pub mod consent_cli;
pub mod demo;
pub mod error;
pub mod exchange;
pub mod identity;
pub mod metrics;
pub mod passport;
pub mod rate;
pub mod receipt;
pub mod routing;
pub mod server;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tls;

pub use config::Config;
pub use error::{GatewayError, Reason};
pub use server::{Gateway, StartError};
pub use time::Clock;
