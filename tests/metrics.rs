//! End to end: what operators watch. The admin listener's `/metrics`
//! counts every request, decision, consent check, source outcome, audit
//! batch and connection of a real demo network, names no person, and
//! exports every metric the dashboard and alert rules in deploy/ query;
//! the alert rules pass `promtool`'s check and unit tests (skipped, with
//! the reason printed, when promtool is not installed).

mod support;

use samverka::cli::demo::{
    DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY, REGISTRAR_AGENCY,
};
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::{
    GetCompetencePassportRequest, GetConsentRequest, ListAccessEventsRequest, ListConsentsRequest,
    ListSourcesRequest, RevokeConsentRequest,
};
use support::*;

/// Each of the gateway's RPCs, once, allowed or refused, is counted under
/// `Service/Method` with the caller's agency.
#[tokio::test]
async fn every_rpc_is_counted_under_its_service_and_method() {
    let net = start().await;
    let consent_id = grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    reader.list_sources(ListSourcesRequest {}).await.unwrap();
    let _ = reader
        .get_competence_passport(GetCompetencePassportRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
        })
        .await;
    let mut registrar = consents(&net, "registrar").await;
    registrar
        .get(GetConsentRequest {
            consent_id: consent_id.clone(),
        })
        .await
        .unwrap();
    registrar
        .list(ListConsentsRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: String::new(),
        })
        .await
        .unwrap();
    registrar
        .revoke(RevokeConsentRequest {
            consent_id,
            reason: "metrics test".into(),
        })
        .await
        .unwrap();
    AccessLogClient::new(net.channel("registrar").await.unwrap())
        .list(ListAccessEventsRequest {
            subject_id: DEMO_SUBJECT.into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let (_, text) = admin_get(net.admin_address, "/metrics").await;
    for (method, agency) in [
        ("RecordExchange/GetRecords", READER_AGENCY),
        ("RecordExchange/ListSources", READER_AGENCY),
        ("RecordExchange/GetCompetencePassport", READER_AGENCY),
        ("Consents/Grant", REGISTRAR_AGENCY),
        ("Consents/Get", REGISTRAR_AGENCY),
        ("Consents/List", REGISTRAR_AGENCY),
        ("Consents/Revoke", REGISTRAR_AGENCY),
        ("AccessLog/List", REGISTRAR_AGENCY),
    ] {
        assert_eq!(
            sample(
                &text,
                "samverka_requests_total",
                &[("method", method), ("agency", agency)]
            ),
            1.0,
            "{method}: {text}"
        );
        assert_eq!(
            sample(
                &text,
                "samverka_request_duration_seconds_count",
                &[("method", method)]
            ),
            1.0,
            "{method}"
        );
    }
}

#[tokio::test]
async fn the_admin_listener_counts_what_happened() {
    let mut net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    reader.get_records(demo_read()).await.unwrap();
    reader
        .get_records(read_request(
            OTHER_SUBJECT,
            &["employment.period"],
            DEMO_PURPOSE,
        ))
        .await
        .unwrap_err();
    net.stop("higher-education").await;
    reader.get_records(demo_read()).await.unwrap();
    reader.list_sources(ListSourcesRequest {}).await.unwrap();

    let (status, text) = admin_get(net.admin_address, "/metrics").await;
    assert_eq!(status, 200);
    let requests = |decision: &str, reason: &str| {
        sample(
            &text,
            "samverka_requests_total",
            &[
                ("method", "RecordExchange/GetRecords"),
                ("agency", READER_AGENCY),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(requests("allowed", ""), 3.0, "{text}");
    assert_eq!(requests("denied", "CONSENT_MISSING"), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "samverka_requests_total",
            &[
                ("method", "Consents/Grant"),
                ("agency", REGISTRAR_AGENCY),
                ("decision", "allowed")
            ]
        ),
        1.0
    );
    // Every RPC is counted, ListSources too, under one naming of methods.
    assert_eq!(
        sample(
            &text,
            "samverka_requests_total",
            &[
                ("method", "RecordExchange/ListSources"),
                ("agency", READER_AGENCY),
                ("decision", "allowed")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "samverka_consent_checks_total",
            &[("result", "allowed")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "samverka_consent_checks_total",
            &[("result", "CONSENT_MISSING")]
        ),
        1.0
    );
    let source = |name: &str, outcome: &str| {
        sample(
            &text,
            "samverka_source_requests_total",
            &[("source", name), ("outcome", outcome)],
        )
    };
    assert_eq!(source("employment", "OK"), 3.0);
    assert_eq!(source("higher-education", "OK"), 2.0);
    assert_eq!(source("higher-education", "UNAVAILABLE"), 1.0);
    assert_eq!(
        sample(
            &text,
            "samverka_request_duration_seconds_count",
            &[("method", "RecordExchange/GetRecords")]
        ),
        4.0
    );
    assert_eq!(
        sample(&text, "samverka_audit_batch_entries_sum", &[]),
        5.0,
        "one entry per read, and one for the grant"
    );
    // Entries not yet in the access log's index by person: at most the
    // grant and the four reads, and none once the index has caught up.
    let pending = sample(&text, "samverka_access_index_pending_entries", &[]);
    assert!((0.0..=5.0).contains(&pending), "{pending}");
    net.gateway.store.index_access_log().await.unwrap();
    assert_eq!(
        sample(
            &admin_get(net.admin_address, "/metrics").await.1,
            "samverka_access_index_pending_entries",
            &[]
        ),
        0.0
    );
    assert_eq!(sample(&text, "samverka_ready", &[]), 1.0);
    assert!(
        !text.contains(DEMO_SUBJECT) && !text.contains(OTHER_SUBJECT),
        "no person's number in metrics"
    );

    // What operators load from deploy/ queries only metrics that exist.
    for file in [
        "deploy/grafana/samverka-dashboard.json",
        "deploy/prometheus/samverka-alerts.yml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let queries = std::fs::read_to_string(&path).unwrap();
        let mut names: Vec<&str> = queries
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("samverka_"))
            .collect();
        names.sort();
        names.dedup();
        assert!(!names.is_empty(), "{file}");
        for name in names {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{file} queries {name}, which the gateway does not export"
            );
        }
    }

    // Connections: the registrar's and the reader's were accepted; the
    // reader's is open, and is counted as closed once the reader hangs up.
    assert!(
        sample(&text, "samverka_connections_total", &[]) >= 2.0,
        "{text}"
    );
    assert!(
        sample(&text, "samverka_open_connections", &[]) >= 1.0,
        "{text}"
    );
    drop(reader);
    let mut open = f64::NAN;
    for _ in 0..50 {
        open = sample(
            &admin_get(net.admin_address, "/metrics").await.1,
            "samverka_open_connections",
            &[],
        );
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0.0, "connections still counted as open");

    assert_eq!(admin_get(net.admin_address, "/healthz").await.0, 200);
    assert_eq!(admin_get(net.admin_address, "/readyz").await.0, 200);
    assert_eq!(admin_get(net.admin_address, "/nothing").await.0, 404);
}

/// The alert rules operators load fire as docs/operations.md says:
/// promtool checks them and runs their unit tests
/// (deploy/prometheus/samverka-alerts.test.yml), which include every
/// replica down, when no replica exports `samverka_ready` at all.
#[test]
fn the_alert_rules_fire_as_documented() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    for args in [
        ["check", "rules", "samverka-alerts.yml"],
        ["test", "rules", "samverka-alerts.test.yml"],
    ] {
        let output = match std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "SKIPPED: promtool not found (apt-get install prometheus; .ci/run installs it)"
                );
                return;
            }
            Err(e) => panic!("promtool: {e}"),
        };
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
