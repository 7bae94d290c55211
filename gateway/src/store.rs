//! The consent and audit store, in a SQLite file.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`, so a committed
//! consent or audit entry survives a crash or power loss: the gateway
//! commits an audit entry before the answer it records leaves. rusqlite is
//! blocking, so every call runs on tokio's blocking pool behind one
//! connection; any failure is reported as [`StoreError`] and the caller
//! fails closed.
//!
//! Lists (record types, organisation numbers) are stored as comma-separated
//! text: neither can contain a comma, as both are validated before they
//! reach the store. Times are Unix milliseconds (UTC).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// The store failed (I/O, corruption, a defect). The message is for the
/// log, not for callers.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// A consent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsent {
    /// Its id (a UUID).
    pub consent_id: String,
    /// The person.
    pub subject_id: String,
    /// The agency allowed to read.
    pub grantee_agency: String,
    /// The record types it may read.
    pub record_types: Vec<String>,
    /// The purpose code.
    pub purpose: String,
    /// The only sources it may read; empty means any.
    pub source_agencies: Vec<String>,
    /// Start of validity (Unix ms).
    pub valid_from_ms: i64,
    /// End of validity (Unix ms).
    pub valid_until_ms: i64,
    /// The registrar that recorded it.
    pub registrar_agency: String,
    /// The registrar's evidence reference.
    pub evidence_ref: String,
    /// The registrar's idempotency key.
    pub request_id: String,
    /// When it was recorded (Unix ms).
    pub granted_at_ms: i64,
    /// When it was revoked (Unix ms), if it was.
    pub revoked_at_ms: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
}

/// One decision of the gateway, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its id (a UUID), returned to the caller.
    pub audit_id: String,
    /// When the decision was made (Unix ms).
    pub time_ms: i64,
    /// The calling agency's organisation number; empty if unknown.
    pub caller: String,
    /// The gRPC method, e.g. `RecordExchange/GetRecords`.
    pub method: String,
    /// The person, as asked for (even if malformed).
    pub subject_id: String,
    /// The record types asked for.
    pub record_types: Vec<String>,
    /// The purpose stated.
    pub purpose: String,
    /// The consent that allowed the read, if any.
    pub consent_id: String,
    /// The sources asked and their outcomes, e.g. `2021999046=OK`.
    pub sources: Vec<String>,
    /// `allowed` or `denied`.
    pub decision: String,
    /// The denial reason (empty when allowed).
    pub reason: String,
    /// The trace id of the request, when traced.
    pub trace_id: String,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS consents (
    consent_id        TEXT PRIMARY KEY,
    subject_id        TEXT NOT NULL,
    grantee_agency    TEXT NOT NULL,
    record_types      TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    source_agencies   TEXT NOT NULL,
    valid_from_ms     INTEGER NOT NULL,
    valid_until_ms    INTEGER NOT NULL,
    registrar_agency  TEXT NOT NULL,
    evidence_ref      TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    granted_at_ms     INTEGER NOT NULL,
    revoked_at_ms     INTEGER,
    revocation_reason TEXT,
    UNIQUE (registrar_agency, request_id)
);
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents (subject_id, grantee_agency);
CREATE TABLE IF NOT EXISTS audit_entries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id     TEXT NOT NULL UNIQUE,
    time_ms      INTEGER NOT NULL,
    caller       TEXT NOT NULL,
    method       TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    record_types TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    consent_id   TEXT NOT NULL,
    sources      TEXT NOT NULL,
    decision     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    trace_id     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_entries (subject_id, time_ms);
";

fn join(v: &[String]) -> String {
    v.join(",")
}

fn split(s: String) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_owned).collect()
    }
}

const CONSENT_COLUMNS: &str = "consent_id, subject_id, grantee_agency, record_types, purpose, \
    source_agencies, valid_from_ms, valid_until_ms, registrar_agency, evidence_ref, request_id, \
    granted_at_ms, revoked_at_ms, revocation_reason";

fn consent_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredConsent> {
    Ok(StoredConsent {
        consent_id: row.get(0)?,
        subject_id: row.get(1)?,
        grantee_agency: row.get(2)?,
        record_types: split(row.get(3)?),
        purpose: row.get(4)?,
        source_agencies: split(row.get(5)?),
        valid_from_ms: row.get(6)?,
        valid_until_ms: row.get(7)?,
        registrar_agency: row.get(8)?,
        evidence_ref: row.get(9)?,
        request_id: row.get(10)?,
        granted_at_ms: row.get(11)?,
        revoked_at_ms: row.get(12)?,
        revocation_reason: row.get(13)?,
    })
}

fn audit_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        audit_id: row.get(0)?,
        time_ms: row.get(1)?,
        caller: row.get(2)?,
        method: row.get(3)?,
        subject_id: row.get(4)?,
        record_types: split(row.get(5)?),
        purpose: row.get(6)?,
        consent_id: row.get(7)?,
        sources: split(row.get(8)?),
        decision: row.get(9)?,
        reason: row.get(10)?,
        trace_id: row.get(11)?,
    })
}

impl Store {
    /// Opens (creating if needed) the store file and its schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError("connection lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
    }

    /// Records a consent, unless the registrar already recorded one with the
    /// same request id: then that one is returned and nothing is written.
    /// Returns the stored consent and whether it was newly inserted.
    pub async fn insert_consent(
        &self,
        c: StoredConsent,
    ) -> Result<(StoredConsent, bool), StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let existing = tx
                .query_row(
                    &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE registrar_agency = ?1 AND request_id = ?2"),
                    params![c.registrar_agency, c.request_id],
                    consent_from_row,
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok((existing, false));
            }
            tx.execute(
                &format!("INSERT INTO consents ({CONSENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    c.consent_id,
                    c.subject_id,
                    c.grantee_agency,
                    join(&c.record_types),
                    c.purpose,
                    join(&c.source_agencies),
                    c.valid_from_ms,
                    c.valid_until_ms,
                    c.registrar_agency,
                    c.evidence_ref,
                    c.request_id,
                    c.granted_at_ms,
                    c.revoked_at_ms,
                    c.revocation_reason,
                ],
            )?;
            tx.commit()?;
            Ok((c, true))
        })
        .await
    }

    /// Marks a consent revoked. Returns the consent after the change, or
    /// `None` if there is no such consent. A consent already revoked is
    /// returned unchanged, with `false`.
    pub async fn revoke_consent(
        &self,
        consent_id: String,
        at_ms: i64,
        reason: String,
    ) -> Result<Option<(StoredConsent, bool)>, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE consents SET revoked_at_ms = ?2, revocation_reason = ?3 \
                 WHERE consent_id = ?1 AND revoked_at_ms IS NULL",
                params![consent_id, at_ms, reason],
            )?;
            let c = tx
                .query_row(
                    &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = ?1"),
                    params![consent_id],
                    consent_from_row,
                )
                .optional()?;
            tx.commit()?;
            Ok(c.map(|c| (c, changed == 1)))
        })
        .await
    }

    /// One consent by id.
    pub async fn consent(&self, consent_id: String) -> Result<Option<StoredConsent>, StoreError> {
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = ?1"),
                    params![consent_id],
                    consent_from_row,
                )
                .optional()?)
        })
        .await
    }

    /// A person's consents, optionally for one grantee, newest first.
    pub async fn consents_for(
        &self,
        subject_id: String,
        grantee: Option<String>,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE subject_id = ?1 \
                 AND (?2 IS NULL OR grantee_agency = ?2) ORDER BY granted_at_ms DESC, consent_id"
            ))?;
            let rows = stmt.query_map(params![subject_id, grantee], consent_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Appends an audit entry and commits it to stable storage before
    /// returning.
    pub async fn append_audit(&self, e: AuditEntry) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO audit_entries (audit_id, time_ms, caller, method, subject_id, \
                 record_types, purpose, consent_id, sources, decision, reason, trace_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    e.audit_id,
                    e.time_ms,
                    e.caller,
                    e.method,
                    e.subject_id,
                    join(&e.record_types),
                    e.purpose,
                    e.consent_id,
                    join(&e.sources),
                    e.decision,
                    e.reason,
                    e.trace_id,
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Audit entries in the order they were written, optionally only those
    /// about one person.
    pub async fn audit_entries(
        &self,
        subject_id: Option<String>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT audit_id, time_ms, caller, method, subject_id, record_types, purpose, \
                 consent_id, sources, decision, reason, trace_id FROM audit_entries \
                 WHERE ?1 IS NULL OR subject_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![subject_id], audit_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(id: &str, request_id: &str) -> StoredConsent {
        StoredConsent {
            consent_id: id.into(),
            subject_id: "199003142388".into(),
            grantee_agency: "2021999020".into(),
            record_types: vec!["education.degree".into(), "employment.period".into()],
            purpose: "study_guidance".into(),
            source_agencies: vec![],
            valid_from_ms: 1_000,
            valid_until_ms: 2_000,
            registrar_agency: "2021999038".into(),
            evidence_ref: "ev-1".into(),
            request_id: request_id.into(),
            granted_at_ms: 1_000,
            revoked_at_ms: None,
            revocation_reason: None,
        }
    }

    #[tokio::test]
    async fn consents_survive_reopening_and_grants_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path).unwrap();
        let (c, inserted) = store.insert_consent(consent("c-1", "r-1")).await.unwrap();
        assert!(inserted);
        let (again, inserted) = store.insert_consent(consent("c-2", "r-1")).await.unwrap();
        assert!(!inserted);
        assert_eq!(again, c);
        let (revoked, changed) = store
            .revoke_consent("c-1".into(), 1_500, "withdrawn".into())
            .await
            .unwrap()
            .unwrap();
        assert!(changed);
        assert_eq!(revoked.revoked_at_ms, Some(1_500));
        let (_, changed) = store
            .revoke_consent("c-1".into(), 1_600, "again".into())
            .await
            .unwrap()
            .unwrap();
        assert!(!changed);
        assert!(
            store
                .revoke_consent("nope".into(), 1, String::new())
                .await
                .unwrap()
                .is_none()
        );
        drop(store);

        let store = Store::open(&path).unwrap();
        let all = store
            .consents_for("199003142388".into(), None)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].revoked_at_ms, Some(1_500));
        assert_eq!(all[0].record_types, consent("c-1", "r-1").record_types);
        assert!(
            store
                .consents_for("199003142388".into(), Some("2021999038".into()))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn audit_entries_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        for i in 0..3 {
            store
                .append_audit(AuditEntry {
                    audit_id: format!("a-{i}"),
                    time_ms: 10 - i,
                    caller: "2021999020".into(),
                    method: "RecordExchange/GetRecords".into(),
                    subject_id: if i == 1 {
                        "x".into()
                    } else {
                        "199003142388".into()
                    },
                    record_types: vec!["employment.period".into()],
                    purpose: "study_guidance".into(),
                    consent_id: String::new(),
                    sources: vec![],
                    decision: "denied".into(),
                    reason: "CONSENT_MISSING".into(),
                    trace_id: String::new(),
                })
                .await
                .unwrap();
        }
        let all = store.audit_entries(None).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.audit_id.as_str()).collect::<Vec<_>>(),
            ["a-0", "a-1", "a-2"]
        );
        assert_eq!(
            store
                .audit_entries(Some("199003142388".into()))
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
