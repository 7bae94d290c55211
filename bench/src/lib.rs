//! What the benchmark programs share: samverka processes started and
//! stopped around a measurement.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use samverka_certs::dev::DevPkiFiles;

/// Any error, for a program that reports it and exits.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and returns it with the first stdout/stderr line that
/// contains `marker`.
pub fn start(mut cmd: Command, marker: &'static str) -> Result<(Proc, String), BoxError> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains(marker) {
                    let _ = tx.send(line);
                }
            }
        });
    }
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| format!("{cmd:?} did not start"))?;
    Ok((Proc(child), line))
}

/// The socket address after `key` in `line`.
pub fn after(line: &str, key: &str) -> Result<SocketAddr, BoxError> {
    let rest = line.split(key).nth(1).ok_or("no address in line")?;
    Ok(rest.split_whitespace().next().unwrap_or_default().parse()?)
}

/// Starts `samverka adapter run KIND` (`bin` is the samverka binary) as
/// the PKI's adapter `name`, serving for `agency`, answering every request
/// `latency_ms` late; returns it with its address.
pub fn start_adapter(
    bin: &Path,
    pki: &DevPkiFiles,
    name: &str,
    kind: &str,
    agency: &str,
    latency_ms: u64,
) -> Result<(Proc, SocketAddr), BoxError> {
    let (_, cert, key) = pki
        .adapters
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| format!("no adapter {name} in the PKI"))?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "adapter",
        "run",
        kind,
        "--listen",
        "127.0.0.1:0",
        "--agency",
        agency,
        "--latency-ms",
        &latency_ms.to_string(),
    ])
    .arg("--cert")
    .arg(cert)
    .arg("--key")
    .arg(key)
    .arg("--ca")
    .arg(&pki.ca_cert);
    let (proc, line) = start(cmd, "serving on")?;
    Ok((proc, after(&line, "serving on ")?))
}

/// Starts `samverka serve --config CONFIG` with `bin`; returns it with its
/// gRPC address.
pub fn start_gateway(bin: &Path, config: &Path) -> Result<(Proc, SocketAddr), BoxError> {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,samverka_gateway::server=info");
    let (proc, line) = start(cmd, "address=")?;
    Ok((proc, after(&line, "address=")?))
}

/// The samverka binary: `explicit`, or the one next to this program.
pub fn samverka_binary(explicit: Option<&Path>) -> Result<std::path::PathBuf, BoxError> {
    let bin = match explicit {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()?.with_file_name("samverka"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: cargo build --release -p samverka",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// An OTLP/gRPC trace receiver on a loopback port that counts the spans it
/// receives: the live end of the benchmarks' trace export.
pub async fn start_otlp_receiver()
-> Result<(std::sync::Arc<std::sync::atomic::AtomicU64>, SocketAddr), BoxError> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(Arc<AtomicU64>);

    #[tonic::async_trait]
    impl TraceService for Counter {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let spans: usize = request
                .into_inner()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.0.fetch_add(spans as u64, Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let count = Arc::new(AtomicU64::new(0));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Counter(count.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Ok((count, address))
}

/// Writes `DIR/NAME.toml`, the demo's configuration for `adapters` with its
/// own SQLite store `DIR/NAME.db` and `extra` appended, and starts
/// `samverka serve` on it; returns the process and its gRPC address.
pub fn start_demo_gateway(
    bin: &Path,
    dir: &Path,
    name: &str,
    pki: &DevPkiFiles,
    adapters: &[(String, SocketAddr)],
    extra: &str,
) -> Result<(Proc, SocketAddr), BoxError> {
    let store = dir.join(format!("{name}.db")).display().to_string();
    start_demo_gateway_on(bin, dir, name, pki, adapters, &store, extra)
}

/// Like [`start_demo_gateway`], with the store at `store` (a SQLite path
/// or a `postgresql://` URL).
pub fn start_demo_gateway_on(
    bin: &Path,
    dir: &Path,
    name: &str,
    pki: &DevPkiFiles,
    adapters: &[(String, SocketAddr)],
    store: &str,
    extra: &str,
) -> Result<(Proc, SocketAddr), BoxError> {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        samverka::cli::demo::demo_config(pki, "127.0.0.1:0", "127.0.0.1:0", adapters, store, extra),
    )?;
    start_gateway(bin, &config)
}

/// The TLS material of the demo agency `name` in `pki`.
pub fn agency_tls(
    pki: &DevPkiFiles,
    name: &str,
) -> Result<samverka_gateway::net::client::AgencyTls, BoxError> {
    let (_, cert, key) = pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| format!("no agency {name} in the PKI"))?;
    Ok(samverka_gateway::net::client::AgencyTls::from_files(
        &pki.ca_cert,
        cert,
        key,
    )?)
}

/// Records, as the demo registrar, the reader's consent to read
/// `record_types` of the demo person for study guidance, for a day,
/// through the gateway at `address`.
pub async fn grant_reader_consent(
    address: SocketAddr,
    pki: &DevPkiFiles,
    record_types: &[&str],
) -> Result<(), BoxError> {
    grant_reader_consents(
        address,
        pki,
        record_types,
        &[samverka::cli::demo::DEMO_SUBJECT.to_owned()],
    )
    .await
}

/// Like [`grant_reader_consent`], for each of `subjects`, 32 grants in
/// flight at a time over one connection.
pub async fn grant_reader_consents(
    address: SocketAddr,
    pki: &DevPkiFiles,
    record_types: &[&str],
    subjects: &[String],
) -> Result<(), BoxError> {
    use samverka::cli::demo::{DEMO_PURPOSE, READER_AGENCY};
    use samverka_proto::v1::consents_client::ConsentsClient;
    let now = samverka_gateway::time::system_now_ms();
    let channel = samverka_gateway::net::client::connect(
        &address.to_string(),
        "localhost",
        &agency_tls(pki, "registrar")?,
    )
    .await?;
    let client = ConsentsClient::new(channel);
    // Each grant carries a fresh person assertion of the demo registrar
    // for the person it is about, who has just logged in.
    let mut login = samverka::cli::demo::DemoLogin::new(
        pki,
        "registrar",
        samverka::cli::demo::DEMO_SUBJECT,
        samverka_gateway::Clock::system(),
    )?;
    for chunk in subjects.chunks(32) {
        let mut grants = tokio::task::JoinSet::new();
        for subject in chunk {
            let mut client = client.clone();
            login.login.person = subject.clone();
            let request = login.seal(samverka_proto::v1::GrantConsentRequest {
                subject_id: subject.clone(),
                grantee_agency: READER_AGENCY.into(),
                record_types: record_types.iter().map(|t| t.to_string()).collect(),
                purpose: DEMO_PURPOSE.into(),
                valid_until: Some(samverka_gateway::time::to_timestamp(now + 24 * 3600 * 1000)),
                request_id: format!("bench-{now}-{subject}"),
                ..Default::default()
            });
            grants.spawn(async move { client.grant(request).await });
        }
        while let Some(done) = grants.join_next().await {
            done??;
        }
    }
    Ok(())
}

/// A synthetic personal identity number with a valid check digit; person
/// `i` is born `i / 1000` days after 1950-01-01 with serial `i % 1000`.
pub fn synthetic_subject(i: usize) -> String {
    let start = time::Date::from_calendar_date(1950, time::Month::January, 1).expect("valid date");
    let born = start + time::Duration::days((i / 1000) as i64);
    let digits = format!(
        "{:04}{:02}{:02}{:03}",
        born.year(),
        born.month() as u8,
        born.day(),
        i % 1000
    );
    samverka_certs::SubjectId::with_check_digit(&digits)
        .expect("a real date")
        .as_str()
        .to_owned()
}

/// Runs `sql` on the PostgreSQL server of `url` (to create or drop a
/// benchmark's scratch database).
pub async fn postgres_admin(url: &str, sql: &str) -> Result<(), BoxError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Makes database `name` afresh on the server of `url` (dropped first,
/// even with sessions still open): a benchmark's scratch database, so that
/// nothing a previous run left changes what this one measures. Returns its
/// URL.
pub async fn fresh_database(url: &str, name: &str) -> Result<String, BoxError> {
    postgres_admin(url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    postgres_admin(url, &format!("CREATE DATABASE {name}")).await?;
    Ok(database_url(url, name))
}

/// The URL of database `name` on the server of `url`.
pub fn database_url(url: &str, name: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    match base.rfind('/') {
        Some(i) if i > "postgresql://".len() => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    }
}
