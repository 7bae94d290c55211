//! The SQLite store's index of the audit trail by person, which the access
//! log reads.
//!
//! An index on `audit_entries (subject_id, seq)` costs every audit commit
//! one more B-tree leaf per person in the batch: entries about many people
//! land on as many pages, and each page is one more 4 KiB frame to write
//! and sync before the answers may leave (with reads spread over 20 000
//! people, 22.7 frames per commit instead of 6.6). So this index is kept
//! off the answer's path: a thread of its own copies the new entries'
//! (person, seq) pairs into a second SQLite file beside the store, named
//! like it with `.by-person` added, a few thousand at a time and sorted by
//! person, so that many land on each page and one sync covers them all.
//! The access log reads the index and scans the entries not yet in it (at
//! most about a second's worth), in one read transaction, so it shows
//! every committed entry.
//!
//! The file holds nothing that is not in the store: delete it and it is
//! rebuilt. It records the seq and hash of the last entry it indexed; if
//! the store does not hold that entry (another store's index, a store
//! restored from a backup, or one pruned past it), the index starts over.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::StoreError;

/// How often the thread looks for new entries.
const INTERVAL: Duration = Duration::from_secs(1);

/// The most entries indexed in one transaction.
const STEP: i64 = 16_384;

/// The index file's layout, kept as its `user_version`: a file with
/// another is built again (it holds nothing the store does not).
const VERSION: i64 = 1;

/// The schema of the index file. Its column names differ from the store's
/// (`person`, `entry`), so that a join of the two needs no qualifiers.
const SCHEMA: &str = "
    DROP TABLE IF EXISTS audit_by_person;
    DROP TABLE IF EXISTS audit_indexed;
    CREATE TABLE audit_by_person (
        person TEXT NOT NULL,
        entry  INTEGER NOT NULL,
        PRIMARY KEY (person, entry)
    ) WITHOUT ROWID;
    CREATE TABLE audit_indexed (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        entry INTEGER NOT NULL,
        hash  TEXT NOT NULL
    );
    INSERT INTO audit_indexed (id, entry, hash) VALUES (1, 0, '');
";

/// How far the access log's index is behind the trail: the last entry
/// committed and the last one indexed, as the store's writer and the index
/// thread last saw them. Read by the metrics
/// (`samverka_access_index_pending_entries`) without touching either file.
#[derive(Debug, Default)]
pub struct IndexProgress {
    committed: AtomicI64,
    indexed: AtomicI64,
}

impl IndexProgress {
    /// Audit entries committed and not yet in the index. While this stays
    /// above a few seconds' worth of entries, the index thread is failing
    /// or cannot keep up, and the access log's scan of the rest grows.
    pub fn pending(&self) -> i64 {
        (self.committed.load(Ordering::Relaxed) - self.indexed.load(Ordering::Relaxed)).max(0)
    }

    pub(super) fn committed(&self, seq: i64) {
        self.committed.fetch_max(seq, Ordering::Relaxed);
    }

    fn indexed(&self, seq: i64) {
        self.indexed.store(seq, Ordering::Relaxed);
    }
}

/// The index file of the store at `store`.
pub(super) fn path_for(store: &Path) -> PathBuf {
    super::beside(store, ".by-person")
}

/// Attaches the index file to a connection of the store as `idx`, for the
/// access log's reads.
pub(super) fn attach(conn: &Connection, index: &Path) -> Result<(), StoreError> {
    let index = super::utf8(index, "the index path")?;
    conn.execute("ATTACH DATABASE ?1 AS idx", params![index])?;
    Ok(())
}

/// The connection that writes the index: the index file, with the store
/// attached read-only as `store`.
pub(super) struct Indexer {
    conn: Connection,
    /// The lowest seq in the store when the index was last cleared of
    /// pruned entries.
    floor: i64,
    progress: Arc<IndexProgress>,
}

impl Indexer {
    /// Opens (creating if needed) the index of the store at `store`, and
    /// starts it over if it does not match the store.
    pub(super) fn open(store: &Path, progress: Arc<IndexProgress>) -> Result<Indexer, StoreError> {
        let path = path_for(store);
        let conn = Connection::open(&path).map_err(|e| {
            StoreError(format!(
                "cannot open the access log's index {}: {e}",
                path.display()
            ))
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // The index can be rebuilt from the store, so a power loss may cost
        // its last steps (which are then done again), never its consistency.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != VERSION {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;"
            ))?;
        }
        conn.execute(
            "ATTACH DATABASE ?1 AS store",
            params![format!("file:{}?mode=ro", uri_escape(store)?)],
        )?;
        // Entries start at 1: below that nothing was ever pruned.
        let mut indexer = Indexer {
            conn,
            floor: 1,
            progress,
        };
        indexer.check()?;
        Ok(indexer)
    }

    /// Starts the index over unless the store holds the last entry it
    /// indexed, and clears it of entries pruned from the store.
    fn check(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (seq, hash): (i64, String) = tx.query_row(
            "SELECT entry, hash FROM audit_indexed WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let held: Option<String> = tx
            .query_row(
                "SELECT hash FROM store.audit_entries WHERE seq = ?1",
                params![seq],
                |r| r.get(0),
            )
            .optional()?;
        let mut indexed = seq;
        if seq != 0 && held.as_deref() != Some(hash.as_str()) {
            tracing::info!(
                indexed_through = seq,
                "the access log's index does not match the store; rebuilding it"
            );
            tx.execute("DELETE FROM audit_by_person", [])?;
            tx.execute(
                "UPDATE audit_indexed SET entry = 0, hash = '' WHERE id = 1",
                [],
            )?;
            indexed = 0;
        }
        tx.commit()?;
        self.progress.indexed(indexed);
        self.clear_pruned()
    }

    /// Deletes the index's entries below the store's first, if the store
    /// was pruned since the last look.
    fn clear_pruned(&mut self) -> Result<(), StoreError> {
        let first: Option<i64> =
            self.conn
                .query_row("SELECT MIN(seq) FROM store.audit_entries", [], |r| r.get(0))?;
        let Some(first) = first else { return Ok(()) };
        if first > self.floor {
            self.conn.execute(
                "DELETE FROM audit_by_person WHERE entry < ?1",
                params![first],
            )?;
            self.floor = first;
        }
        Ok(())
    }

    /// Indexes the next entries, at most `STEP`, in one transaction.
    /// Returns whether there were any.
    fn step(&mut self) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        // The last of the next STEP entries (seqs have gaps where pruned).
        let last: Option<(i64, i64, String)> = tx
            .query_row(
                "SELECT i.entry, e.seq, e.hash FROM audit_indexed i, \
                 (SELECT seq, hash FROM store.audit_entries \
                  WHERE seq > (SELECT entry FROM audit_indexed) ORDER BY seq LIMIT ?1) e \
                 ORDER BY e.seq DESC LIMIT 1",
                params![STEP],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((through, last, hash)) = last else {
            return Ok(false);
        };
        tx.execute(
            "INSERT INTO audit_by_person (person, entry) \
             SELECT subject_id, seq FROM store.audit_entries WHERE seq > ?1 AND seq <= ?2 \
             ORDER BY subject_id, seq",
            params![through, last],
        )?;
        tx.execute(
            "UPDATE audit_indexed SET entry = ?1, hash = ?2 WHERE id = 1",
            params![last, hash],
        )?;
        tx.commit()?;
        self.progress.indexed(last);
        Ok(true)
    }

    /// Indexes every entry committed so far, step by step while
    /// `go_on()` says so.
    pub(super) fn catch_up(&mut self, go_on: impl Fn() -> bool) -> Result<(), StoreError> {
        self.clear_pruned()?;
        while self.step()? && go_on() {}
        Ok(())
    }
}

/// Runs `indexer` on a thread of its own until the returned handle is
/// dropped.
pub(super) fn spawn(indexer: Arc<Mutex<Indexer>>) -> Result<Handle, StoreError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("samverka-index".into())
        .spawn(move || {
            // A failure is logged when it starts and when it ends, not
            // every second in between.
            let mut failing = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                // Between steps, give way to a store being closed.
                let caught_up = super::lock(&indexer).and_then(|mut indexer| {
                    indexer.catch_up(|| matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty)))
                });
                match caught_up {
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(
                            error = %e,
                            "could not index the audit trail by person; the access log scans the rest"
                        );
                    }
                    Err(e) => tracing::debug!(error = %e, "indexing by person still fails"),
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("indexing the audit trail by person again");
                    }
                    Ok(()) => {}
                }
            }
        })
        .map_err(|e| StoreError(format!("cannot start the index thread: {e}")))?;
    Ok(Handle {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Stops the index thread when dropped, and waits for it.
pub(super) struct Handle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The store file `path` as a `file:` URI's path: `%`, `?` and `#` (which
/// would quote it or end it) and control characters escaped.
pub(super) fn uri_escape(path: &Path) -> Result<String, StoreError> {
    const IN_FILE_URI: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#');
    let path = super::utf8(path, "the store path")?;
    Ok(utf8_percent_encode(path, IN_FILE_URI).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_sits_beside_the_store() {
        assert_eq!(
            path_for(Path::new("/var/lib/samverka/store.db")),
            Path::new("/var/lib/samverka/store.db.by-person")
        );
        assert_eq!(
            uri_escape(Path::new("/a%b?c#d é")).unwrap(),
            "/a%25b%3Fc%23d %C3%A9"
        );
    }
}
