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
//! installed (skipped with the reason otherwise). The load client is this
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
//! - gateway-pg (with `--postgres-url`): the gateway with its consents and
//!   audit trail in PostgreSQL;
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
//! capacity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use samverka::client::{AgencyTls, connect};
use samverka::demo::{DEMO_SUBJECT, READER_AGENCY};
use samverka_certs::OrgNumber;
use samverka_certs::dev::{DevPkiFiles, write_dev_pki};
use samverka_proto::adapter::v1::FetchRecordsRequest;
use samverka_proto::adapter::v1::adapter_client::AdapterClient;
use samverka_proto::v1::GetRecordsRequest;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use tonic::transport::Channel;

use samverka_bench::{
    BoxError, Proc, agency_tls, grant_reader_consents, samverka_binary, start_adapter,
    start_demo_gateway,
};

/// A proxy process and its port, or why it is not running.
type Started = Result<(Proc, u16), BoxError>;

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
    /// and the audit trail) in this PostgreSQL database instead of SQLite.
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
    /// slow-audit, slow-none, nginx, haproxy, otel-0, otel-100), e.g. to
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

/// The adapters: (name in the config, kind, organisation number).
const SOURCES: [(&str, &str, &str); 3] = [
    ("higher-education", "higher-education", "2021999046"),
    ("employment", "employment", "2021999053"),
    ("employment-b", "employment", "2021999079"),
];

/// The sources' addresses, by name.
type Sources = BTreeMap<&'static str, SocketAddr>;

/// Starts the three sources, each its own process answering after
/// `latency_ms`.
fn start_sources(
    bin: &Path,
    pki: &DevPkiFiles,
    latency_ms: u64,
) -> Result<(Vec<Proc>, Sources), BoxError> {
    let mut procs = Vec::new();
    let mut addresses = BTreeMap::new();
    for (name, kind, agency) in SOURCES {
        let (proc, address) = start_adapter(bin, pki, name, kind, agency, latency_ms)?;
        addresses.insert(name, address);
        procs.push(proc);
    }
    Ok((procs, addresses))
}

/// A gateway's routes to `sources`: the demo's two adapters, and the
/// configuration to append, with the third source (for the fan-out) and no
/// rate limit in the way of the load.
fn routes(sources: &Sources) -> (Vec<(String, SocketAddr)>, String) {
    let adapters = ["higher-education", "employment"]
        .iter()
        .map(|n| (n.to_string(), sources[n]))
        .collect();
    let extra = format!(
        "[limits]\nrate_per_second = 1000000000\nburst = 1000000000\n\n[[adapters]]\nname = \"employment-b\"\naddress = \"{}\"\norg_number = \"2021999079\"\nrecord_types = [\"employment.period\"]\n",
        sources["employment-b"]
    );
    (adapters, extra)
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for(port: u16) -> Result<(), BoxError> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing listens on port {port}").into())
}

fn pem_pair(cert: &Path, key: &Path, out: &Path) -> Result<PathBuf, BoxError> {
    std::fs::write(
        out,
        format!(
            "{}{}",
            std::fs::read_to_string(cert)?,
            std::fs::read_to_string(key)?
        ),
    )?;
    Ok(out.to_owned())
}

fn start_nginx(
    dir: &Path,
    pki: &DevPkiFiles,
    backend: SocketAddr,
) -> Result<(Proc, u16), BoxError> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("nginx is not installed (apt-get install nginx)")?;
    let port = free_port()?;
    let d = dir.display();
    let (server_cert, server_key) = (pki.gateway.0.display(), pki.gateway.1.display());
    let (proxy_cert, proxy_key) = (
        pki.gateway_client.0.display(),
        pki.gateway_client.1.display(),
    );
    let ca = pki.ca_cert.display();
    let conf = format!(
        "worker_processes 2; daemon off; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_concurrent_streams 256;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate {server_cert}; ssl_certificate_key {server_key};
  ssl_client_certificate {ca}; ssl_verify_client on;
  client_body_temp_path {d}/nginx-body; proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fcgi; uwsgi_temp_path {d}/nginx-uwsgi; scgi_temp_path {d}/nginx-scgi;
  upstream backend {{ server {backend}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{port} ssl http2;
    location / {{ grpc_pass grpcs://backend;
      grpc_ssl_certificate {proxy_cert}; grpc_ssl_certificate_key {proxy_key};
      grpc_ssl_trusted_certificate {ca}; grpc_ssl_verify on;
      grpc_ssl_name localhost; grpc_ssl_session_reuse on; }} }} }}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok((Proc(child), port))
}

fn start_haproxy(
    dir: &Path,
    pki: &DevPkiFiles,
    backend: SocketAddr,
) -> Result<(Proc, u16), BoxError> {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("haproxy is not installed (apt-get install haproxy)")?;
    let port = free_port()?;
    let server = pem_pair(
        &pki.gateway.0,
        &pki.gateway.1,
        &dir.join("haproxy-server.pem"),
    )?;
    let client = pem_pair(
        &pki.gateway_client.0,
        &pki.gateway_client.1,
        &dir.join("haproxy-client.pem"),
    )?;
    let ca = pki.ca_cert.display();
    let conf = format!(
        "global
  nbthread 2
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:{port} ssl crt {server} ca-file {ca} verify required alpn h2
  default_backend be
backend be
  http-reuse always
  server b1 {backend} ssl verify required verifyhost localhost sni str(localhost) ca-file {ca} crt {client} alpn h2
",
        server = server.display(),
        client = client.display(),
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let child = Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok((Proc(child), port))
}

/// One kind of request, with its connections.
#[derive(Clone)]
enum Target {
    Adapter(Vec<AdapterClient<Channel>>, FetchRecordsRequest),
    /// Reads `request` about the people named, spread over them.
    Gateway(
        Vec<RecordExchangeClient<Channel>>,
        GetRecordsRequest,
        Arc<[String]>,
    ),
}

/// Counts gateway reads, to spread them over the people.
static NEXT_SUBJECT: AtomicUsize = AtomicUsize::new(0);

impl Target {
    async fn call(&self, i: usize) -> Result<(), tonic::Code> {
        match self {
            Target::Adapter(clients, req) => {
                let mut c = clients[i % clients.len()].clone();
                c.fetch_records(req.clone())
                    .await
                    .map(drop)
                    .map_err(|s| s.code())
            }
            Target::Gateway(clients, req, subjects) => {
                let mut c = clients[i % clients.len()].clone();
                // Scattered, as readers' people are: consecutive reads are
                // not about neighbours in the index.
                let n = NEXT_SUBJECT.fetch_add(1, Ordering::Relaxed);
                let req = GetRecordsRequest {
                    subject_id: subjects[n.wrapping_mul(2_654_435_761) % subjects.len()].clone(),
                    ..req.clone()
                };
                c.get_records(req).await.map(drop).map_err(|s| s.code())
            }
        }
    }
}

#[derive(Default)]
struct Outcome {
    rps: Vec<f64>,
    latency: Option<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Outcome {
    /// The failed calls by status code, or "-".
    fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "-".to_owned();
        }
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        errors.join(" ")
    }
}

/// Runs `concurrency` loops against `target` for warm-up + duration.
async fn run(target: &Target, concurrency: usize, args: &Args, outcome: &mut Outcome) {
    let start = Instant::now() + Duration::from_secs(args.warmup);
    let end = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let result = target.call(i).await;
                if t0 >= start {
                    match result {
                        Ok(()) => {
                            let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        Err(code) => *errors.entry(format!("{code:?}")).or_default() += 1,
                    }
                }
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for t in tasks {
        if let Ok((h, e)) = t.await {
            let _ = hist.add(&h);
            for (k, v) in e {
                *outcome.errors.entry(k).or_default() += v;
            }
        }
    }
    outcome.rps.push(hist.len() as f64 / args.duration as f64);
    match &mut outcome.latency {
        Some(all) => {
            let _ = all.add(&hist);
        }
        None => outcome.latency = Some(hist),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The record types the reader's consent covers.
const DEMO_READ: [&str; 2] = ["education.course_result", "employment.period"];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let bin = samverka_binary(args.samverka.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("samverka-load-")
        .tempdir()?;
    let org = |s: &str| OrgNumber::parse(s).expect("valid");
    let mut spec = samverka::demo::pki_spec();
    spec.adapters
        .push(("employment-b".into(), org("2021999079")));
    let pki = write_dev_pki(&dir.path().join("certs"), &spec)?;

    // The adapters, each its own process, and the gateway's routes to them.
    let (mut procs, addresses) = start_sources(&bin, &pki, 0)?;
    let (demo_adapters, extra) = routes(&addresses);
    let (gateway, gateway_address) =
        start_demo_gateway(&bin, dir.path(), "gateway", &pki, &demo_adapters, &extra)?;
    let gateway_pid = gateway.0.id();
    // For the fan-out with register latency, and the audit's cost behind
    // such sources: the three sources again, each answering after
    // `register_latency_ms`, behind a gateway of their own (and one without
    // audit writes).
    let slow_sources = if args.register_latency_ms > 0
        && (!args.no_fan_out || args.unaudited_samverka.is_some())
    {
        let (slow_procs, slow) = start_sources(&bin, &pki, args.register_latency_ms)?;
        procs.extend(slow_procs);
        Some(routes(&slow))
    } else {
        None
    };
    let registers = match &slow_sources {
        Some((adapters, extra)) => Some(start_demo_gateway(
            &bin,
            dir.path(),
            "gateway-registers",
            &pki,
            adapters,
            extra,
        )?),
        None => None,
    };
    // The same gateways without audit writes, each on its own store.
    let mut unaudited = Vec::new();
    if let Some(path) = &args.unaudited_samverka {
        unaudited.push((
            "no-audit",
            start_demo_gateway(path, dir.path(), "unaudited", &pki, &demo_adapters, &extra)?,
        ));
        if let Some((adapters, extra)) = &slow_sources {
            unaudited.push((
                "slow-none",
                start_demo_gateway(
                    path,
                    dir.path(),
                    "unaudited-registers",
                    &pki,
                    adapters,
                    extra,
                )?,
            ));
        }
    }

    // The same gateway on PostgreSQL.
    let on_postgres = match &args.postgres_url {
        Some(url) => Some(samverka_bench::start_demo_gateway_on(
            &bin,
            dir.path(),
            "gateway-pg",
            &pki,
            &demo_adapters,
            url,
            &extra,
        )?),
        None => None,
    };

    // The same gateway with telemetry on, sampling none and all traces.
    let (spans_received, otlp) = samverka_bench::start_otlp_receiver().await?;
    let mut traced = Vec::new();
    if args.telemetry {
        for (name, ratio) in [("otel-0", 0.0), ("otel-100", 1.0)] {
            let extra = format!(
                "{extra}\n[telemetry]\notlp_endpoint = \"http://{otlp}\"\nsampling_ratio = {ratio:.1}\n"
            );
            traced.push((
                name,
                start_demo_gateway(&bin, dir.path(), name, &pki, &demo_adapters, &extra)?,
            ));
        }
    }

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
    };
    let read = |types: &[&str], sources: &[&str]| GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: "study_guidance".into(),
        source_agencies: sources.iter().map(|s| s.to_string()).collect(),
    };
    async fn channels(
        address: SocketAddr,
        tls: &AgencyTls,
        n: usize,
    ) -> Result<Vec<Channel>, BoxError> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(connect(&address.to_string(), "localhost", tls).await?);
        }
        Ok(v)
    }
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
    let registers_clients = match &registers {
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
    let mut results: BTreeMap<(usize, String), Outcome> = BTreeMap::new();
    for round in 0..args.rounds {
        for &c in &args.concurrency {
            for (name, t) in &targets {
                eprintln!("round {} concurrency {c}: {name}", round + 1);
                run(t, c, &args, results.entry((c, name.clone())).or_default()).await;
            }
        }
    }

    println!();
    println!(
        "{:<10} {:>5} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}  errors",
        "scenario", "conc", "req/s", "x direct", "p50 us", "p99 us", "p99.9 us", "+p50 us"
    );
    for &c in &args.concurrency {
        let direct = results
            .get(&(c, "direct".into()))
            .map(|o| median(&o.rps))
            .unwrap_or(0.0);
        let direct_p50 = results
            .get(&(c, "direct".into()))
            .and_then(|o| o.latency.as_ref())
            .map_or(0, |h| h.value_at_quantile(0.5));
        for (name, _) in &targets {
            let Some(o) = results.get(&(c, name.clone())) else {
                continue;
            };
            let Some(h) = &o.latency else {
                println!("{name:<10} {c:>5} no answers  {}", o.errors_text());
                continue;
            };
            let rps = median(&o.rps);
            println!(
                "{:<10} {:>5} {:>9.0} {:>8} {:>8} {:>8} {:>9} {:>9}  {}",
                name,
                c,
                rps,
                if direct > 0.0 {
                    format!("{:.2}", rps / direct)
                } else {
                    "-".to_owned()
                },
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.value_at_quantile(0.5) as i64 - direct_p50 as i64,
                o.errors_text()
            );
        }
    }
    if args.telemetry {
        println!();
        println!("telemetry on, throughput against the same gateway with telemetry off:");
        for &c in &args.concurrency {
            let rps = |name: &str| results.get(&(c, name.to_owned())).map(|o| median(&o.rps));
            if let (Some(off), Some(none), Some(all)) =
                (rps("gateway"), rps("otel-0"), rps("otel-100"))
            {
                println!(
                    "  concurrency {c}: sampling 0 %: {:.2}x, sampling 100 %: {:.2}x",
                    none / off,
                    all / off
                );
            }
        }
    }
    if !unaudited.is_empty() {
        println!();
        println!("durable audit, throughput against the same gateway without audit writes:");
        for &c in &args.concurrency {
            let rounds = |name: &str| results.get(&(c, name.to_owned())).map(|o| &o.rps);
            // The ratio of the medians, and the range of the ratios within
            // one round (the two ran one after the other): how much of a
            // difference this machine's noise can make.
            let ratio = |audited: &str, none: &str| {
                let (a, n) = rounds(audited).zip(rounds(none))?;
                let per_round: Vec<f64> = a.iter().zip(n).map(|(a, n)| a / n).collect();
                let (low, high) = per_round
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
                Some(format!(
                    "{:.2}x (rounds {low:.2}-{high:.2})",
                    median(a) / median(n)
                ))
            };
            let slow = ratio("slow-audit", "slow-none").map_or(String::new(), |r| {
                format!(", sources answering in {} ms {r}", args.register_latency_ms)
            });
            println!(
                "  concurrency {c}: sources answering at once {}{slow}",
                ratio("gateway", "no-audit").as_deref().unwrap_or("-"),
            );
        }
        // Throughput as capacity: each build at the load where it does
        // best, which a fixed number in flight need not be.
        let peak = |name: &str| {
            args.concurrency
                .iter()
                .filter_map(|&c| Some((median(&results.get(&(c, name.to_owned()))?.rps), c)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
        };
        if args.concurrency.len() > 1
            && let (Some((a, ca)), Some((n, cn))) = (peak("gateway"), peak("no-audit"))
        {
            println!(
                "  highest of these: {a:.0} req/s (at {ca}) against {n:.0} req/s (at {cn}), sources answering at once {:.2}x",
                a / n
            );
        }
    }
    if let Some(rss) = peak_rss_mib(gateway_pid) {
        println!("gateway peak RSS: {rss:.1} MiB");
    }

    if !args.no_fan_out {
        let cases: Vec<(&str, GetRecordsRequest)> = vec![
            (
                "fan-out (3 sources)",
                read(&["education.course_result", "employment.period"], &[]),
            ),
            (
                "higher-education alone",
                read(&["education.course_result"], &[]),
            ),
            (
                "employment alone",
                read(&["employment.period"], &["2021999053"]),
            ),
            (
                "employment-b alone",
                read(&["employment.period"], &["2021999079"]),
            ),
        ];
        let mut setups = vec![("sources answering at once".to_owned(), gateway_clients())];
        if let Some(clients) = &registers_clients {
            setups.push((
                format!("sources answering in {} ms", args.register_latency_ms),
                clients.clone(),
            ));
        }
        // Per setup, per concurrency, per case.
        let mut fan: Vec<Vec<Vec<Outcome>>> = setups
            .iter()
            .map(|_| {
                args.concurrency
                    .iter()
                    .map(|_| cases.iter().map(|_| Outcome::default()).collect())
                    .collect()
            })
            .collect();
        for round in 1..=args.rounds {
            for (s, (setup, clients)) in setups.iter().enumerate() {
                for (c, &concurrency) in args.concurrency.iter().enumerate() {
                    eprintln!("round {round} concurrency {concurrency}: fan-out, {setup}");
                    for (i, (_, req)) in cases.iter().enumerate() {
                        run(
                            &Target::Gateway(clients.clone(), req.clone(), demo_person.clone()),
                            concurrency,
                            &args,
                            &mut fan[s][c][i],
                        )
                        .await;
                    }
                }
            }
        }
        let p50 = |o: &Outcome| o.latency.as_ref().map_or(0, |h| h.value_at_quantile(0.5));
        for ((setup, _), fan) in setups.iter().zip(&fan) {
            for (c, &concurrency) in args.concurrency.iter().enumerate() {
                println!();
                println!("fan-out through the gateway, {setup}, concurrency {concurrency}:");
                for ((name, _), o) in cases.iter().zip(&fan[c]) {
                    println!(
                        "  {:<24} p50 {:>6} us  {:>7.0} req/s  errors {}",
                        name,
                        p50(o),
                        median(&o.rps),
                        o.errors_text()
                    );
                }
                let slowest = fan[c][1..].iter().map(p50).max().unwrap_or(1).max(1);
                println!(
                    "  fan-out / slowest single source (p50): {:.2}",
                    p50(&fan[c][0]) as f64 / slowest as f64
                );
            }
        }
    }
    drop(proxies);
    if args.telemetry {
        println!(
            "spans received by the OTLP receiver: {}",
            spans_received.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    drop(traced);
    drop(unaudited);
    drop(gateway);
    drop(procs);
    Ok(())
}
