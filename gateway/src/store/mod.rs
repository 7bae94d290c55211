//! The consent and audit store: one interface, two backends.
//!
//! - **SQLite** in a file (the embedded default: nothing to install), for a
//!   single gateway.
//! - **PostgreSQL** (tokio-postgres with a deadpool pool), for several
//!   gateway replicas behind a load balancer. Replicas share nothing but the
//!   database, and nothing is cached: a consent revoked through one replica
//!   is refused by every replica on its next read.
//!
//! The configuration's `gateway.store` picks the backend: a
//! `postgres://` or `postgresql://` URL, or else a file path.
//!
//! Both backends keep the same consent and audit tables, created and
//! upgraded by numbered migrations (table `schema_migrations`) when the
//! store is opened; on PostgreSQL an advisory lock lets replicas that start
//! together migrate once. Two things differ, for the speed of the audit
//! commit on SQLite: there the chain's head is its last entry (PostgreSQL
//! keeps a head row, whose lock lets replicas take turns), and the access
//! log's index by person is a second file filled in the background (see
//! `access_index`; PostgreSQL keeps an index on the table).
//!
//! Lists (record types, organisation numbers, source outcomes) are
//! stored as comma-separated text: none can contain a comma, as all are
//! validated (or sanitised, for what the audit keeps of bad input) before
//! they reach the store. Times are Unix milliseconds (UTC).
//!
//! Any failure is a [`StoreError`]; callers fail closed with
//! `STORE_UNAVAILABLE`.

/// Calls the same method on whichever backend this is.
macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        delegate!(crate::store::Store, $self.$method($($arg),*))
    };
    ($($backends:ident)::+, $self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            $($backends)::+::Sqlite(s) => s.$method($($arg),*).await,
            // Boxed: PostgreSQL's futures (pool, statement, round trip)
            // run to kilobytes, and inline they would make every store
            // call's future, SQLite's too, that large, copied on every
            // request. One allocation is little beside a round trip.
            $($backends)::+::Postgres(s) => Box::pin(s.$method($($arg),*)).await,
        }
    };
}

mod access_index;
pub mod keys;
pub mod lifecycle;
pub mod merits;
mod pg_tls;
mod postgres;
pub mod registry;
mod sqlite;
pub mod status;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::audit::chain::{AuditCheckpoint, AuditEntry, AuditHead};
pub use access_index::IndexProgress;
pub use lifecycle::{Approved, ConsentState, Transition, Transitioned};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, SqliteTrail};

/// The store failed (I/O, connection, corruption, a defect). The message is
/// for the log, not for callers.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where the store is.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            // The URL may carry a password.
            StoreLocation::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

impl StoreLocation {
    /// A `postgres://` / `postgresql://` URL, or a file path (relative
    /// paths are taken relative to `base_dir`).
    pub fn parse(s: &str, base_dir: &Path) -> StoreLocation {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            StoreLocation::Postgres(pg_tls::resolve_files(s, base_dir))
        } else {
            let p = PathBuf::from(s);
            StoreLocation::Sqlite(if p.is_absolute() { p } else { base_dir.join(p) })
        }
    }
}

/// A consent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredConsent {
    /// Its id (a UUID).
    pub consent_id: String,
    /// The person.
    pub subject_id: String,
    /// The agency allowed to read.
    pub grantee_agency: String,
    /// The record types it may read.
    pub record_types: Vec<String>,
    /// The purpose code.
    pub purpose: String,
    /// The only sources it may read; empty means any.
    pub source_agencies: Vec<String>,
    /// Start of validity (Unix ms).
    pub valid_from_ms: i64,
    /// End of validity, exclusive (Unix ms).
    pub valid_until_ms: i64,
    /// The registrar that recorded it.
    pub registrar_agency: String,
    /// The registrar's evidence reference.
    pub evidence_ref: String,
    /// The registrar's idempotency key.
    pub request_id: String,
    /// When it was recorded (Unix ms).
    pub granted_at_ms: i64,
    /// When it was revoked (Unix ms), if it was.
    pub revoked_at_ms: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
    /// The registrar through which it was revoked.
    pub revoked_by: Option<String>,
    /// Where it is in its life.
    pub state: ConsentState,
    /// For a requested consent: the agency that asked (also the grantee).
    pub requested_by: String,
    /// For a requested consent: why, in plain language.
    pub justification: String,
    /// Only records dated on or after this day (`YYYY-MM-DD`), if set.
    pub records_from: String,
    /// Only records dated on or before this day, if set.
    pub records_until: String,
    /// One read only.
    pub one_time: bool,
    /// At most this many reads that return records; 0: no limit (1 for a
    /// one-time consent).
    pub max_reads: u32,
    /// Reads used (reserved, and not given back).
    pub reads_used: u32,
    /// For a pending consent: when the request expires undecided (Unix ms).
    pub decide_by_ms: Option<i64>,
    /// When the person approved or rejected it (Unix ms).
    pub decided_at_ms: Option<i64>,
    /// The registrar through which they did.
    pub decided_by: Option<String>,
    /// For a requested consent: how long it lasts once approved, in days.
    pub valid_for_days: u32,
}

/// The store, on either backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

impl Store {
    /// Opens the store, creating or migrating its schema.
    pub async fn open(location: &StoreLocation) -> Result<Store, StoreError> {
        Ok(match location {
            StoreLocation::Sqlite(path) => Store::Sqlite(SqliteStore::open(path)?),
            StoreLocation::Postgres(url) => Store::Postgres(PostgresStore::open(url).await?),
        })
    }

    /// The store as the audit writer uses it: on PostgreSQL over
    /// connections of its own (see `PostgresStore::with_writer_pool`).
    pub fn for_audit_writer(&self) -> Result<Store, StoreError> {
        Ok(match self {
            Store::Sqlite(s) => Store::Sqlite(s.clone()),
            Store::Postgres(s) => Store::Postgres(s.with_writer_pool()?),
        })
    }

    /// The schema version after migrations.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        delegate!(self.schema_version())
    }

    /// Records a consent, unless its registrar already recorded one with the
    /// same request id: then that one is returned and nothing is written.
    /// Returns the stored consent and whether it was newly inserted.
    pub async fn insert_consent(
        &self,
        c: StoredConsent,
    ) -> Result<(StoredConsent, bool), StoreError> {
        delegate!(self.insert_consent(c))
    }

    /// Imports consents in one transaction, e.g. when moving an existing
    /// consent register into samverka, or to fill a store for a benchmark.
    /// All or nothing; a duplicate id or (registrar, request id) fails the
    /// whole import.
    pub async fn import_consents(&self, consents: Vec<StoredConsent>) -> Result<(), StoreError> {
        delegate!(self.import_consents(consents))
    }

    /// Marks person assertion `jti` of `registrar` used; `false` if it was
    /// used before (on any replica of this store). Rows of assertions that
    /// expired before `now_ms` are removed on the way.
    pub async fn use_assertion(
        &self,
        registrar: &str,
        jti: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        delegate!(self.use_assertion(registrar, jti, expires_at_ms, now_ms))
    }

    /// Makes `t` and commits its audit entry in the same transaction, if
    /// the consent's state allows it.
    pub async fn transition(&self, t: Transition) -> Result<Transitioned, StoreError> {
        delegate!(self.transition(t))
    }

    /// The latest registry version's number; 0 when there is none.
    pub async fn registry_head(&self) -> Result<i64, StoreError> {
        delegate!(self.registry_head())
    }

    /// A registry version, or the latest when `version` is `None`.
    pub async fn registry_version(
        &self,
        version: Option<i64>,
    ) -> Result<Option<registry::RegistryVersion>, StoreError> {
        delegate!(self.registry_version(version))
    }

    /// Up to `limit` registry versions before `before`, newest first.
    pub async fn registry_history(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<registry::RegistryVersion>, StoreError> {
        delegate!(self.registry_history(before, limit))
    }

    /// Writes `v` and commits `entry` with it, if `v.version` follows the
    /// latest version (see `store/registry.rs`).
    pub async fn put_registry(
        &self,
        v: registry::RegistryVersion,
        entry: AuditEntry,
    ) -> Result<registry::PutRegistry, StoreError> {
        delegate!(self.put_registry(v, entry))
    }

    /// Reserves one read of a counted consent (`max_reads` above 0) that is
    /// active with reads left: `reads_used` goes up by one, atomically
    /// across replicas. Returns the consent after it, or `None` when no
    /// read is left (or it is not active).
    pub async fn reserve_read(
        &self,
        consent_id: &str,
    ) -> Result<Option<StoredConsent>, StoreError> {
        delegate!(self.reserve_read(consent_id))
    }

    /// Gives back a read reserved by [`Store::reserve_read`] that returned
    /// no records, or whose caller went away.
    pub async fn release_read(&self, consent_id: &str) -> Result<(), StoreError> {
        delegate!(self.release_read(consent_id))
    }

    /// Consents whose time is up at `now_ms`: active or paused past
    /// `valid_until`, pending past `decide_by`; at most `limit`.
    pub async fn due_to_expire(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        delegate!(self.due_to_expire(now_ms, limit))
    }

    /// One consent by id.
    pub async fn consent(&self, consent_id: &str) -> Result<Option<StoredConsent>, StoreError> {
        delegate!(self.consent(consent_id))
    }

    /// A person's consents, optionally only for one grantee, newest first,
    /// ties by id in byte order (the consent check takes the first that
    /// applies).
    /// An index on (subject, grantee) keeps this independent of how many
    /// consents the store holds.
    pub async fn consents_for(
        &self,
        subject_id: &str,
        grantee: Option<&str>,
    ) -> Result<Vec<StoredConsent>, StoreError> {
        delegate!(self.consents_for(subject_id, grantee))
    }

    /// Links `entries` into the hash chain after the current head and
    /// commits them in one transaction (one sync), before returning them
    /// with `seq`, `prev_hash` and `hash` set. Replicas on one PostgreSQL
    /// database take turns through a row lock on the head, so the chain
    /// stays one line.
    pub async fn append_audit_batch(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self.append_audit_batch(entries))
    }

    /// Like [`Store::append_audit_batch`], but on SQLite the commit runs on
    /// the calling thread, which it blocks until the sync is done. For a
    /// thread that does nothing else, such as the audit writer's.
    pub async fn append_audit_batch_on_this_thread(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Store::Sqlite(s) => s.append_audit_batch_blocking(entries),
            Store::Postgres(s) => s.append_audit_batch(entries).await,
        }
    }

    /// Appends one entry; see [`Store::append_audit_batch`].
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<AuditEntry, StoreError> {
        let mut chained = self.append_audit_batch(vec![entry]).await?;
        chained
            .pop()
            .ok_or_else(|| StoreError("append returned nothing".into()))
    }

    /// The end of the chain.
    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        delegate!(self.audit_head())
    }

    /// Audit entries with `seq > after`, in order, at most `limit`.
    pub async fn audit_range(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self.audit_range(after, limit))
    }

    /// Every audit entry (or every one about one person), in order.
    pub async fn audit_entries(
        &self,
        subject_id: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self.audit_entries(subject_id))
    }

    /// One person's audit entries in `[from_ms, to_ms)` with `seq > after`,
    /// in order, at most `limit`: the access log.
    pub async fn access_events(
        &self,
        subject_id: &str,
        from_ms: i64,
        to_ms: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.access_log(LogPage {
            subject_id: subject_id.to_owned(),
            from_ms,
            to_ms,
            caller: None,
            position: after,
            newest_first: false,
            limit,
        })
        .await
    }

    /// One page of a person's access log.
    pub async fn access_log(&self, page: LogPage) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self.access_log(page))
    }

    /// Brings the access log's index up to date. On SQLite a thread does
    /// this every second, and the access log scans what it has not yet
    /// indexed, so calling this changes no answer, only how fast one comes;
    /// on PostgreSQL the index is kept in each commit, and this does nothing.
    pub async fn index_access_log(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.index_access_log().await,
            Store::Postgres(_) => Ok(()),
        }
    }

    /// How far the access log's index is behind the trail: on SQLite, where
    /// a thread fills it; none on PostgreSQL, where each commit does.
    pub fn access_index_progress(&self) -> Option<std::sync::Arc<IndexProgress>> {
        match self {
            Store::Sqlite(s) => Some(s.index_progress()),
            Store::Postgres(_) => None,
        }
    }

    /// Stores a checkpoint (a second one for the same seq is ignored).
    pub async fn add_checkpoint(&self, checkpoint: AuditCheckpoint) -> Result<(), StoreError> {
        delegate!(self.add_checkpoint(checkpoint))
    }

    /// Every checkpoint, in order.
    pub async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        delegate!(self.checkpoints())
    }

    /// Deletes the entries with `seq <= through`, after they have been
    /// exported. `through` must be a checkpoint's seq, so that the first
    /// entry left is anchored by a signature.
    pub async fn prune_audit(&self, through: i64) -> Result<u64, StoreError> {
        delegate!(self.prune_audit(through))
    }
}

/// A store's audit trail, opened only to read it: what `samverka audit
/// verify` and `export` use. Opening it changes nothing in the store: no
/// schema migration, no access-log index file, no write (a PostgreSQL
/// session is read-only, a SQLite file is opened read-only). A gateway may
/// be using the store at the same time.
#[derive(Debug, Clone)]
pub enum AuditTrail {
    /// A SQLite file.
    Sqlite(SqliteTrail),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

impl AuditTrail {
    /// Opens the trail of an existing store that this build can read.
    pub async fn open(location: &StoreLocation) -> Result<AuditTrail, StoreError> {
        Ok(match location {
            StoreLocation::Sqlite(path) => AuditTrail::Sqlite(SqliteTrail::open(path)?),
            StoreLocation::Postgres(url) => {
                AuditTrail::Postgres(PostgresStore::open_read_only(url).await?)
            }
        })
    }

    /// Audit entries with `seq > after`, in order, at most `limit`.
    pub async fn audit_range(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(AuditTrail, self.audit_range(after, limit))
    }

    /// Every checkpoint, in order.
    pub async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        delegate!(AuditTrail, self.checkpoints())
    }
}

/// Whether an existing store at schema `version` can be read by this
/// build, which knows `known` migrations.
fn readable_version(version: i64, known: usize) -> Result<(), StoreError> {
    if version == 0 {
        return Err(StoreError(
            "not a samverka store: no schema migration has been applied".into(),
        ));
    }
    not_newer(version, known)
}

/// Refuses a store whose schema is newer than the `known` migrations of
/// this build.
fn not_newer(version: i64, known: usize) -> Result<(), StoreError> {
    if version > known as i64 {
        return Err(StoreError(format!(
            "the store's schema version {version} is newer than this samverka knows ({known}); upgrade samverka"
        )));
    }
    Ok(())
}

/// Locks a store's connection (or the index's), or says that a panic
/// left it unusable.
fn lock<C>(it: &std::sync::Mutex<C>) -> Result<std::sync::MutexGuard<'_, C>, StoreError> {
    it.lock()
        .map_err(|_| StoreError("a store lock is poisoned".into()))
}

/// `path` as text, for a SQLite `ATTACH` or `file:` URI; `what` names it
/// in the error.
fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str, StoreError> {
    path.to_str()
        .ok_or_else(|| StoreError(format!("{what} {} is not UTF-8", path.display())))
}

/// The file named like `path` with `suffix` added (`-wal`, `.by-person`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A consent's list (record types, sources: validated names, never
/// holding a comma) as stored.
pub(crate) fn join(v: &[String]) -> String {
    v.join(",")
}

/// An audit entry's list (record types, sources: whatever the caller
/// sent) as its format stores it: joined by commas in format 1, a JSON
/// array from format 2 on, so that what is read back is what was hashed.
pub(crate) fn audit_list(format: u32, v: &[String]) -> String {
    if format == 1 {
        join(v)
    } else {
        serde_json::Value::from(v).to_string()
    }
}

/// Reads back what [`audit_list`] stored. Text that is no JSON array
/// (only an edit of the store makes it) is read as one item, so that the
/// entry's hash no longer matches and `audit verify` reports the edit.
pub(crate) fn audit_list_from(format: u32, s: &str) -> Vec<String> {
    if format == 1 {
        split(s)
    } else {
        serde_json::from_str(s).unwrap_or_else(|_| vec![s.to_owned()])
    }
}

/// An audit entry's details as stored: a JSON object.
pub(crate) fn audit_details(d: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(d).unwrap_or_default()
}

/// Reads back what [`audit_details`] stored; text that is no JSON object
/// of strings is kept under the name `""`, so that the edit shows as such.
pub(crate) fn audit_details_from(s: &str) -> std::collections::BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_else(|_| [(String::new(), s.to_owned())].into())
}

pub(crate) fn split(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_owned).collect()
    }
}

/// The schema, as numbered migrations (in `schema.rs`).
pub(crate) mod schema;

/// The columns of a consent, in the order both backends read them.
pub(crate) const CONSENT_COLUMNS: &str = "consent_id, subject_id, grantee_agency, record_types, purpose, \
    source_agencies, valid_from_ms, valid_until_ms, registrar_agency, evidence_ref, request_id, \
    granted_at_ms, revoked_at_ms, revocation_reason, revoked_by, state, requested_by, justification, \
    records_from, records_until, one_time, max_reads, reads_used, decide_by_ms, decided_at_ms, \
    decided_by, valid_for_days";

/// The columns of an audit entry, in the order both backends read them.
/// One page of a person's access log, as the store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// The person.
    pub subject_id: String,
    /// Entries at or after this time (Unix ms).
    pub from_ms: i64,
    /// Entries before this time.
    pub to_ms: i64,
    /// Only entries of this caller (organisation number).
    pub caller: Option<String>,
    /// Oldest first: entries after this position (`seq`); newest first:
    /// entries before it.
    pub position: i64,
    /// Newest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: i64,
}

pub(crate) const AUDIT_COLUMNS: &str = "seq, prev_hash, hash, audit_id, time_ms, caller, method, subject_id, record_types, \
    purpose, consent_id, sources, decision, reason, trace_id, format, details";
