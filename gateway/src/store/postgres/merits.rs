//! The PostgreSQL store's declared merits (`store/merits.rs`). Two
//! declarations for one person at once (on two replicas) take the
//! person's advisory lock in turn, so that the limit holds.

use super::{PostgresStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::merits::{COLUMNS, Declared, DeclaredMeritRow, Withdrawn};

fn row(r: &tokio_postgres::Row) -> Result<DeclaredMeritRow, StoreError> {
    Ok(DeclaredMeritRow {
        merit_id: r.try_get(0)?,
        subject_id: r.try_get(1)?,
        registrar_agency: r.try_get(2)?,
        merit: r.try_get(3)?,
        declared_at_ms: r.try_get(4)?,
        withdrawn_at_ms: r.try_get(5)?,
    })
}

impl PostgresStore {
    pub(in crate::store) async fn declared_merits(
        &self,
        subject_id: &str,
    ) -> Result<Vec<DeclaredMeritRow>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM declared_merits
                     WHERE subject_id = $1 AND withdrawn_at_ms IS NULL
                     ORDER BY declared_at_ms, merit_id"
                ),
                &[&subject_id],
            )
            .await?
            .iter()
            .map(row)
            .collect()
    }

    pub(in crate::store) async fn declare_merit(
        &self,
        m: DeclaredMeritRow,
        limit: usize,
        entry: AuditEntry,
    ) -> Result<Declared, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('declared_merits:' || $1))",
            &[&m.subject_id],
        )
        .await?;
        let kept: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM declared_merits
                 WHERE subject_id = $1 AND withdrawn_at_ms IS NULL",
                &[&m.subject_id],
            )
            .await?
            .try_get(0)?;
        if usize::try_from(kept).unwrap_or(usize::MAX) >= limit {
            return Ok(Declared::Full);
        }
        tx.execute(
            &format!("INSERT INTO declared_merits ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)"),
            &[
                &m.merit_id,
                &m.subject_id,
                &m.registrar_agency,
                &m.merit,
                &m.declared_at_ms,
            ],
        )
        .await?;
        Ok(Declared::Done(Box::new(
            commit_with_entry(tx, entry).await?,
        )))
    }

    pub(in crate::store) async fn withdraw_merit(
        &self,
        subject_id: &str,
        merit_id: &str,
        at_ms: i64,
        entry: AuditEntry,
    ) -> Result<Withdrawn, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(now) = tx
            .query_opt(
                &format!(
                    "UPDATE declared_merits SET withdrawn_at_ms = $3, merit = ''::bytea
                     WHERE merit_id = $1 AND subject_id = $2 AND withdrawn_at_ms IS NULL
                     RETURNING {COLUMNS}"
                ),
                &[&merit_id, &subject_id, &at_ms],
            )
            .await?
        else {
            return Ok(Withdrawn::NotFound);
        };
        let now = row(&now)?;
        let entry = commit_with_entry(tx, entry).await?;
        Ok(Withdrawn::Done(Box::new(entry), now))
    }
}
