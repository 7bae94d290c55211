//! The PostgreSQL store's side of a consent's life (`store/lifecycle.rs`):
//! each change and its audit entry in one transaction, the consent's row
//! locked first and then the chain's head, on every path in that order.
//!
//! A read's reservation (and its giving back) commits without waiting
//! for its WAL flush (`synchronous_commit = off` for that transaction):
//! the read's audit entry commits synchronously before the answer leaves,
//! and flushing the WAL to it flushes every earlier commit too.

use super::consents::consent_from_row;
use super::{PostgresStore, commit_with_entry};
use crate::store::{CONSENT_COLUMNS, StoreError, StoredConsent, Transition, Transitioned, join};

impl PostgresStore {
    pub(in crate::store) async fn transition(
        &self,
        t: Transition,
    ) -> Result<Transitioned, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let select = tx
            .prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = $1 FOR UPDATE"
            ))
            .await?;
        let Some(row) = tx.query_opt(&select, &[&t.consent_id]).await? else {
            return Ok(Transitioned::NotFound);
        };
        let mut c = consent_from_row(&row)?;
        if !t.allowed_from(&c) {
            return Ok(Transitioned::Refused(c));
        }
        t.apply(&mut c);
        let update = tx
            .prepare_cached(
                "UPDATE consents SET state = $2, record_types = $3, source_agencies = $4, \
                 valid_from_ms = $5, valid_until_ms = $6, revoked_at_ms = $7, \
                 revocation_reason = $8, revoked_by = $9, decided_at_ms = $10, decided_by = $11 \
                 WHERE consent_id = $1",
            )
            .await?;
        tx.execute(
            &update,
            &[
                &c.consent_id,
                &c.state.as_str(),
                &join(&c.record_types),
                &join(&c.source_agencies),
                &c.valid_from_ms,
                &c.valid_until_ms,
                &c.revoked_at_ms,
                &c.revocation_reason,
                &c.revoked_by,
                &c.decided_at_ms,
                &c.decided_by,
            ],
        )
        .await?;
        let entry = commit_with_entry(tx, t.entry_for(&c)).await?;
        Ok(Transitioned::Done(c, entry))
    }

    pub(in crate::store) async fn reserve_read(
        &self,
        consent_id: &str,
    ) -> Result<Option<StoredConsent>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        // One statement: replicas racing for the last read serialise on the
        // row, and exactly one finds a read left.
        let reserve = tx
            .prepare_cached(&format!(
                "UPDATE consents SET reads_used = reads_used + 1 WHERE consent_id = $1 \
                 AND state = 'active' AND max_reads > 0 AND reads_used < max_reads \
                 RETURNING {CONSENT_COLUMNS}"
            ))
            .await?;
        let row = tx.query_opt(&reserve, &[&consent_id]).await?;
        tx.commit().await?;
        row.as_ref().map(consent_from_row).transpose()
    }

    pub(in crate::store) async fn release_read(&self, consent_id: &str) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        let release = tx
            .prepare_cached(
                "UPDATE consents SET reads_used = reads_used - 1 \
                 WHERE consent_id = $1 AND reads_used > 0",
            )
            .await?;
        tx.execute(&release, &[&consent_id]).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn due_to_expire(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        let client = self.pool.get().await?;
        let due = client
            .prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE \
                 (state IN ('active', 'paused') AND valid_until_ms <= $1) \
                 OR (state = 'pending' AND decide_by_ms <= $1) LIMIT $2"
            ))
            .await?;
        client
            .query(&due, &[&now_ms, &limit])
            .await?
            .iter()
            .map(consent_from_row)
            .collect()
    }
}
