//! The PostgreSQL store's signing keys (`store/keys.rs`). Retiring locks
//! the key's row, so of two operators retiring it at once one does.

use super::{PostgresStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::keys::{COLUMNS, Retire, RetireReason, SigningKeyRecord};

fn key_from_row(row: &tokio_postgres::Row) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.try_get(0)?,
        cert_pem: row.try_get(1)?,
        in_use_from_ms: row.try_get(2)?,
        retired_at_ms: row.try_get(3)?,
        retire_reason: row.try_get(4)?,
    })
}

impl PostgresStore {
    pub(in crate::store) async fn note_signing_key(
        &self,
        kid: String,
        cert_pem: String,
        in_use_from_ms: i64,
        entry: AuditEntry,
    ) -> Result<SigningKeyRecord, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // `xmax = 0`: the row was inserted by this statement, not updated.
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO signing_keys (kid, cert_pem, in_use_from_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (kid) DO UPDATE SET \
                     in_use_from_ms = LEAST(signing_keys.in_use_from_ms, excluded.in_use_from_ms) \
                     RETURNING {COLUMNS}, (xmax = 0) AS joined"
                ),
                &[&kid, &cert_pem, &in_use_from_ms],
            )
            .await?;
        let key = key_from_row(&row)?;
        if row.try_get::<_, bool>("joined")? {
            commit_with_entry(tx, entry).await?;
        } else {
            tx.commit().await?;
        }
        Ok(key)
    }

    pub(in crate::store) async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(
                &format!("SELECT {COLUMNS} FROM signing_keys ORDER BY in_use_from_ms, kid"),
                &[],
            )
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    pub(in crate::store) async fn retire_signing_key(
        &self,
        kid: String,
        at_ms: i64,
        reason: RetireReason,
        entry: AuditEntry,
    ) -> Result<Retire, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let found = tx
            .query_opt(
                "SELECT retired_at_ms, retire_reason FROM signing_keys WHERE kid = $1 FOR UPDATE",
                &[&kid],
            )
            .await?;
        let Some(found) = found else {
            return Ok(Retire::Unknown);
        };
        let why: Option<String> = found.try_get(1)?;
        if let Some(at) = found
            .try_get::<_, Option<i64>>(0)?
            .filter(|_| !reason.upgrades(why.as_deref()))
        {
            return Ok(Retire::Already(at));
        }
        tx.execute(
            "UPDATE signing_keys SET retired_at_ms = COALESCE(retired_at_ms, $2), \
             retire_reason = $3 WHERE kid = $1",
            &[&kid, &at_ms, &reason.as_str()],
        )
        .await?;
        let entry = commit_with_entry(tx, entry).await?;
        Ok(Retire::Done(Box::new(entry)))
    }
}
