//! The registry in force: agencies, purposes, access rules, adapter routes
//! and identity providers (`config/document.rs`), with what is built from
//! them (channels to the adapters, the person-assertion keys, the agencies'
//! rates).
//!
//! Every request takes one snapshot ([`RegistrySlot::current`]) when it
//! starts and decides with it to the end: a change made meanwhile applies
//! from the next request on. A replica follows the store's versions
//! ([`FOLLOW_EVERY`]): a version written through any replica is in force
//! on every replica within about a second. Under `[registry] source =
//! "file"` the configuration file is the registry, read again on SIGHUP.
//!
//! Every version in force is on the record: a version written to the store
//! (seeded from the file, or changed through the management API) is
//! committed with its audit entry in one transaction; the file's registry
//! is audited when a gateway starts with it and when SIGHUP changes it.

pub mod change;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::audit::AuditEntry;
use crate::config::{Config, PersonAssertionSettings, RegistrySource, RegistryTables};
use crate::metrics::Metrics;
use crate::net::tls::ServerTls;
use crate::person::PersonVerifier;
use crate::pipeline::rate::RateLimiter;
use crate::pipeline::routing::{REFRESH_EVERY, Router, SourceDirectory};
use crate::store::Store;
use crate::store::registry::{PutRegistry, RegistryVersion};
use crate::time::Clock;

/// How often a replica asks the store for a newer version.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// How long a replica may fail to follow the store's versions before it
/// says it is not ready: it would decide with a registry others have left.
pub const FOLLOW_GRACE: Duration = Duration::from_secs(10);

/// `changed_by` of the version seeded from a configuration file.
pub const SEEDED_BY: &str = "seed";

/// What `changed_by` of a version a configuration file applied
/// (`apply_file`) starts with; the file's path follows.
pub const FROM_FILE: &str = "file:";

/// Whether a configuration file wrote a version with this digest (its
/// seed, or an applied file), at or before `latest`: a file that says what
/// some file once said is not an edit, even if the store has moved on, and
/// whichever replica's file it was.
async fn file_wrote(store: &Store, latest: i64, digest: &str) -> Result<bool, OpenError> {
    let mut before = latest + 1;
    loop {
        let page = store
            .registry_history(before, 100)
            .await
            .map_err(OpenError::Failed)?;
        let Some(last) = page.last() else {
            return Ok(false);
        };
        before = last.version;
        if page.iter().any(|v| {
            v.digest == digest && (v.changed_by == SEEDED_BY || v.changed_by.starts_with(FROM_FILE))
        }) {
            return Ok(true);
        }
    }
}

/// One version of the registry, ready to decide with.
#[derive(Debug)]
pub struct Registry {
    /// Its number: the store's version, or, from a file, 1 at start and one
    /// more at each SIGHUP that changes it.
    pub version: i64,
    /// Hex SHA-256 of its canonical document.
    pub digest: String,
    /// The tables.
    pub tables: RegistryTables,
    /// Channels to its adapters.
    pub router: Router,
    /// What `ListSources` answers about its adapters.
    pub sources: Arc<SourceDirectory>,
    /// Checks person assertions with its registrars' and providers' keys.
    pub person: PersonVerifier,
}

impl std::ops::Deref for Registry {
    type Target = RegistryTables;

    fn deref(&self) -> &RegistryTables {
        &self.tables
    }
}

/// The registry in force, replaced whole when a new version arrives.
#[derive(Debug)]
pub struct RegistrySlot {
    current: RwLock<Arc<Registry>>,
    tls: Arc<ServerTls>,
    metrics: Metrics,
    breaker_failures: u32,
    breaker_pause: Duration,
    person: PersonAssertionSettings,
    limits: crate::config::Limits,
    rate: Arc<RateLimiter>,
    /// Whether it follows the store's versions (`source = "store"`).
    follows_store: bool,
    /// When following last succeeded, and the last failure since.
    followed: std::sync::Mutex<(std::time::Instant, Option<String>)>,
}

impl RegistrySlot {
    /// The slot, holding version `version` of `tables`.
    pub fn new(
        config: &Config,
        tls: Arc<ServerTls>,
        metrics: Metrics,
        rate: Arc<RateLimiter>,
        version: RegistryVersion,
        tables: RegistryTables,
    ) -> Result<RegistrySlot, String> {
        let person = config.person_assertion.clone();
        let verifier = PersonVerifier::for_registry(&person, &tables)?;
        let router = Router::new(
            &tables.adapters,
            tls.clone(),
            metrics.clone(),
            config.limits.breaker_failures,
            config.limits.breaker_pause,
        )?;
        let sources = Arc::new(SourceDirectory::spawn(router.clone(), REFRESH_EVERY));
        rate.set_listed(crate::pipeline::rate::listed(
            &config.limits,
            &tables.agencies,
        ));
        metrics.registry_version(version.version, &version.digest);
        Ok(RegistrySlot {
            current: RwLock::new(Arc::new(Registry {
                version: version.version,
                digest: version.digest,
                tables,
                router,
                sources,
                person: verifier,
            })),
            tls,
            metrics,
            breaker_failures: config.limits.breaker_failures,
            breaker_pause: config.limits.breaker_pause,
            person,
            limits: config.limits.clone(),
            rate,
            follows_store: config.registry_source == RegistrySource::Store,
            followed: std::sync::Mutex::new((std::time::Instant::now(), None)),
        })
    }

    /// Whether this replica follows the store's versions: an error once
    /// it has not succeeded for [`FOLLOW_GRACE`], whether it failed or its
    /// follower stalled ([`crate::Gateway::ready`]).
    pub fn following(&self) -> Result<(), String> {
        if !self.follows_store {
            return Ok(());
        }
        let followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        let (ok_at, why) = &*followed;
        if ok_at.elapsed() < FOLLOW_GRACE {
            return Ok(());
        }
        Err(format!(
            "registry: the store's latest version has not been checked for {} s: {}",
            ok_at.elapsed().as_secs(),
            why.as_deref().unwrap_or("the follower does not answer")
        ))
    }

    /// Notes how following the store went; says so in the log when that
    /// changes, not twice a second.
    fn followed(&self, result: Result<(), String>) {
        let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                if followed.1.take().is_some() {
                    tracing::info!("registry: following the store's versions again");
                }
                followed.0 = std::time::Instant::now();
            }
            Err(e) => {
                if followed.1.is_none() {
                    tracing::warn!(error = %e, "registry: cannot follow the store's versions; the version in force stays");
                }
                followed.1 = Some(e);
            }
        }
    }

    /// The registry in force now.
    pub fn current(&self) -> Arc<Registry> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks that `tables` can be put in force: every key set reads and
    /// every adapter route makes a channel. The tables themselves are
    /// checked by [`RegistryTables::from_document`].
    pub fn check(&self, tables: &RegistryTables) -> Result<(), String> {
        PersonVerifier::for_registry(&self.person, tables)?;
        Router::new(
            &tables.adapters,
            self.tls.clone(),
            self.metrics.clone(),
            self.breaker_failures,
            self.breaker_pause,
        )
        .map(drop)
    }

    /// Puts version `version` of `tables` in force, unless a version as
    /// new is in force already. The channels to the adapters (and their
    /// circuit breakers) are kept when the routes did not change.
    pub fn install(
        &self,
        version: i64,
        digest: String,
        tables: RegistryTables,
    ) -> Result<(), String> {
        let before = self.current();
        if before.version >= version {
            return Ok(());
        }
        let person = PersonVerifier::for_registry(&self.person, &tables)?;
        let (router, sources) = if before.tables.adapters == tables.adapters {
            (before.router.clone(), before.sources.clone())
        } else {
            let router = Router::new(
                &tables.adapters,
                self.tls.clone(),
                self.metrics.clone(),
                self.breaker_failures,
                self.breaker_pause,
            )?;
            let sources = Arc::new(SourceDirectory::spawn(router.clone(), REFRESH_EVERY));
            (router, sources)
        };
        let listed = crate::pipeline::rate::listed(&self.limits, &tables.agencies);
        let next = Arc::new(Registry {
            version,
            digest,
            tables,
            router,
            sources,
            person,
        });
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.version >= version {
            return Ok(());
        }
        *current = next;
        // Under the lock: the rates and the metric are always this
        // version's.
        self.rate.set_listed(listed);
        self.metrics.registry_version(version, &current.digest);
        drop(current);
        tracing::info!(version, "registry version in force");
        Ok(())
    }
}

/// A version's audit entry: `method` (`registry/seed`, `registry/load`,
/// `registry/reload`), with [`describe`]'s details.
fn entry(
    method: &str,
    now_ms: i64,
    before: Option<(i64, &str)>,
    after: &RegistryVersion,
) -> AuditEntry {
    // No caller: the gateway itself, at start or on SIGHUP; who made the
    // version is its `changed_by`.
    let mut e = crate::audit::entry(method, now_ms);
    e.decision = crate::audit::Decision::Allowed.as_str().to_owned();
    describe(&mut e, before, after);
    e
}

/// Names a version in its audit entry: who made it, what changed, and the
/// versions and digests before and after.
pub fn describe(e: &mut AuditEntry, before: Option<(i64, &str)>, after: &RegistryVersion) {
    let d = &mut e.details;
    if let Some((version, digest)) = before {
        d.insert("version_before".into(), version.to_string());
        d.insert("digest_before".into(), digest.to_owned());
    }
    d.insert("version".into(), after.version.to_string());
    d.insert("digest".into(), after.digest.clone());
    d.insert("changed_by".into(), after.changed_by.clone());
    d.insert("changes".into(), after.summary.clone());
}

/// A version of `tables` made now by `by`.
fn version_of(
    tables: &RegistryTables,
    version: i64,
    by: &str,
    summary: String,
    now_ms: i64,
) -> Result<RegistryVersion, String> {
    let document = tables.to_document()?;
    Ok(RegistryVersion {
        version,
        digest: crate::config::document_digest(&document),
        document,
        changed_at_ms: now_ms,
        changed_by: by.to_owned(),
        summary,
    })
}

/// Why [`open`] could not give a registry to start with.
#[derive(Debug)]
pub enum OpenError {
    /// The configuration must change: its tables differ from the store's
    /// registry, or they cannot be used.
    Refused(String),
    /// The store failed.
    Failed(crate::store::StoreError),
}

/// The registry to start with, and its tables: the file's (`source =
/// "file"`, audited as loaded), or the store's latest version, seeded from
/// the file when the store has none. A file whose tables differ from the
/// store's registry is refused: see `config/document.rs`.
pub async fn open(
    config: &Config,
    store: &Store,
    clock: &Clock,
) -> Result<(RegistryVersion, RegistryTables), OpenError> {
    use OpenError::{Failed, Refused};
    let file = config
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the configuration".into());
    let mine = config.tables();
    if config.registry_source == RegistrySource::File {
        let v = version_of(&mine, 1, &file, format!("read from {file}"), clock.now_ms())
            .map_err(Refused)?;
        let e = entry("registry/load", clock.now_ms(), None, &v);
        store.append_audit(e).await.map_err(Failed)?;
        return Ok((v, mine));
    }
    // A few times: replicas starting together both try to seed (or apply
    // their file); one wins and the other reads what it wrote.
    for _ in 0..3 {
        if let Some(v) = store.registry_version(None).await.map_err(Failed)? {
            let tables = RegistryTables::from_document(&v.document)
                .map_err(|e| Refused(format!("the store's registry version {}: {e}", v.version)))?;
            let mine_doc = mine.to_document().map_err(Refused)?;
            // The file's tables count when no file ever wrote them into the
            // store: otherwise the store has moved on through the API, which
            // is its purpose.
            let edited = config.writes_registry
                && mine_doc != v.document
                && !file_wrote(store, v.version, &crate::config::document_digest(&mine_doc))
                    .await?;
            if edited && config.apply_file {
                let summary = change::summary(&change::diff(&tables, &mine));
                let by = format!("{FROM_FILE}{file}");
                let next = version_of(&mine, v.version + 1, &by, summary, clock.now_ms())
                    .map_err(Refused)?;
                let e = entry(
                    "registry/apply-file",
                    clock.now_ms(),
                    Some((v.version, &v.digest)),
                    &next,
                );
                match store.put_registry(next.clone(), e).await.map_err(Failed)? {
                    PutRegistry::Written(_) => return Ok((next, mine)),
                    PutRegistry::Conflict(_) => continue,
                }
            }
            if edited {
                return Err(Refused(format!(
                    "the registry tables in {file} (or key files they name) changed since they were written into the \
                     store, whose registry (version {}, digest {}) is in force: remove the \
                     tables from the file and change the registry with `samverka admin`, \
                     set [registry] apply_file = true (the file, when changed, wins at \
                     start) or source = \"file\"",
                    v.version, v.digest
                )));
            }
            return Ok((v, tables));
        }
        let summary = change::summary(&change::diff(&RegistryTables::default(), &mine));
        let v = version_of(&mine, 1, SEEDED_BY, summary, clock.now_ms()).map_err(Refused)?;
        let e = entry("registry/seed", clock.now_ms(), None, &v);
        match store.put_registry(v.clone(), e).await.map_err(Failed)? {
            PutRegistry::Written(_) => {
                tracing::info!(
                    file,
                    "registry seeded in the store from the configuration file"
                );
                return Ok((v, mine));
            }
            PutRegistry::Conflict(_) => continue,
        }
    }
    Err(Refused(
        "the store's registry changed under this start three times: start again".into(),
    ))
}

/// Follows the registry until `stopping` is set or dropped: the store's
/// new versions, or, from a file, SIGHUP.
pub fn follow(
    slot: Arc<RegistrySlot>,
    store: Store,
    config: Config,
    clock: Clock,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup = match config.registry_source {
            RegistrySource::File => {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
            }
            RegistrySource::Store => None,
        };
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<Option<()>>();
            tokio::select! {
                changed = stopping.changed() => {
                    if changed.is_err() || *stopping.borrow() {
                        return;
                    }
                }
                _ = tokio::time::sleep(FOLLOW_EVERY), if config.registry_source == RegistrySource::Store => {
                    slot.followed(follow_store(&slot, &store).await);
                }
                _ = hup => {
                    if let Err(e) = reload_file(&slot, &store, &config, &clock).await {
                        tracing::error!(error = %e, "registry: the configuration file was not read again; the registry in force stays");
                    }
                }
            }
        }
    });
}

/// Puts the store's latest version in force, if it is newer.
async fn follow_store(slot: &RegistrySlot, store: &Store) -> Result<(), String> {
    let head = store.registry_head().await.map_err(|e| e.to_string())?;
    if head <= slot.current().version {
        return Ok(());
    }
    let Some(v) = store
        .registry_version(Some(head))
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let tables = RegistryTables::from_document(&v.document)
        .map_err(|e| format!("version {}: {e}", v.version))?;
    slot.install(v.version, v.digest, tables)
}

/// Reads the configuration file again (SIGHUP, `source = "file"`): if its
/// tables changed, audits the change and puts them in force.
async fn reload_file(
    slot: &RegistrySlot,
    store: &Store,
    config: &Config,
    clock: &Clock,
) -> Result<(), String> {
    let Some(path) = &config.file else {
        return Ok(());
    };
    let tables = Config::load(path).map_err(|e| e.to_string())?.tables();
    slot.check(&tables)?;
    let before = slot.current();
    let changes = change::diff(&before.tables, &tables);
    if changes.is_empty() {
        return Ok(());
    }
    let v = version_of(
        &tables,
        before.version + 1,
        &path.display().to_string(),
        change::summary(&changes),
        clock.now_ms(),
    )?;
    let e = entry(
        "registry/reload",
        clock.now_ms(),
        Some((before.version, &before.digest)),
        &v,
    );
    store.append_audit(e).await.map_err(|e| e.to_string())?;
    slot.install(v.version, v.digest, tables)
}
