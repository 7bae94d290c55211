//! End to end: `samverka consent` as a real process against a running
//! gateway, and offline verification of the receipts it saves; a consent
//! requested by the agency, decided by the person through a registrar and
//! watched by the agency, all from the command line.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// Runs `samverka ARGS` off the async runtime, so the in-process gateway
/// keeps serving meanwhile.
async fn samverka(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().unwrap())
        .await
        .unwrap()
}

/// `samverka consent ARGS`.
async fn cli(args: Vec<String>) -> Output {
    let mut all = vec!["consent".to_owned()];
    all.extend(args);
    samverka(all).await
}

/// The demo person's login now, as `samverka certs person-token --demo`
/// prints it, in a file.
async fn person_token(net: &TestNet) -> PathBuf {
    let demo = net.config_path.display().to_string();
    let out = samverka(args(&[
        "certs",
        "person-token",
        "--demo",
        &demo,
        "--subject",
        DEMO_SUBJECT,
    ]))
    .await;
    let path = net.dir.path().join("login.jwt");
    std::fs::write(&path, stdout(&out)).unwrap();
    path
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The connection as `agency`, spelt out, and as the demo registrar
/// acting for the person of the login in `token`.
fn connection(net: &TestNet, agency: &str, token: &std::path::Path) -> Vec<String> {
    let (_, cert, key) = net
        .pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == agency)
        .unwrap();
    let (_, _, assertion_key) = net
        .pki
        .assertion_keys
        .iter()
        .find(|(n, _, _)| n == "registrar")
        .unwrap();
    vec![
        "--assertion-key".into(),
        assertion_key.display().to_string(),
        "--audience".into(),
        samverka::cli::demo::demo_audience(),
        "--person-token".into(),
        token.display().to_string(),
        "--gateway".into(),
        net.gateway_address.to_string(),
        "--server-name".into(),
        "localhost".into(),
        "--ca".into(),
        net.pki.ca_cert.display().to_string(),
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
    ]
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrars_manage_consents_and_receipts_verify_offline() {
    let net = start().await;
    let token = person_token(&net).await;
    let receipt = net.dir.path().join("grant.jws");
    let gateway_cert = net.pki.gateway.0.display().to_string();

    let mut grant = args(&[
        "grant",
        "--subject",
        DEMO_SUBJECT,
        "--grantee",
        READER_AGENCY,
        "--record-types",
        "education.course_result,employment.period",
        "--purpose",
        DEMO_PURPOSE,
        "--days",
        "30",
        "--evidence",
        "e-service-4711",
        "--request-id",
        "cli-1",
        "--json",
        "--receipt-out",
    ]);
    grant.push(receipt.display().to_string());
    grant.extend(connection(&net, "registrar", &token));
    let granted: serde_json::Value = serde_json::from_str(&stdout(&cli(grant).await)).unwrap();
    assert_eq!(granted["event"], "granted");
    assert_eq!(granted["consent"]["status"], "active");
    assert_eq!(granted["consent"]["evidence_ref"], "e-service-4711");
    let consent_id = granted["consent"]["consent_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The grant took effect: the reader may read now.
    exchange(&net, "reader")
        .await
        .get_records(demo_read())
        .await
        .unwrap();

    // The saved receipt verifies offline and says what was recorded.
    let mut verify = args(&["verify-receipt"]);
    verify.push(receipt.display().to_string());
    verify.extend(args(&["--cert", &gateway_cert]));
    let out = stdout(&cli(verify.clone()).await);
    assert!(out.contains("valid receipt"), "{out}");
    assert!(out.contains(&consent_id), "{out}");

    // One changed character of the payload and it does not.
    let jws = std::fs::read_to_string(&receipt).unwrap();
    let payload_at = jws.find('.').unwrap() + 10;
    let mut tampered = jws.into_bytes();
    tampered[payload_at] = if tampered[payload_at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    std::fs::write(&receipt, tampered).unwrap();
    let out = cli(verify).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid receipt"));

    // Listing through the demo.toml profile.
    let list = args(&[
        "list",
        "--subject",
        DEMO_SUBJECT,
        "--json",
        "--demo",
        &net.config_path.display().to_string(),
        "--person-token",
        &token.display().to_string(),
    ]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&cli(list).await)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["consent_id"], consent_id.as_str());

    // Revoke, with a receipt of the revocation.
    let revoked_receipt = net.dir.path().join("revoke.jws");
    let mut revoke = args(&[
        "revoke",
        &consent_id,
        "--reason",
        "withdrawn by the person",
        "--receipt-out",
    ]);
    revoke.push(revoked_receipt.display().to_string());
    revoke.extend(connection(&net, "registrar", &token));
    let out = stdout(&cli(revoke).await);
    assert!(out.starts_with("revoked: consent"), "{out}");
    let mut verify = args(&["verify-receipt", "--json", "--cert", &gateway_cert]);
    verify.push(revoked_receipt.display().to_string());
    let claims: serde_json::Value = serde_json::from_str(&stdout(&cli(verify).await)).unwrap();
    assert_eq!(claims["event"], "revoked");
    assert_eq!(claims["consent"]["status"], "revoked");
    assert_eq!(
        claims["consent"]["revocation_reason"],
        "withdrawn by the person"
    );

    let mut get = args(&["get", &consent_id]);
    get.extend(connection(&net, "registrar", &token));
    let out = stdout(&cli(get).await);
    assert!(
        out.contains("(revoked)") && out.contains("withdrawn by the person"),
        "{out}"
    );

    // The read is refused from now on.
    let status = exchange(&net, "reader")
        .await
        .get_records(demo_read())
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REVOKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_registrar_is_refused_with_the_reason() {
    let net = start().await;
    let token = person_token(&net).await;
    let mut list = args(&["list", "--subject", DEMO_SUBJECT]);
    list.extend(connection(&net, "reader", &token));
    let out = cli(list).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PermissionDenied ROLE_REQUIRED"),
        "{stderr}"
    );
}

/// Waits for `child` to exit, at most `seconds`; its output.
async fn finished(mut child: std::process::Child, seconds: u64) -> Output {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "still running after {seconds} s; stdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// The JSON objects a `consent watch --json` printed, one a line.
fn events(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_requests_the_person_decides_and_the_agency_watches() {
    let net = start().await;
    let token = person_token(&net).await;
    let token = token.display().to_string();
    let demo = net.config_path.display().to_string();
    let as_agency = ["--demo", demo.as_str()];
    let as_registrar = ["--demo", demo.as_str(), "--person-token", token.as_str()];
    let with = |v: &[&str], connection: &[&str]| {
        let mut a = args(v);
        a.extend(args(connection));
        a
    };

    // The agency watches its consents from before it asks, until it has
    // seen four events.
    let watcher = Command::new(BIN)
        .args(with(
            &["consent", "watch", "--json", "--count", "4"],
            &as_agency,
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // The agency asks, with its own certificate: pending.
    let request = with(
        &[
            "request",
            "--subject",
            DEMO_SUBJECT,
            "--purpose",
            DEMO_PURPOSE,
            "--record-types",
            "education.course_result,employment.period",
            "--records-from",
            "2015-01-01",
            "--days",
            "30",
            "--max-reads",
            "5",
            "--justification",
            "To plan your studies with you",
            "--json",
        ],
        &as_agency,
    );
    let pending: serde_json::Value = serde_json::from_str(&stdout(&cli(request).await)).unwrap();
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["requested_by"], READER_AGENCY);
    assert_eq!(pending["records_from"], "2015-01-01");
    assert_eq!(pending["max_reads"], 5);
    assert_eq!(pending["justification"], "To plan your studies with you");
    assert!(pending["decide_by"].as_str().is_some(), "{pending}");
    let id = pending["consent_id"].as_str().unwrap().to_owned();

    // The person approves it, narrowed to course results.
    let receipt = net.dir.path().join("approve.jws");
    let mut approve = with(
        &[
            "approve",
            &id,
            "--record-types",
            "education.course_result",
            "--json",
        ],
        &as_registrar,
    );
    approve.extend(["--receipt-out".into(), receipt.display().to_string()]);
    let approved: serde_json::Value = serde_json::from_str(&stdout(&cli(approve).await)).unwrap();
    assert_eq!(approved["event"], "approved", "{approved}");
    assert_eq!(approved["consent"]["status"], "active");
    assert_eq!(
        approved["consent"]["record_types"],
        serde_json::json!(["education.course_result"])
    );
    assert!(approved["consent"]["decided_at"].as_str().is_some());
    let gateway_cert = net.pki.gateway.0.display().to_string();
    let verify = args(&[
        "verify-receipt",
        &receipt.display().to_string(),
        "--cert",
        &gateway_cert,
        "--json",
    ]);
    let claims: serde_json::Value = serde_json::from_str(&stdout(&cli(verify).await)).unwrap();
    assert_eq!(claims["event"], "approved");
    assert_eq!(claims["consent"]["consent_id"], id.as_str());

    // Listed among the active ones, not the pending ones.
    let list = |states: &str| {
        with(
            &[
                "list",
                "--subject",
                DEMO_SUBJECT,
                "--state",
                states,
                "--json",
            ],
            &as_registrar,
        )
    };
    let active: serde_json::Value =
        serde_json::from_str(&stdout(&cli(list("active")).await)).unwrap();
    assert_eq!(active.as_array().unwrap().len(), 1, "{active}");
    assert_eq!(active[0]["consent_id"], id.as_str());
    let none: serde_json::Value =
        serde_json::from_str(&stdout(&cli(list("pending,rejected")).await)).unwrap();
    assert_eq!(none, serde_json::json!([]));

    // Paused and resumed, each with its receipt.
    let out = stdout(&cli(with(&["pause", &id], &as_registrar)).await);
    assert!(
        out.starts_with("paused: consent") && out.contains("(paused)"),
        "{out}"
    );
    let out = stdout(
        &cli(with(
            &["list", "--subject", DEMO_SUBJECT, "--state", "paused"],
            &as_registrar,
        ))
        .await,
    );
    assert!(
        out.contains(&id) && out.contains("requested by  2021999020"),
        "{out}"
    );
    let out = stdout(&cli(with(&["resume", &id], &as_registrar)).await);
    assert!(
        out.starts_with("resumed: consent") && out.contains("(active)"),
        "{out}"
    );

    // The watcher saw the four changes, in order, with growing cursors.
    let seen = events(&finished(watcher, 30).await);
    let names: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["requested", "approved", "paused", "resumed"],
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|e| e["consent_id"] == id.as_str()),
        "{seen:?}"
    );
    let cursors: Vec<u64> = seen
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Resuming after the second event gives only the later ones.
    let second = cursors[1].to_string();
    let resumed = with(
        &["watch", "--cursor", &second, "--count", "2", "--json"],
        &as_agency,
    );
    // (Each event carries the consent as it is now: compare the events.)
    let event = |e: &serde_json::Value| {
        ["cursor", "event", "consent_id", "time", "audit_id"].map(|k| e[k].clone())
    };
    let later: Vec<_> = events(&cli(resumed).await).iter().map(event).collect();
    let expected: Vec<_> = seen[2..].iter().map(event).collect();
    assert_eq!(later, expected);

    // In text: a line per event, cursor first.
    let text = stdout(
        &cli(with(
            &["watch", "--cursor", &second, "--count", "1"],
            &as_agency,
        ))
        .await,
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words[..3],
        [cursors[2].to_string().as_str(), "paused", id.as_str()],
        "{text}"
    );
    // A cursor the gateway never gave is refused at once.
    let out = cli(with(&["watch", "--cursor", "x"], &as_agency)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIELD_INVALID"));

    // An approved consent cannot be rejected: refused, with the reason.
    let out = cli(with(
        &["reject", &id, "--reason", "changed my mind"],
        &as_registrar,
    ))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CONSENT_STATE_INVALID"), "{stderr}");

    // A one-time request, in text: what the person will see.
    let request = with(
        &[
            "request",
            "--subject",
            DEMO_SUBJECT,
            "--purpose",
            DEMO_PURPOSE,
            "--record-types",
            "education.degree",
            "--days",
            "7",
            "--one-time",
            "--justification",
            "To check your degree once",
            "--request-id",
            "cli-degree-1",
        ],
        &as_agency,
    );
    let out = stdout(&cli(request).await);
    for line in [
        "requested: consent ",
        "(pending)",
        "valid         from its approval",
        "requested by  2021999020",
        "justification \"To check your degree once\"",
        "reads         one time (0 used)",
        "decide by     ",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }

    // A decision needs the person's login.
    let out = cli(args(&["pause", &id, "--demo", &demo])).await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("samverka certs person-token"), "{stderr}");
}
