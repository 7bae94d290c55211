//! The other side of [`super::verify`]: a registrar's e-service wraps the
//! person's ID token in a fresh assertion for each call
//! ([`AssertionSigner`]), and the development identity provider signs
//! logins for the demo, tests and scripts ([`DevIdentityProvider`]). Both
//! are ordinary ES256 JWS; any JOSE library makes the same.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use samverka_proto::terms::PersonBound;
use serde::Serialize;

use super::{ASSERTION_TYPE, AssertionClaims, Evidence, sha256_b64};

/// The issuer of the development identity provider's ID tokens.
pub const DEV_IDP_ISSUER: &str = "https://dev-idp.samverka.localhost";

/// The level of assurance dev logins have unless told otherwise
/// (Swedish eID framework, substantial).
pub const DEV_ACR: &str = "http://id.elegnamnden.se/loa/1.0/loa3";

/// Why a token cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueError(pub String);

impl std::fmt::Display for IssueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IssueError {}

fn key(pem: &str) -> Result<EncodingKey, IssueError> {
    EncodingKey::from_ec_pem(pem.as_bytes())
        .map_err(|e| IssueError(format!("not a PKCS#8 P-256 key: {e}")))
}

/// Signs person assertions for one registrar (ES256, its assertion key).
pub struct AssertionSigner {
    key: EncodingKey,
    registrar: String,
    audience: String,
    lifetime_s: i64,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("registrar", &self.registrar)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer for `registrar` (its organisation number), addressing
    /// `audience` (the gateway's `person_assertion.audience`), with the
    /// registrar's PKCS#8 P-256 key; assertions live two minutes.
    pub fn new(key_pem: &str, registrar: &str, audience: &str) -> Result<Self, IssueError> {
        Ok(AssertionSigner {
            key: key(key_pem)?,
            registrar: registrar.to_owned(),
            audience: audience.to_owned(),
            lifetime_s: 120,
        })
    }

    /// The assertion for `req`, for `person`, with `id_token` as evidence,
    /// issued at `now_s`.
    pub fn assertion<R: PersonBound>(
        &self,
        req: &R,
        person: &str,
        id_token: &str,
        now_s: i64,
    ) -> Result<String, IssueError> {
        let claims = AssertionClaims {
            iss: self.registrar.clone(),
            aud: super::Audience::One(self.audience.clone()),
            iat: now_s,
            exp: now_s + self.lifetime_s,
            jti: uuid::Uuid::new_v4().to_string(),
            sub: person.to_owned(),
            act: None,
            action: R::ACTION.to_owned(),
            terms_sha256: sha256_b64(req.terms_text().as_bytes()),
            evidence: Evidence {
                id_token: id_token.to_owned(),
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ASSERTION_TYPE.to_owned());
        encode(&header, &claims, &self.key).map_err(|e| IssueError(e.to_string()))
    }

    /// Sets `req`'s assertion (see [`AssertionSigner::assertion`]).
    pub fn seal<R: PersonBound>(
        &self,
        req: &mut R,
        person: &str,
        id_token: &str,
        now_s: i64,
    ) -> Result<(), IssueError> {
        let jws = self.assertion(req, person, id_token, now_s)?;
        req.set_person_assertion(jws);
        Ok(())
    }
}

/// One login, as the development identity provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The person's personal identity or coordination number.
    pub person: String,
    /// The client id the token is for (the registrar's e-service).
    pub client_id: String,
    /// The level of assurance.
    pub acr: String,
    /// When the person logged in, Unix seconds.
    pub auth_time: i64,
}

#[derive(Serialize)]
struct IdToken<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    auth_time: i64,
    acr: &'a str,
    #[serde(rename = "https://id.oidc.se/claim/personalIdentityNumber")]
    personal_identity_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// The development identity provider: signs ID tokens in the shape of the
/// Swedish OIDC profile for anyone asked. Never trust it in production.
pub struct DevIdentityProvider {
    key: EncodingKey,
    issuer: String,
    jwk: jsonwebtoken::jwk::Jwk,
}

impl std::fmt::Debug for DevIdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdentityProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl DevIdentityProvider {
    /// The provider with its PKCS#8 P-256 key (`dev-idp.key`), issuing as
    /// [`DEV_IDP_ISSUER`].
    pub fn new(key_pem: &str) -> Result<Self, IssueError> {
        Self::with_issuer(key_pem, DEV_IDP_ISSUER)
    }

    /// The provider issuing as `issuer` (e.g. where a web view serves it).
    pub fn with_issuer(key_pem: &str, issuer: &str) -> Result<Self, IssueError> {
        use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
        let key = key(key_pem)?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| IssueError(e.to_string()))?;
        jwk.common.key_id = Some(
            jwk.thumbprint(ThumbprintHash::SHA256)
                .map_err(|e| IssueError(e.to_string()))?,
        );
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(DevIdentityProvider {
            key,
            issuer: issuer.to_owned(),
            jwk,
        })
    }

    /// Its issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Its public key set (what its `jwks_uri` serves); the key's `kid` is
    /// its RFC 7638 thumbprint, which every token's header names.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        jsonwebtoken::jwk::JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// The ID token of `login`, issued at `now_s`, valid five minutes (the
    /// profile's cap). Its `sub` is a pairwise pseudonym, as a real
    /// provider's: the gateway never reads it.
    pub fn id_token(&self, login: &Login, now_s: i64) -> Result<String, IssueError> {
        self.id_token_with_nonce(login, now_s, None)
    }

    /// [`DevIdentityProvider::id_token`] with the `nonce` of the
    /// authentication request, as an OpenID Connect login returns it.
    pub fn id_token_with_nonce(
        &self,
        login: &Login,
        now_s: i64,
        nonce: Option<&str>,
    ) -> Result<String, IssueError> {
        let claims = IdToken {
            iss: &self.issuer,
            sub: sha256_b64(format!("{}|{}", login.client_id, login.person).as_bytes()),
            aud: &login.client_id,
            iat: now_s,
            exp: now_s + 300,
            auth_time: login.auth_time,
            acr: &login.acr,
            personal_identity_number: &login.person,
            nonce,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = self.jwk.common.key_id.clone();
        encode(&header, &claims, &self.key).map_err(|e| IssueError(e.to_string()))
    }
}
