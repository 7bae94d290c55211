//! What a consent's terms cost a read: the same read (the demo person's
//! employment periods, one source) under a plain consent, the baseline,
//! and under a consent with terms, whose every read reserves one of its
//! reads in the store (a write transaction) before the source is asked,
//! and whose records are checked against its period.
//!
//! ```text
//! cargo run --release -p samverka-bench --bin consent-terms -- [--reads 1500] [--rounds 3]
//! ```
//!
//! The demo network runs in this process (gateway, SQLite store with the
//! audit trail durable, the reference adapters, mutual TLS). The two kinds
//! of read alternate within each round, one at a time and then 16 at once,
//! so that a slow spell of the machine hits both alike; the report is the
//! ratio terms / plain of the medians over the rounds.

use std::time::{Duration, Instant};

use clap::Parser;
use samverka::cli::demo::{DEMO_SUBJECT, Network, READER_AGENCY};
use samverka_gateway::time::{Clock, to_timestamp};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    ApproveConsentRequest, GetRecordsRequest, GrantConsentRequest, RequestConsentRequest,
};
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "The cost of a consent's terms (counted reads, a period) on a read")]
struct Args {
    /// Reads per kind, per concurrency, per round (at most 2 000: the
    /// demo's rate limit).
    #[arg(long, default_value_t = 1500)]
    reads: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn read(purpose: &str) -> GetRecordsRequest {
    GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: vec!["employment.period".into()],
        purpose: purpose.into(),
        ..Default::default()
    }
}

/// `n` reads for `purpose`, `concurrency` at once: (p50 latency, reads a
/// second).
async fn measure(
    client: &RecordExchangeClient<Channel>,
    purpose: &str,
    n: usize,
    concurrency: usize,
) -> Result<(Duration, f64), BoxError> {
    // The demo's rate limit (1 000 a second, bursts of 2 000 per agency):
    // each measurement starts with a full bucket and stays within it.
    assert!(n <= 2000, "at most 2 000 reads per measurement");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut c = client.clone();
        let purpose = purpose.to_owned();
        let share = n / concurrency + usize::from(w < n % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(share);
            for _ in 0..share {
                let t = Instant::now();
                let answer = c.get_records(read(&purpose)).await?.into_inner();
                assert!(!answer.records.is_empty(), "the read returned records");
                took.push(t.elapsed());
            }
            Ok::<_, tonic::Status>(took)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((all[all.len() / 2], n as f64 / elapsed.as_secs_f64()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let dir = tempfile::Builder::new()
        .prefix("samverka-terms-")
        .tempdir()?;
    let net = Network::start(dir.path(), Clock::system()).await?;
    let now = net.gateway.clock.now_ms();

    // The plain consent: study guidance.
    let person = net.login("registrar", DEMO_SUBJECT);
    let mut registrar = ConsentsClient::new(net.channel("registrar").await?);
    registrar
        .grant(person.seal(GrantConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: READER_AGENCY.into(),
            record_types: vec!["employment.period".into()],
            purpose: "study_guidance".into(),
            valid_until: Some(to_timestamp(now + 30 * 24 * 3600 * 1000)),
            request_id: "plain".into(),
            ..Default::default()
        }))
        .await?;
    // The consent with terms: job matching, requested by the reader with
    // reads counted and a period, approved by the person.
    let mut reader = ConsentsClient::new(net.channel("reader").await?);
    let asked = reader
        .request_consent(RequestConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: "job_matching".into(),
            record_types: vec!["employment.period".into()],
            records_from: "1900-01-01".into(),
            valid_for_days: 30,
            max_reads: 1_000_000_000,
            justification: "benchmark".into(),
            request_id: "terms".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    registrar
        .approve_consent(person.seal(ApproveConsentRequest {
            consent_id: asked.consent_id,
            ..Default::default()
        }))
        .await?;

    let client = RecordExchangeClient::new(net.channel("reader").await?);
    for purpose in ["study_guidance", "job_matching"] {
        measure(&client, purpose, 200, 4).await?;
    }
    println!("consent terms: the same read under a plain consent and under one with terms");
    println!(
        "(counted reads, a period); {} reads per kind, per round, {} rounds",
        args.reads, args.rounds
    );
    for concurrency in [1, 16] {
        let (mut p50, mut rate) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            let plain = measure(&client, "study_guidance", args.reads, concurrency).await?;
            let terms = measure(&client, "job_matching", args.reads, concurrency).await?;
            p50.push(terms.0.as_secs_f64() / plain.0.as_secs_f64());
            rate.push(terms.1 / plain.1);
            println!(
                "  {concurrency:>2} in flight: plain p50 {:>7.0} µs {:>7.0}/s | terms p50 {:>7.0} µs {:>7.0}/s",
                plain.0.as_secs_f64() * 1e6,
                plain.1,
                terms.0.as_secs_f64() * 1e6,
                terms.1
            );
        }
        println!(
            "{concurrency:>2} in flight: terms / plain: p50 latency {:.2}x, reads a second {:.2}x (medians over rounds)",
            median(p50),
            median(rate)
        );
    }
    net.shutdown().await;
    Ok(())
}
