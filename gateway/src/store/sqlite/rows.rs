//! The SQLite store's rows: the schema's migrations, and how consents,
//! audit entries and checkpoints are written to and read from their
//! tables.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use crate::audit::chain;
use crate::store::{
    AUDIT_COLUMNS, AuditCheckpoint, AuditEntry, AuditHead, CONSENT_COLUMNS, StoreError,
    StoredConsent, audit_details_from, audit_list_from, join, schema, split,
};

/// A person's consents, only `grantee`'s if given, newest first (ties by
/// id, the order both backends return).
pub(super) fn select_consents(
    conn: &Connection,
    subject_id: &str,
    grantee: Option<&str>,
) -> rusqlite::Result<Vec<StoredConsent>> {
    // Built once: every read's consent check runs one of these. Two
    // statements rather than one with `?2 IS NULL OR ...`, so that the
    // read path's search uses both index columns; the few rows are sorted
    // here instead of in a temporary B-tree per call.
    static BY_GRANTEE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {CONSENT_COLUMNS} FROM consents WHERE subject_id = ?1 AND grantee_agency = ?2"
        )
    });
    static BY_SUBJECT: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE subject_id = ?1"));
    let mut consents = match grantee {
        Some(grantee) => conn
            .prepare_cached(&BY_GRANTEE)?
            .query_map(params![subject_id, grantee], consent_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(&BY_SUBJECT)?
            .query_map(params![subject_id], consent_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    consents.sort_unstable_by(|a, b| {
        (b.granted_at_ms, &a.consent_id).cmp(&(a.granted_at_ms, &b.consent_id))
    });
    Ok(consents)
}

/// Column `i` as text borrowed from the row, for a value that is parsed
/// further (a list, a state) rather than kept: no `String` made for it.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    let value = row.get_ref(i)?;
    value
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(e)))
}

pub(super) fn consent_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredConsent> {
    Ok(StoredConsent {
        consent_id: row.get(0)?,
        subject_id: row.get(1)?,
        grantee_agency: row.get(2)?,
        record_types: split(text(row, 3)?),
        purpose: row.get(4)?,
        source_agencies: split(text(row, 5)?),
        valid_from_ms: row.get(6)?,
        valid_until_ms: row.get(7)?,
        registrar_agency: row.get(8)?,
        evidence_ref: row.get(9)?,
        request_id: row.get(10)?,
        granted_at_ms: row.get(11)?,
        revoked_at_ms: row.get(12)?,
        revocation_reason: row.get(13)?,
        revoked_by: row.get(14)?,
        state: crate::store::ConsentState::parse(text(row, 15)?),
        requested_by: row.get(16)?,
        justification: row.get(17)?,
        records_from: row.get(18)?,
        records_until: row.get(19)?,
        one_time: row.get::<_, i64>(20)? != 0,
        max_reads: row.get(21)?,
        reads_used: row.get(22)?,
        decide_by_ms: row.get(23)?,
        decided_at_ms: row.get(24)?,
        decided_by: row.get(25)?,
        valid_for_days: row.get(26)?,
    })
}

pub(super) fn audit_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let format: u32 = row.get(15)?;
    Ok(AuditEntry {
        seq: row.get(0)?,
        prev_hash: row.get(1)?,
        hash: row.get(2)?,
        audit_id: row.get(3)?,
        time_ms: row.get(4)?,
        caller: row.get(5)?,
        method: row.get(6)?,
        subject_id: row.get(7)?,
        record_types: audit_list_from(format, text(row, 8)?),
        purpose: row.get(9)?,
        consent_id: row.get(10)?,
        sources: audit_list_from(format, text(row, 11)?),
        decision: row.get(12)?,
        reason: row.get(13)?,
        trace_id: row.get(14)?,
        details: audit_details_from(text(row, 16)?),
        format,
    })
}

fn checkpoint_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditCheckpoint> {
    Ok(AuditCheckpoint {
        seq: row.get(0)?,
        hash: row.get(1)?,
        time_ms: row.get(2)?,
        jws: row.get(3)?,
    })
}

/// Inserts one consent row (no idempotency check: callers decide).
pub(super) fn insert_consent_row(conn: &Connection, c: &StoredConsent) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO consents ({CONSENT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
    ))?
    .execute(params![
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
        c.revoked_by,
        c.state.as_str(),
        c.requested_by,
        c.justification,
        c.records_from,
        c.records_until,
        i64::from(c.one_time),
        c.max_reads,
        c.reads_used,
        c.decide_by_ms,
        c.decided_at_ms,
        c.decided_by,
        c.valid_for_days,
    ])?;
    Ok(())
}

pub(super) fn select_consent(
    conn: &Connection,
    consent_id: &str,
) -> rusqlite::Result<Option<StoredConsent>> {
    conn.query_row(
        &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = ?1"),
        params![consent_id],
        consent_from_row,
    )
    .optional()
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    crate::store::not_newer(current, schema::SQLITE.len())?;
    for (i, sql) in schema::SQLITE.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
            params![i as i64 + 1, crate::time::system_now_ms()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The end of the chain: the last entry; if every entry was pruned, the
/// checkpoint they were pruned through; else the start.
///
/// (No row of its own: updating one would add a page to every commit.)
pub(super) fn chain_head(conn: &Connection) -> rusqlite::Result<AuditHead> {
    let head = |r: &rusqlite::Row<'_>| {
        Ok(AuditHead {
            seq: r.get(0)?,
            hash: r.get(1)?,
        })
    };
    if let Some(last) = conn
        .prepare_cached("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")?
        .query_row([], head)
        .optional()?
    {
        return Ok(last);
    }
    Ok(conn
        .prepare_cached("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")?
        .query_row([], head)
        .optional()?
        .unwrap_or_else(|| AuditHead {
            seq: 0,
            hash: chain::GENESIS.to_owned(),
        }))
}

/// Up to `limit` entries after `after`, in chain order.
pub(super) fn select_audit_range(
    conn: &Connection,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit], audit_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Every signed checkpoint, in chain order.
pub(super) fn select_checkpoints(conn: &Connection) -> Result<Vec<AuditCheckpoint>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, hash, time_ms, jws FROM audit_checkpoints ORDER BY seq")?;
    let rows = stmt.query_map([], checkpoint_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
