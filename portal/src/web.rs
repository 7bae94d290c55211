//! HTTP plumbing: security headers, cookies, the language switch, CSRF
//! checks and rendering a page with what every page shows.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value;

use crate::App;
use crate::i18n::Lang;
use crate::session::{self, COOKIE, same_secret};

/// The policy: nothing but the portal's own stylesheet and forms posting
/// to the portal itself; no scripts, frames, plugins or inline styles.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers on every answer (a handler may set its own
/// policy); pages (which show personal data) are never stored by the
/// browser or a proxy.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let https = request
        .extensions()
        .get::<PublicUrl>()
        .is_some_and(|u| u.0.starts_with("https://"));
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(h, header::CONTENT_SECURITY_POLICY, CSP);
    }
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin`: a form posted here carries its Origin (with
    // `no-referrer` browsers send `Origin: null`), other sites learn nothing.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if https {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// `?lang=sv|en` on any GET: remembered in a cookie, then back to the page
/// the link was on (the browser's same-origin `Referer`, with its query),
/// or else this path. A page that answered a form goes to its GET page.
pub(crate) async fn language_switch(request: Request, next: Next) -> Response {
    let lang = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    });
    let Some(lang) = lang.filter(|_| request.method() == axum::http::Method::GET) else {
        return next.run(request).await;
    };
    let public = request
        .extensions()
        .get::<PublicUrl>()
        .map(|u| u.0.clone())
        .unwrap_or_default();
    let from_referer = request
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .filter(|_| !public.is_empty())
        .and_then(|r| r.strip_prefix(public.as_str()))
        .filter(|rest| rest.starts_with('/'))
        .map(str::to_owned);
    let target = from_referer.unwrap_or_else(|| {
        let rest: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k != "lang")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let path = request.uri().path().to_owned();
        if rest.is_empty() {
            path
        } else {
            let q = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish();
            format!("{path}?{q}")
        }
    });
    let mut response = see_other(&get_page_of(&crate::pages::safe_return(Some(&target))));
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "lang={}; Path=/; Max-Age=31536000; Secure; SameSite=Lax",
            lang.code()
        ))
        .expect("a plain cookie"),
    );
    response
}

/// The page to show instead of one that only answers forms: a decision's
/// consent, the start page for the rest.
fn get_page_of(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("/");
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "consents", id, _action] => format!("/consents/{id}"),
        ["", "logout" | "callback"] => "/".to_owned(),
        _ => target.to_owned(),
    }
}

/// An answer of axum's own (a malformed query, form or path, a method the
/// route does not take), which is plain text in English, as a page in the
/// person's language.
pub(crate) async fn error_pages(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    if !(status.is_client_error() && plain) {
        return response;
    }
    let key = if status == StatusCode::METHOD_NOT_ALLOWED {
        "method_not_allowed"
    } else {
        "input_invalid"
    };
    crate::pages::Visit::of(&app, &headers).message(
        &app,
        status,
        "error_heading",
        key,
        minijinja::context! {},
    )
}

/// The portal's public URL, as a request extension (for HSTS and the
/// language switch).
#[derive(Clone)]
pub(crate) struct PublicUrl(pub(crate) String);

/// The stylesheet.
pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
        .into_response()
}

/// A 303 to `location` (a path on this portal, or the provider).
pub(crate) fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// A cookie's value from the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The session id the request's cookie names (the session may be gone).
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).map(str::to_owned)
}

/// The session cookie for `id`.
pub(crate) fn session_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Lax"
    ))
    .expect("session ids are URL-safe base64")
}

/// The cookie that ends the session in the browser.
pub(crate) fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
    ))
    .expect("a plain cookie")
}

/// The request's language.
pub(crate) fn lang(headers: &HeaderMap) -> Lang {
    cookie(headers, "lang")
        .and_then(Lang::parse)
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
}

/// Whether a form came from this portal: its `csrf` field is the session's
/// token and, when the browser says where it came from, that is the
/// portal's own origin.
pub(crate) fn form_is_ours(
    app: &App,
    headers: &HeaderMap,
    session: &session::Session,
    csrf: &str,
) -> bool {
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin == origin_of(&app.config.public_url),
        None => true,
    };
    origin_ok && !csrf.is_empty() && same_secret(csrf, &session.csrf)
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// What a page needs besides its own content.
pub(crate) struct PageContext<'a> {
    pub(crate) lang: Lang,
    pub(crate) logged_in: bool,
    pub(crate) csrf: String,
    pub(crate) page: &'a str,
    pub(crate) notice: Option<String>,
}

/// Renders `template` with `content` and what every page shows.
pub(crate) fn render(
    app: &App,
    status: StatusCode,
    template: &str,
    page: PageContext<'_>,
    content: Value,
) -> Response {
    let base = minijinja::context! {
        lang => page.lang.code(),
        other_lang => page.lang.other().code(),
        t => Value::from(minijinja::value::Serde(app.texts.of(page.lang))),
        logged_in => page.logged_in,
        csrf => page.csrf,
        page => page.page,
        notice => page.notice,
        passport_enabled => app.config.passport_purpose.is_some(),
    };
    let ctx = minijinja::context! { ..content, ..base };
    match app
        .templates
        .get_template(template)
        .and_then(|t| t.render(ctx))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template, error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_cookies() {
        assert_eq!(origin_of("http://localhost:8080"), "http://localhost:8080");
        assert_eq!(
            origin_of("https://a.example.se/x/y"),
            "https://a.example.se"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; lang=en; b=2"),
        );
        assert_eq!(cookie(&h, "lang"), Some("en"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(lang(&h), Lang::En);
    }
}
