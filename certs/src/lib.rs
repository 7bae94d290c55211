//! samverka's certificate identity convention and its development PKI.
//!
//! Who is calling is decided by the certificate alone, never by anything in
//! a request body. This crate defines, in one place, how an identity is
//! written into a certificate (by [`dev`], the development PKI) and how it is
//! read back from a verified peer certificate (by [`identity`]). Both sides
//! use the same constants, so they cannot drift apart.
//!
//! # Layout
//! - [`ids`]: organisation numbers and personal identity / coordination
//!   numbers, with their check digits.
//! - [`identity`]: the convention (organisation number and role in the
//!   certificate) and [`identity::CertIdentity::from_der`], which reads it
//!   back with x509-parser.
//! - [`dev`]: a development PKI made with rcgen: a CA and the certificates of
//!   the gateway, agencies and adapters, written as PEM files.

pub mod dev;
pub mod identity;
pub mod ids;

pub use identity::{CertIdentity, IdentityError, Role};
pub use ids::{IdError, OrgNumber, SubjectId};
