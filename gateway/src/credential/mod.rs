//! What the gateway signs.
//!
//! - [`signing`]: compact JWS (ES256) with the gateway's key, the key
//!   reloaded with the TLS material;
//! - [`receipt`]: the signed receipt of a consent grant or revocation;
//! - [`passport`]: the competence passport as a signed CLR 2.0 / Open
//!   Badges 3.0 credential, and its offline verification;
//! - [`keys`]: the gateway's signing keys as a key set that verifiers keep,
//!   with each key's validity;
//! - [`status`]: a passport's revocation status (1EdTech Revocation List);
//! - [`elm`]: a verified passport exported in the European Learning Model;
//! - [`attestation`]: the sources' own signed credentials for their
//!   records, checked as they arrive and carried in passports.

pub mod attestation;
pub mod elm;
pub mod keys;
pub mod passport;
pub mod receipt;
pub mod signing;
pub mod status;
