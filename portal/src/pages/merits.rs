//! "What I can": the merits a person declares about themselves. They go
//! into the person's competence passport as self-declared, attested by no
//! one; the page says so before the person writes anything.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use samverka_proto::records::v1::SelfDeclaredMerit;
use serde::Deserialize;

use super::{CsrfForm, Visit, csrf_refused, day};
use crate::App;
use crate::web::{render, see_other};

/// The declaration form.
#[derive(Debug, Deserialize)]
pub(crate) struct MeritForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    start_date: String,
    #[serde(default)]
    end_date: String,
    /// Skill concepts, one per line.
    #[serde(default)]
    skills: String,
}

/// The person's merits and the form to declare one.
pub(crate) async fn merits(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let visit = Visit::of(&app, &headers);
    let login = match visit.fresh_login(&app, "/merits", false) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let listed = match app.gateway.list_merits(&login).await {
        Ok(m) => m,
        Err(refusal) => return visit.refused(&app, refusal, "/"),
    };
    let t = |k: &str| app.texts.get(visit.lang, k);
    let shown: Vec<_> = listed
        .iter()
        .map(|d| {
            let m = d.merit.clone().unwrap_or_default();
            let when = match (m.start_date.as_str(), m.end_date.as_str()) {
                ("", _) => String::new(),
                (start, "") => format!("{start} – {}", t("merit_ongoing")),
                (start, end) => format!("{start} – {end}"),
            };
            context! {
                id => d.merit_id.clone(),
                title => m.title,
                description => m.description,
                when => when,
                skills => m.skill_concepts,
                declared => day(d.declared_at.as_ref()),
            }
        })
        .collect();
    render(
        &app,
        StatusCode::OK,
        "merits.html",
        visit.page("merits"),
        context! { merits => shown },
    )
}

/// Declares a merit.
pub(crate) async fn declare(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<MeritForm>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    if visit.form_session(&app, &headers, &form.csrf).is_none() {
        return csrf_refused(&app, &visit);
    }
    let login = match visit.fresh_login(&app, "/merits", true) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let merit = SelfDeclaredMerit {
        title: form.title.trim().to_owned(),
        description: form.description.trim().replace("\r\n", "\n"),
        skill_concepts: form
            .skills
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        start_date: form.start_date.trim().to_owned(),
        end_date: form.end_date.trim().to_owned(),
        declared_at: String::new(),
    };
    match app.gateway.declare_merit(&login, merit).await {
        // Shown by a GET, so that reloading declares nothing again.
        Ok(_) => see_other("/merits"),
        Err(refusal) => visit.refused(&app, refusal, "/merits"),
    }
}

/// Withdraws a merit.
pub(crate) async fn withdraw(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let visit = Visit::of(&app, &headers);
    if visit.form_session(&app, &headers, &form.csrf).is_none() {
        return csrf_refused(&app, &visit);
    }
    let login = match visit.fresh_login(&app, "/merits", true) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    match app.gateway.withdraw_merit(&login, &id).await {
        Ok(_) => see_other("/merits"),
        Err(refusal) => visit.refused(&app, refusal, "/merits"),
    }
}
