//! The development identity provider, served: an OpenID Connect provider
//! (discovery, authorization code flow with PKCE S256, JWKS) whose login
//! page lets anyone pick one of the synthetic people. The demo and the
//! browser tests log in with it; in production the national eID broker
//! stands in its place, and the portal's `[login]` names that instead.
//!
//! Its ID tokens are those of [`DevIdentityProvider`]: ES256, the Swedish
//! profile's personal identity number claim, `auth_time`, five minutes'
//! life, and the request's `nonce`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use base64::Engine;
use minijinja::context;
use samverka_gateway::person::issue::{DEV_ACR, DevIdentityProvider, Login};
use serde::Deserialize;
use serde_json::json;

use crate::session::{random_token, same_secret};

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub struct DevClient {
    /// Its client id.
    pub client_id: String,
    /// Its client secret (`None`: a public client, PKCE alone).
    pub secret: Option<String>,
    /// Where it may be sent back to, exactly.
    pub redirect_uris: Vec<String>,
}

/// A synthetic person one can log in as.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevPerson {
    /// Personal identity number.
    pub id: String,
    /// A name to pick them by.
    pub name: String,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    person: String,
    auth_time: i64,
    issued: Instant,
}

struct Idp {
    provider: DevIdentityProvider,
    clients: Vec<DevClient>,
    people: Vec<DevPerson>,
    codes: Mutex<HashMap<String, Code>>,
    templates: minijinja::Environment<'static>,
}

/// The provider's routes, issuing as `provider`'s issuer (the URL it is
/// served at).
pub fn router(
    provider: DevIdentityProvider,
    clients: Vec<DevClient>,
    people: Vec<DevPerson>,
) -> Router {
    let mut templates = minijinja::Environment::new();
    templates
        .add_template(
            "idp_login.html",
            include_str!("../templates/idp_login.html"),
        )
        .expect("the bundled template parses");
    let idp = Arc::new(Idp {
        provider,
        clients,
        people,
        codes: Mutex::new(HashMap::new()),
        templates,
    });
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_page).post(authorize))
        .route("/token", axum::routing::post(token))
        .route("/static/style.css", get(crate::web::stylesheet))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
        .with_state(idp)
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    let issuer = idp.provider.issuer();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "scopes_supported": ["openid"],
        "acr_values_supported": [DEV_ACR],
        "claims_supported": ["sub", "auth_time", "acr", "https://id.oidc.se/claim/personalIdentityNumber"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    Json(idp.provider.jwks()).into_response()
}

/// The parameters of an authentication request (query or form).
#[derive(Debug, Deserialize, Default)]
struct AuthRequest {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    #[serde(default)]
    person: String,
}

impl AuthRequest {
    /// Why it cannot be served; the client and redirect URI are checked
    /// first: a request naming an unknown one is answered here, never
    /// redirected.
    fn problem(&self, idp: &Idp) -> Option<&'static str> {
        let client = idp.clients.iter().find(|c| c.client_id == self.client_id);
        match client {
            None => Some("unknown client_id"),
            Some(c) if !c.redirect_uris.contains(&self.redirect_uri) => {
                Some("redirect_uri is not registered for this client")
            }
            _ if self.response_type != "code" => Some("only response_type=code"),
            _ if !self.scope.split(' ').any(|s| s == "openid") => Some("scope must include openid"),
            _ if self.code_challenge_method != "S256" || self.code_challenge.len() < 43 => {
                Some("PKCE with S256 is required")
            }
            _ => None,
        }
    }
}

async fn authorize_page(State(idp): State<Arc<Idp>>, Query(q): Query<AuthRequest>) -> Response {
    if let Some(problem) = q.problem(&idp) {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    let mut params = vec![
        ("response_type", q.response_type.clone()),
        ("client_id", q.client_id.clone()),
        ("redirect_uri", q.redirect_uri.clone()),
        ("scope", q.scope.clone()),
        ("state", q.state.clone()),
        ("code_challenge", q.code_challenge.clone()),
        ("code_challenge_method", q.code_challenge_method.clone()),
    ];
    if let Some(nonce) = &q.nonce {
        params.push(("nonce", nonce.clone()));
    }
    let page = idp.templates.get_template("idp_login.html").and_then(|t| {
        t.render(context! { client_id => q.client_id, params => params, people => minijinja::value::Serde(&idp.people) })
    });
    match page {
        // Its form answers with a redirect to the client, which a
        // `form-action 'self'` policy would block.
        Ok(html) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            )],
            Html(html),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The login form: a fresh authentication of the person picked, answered
/// with a code (valid one minute, once).
async fn authorize(State(idp): State<Arc<Idp>>, Form(f): Form<AuthRequest>) -> Response {
    if let Some(problem) = f.problem(&idp) {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    if !idp.people.iter().any(|p| p.id == f.person) {
        return (StatusCode::BAD_REQUEST, "pick one of the people listed").into_response();
    }
    let code = random_token();
    let mut codes = idp.codes.lock().expect("codes lock");
    codes.retain(|_, c| c.issued.elapsed() < Duration::from_secs(60));
    codes.insert(
        code.clone(),
        Code {
            client_id: f.client_id.clone(),
            redirect_uri: f.redirect_uri.clone(),
            challenge: f.code_challenge.clone(),
            nonce: f.nonce.clone(),
            person: f.person.clone(),
            auth_time: samverka_gateway::time::system_now_ms().div_euclid(1000),
            issued: Instant::now(),
        },
    );
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &f.state)
        .finish();
    let separator = if f.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    crate::web::see_other(&format!("{}{separator}{query}", f.redirect_uri))
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    client_id: Option<String>,
}

fn token_error(error: &str) -> Response {
    // RFC 6749 section 5.2: a client that failed to authenticate gets 401.
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Json(json!({ "error": error }))).into_response()
}

/// A PKCE code verifier as RFC 7636 section 4.1 has it: 43 to 128
/// unreserved characters.
fn plausible_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `client_secret_basic` credentials, if sent.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((unescape(id), unescape(secret)))
}

/// The code exchange: the client (by its secret, or a public client), the
/// redirect URI and the PKCE verifier must match the code's; a code works
/// once.
async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(t): Form<TokenRequest>,
) -> Response {
    if t.grant_type != "authorization_code" {
        return token_error("unsupported_grant_type");
    }
    let (client_id, secret) = match basic_auth(&headers) {
        Some((id, secret)) => (id, Some(secret)),
        None => (t.client_id.clone().unwrap_or_default(), None),
    };
    let Some(client) = idp.clients.iter().find(|c| c.client_id == client_id) else {
        return token_error("invalid_client");
    };
    let authenticated = match (&client.secret, &secret) {
        (Some(expected), Some(given)) => same_secret(expected, given),
        (None, _) => true,
        (Some(_), None) => false,
    };
    if !authenticated {
        return token_error("invalid_client");
    }
    let Some(code) = idp.codes.lock().expect("codes lock").remove(&t.code) else {
        return token_error("invalid_grant");
    };
    if !plausible_verifier(&t.code_verifier) {
        return token_error("invalid_grant");
    }
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.code_verifier.as_bytes()),
    );
    if code.client_id != client_id
        || code.redirect_uri != t.redirect_uri
        || code.issued.elapsed() > Duration::from_secs(60)
        || !same_secret(&challenge, &code.challenge)
    {
        return token_error("invalid_grant");
    }
    let login = Login {
        person: code.person,
        client_id,
        acr: DEV_ACR.to_owned(),
        auth_time: code.auth_time,
    };
    let now = samverka_gateway::time::system_now_ms().div_euclid(1000);
    match idp
        .provider
        .id_token_with_nonce(&login, now, code.nonce.as_deref())
    {
        Ok(id_token) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "access_token": random_token(),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            })),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
