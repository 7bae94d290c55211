//! "Who read my records" (the access log) and "my competence passport".

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::{Value, context};
use samverka_proto::v1::AccessEvent;
use serde::Deserialize;

use super::consents::start_of_day_ms;
use super::{CsrfForm, Visit, csrf_refused, download, minute};
use crate::App;
use crate::i18n::Lang;
use crate::web::render;

/// Events on one page of the access log.
const PAGE_SIZE: u32 = 25;

#[derive(Deserialize, Default)]
pub(crate) struct LogQuery {
    #[serde(default)]
    agency: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: String,
}

fn event(app: &App, lang: Lang, e: &AccessEvent) -> Value {
    let t = &app.texts;
    let what = e.method.clone();
    let purpose_text = match lang {
        Lang::Sv if !e.purpose_description_sv.is_empty() => e.purpose_description_sv.clone(),
        _ if !e.purpose_description.is_empty() => e.purpose_description.clone(),
        _ => e.purpose.clone(),
    };
    let sources_text = e
        .sources
        .iter()
        .map(|s| match s.split_once('=') {
            Some((org, outcome)) => format!("{org} ({})", outcome.to_lowercase()),
            None => s.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let reference = e.details.get("case_reference").cloned().unwrap_or_default();
    context! {
        time => minute(e.time.as_ref()),
        agency => e.agency.clone(),
        agency_name => if e.agency_name.is_empty() { e.agency.clone() } else { e.agency_name.clone() },
        what => t.named(lang, "method_names", &what),
        purpose_text => purpose_text,
        record_types_text => t.record_types(lang, &e.record_types),
        sources_text => sources_text,
        outcome => e.outcome.clone(),
        outcome_text => t.named(lang, "outcome_names", &e.outcome),
        reason => e.reason.clone(),
        case_reference => reference,
    }
}

/// The access log, newest first, filtered by agency and period.
pub(crate) async fn access_log(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let agency = q.agency.trim().to_owned();
    let invalid = |visit: &Visit| {
        visit.message(
            &app,
            StatusCode::BAD_REQUEST,
            "error_heading",
            "input_invalid",
            context! { back => "/access-log" },
        )
    };
    if !(agency.is_empty() || agency.len() == 10 && agency.bytes().all(|b| b.is_ascii_digit())) {
        return invalid(&visit);
    }
    let day = |s: &str, end: bool| -> Result<Option<i64>, ()> {
        if s.is_empty() {
            return Ok(None);
        }
        // Days the gateway takes: from 1970 to 9998.
        let start = start_of_day_ms(s).filter(|ms| (0..253_370_764_800_000).contains(ms));
        let start = start.ok_or(())?;
        Ok(Some(if end { start + 86_400_000 } else { start }))
    };
    let (Ok(from_ms), Ok(to_ms)) = (day(&q.from, false), day(&q.to, true)) else {
        return invalid(&visit);
    };
    if let (Some(from), Some(to)) = (from_ms, to_ms)
        && from >= to
    {
        return visit.message(
            &app,
            StatusCode::BAD_REQUEST,
            "error_heading",
            "dates_invalid",
            context! { back => "/access-log" },
        );
    }
    if q.page.len() > 32 || !q.page.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(&visit);
    }
    // Return here as the person left it (never with their number in it).
    let filter_query = form_urlencoded::Serializer::new(String::new())
        .append_pair("agency", &agency)
        .append_pair("from", &q.from)
        .append_pair("to", &q.to)
        .finish();
    let here = format!("/access-log?{filter_query}");
    let login = match visit.fresh_login(&app, &here, false) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let answer = app
        .gateway
        .access_log(
            &login,
            from_ms,
            to_ms,
            (!agency.is_empty()).then_some(agency.as_str()),
            &q.page,
            PAGE_SIZE,
        )
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(refusal) => return visit.refused(&app, refusal, "/access-log"),
    };
    let events: Vec<Value> = answer
        .events
        .iter()
        .map(|e| event(&app, visit.lang, e))
        .collect();
    let older = (!answer.next_page_token.is_empty())
        .then(|| format!("{here}&page={}", answer.next_page_token));
    let newer = (!q.page.is_empty()).then_some(here.clone());
    render(
        &app,
        StatusCode::OK,
        "access_log.html",
        visit.page("access_log"),
        context! {
            events => events,
            filter => context! { agency => agency, from => q.from, to => q.to },
            older => older,
            newer => newer,
        },
    )
}

/// The passport page: the last one fetched in this session, if any.
pub(crate) async fn passport(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let visit = Visit::of(&app, &headers);
    if app.config.passport_purpose.is_none() {
        return super::not_found(State(app), headers).await;
    }
    if let Err(r) = visit
        .login
        .clone()
        .ok_or(())
        .map_err(|()| crate::web::see_other("/login?return_to=%2Fpassport"))
    {
        return r;
    }
    let fetched = visit
        .session
        .as_deref()
        .and_then(|id| app.sessions.with(id, |s| s.passport.clone()).flatten());
    render_passport(&app, &visit, fetched.as_ref())
}

fn render_passport(app: &App, visit: &Visit, fetched: Option<&(String, String)>) -> Response {
    let shown = fetched.and_then(|(jws, _)| passport_view(app, visit.lang, jws));
    let empty = fetched.is_some_and(|(jws, _)| jws.is_empty());
    render(
        app,
        StatusCode::OK,
        "passport.html",
        visit.page("passport"),
        context! {
            passport => shown,
            passport_empty => empty,
            holder_salt => fetched.map(|(_, salt)| salt.clone()),
            gateway_cert => app.config.gateway_cert.is_some(),
            keys_url => app.config.gateway_keys.clone(),
        },
    )
}

/// The credential's content for people: sections of merits and what was
/// left out. It is the gateway's signed document, read back.
fn passport_view(app: &App, lang: Lang, jws: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jws.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let vc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let vc = vc.get("vc").unwrap_or(&vc);
    use samverka_gateway::credential::passport::{KINDS, Merit, kind_of, merits};
    let str_of = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let subject = &vc["credentialSubject"];
    let empty = Vec::new();
    let all = merits(vc);
    // "Signed by the register" only where the signature holds under the
    // federation's CA (the portal's trust bundle), not because a merit
    // carries one.
    let federation = std::fs::read_to_string(&app.config.gateway.ca_cert)
        .ok()
        .and_then(|pem| samverka_gateway::credential::passport::Federation::from_pem(&pem).ok());
    let nbf = vc["nbf"].as_i64().unwrap_or_default();
    let raw = subject["verifiableCredential"].as_array().unwrap_or(&empty);
    let checked: Vec<bool> = raw
        .iter()
        .map(|m| federation.as_ref().is_some_and(|f| f.attests(m, nbf)))
        .collect();
    let sections: Vec<Value> = KINDS
        .iter()
        .filter_map(|kind| {
            let of_kind: Vec<Value> = all
                .iter()
                .zip(&checked)
                .filter(|(m, _): &(&Merit, &bool)| kind_of(&m.record_type) == *kind)
                .map(|(m, ok)| merit(app, lang, m, *ok))
                .collect();
            let key = match *kind {
                "education" => "section_education",
                "employment" => "section_employment",
                "competence" => "section_competence",
                _ => "section_other",
            };
            (!of_kind.is_empty())
                .then(|| context! { heading => app.texts.get(lang, key), merits => of_kind })
        })
        .collect();
    let left_out: Vec<String> = subject["omitted"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|o| {
            format!(
                "{}: {}",
                app.texts
                    .named(lang, "record_type_names", &str_of(o, "recordType")),
                str_of(o, "reason")
            )
        })
        .collect();
    let issued = time::OffsetDateTime::parse(
        &str_of(vc, "validFrom"),
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| {
        let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
        minute(Some(&samverka_gateway::time::to_timestamp(ms)))
    })
    .unwrap_or_else(|_| str_of(vc, "validFrom"));
    Some(context! {
        issued => issued,
        issuer => str_of(&vc["issuer"], "name"),
        sections => sections,
        left_out => left_out,
    })
}

/// One merit for people, in their language: what, its result and
/// credits, when, who attests it, its classification codes, where it came
/// from.
fn merit(
    app: &App,
    lang: Lang,
    m: &samverka_gateway::credential::passport::Merit,
    signature_holds: bool,
) -> Value {
    let t = |k: &str| app.texts.get(lang, k);
    let kind = app.texts.named(
        lang,
        "achievement_types",
        m.achievement_type.trim_start_matches("ext:"),
    );
    let what = [kind, m.code.clone(), m.name.clone()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut facts = Vec::new();
    if !m.result.is_empty() {
        facts.push(format!("{} {}", t("merit_result"), m.result));
    }
    if let Some(credits) = m.credits {
        facts.push(format!("{credits} {}", m.credit_unit));
    }
    let when = if !m.start.is_empty() {
        let end = if m.end.is_empty() {
            t("merit_ongoing")
        } else {
            m.end.clone()
        };
        format!("{} – {end}", m.start)
    } else {
        m.awarded.clone()
    };
    let codes: Vec<String> = m.codes.iter().map(|(f, c)| format!("{f} {c}")).collect();
    let attested = if m.kind() == "self-declared" {
        "merit_self_declared"
    } else if m.source_attested && signature_holds {
        "merit_signed"
    } else if m.source_attested {
        "merit_unchecked"
    } else {
        "merit_relayed"
    };
    context! {
        what => what,
        kind => app.texts.named(lang, "merit_kinds", m.kind()),
        facts => facts.join(", "),
        when => when,
        by => m.creator.clone(),
        codes => codes.join("; "),
        source => format!(
            "{} ({}): {}",
            m.source_name,
            m.source_agency,
            t(attested)
        ),
    }
}

/// Fetches the passport now (see [`crate::gateway::Gateway::own_passport`]).
pub(crate) async fn fetch_passport(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let Some(session) = visit.form_session(&app, &headers, &form.csrf) else {
        return csrf_refused(&app, &visit);
    };
    let Some(purpose) = app.config.passport_purpose.clone() else {
        return super::not_found(State(app), headers).await;
    };
    let login = match visit.fresh_login(&app, "/passport", true) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let fetched = app
        .gateway
        .own_passport(&login, &purpose, app.config.passport_record_types.clone())
        .await;
    match fetched {
        Ok(passport) => {
            app.sessions.with(&session, |s| {
                s.passport = Some((passport.credential, passport.holder_salt))
            });
            // Shown by a GET, so that reloading it fetches nothing again.
            crate::web::see_other("/passport")
        }
        Err(refusal) => visit.refused(&app, refusal, "/passport"),
    }
}

/// The signed credential of the last passport fetched, as a file.
pub(crate) async fn passport_credential(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let credential = visit
        .session
        .as_deref()
        .filter(|_| visit.login.is_some())
        .and_then(|id| app.sessions.with(id, |s| s.passport.clone()).flatten())
        .map(|(jws, _)| jws)
        .filter(|jws| !jws.is_empty());
    match credential {
        Some(jws) => download("application/jwt", "passport.jws", jws),
        None => super::not_found(State(app), headers).await,
    }
}

/// The gateway's certificate, to verify the passport with.
pub(crate) async fn gateway_cert(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app
        .config
        .gateway_cert
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        Some(pem) => download("application/x-pem-file", "gateway.pem", pem),
        None => super::not_found(State(app), headers).await,
    }
}
