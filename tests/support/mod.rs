//! Shared set-up for the end-to-end tests: a real demo network (dev PKI,
//! SQLite file, the reference adapters and a gateway on 127.0.0.1:0, real mTLS) in a
//! temporary directory, and small helpers to call it.

#![allow(dead_code, unreachable_pub)]

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, Network, READER_AGENCY};
use samverka_gateway::Clock;
use samverka_gateway::time::to_timestamp;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{GetRecordsRequest, GrantConsentRequest};
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub mod audit;
pub mod browser;
pub mod clients;
pub mod independent;
pub mod postgres;
pub mod process;
pub mod revocation;
pub mod store;

pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// Runs the `samverka` binary with `args` and waits for it.
pub fn samverka_run<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_samverka"))
        .args(args)
        .output()
        .unwrap()
}

/// The process exited with `code` and printed `needle`.
pub fn expect(out: &std::process::Output, code: i32, needle: &str) {
    let text = printed(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(text.contains(needle), "{needle:?} in {text}");
}

/// What a process printed: its standard output, then its errors.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The demo network's higher-education source agency.
pub const HE: &str = samverka_adapter_higher_education::DEMO_AGENCY;
/// The demo network's employment source agency.
pub const EMP: &str = samverka_adapter_employment::DEMO_AGENCY;

/// A running network and the directory it lives in (removed on drop).
pub struct TestNet {
    pub net: Network,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for TestNet {
    type Target = Network;
    fn deref(&self) -> &Network {
        &self.net
    }
}

impl std::ops::DerefMut for TestNet {
    fn deref_mut(&mut self) -> &mut Network {
        &mut self.net
    }
}

pub async fn start() -> TestNet {
    start_with_clock(Clock::system()).await
}

pub async fn start_with_clock(clock: Clock) -> TestNet {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(dir.path(), clock).await.unwrap();
    TestNet { net, dir }
}

pub async fn exchange(net: &Network, agency: &str) -> RecordExchangeClient<Channel> {
    RecordExchangeClient::new(net.channel(agency).await.unwrap())
}

pub async fn consents(net: &Network, agency: &str) -> ConsentsClient<Channel> {
    ConsentsClient::new(net.channel(agency).await.unwrap())
}

/// `req` with a fresh person assertion from demo registrar `registrar`
/// (`registrar`, or `outsider`, the second one), for the person it names
/// (the demo person, for a request that names none), whose login is now.
pub fn sealed<R: samverka_proto::terms::PersonBound>(net: &Network, registrar: &str, req: R) -> R {
    let person = req.person().unwrap_or(DEMO_SUBJECT).to_owned();
    net.login(registrar, &person).seal(req)
}

/// Like [`sealed`], for a gateway that runs apart from the test (its own
/// process, on the system clock) with the demo PKI `pki`.
pub fn sealed_pki<R: samverka_proto::terms::PersonBound>(
    pki: &samverka_certs::dev::DevPkiFiles,
    registrar: &str,
    req: R,
) -> R {
    let person = req.person().unwrap_or(DEMO_SUBJECT).to_owned();
    samverka::cli::demo::DemoLogin::new(pki, registrar, &person, Clock::system())
        .unwrap()
        .seal(req)
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A grant for the reader agency and the demo person, valid for 30 days
/// from the gateway's clock.
pub fn grant_request(
    net: &Network,
    purpose: &str,
    record_types: &[&str],
    request_id: &str,
) -> GrantConsentRequest {
    let now = net.gateway.clock.now_ms();
    GrantConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: READER_AGENCY.into(),
        record_types: strings(record_types),
        purpose: purpose.into(),
        source_agencies: vec![],
        valid_from: None,
        valid_until: Some(to_timestamp(now + 30 * DAY_MS)),
        evidence_ref: "test-evidence".into(),
        request_id: request_id.into(),
        person_assertion: String::new(),
    }
}

/// Grants as the registrar and returns the consent id.
pub async fn grant(net: &Network, purpose: &str, record_types: &[&str]) -> String {
    let request_id = uuid::Uuid::new_v4().to_string();
    let receipt = consents(net, "registrar")
        .await
        .grant(sealed(
            net,
            "registrar",
            grant_request(net, purpose, record_types, &request_id),
        ))
        .await
        .unwrap()
        .into_inner();
    receipt.consent.unwrap().consent_id
}

/// The demo consent: the reader may read course results and employment
/// periods of the demo person for study guidance. Returns its id.
pub async fn grant_demo_consent(net: &Network) -> String {
    grant(net, DEMO_PURPOSE, &samverka::cli::demo::DEMO_RECORD_TYPES).await
}

/// The demo person's competence passport, as the reader asks for it
/// under the demo purpose.
pub async fn demo_passport(net: &Network) -> samverka_proto::v1::CompetencePassport {
    exchange(net, "reader")
        .await
        .get_competence_passport(samverka_proto::v1::GetCompetencePassportRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn read_request(subject: &str, record_types: &[&str], purpose: &str) -> GetRecordsRequest {
    GetRecordsRequest {
        subject_id: subject.into(),
        record_types: strings(record_types),
        purpose: purpose.into(),
        ..Default::default()
    }
}

pub fn demo_read() -> GetRecordsRequest {
    read_request(
        DEMO_SUBJECT,
        &["education.course_result", "employment.period"],
        DEMO_PURPOSE,
    )
}

/// The ErrorInfo reason of a status, checking its domain.
pub fn reason(status: &tonic::Status) -> String {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "samverka");
    info.reason
}

/// The audit id a refusal names.
pub fn audit_id(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .and_then(|i| i.metadata.get("audit_id").cloned())
        .unwrap_or_else(|| panic!("no audit id in {status:?}"))
}

/// A plain HTTP GET on the admin listener: status code and body.
pub async fn admin_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample of `metric` whose labels include all of `labels`.
pub fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// [`demo_read`] sent with a W3C `traceparent` naming `trace_id` and the
/// caller's span `parent_id`, sampled or not.
pub fn traced_read(
    trace_id: &str,
    parent_id: &str,
    sampled: bool,
) -> tonic::Request<GetRecordsRequest> {
    let mut request = tonic::Request::new(demo_read());
    let flags = if sampled { "01" } else { "00" };
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-{flags}")
            .parse()
            .unwrap(),
    );
    request
}

/// The audit trail's entries of reads (`RecordExchange` calls), without
/// the consent actions and access-log reads around them.
pub async fn read_entries(
    store: &samverka_gateway::store::Store,
) -> Vec<samverka_gateway::audit::AuditEntry> {
    store
        .audit_entries(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.method.starts_with("RecordExchange/"))
        .collect()
}

/// Serves `adapter` (a raw `Adapter` service, for adapters that misbehave
/// in ways the SDK would not let them) over TLS with the certificate of
/// the demo adapter `name`, on a loopback port; its address.
pub async fn serve_test_adapter<A>(
    pki: &samverka_certs::dev::DevPkiFiles,
    name: &str,
    adapter: A,
) -> std::net::SocketAddr
where
    A: samverka_proto::adapter::v1::adapter_server::Adapter,
{
    use tonic::transport::{Identity, Server, ServerTlsConfig};
    let (_, cert, key) = pki
        .adapters
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no demo adapter named {name}"));
    let identity = Identity::from_pem(
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))
        .unwrap()
        .add_service(samverka_proto::adapter::v1::adapter_server::AdapterServer::new(adapter))
        .serve_with_incoming(samverka_adapter::incoming(listener));
    tokio::spawn(server);
    address
}
