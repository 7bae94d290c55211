//! What the gateway signs.
//!
//! - [`signing`]: compact JWS (ES256) with the gateway's key, the key
//!   reloaded with the TLS material;
//! - [`receipt`]: the signed receipt of a consent grant or revocation;
//! - [`passport`]: the competence passport as a signed verifiable
//!   credential, and its offline verification.

pub mod passport;
pub mod receipt;
pub mod signing;
