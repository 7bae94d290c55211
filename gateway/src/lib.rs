//! The samverka gateway: consent-checked, audited exchange of education and
//! employment records between agencies, over mutual TLS.
//!
//! One `GetRecords` passes these steps, in this order (the first that
//! fails answers, and every decision is audited):
//!
//! 1. [`net::tls`]: the handshake; the client certificate chains to the
//!    trust bundle and is not revoked (rustls with aws-lc-rs);
//! 2. [`pipeline::identity`]: the calling agency, read from the
//!    certificate, and [`pipeline::rate`]: its rate;
//! 3. [`pipeline::validate`]: the person, record types, purpose and
//!    sources, and [`pipeline::access`]: may this agency read these types
//!    for this purpose?
//! 4. [`pipeline::consent`]: does the person hold a consent in force for
//!    it?
//! 5. [`pipeline::routing`]: fan out in parallel to the adapters holding
//!    the types, within the caller's deadline, one outcome per source;
//! 6. [`audit`]: the decision is committed to the store before the answer
//!    leaves.
//!
//! `docs/architecture.md` in the repository tells the whole design.
//!
//! # Layout
//! - [`pipeline`]: the checks of a read, one module per step above.
//! - [`service`]: the gRPC services (`RecordExchange`, `Consents`,
//!   `AccessLog`), each RPC run through the one wrapper in
//!   [`service::rpc`] (span, metrics, decision, status).
//! - [`audit`]: the hash chain of entries and checkpoints, and the
//!   group-commit writer.
//! - [`store`]: consents and audit entries, in SQLite or PostgreSQL.
//! - [`net`]: TLS on the gRPC port and towards adapters, and mTLS channels
//!   for clients.
//! - [`credential`]: compact JWS signatures with the gateway's key, the
//!   signed consent receipts and the competence passport credential.
//! - [`person`]: person assertions, which prove that the person a
//!   registrar acts for is present (their login's ID token as evidence).
//! - [`config`]: the TOML configuration, validated at start.
//! - [`registry`]: who may read what (agencies, purposes, access rules,
//!   adapter routes, identity providers) in force, versioned in the store
//!   and followed by every replica; changed through the management API
//!   (`service::registry`).
//! - [`error`]: every failure and the one function mapping it to a gRPC
//!   status with a stable reason.
//! - [`state`]: the [`Gateway`] every request shares, built from the
//!   configuration; [`server`]: serves it;
//!   [`admin`] and [`metrics`]: `/metrics`, `/healthz` and `/readyz` on
//!   the operators' plain-HTTP listener; [`public`]: the key set and
//!   the revocation list over HTTPS for verifiers; [`telemetry`]: the spans of each
//!   request; [`time`]: the clock and timestamp conversions.
//!
//! The `samverka` command line (serve, demo, consent, audit, ...) is the
//! root package of the workspace, over this library.

pub mod admin;
pub mod audit;
pub mod config;
pub mod credential;
pub mod error;
pub mod metrics;
pub mod net;
pub mod person;
pub mod pipeline;
pub mod public;
pub mod registry;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;

pub use config::Config;
pub use error::{GatewayError, Reason};
pub use state::{Gateway, StartError};
pub use time::Clock;
