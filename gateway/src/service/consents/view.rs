//! How a stored consent is shown: its status at a time, its fields as the
//! API has them, and an audit entry made about it.

use samverka_proto::v1::{Consent, consent};

use crate::audit::AuditEntry;
use crate::store::StoredConsent;
use crate::time;

/// The consent's status at `now_ms`: its state, and expired once its time
/// is up even before the store marks it so.
pub fn status_at(c: &StoredConsent, now_ms: i64) -> consent::Status {
    use crate::store::ConsentState as S;
    match c.state {
        _ if c.revoked_at_ms.is_some() => consent::Status::Revoked,
        S::Pending if c.decide_by_ms.is_some_and(|d| now_ms >= d) => consent::Status::Expired,
        S::Active | S::Paused if now_ms >= c.valid_until_ms => consent::Status::Expired,
        state => status_of(state),
    }
}

/// The status a state is shown as (without the time).
pub(super) fn status_of(state: crate::store::ConsentState) -> consent::Status {
    use crate::store::ConsentState as S;
    match state {
        S::Pending => consent::Status::Pending,
        S::Active => consent::Status::Active,
        S::Paused => consent::Status::Paused,
        S::Revoked => consent::Status::Revoked,
        S::Rejected => consent::Status::Rejected,
        S::Expired => consent::Status::Expired,
        S::Used => consent::Status::Used,
    }
}

/// A stored consent as the API shows it, with its status at `now_ms` and
/// the names `registry` gives its agencies and purpose.
pub fn to_proto(
    c: &StoredConsent,
    now_ms: i64,
    registry: &crate::config::RegistryTables,
) -> Consent {
    let name = |org: &str| {
        samverka_certs::OrgNumber::parse(org)
            .ok()
            .and_then(|o| registry.agency(&o).map(|a| a.name.clone()))
            .unwrap_or_default()
    };
    let purpose = registry.purpose(&c.purpose);
    Consent {
        consent_id: c.consent_id.clone(),
        subject_id: c.subject_id.clone(),
        grantee_agency: c.grantee_agency.clone(),
        record_types: c.record_types.clone(),
        purpose: c.purpose.clone(),
        source_agencies: c.source_agencies.clone(),
        // A request has no validity until it is approved.
        valid_from: (c.valid_until_ms > 0).then(|| time::to_timestamp(c.valid_from_ms)),
        valid_until: (c.valid_until_ms > 0).then(|| time::to_timestamp(c.valid_until_ms)),
        status: status_at(c, now_ms) as i32,
        registrar_agency: c.registrar_agency.clone(),
        evidence_ref: c.evidence_ref.clone(),
        granted_at: Some(time::to_timestamp(c.granted_at_ms)),
        revoked_at: c.revoked_at_ms.map(time::to_timestamp),
        revocation_reason: c.revocation_reason.clone().unwrap_or_default(),
        revoked_by: c.revoked_by.clone().unwrap_or_default(),
        requested_by: c.requested_by.clone(),
        justification: c.justification.clone(),
        records_from: c.records_from.clone(),
        records_until: c.records_until.clone(),
        one_time: c.one_time,
        max_reads: c.max_reads,
        reads_used: c.reads_used,
        decide_by: c.decide_by_ms.map(time::to_timestamp),
        decided_at: c.decided_at_ms.map(time::to_timestamp),
        valid_for_days: c.valid_for_days,
        decided_by: c.decided_by.clone().unwrap_or_default(),
        grantee_name: name(&c.grantee_agency),
        purpose_description: purpose.map(|p| p.description.clone()).unwrap_or_default(),
        purpose_description_sv: purpose
            .and_then(|p| p.description_sv.clone())
            .unwrap_or_default(),
        registrar_name: name(&c.registrar_agency),
    }
}

/// Makes `entry` about the person of `c`, with its terms, so that the
/// person sees the call in their access log.
pub(super) fn about(entry: &mut AuditEntry, c: &StoredConsent) {
    entry.subject_id = c.subject_id.clone();
    entry.consent_id = c.consent_id.clone();
    entry.purpose = c.purpose.clone();
    entry.record_types = c.record_types.clone();
    entry
        .details
        .insert("grantee_agency".into(), c.grantee_agency.clone());
}
