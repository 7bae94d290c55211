//! The person's web view, end to end in a real browser: `samverka demo
//! --serve` as a process, headless Chromium driven over WebDriver
//! (chromedriver), an agency's real gRPC calls with its certificate.
//!
//! The person logs in at the development identity provider, finds the
//! agency's pending request, approves it narrowed, sees the agency's read
//! in "who read my records", revokes, and the agency's next read is
//! refused; the passport is fetched, downloaded and verified by `samverka
//! passport verify`. A form without its CSRF token, a session cookie the
//! portal never issued, and another person's consent are refused.
//!
//! Needs `chromedriver` and `chromium` (Debian `chromium-driver`,
//! `chromium`; `.ci/run` installs them); without them the test says so
//! and skips.

mod support;

use std::path::Path;

use fantoccini::{Client, Locator};
use samverka::cli::demo::{DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY};
use samverka_proto::v1::RequestConsentRequest;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::browser::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_decides_in_the_browser_and_sees_who_read_their_records() {
    let Some(driver_bin) = chromedriver() else {
        eprintln!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver; .ci/run does)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_demo, portal, log) = start_demo(dir.path());
    let (_driver, webdriver) = start_chromedriver(&driver_bin);
    let c = browser(&webdriver).await;
    // The journey in a task of its own, so that the browser is closed
    // (and no Chromium left behind) whether it passes or panics.
    let journey = tokio::spawn({
        let (c, portal, dir) = (c.clone(), portal.clone(), dir.path().to_owned());
        async move { journey(&c, &portal, &dir).await }
    })
    .await;
    let _ = c.close().await;
    let visited = journey.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    // No personal identity number in any URL the browser went to, nor in
    // anything the portal logged.
    for url in &visited {
        for pin in [DEMO_SUBJECT, OTHER_SUBJECT] {
            assert!(!url.contains(pin), "a URL names the person: {url}");
        }
    }
    let logged: Vec<String> = log.try_iter().collect();
    assert!(
        logged.iter().any(|l| l.contains("samverka_portal")),
        "the portal logged nothing at debug: the check below would prove nothing"
    );
    for line in &logged {
        for pin in [DEMO_SUBJECT, OTHER_SUBJECT] {
            assert!(!line.contains(pin), "a log line names the person: {line}");
        }
    }
}

/// The whole journey; returns every URL the browser was at.
async fn journey(c: &Client, portal: &str, dir: &Path) -> Vec<String> {
    let mut visited = Vec::new();
    let channel = agency(dir).await;
    let mut consents = ConsentsClient::new(channel.clone());
    let mut exchange = RecordExchangeClient::new(channel);

    // The agency asks; the request waits for the person.
    let requested = consents
        .request_consent(job_matching_request("portal-test-1"))
        .await
        .unwrap()
        .into_inner();

    // Not logged in: the pages send the person to log in.
    c.goto(portal).await.unwrap();
    let lang = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    assert_eq!(lang.as_deref(), Some("en"), "Accept-Language en-GB");
    log_in(c, portal, DEMO_SUBJECT).await;
    let cookie = session_cookie(c).await;

    // The pending request, in plain language; approved without one type.
    c.goto(&format!("{portal}/consents")).await.unwrap();
    visited.push(c.current_url().await.unwrap().to_string());
    assert_accessible(c).await;
    let pending = text(c, "section[aria-labelledby=g-pending]").await;
    assert!(
        pending.contains("Study and career guidance service (demo)"),
        "{pending}"
    );
    assert!(pending.contains("employment periods"), "{pending}");
    c.goto(&format!("{portal}/consents/{}", requested.consent_id))
        .await
        .unwrap();
    assert!(
        text(c, "main")
            .await
            .contains("To match you with open positions")
    );
    assert_accessible(c).await;
    click(c, "input[name=record_type][value='competence.validated']").await;
    submit(c, "#approve").await;
    visited.push(c.current_url().await.unwrap().to_string());
    let receipt = text(c, ".receipt").await;
    assert!(receipt.contains("Request approved"), "{receipt}");
    assert_eq!(text(c, "#status").await, "In force");
    // The receipt downloads and verifies against the gateway's certificate.
    let href = c
        .find(Locator::Css(".receipt a[download]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let (status, jws) = raw("GET", &format!("{portal}{href}"), &cookie, "").await;
    assert_eq!(status, 200);
    let receipt_file = dir.join("receipt.jws");
    std::fs::write(&receipt_file, &jws).unwrap();
    let gateway_cert = dir.join("certs").join("gateway.pem");
    let (ok, out) = samverka(&[
        "consent",
        "verify-receipt",
        receipt_file.to_str().unwrap(),
        "--cert",
        gateway_cert.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("approved"), "{out}");

    // The agency reads what was approved, and not what was narrowed away.
    exchange
        .get_records(read(&["employment.period"]))
        .await
        .unwrap();
    let narrowed = exchange
        .get_records(read(&["competence.validated"]))
        .await
        .unwrap_err();
    assert_eq!(narrowed.code(), tonic::Code::PermissionDenied);

    // Who read my records: the read, newest first, with its case reference.
    c.goto(&format!("{portal}/access-log?agency={READER_AGENCY}"))
        .await
        .unwrap();
    visited.push(c.current_url().await.unwrap().to_string());
    assert_accessible(c).await;
    let rows = text(c, "table tbody").await;
    let first = rows.lines().next().unwrap_or_default().to_owned();
    assert!(
        first.contains("Read records") && first.contains("Refused"),
        "newest first: {rows}"
    );
    assert!(
        rows.lines().any(|l| l.contains("Read records")
            && l.contains("Allowed")
            && l.contains("AF-2026-77")),
        "{rows}"
    );
    assert!(
        !rows.contains("Looked at this log"),
        "filtered by agency: {rows}"
    );

    // A period with nothing in it.
    c.goto(&format!("{portal}/access-log?from=2099-01-01"))
        .await
        .unwrap();
    assert!(
        text(c, "main")
            .await
            .contains("Nothing recorded in this period")
    );

    // Paused: reads refused; resumed: allowed again.
    c.goto(&format!("{portal}/consents/{}", requested.consent_id))
        .await
        .unwrap();
    submit(c, "#pause").await;
    assert_eq!(text(c, "#status").await, "Paused");
    assert!(text(c, ".receipt").await.contains("Consent paused"));
    let paused = exchange
        .get_records(read(&["employment.period"]))
        .await
        .unwrap_err();
    assert_eq!(support::reason(&paused), "CONSENT_PAUSED");
    submit(c, "#resume").await;
    assert_eq!(text(c, "#status").await, "In force");
    exchange
        .get_records(read(&["employment.period"]))
        .await
        .unwrap();

    // Revoked in the browser: the next read is refused.
    c.goto(&format!("{portal}/consents/{}", requested.consent_id))
        .await
        .unwrap();
    submit(c, "#revoke").await;
    assert_eq!(text(c, "#status").await, "Revoked");
    let refused = exchange
        .get_records(read(&["employment.period"]))
        .await
        .unwrap_err();
    assert_eq!(support::reason(&refused), "CONSENT_REVOKED");

    // The passport: fetched, shown, downloaded and verified.
    c.goto(&format!("{portal}/passport")).await.unwrap();
    submit(c, "#fetch-passport").await;
    assert_accessible(c).await;
    let shown = text(c, "main").await;
    assert!(
        shown.contains("Education") && shown.contains("Employment"),
        "{shown}"
    );
    let (status, credential) = raw(
        "GET",
        &format!("{portal}/passport/credential.jws"),
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, 200);
    let passport_file = dir.join("passport.jws");
    std::fs::write(&passport_file, &credential).unwrap();
    // The holder salt shown beside it proves it is the person's.
    let salt = c
        .find(Locator::Css("#holder-salt"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (ok, out) = samverka(&[
        "passport",
        "verify",
        passport_file.to_str().unwrap(),
        "--cert",
        gateway_cert.to_str().unwrap(),
        "--person",
        DEMO_SUBJECT,
        "--salt",
        &salt,
    ]);
    assert!(ok && out.contains("holder     ok"), "{out}");
    // The command the page shows: with the gateway's key set from its
    // public listener, and the passport's status.
    let command = c
        .find(Locator::Css("#verify-command"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys_url = command
        .split_whitespace()
        .skip_while(|w| *w != "--keys")
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(command.contains("--check-status"), "{command}");
    let (ok, out) = samverka(&[
        "passport",
        "verify",
        passport_file.to_str().unwrap(),
        "--keys",
        &keys_url,
        "--ca",
        dir.join("certs").join("ca.pem").to_str().unwrap(),
        "--check-status",
        "--person",
        DEMO_SUBJECT,
        "--salt",
        &salt,
    ]);
    assert!(
        ok && out.contains("status     ok") && out.contains("key        ok"),
        "{out}"
    );

    // A form without the session's CSRF token changes nothing.
    let other_request = consents
        .request_consent(RequestConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: "job_matching".into(),
            record_types: vec!["employment.period".into()],
            valid_for_days: 10,
            justification: "A second request.".into(),
            request_id: "portal-test-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let approve = format!("{portal}/consents/{}/approve", other_request.consent_id);
    for form in [
        "record_type=employment.period",
        "csrf=forged&record_type=employment.period",
    ] {
        let (status, _) = raw("POST", &approve, &cookie, form).await;
        assert_eq!(status, 403, "{form}");
    }
    // A session cookie the portal never issued is no session.
    let (status, _) = raw(
        "GET",
        &format!("{portal}/consents"),
        "__Host-samverka-portal=forged-session-id",
        "",
    )
    .await;
    assert_eq!(status, 303, "to the login");
    c.goto(&format!("{portal}/consents/{}", other_request.consent_id))
        .await
        .unwrap();
    assert_eq!(text(c, "#status").await, "Waiting for your decision");
    // Rejected with its own form, it stays rejected.
    find(c, "#reject-reason")
        .await
        .send_keys("not now")
        .await
        .unwrap();
    submit(c, "#reject").await;
    assert_eq!(text(c, "#status").await, "Rejected");
    assert!(text(c, ".receipt").await.contains("Request rejected"));

    // Another person sees nothing of the first one's consents.
    submit(c, "header form button").await;
    assert!(text(c, "h1").await.contains("logged out"));
    let (status, _) = raw("GET", &format!("{portal}/consents"), &cookie, "").await;
    assert_eq!(status, 303, "logout ended the session");
    log_in(c, portal, OTHER_SUBJECT).await;
    let other_cookie = session_cookie(c).await;
    let (status, page) = raw(
        "GET",
        &format!("{portal}/consents/{}", other_request.consent_id),
        &other_cookie,
        "",
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("PERSON_MISMATCH"), "{page}");
    // ... nor decides on them, with a valid form of its own session.
    c.goto(&format!("{portal}/passport")).await.unwrap();
    let csrf = c
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let (status, page) = raw(
        "POST",
        &format!("{portal}/consents/{}/reject", other_request.consent_id),
        &other_cookie,
        &format!("csrf={csrf}&reason=not+mine"),
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("PERSON_MISMATCH"), "{page}");
    visited.push(c.current_url().await.unwrap().to_string());

    // Swedish on request, remembered.
    c.goto(&format!("{portal}/consents?lang=sv")).await.unwrap();
    assert_eq!(text(c, "h1").await, "Mina samtycken");
    visited
}

/// Not a test: takes a screenshot of each page into `docs/screenshots/`,
/// on demand (`cargo test --test portal -- --ignored screenshots`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots/; run on demand"]
async fn screenshots() {
    let driver_bin = chromedriver().expect("chromedriver (apt-get install chromium-driver)");
    let dir = tempfile::tempdir().unwrap();
    let (_demo, portal, _log) = start_demo(dir.path());
    let (_driver, webdriver) = start_chromedriver(&driver_bin);
    let c = browser(&webdriver).await;
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    let shoot = |name: &'static str| {
        let (c, out) = (c.clone(), out.clone());
        async move {
            let png = c.screenshot().await.unwrap();
            std::fs::write(out.join(format!("{name}.png")), png).unwrap();
        }
    };
    let channel = agency(dir.path()).await;
    let requested = ConsentsClient::new(channel.clone())
        .request_consent(job_matching_request("screenshots-1"))
        .await
        .unwrap()
        .into_inner();
    c.goto(&portal).await.unwrap();
    shoot("start").await;
    c.goto(&format!("{portal}/login")).await.unwrap();
    find(&c, "#idp-login").await;
    shoot("login").await;
    submit(&c, "#idp-login").await;
    c.goto(&format!("{portal}/consents")).await.unwrap();
    shoot("consents").await;
    c.goto(&format!("{portal}/consents/{}", requested.consent_id))
        .await
        .unwrap();
    shoot("request").await;
    click(&c, "input[name=record_type][value='competence.validated']").await;
    submit(&c, "#approve").await;
    find(&c, ".receipt").await;
    shoot("approved").await;
    RecordExchangeClient::new(channel)
        .get_records(read(&["employment.period"]))
        .await
        .unwrap();
    c.goto(&format!("{portal}/access-log")).await.unwrap();
    shoot("access-log").await;
    c.goto(&format!("{portal}/merits")).await.unwrap();
    find(&c, "#merit-title")
        .await
        .send_keys("Kassör i idrottsförening")
        .await
        .unwrap();
    find(&c, "#merit-description")
        .await
        .send_keys("Kept the accounts of a sports club for five years.")
        .await
        .unwrap();
    submit(&c, "#declare").await;
    shoot("merits").await;
    c.goto(&format!("{portal}/passport")).await.unwrap();
    submit(&c, "#fetch-passport").await;
    shoot("passport").await;
    c.goto(&format!("{portal}/consents?lang=sv")).await.unwrap();
    shoot("consents-sv").await;
    let _ = c.close().await;
}

/// `samverka portal --config FILE` on its own, beside a serving demo: it
/// discovers the provider, answers, and sends a login there; a bad file
/// exits 64 and an unreachable provider 1, each saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samverka_portal_serves_from_its_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_demo, _demo_portal, _log) = start_demo(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(dir.path().join("portal.toml")).unwrap();
    let mut config: toml::Table = toml::from_str(&text).unwrap();
    config["portal"]["address"] = toml::Value::String(format!("127.0.0.1:{port}"));
    config["portal"]["public_url"] = toml::Value::String(format!("http://localhost:{port}"));
    let file = dir.path().join("portal-2.toml");
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let child = Killed(
        std::process::Command::new(BIN)
            .args(["portal", "--config", file.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://localhost:{port}");
    let idp = config["login"]["issuer"].as_str().unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let mut up = false;
    for _ in 0..150 {
        if let Ok(r) = client.get(format!("{url}/").parse().unwrap()).await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the portal never answered");
    let login = client
        .get(format!("{url}/login").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let to = login.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(&format!("{idp}/authorize?")), "{to}");
    drop(child);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("[login]", "[login]\ncolour = \"red\"")).unwrap();
    let (ok, out) = samverka(&["portal", "--config", bad.to_str().unwrap()]);
    let code = std::process::Command::new(BIN)
        .args(["portal", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .code();
    assert!(
        !ok && out.contains("colour") && code == Some(64),
        "{code:?} {out}"
    );
    let unreachable = dir.path().join("unreachable.toml");
    config["login"]["issuer"] = toml::Value::String("http://127.0.0.1:9".into());
    std::fs::write(&unreachable, toml::to_string(&config).unwrap()).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["portal", "--config", unreachable.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot discover the identity provider"),
        "{said}"
    );
}
