//! The SQLite backend: one file, nothing to install (and beside it the
//! access log's index, which can be rebuilt from it: see `access_index`).
//!
//! WAL mode with `synchronous = FULL`, so a committed consent or audit entry
//! survives a crash or power loss. rusqlite is blocking, so every call runs
//! on tokio's blocking pool. Writes go through one connection; reads
//! through a few others, so that a consent check never waits behind an
//! audit commit's sync (WAL lets readers run beside the writer, and each
//! read sees every commit made before it started).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::access_index::{self, IndexProgress};
use super::{
    AUDIT_COLUMNS, AuditCheckpoint, AuditEntry, AuditHead, CONSENT_COLUMNS, StoreError,
    StoredConsent, audit_details, audit_list, schema,
};
use crate::audit::chain;

mod keys;
mod lifecycle;
mod merits;
mod registry;
mod rows;
mod status;
use rows::{
    audit_from_row, chain_head, consent_from_row, insert_consent_row, migrate, select_audit_range,
    select_checkpoints, select_consent, select_consents,
};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Read connections: enough for the blocking pool to overlap reads on two
/// cores while one commit syncs.
const READERS: usize = 4;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    // Fields are dropped in this order. The last connection to close a file
    // folds its write-ahead log into it, and only a connection that may
    // write can: so the index thread stops first, then the readers (which
    // read both files) close, then the index's writer, then the store's.
    _index_thread: Arc<access_index::Handle>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    index: Arc<Mutex<access_index::Indexer>>,
    writer: Arc<Mutex<Connection>>,
    progress: Arc<IndexProgress>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Whether a write-ahead log beside `store` may hold commits the file
/// lacks.
fn has_commits_in_wal(store: &Path) -> bool {
    std::fs::metadata(super::beside(store, "-wal")).is_ok_and(|m| m.len() > 0)
}

/// Runs `f` on tokio's blocking pool: rusqlite blocks.
async fn on_blocking_pool<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
}

/// Runs `f` on tokio's blocking pool with `it` (a connection, the
/// indexer) locked.
async fn locked<C, T, F>(it: Arc<Mutex<C>>, f: F) -> Result<T, StoreError>
where
    C: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&mut C) -> Result<T, StoreError> + Send + 'static,
{
    on_blocking_pool(move || f(&mut *super::lock(&it)?)).await
}

/// The audit trail of a SQLite store, opened read-only (see
/// [`super::AuditTrail`]).
#[derive(Clone)]
pub struct SqliteTrail {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTrail").finish_non_exhaustive()
    }
}

impl SqliteTrail {
    /// Opens the file read-only, after checking that it is a samverka
    /// store this build can read.
    ///
    /// A read-only connection to a store in WAL mode still creates the
    /// `-shm` file beside it. Where it cannot (a read-only directory, such
    /// as a mounted backup), and no write-ahead log holds commits that the
    /// file lacks, the file is read as immutable instead: nothing can be
    /// writing to it there.
    pub fn open(path: &Path) -> Result<SqliteTrail, StoreError> {
        let read_only =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |target: &Path, flags| -> rusqlite::Result<(Connection, Option<i64>)> {
            let conn = Connection::open_with_flags(target, flags)?;
            let version =
                conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                    r.get(0)
                })?;
            Ok((conn, version))
        };
        let cannot_open =
            |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen);
        let opened = match open(path, read_only) {
            Err(e) if cannot_open(&e) && !has_commits_in_wal(path) => open(
                Path::new(&format!(
                    "file:{}?immutable=1",
                    access_index::uri_escape(path)?
                )),
                read_only | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            ),
            other => other,
        };
        let (conn, version) = opened.map_err(|e| {
            if cannot_open(&e) {
                StoreError(format!("{}: {e}", path.display()))
            } else {
                StoreError(format!("{}: not a samverka store ({e})", path.display()))
            }
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        super::readable_version(version.unwrap_or(0), schema::SQLITE.len())?;
        Ok(SqliteTrail {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(super) async fn audit_range(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        locked(self.conn.clone(), move |conn| {
            select_audit_range(conn, after, limit)
        })
        .await
    }

    pub(super) async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        locked(self.conn.clone(), |conn| select_checkpoints(conn)).await
    }
}

/// Links and inserts a batch of audit entries in one transaction.
fn append_batch(
    conn: &mut Connection,
    mut entries: Vec<AuditEntry>,
    progress: &IndexProgress,
) -> Result<Vec<AuditEntry>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let head = link_and_insert(&tx, &mut entries)?;
    tx.commit()?;
    progress.committed(head.seq);
    Ok(entries)
}

/// Commits `tx` with `entry` linked into the chain (the record of the
/// change `tx` makes, in the same transaction); returns it as chained.
fn commit_with_entry(
    tx: rusqlite::Transaction<'_>,
    entry: AuditEntry,
    progress: &IndexProgress,
) -> Result<AuditEntry, StoreError> {
    let mut entries = [entry];
    let head = link_and_insert(&tx, &mut entries)?;
    tx.commit()?;
    progress.committed(head.seq);
    let [entry] = entries;
    Ok(entry)
}

/// Links `entries` after the head and inserts them, within the caller's
/// (immediate) transaction; returns the new head.
fn link_and_insert(
    tx: &rusqlite::Transaction<'_>,
    entries: &mut [AuditEntry],
) -> Result<AuditHead, StoreError> {
    let mut head = chain_head(tx)?;
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO audit_entries ({AUDIT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))?;
        for e in entries.iter_mut() {
            chain::link(&mut head, e);
            insert.execute(params![
                e.seq,
                e.prev_hash,
                e.hash,
                e.audit_id,
                e.time_ms,
                e.caller,
                e.method,
                e.subject_id,
                audit_list(e.format, &e.record_types),
                e.purpose,
                e.consent_id,
                audit_list(e.format, &e.sources),
                e.decision,
                e.reason,
                e.trace_id,
                e.format,
                audit_details(&e.details),
            ])?;
        }
    }
    Ok(head)
}

impl SqliteStore {
    /// Opens (creating if needed) the store file and migrates its schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let progress = Arc::new(IndexProgress::default());
        // The last entry held, not the chain's head: with every entry
        // pruned there is nothing to index, and nothing is pending.
        progress.committed(conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM audit_entries",
            [],
            |r| r.get(0),
        )?);
        let index = Arc::new(Mutex::new(access_index::Indexer::open(
            path,
            progress.clone(),
        )?));
        let index_path = access_index::path_for(path);
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.busy_timeout(std::time::Duration::from_secs(5))?;
                access_index::attach(&reader, &index_path)?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SqliteStore {
            _index_thread: Arc::new(access_index::spawn(index.clone())?),
            index,
            readers: Arc::new(readers),
            next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            writer: Arc::new(Mutex::new(conn)),
            progress,
        })
    }

    /// Runs `f` on the write connection.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        locked(self.writer.clone(), f).await
    }

    /// Runs a short read (an indexed lookup) right here when a read
    /// connection is free, sparing the hand-off to the blocking pool on the
    /// request path; otherwise like [`SqliteStore::read`].
    async fn read_short<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        if let Some(guard) = (0..n).find_map(|i| self.readers[(start + i) % n].try_lock().ok()) {
            return f(&guard);
        }
        self.read(f).await
    }

    /// Runs `f` on a read connection (free ones first).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        on_blocking_pool(move || {
            let n = readers.len();
            let free = (0..n).find_map(|i| readers[(start + i) % n].try_lock().ok());
            let guard = match free {
                Some(guard) => guard,
                None => super::lock(&readers[start % n])?,
            };
            f(&guard)
        })
        .await
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            Ok(
                conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    pub(super) async fn insert_consent(
        &self,
        c: StoredConsent,
    ) -> Result<(StoredConsent, bool), StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing = tx
                .query_row(
                    &format!(
                        "SELECT {CONSENT_COLUMNS} FROM consents WHERE registrar_agency = ?1 AND request_id = ?2"
                    ),
                    params![c.registrar_agency, c.request_id],
                    consent_from_row,
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok((existing, false));
            }
            insert_consent_row(&tx, &c)?;
            tx.commit()?;
            Ok((c, true))
        })
        .await
    }

    pub(super) async fn import_consents(
        &self,
        consents: Vec<StoredConsent>,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            for c in &consents {
                insert_consent_row(&tx, c)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn use_assertion(
        &self,
        registrar: &str,
        jti: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (registrar, jti) = (registrar.to_owned(), jti.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM person_assertions WHERE expires_at_ms < ?1")?
                .execute(params![now_ms])?;
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO person_assertions (registrar, jti, expires_at_ms) \
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )?
                .execute(params![registrar, jti, expires_at_ms])?;
            tx.commit()?;
            Ok(inserted == 1)
        })
        .await
    }

    pub(super) async fn consent(
        &self,
        consent_id: &str,
    ) -> Result<Option<StoredConsent>, StoreError> {
        let consent_id = consent_id.to_owned();
        self.read_short(move |conn| Ok(select_consent(conn, &consent_id)?))
            .await
    }

    pub(super) async fn consents_for(
        &self,
        subject_id: &str,
        grantee: Option<&str>,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        let (subject_id, grantee) = (subject_id.to_owned(), grantee.map(str::to_owned));
        self.read_short(move |conn| Ok(select_consents(conn, &subject_id, grantee.as_deref())?))
            .await
    }

    pub(super) async fn append_audit_batch(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let progress = self.progress.clone();
        self.with(move |conn| append_batch(conn, entries, &progress))
            .await
    }

    pub(super) fn append_audit_batch_blocking(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        append_batch(&mut *super::lock(&self.writer)?, entries, &self.progress)
    }

    /// How far the access log's index is behind the trail.
    pub(super) fn index_progress(&self) -> Arc<IndexProgress> {
        self.progress.clone()
    }

    pub(super) async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        self.read(|conn| {
            // One snapshot for both of chain_head's reads.
            let tx = conn.unchecked_transaction()?;
            Ok(chain_head(&tx)?)
        })
        .await
    }

    pub(super) async fn audit_range(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |conn| select_audit_range(conn, after, limit))
            .await
    }

    pub(super) async fn audit_entries(
        &self,
        subject_id: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let subject_id = subject_id.map(str::to_owned);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE ?1 IS NULL OR subject_id = ?1 ORDER BY seq"
            ))?;
            let rows = stmt.query_map(params![subject_id], audit_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(super) async fn access_log(
        &self,
        q: crate::store::LogPage,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |conn| {
            // The index and the entries not yet in it, as of one moment.
            let tx = conn.unchecked_transaction()?;
            let indexed: i64 = tx
                .prepare_cached("SELECT entry FROM idx.audit_indexed WHERE id = 1")?
                .query_row([], |r| r.get(0))?;
            // Everything indexed comes before everything not yet indexed.
            // (The index names the person too: a second guard.) ?2 and ?3
            // bound the positions, exclusive.
            let filter = "subject_id = ?1 AND time_ms >= ?4 AND time_ms < ?5 \
                          AND (?6 IS NULL OR caller = ?6)";
            let indexed_part = format!(
                "SELECT {AUDIT_COLUMNS} FROM idx.audit_by_person JOIN audit_entries ON seq = entry \
                 WHERE person = ?1 AND entry > ?2 AND entry < ?3 AND {filter} \
                 ORDER BY entry {order} LIMIT ?7",
                order = if q.newest_first { "DESC" } else { "ASC" }
            );
            let tail_part = format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE seq > ?2 AND seq < ?3 AND {filter} \
                 ORDER BY seq {order} LIMIT ?7",
                order = if q.newest_first { "DESC" } else { "ASC" }
            );
            let (after, before) = if q.newest_first {
                (0, q.position)
            } else {
                (q.position, i64::MAX)
            };
            let run = |sql: &str, after: i64, before: i64, limit: i64| {
                tx.prepare_cached(sql)?
                    .query_map(
                        params![q.subject_id, after, before, q.from_ms, q.to_ms, q.caller, limit],
                        audit_from_row,
                    )?
                    .collect::<Result<Vec<_>, _>>()
            };
            // Oldest first: the index, then the tail; newest first the
            // other way round.
            let (first, second) = if q.newest_first {
                (
                    run(&tail_part, after.max(indexed), before, q.limit)?,
                    (&indexed_part, after, before.min(indexed + 1)),
                )
            } else {
                (
                    run(&indexed_part, after, before.min(indexed + 1), q.limit)?,
                    (&tail_part, after.max(indexed), before),
                )
            };
            let mut events = first;
            let left = q.limit - events.len() as i64;
            if left > 0 {
                events.extend(run(second.0, second.1, second.2, left)?);
            }
            Ok(events)
        })
        .await
    }

    /// Indexes every audit entry committed so far for the access log (the
    /// index thread does this every second).
    pub(super) async fn index_access_log(&self) -> Result<(), StoreError> {
        locked(self.index.clone(), |index| index.catch_up(|| true)).await
    }

    pub(super) async fn add_checkpoint(&self, cp: AuditCheckpoint) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO audit_checkpoints (seq, hash, time_ms, jws) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (seq) DO NOTHING",
                params![cp.seq, cp.hash, cp.time_ms, cp.jws],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        self.read(select_checkpoints).await
    }

    pub(super) async fn prune_audit(&self, through: i64) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let anchored: bool = tx
                .query_row("SELECT 1 FROM audit_checkpoints WHERE seq = ?1", params![through], |_| Ok(true))
                .optional()?
                .unwrap_or(false);
            if !anchored {
                return Err(StoreError(format!("no checkpoint at entry {through}: pruning there would leave the rest unanchored")));
            }
            let n = tx.execute("DELETE FROM audit_entries WHERE seq <= ?1", params![through])?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }
}
