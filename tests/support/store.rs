//! Consents and audit entries for the store tests, and reading a
//! person's access log back from a store page by page.

use samverka_gateway::audit::AuditEntry;
use samverka_gateway::store::{Store, StoredConsent};

/// A consent of the demo person for the reading agency, with the id
/// `id`, recorded by the registrar under `request_id`.
pub fn consent(id: &str, request_id: &str, granted_at_ms: i64) -> StoredConsent {
    StoredConsent {
        consent_id: id.into(),
        subject_id: "199003142388".into(),
        grantee_agency: "2021999020".into(),
        record_types: vec!["education.degree".into(), "employment.period".into()],
        purpose: "study_guidance".into(),
        source_agencies: vec!["2021999053".into()],
        valid_from_ms: 1_000,
        valid_until_ms: 2_000,
        registrar_agency: "2021999038".into(),
        evidence_ref: "ev-1".into(),
        request_id: request_id.into(),
        granted_at_ms,
        revoked_at_ms: None,
        revocation_reason: None,
        revoked_by: None,
        ..Default::default()
    }
}

/// An allowed read of employment periods about `subject`, with the id
/// `id`, not yet chained.
pub fn audit(id: &str, subject: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        prev_hash: String::new(),
        hash: String::new(),
        audit_id: id.into(),
        time_ms: 10,
        caller: "2021999020".into(),
        method: "RecordExchange/GetRecords".into(),
        subject_id: subject.into(),
        record_types: vec!["employment.period".into()],
        purpose: "study_guidance".into(),
        consent_id: String::new(),
        sources: vec!["2021999046=OK".into(), "2021999053=UNAVAILABLE".into()],
        decision: "allowed".into(),
        reason: String::new(),
        trace_id: String::new(),
        details: Default::default(),
        format: samverka_gateway::audit::FORMAT,
    }
}

/// Appends `n` entries about `subject` in one batch, with ids
/// `{prefix}-{i}`; returns them as chained.
pub async fn append(store: &Store, prefix: &str, subject: &str, n: usize) -> Vec<AuditEntry> {
    let batch = (0..n)
        .map(|i| audit(&format!("{prefix}-{i}"), subject))
        .collect();
    store.append_audit_batch(batch).await.unwrap()
}

/// One person's whole access log, read in pages of 3 before and after
/// the index catches up (an answer is the same either way).
pub async fn indexed_or_not(store: &Store, subject: &str) -> Vec<i64> {
    let before = access_log(store, subject, 0, i64::MAX, 3).await;
    store.index_access_log().await.unwrap();
    let after = access_log(store, subject, 0, i64::MAX, 3).await;
    assert_eq!(before, after, "indexing changed the access log");
    after
}

/// Every page of one person's access log, `size` entries a page.
pub async fn access_log(
    store: &Store,
    subject: &str,
    from_ms: i64,
    to_ms: i64,
    size: i64,
) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let after = seqs.last().copied().unwrap_or(0);
        let page = store
            .access_events(subject, from_ms, to_ms, after, size)
            .await
            .unwrap();
        assert!(page.len() as i64 <= size);
        assert!(page.iter().all(|e| e.subject_id == subject));
        if page.is_empty() {
            return seqs;
        }
        seqs.extend(page.iter().map(|e| e.seq));
    }
}
