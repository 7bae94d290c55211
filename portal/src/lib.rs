//! The person's own web view of samverka: a registrar e-service where a
//! person logs in with their eID (OpenID Connect), sees the consents they
//! gave and the requests waiting for them, decides (approve, possibly
//! narrowed; reject; pause; resume; revoke) with a signed receipt for each
//! decision, sees who read their records, and fetches their competence
//! passport.
//!
//! Towards the gateway it is an ordinary registrar agency: its own
//! certificate, mutual TLS, and a person assertion carrying the person's
//! ID token on every call ([`gateway`]). It has no back door: what the
//! gateway refuses any registrar, it refuses the portal.
//!
//! Pages are rendered on the server from templates ([`minijinja`]); no
//! JavaScript. Sessions live in memory ([`session`]), in an HttpOnly,
//! Secure, SameSite cookie; every form carries a CSRF token; the
//! Content-Security-Policy allows nothing but the portal's own stylesheet.
//! No personal identity number appears in a URL, a log line or a page
//! title.
//!
//! [`dev_idp`] is the development identity provider the demo logs in with.

pub mod config;
pub mod dev_idp;
pub mod gateway;
pub mod i18n;
pub mod login_cookie;
mod oidc;
mod pages;
pub mod session;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use config::PortalConfig;

/// The state every request shares.
pub(crate) struct App {
    pub(crate) config: PortalConfig,
    pub(crate) sessions: session::Sessions,
    pub(crate) texts: i18n::Texts,
    pub(crate) templates: minijinja::Environment<'static>,
    pub(crate) gateway: gateway::Gateway,
    pub(crate) provider: oidc::Provider,
    pub(crate) sealer: login_cookie::Sealer,
}

/// The templates, compiled in.
fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("home.html", include_str!("../templates/home.html")),
        ("message.html", include_str!("../templates/message.html")),
        ("consents.html", include_str!("../templates/consents.html")),
        ("consent.html", include_str!("../templates/consent.html")),
        (
            "access_log.html",
            include_str!("../templates/access_log.html"),
        ),
        ("passport.html", include_str!("../templates/passport.html")),
        ("merits.html", include_str!("../templates/merits.html")),
    ] {
        env.add_template(name, source)
            .expect("the bundled templates parse");
    }
    env
}

/// Serves `router` on `listener` until `shutdown` resolves (the
/// development identity provider's, for one).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A portal ready to serve.
pub struct Portal {
    app: Arc<App>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("public_url", &self.app.config.public_url)
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// Connects to the gateway and discovers the identity provider.
    pub async fn new(config: PortalConfig) -> Result<Portal, String> {
        let gateway = gateway::Gateway::connect(&config.gateway).await?;
        let provider = oidc::Provider::discover(&config.login, config.redirect_uri()).await?;
        Ok(Portal {
            app: Arc::new(App {
                sessions: session::Sessions::new(config.session_idle),
                texts: i18n::Texts::bundled(),
                templates: templates(),
                gateway,
                provider,
                sealer: login_cookie::Sealer::new(),
                config,
            }),
        })
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(pages::home))
            .route("/static/style.css", get(web::stylesheet))
            .route("/login", get(pages::login))
            .route("/callback", get(pages::callback))
            .route("/logout", post(pages::logout))
            .route("/consents", get(pages::consents))
            .route("/consents/{id}", get(pages::consent))
            .route("/consents/{id}/{action}", post(pages::decide))
            .route("/receipts/{number}", get(pages::receipt))
            .route("/access-log", get(pages::access_log))
            .route("/merits", get(pages::merits).post(pages::declare_merit))
            .route("/merits/{id}/withdraw", post(pages::withdraw_merit))
            .route(
                "/passport",
                get(pages::passport).post(pages::fetch_passport),
            )
            .route("/passport/credential.jws", get(pages::passport_credential))
            .route("/passport/gateway.pem", get(pages::gateway_cert))
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.app.clone(),
                web::error_pages,
            ))
            .layer(axum::middleware::from_fn(web::language_switch))
            .layer(axum::middleware::from_fn(web::security_headers))
            .layer(axum::Extension(web::PublicUrl(
                self.app.config.public_url.clone(),
            )))
            .with_state(self.app.clone())
    }

    /// Serves on `listener` until `shutdown` resolves; sessions idle out
    /// in the background.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.app.clone();
        let sweeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                app.sessions.sweep();
            }
        });
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use minijinja::{Value, context};

    /// Each page with the least its handler gives, in both languages: a
    /// missing text or an undefined variable fails here, not for a person.
    #[test]
    fn every_template_renders_in_both_languages() {
        let env = super::templates();
        let texts = crate::i18n::Texts::bundled();
        let consent = |status: &str| {
            context! {
                consent_id => "c1", status => status, status_text => "x",
                grantee_agency => "2021999020", grantee_name => "Agency",
                registrar_name => "Registrar", purpose_text => "p", record_types_text => "r",
                record_type_items => vec![context! { code => "employment.period", text => "e" }],
                sources_text => "s", source_items => Vec::<Value>::new(), justification => "",
                period => "", reads => "", from => "", until => "", valid_for_days => 0,
                decide_by => "", revocation_reason => "", first_day => "2026-12-01", last_day => "2026-12-30",
            }
        };
        let mut pages: Vec<(&str, Value)> = vec![
            ("home.html", context! {}),
            ("message.html", context! { heading => "h", message => "m" }),
            ("consents.html", context! { groups => Vec::<Value>::new() }),
            (
                "access_log.html",
                context! { events => Vec::<Value>::new(), filter => context! { agency => "", from => "", to => "" } },
            ),
            ("passport.html", context! { gateway_cert => false }),
            (
                "passport.html",
                context! { gateway_cert => true, holder_salt => "c2FsdA", keys_url => "https://gw.example.se/keys", passport => context! {
                    issued => "2026-12-01 10:00 UTC", issuer => "Operator", left_out => vec!["x: y"],
                    sections => vec![context! { heading => "Education", merits => vec![context! {
                        what => "Course", kind => "Formal education", facts => "grade 5", when => "2010-01-15", by => "University",
                        codes => "SUN 2020 field 481", source => "higher-education (2021999046)",
                    }] }],
                } },
            ),
            ("passport.html", context! { passport_empty => true }),
            ("merits.html", context! { merits => Vec::<Value>::new() }),
            (
                "merits.html",
                context! { merits => vec![context! {
                    id => "0b0c0d0e-0000-4000-8000-000000000001", title => "Kassör", description => "Fem år",
                    when => "2019-01-01 – 2023-12-31", skills => vec!["http://data.europa.eu/esco/skill/x"], declared => "2026-12-01",
                }] },
            ),
        ];
        for status in ["pending", "active", "paused", "revoked"] {
            pages.push((
                "consent.html",
                context! { c => consent(status), receipts => Vec::<Value>::new() },
            ));
        }
        for lang in [crate::i18n::Lang::Sv, crate::i18n::Lang::En] {
            for (name, content) in &pages {
                for logged_in in [false, true] {
                    let base = context! {
                        lang => lang.code(), other_lang => lang.other().code(),
                        t => Value::from(minijinja::value::Serde(texts.of(lang))),
                        logged_in => logged_in, csrf => "token", page => "", passport_enabled => true,
                    };
                    let html = env
                        .get_template(name)
                        .and_then(|t| t.render(context! { ..content.clone(), ..base }))
                        .unwrap_or_else(|e| panic!("{name} ({}): {e:#}", lang.code()));
                    assert!(
                        html.contains(&format!("<html lang=\"{}\">", lang.code())),
                        "{name}"
                    );
                }
            }
        }
    }
}
