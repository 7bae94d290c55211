//! The person's web view in a browser: chromedriver and headless Chromium
//! (WebDriver, JavaScript off), `samverka demo --serve` as a process, and
//! the helpers the browser tests share.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::BodyExt;
use samverka::cli::demo::DEMO_SUBJECT;
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::{GetRecordsRequest, RequestConsentRequest};

pub const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// chromedriver on a free port.
pub fn start_chromedriver(bin: &Path) -> (Killed, String) {
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
pub fn start_demo(dir: &Path) -> (Killed, String, std::sync::mpsc::Receiver<String>) {
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

pub async fn browser(webdriver: &str) -> Client {
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
pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
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

pub async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

pub async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

/// Clicks a button that submits a form, and waits until the browser has
/// left the page (so that what is read next is the answer's).
pub async fn submit(c: &Client, css: &str) {
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

/// WCAG 2.1 basics the page must meet, as a browser sees it: a language,
/// one `h1` and no skipped heading level, a label for every field, a name
/// for every button and link.
pub async fn assert_accessible(c: &Client) {
    let url = c.current_url().await.unwrap();
    let lang = find(c, "html").await.attr("lang").await.unwrap();
    assert!(matches!(lang.as_deref(), Some("sv" | "en")), "{url}: lang");
    let mut last = 0;
    let headings = c.find_all(Locator::Css("h1, h2, h3, h4")).await.unwrap();
    let mut h1 = 0;
    for h in headings {
        let level: usize = h.tag_name().await.unwrap()[1..].parse().unwrap();
        h1 += usize::from(level == 1);
        assert!(
            level <= last + 1,
            "{url}: a heading level skipped before h{level}"
        );
        last = level;
    }
    assert_eq!(h1, 1, "{url}: one h1");
    let fields = c
        .find_all(Locator::Css("input:not([type=hidden]), select, textarea"))
        .await
        .unwrap();
    for field in fields {
        let id = field.attr("id").await.unwrap().unwrap_or_default();
        assert!(!id.is_empty(), "{url}: a field without an id");
        let labels = c
            .find_all(Locator::Css(&format!("label[for='{id}']")))
            .await
            .unwrap();
        assert_eq!(labels.len(), 1, "{url}: the field {id} has no label");
    }
    for control in c.find_all(Locator::Css("button, a")).await.unwrap() {
        // Its text even when off screen (the skip link until focused).
        let name = control
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            !name.trim().is_empty() || control.attr("aria-label").await.unwrap().is_some(),
            "{url}: a button or link without a name"
        );
    }
}

/// Logs in as `person` through the development identity provider.
pub async fn log_in(c: &Client, portal: &str, person: &str) {
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
pub async fn raw(method: &str, url: &str, cookie: &str, form: &str) -> (u16, String) {
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

pub async fn session_cookie(c: &Client) -> String {
    let cookie = c
        .get_named_cookie("__Host-samverka-portal")
        .await
        .expect("the portal set its session cookie");
    assert!(cookie.http_only().unwrap_or(false), "HttpOnly");
    assert!(cookie.secure().unwrap_or(false), "Secure");
    format!("__Host-samverka-portal={}", cookie.value())
}

/// The agency (the demo's reader) over mTLS.
pub async fn agency(dir: &Path) -> tonic::transport::Channel {
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

pub fn read(types: &[&str]) -> GetRecordsRequest {
    GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: "job_matching".into(),
        case_reference: "AF-2026-77".into(),
        ..Default::default()
    }
}

pub fn samverka(args: &[&str]) -> (bool, String) {
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

/// The demo agency's request to the demo person for job matching
/// (employment periods and validated competence, 30 days).
pub fn job_matching_request(request_id: &str) -> RequestConsentRequest {
    RequestConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        purpose: "job_matching".into(),
        record_types: vec!["employment.period".into(), "competence.validated".into()],
        valid_for_days: 30,
        justification: "To match you with open positions in your field.".into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}
