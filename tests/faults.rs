//! Broken sources behind a `samverka serve` process: one answers garbage
//! bytes instead of HTTP/2, one leaks another person's records and a type
//! not asked for, one is too slow for the caller's deadline, one resets
//! every stream. Each gets its own outcome within the deadline, the caller
//! gets no one else's data, and the audit entry records every source's
//! outcome.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, pki_spec};
use samverka_certs::dev::DevPkiFiles;
use samverka_proto::adapter::v1::adapter_server::Adapter;
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse,
};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{Degree, EmploymentPeriod, Record, ValidatedCompetence};
use samverka_proto::v1::source_outcome::Status as Outcome;
use support::process::{audit_entry, start_gateway};
use support::*;
use tonic::{Request, Response, Status};

fn adapter_files(pki: &DevPkiFiles, name: &str) -> (String, String) {
    let (_, cert, key) = pki.adapters.iter().find(|(n, _, _)| n == name).unwrap();
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

/// A TLS acceptor with the adapter `name`'s certificate (no client
/// certificate asked for), offering h2.
fn acceptor(pki: &DevPkiFiles, name: &str) -> tokio_rustls::TlsAcceptor {
    let (cert, key) = adapter_files(pki, name);
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(samverka_adapter::crypto_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A TLS server with the adapter `name`'s certificate on a loopback port
/// that hands every established connection to `handle`.
async fn serve_tls<F, Fut>(pki: &DevPkiFiles, name: &str, handle: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = acceptor(pki, name);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, handle) = (acceptor.clone(), handle.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    handle(tls).await;
                }
            });
        }
    });
    address
}

/// A TLS server with the adapter's certificate that answers every
/// connection with bytes that are not HTTP/2.
async fn serve_garbage(pki: &DevPkiFiles, name: &str) -> SocketAddr {
    serve_tls(pki, name, |mut tls| async move {
        use tokio::io::AsyncWriteExt;
        let _ = tls
            .write_all(b"\x00\x00\x12\x04garbage, not a settings frame\xff\xfe")
            .await;
        let _ = tls.shutdown().await;
    })
    .await
}

#[derive(Clone, Copy)]
enum Flaw {
    /// Returns the asked-for record, one of another person, and one of a
    /// type not asked for.
    Leaks,
    /// Answers after three seconds.
    Slow,
}

struct Broken {
    flaw: Flaw,
    agency: &'static str,
    record_type: &'static str,
}

fn record(subject: &str, record_type: &str, id: &str) -> Record {
    let payload = match record_type {
        "employment.period" => Payload::EmploymentPeriod(EmploymentPeriod {
            employer_name: "Exempelbolaget AB".into(),
            ..Default::default()
        }),
        "competence.validated" => Payload::ValidatedCompetence(ValidatedCompetence {
            competence_area: "Svetsning".into(),
            ..Default::default()
        }),
        _ => Payload::Degree(Degree {
            title: "Kandidatexamen".into(),
            ..Default::default()
        }),
    };
    Record {
        record_type: record_type.into(),
        subject_id: subject.into(),
        record_id: id.into(),
        payload: Some(payload),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Adapter for Broken {
    async fn describe(
        &self,
        _: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        Ok(Response::new(AdapterDescription {
            agency_id: self.agency.into(),
            name: "broken on purpose".into(),
            record_types: vec![self.record_type.into()],
            sdk_version: String::new(),
        }))
    }

    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        let subject = request.into_inner().subject_id;
        let records = match self.flaw {
            Flaw::Leaks => vec![
                record(&subject, self.record_type, "own-1"),
                record(OTHER_SUBJECT, self.record_type, "someone-else-1"),
                record(&subject, "education.degree", "not-asked-1"),
            ],
            Flaw::Slow => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                vec![record(&subject, self.record_type, "late-1")]
            }
        };
        Ok(Response::new(FetchRecordsResponse {
            records,
            ..Default::default()
        }))
    }
}

async fn serve_broken(pki: &DevPkiFiles, name: &str, adapter: Broken) -> SocketAddr {
    serve_test_adapter(pki, name, adapter).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_sources_get_their_own_outcomes_and_leak_nothing() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = vec![
        (
            "higher-education".to_owned(),
            serve_garbage(&pki, "higher-education").await,
        ),
        (
            "employment".to_owned(),
            serve_broken(
                &pki,
                "employment",
                Broken {
                    flaw: Flaw::Leaks,
                    agency: samverka_adapter_employment::DEMO_AGENCY,
                    record_type: "employment.period",
                },
            )
            .await,
        ),
        (
            "competence".to_owned(),
            serve_broken(
                &pki,
                "competence",
                Broken {
                    flaw: Flaw::Slow,
                    agency: samverka_adapter_competence::DEMO_AGENCY,
                    record_type: "competence.validated",
                },
            )
            .await,
        ),
    ];
    let gateway = start_gateway(dir.path(), &pki, &adapters, "", &[]);
    let types = [
        "education.course_result",
        "employment.period",
        "competence.validated",
    ];
    gateway.grant(&pki, &types, "faults-test").await;
    let mut reader = gateway.reader(&pki).await;

    let mut request = Request::new(read_request(DEMO_SUBJECT, &types, DEMO_PURPOSE));
    request.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let answer = reader.get_records(request).await.unwrap().into_inner();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );

    let outcome = |name: &str| {
        let o = answer
            .outcomes
            .iter()
            .find(|o| o.source_name == name)
            .unwrap_or_else(|| panic!("no outcome for {name}"));
        (Outcome::try_from(o.status).unwrap(), o.record_count)
    };
    // Garbage: the connection fails, and the channel may retry it until
    // the deadline; either way no records and an outcome that says so.
    let garbage = outcome("higher-education");
    assert!(
        matches!(
            garbage,
            (Outcome::Unavailable, 0) | (Outcome::DeadlineExceeded, 0)
        ),
        "{garbage:?}"
    );
    assert_eq!(outcome("employment"), (Outcome::InvalidResponse, 1));
    assert_eq!(outcome("competence"), (Outcome::DeadlineExceeded, 0));

    // Only the person's own record of the asked-for type reached the caller.
    assert_eq!(answer.records.len(), 1, "{:?}", answer.records);
    let r = &answer.records[0];
    assert_eq!(
        (
            r.subject_id.as_str(),
            r.record_type.as_str(),
            r.record_id.as_str()
        ),
        (DEMO_SUBJECT, "employment.period", "own-1")
    );

    // The audit entry records each source's outcome.
    let entry = audit_entry(dir.path(), DEMO_SUBJECT, &answer.audit_id).await;
    let sources = entry.sources.join(" ");
    for expected in [
        format!(
            "{}={}",
            samverka_adapter_higher_education::DEMO_AGENCY,
            garbage.0.as_str_name()
        ),
        format!(
            "{}=INVALID_RESPONSE",
            samverka_adapter_employment::DEMO_AGENCY
        ),
        format!(
            "{}=DEADLINE_EXCEEDED",
            samverka_adapter_competence::DEMO_AGENCY
        ),
    ] {
        assert!(sources.contains(&expected), "{expected} not in {sources}");
    }
}

/// A TLS + HTTP/2 server with the adapter's certificate that resets every
/// stream it is sent (RST_STREAM), as a crashing proxy in front of a
/// register might.
async fn serve_resets(pki: &DevPkiFiles, name: &str) -> SocketAddr {
    serve_tls(pki, name, |tls| async move {
        // A service that fails: hyper resets the stream.
        let service = hyper::service::service_fn(|_request| async {
            Err::<hyper::Response<http_body_util::Empty<hyper::body::Bytes>>, _>(
                std::io::Error::other("reset"),
            )
        });
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
            .await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_resets_its_streams_is_unavailable_and_the_other_answers() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let mut adapters = support::process::spawn_adapters(&pki).await;
    for (name, address) in adapters.iter_mut() {
        if name == "employment" {
            *address = serve_resets(&pki, "employment").await;
        }
    }
    let gateway = start_gateway(dir.path(), &pki, &adapters, "", &[]);
    gateway
        .grant(&pki, &samverka::cli::demo::DEMO_RECORD_TYPES, "resets-test")
        .await;
    let mut reader = gateway.reader(&pki).await;
    for _ in 0..3 {
        let answer = reader.get_records(demo_read()).await.unwrap().into_inner();
        let employment = answer
            .outcomes
            .iter()
            .find(|o| o.source_name == "employment")
            .unwrap();
        assert_eq!(
            Outcome::try_from(employment.status).unwrap(),
            Outcome::Unavailable,
            "{employment:?}"
        );
        // The university's records still come.
        assert_eq!(answer.records.len(), 3, "{:?}", answer.records);
        assert!(
            answer
                .records
                .iter()
                .all(|r| r.source_agency == samverka_adapter_higher_education::DEMO_AGENCY)
        );
    }
}
