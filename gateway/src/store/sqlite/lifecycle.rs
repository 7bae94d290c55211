//! The SQLite store's side of a consent's life (`store/lifecycle.rs`):
//! each change and its audit entry in one immediate transaction.
//!
//! A read's reservation (and its giving back) commits without its own
//! sync (`synchronous = NORMAL` for that transaction): the read's audit
//! entry is committed with a sync before its answer leaves, and that sync
//! makes every earlier commit in the write-ahead log durable too. A crash
//! before it loses the reservation of a read that was never answered.

use rusqlite::params;

use super::rows::{consent_from_row, select_consent};
use super::{SqliteStore, commit_with_entry};
use crate::store::{CONSENT_COLUMNS, StoreError, StoredConsent, Transition, Transitioned, join};

/// Runs `f` on the writer connection (held under its lock) with
/// `synchronous = NORMAL`, then sets `FULL` again, whatever `f` did.
fn unsynced<T>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = f(conn);
    conn.pragma_update(None, "synchronous", "FULL")?;
    result
}

impl SqliteStore {
    pub(in crate::store) async fn transition(
        &self,
        t: Transition,
    ) -> Result<Transitioned, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(mut c) = select_consent(&tx, &t.consent_id)? else {
                return Ok(Transitioned::NotFound);
            };
            if !t.allowed_from(&c) {
                return Ok(Transitioned::Refused(c));
            }
            t.apply(&mut c);
            tx.prepare_cached(
                "UPDATE consents SET state = ?2, record_types = ?3, source_agencies = ?4, \
                 valid_from_ms = ?5, valid_until_ms = ?6, revoked_at_ms = ?7, \
                 revocation_reason = ?8, revoked_by = ?9, decided_at_ms = ?10, decided_by = ?11 \
                 WHERE consent_id = ?1",
            )?
            .execute(params![
                c.consent_id,
                c.state.as_str(),
                join(&c.record_types),
                join(&c.source_agencies),
                c.valid_from_ms,
                c.valid_until_ms,
                c.revoked_at_ms,
                c.revocation_reason,
                c.revoked_by,
                c.decided_at_ms,
                c.decided_by,
            ])?;
            let entry = commit_with_entry(tx, t.entry_for(&c), &progress)?;
            Ok(Transitioned::Done(c, entry))
        })
        .await
    }

    pub(in crate::store) async fn reserve_read(
        &self,
        consent_id: &str,
    ) -> Result<Option<StoredConsent>, StoreError> {
        let consent_id = consent_id.to_owned();
        self.with(move |conn| {
            unsynced(conn, |conn| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let changed = tx
                    .prepare_cached(
                        "UPDATE consents SET reads_used = reads_used + 1 WHERE consent_id = ?1 \
                     AND state = 'active' AND max_reads > 0 AND reads_used < max_reads",
                    )?
                    .execute(params![consent_id])?;
                let c = if changed == 1 {
                    select_consent(&tx, &consent_id)?
                } else {
                    None
                };
                tx.commit()?;
                Ok(c)
            })
        })
        .await
    }

    pub(in crate::store) async fn release_read(&self, consent_id: &str) -> Result<(), StoreError> {
        let consent_id = consent_id.to_owned();
        self.with(move |conn| {
            unsynced(conn, |conn| {
                conn.prepare_cached(
                    "UPDATE consents SET reads_used = reads_used - 1 \
                 WHERE consent_id = ?1 AND reads_used > 0",
                )?
                .execute(params![consent_id])?;
                Ok(())
            })
        })
        .await
    }

    pub(in crate::store) async fn due_to_expire(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        self.read_short(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE \
                 (state IN ('active', 'paused') AND valid_until_ms <= ?1) \
                 OR (state = 'pending' AND decide_by_ms <= ?1) LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now_ms, limit], consent_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
