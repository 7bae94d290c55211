//! Step 6 of a request: every decision, allowed or denied, becomes one
//! audit entry, committed before the answer leaves the gateway.
//!
//! # Layout
//! - [`chain`]: the hash chain, signed checkpoints, and verification.
//! - [`writer`]: group commit: one transaction (one sync) for all entries
//!   that arrive while the previous one commits; checkpoints.
//! - this module: making entries.
//!
//! An entry records the time, the calling agency, the person, the record
//! types and purpose asked for, the consent that allowed the read, the
//! sources asked with their outcomes, the decision and its reason. What a
//! caller sent is recorded as sent, but bounded in length and with list
//! separators replaced ([`crate::pipeline::validate::sanitize`]), so a
//! hostile request cannot bloat or garble the trail.

pub mod chain;
mod pending;
pub mod writer;

pub use chain::{AuditCheckpoint, AuditEntry, AuditHead, FORMAT};
pub use pending::PendingEntry;
pub use writer::AuditWriter;

/// What was decided about a request: the `decision` of its audit entry,
/// its metrics and its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The request was answered.
    Allowed,
    /// The request was refused (the entry's `reason` says why).
    Denied,
    /// The caller cancelled the read after registers were asked (see
    /// [`PendingEntry`]); the entry's sources say which.
    Cancelled,
}

impl Decision {
    /// The decision a result stands for, with the refusal's reason (empty
    /// when allowed).
    pub fn of<T>(result: &Result<T, crate::GatewayError>) -> (Decision, &'static str) {
        match result {
            Ok(_) => (Decision::Allowed, ""),
            Err(e) => (Decision::Denied, e.reason.as_str()),
        }
    }

    /// The stable string stored in entries and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sources asked and their outcomes, as an entry records them:
/// `<agency>=<OUTCOME>`.
pub fn sources(outcomes: &[samverka_proto::v1::SourceOutcome]) -> Vec<String> {
    use samverka_proto::v1::source_outcome::Status;
    outcomes
        .iter()
        .map(|o| {
            let status = Status::try_from(o.status).unwrap_or(Status::Unspecified);
            format!("{}={}", o.source_agency, status.as_str_name())
        })
        .collect()
}

/// A new audit id: a UUID version 7, whose leading bits are the time in
/// milliseconds (and, within one process, a counter), so that ids are
/// unique and ascending. Stored ids are indexed for uniqueness; ascending
/// ids land at the right edge of that index instead of on a random page
/// each, which keeps each commit to a few pages.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new entry for `method`, to be completed by the caller and committed
/// with [`AuditWriter::commit`].
pub fn entry(method: &str, time_ms: i64) -> AuditEntry {
    AuditEntry {
        seq: 0,
        prev_hash: String::new(),
        hash: String::new(),
        audit_id: new_id(),
        time_ms,
        caller: String::new(),
        method: method.to_owned(),
        subject_id: String::new(),
        record_types: Vec::new(),
        purpose: String::new(),
        consent_id: String::new(),
        sources: Vec::new(),
        decision: Decision::Denied.as_str().to_owned(),
        reason: String::new(),
        trace_id: String::new(),
        details: Default::default(),
        format: chain::FORMAT,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn audit_ids_ascend() {
        let ids: Vec<String> = (0..10_000).map(|_| super::new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids must ascend");
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
    }
}
