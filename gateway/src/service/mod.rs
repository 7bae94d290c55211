//! The gRPC services on the gateway's mTLS port. Each RPC runs through
//! [`rpc::Call::run`], which gives it its request span, counts it in the metrics
//! and turns its result into a response or a status.
//!
//! - [`exchange`]: `samverka.v1.RecordExchange` (`GetRecords`,
//!   `ListSources`), with [`passport`] for `GetCompetencePassport`;
//! - [`consents`]: `samverka.v1.Consents`, for registrars;
//! - [`access_log`]: `samverka.v1.AccessLog`, a person's view of the
//!   trail, through a registrar;
//! - [`merits`]: `samverka.v1.SelfDeclaredMeritService`, what a person declares
//!   of themselves, through a registrar;
//! - [`registry`]: `samverka.admin.v1.Registry`, for operators.

pub mod access_log;
pub mod consents;
pub mod exchange;
pub mod merits;
pub mod passport;
pub mod registry;
pub mod rpc;
