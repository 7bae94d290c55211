//! End to end: `samverka consent` as a real process against a running
//! gateway, acting for the demo person whose login (an ID token of the
//! development identity provider) it is given, and offline verification
//! of the receipts it saves.

mod support;

use std::process::{Command, Output};

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// Runs the CLI off the async runtime, so the in-process gateway keeps
/// serving meanwhile.
async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("consent")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `--person-token` and a file holding the demo person's login at the
/// demo registrar's e-service, as it received it.
fn person_token(net: &TestNet) -> Vec<String> {
    let path = net.dir.path().join("login.jwt");
    let token = net.login("registrar", DEMO_SUBJECT).id_token();
    std::fs::write(&path, format!("{token}\n")).unwrap();
    vec!["--person-token".into(), path.display().to_string()]
}

/// The options to reach the gateway as `agency`, signing person
/// assertions with its assertion key, for the demo person's login.
fn connection(net: &TestNet, agency: &str) -> Vec<String> {
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
        .find(|(n, _, _)| n == agency)
        .unwrap();
    let mut options: Vec<String> = vec![
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
        "--assertion-key".into(),
        assertion_key.display().to_string(),
        "--audience".into(),
        samverka::cli::demo::demo_audience(),
    ];
    options.extend(person_token(net));
    options
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
    grant.extend(connection(&net, "registrar"));
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
    let mut list = args(&[
        "list",
        "--subject",
        DEMO_SUBJECT,
        "--json",
        "--demo",
        &net.config_path.display().to_string(),
    ]);
    list.extend(person_token(&net));
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
    revoke.extend(connection(&net, "registrar"));
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
    get.extend(connection(&net, "registrar"));
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
    let mut list = args(&["list", "--subject", DEMO_SUBJECT]);
    list.extend(connection(&net, "reader"));
    let out = cli(list).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PermissionDenied ROLE_REQUIRED"),
        "{stderr}"
    );
}
