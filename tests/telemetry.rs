//! Traces end to end: a real OTLP/gRPC receiver in the test (the
//! `opentelemetry-proto` trace service), a `samverka serve` process and two
//! `samverka adapter run` processes exporting to it, and one `GetRecords`
//! sent with a caller's `traceparent`. The spans of all three processes
//! must form one trace under the caller's span, and none may carry the
//! person's identity number. Request spans carry the answer's gRPC status
//! code (`rpc.grpc.status_code`: 0, or 7 for a refused read) and adapter
//! calls their record count (`samverka.record_count`), both as integer
//! attributes, not strings.

mod support;

#[path = "telemetry/otlp.rs"]
mod otlp;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use otlp::{Receiver, hex, int, text};
use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, pki_spec};
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::process::{audit_entry, start_gateway};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// An adapter process, killed when dropped.
struct AdapterProcess(Child);

impl Drop for AdapterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `samverka adapter run NAME` with the OpenTelemetry environment `env`.
fn start_adapter(
    pki: &samverka_certs::dev::DevPkiFiles,
    name: &str,
    env: &[(&str, String)],
) -> (AdapterProcess, SocketAddr) {
    use std::io::BufRead;
    let (_, cert, key) = pki.adapters.iter().find(|(n, _, _)| n == name).unwrap();
    let mut child = Command::new(BIN)
        .args(["adapter", "run", name, "--listen", "127.0.0.1:0"])
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(&pki.ca_cert)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("serving on ")
        .nth(1)
        .unwrap_or_else(|| panic!("adapter {name} did not start: {line:?}"))
        .trim()
        .parse()
        .unwrap();
    (AdapterProcess(child), address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_caller_through_the_gateway_into_both_adapters() {
    let (receiver, otlp) = Receiver::start().await;
    let endpoint = format!("http://{otlp}");
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();

    // The adapters get the endpoint the standard way, from the environment.
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test".to_owned(),
        ),
    ];
    let mut adapters = Vec::new();
    let mut processes = Vec::new();
    for name in ["higher-education", "employment"] {
        let (process, address) = start_adapter(&pki, name, &env);
        processes.push(process);
        adapters.push((name.to_owned(), address));
    }
    // The gateway from its configuration file.
    let gateway = start_gateway(
        dir.path(),
        &pki,
        &adapters,
        &format!(
            "[telemetry]\notlp_endpoint = \"{endpoint}\"\notlp_metrics = true\nservice_name = \"gateway-under-test\"\nresource_attributes = {{ \"deployment.environment\" = \"test\" }}\n"
        ),
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    gateway
        .grant(
            &pki,
            &samverka::cli::demo::DEMO_RECORD_TYPES,
            "telemetry-test",
        )
        .await;
    let mut client = gateway.reader(&pki).await;

    // The caller's trace and span.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let request = traced_read(trace_id, caller_span, true);
    let response = client.get_records(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-samverka-trace-id").unwrap(),
        trace_id
    );
    let answer = response.into_inner();
    assert_eq!(answer.outcomes.len(), 2);
    // The audit entry names the caller's trace.
    let entry = audit_entry(dir.path(), DEMO_SUBJECT, &answer.audit_id).await;
    assert_eq!(entry.trace_id, trace_id);

    let in_trace = |spans: &[(String, Span)], service: &str, name: &str| {
        spans
            .iter()
            .filter(|(s, span)| {
                s == service && span.name == name && hex(&span.trace_id) == trace_id
            })
            .count()
    };
    receiver
        .wait_for("the spans of the gateway and both adapters", |spans| {
            in_trace(spans, "gateway-under-test", "audit_commit") == 1
                && in_trace(
                    spans,
                    "samverka-adapter-higher-education",
                    "Adapter/FetchRecords",
                ) == 1
                && in_trace(spans, "samverka-adapter-employment", "Adapter/FetchRecords") == 1
        })
        .await;
    let spans = receiver.spans();
    let traced: Vec<&(String, Span)> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == trace_id)
        .collect();
    let find = |service: &str, name: &str| -> &Span {
        traced
            .iter()
            .find(|(s, span)| s == service && span.name == name)
            .map(|(_, span)| span)
            .unwrap_or_else(|| panic!("no span {name} from {service}"))
    };

    // The gateway's request span is the caller's span's child.
    let root = find(
        "gateway-under-test",
        "samverka.v1.RecordExchange/GetRecords",
    );
    assert_eq!(hex(&root.parent_span_id), caller_span);
    assert_eq!(
        text(&root.attributes, "samverka.caller").as_deref(),
        Some(samverka::cli::demo::READER_AGENCY)
    );
    assert_eq!(
        text(&root.attributes, "samverka.purpose").as_deref(),
        Some(DEMO_PURPOSE)
    );
    assert_eq!(
        text(&root.attributes, "samverka.decision").as_deref(),
        Some("allowed")
    );
    assert_eq!(
        text(&root.attributes, "rpc.method").as_deref(),
        Some("GetRecords")
    );
    // The answer's gRPC status code, an integer as OpenTelemetry's
    // semantic conventions say: 0, OK.
    assert_eq!(
        int(&root.attributes, "rpc.grpc.status_code"),
        Some(0),
        "{:?}",
        root.attributes
    );

    // Each step is a child of the request span.
    for step in ["identity", "access_rule", "consent_check", "audit_commit"] {
        let span = find("gateway-under-test", step);
        assert_eq!(span.parent_span_id, root.span_id, "{step}");
    }
    assert_eq!(
        text(
            &find("gateway-under-test", "consent_check").attributes,
            "samverka.decision"
        )
        .as_deref(),
        Some("allowed")
    );

    // Each adapter's span is the child of the gateway's call to it.
    for (name, agency) in [
        (
            "higher-education",
            samverka_adapter_higher_education::DEMO_AGENCY,
        ),
        ("employment", samverka_adapter_employment::DEMO_AGENCY),
    ] {
        let call = find("gateway-under-test", &format!("adapter_call {name}"));
        assert_eq!(call.parent_span_id, root.span_id);
        assert_eq!(
            text(&call.attributes, "samverka.source_agency").as_deref(),
            Some(agency)
        );
        assert_eq!(
            text(&call.attributes, "samverka.outcome").as_deref(),
            Some("OK")
        );
        // How many records the source gave, as an integer.
        let outcome = answer
            .outcomes
            .iter()
            .find(|o| o.source_agency == agency)
            .unwrap();
        assert!(outcome.record_count > 0);
        assert_eq!(
            int(&call.attributes, "samverka.record_count"),
            Some(i64::from(outcome.record_count)),
            "{:?}",
            call.attributes
        );
        let served = find(&format!("samverka-adapter-{name}"), "Adapter/FetchRecords");
        assert_eq!(served.parent_span_id, call.span_id, "{name}");
        assert_eq!(
            text(&served.attributes, "samverka.agency").as_deref(),
            Some(agency)
        );
        assert_eq!(
            int(&served.attributes, "samverka.record_count"),
            Some(i64::from(outcome.record_count)),
            "{:?}",
            served.attributes
        );
    }

    // The registrar's grant is a request span of its own.
    let grant = spans
        .iter()
        .find(|(s, span)| s == "gateway-under-test" && span.name == "samverka.v1.Consents/Grant")
        .map(|(_, span)| span)
        .expect("no span for Consents/Grant");
    assert_eq!(
        text(&grant.attributes, "samverka.caller").as_deref(),
        Some(samverka::cli::demo::REGISTRAR_AGENCY)
    );
    assert_eq!(
        text(&grant.attributes, "samverka.decision").as_deref(),
        Some("allowed")
    );
    assert_eq!(int(&grant.attributes, "rpc.grpc.status_code"), Some(0));

    // Resource attributes: from the configuration and from the environment.
    for service in [
        "gateway-under-test",
        "samverka-adapter-higher-education",
        "samverka-adapter-employment",
    ] {
        let (_, resource) = spans
            .iter()
            .find(|(s, _)| *s == format!("resource:{service}"))
            .unwrap();
        assert_eq!(
            text(&resource.attributes, "deployment.environment").as_deref(),
            Some("test"),
            "{service}"
        );
    }

    // The person's number is in no span, in no attribute, anywhere.
    for (service, span) in &spans {
        let all = format!("{} {:?}", span.name, span.attributes);
        assert!(
            !all.contains(DEMO_SUBJECT),
            "{service} span {} names the person",
            span.name
        );
    }

    // A caller that did not sample its trace: the gateway does not either.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let request = traced_read(unsampled, "b7ad6b7169203331", false);
    let response = client.get_records(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-samverka-trace-id").unwrap(),
        unsampled
    );
    // A refused read, sampled: its span has the refusal's gRPC code.
    let refused = "22222222222222222222222222222222";
    let mut request = tonic::Request::new(read_request(
        OTHER_SUBJECT,
        &["employment.period"],
        DEMO_PURPOSE,
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{refused}-b7ad6b7169203331-01").parse().unwrap(),
    );
    let status = client.get_records(request).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_MISSING");
    // A sampled request after it, to know the exporters have flushed.
    let after = "11111111111111111111111111111111";
    let request = traced_read(after, "b7ad6b7169203331", true);
    client.get_records(request).await.unwrap();
    receiver
        .wait_for("the spans of the sampled request", |spans| {
            spans
                .iter()
                .any(|(s, span)| s == "samverka-adapter-employment" && hex(&span.trace_id) == after)
        })
        .await;
    assert!(
        !receiver
            .spans()
            .iter()
            .any(|(_, span)| hex(&span.trace_id) == unsampled),
        "spans of an unsampled trace were exported"
    );
    let is_refused_root = |(s, span): &(String, Span)| {
        s == "gateway-under-test"
            && hex(&span.trace_id) == refused
            && span.name == "samverka.v1.RecordExchange/GetRecords"
    };
    receiver
        .wait_for("the refused read's span", |spans| {
            spans.iter().any(is_refused_root)
        })
        .await;
    let spans = receiver.spans();
    let (_, root) = spans.iter().find(|s| is_refused_root(s)).unwrap();
    assert_eq!(
        text(&root.attributes, "samverka.reason").as_deref(),
        Some("CONSENT_MISSING")
    );
    assert_eq!(
        int(&root.attributes, "rpc.grpc.status_code"),
        Some(i64::from(tonic::Code::PermissionDenied as i32)),
        "{:?}",
        root.attributes
    );

    // The same counters as /metrics, as OpenTelemetry metrics: three reads
    // allowed so far.
    let mut allowed = None;
    for _ in 0..100 {
        allowed = receiver.number(
            "gateway-under-test",
            "samverka.requests",
            &[
                ("method", "RecordExchange/GetRecords"),
                ("agency", samverka::cli::demo::READER_AGENCY),
                ("decision", "allowed"),
            ],
        );
        if allowed == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(allowed, Some(3), "samverka.requests over OTLP");
    assert!(
        receiver
            .number(
                "gateway-under-test",
                "samverka.source.requests",
                &[("source", "employment"), ("outcome", "OK")]
            )
            .is_some_and(|n| n >= 3)
    );
    // A gauge, observed at each export: at most the registry's seed's, the
    // signing key's, the grant's and the four reads' entries are waiting
    // for the access log's index.
    assert!(
        receiver
            .number("gateway-under-test", "samverka.access_index.pending", &[])
            .is_some_and(|n| (0..=7).contains(&n))
    );
    assert_eq!(
        receiver.number("gateway-under-test", "samverka.ready", &[]),
        Some(1),
        "samverka.ready over OTLP"
    );
    drop(gateway);
    drop(processes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_trace_of_the_request_they_belong_to() {
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = support::process::spawn_adapters(&pki).await;
    // JSON logs, and no trace export: the ids are in the logs either way.
    let gateway = start_gateway(
        dir.path(),
        &pki,
        &adapters,
        "[telemetry]\nlog_format = \"json\"\n",
        &[],
    );
    let mut client = RecordExchangeClient::new(gateway.channel(&pki, "outsider").await);

    // A refused read: the gateway logs why, inside the request.
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let request = traced_read(trace_id, "00f067aa0ba902b7", true);
    let status = client.get_records(request).await.unwrap_err();
    assert_eq!(reason(&status), "ACCESS_RULE_MISSING");

    let mut refused = None;
    for _ in 0..50 {
        refused = gateway
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("request refused"))
            .cloned();
        if refused.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = refused.expect("the refusal was not logged");
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(json["fields"]["reason"], "ACCESS_RULE_MISSING", "{line}");
    let request_span = json["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "request")
        .unwrap_or_else(|| panic!("no request span in {line}"));
    assert_eq!(request_span["trace_id"], trace_id);
    let span_id = request_span["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16);
    assert_ne!(
        span_id, "00f067aa0ba902b7",
        "the gateway's span has its own id"
    );
    assert_eq!(
        request_span["samverka.caller"],
        samverka::cli::demo::OUTSIDER_AGENCY
    );

    // Every line the gateway wrote is one JSON object.
    for line in gateway.log.lock().unwrap().iter() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

/// A collector that is not there: every failed export is counted in
/// `samverka_otlp_export_failures_total` and logged, the first one at
/// once and the next ones at most once a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_otlp_exports_are_counted_and_logged() {
    // A port nothing listens on any more.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = support::process::spawn_adapters(&pki).await;
    let gateway = start_gateway(
        dir.path(),
        &pki,
        &adapters,
        &format!("[telemetry]\notlp_endpoint = \"http://{gone}\"\nsampling_ratio = 1.0\n"),
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    let mut client = RecordExchangeClient::new(gateway.channel(&pki, "outsider").await);
    let failures = || async {
        sample(
            &admin_get(gateway.admin, "/metrics").await.1,
            "samverka_otlp_export_failures_total",
            &[],
        )
    };
    assert_eq!(failures().await, 0.0);
    // Each read's spans go out in a batch of their own.
    let mut counted = 0.0;
    for _ in 0..100 {
        let _ = client.get_records(demo_read()).await;
        counted = failures().await;
        if counted >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(counted >= 3.0, "{counted} failed exports counted");
    let log = gateway.log.lock().unwrap().clone();
    let warnings: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("OTLP export failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log:#?}");
    assert!(warnings[0].contains(&gone.to_string()), "{}", warnings[0]);
}

/// The registry version over OTLP is the version in force alone: after a
/// change through the registry API, the collector's latest export holds
/// one data point, the new version under the digest the API gives, and
/// none for the version replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_version_over_otlp_is_the_version_in_force_alone() {
    use samverka_gateway::net::client::{AgencyTls, connect};
    use samverka_proto::admin::v1 as pb;
    use samverka_proto::admin::v1::registry_client::RegistryClient;

    let (receiver, otlp) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = support::process::spawn_adapters(&pki).await;
    let gateway = start_gateway(
        dir.path(),
        &pki,
        &adapters,
        &format!(
            "[telemetry]\notlp_endpoint = \"http://{otlp}\"\notlp_metrics = true\nservice_name = \"registry-under-test\"\n"
        ),
        &[("OTEL_METRIC_EXPORT_INTERVAL", "200")],
    );
    let tls = AgencyTls::from_files(&pki.ca_cert, &pki.operator.0, &pki.operator.1).unwrap();
    let channel = connect(&gateway.address.to_string(), "localhost", &tls)
        .await
        .unwrap();
    let mut op = RegistryClient::new(channel);
    let in_force = async |op: &mut RegistryClient<_>| {
        let v = op
            .get_registry(pb::GetRegistryRequest::default())
            .await
            .unwrap()
            .into_inner()
            .version
            .unwrap();
        (v.digest, v.version)
    };
    let reported = |want: &(String, i64)| {
        let points = receiver.latest_points("registry-under-test", "samverka.registry.version");
        let got: Vec<(Option<String>, i64)> = points
            .iter()
            .map(|(attributes, n)| (text(attributes, "digest"), *n))
            .collect();
        (got == [(Some(want.0.clone()), want.1)], got)
    };
    let until_reported = async |want: &(String, i64)| {
        for _ in 0..100 {
            if reported(want).0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("over OTLP {:?}, not only {want:?}", reported(want).1);
    };

    let first = in_force(&mut op).await;
    until_reported(&first).await;
    op.delete_item(pb::DeleteItemRequest {
        kind: pb::ItemKind::AccessRule as i32,
        key: "2021999020/job_matching".into(),
        expected_version: first.1,
        dry_run: false,
    })
    .await
    .unwrap();
    let second = in_force(&mut op).await;
    assert_eq!(second.1, first.1 + 1);
    assert_ne!(second.0, first.0);
    until_reported(&second).await;
    drop(gateway);
}
