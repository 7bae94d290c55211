//! The limits of `[limits]`. On a `samverka serve` process with small
//! limits: an answer larger than `max_response_bytes` is refused with
//! RESOURCE_EXHAUSTED; oversized metadata is refused while the
//! connection's other requests go on; connections are closed gracefully
//! after `max_connection_age_s` and clients reconnect. On a gateway in the
//! test process with a rate of one request a second, on a clock the test
//! moves: an agency over its rate is told when to retry, has its own
//! allowance, and reaches neither an adapter nor the audit trail; a
//! request larger than the limit is refused whole. On the demo network: a
//! request larger than `max_request_bytes` is refused by every method of
//! every service with RESOURCE_EXHAUSTED and MESSAGE_TOO_LARGE before it is
//! read, counted in the metrics, and neither audited nor sent on; one at
//! the limit is read.

mod support;

use std::time::Duration;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY, REGISTRAR_AGENCY, pki_spec};
use samverka_gateway::service::rpc::Method;
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    GetCompetencePassportRequest, GetConsentRequest, GrantConsentRequest, ListAccessEventsRequest,
    ListConsentsRequest, ListSourcesRequest, RevokeConsentRequest,
};
use support::process::{Replica, audit_entry, spawn_adapters, start_gateway};
use support::*;
use tonic::Code;
use tonic::codegen::{Bytes, Service, http};

/// The admin listener's address, from the gateway's start line.
fn admin_address(gateway: &Replica) -> std::net::SocketAddr {
    let log = gateway.log.lock().unwrap();
    let line = log
        .iter()
        .find(|l| l.contains("admin_address="))
        .expect("no start line");
    line.split("admin_address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn connections_accepted(gateway: &Replica) -> f64 {
    let (_, text) = admin_get(admin_address(gateway), "/metrics").await;
    sample(&text, "samverka_connections_total", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_limits_are_enforced_with_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = spawn_adapters(&pki).await;
    let gateway = start_gateway(
        dir.path(),
        &pki,
        &adapters,
        "[limits]\nmax_response_bytes = 2048\nmax_header_list_bytes = 2048\nmax_connection_age_s = 1\n",
        &[],
    );
    gateway
        .grant(
            &pki,
            &[
                "education.course_result",
                "education.degree",
                "employment.period",
                "competence.validated",
            ],
            "limits-test",
        )
        .await;
    let mut reader = gateway.reader(&pki).await;

    // A small answer passes; a passport (its credential alone is several
    // kilobytes) is over the limit.
    reader.get_records(demo_read()).await.unwrap();
    let status = reader
        .get_competence_passport(GetCompetencePassportRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
    // Audited as refused: nothing left the gateway.
    let entry = audit_entry(dir.path(), DEMO_SUBJECT, &audit_id(&status)).await;
    assert_eq!(
        (entry.decision.as_str(), entry.reason.as_str()),
        ("denied", "MESSAGE_TOO_LARGE")
    );

    // Oversized metadata is refused; the connection serves the next call.
    let mut request = tonic::Request::new(ListSourcesRequest {});
    request
        .metadata_mut()
        .insert("x-padding", "p".repeat(4096).parse().unwrap());
    assert!(reader.list_sources(request).await.is_err());
    reader.list_sources(ListSourcesRequest {}).await.unwrap();

    // Connections are closed after a second; the client reconnects by
    // itself and its calls go on.
    let before = connections_accepted(&gateway).await;
    for _ in 0..6 {
        reader.get_records(demo_read()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = connections_accepted(&gateway).await;
    assert!(
        after >= before + 2.0,
        "connections accepted: {before} before, {after} after 3 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_over_its_rate_is_told_when_to_retry() {
    use tonic_types::StatusExt;
    let net = start().await;
    let rated = RatedGateway::start(&net, "rate.db").await;
    let clock = rated.clock.clone();
    let gateway = rated.gateway.clone();
    let mut reader = RecordExchangeClient::new(rated.channel(&net, "reader").await);
    let mut outsider = RecordExchangeClient::new(rated.channel(&net, "outsider").await);

    for _ in 0..2 {
        let status = reader.get_records(demo_read()).await.unwrap_err();
        assert_eq!(reason(&status), "CONSENT_MISSING");
    }
    let status = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED");
    let retry = status
        .get_details_retry_info()
        .expect("retry info")
        .retry_delay
        .unwrap();
    assert_eq!(retry, std::time::Duration::from_secs(1));
    // Another agency has its own allowance.
    assert_eq!(
        reason(&outsider.get_records(demo_read()).await.unwrap_err()),
        "ACCESS_RULE_MISSING"
    );
    // Refusals for rate are not audited: two reads and the outsider's.
    assert_eq!(read_entries(&gateway.store).await.len(), 3);
    // A second later the reader may go on.
    clock.set_ms(clock.now_ms() + 1000);
    assert_eq!(
        reason(&reader.get_records(demo_read()).await.unwrap_err()),
        "CONSENT_MISSING"
    );

    // A request larger than the limit is refused whole, by every service,
    // and uses none of the agency's rate.
    let big = "x".repeat(100 * 1024);
    let mut request = demo_read();
    request.purpose = big.clone();
    clock.set_ms(clock.now_ms() + 10_000);
    let mut statuses = vec![reader.get_records(request).await.unwrap_err()];
    let channel = rated.channel(&net, "registrar").await;
    let mut consents = ConsentsClient::new(channel.clone());
    statuses.push(
        consents
            .grant(GrantConsentRequest {
                evidence_ref: big.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    statuses.push(
        AccessLogClient::new(channel)
            .list(ListAccessEventsRequest {
                page_token: big.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    for status in &statuses {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(reason(status), "MESSAGE_TOO_LARGE");
        assert!(status.message().contains("too large"), "{status:?}");
    }
    for _ in 0..2 {
        assert_eq!(
            reason(&reader.get_records(demo_read()).await.unwrap_err()),
            "CONSENT_MISSING"
        );
    }
}

/// A unary call sent as raw HTTP/2 on `channel` to `path`, whatever its
/// method: one message of `len` bytes (a single field unknown to every
/// request type, which decoding skips). The status it is answered with.
async fn call_with_message_of(
    channel: &mut tonic::transport::Channel,
    path: &str,
    len: usize,
) -> tonic::Status {
    use http_body_util::BodyExt;
    // Field 15, length-delimited, then the length as a varint.
    let varint = |mut n: usize| {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    };
    let payload = (0..len)
        .rev()
        .find(|p| 1 + varint(*p).len() + p == len)
        .expect("no field of that length");
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame.push((15 << 3) | 2);
    frame.extend(varint(payload));
    frame.resize(frame.len() + payload, b'p');
    let request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )))
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let (parts, body) = channel.call(request).await.unwrap().into_parts();
    if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
        return status;
    }
    let trailers = body.collect().await.unwrap().trailers().cloned();
    tonic::Status::from_header_map(&trailers.expect("no trailers")).expect("no grpc-status")
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_by_every_method() {
    let net = start().await;
    let max = net.gateway.config.limits.max_request_bytes;
    let mut reader = net.channel("reader").await.unwrap();
    let mut registrar = net.channel("registrar").await.unwrap();
    let caller = |m: Method| match m.service() {
        "samverka.v1.RecordExchange" => READER_AGENCY,
        _ => REGISTRAR_AGENCY,
    };
    for method in Method::ALL {
        let channel = match caller(method) {
            READER_AGENCY => &mut reader,
            _ => &mut registrar,
        };
        let path = format!("/{}/{}", method.service(), method.name());
        // The registry takes whole documents: as much as answers carry.
        let limits = &net.gateway.config.limits;
        let max = match method.service() {
            "samverka.admin.v1.Registry" => max.max(limits.max_response_bytes),
            _ => max,
        };
        let status = call_with_message_of(channel, &path, max + 1).await;
        assert_eq!(status.code(), Code::ResourceExhausted, "{path}: {status:?}");
        assert_eq!(reason(&status), "MESSAGE_TOO_LARGE", "{path}");
        assert!(status.message().contains(&max.to_string()), "{status:?}");
        assert_eq!(
            status
                .metadata()
                .get("x-samverka-trace-id")
                .map(|v| v.len()),
            Some(32),
            "{path}: {status:?}"
        );
        // At the limit the message is read, and judged on what it holds
        // (a watch with no cursor is a stream that stays open: judged
        // accepted when no status comes).
        let at_limit = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            call_with_message_of(channel, &path, max),
        )
        .await;
        match at_limit {
            Ok(status) => assert!(
                !matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
                "{path}: {status:?}"
            ),
            Err(_) => assert_eq!(method, Method::ConsentsWatch, "{path} never answered"),
        }
    }
    // Counted like any refusal, by method and caller.
    let (_, text) = admin_get(net.admin_address, "/metrics").await;
    for method in Method::ALL {
        let labels = [
            ("method", method.label()),
            ("agency", caller(method)),
            ("decision", "denied"),
            ("reason", "MESSAGE_TOO_LARGE"),
        ];
        assert_eq!(
            sample(&text, "samverka_requests_total", &labels),
            1.0,
            "{labels:?}\n{text}"
        );
    }
    // Not audited, and no adapter asked: only the two reads at the limit
    // (with no person in them) are in the trail.
    let audit = read_entries(&net.gateway.store).await;
    assert!(
        audit.iter().all(|e| e.reason != "MESSAGE_TOO_LARGE"),
        "{audit:?}"
    );
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(net.fetch_calls(), 0);

    // The typed clients get the same answer.
    let big = "x".repeat(max);
    let mut consents = ConsentsClient::new(registrar.clone());
    let statuses = [
        RecordExchangeClient::new(reader.clone())
            .get_competence_passport(GetCompetencePassportRequest {
                subject_id: DEMO_SUBJECT.into(),
                purpose: big.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        consents
            .revoke(RevokeConsentRequest {
                consent_id: "c".into(),
                reason: big.clone(),
                person_assertion: String::new(),
            })
            .await
            .unwrap_err(),
        consents
            .get(GetConsentRequest {
                consent_id: big.clone(),
                person_assertion: String::new(),
            })
            .await
            .unwrap_err(),
        consents
            .list(ListConsentsRequest {
                subject_id: big.clone(),
                grantee_agency: String::new(),
                person_assertion: String::new(),
                states: Vec::new(),
            })
            .await
            .unwrap_err(),
    ];
    for status in statuses {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
    }
}

/// The demo network's gateway configuration again, as a second gateway
/// (its own store `db`) with a rate of one request a second and a burst of
/// two, on a clock the test moves.
struct RatedGateway {
    gateway: std::sync::Arc<samverka_gateway::Gateway>,
    clock: samverka_gateway::Clock,
    address: String,
}

impl RatedGateway {
    async fn start(net: &TestNet, db: &str) -> RatedGateway {
        let text = std::fs::read_to_string(&net.config_path)
            .unwrap()
            .replace("samverka.db", db)
            + "\n[limits]\nrate_per_second = 1\nburst = 2\n";
        let config = samverka_gateway::Config::from_toml(&text, net.dir.path()).unwrap();
        let clock = samverka_gateway::Clock::manual(samverka_gateway::time::system_now_ms());
        let gateway = samverka_gateway::Gateway::new(config, clock.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(samverka_gateway::server::serve(
            gateway.clone(),
            listener,
            std::future::pending(),
        ));
        RatedGateway {
            gateway,
            clock,
            address,
        }
    }

    async fn channel(&self, net: &TestNet, agency: &str) -> tonic::transport::Channel {
        samverka_gateway::net::client::connect(
            &self.address,
            "localhost",
            &net.agency_tls(agency).unwrap(),
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_thousand_requests_over_the_rate_reach_no_adapter() {
    let net = start().await;
    // The clock stands still, so the bucket never refills.
    let rated = RatedGateway::start(&net, "rate-1000.db").await;
    let gateway = rated.gateway.clone();
    ConsentsClient::new(rated.channel(&net, "registrar").await)
        .grant(sealed(
            &net,
            "registrar",
            grant_request(
                &net,
                DEMO_PURPOSE,
                &samverka::cli::demo::DEMO_RECORD_TYPES,
                "rate-1000",
            ),
        ))
        .await
        .unwrap();
    let mut reader = RecordExchangeClient::new(rated.channel(&net, "reader").await);

    // Two reads reach the adapters.
    for _ in 0..2 {
        assert_eq!(
            reader
                .get_records(demo_read())
                .await
                .unwrap()
                .into_inner()
                .records
                .len(),
            5
        );
    }
    let calls = net.fetch_calls();
    let audited = read_entries(&gateway.store).await.len();

    // A thousand more, all RATE_LIMITED, none reaching a register or the
    // audit trail.
    for _ in 0..1000 {
        let status = reader.get_records(demo_read()).await.unwrap_err();
        assert_eq!(reason(&status), "RATE_LIMITED");
    }
    assert_eq!(
        net.fetch_calls(),
        calls,
        "a rate-limited read reached an adapter"
    );
    assert_eq!(read_entries(&gateway.store).await.len(), audited);
}
