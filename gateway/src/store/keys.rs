//! The gateway's signing keys, kept after rotation: each key (named by the
//! `x5t#S256` thumbprint of its certificate) with the time it was first put
//! in use and, once an operator retires it, when and why. The key set that
//! verifiers use to check old receipts and passports
//! ([`crate::credential::keys`]) is made of these rows.
//!
//! A key is recorded by every replica that puts it in use (the earliest
//! time wins); it is retired only by an operator (`samverka keys retire`),
//! together with the retirement's audit entry, in one transaction.

use crate::audit::chain::AuditEntry;

/// One signing key the gateway has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The `x5t#S256` thumbprint of its certificate.
    pub kid: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// When a gateway first put it in use (Unix ms).
    pub in_use_from_ms: i64,
    /// When it was retired (Unix ms): nothing it signs after this is valid.
    pub retired_at_ms: Option<i64>,
    /// Why: `superseded` (rotated out; what it signed before stays valid)
    /// or `compromised` (nothing it ever signed is to be trusted).
    pub retire_reason: Option<String>,
}

/// Why a key is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// Rotated out: what it signed before retirement stays valid.
    Superseded,
    /// Its private key may be known to others: nothing it signed is valid.
    Compromised,
}

impl RetireReason {
    /// As stored and published.
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Superseded => "superseded",
            RetireReason::Compromised => "compromised",
        }
    }
}

/// The answer to [`super::Store::retire_signing_key`].
#[derive(Debug)]
pub enum Retire {
    /// Retired, with its audit entry (linked into the chain).
    Done(Box<AuditEntry>),
    /// No key of that thumbprint was ever recorded.
    Unknown,
    /// Already retired then (Unix ms); nothing changed.
    Already(i64),
}

pub(super) const COLUMNS: &str = "kid, cert_pem, in_use_from_ms, retired_at_ms, retire_reason";
