//! The person's presence, proven: person assertions and their evidence.
//!
//! A registrar acts for a person (grants, revokes, reads consents or the
//! access log) only with a *person assertion*: a compact JWS of type
//! [`ASSERTION_TYPE`] that the registrar signs with a key registered for it
//! (`assertion_keys`), for one call:
//!
//! ```json
//! {"iss": "<registrar's organisation number>", "aud": "<gateway audience>",
//!  "iat": 1764400000, "exp": 1764400120, "jti": "<unique id>",
//!  "sub": "<the person the records are about>",
//!  "act": {"sub": "<the person acting, if someone else>"},
//!  "action": "/samverka.v1.Consents/Grant",
//!  "terms_sha256": "<base64url SHA-256 of the request's terms text>",
//!  "evidence": {"id_token": "<the person's OpenID Connect ID token>"}}
//! ```
//!
//! The evidence is the ID token that the person's login at the registrar's
//! e-service produced, from an identity provider the gateway trusts
//! (`[[identity_providers]]`). [`verify`] checks the envelope (signature by
//! the calling registrar's key, `aud`, lifetime, action and terms) and the
//! evidence (provider's signature, issuer, audience = a client id of that
//! registrar, the Swedish profile's personal identity or coordination
//! number = the acting person, login age, level of assurance for the
//! action); the caller then marks the `jti` used in the store, which makes
//! it single-use across replicas. An ID token alone is never accepted: it
//! proves a login, not that the person asked for this call.
//!
//! `act` (RFC 8693's actor claim) is where someone acting for another (a
//! guardian, a legal representative) will be named; until the gateway can
//! check such a mandate, an assertion whose actor is not the person is
//! refused with `PERSON_MISMATCH`.
//!
//! What was checked ([`PersonEvidence`]: provider, `acr`, `auth_time`, the
//! SHA-256 of the ID token, the assertion's `jti`), never the token itself,
//! goes into the audit entry and the receipt. [`issue`] makes assertions
//! (a registrar's side) and development ID tokens.

pub mod issue;
pub mod keys;
mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use verify::{PersonVerifier, Proven};

/// The JWS `typ` of a person assertion.
pub const ASSERTION_TYPE: &str = "samverka-person-assertion+jwt";

/// The Swedish OIDC profile's claim for a personal identity number.
pub const PERSONAL_IDENTITY_NUMBER_CLAIM: &str = "https://id.oidc.se/claim/personalIdentityNumber";

/// The Swedish OIDC profile's claim for a coordination number.
pub const COORDINATION_NUMBER_CLAIM: &str = "https://id.oidc.se/claim/coordinationNumber";

/// The longest `jti` taken, in characters.
pub const MAX_JTI_CHARS: usize = 128;

/// What an action needs as level of assurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Granting a consent.
    Grant,
    /// Revoking one (never more than granting).
    Revoke,
    /// Reading consents or the access log.
    Read,
}

/// What proved the person's presence for one call: recorded in the audit
/// entry and the receipt instead of the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonEvidence {
    /// The identity provider's issuer.
    pub provider: String,
    /// The level of assurance of the login.
    pub acr: String,
    /// When the person logged in, RFC 3339.
    pub auth_time: String,
    /// Base64url SHA-256 of the ID token.
    pub id_token_sha256: String,
    /// The assertion's `jti`.
    pub assertion_id: String,
}

impl PersonEvidence {
    /// As audit entry details (`person.provider`, ...).
    pub fn details(&self) -> BTreeMap<String, String> {
        [
            ("person.provider", &self.provider),
            ("person.acr", &self.acr),
            ("person.auth_time", &self.auth_time),
            ("person.id_token_sha256", &self.id_token_sha256),
            ("person.assertion_id", &self.assertion_id),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// Base64url (no padding) SHA-256 of `bytes`.
pub fn sha256_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// The claims of a person assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// The registrar's organisation number.
    pub iss: String,
    /// The gateway's audience (one, or several of which one is it).
    pub aud: Audience,
    /// Issued at, Unix seconds.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: i64,
    /// Expires at, Unix seconds.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// Unique id: the assertion is single-use.
    pub jti: String,
    /// The person the records are about.
    pub sub: String,
    /// The person acting, when not the person themself (RFC 8693).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The gRPC method path of the call.
    pub action: String,
    /// Base64url SHA-256 of the request's terms text
    /// ([`samverka_proto::terms`]).
    pub terms_sha256: String,
    /// The login that proves the person's presence.
    pub evidence: Evidence,
}

/// A JWT `aud`: one string or several (RFC 7519 section 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A JWT NumericDate: seconds since the epoch, which RFC 7519 allows to
/// have a fraction (dropped here); not finite or out of range is refused.
pub(crate) fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_json::Number::deserialize(d)?;
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(f.floor() as i64),
        _ => Err(serde::de::Error::custom("not a NumericDate")),
    }
}

/// Like [`numeric_date`], for a claim that may be absent.
pub(crate) fn optional_numeric_date<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "numeric_date")] i64);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
}

/// The person acting for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Their personal identity or coordination number.
    pub sub: String,
}

/// The evidence an assertion carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The OpenID Connect ID token, as the e-service received it.
    pub id_token: String,
}

/// The personal identity or coordination number an ID token names,
/// read without checking its signature: for a registrar's own tools, which
/// hold the token they received; the gateway checks it.
pub fn named_person(id_token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(rename = "https://id.oidc.se/claim/personalIdentityNumber")]
        pin: Option<String>,
        #[serde(rename = "https://id.oidc.se/claim/coordinationNumber")]
        coordination: Option<String>,
    }
    let n: Named = jsonwebtoken::dangerous::insecure_decode_claims(id_token).ok()?;
    n.pin.or(n.coordination)
}

/// Marks the assertion `proven` came from used, for `registrar`: a second
/// use, on this replica or any other on the same store, is refused.
pub async fn spend(
    store: &crate::store::Store,
    registrar: &samverka_certs::OrgNumber,
    proven: &Proven,
    now_ms: i64,
) -> Result<(), crate::error::GatewayError> {
    let first = store
        .use_assertion(
            registrar.as_str(),
            &proven.evidence.assertion_id,
            proven.expires_at_ms,
            now_ms,
        )
        .await
        .map_err(crate::error::GatewayError::store)?;
    if first {
        Ok(())
    } else {
        Err(crate::error::GatewayError::new(
            crate::error::Reason::PersonAssertionReused,
            "this person assertion was used before: make a new one for each call",
        ))
    }
}

#[cfg(test)]
mod tests;
