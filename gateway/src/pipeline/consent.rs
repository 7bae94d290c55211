//! Step 4 of a request: does the person hold an active consent for this
//! agency, these record types and this purpose, right now? (The `Consents`
//! service through which registrars record consents is
//! [`crate::service::consents`].)
//!
//! A consent covers a read when it is for the calling agency, names the
//! stated purpose, lists every requested record type and, if it restricts
//! sources, every requested source. It is in force when ACTIVE, from
//! `valid_from` until (not including) `valid_until`. Every change of state
//! and the expiry are checked on every read against the store, so they
//! take effect on the next request. (A counted consent's reads and its
//! period are enforced around the fetch: [`crate::pipeline::terms`].)
//!
//! When no consent is in force the refusal says why, judged by the newest
//! consent that would have covered the read: `CONSENT_REVOKED`,
//! `CONSENT_PAUSED`, `CONSENT_USED`, `CONSENT_PENDING` (the person has not
//! decided), `CONSENT_REJECTED`, `CONSENT_EXPIRED` (also for a consent
//! whose `valid_from` is still ahead),
//! otherwise `PURPOSE_MISMATCH` if a consent in force covers the record types
//! for another purpose, otherwise `CONSENT_MISSING`.

use crate::error::{GatewayError, Reason};
use crate::store::{ConsentState, StoredConsent};

/// Proof that a consent allows the read. Only [`decide`] makes one, and
/// fan-out to adapters needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPermit {
    consent_id: String,
    source_agencies: Vec<String>,
    records_from: String,
    records_until: String,
    max_reads: u32,
}

impl ConsentPermit {
    /// The consent that allows the read.
    pub fn consent_id(&self) -> &str {
        &self.consent_id
    }

    /// The sources the consent restricts the read to; empty means any.
    pub fn source_agencies(&self) -> &[String] {
        &self.source_agencies
    }

    /// The period the records may cover (`YYYY-MM-DD`, inclusive; empty:
    /// open).
    pub fn period(&self) -> (&str, &str) {
        (&self.records_from, &self.records_until)
    }

    /// How many reads the consent allows in all; 0: no limit.
    pub fn max_reads(&self) -> u32 {
        self.max_reads
    }
}

/// Decides one read against the person's consents for the calling agency
/// (newest first, as [`crate::store::Store::consents_for`] returns them).
pub fn decide(
    consents: &[StoredConsent],
    purpose: &str,
    record_types: &[String],
    requested_sources: &[String],
    now_ms: i64,
) -> Result<ConsentPermit, GatewayError> {
    let covers_types = |c: &StoredConsent| record_types.iter().all(|t| c.record_types.contains(t));
    let covers_sources = |c: &StoredConsent| {
        c.source_agencies.is_empty()
            || requested_sources
                .iter()
                .all(|s| c.source_agencies.contains(s))
    };
    let in_force = |c: &StoredConsent| {
        c.state == ConsentState::Active
            && c.revoked_at_ms.is_none()
            && c.valid_from_ms <= now_ms
            && now_ms < c.valid_until_ms
    };
    let covering =
        |c: &&StoredConsent| c.purpose == purpose && covers_types(c) && covers_sources(c);

    if let Some(c) = consents.iter().filter(covering).find(|c| in_force(c)) {
        return Ok(ConsentPermit {
            consent_id: c.consent_id.clone(),
            source_agencies: c.source_agencies.clone(),
            records_from: c.records_from.clone(),
            records_until: c.records_until.clone(),
            max_reads: c.max_reads,
        });
    }
    if let Some(c) = consents.iter().find(covering) {
        let (reason, message) = match c.state {
            _ if c.revoked_at_ms.is_some() => (
                Reason::ConsentRevoked,
                "the person has revoked the consent for this read",
            ),
            ConsentState::Revoked => (
                Reason::ConsentRevoked,
                "the person has revoked the consent for this read",
            ),
            ConsentState::Paused => (
                Reason::ConsentPaused,
                "the person has paused the consent for this read",
            ),
            ConsentState::Used => (
                Reason::ConsentUsed,
                "the consent for this read allows no more reads",
            ),
            ConsentState::Pending => (
                Reason::ConsentPending,
                "the person has not decided on the request for this consent yet",
            ),
            ConsentState::Rejected => (
                Reason::ConsentRejected,
                "the person rejected the request for this consent",
            ),
            ConsentState::Active | ConsentState::Expired => (
                Reason::ConsentExpired,
                "the consent for this read is not in force",
            ),
        };
        return Err(GatewayError::new(reason, message));
    }
    if consents
        .iter()
        .any(|c| c.purpose != purpose && covers_types(c) && in_force(c))
    {
        return Err(GatewayError::new(
            Reason::PurposeMismatch,
            format!("the person has not consented to this read for purpose {purpose}"),
        ));
    }
    Err(GatewayError::new(
        Reason::ConsentMissing,
        "the person holds no consent covering this read",
    ))
}

#[cfg(test)]
mod tests;
