//! Logging in: OpenID Connect (discovery, authorization code flow with
//! PKCE, state and nonce, ID token validation) with the `openidconnect`
//! crate, over a plain hyper client that never follows redirects.
//!
//! What the portal takes from the ID token: the Swedish OIDC profile's
//! personal identity number (or coordination number) claim, `auth_time`,
//! `exp`, and the token itself, which each gateway call carries as the
//! evidence of its person assertion. The gateway checks the token again.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AsyncHttpClient, AuthType, AuthenticationContextClass, AuthorizationCode,
    Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IdTokenFields, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, StandardErrorResponse, StandardTokenResponse,
    TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::config::LoginSettings;
use crate::login_cookie::PendingLogin;
use crate::session::Login;

/// The Swedish OIDC profile's identity claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SwedishClaims {
    #[serde(
        rename = "https://id.oidc.se/claim/personalIdentityNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    personal_identity_number: Option<String>,
    #[serde(
        rename = "https://id.oidc.se/claim/coordinationNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    coordination_number: Option<String>,
}

impl AdditionalClaims for SwedishClaims {}

type Fields = IdTokenFields<
    SwedishClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenAnswer = StandardTokenResponse<Fields, CoreTokenType>;
type RpClient = Client<
    SwedishClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// An HTTP failure talking to the provider.
#[derive(Debug)]
pub(crate) struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// The client the provider is called with: HTTPS (web PKI roots) or, for
/// a development provider on loopback, plain HTTP; ten seconds and 1 MiB
/// at most per answer; no redirects followed.
#[derive(Clone)]
pub(crate) struct Http {
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    fn new() -> Result<Http, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("TLS set-up: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Http {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        // Plain HTTP only to a provider on this machine: a discovery
        // document must not send the client secret or codes in clear.
        let uri = req.uri();
        let loopback = matches!(uri.host(), Some("localhost" | "127.0.0.1"));
        if uri.scheme_str() != Some("https") && !loopback {
            return Err(HttpError(format!("{uri}: only https:// is used")));
        }
        let req = req.map(|body| Full::new(Bytes::from(body)));
        let answer = tokio::time::timeout(Duration::from_secs(10), self.inner.request(req))
            .await
            .map_err(|_| HttpError("the identity provider did not answer in time".into()))?
            .map_err(|e| HttpError(e.to_string()))?;
        let (parts, body) = answer.into_parts();
        let bytes = Limited::new(body, 1 << 20)
            .collect()
            .await
            .map_err(|e| HttpError(e.to_string()))?
            .to_bytes();
        Ok(HttpResponse::from_parts(parts, bytes.to_vec()))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, req: HttpRequest) -> Self::Future {
        Box::pin(self.send(req))
    }
}

/// The identity provider, as discovered at start.
pub(crate) struct Provider {
    client: RpClient,
    http: Http,
    acr_values: Option<String>,
    scopes: Vec<String>,
}

impl Provider {
    /// Reads the provider's discovery document and keys.
    pub(crate) async fn discover(
        settings: &LoginSettings,
        redirect_uri: String,
    ) -> Result<Provider, String> {
        let http = Http::new()?;
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                format!(
                    "cannot discover the identity provider {}: {e}",
                    settings.issuer
                )
            })?;
        let client = RpClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(redirect_uri).map_err(|e| e.to_string())?)
        .set_auth_type(AuthType::BasicAuth);
        Ok(Provider {
            client,
            http,
            acr_values: settings.acr_values.clone(),
            scopes: settings.scopes.clone(),
        })
    }

    /// Where to send the person to log in, and what the callback must find:
    /// always a new authentication (`prompt=login`), at most `max_age` old.
    pub(crate) fn authorize_url(
        &self,
        max_age: Duration,
        return_to: String,
    ) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .set_max_age(max_age)
            .add_prompt(CoreAuthPrompt::Login);
        for scope in &self.scopes {
            request = request.add_scope(openidconnect::Scope::new(scope.clone()));
        }
        if let Some(acr) = &self.acr_values {
            for value in acr.split_whitespace() {
                request = request
                    .add_auth_context_value(AuthenticationContextClass::new(value.to_owned()));
            }
        }
        let (url, state, nonce) = request.url();
        (
            url.to_string(),
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to,
                started: crate::login_cookie::started_now(),
            },
        )
    }

    /// Exchanges `code` and checks the ID token (signature by the
    /// provider's keys, ES256 only; issuer; audience; expiry; nonce;
    /// `auth_time` present).
    /// `max_age` is the oldest login taken: a provider that did not
    /// authenticate the person again is refused here, not by the gateway.
    pub(crate) async fn finish(
        &self,
        code: &str,
        pending: &PendingLogin,
        max_age: Duration,
    ) -> Result<Login, String> {
        let answer: TokenAnswer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| e.to_string())?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| format!("the code exchange failed: {e}"))?;
        let id_token = answer.id_token().ok_or("the provider sent no ID token")?;
        let verifier = self
            .client
            .id_token_verifier()
            .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256])
            .set_auth_time_verifier_fn(|t| {
                t.map(|_| ())
                    .ok_or_else(|| "the ID token has no auth_time".to_owned())
            });
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(|e| format!("the ID token does not verify: {e}"))?;
        let extra = claims.additional_claims();
        let person = extra
            .personal_identity_number
            .clone()
            .or_else(|| extra.coordination_number.clone())
            .ok_or("the ID token names no personal identity or coordination number")?;
        let auth_time = claims
            .auth_time()
            .ok_or("the ID token has no auth_time")?
            .timestamp();
        let now = samverka_gateway::time::system_now_ms().div_euclid(1000);
        if now - auth_time > max_age.as_secs() as i64 + 30 {
            return Err("the provider did not authenticate the person again".into());
        }
        Ok(Login {
            person,
            id_token: id_token.to_string(),
            auth_time,
            expires: claims.expiration().timestamp(),
        })
    }
}
