//! Credentials an operator revoked (`samverka passport revoke`): the
//! revocation list the public listener serves for verifiers, as the
//! passports' `credentialStatus` (`1EdTechRevocationList`) names it.
//! A revocation is written together with its audit entry, in one
//! transaction, and once: revoking again changes nothing.

use crate::audit::chain::AuditEntry;

/// One revoked credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCredential {
    /// The credential's `id` (`urn:uuid:...`).
    pub credential_id: String,
    /// When (Unix ms).
    pub revoked_at_ms: i64,
    /// Why, as the operator said it; published.
    pub reason: String,
    /// Who: the operator's account.
    pub revoked_by: String,
}

/// The answer to [`super::Store::revoke_credential`].
#[derive(Debug)]
pub enum RevokeCredential {
    /// Revoked, with its audit entry (linked into the chain).
    Done(Box<AuditEntry>),
    /// Already revoked then (Unix ms); nothing changed.
    Already(i64),
}

pub(super) const COLUMNS: &str = "credential_id, revoked_at_ms, reason, revoked_by";

impl super::Store {
    /// Every revoked credential, oldest first.
    pub async fn revoked_credentials(&self) -> Result<Vec<RevokedCredential>, super::StoreError> {
        delegate!(self.revoked_credentials())
    }

    /// Revokes a credential, committing `entry` with it (once).
    pub async fn revoke_credential(
        &self,
        revoked: RevokedCredential,
        entry: AuditEntry,
    ) -> Result<RevokeCredential, super::StoreError> {
        delegate!(self.revoke_credential(revoked, entry))
    }
}
