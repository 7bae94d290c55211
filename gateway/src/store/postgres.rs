//! The PostgreSQL backend, for several gateway replicas on one database.
//!
//! A small pool of connections (deadpool) with bounded waits: when the
//! database is unreachable, a call fails within seconds with a
//! [`StoreError`] and the gateway denies the request (fail closed) instead
//! of hanging. Every statement is prepared once per connection and cached.

use std::time::Duration;

use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;
use tokio_postgres::Row;

use super::pg_tls::{self, PgTarget};
use super::{
    AUDIT_COLUMNS, AuditCheckpoint, AuditEntry, AuditHead, StoreError, audit_details,
    audit_details_from, audit_list, audit_list_from, schema,
};
use crate::audit::chain;

/// Serialises migrations of replicas that start at the same time.
const MIGRATION_LOCK: i64 = 7_342_001;

/// Consents and person assertions.
mod consents;
/// The gateway's signing keys.
mod keys;
/// A consent's life: each change with its audit entry.
mod lifecycle;
mod merits;
mod registry;
/// Revoked credentials.
mod status;

/// `e` and what caused it: tokio-postgres says only "db error" and keeps
/// the server's message (and a TLS failure) in its source.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError(format!("postgresql: {}", with_causes(&e)))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError(format!("postgresql pool: {}", with_causes(&e)))
    }
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// What the pool connects to, for a pool of the audit writer's own.
    target: PgTarget,
    options: Option<String>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

fn audit_from_row(row: &Row) -> Result<AuditEntry, StoreError> {
    let format = u32::try_from(row.try_get::<_, i32>(15)?)
        .map_err(|_| StoreError("an audit entry's format is negative".into()))?;
    Ok(AuditEntry {
        seq: row.try_get(0)?,
        prev_hash: row.try_get(1)?,
        hash: row.try_get(2)?,
        audit_id: row.try_get(3)?,
        time_ms: row.try_get(4)?,
        caller: row.try_get(5)?,
        method: row.try_get(6)?,
        subject_id: row.try_get(7)?,
        record_types: audit_list_from(format, row.try_get(8)?),
        purpose: row.try_get(9)?,
        consent_id: row.try_get(10)?,
        sources: audit_list_from(format, row.try_get(11)?),
        decision: row.try_get(12)?,
        reason: row.try_get(13)?,
        trace_id: row.try_get(14)?,
        details: audit_details_from(row.try_get(16)?),
        format,
    })
}

fn checkpoint_from_row(row: &Row) -> Result<AuditCheckpoint, StoreError> {
    Ok(AuditCheckpoint {
        seq: row.try_get(0)?,
        hash: row.try_get(1)?,
        time_ms: row.try_get(2)?,
        jws: row.try_get(3)?,
    })
}

/// A pool of up to `size` connections to `target`, with `options` for each
/// session if given. Waits are bounded: an unreachable database fails a
/// call within seconds.
fn pool(target: PgTarget, options: Option<String>, size: usize) -> Result<Pool, StoreError> {
    let mut config = deadpool_postgres::Config::new();
    config.url = Some(target.url);
    config.manager = Some(ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    });
    let mut pool = PoolConfig::new(size);
    let limit = Some(Duration::from_secs(2));
    pool.timeouts = Timeouts {
        wait: limit,
        create: limit,
        recycle: limit,
    };
    config.pool = Some(pool);
    config.options = options;
    match target.tls {
        Some(tls) => config.create_pool(Some(Runtime::Tokio1), tls),
        None => config.create_pool(Some(Runtime::Tokio1), NoTls),
    }
    .map_err(|e| StoreError(format!("postgresql pool: {}", with_causes(&e))))
}

/// Connections for requests.
const POOL_SIZE: usize = 16;

/// Connections for the audit writer, which uses one at a time.
const WRITER_POOL_SIZE: usize = 1;

impl PostgresStore {
    /// The same store over a pool of its own, for the audit writer. A
    /// connection's I/O is driven by a task on the runtime that opened it;
    /// the writer has a runtime on a thread of its own, so sharing the
    /// requests' pool would have requests wait for the writer's thread to
    /// drive their connections, and the writer for the requests' threads.
    pub(super) fn with_writer_pool(&self) -> Result<PostgresStore, StoreError> {
        Ok(PostgresStore {
            pool: pool(self.target.clone(), self.options.clone(), WRITER_POOL_SIZE)?,
            ..self.clone()
        })
    }

    /// Connects to `url` and migrates the schema.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let target = pg_tls::target(url)?;
        let store = PostgresStore {
            pool: pool(target.clone(), None, POOL_SIZE)?,
            target,
            options: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to `url` in read-only sessions, after checking that the
    /// database holds a samverka store this build can read. Migrates
    /// nothing; any write is refused by the server.
    pub async fn open_read_only(url: &str) -> Result<PostgresStore, StoreError> {
        let target = pg_tls::target(url)?;
        let parsed: tokio_postgres::Config = target
            .url
            .parse()
            .map_err(|e| StoreError(format!("postgresql url: {e}")))?;
        let options = format!(
            "{} -c default_transaction_read_only=on",
            parsed.get_options().unwrap_or_default()
        );
        let store = PostgresStore {
            pool: pool(target.clone(), Some(options.clone()), POOL_SIZE)?,
            target,
            options: Some(options),
        };
        let row = store
            .pool
            .get()
            .await?
            .query_one(
                "SELECT current_setting('default_transaction_read_only'), \
                 COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(|e| StoreError(format!("not a samverka store ({})", with_causes(&e))))?;
        let (read_only, version): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        if read_only != "on" {
            return Err(StoreError("the session could not be made read-only".into()));
        }
        super::readable_version(version, schema::POSTGRES.len())?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
        )
        .await?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .try_get(0)?;
        super::not_newer(current, schema::POSTGRES.len())?;
        for (i, sql) in schema::POSTGRES.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)",
                &[&(i as i64 + 1), &crate::time::system_now_ms()],
            )
            .await?;
        }
        tx.commit().await?;
        // Fresh statistics, so that plans fit the imported volume.
        client.batch_execute("ANALYZE consents").await?;
        Ok(())
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("SELECT MAX(version) FROM schema_migrations", &[])
            .await?
            .try_get(0)?)
    }

    /// Appends a batch in two round trips: `BEGIN` and the head's lock
    /// sent together, then the insert, the head's update and `COMMIT`
    /// sent together. A statement that fails aborts the transaction, and
    /// the `COMMIT` behind it then rolls it back, so nothing is half
    /// written. The connection goes back to the pool only once the whole
    /// transaction has answered: after an error, or if the caller stops
    /// waiting between the two round trips (a transaction left open would
    /// hold the head's lock), it is closed instead.
    pub(super) async fn append_audit_batch(
        &self,
        mut entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let connection = ClosedUnlessKept(Some(self.pool.get().await?));
        if let Some(client) = &connection.0 {
            append_pipelined(client, &mut entries).await?;
        }
        connection.keep();
        Ok(entries)
    }

    pub(super) async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
            .await?;
        Ok(AuditHead {
            seq: row.try_get(0)?,
            hash: row.try_get(1)?,
        })
    }

    pub(super) async fn audit_range(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.pool.get().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .await?;
        client
            .query(&select, &[&after, &limit])
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    pub(super) async fn audit_entries(
        &self,
        subject_id: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.pool.get().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE $1::TEXT IS NULL OR subject_id = $1 ORDER BY seq"
            ))
            .await?;
        client
            .query(&select, &[&subject_id])
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    pub(super) async fn access_log(
        &self,
        q: super::LogPage,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.pool.get().await?;
        let (after, before) = if q.newest_first {
            (0, q.position)
        } else {
            (q.position, i64::MAX)
        };
        let select = client
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE subject_id = $1 AND seq > $2 \
                 AND seq < $3 AND time_ms >= $4 AND time_ms < $5 \
                 AND ($6::TEXT IS NULL OR caller = $6) ORDER BY seq {} LIMIT $7",
                if q.newest_first { "DESC" } else { "ASC" }
            ))
            .await?;
        client
            .query(
                &select,
                &[
                    &q.subject_id,
                    &after,
                    &before,
                    &q.from_ms,
                    &q.to_ms,
                    &q.caller,
                    &q.limit,
                ],
            )
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    pub(super) async fn add_checkpoint(&self, cp: AuditCheckpoint) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO audit_checkpoints (seq, hash, time_ms, jws) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (seq) DO NOTHING",
                &[&cp.seq, &cp.hash, &cp.time_ms, &cp.jws],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(
                "SELECT seq, hash, time_ms, jws FROM audit_checkpoints ORDER BY seq",
                &[],
            )
            .await?
            .iter()
            .map(checkpoint_from_row)
            .collect()
    }

    pub(super) async fn prune_audit(&self, through: i64) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if tx
            .query_opt(
                "SELECT 1 FROM audit_checkpoints WHERE seq = $1",
                &[&through],
            )
            .await?
            .is_none()
        {
            return Err(StoreError(format!(
                "no checkpoint at entry {through}: pruning there would leave the rest unanchored"
            )));
        }
        let n = tx
            .execute("DELETE FROM audit_entries WHERE seq <= $1", &[&through])
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Commits `tx` with `entry` linked into the chain (the record of the
/// change `tx` makes, in the same transaction); returns it as chained.
pub(super) async fn commit_with_entry(
    tx: deadpool_postgres::Transaction<'_>,
    entry: AuditEntry,
) -> Result<AuditEntry, StoreError> {
    let mut entries = [entry];
    append_in(&tx, &mut entries).await?;
    tx.commit().await?;
    let [entry] = entries;
    Ok(entry)
}

/// Links `entries` after the head and inserts them, within the caller's
/// transaction.
pub(super) async fn append_in(
    tx: &deadpool_postgres::Transaction<'_>,
    entries: &mut [AuditEntry],
) -> Result<(), StoreError> {
    let [lock, insert, update] = audit_statements(tx).await?;
    let head = linked(&tx.query_one(&lock, &[]).await?, entries)?;
    write_linked(tx, [&insert, &update], entries, &head).await
}

/// A pooled connection that is closed, not put back, when this is dropped
/// still holding it.
struct ClosedUnlessKept(Option<deadpool_postgres::Client>);

impl ClosedUnlessKept {
    /// Puts the connection back in the pool.
    fn keep(mut self) {
        drop(self.0.take());
    }
}

impl Drop for ClosedUnlessKept {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// [`append_in`] in a transaction of its own, pipelined: see
/// [`PostgresStore::append_audit_batch`].
async fn append_pipelined(
    client: &deadpool_postgres::Client,
    entries: &mut [AuditEntry],
) -> Result<(), StoreError> {
    use futures_util::TryFutureExt;
    use futures_util::future::try_join;
    let [lock, insert, update] = audit_statements(client).await?;
    let (_, row) = try_join(client.batch_execute("BEGIN"), client.query_one(&lock, &[])).await?;
    let head = linked(&row, entries)?;
    // `try_join` polls in order, and each statement is sent when first
    // polled: `COMMIT` goes last.
    try_join(
        write_linked(client, [&insert, &update], entries, &head),
        client.batch_execute("COMMIT").err_into(),
    )
    .await?;
    Ok(())
}

/// The statements of an append: the head's row lock (replicas take turns,
/// so the chain stays one line), the insert, the head's update.
async fn audit_statements(
    c: &impl deadpool_postgres::GenericClient,
) -> Result<[tokio_postgres::Statement; 3], StoreError> {
    Ok([
        c.prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .await?,
        c.prepare_cached(&format!(
            "INSERT INTO audit_entries ({AUDIT_COLUMNS}) SELECT * FROM UNNEST(\
             $1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], $7::TEXT[], \
             $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], $14::TEXT[], $15::TEXT[], \
             $16::INTEGER[], $17::TEXT[])"
        ))
        .await?,
        c.prepare_cached("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .await?,
    ])
}

/// Links `entries` after the head read from `row`; returns the new head.
fn linked(row: &Row, entries: &mut [AuditEntry]) -> Result<AuditHead, StoreError> {
    let mut head = AuditHead {
        seq: row.try_get(0)?,
        hash: row.try_get(1)?,
    };
    for e in entries.iter_mut() {
        chain::link(&mut head, e);
    }
    Ok(head)
}

/// Inserts linked `entries` and moves the head to `head`, the two sent
/// together: one round trip instead of two.
async fn write_linked(
    c: &impl deadpool_postgres::GenericClient,
    [insert, update]: [&tokio_postgres::Statement; 2],
    entries: &[AuditEntry],
    head: &AuditHead,
) -> Result<(), StoreError> {
    type Column = Box<dyn tokio_postgres::types::ToSql + Send + Sync>;
    let text = |f: fn(&AuditEntry) -> String| -> Column {
        Box::new(entries.iter().map(f).collect::<Vec<String>>())
    };
    let num = |f: fn(&AuditEntry) -> i64| -> Column {
        Box::new(entries.iter().map(f).collect::<Vec<i64>>())
    };
    let formats: Column = Box::new(
        entries
            .iter()
            .map(|e| i32::try_from(e.format).unwrap_or(i32::MAX))
            .collect::<Vec<i32>>(),
    );
    // In the order of `AUDIT_COLUMNS`.
    let columns = [
        num(|e| e.seq),
        text(|e| e.prev_hash.clone()),
        text(|e| e.hash.clone()),
        text(|e| e.audit_id.clone()),
        num(|e| e.time_ms),
        text(|e| e.caller.clone()),
        text(|e| e.method.clone()),
        text(|e| e.subject_id.clone()),
        text(|e| audit_list(e.format, &e.record_types)),
        text(|e| e.purpose.clone()),
        text(|e| e.consent_id.clone()),
        text(|e| audit_list(e.format, &e.sources)),
        text(|e| e.decision.clone()),
        text(|e| e.reason.clone()),
        text(|e| e.trace_id.clone()),
        formats,
        text(|e| audit_details(&e.details)),
    ];
    let params = columns
        .each_ref()
        .map(|c| &**c as &(dyn tokio_postgres::types::ToSql + Sync));
    futures_util::future::try_join(
        c.execute(insert, &params),
        c.execute(update, &[&head.seq, &head.hash]),
    )
    .await?;
    Ok(())
}
