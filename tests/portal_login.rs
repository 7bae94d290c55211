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

/// A GET of a portal page with `cookie`: its status.
async fn status_of(portal: &str, path: &str, cookie: &str) -> u16 {
    call("GET", &format!("{portal}{path}"), &[("cookie", cookie)], "")
        .await
        .0
}

fn location(headers: &hyper::HeaderMap) -> String {
    headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The `name=value` of the cookie set whose name starts with `prefix`.
fn cookie_set(headers: &hyper::HeaderMap, prefix: &str) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(prefix))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookie(headers: &hyper::HeaderMap) -> String {
    cookie_set(headers, "__Host-samverka-portal=")
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

/// Starts a login at the portal: the login's sealed cookie and the
/// provider's authorization URL. No session is made for it.
async fn start_login(portal: &str, return_to: &str) -> (String, String) {
    let (status, headers, _) = call(
        "GET",
        &format!("{portal}/login?return_to={return_to}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        set_cookie(&headers),
        "",
        "no session before a login succeeds"
    );
    (
        cookie_set(&headers, "__Host-samverka-login-"),
        location(&headers),
    )
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
    assert!(cookie.len() > 60, "the login under way, sealed: {cookie}");
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
    // fails too, and there is no session.
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
    let status = status_of(&portal, "/consents", &cookie).await;
    assert_eq!(status, 303, "the login's cookie is no session");
    let (status, _, _) = call("GET", &callback, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 400, "a login is finished once");

    // Two logins under way in one browser (two tabs) both finish, and
    // the second renews the session the first made.
    let (first, first_url) = start_login(&portal, "/consents").await;
    let (second, second_url) = start_login(&portal, "/access-log").await;
    let (first_back, second_back) = (
        pick(&first_url, DEMO_SUBJECT).await,
        pick(&second_url, DEMO_SUBJECT).await,
    );
    let both = format!("{first}; {second}");
    let (status, headers, _) = call("GET", &first_back, &[("cookie", &both)], "").await;
    assert_eq!((status, location(&headers).as_str()), (303, "/consents"));
    let session = set_cookie(&headers);
    let with_session = format!("{both}; {session}");
    let (status, headers, _) = call("GET", &second_back, &[("cookie", &with_session)], "").await;
    assert_eq!((status, location(&headers).as_str()), (303, "/access-log"));
    let renewed = set_cookie(&headers);
    assert!(!renewed.is_empty() && renewed != session);
    let (status, _, _) = call(
        "GET",
        &format!("{portal}/consents"),
        &[("cookie", &session)],
        "",
    )
    .await;
    assert_eq!(
        status, 303,
        "the id before the second login is no longer a session"
    );
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

/// Logs `person` in over HTTP: the session cookie and its CSRF token.
async fn logged_in(portal: &str, person: &str) -> (String, String) {
    let (login, authorize) = start_login(portal, "/").await;
    let back = pick(&authorize, person).await;
    let (status, headers, _) = call("GET", &back, &[("cookie", &login)], "").await;
    assert_eq!(status, 303);
    let session = set_cookie(&headers);
    let (_, _, page) = call("GET", &format!("{portal}/"), &[("cookie", &session)], "").await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    (session, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_means_what_the_person_chose_and_errors_are_pages_in_their_language() {
    let (net, _dir, portal) = network(|t| t).await;
    let (session, csrf) = logged_in(&portal, DEMO_SUBJECT).await;
    let form = [
        ("cookie", session.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept-language", "en"),
    ];
    // A request naming its sources: approving with none ticked is not
    // approving all of them.
    let mut agency = support::consents(&net, "reader").await;
    let (he, emp) = (support::HE, support::EMP);
    let request = agency
        .request_consent(samverka_proto::v1::RequestConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: "study_guidance".into(),
            record_types: vec!["employment.period".into(), "education.degree".into()],
            source_agencies: vec![he.into(), emp.into()],
            valid_for_days: 30,
            justification: "Guidance".into(),
            request_id: "sources-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let approve = format!("{portal}/consents/{}/approve", request.consent_id);
    let (status, _, page) = call(
        "POST",
        &approve,
        &form,
        &format!("csrf={csrf}&sources_offered=1&record_type=employment.period&valid_for_days=30"),
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Choose at least one register"), "{page}");
    // A day after what was asked is capped to it; a past day refused.
    let (status, _, page) = call(
        "POST",
        &approve,
        &form,
        &format!(
            "csrf={csrf}&record_type=employment.period&valid_until=2000-01-01&valid_for_days=30"
        ),
    )
    .await;
    assert_eq!(status, 400, "{page}");
    let far =
        samverka_gateway::time::rfc3339(samverka_gateway::time::system_now_ms() + 30 * 86_400_000);
    let (status, headers, page) = call(
        "POST",
        &approve,
        &form,
        &format!(
            "csrf={csrf}&sources_offered=1&source={emp}&record_type=employment.period&valid_until={}&valid_for_days=30",
            &far[..10]
        ),
    )
    .await;
    assert_eq!(status, 303, "{page}");
    assert!(location(&headers).contains("?receipt="));
    let stored = net
        .gateway
        .store
        .consent(&request.consent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.source_agencies, [emp.to_string()]);
    assert_eq!(stored.record_types, ["employment.period".to_string()]);

    // The gateway's refusal, in words: it is no longer pending.
    let (status, _, page) = call(
        "POST",
        &approve,
        &form,
        &format!("csrf={csrf}&record_type=employment.period"),
    )
    .await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("The consent has changed meanwhile")
            && page.contains("CONSENT_STATE_INVALID"),
        "{page}"
    );

    // axum's own refusals are pages too.
    for (method, path, status) in [
        ("GET", "/logout", 405),
        ("GET", "/receipts/not-a-number", 400),
        ("GET", "/access-log?from=1900-01-01", 400),
        ("GET", "/access-log?from=2026-02-01&to=2026-01-01", 400),
    ] {
        let (got, headers, page) = call(method, &format!("{portal}{path}"), &form, "").await;
        assert_eq!(got, status, "{path}: {page}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(page.contains("<html lang=\"en\">"), "{path}: {page}");
    }

    // The language switch goes back to the page it was on, with its query;
    // from a page that answered a form, to that form's page.
    for (referer, to) in [
        (
            format!("{portal}/access-log?agency=2021999020"),
            "/access-log?agency=2021999020".to_owned(),
        ),
        (
            format!("{portal}/consents/{}/approve", request.consent_id),
            format!("/consents/{}", request.consent_id),
        ),
        ("https://evil.example/x".to_owned(), "/".to_owned()),
    ] {
        let (status, headers, _) = call(
            "GET",
            &format!("{portal}/?lang=sv"),
            &[("referer", referer.as_str())],
            "",
        )
        .await;
        assert_eq!((status, location(&headers)), (303, to), "{referer}");
    }
    net.shutdown().await;
}
