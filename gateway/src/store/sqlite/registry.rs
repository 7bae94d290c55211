//! The SQLite store's registry versions (`store/registry.rs`).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::registry::{PutRegistry, RegistryVersion};

const COLUMNS: &str = "version, document, digest, changed_at_ms, changed_by, summary";

fn version_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RegistryVersion> {
    Ok(RegistryVersion {
        version: row.get(0)?,
        document: row.get(1)?,
        digest: row.get(2)?,
        changed_at_ms: row.get(3)?,
        changed_by: row.get(4)?,
        summary: row.get(5)?,
    })
}

impl SqliteStore {
    pub(in crate::store) async fn registry_head(&self) -> Result<i64, StoreError> {
        self.read_short(|conn| {
            Ok(conn
                .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM registry_versions")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    pub(in crate::store) async fn registry_version(
        &self,
        version: Option<i64>,
    ) -> Result<Option<RegistryVersion>, StoreError> {
        self.read_short(move |conn| {
            let sql = match version {
                Some(_) => format!("SELECT {COLUMNS} FROM registry_versions WHERE version = ?1"),
                None => format!(
                    "SELECT {COLUMNS} FROM registry_versions WHERE ?1 IS NULL \
                     ORDER BY version DESC LIMIT 1"
                ),
            };
            Ok(conn
                .prepare_cached(&sql)?
                .query_row(params![version], version_from_row)
                .optional()?)
        })
        .await
    }

    pub(in crate::store) async fn registry_history(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<RegistryVersion>, StoreError> {
        self.read_short(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM registry_versions WHERE version < ?1 \
                 ORDER BY version DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![before, limit], version_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn put_registry(
        &self,
        v: RegistryVersion,
        entry: AuditEntry,
    ) -> Result<PutRegistry, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let latest: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM registry_versions")?
                .query_row([], |r| r.get(0))?;
            if latest != v.version - 1 {
                return Ok(PutRegistry::Conflict(latest));
            }
            tx.prepare_cached(&format!(
                "INSERT INTO registry_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                v.version,
                v.document,
                v.digest,
                v.changed_at_ms,
                v.changed_by,
                v.summary
            ])?;
            let entry = commit_with_entry(tx, entry, &progress)?;
            Ok(PutRegistry::Written(Box::new(entry)))
        })
        .await
    }
}
