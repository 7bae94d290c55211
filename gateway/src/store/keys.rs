//! The gateway's signing keys, kept after rotation: each key (named by the
//! `x5t#S256` thumbprint of its certificate) with the time from which it
//! may have signed (its certificate's notBefore) and, once an operator
//! retires it, when and why. The key set that
//! verifiers use to check old receipts and passports
//! ([`crate::credential::keys`]) is made of these rows.
//!
//! A key is recorded by every replica that puts it in use (a second
//! record keeps the earlier time); it is retired only by an operator (`samverka keys retire`),
//! together with the retirement's audit entry, in one transaction.

use crate::audit::chain::AuditEntry;

/// One signing key the gateway has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The `x5t#S256` thumbprint of its certificate.
    pub kid: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// From when it may have signed (Unix ms): its certificate's notBefore.
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

    /// Whether retiring again for this reason changes a key retired for
    /// `before`: only a superseded key found compromised.
    pub fn upgrades(self, before: Option<&str>) -> bool {
        self == RetireReason::Compromised && before != Some("compromised")
    }
}

/// The answer to [`super::Store::retire_signing_key`].
#[derive(Debug)]
pub enum Retire {
    /// Retired, with its audit entry (linked into the chain).
    Done(Box<AuditEntry>),
    /// No key of that thumbprint was ever recorded.
    Unknown,
    /// Already retired then (Unix ms), for this reason or a graver one;
    /// nothing changed. (A superseded key can still be retired as
    /// compromised: it keeps its retirement time.)
    Already(i64),
}

pub(super) const COLUMNS: &str = "kid, cert_pem, in_use_from_ms, retired_at_ms, retire_reason";

impl super::Store {
    /// Records a signing key put in use at `in_use_from_ms` (the earliest
    /// such time is kept); returns it as recorded, retired or not. A key
    /// new to the set joins it with `entry` in the audit trail, in one
    /// transaction; a key already there appends nothing.
    pub async fn note_signing_key(
        &self,
        kid: String,
        cert_pem: String,
        in_use_from_ms: i64,
        entry: AuditEntry,
    ) -> Result<SigningKeyRecord, super::StoreError> {
        delegate!(self.note_signing_key(kid, cert_pem, in_use_from_ms, entry))
    }

    /// Every signing key recorded, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, super::StoreError> {
        delegate!(self.signing_keys())
    }

    /// Retires the signing key `kid` at `at_ms`, committing `entry` with it.
    pub async fn retire_signing_key(
        &self,
        kid: String,
        at_ms: i64,
        reason: RetireReason,
        entry: AuditEntry,
    ) -> Result<Retire, super::StoreError> {
        delegate!(self.retire_signing_key(kid, at_ms, reason, entry))
    }
}
