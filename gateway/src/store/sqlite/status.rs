//! The SQLite store's revoked credentials (`store/status.rs`).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::status::{COLUMNS, RevokeCredential, RevokedCredential};

impl SqliteStore {
    pub(in crate::store) async fn revoked_credentials(
        &self,
    ) -> Result<Vec<RevokedCredential>, StoreError> {
        self.read_short(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM revoked_credentials ORDER BY revoked_at_ms, credential_id"
            ))?;
            let rows = stmt.query_map([], |row| {
                Ok(RevokedCredential {
                    credential_id: row.get(0)?,
                    revoked_at_ms: row.get(1)?,
                    reason: row.get(2)?,
                    revoked_by: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn revoke_credential(
        &self,
        r: RevokedCredential,
        entry: AuditEntry,
    ) -> Result<RevokeCredential, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let before: Option<i64> = tx
                .prepare_cached(
                    "SELECT revoked_at_ms FROM revoked_credentials WHERE credential_id = ?1",
                )?
                .query_row(params![r.credential_id], |row| row.get(0))
                .optional()?;
            if let Some(at) = before {
                return Ok(RevokeCredential::Already(at));
            }
            tx.prepare_cached(&format!(
                "INSERT INTO revoked_credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute(params![
                r.credential_id,
                r.revoked_at_ms,
                r.reason,
                r.revoked_by
            ])?;
            let entry = commit_with_entry(tx, entry, &progress)?;
            Ok(RevokeCredential::Done(Box::new(entry)))
        })
        .await
    }
}
