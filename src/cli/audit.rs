//! `samverka audit`: operators verify, export and archive the audit trail,
//! offline, straight from the store (or from an export).
//!
//! ```text
//! samverka audit verify --store samverka.db --cert gateway.pem
//! samverka audit verify --store postgresql://... --cert old-gateway.pem --cert gateway.pem
//! samverka audit verify --config gateway.toml
//! samverka audit verify --export trail.jsonl --cert gateway.pem
//! samverka audit export --store samverka.db --out trail.jsonl
//! samverka audit prune  --config gateway.toml --archive 2026-archive.jsonl
//! ```
//!
//! `verify` and `export` only read the store (see
//! [`samverka_gateway::store::AuditTrail`]): nothing is migrated or
//! written, so they may run beside a gateway or on an old store.
//!
//! # Export format
//!
//! JSON Lines: first one line per signed checkpoint,
//! `{"type":"checkpoint","seq":..,"hash":..,"time_ms":..,"jws":..}`, then
//! one line per entry in chain order, `{"type":"entry","seq":..,
//! "prev_hash":..,"hash":..,"audit_id":..,"time_ms":..,"caller":..,
//! "method":..,"subject_id":..,"record_types":[..],"purpose":..,
//! "consent_id":..,"sources":[..],"decision":..,"reason":..,"trace_id":..}`.
//! An export verifies on its own with the gateway's certificate.
//!
//! # Retention
//!
//! `prune` archives (exports) and then deletes the entries older than the
//! configured `audit.retention_days`, up to the newest checkpoint that is
//! older than that. Checkpoints are kept, so the entries left in the store
//! still verify: the first of them follows a signed checkpoint.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use samverka_gateway::audit::chain::{Broken, ChainCheck, CheckpointError, Report};

use super::CliError;
use samverka_gateway::audit::{AuditCheckpoint, AuditEntry};
use samverka_gateway::config::Config;
use samverka_gateway::credential::keys::KeySet;
use samverka_gateway::store::{AuditTrail, Store, StoreLocation};

/// Subcommands of `samverka audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole chain and every checkpoint signature; report the
    /// first broken entry (exit 1) or that the trail is intact (exit 0).
    Verify {
        /// Where the trail is.
        #[command(flatten)]
        source: Source,
        /// A gateway certificate (PEM) that signed checkpoints; repeat for
        /// certificates used before a rotation.
        #[arg(long)]
        cert: Vec<PathBuf>,
        /// The gateway's key set (`samverka keys export`): every
        /// certificate in it counts as given with --cert, except those of
        /// keys revoked as compromised, and a checkpoint one of its keys
        /// signed must have been signed while that key was valid.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Check an export (JSON Lines) instead of a store.
        #[arg(long, conflicts_with_all = ["store", "config"])]
        export: Option<PathBuf>,
    },
    /// Write the trail (checkpoints, then entries) as JSON Lines. With
    /// --config (a gateway's own store), the export is then recorded in
    /// the trail: who, how many entries, the file's SHA-256; with --store
    /// the store is only read.
    Export {
        /// Where the trail is.
        #[command(flatten)]
        source: Source,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Archive and delete entries older than the configured retention.
    Prune {
        /// The gateway configuration (store and `audit.retention_days`).
        #[arg(long, env = "SAMVERKA_CONFIG")]
        config: PathBuf,
        /// Where to write the archived entries first (JSON Lines).
        #[arg(long)]
        archive: PathBuf,
    },
}

/// Where to read the trail from.
#[derive(Debug, Args)]
pub struct Source {
    /// A SQLite file or a postgresql:// URL.
    #[arg(long, conflicts_with = "config")]
    store: Option<String>,
    /// A gateway configuration: its store, and its certificate for
    /// checkpoints. Without --store or --config: the SAMVERKA_CONFIG
    /// environment variable, if set.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// A broken trail: exit 1, naming the first broken entry.
fn broken(b: Broken) -> CliError {
    CliError::Failed(format!("audit trail BROKEN at {b}"))
}

/// Starts a check of a trail with these checkpoints. With no certificate
/// at all the command refuses to judge (a usage error); a checkpoint signed
/// with a certificate that was not given leaves the trail NOT VERIFIED
/// (exit 1), which says nothing about tampering. With a key set, each
/// checkpoint one of its keys signed must also be within that key's
/// period ([`key_periods`]).
fn start_check(
    checkpoints: &[AuditCheckpoint],
    certs: &[String],
    keys: Option<&KeySet>,
) -> Result<ChainCheck, CliError> {
    if let Some(set) = keys {
        key_periods(checkpoints, set)?;
    }
    if certs.is_empty() {
        return Err(CliError::Usage(
            "no gateway certificate given: name the certificate that signed the checkpoints with --cert (repeat it for certificates used before a rotation), or --config of that gateway".into(),
        ));
    }
    ChainCheck::new(checkpoints, certs).map_err(|e| match e {
        CheckpointError::Broken(b) => broken(b),
        CheckpointError::Unverified(seq) => CliError::Failed(format!(
            "audit trail NOT VERIFIED: the checkpoint at entry {seq} is signed with a certificate that was not given; give every gateway certificate used since the trail began (--cert, repeatable)"
        )),
    })
}

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ExportLine {
    Checkpoint(AuditCheckpoint),
    Entry(Box<AuditEntry>),
}

const PAGE: i64 = 10_000;

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

/// The store's trail, read-only, and the certificates a config names.
async fn open(source: &Source) -> Result<(AuditTrail, Vec<PathBuf>), CliError> {
    let (trail, certs, _) = open_at(source).await?;
    Ok((trail, certs))
}

/// [`open`], and where the store is.
async fn open_at(source: &Source) -> Result<(AuditTrail, Vec<PathBuf>, StoreLocation), CliError> {
    // Not clap's `env`: a value from the environment would conflict with
    // an explicit --store.
    let from_env = std::env::var_os("SAMVERKA_CONFIG")
        .filter(|v| !v.is_empty() && source.store.is_none())
        .map(PathBuf::from);
    match (&source.store, source.config.as_ref().or(from_env.as_ref())) {
        (Some(store), None) => {
            let location = StoreLocation::parse(store, Path::new("."));
            if let StoreLocation::Sqlite(path) = &location
                && !path.exists()
            {
                return Err(CliError::Usage(format!(
                    "{}: no such store",
                    path.display()
                )));
            }
            Ok((
                AuditTrail::open(&location)
                    .await
                    .map_err(CliError::failed)?,
                Vec::new(),
                location,
            ))
        }
        (None, Some(config)) => {
            let config = Config::load(config).map_err(|e| CliError::Usage(e.to_string()))?;
            let trail = AuditTrail::open(&config.gateway.store)
                .await
                .map_err(CliError::failed)?;
            Ok((
                trail,
                vec![config.gateway.cert.clone()],
                config.gateway.store.clone(),
            ))
        }
        _ => Err(CliError::Usage("give --store or --config".into())),
    }
}

fn summary(r: &Report) -> String {
    let range = r
        .range
        .map_or("none".to_owned(), |(a, b)| format!("{a}..{b}"));
    let mut s = format!(
        "audit trail intact: {} entries (seq {range}), {} signed checkpoints verified",
        r.entries, r.checkpoints
    );
    match r.range {
        Some((_, last)) if r.last_checkpoint < last => s.push_str(&format!(
            "; entries after the last checkpoint ({}) are protected by the chain only",
            r.last_checkpoint
        )),
        _ => {}
    }
    s.push('\n');
    s
}

async fn verify_store(
    store: &AuditTrail,
    certs: &[String],
    keys: Option<&KeySet>,
) -> Result<Report, CliError> {
    let checkpoints = store.checkpoints().await.map_err(CliError::failed)?;
    let mut check = start_check(&checkpoints, certs, keys)?;
    let mut after = 0;
    loop {
        let page = store
            .audit_range(after, PAGE)
            .await
            .map_err(CliError::failed)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            check.push(e).map_err(broken)?;
        }
    }
    check.finish().map_err(broken)
}

/// With a key set: each checkpoint signed by one of its keys was signed
/// while that key was valid (by the time the checkpoint's signature
/// attests), so that a retired key's later signature, or a compromised
/// key's any, anchors nothing.
fn key_periods(checkpoints: &[AuditCheckpoint], set: &KeySet) -> Result<(), CliError> {
    use samverka_gateway::audit::chain::{CHECKPOINT_TYPE, CheckpointClaims};
    use samverka_gateway::credential::keys::{Trust, valid_at};
    use samverka_gateway::credential::signing;
    let trust = Trust::Keys(set.clone());
    for cp in checkpoints {
        let Some(kid) = signing::named_signer(&cp.jws) else {
            continue;
        };
        let named = trust.by_kid(&kid);
        let Some(key) = named.first().and_then(|c| c.key) else {
            continue;
        };
        // An unverifiable checkpoint is the chain check's to report.
        let Ok(claims) =
            signing::verify::<CheckpointClaims>(&cp.jws, CHECKPOINT_TYPE, &key.cert_pem)
        else {
            continue;
        };
        let signed_at = time::OffsetDateTime::parse(
            &claims.time,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp())
        .unwrap_or(i64::MAX);
        if let Some(Err(why)) = valid_at(&trust.by_jwk(&key.jwk), signed_at) {
            return Err(CliError::Failed(format!(
                "audit trail NOT VERIFIED: the checkpoint at entry {}: {why}",
                cp.seq
            )));
        }
    }
    Ok(())
}

/// Verifies an export line by line, in constant memory: its checkpoints
/// come first (as `export` writes them), then its entries, each checked
/// as it is read.
fn verify_export(path: &Path, certs: &[String], keys: Option<&KeySet>) -> Result<Report, CliError> {
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let mut checkpoints = Vec::new();
    let mut check = None;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(CliError::failed)?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: String| CliError::Failed(format!("{}:{}: {what}", path.display(), n + 1));
        match serde_json::from_str::<ExportLine>(&line).map_err(|e| at(e.to_string()))? {
            ExportLine::Checkpoint(_) if check.is_some() => {
                return Err(at("a checkpoint after the entries: not an export".into()));
            }
            ExportLine::Checkpoint(c) => checkpoints.push(c),
            ExportLine::Entry(e) => {
                if check.is_none() {
                    check = Some(start_check(&checkpoints, certs, keys)?);
                }
                if let Some(check) = check.as_mut() {
                    check.push(&e).map_err(broken)?;
                }
            }
        }
    }
    let check = match check {
        Some(check) => check,
        None => start_check(&checkpoints, certs, keys)?,
    };
    check.finish().map_err(broken)
}

/// Records an export in the trail itself, so that handing the trail to a
/// supervisor is on the record too: who (the operating-system user), when,
/// how many entries, and the SHA-256 of the file written. Returns the
/// entry's audit id.
async fn record_export(location: &StoreLocation, out: &Path, n: u64) -> Result<String, CliError> {
    let bytes =
        std::fs::read(out).map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))?;
    let entry = operator_entry(
        "samverka audit export",
        samverka_gateway::time::system_now_ms(),
        &[
            ("entries", n.to_string()),
            ("file", out.display().to_string()),
            ("file_sha256", samverka_gateway::person::sha256_b64(&bytes)),
        ],
    );
    let store = Store::open(location).await.map_err(CliError::failed)?;
    let entry = store.append_audit(entry).await.map_err(CliError::failed)?;
    Ok(entry.audit_id)
}

/// The operator's account on this machine (`$USER`, `$LOGNAME`).
pub(crate) fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("operator:{user}")
}

/// The audit entry of an operator's command (`method`) made at `now_ms`,
/// allowed, with `details`.
pub(crate) fn operator_entry(
    method: &str,
    now_ms: i64,
    details: &[(&str, String)],
) -> samverka_gateway::audit::AuditEntry {
    let mut entry = samverka_gateway::audit::entry(method, now_ms);
    entry.caller = operator();
    entry.decision = samverka_gateway::audit::Decision::Allowed
        .as_str()
        .to_owned();
    entry.details = details
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    entry
}

/// Writes checkpoints (those up to `through`) and entries (up to
/// `through`) as JSON Lines. Returns the number of entries.
async fn export(store: &AuditTrail, out: &Path, through: i64) -> Result<u64, CliError> {
    let file = std::fs::File::create(out)
        .map_err(|e| CliError::Usage(format!("{}: {e}", out.display())))?;
    let mut w = BufWriter::new(file);
    let line = |w: &mut BufWriter<std::fs::File>, l: &ExportLine| -> Result<(), CliError> {
        serde_json::to_writer(&mut *w, l).map_err(CliError::failed)?;
        w.write_all(b"\n").map_err(CliError::failed)
    };
    for c in store.checkpoints().await.map_err(CliError::failed)? {
        if c.seq <= through {
            line(&mut w, &ExportLine::Checkpoint(c))?;
        }
    }
    let (mut after, mut count) = (0, 0);
    'pages: loop {
        let page = store
            .audit_range(after, PAGE)
            .await
            .map_err(CliError::failed)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            if e.seq > through {
                break 'pages;
            }
            count += 1;
            line(&mut w, &ExportLine::Entry(Box::new(e)))?;
        }
    }
    w.flush().map_err(CliError::failed)?;
    w.get_ref().sync_all().map_err(CliError::failed)?;
    Ok(count)
}

/// `samverka audit verify`: a store or an export, against the given
/// certificates and key set.
async fn verify(
    source: Source,
    cert: Vec<PathBuf>,
    keys: Option<PathBuf>,
    export: Option<PathBuf>,
) -> Result<String, CliError> {
    let set = keys
        .as_ref()
        .map(|path| {
            KeySet::parse(&read(path)?)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
        })
        .transpose()?;
    let read_all = |paths: &[PathBuf]| {
        let mut certs = paths
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        certs.extend(set.iter().flat_map(KeySet::trusted_certs));
        Ok::<_, CliError>(certs)
    };
    let report = match export {
        Some(path) => verify_export(&path, &read_all(&cert)?, set.as_ref())?,
        None => {
            let (store, config_certs) = open(&source).await?;
            let certs = read_all(&[cert, config_certs].concat())?;
            verify_store(&store, &certs, set.as_ref()).await?
        }
    };
    Ok(summary(&report))
}

/// Runs one `samverka audit` command and returns what to print.
pub async fn run(command: AuditCommand) -> Result<String, CliError> {
    match command {
        AuditCommand::Verify {
            source,
            cert,
            keys,
            export,
        } => verify(source, cert, keys, export).await,
        AuditCommand::Export { source, out } => {
            let (trail, _, location) = open_at(&source).await?;
            let n = export(&trail, &out, i64::MAX).await?;
            drop(trail);
            // A gateway's own store (named by its configuration) records
            // the export; a store named by --store (a backup, a copy, a
            // store an older release left) is only read.
            if source.store.is_some() {
                return Ok(format!("{n} entries written to {}\n", out.display()));
            }
            let audit_id = record_export(&location, &out, n).await?;
            Ok(format!(
                "{n} entries written to {}; the export is recorded in the trail as {audit_id}\n",
                out.display()
            ))
        }
        AuditCommand::Prune { config, archive } => {
            let config = Config::load(&config).map_err(|e| CliError::Usage(e.to_string()))?;
            let trail = AuditTrail::open(&config.gateway.store)
                .await
                .map_err(CliError::failed)?;
            let cutoff =
                samverka_gateway::time::system_now_ms() - config.audit.retention.as_millis() as i64;
            let through = trail
                .checkpoints()
                .await
                .map_err(CliError::failed)?
                .iter()
                .rev()
                .find(|c| c.time_ms < cutoff)
                .map(|c| c.seq);
            let Some(through) = through else {
                return Ok("nothing older than the retention period is anchored by a checkpoint; nothing pruned\n".into());
            };
            let certs = vec![read(&config.gateway.cert)?];
            verify_store(&trail, &certs, None).await?;
            let archived = export(&trail, &archive, through).await?;
            verify_export(&archive, &certs, None)?;
            // Closed first, so that the store's own connection is the last
            // to close and folds its write-ahead log into the file.
            drop(trail);
            let store = Store::open(&config.gateway.store)
                .await
                .map_err(CliError::failed)?;
            let deleted = store.prune_audit(through).await.map_err(CliError::failed)?;
            Ok(format!(
                "archived {archived} entries (through seq {through}) to {} and removed {deleted} from the store\n",
                archive.display()
            ))
        }
    }
}
