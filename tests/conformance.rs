//! End to end: the conformance kit passes against every reference adapter
//! and fails, naming the right check, against adapters broken on purpose
//! (built here straight on the generated gRPC service, without the SDK's
//! safeguards).

mod support;

use std::net::SocketAddr;
use std::process::Command;

use samverka::cli::demo::{DEMO_SUBJECT, OTHER_SUBJECT};
use samverka_adapter::conformance::{CheckResult, KitConfig, run_checks};
use samverka_proto::adapter::v1::adapter_server::{Adapter, AdapterServer};
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse,
};
use samverka_proto::records::v1::{Degree, EmploymentPeriod, Record, record::Payload};
use support::*;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

fn kit(net: &TestNet, address: SocketAddr) -> KitConfig {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let (_, agency_cert, agency_key) = net
        .pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == "reader")
        .unwrap();
    KitConfig {
        address: address.to_string(),
        server_name: "localhost".into(),
        ca_pem: read(&net.pki.ca_cert),
        gateway_cert_pem: read(&net.pki.gateway_client.0),
        gateway_key_pem: read(&net.pki.gateway_client.1),
        other_identity: Some((read(agency_cert), read(agency_key))),
        known_subject: DEMO_SUBJECT.into(),
        unknown_subject: "197001010011".into(),
    }
}

fn failed(results: &[CheckResult]) -> Vec<&'static str> {
    results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_adapter_passes() {
    let net = start().await;
    for (name, address) in &net.adapters {
        let results = run_checks(&kit(&net, *address)).await;
        assert_eq!(results.len(), 11);
        assert!(failed(&results).is_empty(), "{name}: {results:#?}");
    }
}

#[derive(Clone, Copy)]
enum Flaw {
    /// Returns the records of another person too.
    LeaksOtherSubjects,
    /// Answers NOT_FOUND for a person it does not know.
    ErrorsOnUnknownSubject,
    /// Correct answers, but accepts any client (no client certificate
    /// required).
    AcceptsAnyCaller,
    /// Correct answers, two seconds late whatever the caller's deadline.
    IgnoresDeadlines,
    /// Employment periods carrying a degree.
    WrongPayloadMessage,
    /// Employment periods in `other`, under a degree's type URL.
    ForeignTypeUrl,
    /// Employment periods in `other`, under their own type URL, with bytes
    /// that are no protobuf message.
    UndecodableOther,
}

struct Broken(Flaw);

impl Broken {
    /// Every flaw but `AcceptsAnyCaller` checks the caller like the SDK.
    fn require_gateway<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if matches!(self.0, Flaw::AcceptsAnyCaller) {
            return Ok(());
        }
        let certs = request.peer_certs();
        let id = certs
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|der| samverka_certs::CertIdentity::from_der(der).ok());
        match id {
            Some(id) if id.role == samverka_certs::Role::Gateway => Ok(()),
            _ => Err(Status::permission_denied("gateway only")),
        }
    }
}

fn period(subject: &str, id: &str) -> Record {
    Record {
        record_type: "employment.period".into(),
        subject_id: subject.into(),
        record_id: id.into(),
        payload: Some(Payload::EmploymentPeriod(EmploymentPeriod {
            employer_org_number: "5569990012".into(),
            ssyk_code: "2512".into(),
            extent_percent: 100,
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Adapter for Broken {
    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        self.require_gateway(&request)?;
        Ok(Response::new(AdapterDescription {
            agency_id: "2021999053".into(),
            name: "broken on purpose".into(),
            record_types: vec!["employment.period".into()],
            sdk_version: String::new(),
        }))
    }

    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        self.require_gateway(&request)?;
        let req = request.into_inner();
        if samverka_certs::SubjectId::parse(&req.subject_id).is_err() {
            return Err(Status::invalid_argument("subject_id"));
        }
        if req.record_types.iter().any(|t| t != "employment.period") {
            return Err(Status::invalid_argument("record_types"));
        }
        if matches!(self.0, Flaw::IgnoresDeadlines) {
            // A register call that blocks, as a synchronous driver without
            // a timeout would: nothing ends it at the deadline.
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        let known = req.subject_id == DEMO_SUBJECT;
        let mut records = Vec::new();
        match self.0 {
            Flaw::ErrorsOnUnknownSubject if !known => {
                return Err(Status::not_found("no such person"));
            }
            Flaw::LeaksOtherSubjects if known => {
                records.push(period(&req.subject_id, "p-1"));
                records.push(period(OTHER_SUBJECT, "p-2"));
            }
            _ if known => records.push(period(&req.subject_id, "p-1")),
            _ => {}
        }
        let other = |type_url: &str, value: &[u8]| {
            Payload::Other(prost_types::Any {
                type_url: type_url.into(),
                value: value.to_vec(),
            })
        };
        for r in &mut records {
            match self.0 {
                Flaw::WrongPayloadMessage => {
                    r.payload = Some(Payload::Degree(Degree {
                        title: "Kandidatexamen".into(),
                        ..Default::default()
                    }));
                }
                Flaw::ForeignTypeUrl => {
                    r.payload = Some(other(
                        "type.googleapis.com/samverka.records.v1.Degree",
                        b"\x0a\x0eKandidatexamen",
                    ));
                }
                Flaw::UndecodableOther => {
                    r.payload = Some(other(
                        "type.googleapis.com/samverka.records.v1.EmploymentPeriod",
                        b"\xff\xff\xff\xff",
                    ));
                }
                _ => {}
            }
        }
        Ok(Response::new(FetchRecordsResponse {
            records,
            ..Default::default()
        }))
    }
}

async fn serve_broken(net: &TestNet, flaw: Flaw) -> SocketAddr {
    let (_, cert, key) = net
        .pki
        .adapters
        .iter()
        .find(|(n, _, _)| n == "employment")
        .unwrap();
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    ));
    if !matches!(flaw, Flaw::AcceptsAnyCaller) {
        tls = tls.client_ca_root(Certificate::from_pem(
            std::fs::read_to_string(&net.pki.ca_cert).unwrap(),
        ));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(AdapterServer::new(Broken(flaw)))
        .serve_with_incoming(samverka_adapter::incoming(listener));
    tokio::spawn(server);
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_adapters_fail_the_right_checks() {
    let net = start().await;
    let leaky = serve_broken(&net, Flaw::LeaksOtherSubjects).await;
    assert_eq!(
        failed(&run_checks(&kit(&net, leaky)).await),
        ["known-subject", "other-subjects-never-returned"]
    );
    let strict = serve_broken(&net, Flaw::ErrorsOnUnknownSubject).await;
    assert_eq!(
        failed(&run_checks(&kit(&net, strict)).await),
        ["unknown-subject"]
    );
    let slow = serve_broken(&net, Flaw::IgnoresDeadlines).await;
    assert_eq!(failed(&run_checks(&kit(&net, slow)).await), ["deadline"]);
    for flaw in [
        Flaw::WrongPayloadMessage,
        Flaw::ForeignTypeUrl,
        Flaw::UndecodableOther,
    ] {
        let mismatched = serve_broken(&net, flaw).await;
        let results = run_checks(&kit(&net, mismatched)).await;
        assert_eq!(failed(&results), ["payload-matches-type"], "{results:#?}");
    }
    let open = serve_broken(&net, Flaw::AcceptsAnyCaller).await;
    assert_eq!(
        failed(&run_checks(&kit(&net, open)).await),
        ["non-gateway-refused", "no-client-certificate-refused"]
    );

    // The command line says the same, with exit code 1.
    let (_, agency_cert, agency_key) = net
        .pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == "reader")
        .unwrap();
    let run = |address: SocketAddr| {
        Command::new(BIN)
            .args(["adapter", "check", "--addr", &address.to_string(), "--ca"])
            .arg(&net.pki.ca_cert)
            .arg("--cert")
            .arg(&net.pki.gateway_client.0)
            .arg("--key")
            .arg(&net.pki.gateway_client.1)
            .arg("--other-cert")
            .arg(agency_cert)
            .arg("--other-key")
            .arg(agency_key)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking({
        let run = run(leaky);
        move || run
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL other-subjects-never-returned"),
        "{stdout}"
    );
    let (_, good) = net.adapters[0];
    let out = run(good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The Python example (grpcio, the repository's .proto files) passes the
/// same kit: the contract is language-neutral. Skipped, with the reason,
/// when Python's grpcio and grpcio-tools are not installed; `.ci/run`
/// installs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_adapter_passes() {
    let ready = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!(
            "SKIPPED: python3 with grpcio and grpcio-tools is not installed (pip install grpcio grpcio-tools)"
        );
        return;
    }
    let net = start().await;
    // An adapter certificate for the example's agency, from the demo CA.
    let ca = samverka_certs::dev::DevCa::from_pem(
        &std::fs::read_to_string(&net.pki.ca_cert).unwrap(),
        &std::fs::read_to_string(&net.pki.ca_key).unwrap(),
    )
    .unwrap();
    let org = samverka_certs::OrgNumber::parse("2021999095").unwrap();
    let issued = ca
        .issue(&samverka_certs::dev::CertRequest::new(
            org,
            samverka_certs::Role::Adapter,
            "python-example",
        ))
        .unwrap();
    let (cert, key) = (
        net.dir.path().join("python.pem"),
        net.dir.path().join("python.key"),
    );
    std::fs::write(&cert, issued.cert_pem).unwrap();
    std::fs::write(&key, issued.key_pem).unwrap();

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/python-example/adapter.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--ca")
        .arg(&net.pki.ca_cert)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let address: SocketAddr = line
        .rsplit("serving on ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    let results = run_checks(&kit(&net, address)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(failed(&results).is_empty(), "{results:#?}");
}

/// Adapters built on the SDK whose own code breaks a rule. The SDK drops
/// what may not leave, so nothing wrong reaches the kit; it still fails
/// them, from the SDK's `x-samverka-dropped` header, saying what the code
/// returned.
#[derive(Clone, Copy, Debug)]
enum CodeFlaw {
    /// Returns another person's record beside the person's own.
    OtherPerson,
    /// Returns degrees, a type it does not declare.
    UndeclaredType,
    /// Returns employment periods carrying a degree.
    WrongPayload,
    /// Returns the demo person's record whoever is asked about.
    IgnoresSubject,
}

struct Sloppy(CodeFlaw);

impl samverka_adapter::Adapter for Sloppy {
    fn describe(&self) -> samverka_adapter::Description {
        samverka_adapter::Description::new("2021999053", "sloppy on purpose", ["employment.period"])
    }

    async fn fetch_records(
        &self,
        query: samverka_adapter::FetchQuery,
    ) -> Result<Vec<Record>, samverka_adapter::AdapterError> {
        let subject = query.subject.as_str();
        let degree = || {
            Some(Payload::Degree(Degree {
                title: "Kandidatexamen".into(),
                ..Default::default()
            }))
        };
        Ok(match self.0 {
            _ if subject != DEMO_SUBJECT && !matches!(self.0, CodeFlaw::IgnoresSubject) => {
                Vec::new()
            }
            CodeFlaw::OtherPerson => vec![period(subject, "p-1"), period(OTHER_SUBJECT, "p-2")],
            CodeFlaw::UndeclaredType => vec![Record {
                record_type: "education.degree".into(),
                payload: degree(),
                ..period(subject, "d-1")
            }],
            CodeFlaw::WrongPayload => vec![Record {
                payload: degree(),
                ..period(subject, "p-1")
            }],
            CodeFlaw::IgnoresSubject => vec![period(DEMO_SUBJECT, "p-1")],
        })
    }
}

async fn serve_sloppy(net: &TestNet, flaw: CodeFlaw) -> SocketAddr {
    let (_, cert, key) = net
        .pki
        .adapters
        .iter()
        .find(|(n, _, _)| n == "employment")
        .unwrap();
    let tls = samverka_adapter::AdapterTls::from_files(cert, key, &net.pki.ca_cert).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(samverka_adapter::serve_with_listener(
        Sloppy(flaw),
        listener,
        tls,
        std::future::pending(),
    ));
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_reports_what_an_sdk_adapter_returned_and_the_sdk_dropped() {
    let net = start().await;
    let detail = |results: &[CheckResult], name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.detail.clone())
            .unwrap()
    };
    let cases: [(CodeFlaw, &[&str], &[&str]); 4] = [
        (
            CodeFlaw::OtherPerson,
            &["known-subject", "other-subjects-never-returned"],
            &["1 record about another person", "(other-person)"],
        ),
        (
            CodeFlaw::UndeclaredType,
            &["known-subject"],
            &["does not declare", "(undeclared-type)"],
        ),
        (
            CodeFlaw::WrongPayload,
            &["payload-matches-type"],
            &[
                "payload is not their record type's message",
                "(payload-mismatch)",
            ],
        ),
        (
            CodeFlaw::IgnoresSubject,
            &["unknown-subject"],
            &["should not know", "(other-person)"],
        ),
    ];
    for (flaw, failing, says) in cases {
        let address = serve_sloppy(&net, flaw).await;
        let results = run_checks(&kit(&net, address)).await;
        assert_eq!(failed(&results), failing, "{flaw:?}: {results:#?}");
        let first = detail(&results, failing[0]);
        for words in says {
            assert!(first.contains(words), "{flaw:?}: {first}");
        }
        assert!(first.contains("the SDK dropped them"), "{flaw:?}: {first}");
        assert!(
            !first.contains("give a person the register knows"),
            "{flaw:?}: {first}"
        );
    }
    let leaky = serve_sloppy(&net, CodeFlaw::OtherPerson).await;
    let results = run_checks(&kit(&net, leaky)).await;
    assert!(
        detail(&results, "other-subjects-never-returned")
            .contains("returned 1 record(s) about other people"),
        "{results:#?}"
    );

    // The command line says the same.
    let undeclared = serve_sloppy(&net, CodeFlaw::UndeclaredType).await;
    let (_, agency_cert, agency_key) = net
        .pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == "reader")
        .unwrap();
    let mut command = Command::new(BIN);
    command
        .args([
            "adapter",
            "check",
            "--addr",
            &undeclared.to_string(),
            "--ca",
        ])
        .arg(&net.pki.ca_cert)
        .arg("--cert")
        .arg(&net.pki.gateway_client.0)
        .arg("--key")
        .arg(&net.pki.gateway_client.1)
        .arg("--other-cert")
        .arg(agency_cert)
        .arg("--other-key")
        .arg(agency_key);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL known-subject"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("(undeclared-type)"), "{line}");
}
