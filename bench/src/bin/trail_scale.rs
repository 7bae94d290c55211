//! How the audit trail's operations scale with its size: `samverka audit
//! verify` and `audit export` (time and peak memory, as processes of their
//! own), one person's access log (`AccessLog.List`'s query) and a read's
//! consent check, at each size against the smallest, in one run.
//!
//! ```text
//! cargo build --release -p samverka -p samverka-bench
//! target/release/trail-scale [--sizes 10000,1000000] [--postgres-url URL] [--no-sqlite]
//! ```
//!
//! Entries are made through the store's own append path (batches of 1 000,
//! as the group-commit writer makes them), about 100 000 people in turn;
//! the store needs about 0.5 KB an entry on disk: check the free space
//! first. A store has no signed checkpoints (the verification of one per
//! `checkpoint_every` entries adds a signature check each). Run by hand,
//! not by CI: `docs/performance.md` has what it gave.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use samverka_bench::{BoxError, fresh_database, samverka_binary, synthetic_subject};
use samverka_gateway::audit::AuditEntry;
use samverka_gateway::store::{Store, StoreLocation, StoredConsent};

#[derive(Parser)]
#[command(about = "Audit trail operations against the trail's size")]
struct Args {
    /// Trail sizes (entries), comma-separated; the first is the baseline.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<usize>,
    /// Also measure PostgreSQL, in scratch databases on this server.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// The samverka binary (default: beside this program).
    #[arg(long)]
    samverka: Option<std::path::PathBuf>,
}

const PEOPLE: usize = 100_000;
const GRANTEE: &str = "2021999020";
const BATCH: usize = 1000;
const PROBES: usize = 200;

fn entry(i: usize, now_ms: i64) -> AuditEntry {
    let mut e = samverka_gateway::audit::entry("RecordExchange/GetRecords", now_ms + i as i64);
    e.caller = GRANTEE.into();
    e.subject_id = synthetic_subject(i % PEOPLE);
    e.record_types = vec!["education.course_result".into(), "employment.period".into()];
    e.purpose = "study_guidance".into();
    e.consent_id = format!("consent-{}", i % PEOPLE);
    e.sources = vec!["2021999046=OK".into(), "2021999053=OK".into()];
    e.decision = "allowed".into();
    e
}

fn consent(person: usize, now_ms: i64) -> StoredConsent {
    StoredConsent {
        consent_id: format!("consent-{person}"),
        subject_id: synthetic_subject(person),
        grantee_agency: GRANTEE.into(),
        record_types: vec!["education.course_result".into(), "employment.period".into()],
        purpose: "study_guidance".into(),
        source_agencies: Vec::new(),
        valid_from_ms: now_ms - 1000,
        valid_until_ms: now_ms + 365 * 24 * 3600 * 1000,
        registrar_agency: "2021999038".into(),
        evidence_ref: "bench".into(),
        request_id: format!("bench-{person}"),
        granted_at_ms: now_ms - 1000,
        ..Default::default()
    }
}

/// A fresh store of `backend` for `size`: where it is, for the processes.
async fn fresh(backend: &str, size: usize, args: &Args, dir: &Path) -> Result<String, BoxError> {
    if backend == "sqlite" {
        return Ok(dir.join(format!("trail-{size}.db")).display().to_string());
    }
    let admin = args.postgres_url.clone().unwrap_or_default();
    fresh_database(&admin, &format!("samverka_trail_{size}")).await
}

fn location(store: &str) -> StoreLocation {
    StoreLocation::parse(store, Path::new("/"))
}

/// Runs `samverka ARGS` to its end: how long it took and its peak resident
/// memory (the largest `VmHWM` seen while it ran, read every 20 ms).
fn measured(bin: &Path, args: &[&str]) -> Result<(Duration, u64), BoxError> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                let out = child.wait_with_output()?;
                return Err(format!(
                    "samverka {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            return Ok((started.elapsed(), peak_kb));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The median of `f` over [`PROBES`] people.
async fn median<F, Fut>(mut f: F) -> Result<Duration, BoxError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), samverka_gateway::store::StoreError>>,
{
    let mut times = Vec::new();
    for i in 0..PROBES {
        let person = synthetic_subject((i * 7919) % PEOPLE);
        let started = Instant::now();
        f(person).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

struct Row {
    backend: &'static str,
    size: usize,
    fill: Duration,
    verify: (Duration, u64),
    export: (Duration, u64),
    access_log: Duration,
    consent_check: Duration,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let bin = samverka_binary(args.samverka.as_deref()).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir()?;
    let pki = samverka_certs::dev::write_dev_pki(
        &dir.path().join("certs"),
        &samverka::cli::demo::pki_spec(),
    )?;
    let cert = pki.gateway.0.display().to_string();
    let now_ms = samverka_gateway::time::system_now_ms();
    let mut backends: Vec<&'static str> = Vec::new();
    if !args.no_sqlite {
        backends.push("sqlite");
    }
    if args.postgres_url.is_some() {
        backends.push("postgresql");
    }
    let mut rows = Vec::new();
    for backend in backends {
        for &size in &args.sizes {
            let url = fresh(backend, size, &args, dir.path()).await?;
            let store = Store::open(&location(&url)).await?;
            let started = Instant::now();
            store
                .import_consents((0..PEOPLE).map(|p| consent(p, now_ms)).collect())
                .await?;
            let mut made = 0;
            while made < size {
                let n = BATCH.min(size - made);
                let batch = (made..made + n).map(|i| entry(i, now_ms)).collect();
                store.append_audit_batch(batch).await?;
                made += n;
            }
            // SQLite's access log index by person is filled in the
            // background while the gateway runs; here, at once.
            store.index_access_log().await?;
            let fill = started.elapsed();
            let access_log = median(|person| {
                let store = &store;
                async move {
                    store
                        .access_events(&person, 0, i64::MAX, 0, 101)
                        .await
                        .map(drop)
                }
            })
            .await?;
            let consent_check = median(|person| {
                let store = &store;
                async move { store.consents_for(&person, Some(GRANTEE)).await.map(drop) }
            })
            .await?;
            drop(store);
            let verify = measured(&bin, &["audit", "verify", "--store", &url, "--cert", &cert])?;
            let out = dir.path().join(format!("export-{backend}-{size}.jsonl"));
            let out_arg = out.display().to_string();
            let export = measured(
                &bin,
                &["audit", "export", "--store", &url, "--out", &out_arg],
            )?;
            let _ = std::fs::remove_file(&out);
            eprintln!("{backend} {size}: filled in {:.1} s", fill.as_secs_f64());
            rows.push(Row {
                backend,
                size,
                fill,
                verify,
                export,
                access_log,
                consent_check,
            });
        }
    }
    println!(
        "{:<11} {:>10} {:>8} {:>9} {:>7} {:>9} {:>7} {:>9} {:>7} {:>10} {:>7} {:>9} {:>7}",
        "backend",
        "entries",
        "fill s",
        "verify s",
        "×",
        "verify MB",
        "export s",
        "×",
        "exp MB",
        "log µs",
        "×",
        "consent µs",
        "×"
    );
    for r in &rows {
        let base = rows
            .iter()
            .find(|b| b.backend == r.backend)
            .expect("the backend's first size");
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "{:<11} {:>10} {:>8.1} {:>9.2} {:>7.1} {:>9.1} {:>7.2} {:>9.1} {:>7.1} {:>10.0} {:>7.2} {:>9.0} {:>7.2}",
            r.backend,
            r.size,
            r.fill.as_secs_f64(),
            r.verify.0.as_secs_f64(),
            ratio(r.verify.0, base.verify.0),
            r.verify.1 as f64 / 1024.0,
            r.export.0.as_secs_f64(),
            ratio(r.export.0, base.export.0),
            r.export.1 as f64 / 1024.0,
            r.access_log.as_secs_f64() * 1e6,
            ratio(r.access_log, base.access_log),
            r.consent_check.as_secs_f64() * 1e6,
            ratio(r.consent_check, base.consent_check),
        );
    }
    Ok(())
}
