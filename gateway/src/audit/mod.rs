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
//! separators replaced, so a hostile request cannot bloat or garble the
//! trail.

pub mod chain;
pub mod writer;

pub use writer::AuditWriter;

use crate::store::AuditEntry;

/// `decision` of an allowed read.
pub const ALLOWED: &str = "allowed";
/// `decision` of a refused read.
pub const DENIED: &str = "denied";

/// The longest field the audit keeps of what a caller sent.
const MAX_FIELD: usize = 64;

/// What a caller sent, made safe to keep: at most 64 characters, no
/// commas (the store's list separator), no control characters.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .take(MAX_FIELD)
        .map(|c| if c == ',' || c.is_control() { '_' } else { c })
        .collect()
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
        decision: DENIED.to_owned(),
        reason: String::new(),
        trace_id: String::new(),
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

    #[test]
    fn sanitize_bounds_and_cleans() {
        assert_eq!(super::sanitize("a,b\nc"), "a_b_c");
        assert_eq!(super::sanitize(&"x".repeat(1000)).len(), 64);
    }
}
