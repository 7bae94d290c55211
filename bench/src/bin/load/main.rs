//! What the gateway costs: the same records fetched directly from an
//! adapter, through the gateway (access rule, consent check, durable
//! audit), and through general-purpose proxies (nginx, haproxy) that check
//! nothing but the client certificate, side by side in one run.
//!
//! ```text
//! cargo build --release -p samverka -p samverka-bench
//! target/release/load [--duration 10] [--warmup 2] [--rounds 3] \
//!     [--concurrency 1,64] [--connections 4] \
//!     [--unaudited-samverka target/unaudited/release/samverka] \
//!     [--postgres-url postgresql://USER@HOST:PORT/DB] [--subjects 20000]
//! ```
//!
//! Everything runs as separate processes on this machine, each over mutual
//! TLS: three reference adapters (`samverka adapter run`), one gateway
//! (`samverka serve`, SQLite store, durable audit), nginx and haproxy when
//! installed and the relay when built (each skipped with the reason
//! otherwise). The load client is this
//! process: a fixed number of concurrent requests over a fixed number of
//! HTTP/2 connections, after a warm-up. Scenarios are measured in turn
//! within each round, so that a slow spell of the machine hits them alike;
//! throughput is the median over rounds, latencies come from all rounds.
//!
//! Scenarios (all return the demo person's two employment periods, except
//! fan-out):
//! - direct: `Adapter.FetchRecords` on the employment adapter;
//! - gateway: `RecordExchange.GetRecords` through the gateway, one source;
//! - nginx / haproxy: `Adapter.FetchRecords` through the proxy;
//! - relay: the same through `relay` (built next to this program): the
//!   gateway's own stack (accept path, tonic's server and channel, mutual
//!   TLS both ways) passing calls through without decoding their gRPC
//!   messages, checking nothing but the client certificate, as nginx does: what the stack costs apart
//!   from the gateway's work;
//! - gateway-pg (with `--postgres-url`): the gateway with its consents and
//!   audit trail in PostgreSQL, in a database made afresh for the run
//!   (`samverka_load`, dropped first), as the SQLite gateway gets a new
//!   file: a store kept from run to run would hold one more consent of
//!   the reader's per run, and every consent check would read them all;
//! - no-audit (with `--unaudited-samverka`): the gateway built with the
//!   `unaudited-benchmark` feature, to show what durable audit costs;
//! - slow-audit / slow-none (with `--unaudited-samverka` and
//!   `--register-latency-ms` above 0): the same pair, gateway and no-audit,
//!   in front of sources that each take `--register-latency-ms` to answer
//!   as a register's database would: what durable audit costs when the
//!   gateway is not the only thing a read waits for;
//! - otel-0 / otel-100 (with `--telemetry`): the gateway with OpenTelemetry
//!   on, exporting to an OTLP receiver in this process, sampling none or
//!   all of the (new) traces;
//! - fan-out (at each concurrency): one `GetRecords` answered by three
//!   sources, against each of those sources asked alone through the
//!   gateway.
//!
//! With `--unaudited-samverka` it prints what the durable audit costs: at
//! each concurrency the ratio of the medians (and the range of the ratios
//! within single rounds, which shows the machine's noise), and with more
//! than one concurrency the ratio of each build's highest throughput, its
//! capacity. Then, before the fan-out, it reads the gateway's performance
//! targets off the run (those whose scenarios answered; see
//! docs/performance.md, "Against the targets"): reported, not pass or fail;
//! and, if the relay answered, what bounds them: the relay against nginx
//! and the gateway against the relay.

mod client;
mod fan_out;
mod fleet;
mod peers;
mod report;
mod targets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use samverka::cli::demo::{DEMO_SUBJECT, READER_AGENCY};
use samverka_certs::OrgNumber;
use samverka_certs::dev::write_dev_pki;
use samverka_gateway::net::client::AgencyTls;
use samverka_proto::adapter::v1::FetchRecordsRequest;
use samverka_proto::adapter::v1::adapter_client::AdapterClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use tonic::transport::Channel;

use samverka_bench::{BoxError, agency_tls, grant_reader_consents, samverka_binary};

use client::{Target, channels, read, run};
use fleet::Fleet;
use peers::{Started, start_haproxy, start_nginx, start_relay, wait_for};
use report::{Results, peak_rss_mib};

#[derive(Parser, Clone)]
#[command(
    about = "Gateway throughput and latency against direct calls and general-purpose proxies"
)]
struct Args {
    /// Measured seconds per scenario and round.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Rounds; throughput is the median over rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests in flight, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// HTTP/2 connections the load client spreads requests over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The samverka binary (default: next to this one).
    #[arg(long)]
    samverka: Option<PathBuf>,
    /// A samverka binary built with `--features unaudited-benchmark`: adds
    /// the scenario "no-audit", the gateway without audit writes.
    #[arg(long)]
    unaudited_samverka: Option<PathBuf>,
    /// Add the scenario "gateway-pg": the gateway with its store (consents
    /// and the audit trail) on this PostgreSQL server instead of SQLite, in
    /// the database `samverka_load`, dropped and made again for the run.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Add the scenarios "otel-0" and "otel-100": the gateway exporting
    /// traces to an OTLP receiver in this process, sampling 0 % and 100 %
    /// of requests (compare with "gateway", telemetry off).
    #[arg(long)]
    telemetry: bool,
    /// Skip the fan-out comparison.
    #[arg(long)]
    no_fan_out: bool,
    /// The fan-out is measured twice: with sources that answer at once
    /// (what the gateway's own work costs), and through a second gateway
    /// whose three sources each take this long, as a register's database
    /// would (whether the sources are asked in parallel). 0 skips the
    /// second. With `--unaudited-samverka`, the audit's cost is measured
    /// behind such sources too (slow-audit, slow-none).
    #[arg(long, default_value_t = 5)]
    register_latency_ms: u64,
    /// Only these scenarios (direct, gateway, gateway-pg, no-audit,
    /// slow-audit, slow-none, nginx, haproxy, relay, otel-0, otel-100), e.g. to
    /// profile one.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// How many people the reads through a gateway are about, spread over
    /// them. 1: the demo person, whose records the adapters hold. More:
    /// synthetic people (no records; each gets the reader's consent first),
    /// so that the audit trail's index by person grows at many places, as
    /// it does in use, instead of at one. The fan-out reads the demo person
    /// either way.
    #[arg(long, default_value_t = 1)]
    subjects: usize,
}

/// The record types the reader's consent covers.
const DEMO_READ: [&str; 2] = ["education.course_result", "employment.period"];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = Args::parse();
    peers::stop_on_interrupt();
    let bin = samverka_binary(args.samverka.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("samverka-load-")
        .tempdir()?;
    let org = |s: &str| OrgNumber::parse(s).expect("valid");
    let mut spec = samverka::cli::demo::pki_spec();
    spec.adapters
        .push(("employment-b".into(), org("2021999079")));
    let pki = write_dev_pki(&dir.path().join("certs"), &spec)?;

    let (spans_received, otlp) = samverka_bench::start_otlp_receiver().await?;
    if let Some(url) = &args.postgres_url {
        args.postgres_url = Some(samverka_bench::fresh_database(url, "samverka_load").await?);
    }
    let fleet = fleet::start(&args, &bin, dir.path(), &pki, otlp)?;
    let Fleet {
        addresses,
        gateway,
        registers,
        unaudited,
        on_postgres,
        traced,
        ..
    } = &fleet;
    let (gateway_pid, gateway_address) = (gateway.0.0.id(), gateway.1);
    let tls = |name: &str| agency_tls(&pki, name);
    let as_gateway =
        AgencyTls::from_files(&pki.ca_cert, &pki.gateway_client.0, &pki.gateway_client.1)?;
    let demo_person: Arc<[String]> = Arc::new([DEMO_SUBJECT.to_owned()]);
    let subjects: Arc<[String]> = if args.subjects > 1 {
        (0..args.subjects)
            .map(samverka_bench::synthetic_subject)
            .collect()
    } else {
        demo_person.clone()
    };
    // The reader's consents: for the people read, and the demo person,
    // whom the fan-out reads.
    let consented: Vec<String> = subjects
        .iter()
        .chain(demo_person.iter())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    grant_reader_consents(gateway_address, &pki, &DEMO_READ, &consented).await?;

    // Proxies in front of the employment adapter.
    let mut proxies: Vec<(&str, Started)> = vec![
        (
            "nginx",
            start_nginx(dir.path(), &pki, addresses["employment"]),
        ),
        (
            "haproxy",
            start_haproxy(dir.path(), &pki, addresses["employment"]),
        ),
        ("relay", start_relay(&pki, addresses["employment"])),
    ];
    for (_, p) in &mut proxies {
        if let Ok((_, port)) = p
            && let Err(e) = wait_for(*port).await
        {
            *p = Err(e);
        }
    }

    let fetch = FetchRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: vec!["employment.period".into()],
        purpose: "study_guidance".into(),
        consent_id: "load".into(),
        requesting_agency: READER_AGENCY.into(),
        audit_ref: String::new(),
        attest: None,
    };
    let n = args.connections;
    let reader_tls = tls("reader")?;
    // Another gateway of this run, ready for the reader: its own store
    // gets the demo consent, and the load client its connections.
    let reader_clients = async |address: SocketAddr| -> Result<Vec<_>, BoxError> {
        grant_reader_consents(address, &pki, &DEMO_READ, &consented).await?;
        Ok(channels(address, &reader_tls, n)
            .await?
            .into_iter()
            .map(RecordExchangeClient::new)
            .collect())
    };
    let gateway_channels = channels(gateway_address, &reader_tls, n).await?;
    let gateway_clients = || {
        gateway_channels
            .iter()
            .cloned()
            .map(RecordExchangeClient::new)
            .collect::<Vec<_>>()
    };
    let adapter_clients =
        |chs: Vec<Channel>| chs.into_iter().map(AdapterClient::new).collect::<Vec<_>>();

    let mut targets: Vec<(String, Target)> = vec![
        (
            "direct".into(),
            Target::Adapter(
                adapter_clients(channels(addresses["employment"], &as_gateway, n).await?),
                fetch.clone(),
            ),
        ),
        (
            "gateway".into(),
            Target::Gateway(
                gateway_clients(),
                read(&["employment.period"], &["2021999053"]),
                subjects.clone(),
            ),
        ),
    ];
    // The other gateways, asked for the same records as "gateway".
    // The gateway in front of slow sources serves "slow-audit" and the
    // fan-out alike, with one set of consents and connections.
    let registers_clients = match registers {
        Some((_, address)) => Some(reader_clients(*address).await?),
        None => None,
    };
    let others = unaudited
        .iter()
        .map(|(name, (_, address))| (*name, *address))
        .chain(on_postgres.as_ref().map(|g| ("gateway-pg", g.1)))
        .chain(traced.iter().map(|(name, (_, address))| (*name, *address)));
    let mut gateways = Vec::new();
    for (name, address) in others {
        gateways.push((name, reader_clients(address).await?));
    }
    if let Some(clients) = registers_clients.as_ref().filter(|_| !unaudited.is_empty()) {
        gateways.push(("slow-audit", clients.clone()));
    }
    for (name, clients) in gateways {
        targets.push((
            name.to_owned(),
            Target::Gateway(
                clients,
                read(&["employment.period"], &["2021999053"]),
                subjects.clone(),
            ),
        ));
    }
    let mut skipped = Vec::new();
    for (name, p) in &proxies {
        match p {
            Ok((_, port)) => {
                let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
                let clients = adapter_clients(channels(addr, &reader_tls, n).await?);
                targets.push((name.to_string(), Target::Adapter(clients, fetch.clone())));
            }
            Err(e) => skipped.push(format!("{name}: skipped, {e}")),
        }
    }
    if !args.only.is_empty() {
        targets.retain(|(name, _)| args.only.contains(name));
    }
    // Check every target answers before measuring.
    for (name, t) in &targets {
        t.call(0)
            .await
            .map_err(|code| format!("{name} does not answer: {code:?}"))?;
    }

    println!(
        "samverka load: {} rounds x ({} s warm-up + {} s), {} connections per target, {} cores",
        args.rounds,
        args.warmup,
        args.duration,
        n,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for s in &skipped {
        println!("{s}");
    }
    let mut results = Results::new();
    for round in 0..args.rounds {
        for &c in &args.concurrency {
            for (name, t) in &targets {
                eprintln!("round {} concurrency {c}: {name}", round + 1);
                run(t, c, &args, results.entry((c, name.clone())).or_default()).await;
            }
        }
    }

    report::table(&args, &targets, &results);
    if args.telemetry {
        report::telemetry(&args, &results);
    }
    if !unaudited.is_empty() {
        report::audit(&args, &results);
    }
    let rss = peak_rss_mib(gateway_pid);
    if let Some(rss) = rss {
        println!("gateway peak RSS: {rss:.1} MiB");
    }
    targets::print(&results, rss);
    targets::print_bounds(&results);

    if !args.no_fan_out {
        let mut setups = vec![("sources answering at once".to_owned(), gateway_clients())];
        if let Some(clients) = &registers_clients {
            setups.push((
                format!("sources answering in {} ms", args.register_latency_ms),
                clients.clone(),
            ));
        }
        fan_out::fan_out(&args, &setups, &demo_person).await;
    }
    drop(proxies);
    if args.telemetry {
        println!(
            "spans received by the OTLP receiver: {}",
            spans_received.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    drop(fleet);
    Ok(())
}
