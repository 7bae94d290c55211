//! The PostgreSQL store's registry versions (`store/registry.rs`). Two
//! replicas writing the same version collide on its primary key: the
//! second waits for the first to commit, then finds the key taken.

use tokio_postgres::error::SqlState;

use super::{PostgresStore, commit_with_entry};
use crate::audit::chain::AuditEntry;
use crate::store::StoreError;
use crate::store::registry::{PutRegistry, RegistryVersion};

const COLUMNS: &str = "version, document, digest, changed_at_ms, changed_by, summary";

fn version_from_row(row: &tokio_postgres::Row) -> Result<RegistryVersion, StoreError> {
    Ok(RegistryVersion {
        version: row.try_get(0)?,
        document: row.try_get(1)?,
        digest: row.try_get(2)?,
        changed_at_ms: row.try_get(3)?,
        changed_by: row.try_get(4)?,
        summary: row.try_get(5)?,
    })
}

impl PostgresStore {
    pub(in crate::store) async fn registry_head(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let head = client
            .prepare_cached("SELECT COALESCE(MAX(version), 0)::BIGINT FROM registry_versions")
            .await?;
        Ok(client.query_one(&head, &[]).await?.try_get(0)?)
    }

    pub(in crate::store) async fn registry_version(
        &self,
        version: Option<i64>,
    ) -> Result<Option<RegistryVersion>, StoreError> {
        let client = self.pool.get().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM registry_versions \
                 WHERE $1::BIGINT IS NULL OR version = $1 ORDER BY version DESC LIMIT 1"
            ))
            .await?;
        client
            .query_opt(&select, &[&version])
            .await?
            .as_ref()
            .map(version_from_row)
            .transpose()
    }

    pub(in crate::store) async fn registry_history(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<RegistryVersion>, StoreError> {
        let client = self.pool.get().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM registry_versions WHERE version < $1 \
                 ORDER BY version DESC LIMIT $2"
            ))
            .await?;
        client
            .query(&select, &[&before, &limit])
            .await?
            .iter()
            .map(version_from_row)
            .collect()
    }

    pub(in crate::store) async fn put_registry(
        &self,
        v: RegistryVersion,
        entry: AuditEntry,
    ) -> Result<PutRegistry, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let latest = tx
            .prepare_cached("SELECT COALESCE(MAX(version), 0)::BIGINT FROM registry_versions")
            .await?;
        let latest: i64 = tx.query_one(&latest, &[]).await?.try_get(0)?;
        if latest != v.version - 1 {
            return Ok(PutRegistry::Conflict(latest));
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO registry_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .await?;
        let inserted = tx
            .execute(
                &insert,
                &[
                    &v.version,
                    &v.document,
                    &v.digest,
                    &v.changed_at_ms,
                    &v.changed_by,
                    &v.summary,
                ],
            )
            .await;
        if let Err(e) = inserted {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                return Ok(PutRegistry::Conflict(v.version));
            }
            return Err(e.into());
        }
        let entry = commit_with_entry(tx, entry).await?;
        Ok(PutRegistry::Written(Box::new(entry)))
    }
}
