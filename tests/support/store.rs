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

/// Every page of one person's access log, `size` entries a page, oldest
/// first; read newest first too, and filtered by the first entry's caller
/// in both orders, each of which must say the same.
pub async fn access_log(
    store: &Store,
    subject: &str,
    from_ms: i64,
    to_ms: i64,
    size: i64,
) -> Vec<i64> {
    let all = log_pages(store, subject, from_ms, to_ms, None, false, size).await;
    let mut newest = log_pages(store, subject, from_ms, to_ms, None, true, size).await;
    newest.reverse();
    assert_eq!(
        all, newest,
        "newest first is not the reverse of oldest first"
    );
    if let Some((_, caller)) = all.first() {
        let theirs: Vec<(i64, String)> = all.iter().filter(|(_, c)| c == caller).cloned().collect();
        let caller = Some(caller.clone());
        let filtered = log_pages(store, subject, from_ms, to_ms, caller.clone(), false, size).await;
        assert_eq!(filtered, theirs, "filtered by caller, oldest first");
        let mut filtered = log_pages(store, subject, from_ms, to_ms, caller, true, size).await;
        filtered.reverse();
        assert_eq!(filtered, theirs, "filtered by caller, newest first");
    }
    all.into_iter().map(|(seq, _)| seq).collect()
}

/// Every page in one order: (seq, caller) in the order read.
async fn log_pages(
    store: &Store,
    subject: &str,
    from_ms: i64,
    to_ms: i64,
    caller: Option<String>,
    newest_first: bool,
    size: i64,
) -> Vec<(i64, String)> {
    let mut seen: Vec<(i64, String)> = Vec::new();
    loop {
        let position = match seen.last() {
            Some((seq, _)) => *seq,
            None if newest_first => i64::MAX,
            None => 0,
        };
        let page = store
            .access_log(samverka_gateway::store::LogPage {
                subject_id: subject.to_owned(),
                from_ms,
                to_ms,
                caller: caller.clone(),
                position,
                newest_first,
                limit: size,
            })
            .await
            .unwrap();
        assert!(page.len() as i64 <= size);
        assert!(page.iter().all(|e| e.subject_id == subject));
        assert!(caller.is_none() || page.iter().all(|e| Some(&e.caller) == caller.as_ref()));
        if page.is_empty() {
            return seen;
        }
        seen.extend(page.iter().map(|e| (e.seq, e.caller.clone())));
    }
}

/// Runs each suite function against a fresh SQLite file and a fresh
/// PostgreSQL cluster. The file's name has characters that a `file:` URI
/// must escape (the store opens its index file, and the index the store,
/// through such URIs).
#[macro_export]
macro_rules! on_both_backends {
    ($($suite:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $suite() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$suite(samverka_gateway::store::StoreLocation::Sqlite(dir.path().join("sam %41?#é.db"))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $suite() {
                    let Some(pg) = $crate::support::postgres::PgCluster::start() else { return };
                    super::$suite(samverka_gateway::store::StoreLocation::Postgres(pg.url())).await;
                }
            )*
        }
    };
}
