//! End to end: what operators watch. The admin listener's `/metrics`
//! counts every request, decision, consent check, source outcome, audit
//! batch and connection of a real demo network, names no person, and
//! exports every metric the dashboard and alert rules in deploy/ query;
//! the alert rules pass `promtool`'s check and unit tests, and a real
//! scrape passes `promtool check metrics` (skipped, with the reason
//! printed, when promtool is not installed). `/metrics` answers in the
//! Prometheus text format 0.0.4 unless the scraper asks for OpenMetrics.

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
            ..Default::default()
        })
        .await;
    let mut registrar = consents(&net, "registrar").await;
    registrar
        .get(sealed(
            &net,
            "registrar",
            GetConsentRequest {
                consent_id: consent_id.clone(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap();
    registrar
        .list(sealed(
            &net,
            "registrar",
            ListConsentsRequest {
                subject_id: DEMO_SUBJECT.into(),
                grantee_agency: String::new(),
                person_assertion: String::new(),
                states: Vec::new(),
            },
        ))
        .await
        .unwrap();
    registrar
        .revoke(sealed(
            &net,
            "registrar",
            RevokeConsentRequest {
                consent_id,
                reason: "metrics test".into(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap();
    AccessLogClient::new(net.channel("registrar").await.unwrap())
        .list(sealed(
            &net,
            "registrar",
            ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                ..Default::default()
            },
        ))
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
    // registry's seed, the signing key joining the key set, the grant and
    // the four reads, and none once the index has caught up.
    let pending = sample(&text, "samverka_access_index_pending_entries", &[]);
    assert!((0.0..=7.0).contains(&pending), "{pending}");
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

/// A GET of `/metrics` on the admin listener with `accept` as its
/// `Accept` header (none if `None`): the answer's `Content-Type`, its
/// `Vary`, and its body.
async fn scrape(address: std::net::SocketAddr, accept: Option<&str>) -> (String, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: admin\r\n{accept}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    (header("content-type"), header("vary"), body.to_owned())
}

/// Some of everything: reads allowed and refused, a grant, a source
/// down, a handshake refused, so that every labelled family has samples.
async fn traffic(net: &mut support::TestNet) {
    grant_demo_consent(net).await;
    let mut reader = exchange(net, "reader").await;
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
    // Not TLS at all: a refused handshake.
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(net.gateway_address)
        .await
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
}

/// `/metrics` speaks the text format 0.0.4 to clients that do not ask for
/// OpenMetrics (curl, promtool, a request without `Accept`), and
/// OpenMetrics 1.0.0 to those that do, as Prometheus does by default; both
/// name the same samples, and every metric has help.
#[tokio::test]
async fn metrics_answer_in_the_format_the_scraper_accepts() {
    let mut net = start().await;
    traffic(&mut net).await;
    let prometheus_default = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let (om_type, vary, openmetrics) = scrape(net.admin_address, Some(prometheus_default)).await;
    assert_eq!(
        om_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(vary.to_ascii_lowercase(), "accept");
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE samverka_requests counter\n"));

    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let (content_type, _, text) = scrape(net.admin_address, accept).await;
        assert_eq!(
            content_type, "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        // A counter's HELP and TYPE name its sample, as 0.0.4 wants.
        assert!(
            text.contains("# TYPE samverka_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE samverka_tls_handshake_failures_total counter\n"));
        // The same samples, in the same order, in both formats.
        let samples = |body: &str| -> Vec<String> {
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
                .collect()
        };
        assert_eq!(samples(&text), samples(&openmetrics));
        // Every family has help text.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(families.len() >= 14, "{families:?}");
        for family in &families {
            let help = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("# HELP {family} ")))
                .unwrap_or_default();
            assert!(help.len() > 10, "{family} has no help text");
        }
        if accept.is_none() {
            every_metric_is_documented_and_on_the_dashboard(&families);
        }
    }
}

/// Each metric the gateway exports is in the metrics table of
/// docs/operations.md and of gateway/src/metrics.rs, and a panel of the
/// Grafana dashboard in deploy/ queries it.
fn every_metric_is_documented_and_on_the_dashboard(families: &[&str]) {
    let read = |file: &str| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap()
    };
    let operations = read("docs/operations.md");
    let metrics_rs = read("gateway/src/metrics.rs");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/samverka-dashboard.json")).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap_or_default().to_owned())
        .collect();
    for family in families {
        let row = format!("| `{family}` |");
        assert!(
            operations.contains(&row),
            "docs/operations.md has no row for {family}"
        );
        assert!(
            metrics_rs.contains(&format!("//! {row}")),
            "gateway/src/metrics.rs has no row for {family}"
        );
        assert!(
            queries.iter().any(|q| q
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w
                    .strip_prefix(family)
                    .is_some_and(|rest| { ["", "_bucket", "_sum", "_count"].contains(&rest) }))),
            "no panel of the dashboard shows {family}"
        );
    }
}

/// A real scrape passes `promtool check metrics` (its parser of the text
/// format and its lint: help text, counters' `_total`, base units).
#[tokio::test]
async fn a_real_scrape_passes_promtool_check_metrics() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut net = start().await;
    traffic(&mut net).await;
    let (_, _, text) = scrape(net.admin_address, None).await;
    // The labelled families have samples, so promtool sees them all.
    for family in [
        "samverka_requests_total",
        "samverka_source_requests_total",
        "samverka_consent_checks_total",
        "samverka_request_duration_seconds_bucket",
        "samverka_crl_stale",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "no sample of {family}: {text}"
        );
    }
    let mut promtool = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: promtool not found (apt-get install prometheus; .ci/run installs it)"
            );
            return;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}\n--- the scrape:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
