//! The pages: logging in and out, and the person's consents. The access
//! log and the passport are in [`records`].

mod consents;
mod merits;
mod records;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::App;
use crate::gateway::Refusal;
use crate::i18n::Lang;
use crate::session::Login;
use crate::web::{self, PageContext, render, see_other};

pub(crate) use consents::{consent, consents, decide, receipt};
pub(crate) use merits::{declare as declare_merit, merits, withdraw as withdraw_merit};
pub(crate) use records::{access_log, fetch_passport, gateway_cert, passport, passport_credential};

/// What a handler knows about the request's session.
pub(crate) struct Visit {
    pub(crate) lang: Lang,
    pub(crate) session: Option<String>,
    pub(crate) login: Option<Login>,
    pub(crate) csrf: String,
}

impl Visit {
    /// Reads the request's session (marking it used).
    pub(crate) fn of(app: &App, headers: &HeaderMap) -> Visit {
        let lang = web::lang(headers);
        let id = web::session_id(headers);
        let found = id
            .as_deref()
            .and_then(|id| app.sessions.with(id, |s| (s.login.clone(), s.csrf.clone())));
        match found {
            Some((login, csrf)) => Visit {
                lang,
                session: id,
                login,
                csrf,
            },
            None => Visit {
                lang,
                session: None,
                login: None,
                csrf: String::new(),
            },
        }
    }

    /// The session a form was sent in, if the form is this portal's in
    /// that session (its CSRF token and origin); `None` refuses it.
    pub(crate) fn form_session(
        &self,
        app: &App,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Option<String> {
        let id = self.session.clone()?;
        app.sessions
            .with(&id, |s| web::form_is_ours(app, headers, s, csrf))
            .unwrap_or(false)
            .then_some(id)
    }

    /// The page context for `page`.
    pub(crate) fn page<'a>(&self, page: &'a str) -> PageContext<'a> {
        PageContext {
            lang: self.lang,
            logged_in: self.login.is_some(),
            csrf: self.csrf.clone(),
            page,
            notice: None,
        }
    }

    /// A message page.
    pub(crate) fn message(
        &self,
        app: &App,
        status: StatusCode,
        heading: &str,
        message: &str,
        extra: Value,
    ) -> Response {
        let t = |k: &str| app.texts.get(self.lang, k);
        render(
            app,
            status,
            "message.html",
            self.page(""),
            context! { heading => t(heading), message => t(message), ..extra },
        )
    }

    /// The person's login if it is fresh enough for the gateway; otherwise
    /// the answer that gets one: for a page, straight to the provider and
    /// back to `return_to`; for a form, a page that says why.
    pub(crate) fn fresh_login(
        &self,
        app: &App,
        return_to: &str,
        is_form: bool,
    ) -> Result<Login, Box<Response>> {
        let Some(login) = &self.login else {
            if is_form {
                return Err(Box::new(self.message(
                    app,
                    StatusCode::UNAUTHORIZED,
                    "login_required_heading",
                    "login_required",
                    context! { login_again => return_to },
                )));
            }
            return Err(Box::new(see_other(&login_path(return_to))));
        };
        let now = samverka_gateway::time::system_now_ms().div_euclid(1000);
        let max_age = app.config.gateway.max_login_age.as_secs() as i64;
        // A margin for the calls a page makes (the passport makes three),
        // and clock differences.
        let fresh_until = login.expires.min(login.auth_time + max_age) - 60;
        if now < fresh_until {
            return Ok(login.clone());
        }
        if is_form {
            Err(Box::new(self.message(
                app,
                StatusCode::UNAUTHORIZED,
                "login_stale_heading",
                "login_stale",
                context! { login_again => return_to },
            )))
        } else {
            Err(Box::new(see_other(&login_path(return_to))))
        }
    }

    /// The gateway's refusal as a page.
    pub(crate) fn refused(&self, app: &App, refusal: Refusal, back: &str) -> Response {
        use tonic::Code;
        let status = match refusal.code {
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted if refusal.reason == "RATE_LIMITED" => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_GATEWAY,
        };
        // The gateway's message is for developers and may be in English;
        // the reason code is what a person can quote.
        tracing::info!(code = ?refusal.code, reason = %refusal.reason, "the gateway refused a call");
        let login_again = matches!(
            refusal.reason.as_str(),
            "PERSON_ASSERTION_INVALID" | "PERSON_LOGIN_STALE" | "ASSURANCE_TOO_LOW"
        )
        .then_some(back);
        // What it means for a person, where the locales say; else the
        // general text.
        let known = app
            .texts
            .of(self.lang)
            .get("reason_texts")
            .and_then(|t| t.get(&refusal.reason))
            .is_some();
        let message_key = if known {
            format!("reason_texts|{}", refusal.reason)
        } else {
            "gateway_error".to_owned()
        };
        self.message(
            app,
            status,
            "error_heading",
            &message_key,
            context! {
                reason => if refusal.reason.is_empty() { format!("{:?}", refusal.code) } else { refusal.reason },
                back => back,
                login_again => login_again,
            },
        )
    }
}

/// `/login?return_to=PATH`.
fn login_path(return_to: &str) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("/login?{q}")
}

/// A path on this portal to return to: absolute path, not `//host`, no
/// backslash (which some browsers read as a slash).
pub(crate) fn safe_return(path: Option<&str>) -> String {
    // Only the characters of a URL path and query: no control characters
    // (a browser drops a tab, making `/\t/x` into `//x`), no backslash.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/?".contains(&b);
    match path {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() < 512
                && p.bytes().all(allowed) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The start page.
pub(crate) async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let visit = Visit::of(&app, &headers);
    render(
        &app,
        StatusCode::OK,
        "home.html",
        visit.page("home"),
        context! {},
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
}

/// Starts a login at the provider: always a new authentication
/// (`prompt=login`, `max_age`), since each gateway call needs a recent one.
/// What the callback needs goes into a sealed cookie; no session yet.
pub(crate) async fn login(State(app): State<Arc<App>>, Query(q): Query<LoginQuery>) -> Response {
    let return_to = safe_return(q.return_to.as_deref());
    let (url, pending) = app
        .provider
        .authorize_url(app.config.gateway.max_login_age, return_to);
    let mut response = see_other(&url);
    if let Ok(cookie) = HeaderValue::from_str(&app.sealer.set_cookie(&pending)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider sends the person back here: the login under way is the
/// one whose sealed cookie this `state` names; the code is exchanged and
/// the ID token checked; the person gets a session with a new id (their
/// session, renewed, if they had one).
pub(crate) async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let state = q.state.unwrap_or_default();
    let failed = |why: &str| {
        tracing::info!(why, "a login did not complete");
        let mut response = visit.message(
            &app,
            StatusCode::BAD_REQUEST,
            "error_heading",
            "login_failed",
            context! { login_again => "/" },
        );
        if let Ok(clear) = HeaderValue::from_str(&crate::login_cookie::Sealer::clear_cookie(&state))
        {
            response.headers_mut().append(header::SET_COOKIE, clear);
        }
        response
    };
    // Only the answer to a login this browser began (its `state`) is
    // taken: another site's link to this page changes nothing.
    let pending = web::cookie(&headers, &crate::login_cookie::cookie_name(&state))
        .and_then(|value| app.sealer.open(&state, value));
    let Some(pending) = pending else {
        return failed("no login under way with this state");
    };
    if let Some(error) = q.error {
        return failed(&format!("the provider answered {error}"));
    }
    let Some(code) = q.code else {
        return failed("no code");
    };
    let login = match app
        .provider
        .finish(&code, &pending, app.config.gateway.max_login_age)
        .await
    {
        Ok(login) => login,
        Err(e) => return failed(&e),
    };
    let renewed = visit
        .session
        .as_deref()
        .and_then(|id| app.sessions.renew(id));
    let Some(id) = renewed.or_else(|| app.sessions.create()) else {
        tracing::warn!("too many sessions: a login was turned away");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "60")],
            "too many people are logged in: try again in a minute",
        )
            .into_response();
    };
    app.sessions.with(&id, |s| {
        // Another person logging in on the same browser sees nothing of
        // the first one's.
        if s.login.as_ref().is_some_and(|l| l.person != login.person) {
            s.receipts.clear();
            s.passport = None;
        }
        s.login = Some(login);
    });
    let mut response = see_other(&pending.return_to);
    response
        .headers_mut()
        .append(header::SET_COOKIE, web::session_cookie(&id));
    if let Ok(clear) = HeaderValue::from_str(&crate::login_cookie::Sealer::clear_cookie(&state)) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session.
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let Some(id) = visit.form_session(&app, &headers, &form.csrf) else {
        return csrf_refused(&app, &visit);
    };
    app.sessions.end(&id);
    let after = Visit {
        lang: visit.lang,
        session: None,
        login: None,
        csrf: String::new(),
    };
    let mut response = after.message(
        &app,
        StatusCode::OK,
        "logged_out_heading",
        "logged_out",
        context! {},
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, web::cleared_cookie());
    response
}

/// A form without this session's CSRF token.
pub(crate) fn csrf_refused(app: &App, visit: &Visit) -> Response {
    tracing::info!("a form without a valid CSRF token was refused");
    visit.message(
        app,
        StatusCode::FORBIDDEN,
        "forbidden_heading",
        "csrf_refused",
        context! {},
    )
}

/// Anything else.
pub(crate) async fn not_found(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    Visit::of(&app, &headers).message(
        &app,
        StatusCode::NOT_FOUND,
        "not_found_heading",
        "not_found",
        context! {},
    )
}

/// A download of `body` as `filename`.
pub(crate) fn download(content_type: &'static str, filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A date (`YYYY-MM-DD`) of a timestamp, in UTC.
pub(crate) fn day(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(samverka_gateway::time::from_timestamp)
        .map(|ms| samverka_gateway::time::rfc3339(ms)[..10].to_owned())
        .unwrap_or_default()
}

/// A time (`YYYY-MM-DD HH:MM UTC`) of a timestamp.
pub(crate) fn minute(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(samverka_gateway::time::from_timestamp)
        .map(|ms| {
            let s = samverka_gateway::time::rfc3339(ms);
            format!("{} {} UTC", &s[..10], &s[11..16])
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_portal_are_returned_to() {
        assert_eq!(safe_return(Some("/consents/x")), "/consents/x");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/\t/evil.example",
            "/\n",
            "/ä",
            "consents",
            "",
        ] {
            assert_eq!(safe_return(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return(None), "/");
    }
}
