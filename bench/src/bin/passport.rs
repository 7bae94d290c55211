//! Does the competence passport ask its sources in parallel?
//!
//! ```text
//! cargo build --release -p samverka -p samverka-bench
//! target/release/passport [--latency-ms 200] [--requests 30]
//! ```
//!
//! Three reference adapters, each answering every request `--latency-ms`
//! late (`samverka adapter run --latency-ms`), and a gateway (`samverka
//! serve`, SQLite store, durable audit), each its own process, all over
//! mutual TLS. One request at a time, in the same run:
//! - one source (the baseline): `GetRecords` answered by one slow source;
//! - passport: `GetCompetencePassport` answered by all three.
//!
//! The ratio passport / one source is about 1 when the sources are asked
//! in parallel and about 3 when they are asked one after another.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SOURCES, DEMO_SUBJECT, pki_spec};
use samverka_bench::{
    BoxError, agency_tls, grant_reader_consent, samverka_binary, start_adapter, start_demo_gateway,
};
use samverka_certs::dev::write_dev_pki;
use samverka_gateway::net::client::connect;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{GetCompetencePassportRequest, GetRecordsRequest, source_outcome};

#[derive(Parser)]
#[command(about = "Competence passport latency with slow sources, against one slow source")]
struct Args {
    /// How late every source answers, in milliseconds.
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    /// Measured requests per scenario (after 3 unmeasured ones).
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// The samverka binary (default: next to this one).
    #[arg(long)]
    samverka: Option<PathBuf>,
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let bin = samverka_binary(args.samverka.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("samverka-passport-")
        .tempdir()?;
    let pki = write_dev_pki(&dir.path().join("certs"), &pki_spec())?;

    let mut procs = Vec::new();
    let mut adapters = Vec::new();
    for source in &DEMO_SOURCES {
        let (proc, address) = start_adapter(
            &bin,
            &pki,
            source.name,
            source.name,
            source.agency,
            args.latency_ms,
        )?;
        procs.push(proc);
        adapters.push((source.name.to_owned(), address));
    }
    let (gateway, address) = start_demo_gateway(&bin, dir.path(), "gateway", &pki, &adapters, "")?;
    grant_reader_consent(
        address,
        &pki,
        &[
            "education.course_result",
            "education.degree",
            "employment.period",
            "competence.validated",
        ],
    )
    .await?;
    let mut client = RecordExchangeClient::new(
        connect(
            &address.to_string(),
            "localhost",
            &agency_tls(&pki, "reader")?,
        )
        .await?,
    );

    let one_source = GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: vec!["competence.validated".into()],
        purpose: DEMO_PURPOSE.into(),
        source_agencies: vec![],
        ..Default::default()
    };
    let passport = GetCompetencePassportRequest {
        subject_id: DEMO_SUBJECT.into(),
        purpose: DEMO_PURPOSE.into(),
        ..Default::default()
    };
    // Turn about, so that a slow spell of the machine hits both alike.
    let mut single = Vec::new();
    let mut full = Vec::new();
    for i in 0..args.requests + 3 {
        let t0 = Instant::now();
        client.get_records(one_source.clone()).await?;
        let t1 = Instant::now();
        let answer = client
            .get_competence_passport(passport.clone())
            .await?
            .into_inner();
        let t2 = Instant::now();
        let sources_ok = answer
            .outcomes
            .iter()
            .filter(|o| o.status == source_outcome::Status::Ok as i32)
            .count();
        if sources_ok != DEMO_SOURCES.len() {
            return Err(format!(
                "only {sources_ok} of {} sources answered: {:?}",
                DEMO_SOURCES.len(),
                answer.outcomes
            )
            .into());
        }
        if i >= 3 {
            single.push(t1 - t0);
            full.push(t2 - t1);
        }
    }
    single.sort();
    full.sort();

    println!(
        "samverka passport: {} sources each {} ms late, {} requests per scenario, concurrency 1",
        DEMO_SOURCES.len(),
        args.latency_ms,
        args.requests
    );
    println!("{:<12} {:>9} {:>9}", "scenario", "p50 ms", "p99 ms");
    for (name, v) in [("one source", &single), ("passport", &full)] {
        println!(
            "{:<12} {:>9.1} {:>9.1}",
            name,
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.99))
        );
    }
    let ratio = ms(quantile(&full, 0.5)) / ms(quantile(&single, 0.5));
    let sequential = (DEMO_SOURCES.len() as u64 * args.latency_ms) as f64;
    println!("passport / one source (p50): {ratio:.2} (1 = parallel, 3 = one after another)");
    println!(
        "passport p50 / {sequential:.0} ms (the sources one after another): {:.2}",
        ms(quantile(&full, 0.5)) / sequential
    );
    drop(gateway);
    drop(procs);
    Ok(())
}
