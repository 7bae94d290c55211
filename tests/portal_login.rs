//! The portal's login and the development identity provider, at the HTTP
//! level (no browser): what the portal asks the provider for, what the
//! provider refuses, how the portal treats a login too old for the
//! gateway, and the headers and redirects every page gets.

mod support;

use std::time::Duration;

use http_body_util::BodyExt;
use samverka::cli::demo::{DEMO_SUBJECT, Network, PORTAL_CLIENT_ID};
use samverka_gateway::time::Clock;

/// A plain HTTP/1 call: status, headers and body.
async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, hyper::HeaderMap, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .unwrap()
        .unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn location(headers: &hyper::HeaderMap) -> String {
    headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookie(headers: &hyper::HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-samverka-portal="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap_or_default()
}

fn query(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// A demo network serving its portal; `edit` changes portal.toml first.
async fn network(edit: impl FnOnce(String) -> String) -> (Network, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::start(dir.path(), Clock::system()).await.unwrap();
    let file = dir.path().join("portal.toml");
    std::fs::write(&file, edit(std::fs::read_to_string(&file).unwrap())).unwrap();
    let url = net.serve_portal().await.unwrap();
    (net, dir, url)
}

/// Starts a login at the portal: the session cookie and the provider's
/// authorization URL.
async fn start_login(portal: &str, return_to: &str) -> (String, String) {
    let (status, headers, _) = call(
        "GET",
        &format!("{portal}/login?return_to={return_to}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 303);
    (set_cookie(&headers), location(&headers))
}

/// The person picks `person` at the provider: the redirect back.
async fn pick(authorize: &str, person: &str) -> String {
    let (idp, q) = authorize.split_once("/authorize?").unwrap();
    let (status, headers, body) = call(
        "POST",
        &format!("{idp}/authorize"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("{q}&person={person}"),
    )
    .await;
    assert_eq!(status, 303, "{body}");
    location(&headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_is_a_fresh_code_flow_with_pkce_and_the_provider_refuses_what_does_not_match() {
    let (net, _dir, portal) = network(|t| t).await;
    let (cookie, authorize) = start_login(&portal, "/consents").await;
    assert!(cookie.len() > 40, "a session for the login: {cookie}");
    let q = query(&authorize);
    assert_eq!(param(&q, "response_type"), "code");
    assert_eq!(param(&q, "client_id"), PORTAL_CLIENT_ID);
    assert_eq!(param(&q, "code_challenge_method"), "S256");
    assert_eq!(param(&q, "prompt"), "login", "always a new authentication");
    assert_eq!(param(&q, "max_age"), "300", "the gateway's login age");
    assert!(param(&q, "state").len() >= 16 && param(&q, "nonce").len() >= 16);
    assert_eq!(param(&q, "redirect_uri"), format!("{portal}/callback"));

    // The provider answers a redirect URI not registered for the client
    // itself, and never redirects there.
    let evil = authorize.replace(
        &url::form_urlencoded::byte_serialize(format!("{portal}/callback").as_bytes())
            .collect::<String>(),
        "https%3A%2F%2Fevil.example%2Fcallback",
    );
    let (status, headers, _) = call("GET", &evil, &[], "").await;
    assert_eq!((status, location(&headers)), (400, String::new()));

    // The code comes back; exchanged by anyone without the verifier, with
    // a wrong secret, or twice, it gives nothing.
    let callback = pick(&authorize, DEMO_SUBJECT).await;
    let code = param(&query(&callback), "code").to_owned();
    let idp = net.web.idp_issuer();
    let secret = std::fs::read_to_string(net.dir.join("certs/portal-client-secret.txt")).unwrap();
    let basic = |secret: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{PORTAL_CLIENT_ID}:{secret}"))
        )
    };
    let form = |verifier: &str| {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
            url::form_urlencoded::byte_serialize(format!("{portal}/callback").as_bytes())
                .collect::<String>()
        )
    };
    let token = |auth: String, body: String| {
        let idp = idp.clone();
        async move {
            call(
                "POST",
                &format!("{idp}/token"),
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("authorization", auth.as_str()),
                ],
                &body,
            )
            .await
        }
    };
    let (status, _, body) = token(basic("wrong"), form(&"a".repeat(43))).await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_client"), "{body}");
    let (status, _, body) = token(basic(secret.trim()), form(&"a".repeat(43))).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid_grant"), "a wrong verifier: {body}");
    // The failed attempt used the code up: the portal's own exchange
    // fails too, and no session is logged in.
    let (status, _, _) = call("GET", &callback, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 400);
    let (status, headers, _) = call(
        "GET",
        &format!("{portal}/consents"),
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(status, 303);
    assert!(location(&headers).starts_with("/login"));

    // A callback with another state leaves the login under way alone.
    let (cookie, authorize) = start_login(&portal, "/consents").await;
    let callback = pick(&authorize, DEMO_SUBJECT).await;
    let forged = format!("{portal}/callback?code=x&state=forged");
    let (status, _, _) = call("GET", &forged, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 400);
    let (status, headers, _) = call("GET", &callback, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 303, "the real answer still logs in");
    assert_eq!(location(&headers), "/consents");
    let logged_in = set_cookie(&headers);
    assert!(
        !logged_in.is_empty() && logged_in != cookie,
        "a new session id at login"
    );
    let (status, _, _) = call(
        "GET",
        &format!("{portal}/consents"),
        &[("cookie", &logged_in)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        "GET",
        &format!("{portal}/consents"),
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(status, 303, "the id before login is no longer a session");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_too_old_for_the_gateway_is_renewed_before_anything_is_asked() {
    // With a 60-second login age and the portal's 60-second margin, every
    // login is already too old: pages go back to the provider, forms say
    // why, and nothing reaches the gateway.
    let (net, _dir, portal) =
        network(|t| t.replace("max_login_age_s = 300", "max_login_age_s = 60")).await;
    let (cookie, authorize) = start_login(&portal, "/consents").await;
    assert_eq!(param(&query(&authorize), "max_age"), "60");
    let callback = pick(&authorize, DEMO_SUBJECT).await;
    let (status, headers, _) = call("GET", &callback, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 303);
    let session = set_cookie(&headers);
    let before = net.gateway.store.audit_entries(None).await.unwrap().len();
    let (status, headers, _) = call(
        "GET",
        &format!("{portal}/consents"),
        &[("cookie", &session)],
        "",
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location(&headers), "/login?return_to=%2Fconsents");
    let (status, _, page) = call("GET", &format!("{portal}/"), &[("cookie", &session)], "").await;
    assert_eq!(status, 200);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let (status, _, page) = call(
        "POST",
        &format!("{portal}/passport"),
        &[
            ("cookie", &session),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 401, "{page}");
    // (HTML-escaped: the browser reads /login?return_to=/passport.)
    assert!(page.contains("/login?return_to=&#x2f;passport"), "{page}");
    let after = net.gateway.store.audit_entries(None).await.unwrap().len();
    assert_eq!(before, after, "nothing was asked of the gateway");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers_and_redirects_stay_on_the_portal() {
    let (net, _dir, portal) = network(|t| t).await;
    for path in ["/", "/consents", "/no-such-page", "/static/style.css"] {
        let (_, headers, _) = call("GET", &format!("{portal}{path}"), &[], "").await;
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("script-src"), "no scripts at all: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
    }
    let (status, headers, _) = call("GET", &format!("{portal}/"), &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    // The language switch and the login's return path never leave.
    for (path, to) in [
        ("/consents?lang=en", "/consents"),
        ("//evil.example/?lang=en", "/"),
    ] {
        let (status, headers, _) = call("GET", &format!("{portal}{path}"), &[], "").await;
        assert_eq!((status, location(&headers).as_str()), (303, to), "{path}");
        assert!(
            headers["set-cookie"]
                .to_str()
                .unwrap()
                .starts_with("lang=en")
        );
    }
    for evil in [
        "%2F%2Fevil.example",
        "%2F%09%2Fevil.example",
        "https%3A%2F%2Fevil.example",
    ] {
        let (cookie, authorize) = start_login(&portal, evil).await;
        let callback = pick(&authorize, DEMO_SUBJECT).await;
        let (status, headers, _) = call("GET", &callback, &[("cookie", &cookie)], "").await;
        assert_eq!((status, location(&headers).as_str()), (303, "/"), "{evil}");
    }
    // Swedish by Accept-Language, English when asked.
    let (_, _, page) = call(
        "GET",
        &format!("{portal}/"),
        &[("accept-language", "sv-SE,sv;q=0.9")],
        "",
    )
    .await;
    assert!(page.contains("<html lang=\"sv\">"), "{page}");
    let (_, _, page) = call(
        "GET",
        &format!("{portal}/"),
        &[("accept-language", "en-GB,en;q=0.9")],
        "",
    )
    .await;
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    net.shutdown().await;
}
