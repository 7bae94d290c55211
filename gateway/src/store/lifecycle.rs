//! A consent's life: its states, and the changes between them that the
//! store makes in one transaction with the audit entry recording them, so
//! that no change is ever without its entry (and the change events that
//! agencies follow, which are read from the trail, miss nothing).
//!
//! ```text
//! PENDING -> ACTIVE | REJECTED | EXPIRED
//! ACTIVE <-> PAUSED
//! ACTIVE | PAUSED -> REVOKED | EXPIRED
//! ACTIVE -> USED
//! ```

use super::StoredConsent;
use crate::audit::AuditEntry;

/// Where a consent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsentState {
    /// Requested by an agency, waiting for the person.
    Pending,
    /// In force (from `valid_from`, until `valid_until`).
    #[default]
    Active,
    /// Paused by the person.
    Paused,
    /// Revoked by the person.
    Revoked,
    /// The person rejected the request.
    Rejected,
    /// Past `valid_until`, or a request past its `decide_by`.
    Expired,
    /// A one-time consent after its read; one whose reads are all used.
    Used,
}

impl ConsentState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Pending => "pending",
            ConsentState::Active => "active",
            ConsentState::Paused => "paused",
            ConsentState::Revoked => "revoked",
            ConsentState::Rejected => "rejected",
            ConsentState::Expired => "expired",
            ConsentState::Used => "used",
        }
    }

    /// From the stored form; an unknown one reads as `Revoked`, which
    /// allows nothing.
    pub fn parse(s: &str) -> ConsentState {
        match s {
            "pending" => ConsentState::Pending,
            "active" => ConsentState::Active,
            "paused" => ConsentState::Paused,
            "rejected" => ConsentState::Rejected,
            "expired" => ConsentState::Expired,
            "used" => ConsentState::Used,
            _ => ConsentState::Revoked,
        }
    }

    /// The states a change to `to` may start from.
    pub fn sources_of(to: ConsentState) -> &'static [ConsentState] {
        use ConsentState::*;
        match to {
            Active => &[Pending, Paused],
            Paused => &[Active],
            Revoked => &[Active, Paused],
            Rejected => &[Pending],
            Expired => &[Pending, Active, Paused],
            Used => &[Active],
            Pending => &[],
        }
    }
}

/// What an approval changes: the terms as the person approved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The record types approved (the requested ones, or fewer).
    pub record_types: Vec<String>,
    /// The sources approved.
    pub source_agencies: Vec<String>,
    /// From when.
    pub valid_from_ms: i64,
    /// Until when (exclusive).
    pub valid_until_ms: i64,
}

/// One change of state, and the audit entry that records it.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The consent.
    pub consent_id: String,
    /// The state it goes to (from one of [`ConsentState::sources_of`]).
    pub to: ConsentState,
    /// Only from this state, when the caller judged the change against it
    /// (an approval checked against a pending request): a change made in
    /// between refuses this one.
    pub only_from: Option<ConsentState>,
    /// When.
    pub at_ms: i64,
    /// The registrar through which the person made it, if they did.
    pub by: Option<String>,
    /// Why (a revocation's or rejection's reason).
    pub reason: Option<String>,
    /// For an approval: the terms approved.
    pub approved: Option<Approved>,
    /// The entry recording it, committed in the same transaction; the
    /// store completes its consent fields.
    pub entry: AuditEntry,
}

/// What became of a [`Transition`]. (Returned once per change and not
/// kept: its size does not matter.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Transitioned {
    /// Made: the consent after it, and the committed entry.
    Done(StoredConsent, AuditEntry),
    /// Not allowed from the state the consent is in (which it keeps).
    Refused(StoredConsent),
    /// No consent has that id.
    NotFound,
}

impl Transition {
    /// Whether the change may start from `c`'s state.
    pub fn allowed_from(&self, c: &StoredConsent) -> bool {
        ConsentState::sources_of(self.to).contains(&c.state)
            && self.only_from.is_none_or(|s| s == c.state)
    }

    /// `c` after the change.
    pub fn apply(&self, c: &mut StoredConsent) {
        let from = c.state;
        c.state = self.to;
        match self.to {
            ConsentState::Revoked => {
                c.revoked_at_ms = Some(self.at_ms);
                c.revocation_reason = self.reason.clone();
                c.revoked_by = self.by.clone();
            }
            ConsentState::Rejected => {
                c.decided_at_ms = Some(self.at_ms);
                c.decided_by = self.by.clone();
                c.revocation_reason = self.reason.clone();
            }
            ConsentState::Active if from == ConsentState::Pending => {
                c.decided_at_ms = Some(self.at_ms);
                c.decided_by = self.by.clone();
                if let Some(a) = &self.approved {
                    c.record_types = a.record_types.clone();
                    c.source_agencies = a.source_agencies.clone();
                    c.valid_from_ms = a.valid_from_ms;
                    c.valid_until_ms = a.valid_until_ms;
                }
            }
            _ => {}
        }
    }

    /// The entry, completed with the consent it records.
    pub fn entry_for(&self, c: &StoredConsent) -> AuditEntry {
        let mut e = self.entry.clone();
        e.consent_id = c.consent_id.clone();
        e.subject_id = c.subject_id.clone();
        e.purpose = c.purpose.clone();
        e.record_types = c.record_types.clone();
        e.details
            .insert("grantee_agency".into(), c.grantee_agency.clone());
        e.details.insert("state".into(), c.state.as_str().into());
        if !c.requested_by.is_empty() {
            e.details
                .insert("requested_by".into(), c.requested_by.clone());
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConsentState::*;

    #[test]
    fn only_the_designed_changes_are_allowed() {
        let all = [Pending, Active, Paused, Revoked, Rejected, Expired, Used];
        let mut allowed = Vec::new();
        for from in all {
            for to in all {
                if ConsentState::sources_of(to).contains(&from) {
                    allowed.push((from.as_str(), to.as_str()));
                }
            }
        }
        assert_eq!(
            allowed,
            [
                ("pending", "active"),
                ("pending", "rejected"),
                ("pending", "expired"),
                ("active", "paused"),
                ("active", "revoked"),
                ("active", "expired"),
                ("active", "used"),
                ("paused", "active"),
                ("paused", "revoked"),
                ("paused", "expired"),
            ]
        );
        for s in all {
            assert_eq!(ConsentState::parse(s.as_str()), s);
        }
        assert_eq!(ConsentState::parse("?"), Revoked);
    }
}
