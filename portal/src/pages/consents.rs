//! "My consents": the list, one consent, the decisions and their receipts.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::{Value, context};
use samverka_proto::v1::{Consent, ConsentReceipt, consent::Status};
use serde::{Deserialize, Serialize};

use super::{Visit, csrf_refused, day, download, minute};
use crate::App;
use crate::gateway::Narrowing;
use crate::i18n::Lang;
use crate::web::{render, see_other};

/// A status as the templates and locales name it.
fn status_code(status: i32) -> &'static str {
    match Status::try_from(status).unwrap_or(Status::Unspecified) {
        Status::Active => "active",
        Status::Pending => "pending",
        Status::Paused => "paused",
        Status::Revoked => "revoked",
        Status::Expired => "expired",
        Status::Rejected => "rejected",
        Status::Used => "used",
        Status::Unspecified => "unknown",
    }
}

#[derive(Serialize)]
struct Item {
    code: String,
    text: String,
}

/// A consent as the pages show it.
#[derive(Serialize)]
struct Shown {
    consent_id: String,
    status: &'static str,
    status_text: String,
    grantee_agency: String,
    grantee_name: String,
    registrar_name: String,
    purpose_text: String,
    record_types_text: String,
    record_type_items: Vec<Item>,
    sources_text: String,
    source_items: Vec<Item>,
    justification: String,
    period: String,
    reads: String,
    from: String,
    until: String,
    valid_for_days: u32,
    decide_by: String,
    revocation_reason: String,
    /// For a pending request: the days an earlier end may be on.
    first_day: String,
    last_day: String,
}

fn shown(app: &App, lang: Lang, c: &Consent) -> Shown {
    let texts = &app.texts;
    let status = status_code(c.status);
    let purpose_words = match lang {
        Lang::Sv if !c.purpose_description_sv.is_empty() => c.purpose_description_sv.clone(),
        _ if !c.purpose_description.is_empty() => c.purpose_description.clone(),
        _ => c.purpose.clone(),
    };
    let or_org = |name: &str, org: &str| {
        if name.is_empty() {
            org.to_owned()
        } else {
            name.to_owned()
        }
    };
    let period = match (c.records_from.as_str(), c.records_until.as_str()) {
        ("", "") => String::new(),
        (from, until) => format!("{from} – {until}"),
    };
    let reads = if c.one_time {
        format!("1 ({})", c.reads_used)
    } else if c.max_reads > 0 {
        format!("{} / {}", c.reads_used, c.max_reads)
    } else {
        String::new()
    };
    Shown {
        consent_id: c.consent_id.clone(),
        status,
        status_text: texts.named(lang, "status_names", status),
        grantee_agency: c.grantee_agency.clone(),
        grantee_name: or_org(&c.grantee_name, &c.grantee_agency),
        registrar_name: or_org(&c.registrar_name, &c.registrar_agency),
        purpose_text: purpose_words,
        record_types_text: texts.record_types(lang, &c.record_types),
        record_type_items: c
            .record_types
            .iter()
            .map(|t| Item {
                code: t.clone(),
                text: texts.named(lang, "record_type_names", t),
            })
            .collect(),
        sources_text: if c.source_agencies.is_empty() {
            texts.get(lang, "all_sources")
        } else {
            c.source_agencies.join(", ")
        },
        source_items: c
            .source_agencies
            .iter()
            .map(|s| Item {
                code: s.clone(),
                text: s.clone(),
            })
            .collect(),
        justification: c.justification.clone(),
        period,
        reads,
        from: day(c.valid_from.as_ref()),
        until: day(c.valid_until.as_ref()),
        valid_for_days: if status == "pending" {
            c.valid_for_days
        } else {
            0
        },
        decide_by: if status == "pending" {
            minute(c.decide_by.as_ref())
        } else {
            String::new()
        },
        revocation_reason: c.revocation_reason.clone(),
        first_day: day_of(now_ms()),
        // The last day whose end is still within what was asked.
        last_day: day_of(now_ms() + i64::from(c.valid_for_days) * DAY_MS - DAY_MS),
    }
}

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    samverka_gateway::time::system_now_ms()
}

/// `YYYY-MM-DD` of a time.
fn day_of(ms: i64) -> String {
    samverka_gateway::time::rfc3339(ms)[..10].to_owned()
}

/// The list, grouped: requests waiting, in force, paused, ended.
pub(crate) async fn consents(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let visit = Visit::of(&app, &headers);
    let login = match visit.fresh_login(&app, "/consents", false) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let all = match app.gateway.list_consents(&login).await {
        Ok(all) => all,
        Err(refusal) => return visit.refused(&app, refusal, "/consents"),
    };
    let groups = [
        ("pending", &["pending"][..]),
        ("active", &["active"][..]),
        ("paused", &["paused"][..]),
        (
            "ended",
            &["revoked", "expired", "rejected", "used", "unknown"][..],
        ),
    ]
    .map(|(key, states)| {
        let consents: Vec<Shown> = all
            .iter()
            .filter(|c| states.contains(&status_code(c.status)))
            .map(|c| shown(&app, visit.lang, c))
            .collect();
        context! {
            key => key,
            heading => app.texts.get(visit.lang, &format!("group_{key}")),
            consents => minijinja::value::Serde(consents),
        }
    });
    render(
        &app,
        StatusCode::OK,
        "consents.html",
        visit.page("consents"),
        context! { groups => groups.to_vec() },
    )
}

#[derive(Deserialize)]
pub(crate) struct ConsentQuery {
    receipt: Option<u64>,
}

/// A consent id as the gateway makes them (a UUID); anything else is not
/// sent on.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One consent, with the forms its state allows, and the receipt of the
/// decision just made.
pub(crate) async fn consent(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    if !plausible_id(&id) {
        return super::not_found(State(app), headers).await;
    }
    let here = format!("/consents/{id}");
    let login = match visit.fresh_login(&app, &here, false) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let c = match app.gateway.consent(&login, &id).await {
        Ok(c) => c,
        Err(refusal) => return visit.refused(&app, refusal, "/consents"),
    };
    let session = visit.session.as_deref().unwrap_or_default();
    let receipts = app
        .sessions
        .with(session, |s| {
            s.receipts
                .iter()
                .filter(|r| r.consent_id == id)
                .cloned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let event_text = |e: &str| app.texts.named(visit.lang, "event_names", e);
    let receipt = q
        .receipt
        .and_then(|n| receipts.iter().find(|r| r.number == n))
        .map(|r| {
            let claims = receipt_claims(&r.jws);
            context! {
                number => r.number,
                event => r.event.clone(),
                event_text => event_text(&r.event),
                jws => r.jws.clone(),
                recorded_at => claims.get("recorded_at").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                issuer => claims.get("iss").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
            }
        });
    let listed: Vec<Value> = receipts
        .iter()
        .map(|r| {
            context! { number => r.number, consent_id => r.consent_id.clone(), event => r.event.clone(), event_text => event_text(&r.event) }
        })
        .collect();
    render(
        &app,
        StatusCode::OK,
        "consent.html",
        visit.page("consents"),
        context! { c => minijinja::value::Serde(shown(&app, visit.lang, &c)), receipt => receipt, receipts => listed },
    )
}

/// The payload of a receipt JWS (the gateway signed it; shown, not trusted
/// for anything).
fn receipt_claims(jws: &str) -> serde_json::Map<String, serde_json::Value> {
    use base64::Engine;
    jws.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// A decision form: approve (with the narrowing chosen), reject, pause,
/// resume, revoke. The receipt is kept in the session and shown.
pub(crate) async fn decide(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let all = |name: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let Some(session) = visit.form_session(&app, &headers, &field("csrf")) else {
        return csrf_refused(&app, &visit);
    };
    if !plausible_id(&id) {
        return super::not_found(State(app), headers).await;
    }
    let here = format!("/consents/{id}");
    let login = match visit.fresh_login(&app, &here, true) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let reason = field("reason");
    let invalid = |key: &str| {
        visit.message(
            &app,
            StatusCode::BAD_REQUEST,
            "error_heading",
            key,
            context! { back => here.clone() },
        )
    };
    if reason.chars().count() > 500 {
        return invalid("reason_texts|FIELD_TOO_LONG");
    }
    let answer: Result<ConsentReceipt, crate::gateway::Refusal> = match action.as_str() {
        "approve" => {
            let until = field("valid_until");
            // The end of the day chosen, but never after what was asked
            // (the request's days from now): the person picks a day, the
            // agency asked for a length.
            let asked_end = field("valid_for_days")
                .parse::<i64>()
                .ok()
                .map(|days| now_ms() + days * DAY_MS);
            let valid_until_ms = if until.is_empty() {
                None
            } else {
                match end_of_day_ms(&until) {
                    Some(ms) if ms > now_ms() => Some(asked_end.map_or(ms, |end| ms.min(end))),
                    _ => return invalid("dates_invalid"),
                }
            };
            let narrowing = Narrowing {
                record_types: all("record_type"),
                source_agencies: all("source"),
                valid_until_ms,
            };
            if narrowing.record_types.is_empty() {
                return invalid("input_invalid");
            }
            // No register ticked is not "as asked".
            if field("sources_offered") == "1" && narrowing.source_agencies.is_empty() {
                return invalid("sources_none");
            }
            app.gateway.approve(&login, &id, narrowing).await
        }
        "reject" => app.gateway.reject(&login, &id, &reason).await,
        "pause" => app.gateway.pause(&login, &id).await,
        "resume" => app.gateway.resume(&login, &id).await,
        "revoke" => {
            let reason = if reason.is_empty() {
                "revoked by the person in the e-service".to_owned()
            } else {
                reason
            };
            app.gateway.revoke(&login, &id, &reason).await
        }
        _ => return super::not_found(State(app), headers).await,
    };
    match answer {
        Ok(receipt) => {
            let number = app
                .sessions
                .with(&session, |s| {
                    s.keep_receipt(&id, &receipt.event, &receipt.jws)
                })
                .unwrap_or(0);
            see_other(&format!("{here}?receipt={number}"))
        }
        Err(refusal) => visit.refused(&app, refusal, &here),
    }
}

/// The end of a day `YYYY-MM-DD` (23:59:59 UTC), in Unix ms.
fn end_of_day_ms(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(date, format).ok()?;
    let t = d.with_hms(23, 59, 59).ok()?.assume_utc();
    Some(t.unix_timestamp() * 1000)
}

/// The start of a day `YYYY-MM-DD` (00:00 UTC), in Unix ms.
pub(crate) fn start_of_day_ms(date: &str) -> Option<i64> {
    end_of_day_ms(date).map(|ms| ms - 86_399_000)
}

/// A receipt of this session, as a file.
pub(crate) async fn receipt(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(number): Path<u64>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    let found = visit.session.as_deref().and_then(|id| {
        app.sessions
            .with(id, |s| {
                s.receipts.iter().find(|r| r.number == number).cloned()
            })
            .flatten()
    });
    match found {
        Some(r) if visit.login.is_some() => download(
            "application/jose",
            &format!("receipt-{}-{}.jws", r.consent_id, r.event),
            r.jws,
        ),
        _ => super::not_found(State(app), headers).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_ids() {
        assert_eq!(end_of_day_ms("1970-01-01"), Some(86_399_000));
        assert_eq!(start_of_day_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(end_of_day_ms("1970-13-01"), None);
        assert!(plausible_id("0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"));
        assert!(!plausible_id("../x"));
        assert!(!plausible_id(""));
    }
}
