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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::BodyExt;
use samverka::cli::demo::{DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY};
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{GetRecordsRequest, RequestConsentRequest};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// chromedriver on a free port.
fn start_chromedriver(bin: &Path) -> (Killed, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

/// The demo serving, with its portal's URL and what it logs.
fn start_demo(dir: &Path) -> (Killed, String, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["demo", "--serve", "--dir"])
        .arg(dir)
        .env("RUST_LOG", "samverka_portal=debug,warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (log_tx, log_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let child = Killed(child);
    let url = loop {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("The person's web view: ") {
                    break url.trim().to_owned();
                }
            }
            Err(_) => panic!("the demo never served its web view"),
        }
    };
    (child, url, log_rx)
}

async fn browser(webdriver: &str) -> Client {
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-GB"],
            // JavaScript off: the web view works without it.
            "prefs": {"intl.accept_languages": "en-GB,en",
                      "profile.managed_default_content_settings.javascript": 2}
        }),
    );
    let mut last = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(webdriver)
            .await
        {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no WebDriver session: {last:?}");
}

/// Waits for `css`; on a timeout, the panic shows where the browser is and
/// what the page says.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let page = c.source().await.unwrap_or_default();
            panic!("{css}: {e}\nat {url}:\n{page}");
        }
    }
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

/// Clicks a button that submits a form, and waits until the browser has
/// left the page (so that what is read next is the answer's).
async fn submit(c: &Client, css: &str) {
    let old = find(c, "html").await;
    click(c, css).await;
    for _ in 0..100 {
        if old.tag_name().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: the form was not submitted");
}

/// Logs in as `person` through the development identity provider.
async fn log_in(c: &Client, portal: &str, person: &str) {
    c.goto(&format!("{portal}/login")).await.unwrap();
    click(c, &format!("input[name=person][value='{person}']")).await;
    submit(c, "#idp-login").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&format!("{portal}/")).unwrap())
        .await
        .unwrap();
}

/// A GET or POST outside the browser, with `cookie`; status and body.
async fn raw(method: &str, url: &str, cookie: &str, form: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            form.to_owned(),
        )))
        .unwrap();
    let answer = client.request(request).await.unwrap();
    let status = answer.status().as_u16();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn session_cookie(c: &Client) -> String {
    let cookie = c
        .get_named_cookie("__Host-samverka-portal")
        .await
        .expect("the portal set its session cookie");
    assert!(cookie.http_only().unwrap_or(false), "HttpOnly");
    assert!(cookie.secure().unwrap_or(false), "Secure");
    format!("__Host-samverka-portal={}", cookie.value())
}

/// The agency (the demo's reader) over mTLS.
async fn agency(dir: &Path) -> tonic::transport::Channel {
    let demo: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("demo.toml")).unwrap()).unwrap();
    let s = |t: &str, k: &str| demo[t][k].as_str().unwrap().to_owned();
    let tls = AgencyTls::from_files(
        Path::new(&s("gateway", "ca_cert")),
        Path::new(&s("agency", "cert")),
        Path::new(&s("agency", "key")),
    )
    .unwrap();
    connect(&s("agency", "gateway"), "localhost", &tls)
        .await
        .unwrap()
}

fn read(types: &[&str]) -> GetRecordsRequest {
    GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: "job_matching".into(),
        case_reference: "AF-2026-77".into(),
        ..Default::default()
    }
}

fn samverka(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

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
        .request_consent(RequestConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: "job_matching".into(),
            record_types: vec!["employment.period".into(), "competence.validated".into()],
            valid_for_days: 30,
            justification: "To match you with open positions in your field.".into(),
            request_id: "portal-test-1".into(),
            ..Default::default()
        })
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
    let (ok, out) = samverka(&[
        "passport",
        "verify",
        passport_file.to_str().unwrap(),
        "--cert",
        gateway_cert.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");

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
        .request_consent(RequestConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: "job_matching".into(),
            record_types: vec!["employment.period".into(), "competence.validated".into()],
            valid_for_days: 30,
            justification: "To match you with open positions in your field.".into(),
            request_id: "screenshots-1".into(),
            ..Default::default()
        })
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
    c.goto(&format!("{portal}/passport")).await.unwrap();
    submit(&c, "#fetch-passport").await;
    shoot("passport").await;
    c.goto(&format!("{portal}/consents?lang=sv")).await.unwrap();
    shoot("consents-sv").await;
    let _ = c.close().await;
}
