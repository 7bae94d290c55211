//! The SQLite store's signing keys (`store/keys.rs`).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::keys::{COLUMNS, Retire, RetireReason, SigningKeyRecord};

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.get(0)?,
        cert_pem: row.get(1)?,
        in_use_from_ms: row.get(2)?,
        retired_at_ms: row.get(3)?,
        retire_reason: row.get(4)?,
    })
}

impl SqliteStore {
    pub(in crate::store) async fn note_signing_key(
        &self,
        kid: String,
        cert_pem: String,
        in_use_from_ms: i64,
        entry: AuditEntry,
    ) -> Result<SigningKeyRecord, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let joined = tx
                .prepare_cached(
                    "INSERT INTO signing_keys (kid, cert_pem, in_use_from_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (kid) DO NOTHING",
                )?
                .execute(params![kid, cert_pem, in_use_from_ms])?
                == 1;
            if !joined {
                tx.prepare_cached(
                    "UPDATE signing_keys SET in_use_from_ms = MIN(in_use_from_ms, ?2) WHERE kid = ?1",
                )?
                .execute(params![kid, in_use_from_ms])?;
            }
            let key = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM signing_keys WHERE kid = ?1"
                ))?
                .query_row(params![kid], key_from_row)?;
            if joined {
                commit_with_entry(tx, entry, &progress)?;
            } else {
                tx.commit()?;
            }
            Ok(key)
        })
        .await
    }

    pub(in crate::store) async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read_short(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM signing_keys ORDER BY in_use_from_ms, kid"
            ))?;
            let rows = stmt.query_map([], key_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn retire_signing_key(
        &self,
        kid: String,
        at_ms: i64,
        reason: RetireReason,
        entry: AuditEntry,
    ) -> Result<Retire, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found: Option<(Option<i64>, Option<String>)> = tx
                .prepare_cached(
                    "SELECT retired_at_ms, retire_reason FROM signing_keys WHERE kid = ?1",
                )?
                .query_row(params![kid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((retired, why)) = found else {
                return Ok(Retire::Unknown);
            };
            if let Some(at) = retired.filter(|_| !reason.upgrades(why.as_deref())) {
                return Ok(Retire::Already(at));
            }
            tx.prepare_cached(
                "UPDATE signing_keys SET retired_at_ms = COALESCE(retired_at_ms, ?2), \
                 retire_reason = ?3 WHERE kid = ?1",
            )?
            .execute(params![kid, at_ms, reason.as_str()])?;
            let entry = commit_with_entry(tx, entry, &progress)?;
            Ok(Retire::Done(Box::new(entry)))
        })
        .await
    }
}
