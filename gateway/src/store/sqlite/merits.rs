//! The SQLite store's declared merits (`store/merits.rs`).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::merits::{COLUMNS, Declared, DeclaredMeritRow, Withdrawn};

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeclaredMeritRow> {
    Ok(DeclaredMeritRow {
        merit_id: r.get(0)?,
        subject_id: r.get(1)?,
        registrar_agency: r.get(2)?,
        merit: r.get(3)?,
        declared_at_ms: r.get(4)?,
        withdrawn_at_ms: r.get(5)?,
    })
}

impl SqliteStore {
    pub(in crate::store) async fn declared_merits(
        &self,
        subject_id: &str,
    ) -> Result<Vec<DeclaredMeritRow>, StoreError> {
        let subject_id = subject_id.to_owned();
        self.read_short(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM declared_merits
                 WHERE subject_id = ?1 AND withdrawn_at_ms IS NULL
                 ORDER BY declared_at_ms, merit_id"
            ))?;
            let rows = stmt.query_map(params![subject_id], row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn declare_merit(
        &self,
        m: DeclaredMeritRow,
        limit: usize,
        entry: AuditEntry,
    ) -> Result<Declared, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let kept: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM declared_merits
                     WHERE subject_id = ?1 AND withdrawn_at_ms IS NULL",
                )?
                .query_row(params![m.subject_id], |r| r.get(0))?;
            if usize::try_from(kept).unwrap_or(usize::MAX) >= limit {
                return Ok(Declared::Full);
            }
            tx.prepare_cached(&format!(
                "INSERT INTO declared_merits ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL)"
            ))?
            .execute(params![
                m.merit_id,
                m.subject_id,
                m.registrar_agency,
                m.merit,
                m.declared_at_ms
            ])?;
            Ok(Declared::Done(Box::new(commit_with_entry(
                tx, entry, &progress,
            )?)))
        })
        .await
    }

    pub(in crate::store) async fn withdraw_merit(
        &self,
        subject_id: &str,
        merit_id: &str,
        at_ms: i64,
        entry: AuditEntry,
    ) -> Result<Withdrawn, StoreError> {
        let (subject_id, merit_id) = (subject_id.to_owned(), merit_id.to_owned());
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = tx
                .prepare_cached(
                    "UPDATE declared_merits SET withdrawn_at_ms = ?3, merit = X''
                     WHERE merit_id = ?1 AND subject_id = ?2 AND withdrawn_at_ms IS NULL",
                )?
                .execute(params![merit_id, subject_id, at_ms])?;
            if changed == 0 {
                return Ok(Withdrawn::NotFound);
            }
            let now = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM declared_merits WHERE merit_id = ?1"
                ))?
                .query_row(params![merit_id], row)
                .optional()?
                .ok_or_else(|| StoreError("a merit withdrawn vanished".into()))?;
            let entry = commit_with_entry(tx, entry, &progress)?;
            Ok(Withdrawn::Done(Box::new(entry), now))
        })
        .await
    }
}
