//! Connection and message limits of `[limits]`, on a `samverka serve`
//! process with small limits: an answer larger than `max_response_bytes`
//! is refused with RESOURCE_EXHAUSTED; oversized metadata is refused while
//! the connection's other requests go on; connections are closed
//! gracefully after `max_connection_age_s` and clients reconnect.

mod support;

use std::time::Duration;

use samverka::demo::{DEMO_PURPOSE, DEMO_SUBJECT, pki_spec};
use samverka_proto::v1::{GetCompetencePassportRequest, ListSourcesRequest};
use support::process::{Replica, audit_entry, spawn_adapters, start_gateway};
use support::*;

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
