//! How the consent check scales with the number of consents in the store.
//!
//! For each store size it fills a fresh store (SQLite in a temporary file;
//! PostgreSQL at `--postgres-url`), then times the consent check of a read
//! (the indexed lookup of one person's consents for one agency, plus the
//! decision) for random people, and reports p50 and p99 with their ratio
//! to the smallest size measured in the same run. The target is a flat
//! curve: the largest size within 1.2x of the smallest.
//!
//! ```text
//! cargo run --release -p samverka-bench --bin consent-check -- \
//!     [--sizes 1000,1000000] [--lookups 20000] [--postgres-url URL] [--no-sqlite]
//! ```
//!
//! With `--postgres-url`, the benchmark creates (and first drops) one
//! database per size, `samverka_bench_<size>`, on that server; the URL's
//! own database is only used to do so. Sizes are measured in turn within
//! each of several rounds, so that a slow spell of the machine hits every
//! size alike.

use std::time::{Duration, Instant};

use clap::Parser;
use samverka_bench::{BoxError, fresh_database, postgres_admin, synthetic_subject};
use samverka_gateway::pipeline::consent::decide;
use samverka_gateway::store::{Store, StoreLocation, StoredConsent};

#[derive(Parser)]
#[command(about = "Consent-check latency against store size")]
struct Args {
    /// Store sizes (number of consents), comma-separated; the first is the
    /// baseline.
    #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
    sizes: Vec<usize>,
    /// Timed consent checks per size (after 1 000 untimed ones).
    #[arg(long, default_value_t = 20_000)]
    lookups: usize,
    /// Also measure PostgreSQL, in this scratch database.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
}

const GRANTEE: &str = "2021999020";
const OTHER_GRANTEE: &str = "2021999061";
const TYPES: [&str; 2] = ["education.course_result", "employment.period"];

/// Two consents per person: one for the reading agency, one for another.
fn consent(i: usize, now_ms: i64) -> StoredConsent {
    let person = i / 2;
    StoredConsent {
        consent_id: format!("bench-{i}"),
        subject_id: synthetic_subject(person),
        grantee_agency: if i.is_multiple_of(2) {
            GRANTEE
        } else {
            OTHER_GRANTEE
        }
        .to_owned(),
        record_types: TYPES.iter().map(|t| t.to_string()).collect(),
        purpose: "study_guidance".to_owned(),
        source_agencies: Vec::new(),
        valid_from_ms: now_ms - 1_000,
        valid_until_ms: now_ms + 365 * 24 * 3600 * 1000,
        registrar_agency: "2021999038".to_owned(),
        evidence_ref: format!("ev-{i}"),
        request_id: format!("req-{i}"),
        granted_at_ms: now_ms - 1_000,
        revoked_at_ms: None,
        revocation_reason: None,
        revoked_by: None,
        ..Default::default()
    }
}

async fn fill(store: &Store, size: usize, now_ms: i64) -> Result<(), BoxError> {
    let mut i = 0;
    while i < size {
        let end = (i + 100_000).min(size);
        store
            .import_consents((i..end).map(|k| consent(k, now_ms)).collect())
            .await?;
        i = end;
    }
    Ok(())
}

/// xorshift64*: reproducible choice of people without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// Times `lookups` consent checks of random people (the store holds
/// `size` consents, two per person).
async fn measure(
    store: &Store,
    size: usize,
    lookups: usize,
    rng: &mut Rng,
    now_ms: i64,
) -> Result<Vec<Duration>, BoxError> {
    let types: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
    let mut times = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        let who = synthetic_subject(rng.below(size / 2));
        let started = Instant::now();
        let consents = store.consents_for(&who, Some(GRANTEE)).await?;
        let permit = decide(&consents, "study_guidance", &types, &[], now_ms);
        times.push(started.elapsed());
        if permit.is_err() {
            return Err(format!("no consent found for {who}").into());
        }
    }
    Ok(times)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

/// An empty store of the backend, one per size.
async fn fresh_store(
    backend: &str,
    size: usize,
    args: &Args,
    dir: &std::path::Path,
) -> Result<(Store, Option<String>), BoxError> {
    match backend {
        "sqlite" => Ok((
            Store::open(&StoreLocation::Sqlite(dir.join(format!("bench-{size}.db")))).await?,
            None,
        )),
        _ => {
            let admin = args.postgres_url.clone().unwrap_or_default();
            let url = fresh_database(&admin, &format!("samverka_bench_{size}")).await?;
            Ok((
                Store::open(&StoreLocation::Postgres(url.clone())).await?,
                Some(url),
            ))
        }
    }
}

/// Rounds in which every size is measured in turn, so that a slow spell
/// of the machine hits all sizes alike.
const ROUNDS: usize = 10;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let now_ms = samverka_gateway::time::system_now_ms();
    let mut backends: Vec<&str> = Vec::new();
    if !args.no_sqlite {
        backends.push("sqlite");
    }
    if args.postgres_url.is_some() {
        backends.push("postgresql");
    }
    println!("consent check: indexed lookup of one person's consents for one agency + decision");
    println!(
        "{} rounds, sizes measured in turn within each round",
        ROUNDS
    );
    println!(
        "{:<11} {:>10} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "backend", "consents", "lookups", "p50 µs", "p99 µs", "p50 ratio", "p99 ratio", "fill s"
    );
    let dir = tempfile::tempdir()?;
    for backend in backends {
        let mut stores = Vec::new();
        for &size in &args.sizes {
            let (store, url) = fresh_store(backend, size, &args, dir.path()).await?;
            let filled = Instant::now();
            fill(&store, size, now_ms).await?;
            let fill_s = filled.elapsed().as_secs_f64();
            if let Some(url) = &url {
                // Measure the steady state, not the checkpoint that writes
                // out the import: vacuum (visibility map) and checkpoint.
                postgres_admin(url, "VACUUM ANALYZE consents").await?;
                postgres_admin(url, "CHECKPOINT").await?;
            }
            stores.push((size, store, fill_s));
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); stores.len()];
        for (size, store, _) in &stores {
            measure(store, *size, 1_000, &mut rng, now_ms).await?; // warm-up
        }
        for _ in 0..ROUNDS {
            for (i, (size, store, _)) in stores.iter().enumerate() {
                samples[i]
                    .extend(measure(store, *size, args.lookups / ROUNDS, &mut rng, now_ms).await?);
            }
        }
        let mut baseline = None;
        for ((size, _, fill_s), mut times) in stores.iter().zip(samples) {
            times.sort();
            let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));
            let (b50, b99): (Duration, Duration) = *baseline.get_or_insert((p50, p99));
            println!(
                "{:<11} {:>10} {:>8} {:>9.1} {:>9.1} {:>10.2} {:>10.2} {:>9.1}",
                backend,
                size,
                times.len(),
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                p50.as_secs_f64() / b50.as_secs_f64(),
                p99.as_secs_f64() / b99.as_secs_f64(),
                fill_s
            );
        }
    }
    Ok(())
}
