//! The PostgreSQL store's revoked credentials (`store/status.rs`). Two
//! operators revoking the same credential at once collide on its primary
//! key: the second finds it revoked.

use tokio_postgres::error::SqlState;

use super::{PostgresStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::status::{COLUMNS, RevokeCredential, RevokedCredential};

impl PostgresStore {
    pub(in crate::store) async fn revoked_credentials(
        &self,
    ) -> Result<Vec<RevokedCredential>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM revoked_credentials ORDER BY revoked_at_ms, credential_id"
                ),
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(RevokedCredential {
                    credential_id: row.try_get(0)?,
                    revoked_at_ms: row.try_get(1)?,
                    reason: row.try_get(2)?,
                    revoked_by: row.try_get(3)?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn revoke_credential(
        &self,
        r: RevokedCredential,
        entry: AuditEntry,
    ) -> Result<RevokeCredential, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let already = |at: i64| Ok(RevokeCredential::Already(at));
        if let Some(row) = tx
            .query_opt(
                "SELECT revoked_at_ms FROM revoked_credentials WHERE credential_id = $1",
                &[&r.credential_id],
            )
            .await?
        {
            return already(row.try_get(0)?);
        }
        let inserted = tx
            .execute(
                &format!("INSERT INTO revoked_credentials ({COLUMNS}) VALUES ($1, $2, $3, $4)"),
                &[&r.credential_id, &r.revoked_at_ms, &r.reason, &r.revoked_by],
            )
            .await;
        if let Err(e) = inserted {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                // Another operator's, committed meanwhile: its time, read
                // outside this (aborted) transaction.
                drop(tx);
                let row = client
                    .query_one(
                        "SELECT revoked_at_ms FROM revoked_credentials WHERE credential_id = $1",
                        &[&r.credential_id],
                    )
                    .await?;
                return already(row.try_get(0)?);
            }
            return Err(e.into());
        }
        let entry = commit_with_entry(tx, entry).await?;
        Ok(RevokeCredential::Done(Box::new(entry)))
    }
}
