//! Checking a person assertion and the ID token it carries. Each check
//! stops one way of acting for a person who is not there; the refusal
//! names which (docs/security.md lists the threat each stops).

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use samverka_certs::OrgNumber;
use samverka_proto::terms::PersonBound;
use serde::Deserialize;

use super::keys::{KeyFile, VerifyKey};
use super::{
    ASSERTION_TYPE, AssertionClaims, COORDINATION_NUMBER_CLAIM, Level, MAX_JTI_CHARS,
    PERSONAL_IDENTITY_NUMBER_CLAIM, PersonEvidence, sha256_b64,
};
use crate::config::{Config, IdentityProvider, PersonAssertionSettings, Registrar};
use crate::error::{GatewayError, Reason};

/// What a verified assertion proves; its `jti` is not yet marked used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// The person the records are about.
    pub person: String,
    /// What was checked.
    pub evidence: PersonEvidence,
    /// When the assertion expires (Unix ms): its `jti` is remembered until
    /// then.
    pub expires_at_ms: i64,
}

/// An ID token's claims that the gateway reads.
#[derive(Deserialize)]
struct IdTokenClaims {
    iss: String,
    #[serde(deserialize_with = "super::numeric_date")]
    exp: i64,
    #[serde(default, deserialize_with = "super::optional_numeric_date")]
    nbf: Option<i64>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default, deserialize_with = "super::optional_numeric_date")]
    auth_time: Option<i64>,
    #[serde(default)]
    acr: Option<String>,
    #[serde(rename = "https://id.oidc.se/claim/personalIdentityNumber", default)]
    personal_identity_number: Option<String>,
    #[serde(rename = "https://id.oidc.se/claim/coordinationNumber", default)]
    coordination_number: Option<String>,
}

/// Only the issuer, read before the signature to pick the provider.
#[derive(Deserialize)]
struct Unverified {
    #[serde(default)]
    iss: String,
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(Reason::PersonAssertionInvalid, message)
}

/// Checks person assertions against the configured registrars' keys and
/// identity providers.
#[derive(Debug)]
pub struct PersonVerifier {
    settings: PersonAssertionSettings,
    providers: Vec<(IdentityProvider, KeyFile)>,
    registrars: HashMap<OrgNumber, KeyFile>,
}

/// Which of `keys` verifies `token`: the ones named by its `kid` (all, if
/// it names none) that take its algorithm, tried in turn. A token whose
/// signature verified but whose claims did not is answered at once.
fn decode_with<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &[VerifyKey],
    mut validation: Validation,
    what: &str,
) -> Result<T, GatewayError> {
    let header = decode_header(token)
        .map_err(|e| invalid(format!("the {what} is not a supported JWS: {e}")))?;
    let candidates: Vec<&VerifyKey> = keys
        .iter()
        .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        .filter(|k| k.algorithms.contains(&header.alg))
        .collect();
    if candidates.is_empty() {
        return Err(invalid(format!(
            "the {what} is signed with a key or algorithm that is not registered"
        )));
    }
    for key in candidates {
        validation.algorithms = vec![header.alg];
        match decode::<T>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) if *e.kind() == ErrorKind::InvalidSignature => continue,
            Err(e) => {
                return Err(invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => format!("the {what} has expired"),
                    ErrorKind::ImmatureSignature => format!("the {what} is not valid yet"),
                    ErrorKind::InvalidAudience => {
                        format!("the {what} is addressed to someone else")
                    }
                    ErrorKind::InvalidIssuer => format!("the {what} has another issuer"),
                    ErrorKind::MissingRequiredClaim(c) => format!("the {what} lacks claim {c}"),
                    _ => format!("the {what} does not verify: {e}"),
                }));
            }
        }
    }
    Err(invalid(format!("the {what}'s signature does not verify")))
}

impl PersonVerifier {
    /// Reads every registrar's assertion keys and every provider's keys,
    /// of the configuration file's registry tables.
    pub fn new(config: &Config) -> Result<PersonVerifier, String> {
        PersonVerifier::for_registry(&config.person_assertion, &config.tables())
    }

    /// Reads every registrar's assertion keys and every provider's keys of
    /// `tables`.
    pub fn for_registry(
        settings: &PersonAssertionSettings,
        tables: &crate::config::RegistryTables,
    ) -> Result<PersonVerifier, String> {
        let mut providers = Vec::new();
        for p in &tables.identity_providers {
            providers.push((p.clone(), KeyFile::from_source(&p.keys)?));
        }
        let mut registrars = HashMap::new();
        for a in &tables.agencies {
            if let Some(r) = &a.registrar {
                registrars.insert(
                    a.org_number.clone(),
                    KeyFile::from_source(&r.assertion_keys)?,
                );
            }
        }
        Ok(PersonVerifier {
            settings: settings.clone(),
            providers,
            registrars,
        })
    }

    /// The audience assertions must name.
    pub fn audience(&self) -> &str {
        &self.settings.audience
    }

    /// Verifies the assertion `req` carries, sent by `registrar_org`, at
    /// `now_ms`. On success the caller must still mark the `jti` used
    /// (store) and, for a request that names no person, compare
    /// [`Proven::person`] with the person of what it acts on.
    pub fn verify<R: PersonBound>(
        &self,
        registrar_org: &OrgNumber,
        registrar: &Registrar,
        req: &R,
        level: Level,
        now_ms: i64,
    ) -> Result<Proven, GatewayError> {
        let token = req.person_assertion();
        if token.trim().is_empty() {
            return Err(GatewayError::new(
                Reason::PersonAssertionMissing,
                "acting for a person needs a person assertion (person_assertion)",
            ));
        }
        let claims = self.envelope(registrar_org, token, now_ms)?;
        if claims.action != R::ACTION {
            return Err(invalid("the person assertion is for another action"));
        }
        if claims.terms_sha256 != sha256_b64(req.terms_text().as_bytes()) {
            return Err(invalid("the person assertion is for other terms"));
        }
        if claims.jti.is_empty() || claims.jti.chars().count() > MAX_JTI_CHARS {
            return Err(invalid(format!(
                "the person assertion's jti must have 1 to {MAX_JTI_CHARS} characters"
            )));
        }
        if let Some(actor) = &claims.act
            && actor.sub != claims.sub
        {
            return Err(GatewayError::new(
                Reason::PersonMismatch,
                "acting for another person is not accepted yet",
            ));
        }
        if let Some(person) = req.person()
            && person != claims.sub
        {
            return Err(GatewayError::new(
                Reason::PersonMismatch,
                "the person assertion is for another person",
            ));
        }
        let evidence = self.evidence(registrar, &claims, level, now_ms)?;
        Ok(Proven {
            person: claims.sub,
            evidence,
            // Accepted until `exp` plus the skew: remembered as long.
            // and through the whole last second it is accepted in.
            expires_at_ms: claims
                .exp
                .saturating_add(self.settings.clock_skew.as_secs() as i64 + 1)
                .saturating_mul(1000),
        })
    }

    /// The assertion's signature (the calling registrar's key), type,
    /// issuer, audience and lifetime.
    fn envelope(
        &self,
        registrar_org: &OrgNumber,
        token: &str,
        now_ms: i64,
    ) -> Result<AssertionClaims, GatewayError> {
        let header = decode_header(token)
            .map_err(|e| invalid(format!("the person assertion is not a supported JWS: {e}")))?;
        // RFC 7515 section 4.1.9: compared without case, "application/" optional.
        let typ = header
            .typ
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if typ.strip_prefix("application/").unwrap_or(&typ) != ASSERTION_TYPE {
            let from_provider =
                jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(token)
                    .is_ok_and(|c| self.providers.iter().any(|(p, _)| p.issuer == c.iss));
            return Err(invalid(if from_provider {
                "an ID token alone is evidence of a login, not an assertion: wrap it in a person assertion"
            } else {
                "the person assertion's typ must be samverka-person-assertion+jwt"
            }));
        }
        let keys = self
            .registrars
            .get(registrar_org)
            .ok_or_else(|| invalid("no person-assertion key is registered for this registrar"))?
            .keys();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_required_spec_claims(&["iss", "aud"]);
        validation.set_issuer(&[registrar_org.as_str()]);
        validation.set_audience(&[&self.settings.audience]);
        // Times are checked below against the gateway's clock.
        validation.validate_exp = false;
        let claims: AssertionClaims = decode_with(token, &keys, validation, "person assertion")?;
        let skew = self.settings.clock_skew.as_secs() as i64;
        let now = now_ms.div_euclid(1000);
        if claims.iat > now + skew {
            return Err(invalid("the person assertion is issued in the future"));
        }
        if claims.iat < 0
            || claims.exp.saturating_sub(claims.iat) > self.settings.max_lifetime.as_secs() as i64
        {
            return Err(invalid(format!(
                "the person assertion may live at most {} s",
                self.settings.max_lifetime.as_secs()
            )));
        }
        if claims.exp + skew < now {
            return Err(invalid("the person assertion has expired"));
        }
        Ok(claims)
    }

    /// The ID token: a trusted provider's signature, addressed to a client
    /// id of this registrar, for the acting person, fresh and at a level of
    /// assurance this action accepts.
    fn evidence(
        &self,
        registrar: &Registrar,
        claims: &AssertionClaims,
        level: Level,
        now_ms: i64,
    ) -> Result<PersonEvidence, GatewayError> {
        let id_token = &claims.evidence.id_token;
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(id_token)
            .map_err(|_| invalid("the evidence is not an ID token"))?
            .iss;
        let (provider, keys) = self
            .providers
            .iter()
            .find(|(p, _)| p.issuer == issuer)
            .ok_or_else(|| invalid("the ID token is not from a trusted identity provider"))?;
        let client_ids: Vec<&str> = registrar
            .login_clients
            .iter()
            .filter(|c| c.issuer == provider.issuer)
            .map(|c| c.client_id.as_str())
            .collect();
        if client_ids.is_empty() {
            return Err(invalid(
                "this registrar has no client id at the ID token's identity provider",
            ));
        }
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_required_spec_claims(&["iss", "aud"]);
        validation.set_issuer(&[&provider.issuer]);
        validation.set_audience(&client_ids);
        validation.validate_exp = false;
        let token: IdTokenClaims = decode_with(id_token, &keys.keys(), validation, "ID token")?;
        debug_assert_eq!(token.iss, provider.issuer);
        let now = now_ms.div_euclid(1000);
        let skew = self.settings.clock_skew.as_secs() as i64;
        if token.exp + skew < now {
            return Err(invalid("the ID token has expired"));
        }
        if token.nbf.is_some_and(|nbf| nbf > now + skew) {
            return Err(invalid("the ID token is not valid yet"));
        }
        if let Some(azp) = &token.azp
            && !client_ids.contains(&azp.as_str())
        {
            return Err(invalid("the ID token was issued to another client (azp)"));
        }

        let acting = claims.act.as_ref().map_or(&claims.sub, |a| &a.sub);
        let number = token
            .personal_identity_number
            .as_ref()
            .or(token.coordination_number.as_ref())
            .ok_or_else(|| {
                invalid(format!(
                    "the ID token names no person ({PERSONAL_IDENTITY_NUMBER_CLAIM} or {COORDINATION_NUMBER_CLAIM})"
                ))
            })?;
        if number != acting {
            return Err(GatewayError::new(
                Reason::PersonMismatch,
                "the login is another person's",
            ));
        }

        let auth_time = token
            .auth_time
            .ok_or_else(|| invalid("the ID token has no auth_time"))?;
        if auth_time > now + skew {
            return Err(invalid("the ID token's login is in the future"));
        }
        if now - auth_time > self.settings.max_login_age.as_secs() as i64 + skew {
            return Err(GatewayError::new(
                Reason::PersonLoginStale,
                format!(
                    "the person logged in more than {} s ago: ask them to log in again",
                    self.settings.max_login_age.as_secs()
                ),
            ));
        }

        let accepted = match level {
            Level::Grant => &self.settings.grant_acr,
            Level::Revoke => &self.settings.revoke_acr,
            Level::Read => &self.settings.read_acr,
        };
        let acr = token.acr.unwrap_or_default();
        if !accepted.contains(&acr) {
            return Err(GatewayError::new(
                Reason::AssuranceTooLow,
                if acr.is_empty() {
                    "the ID token names no level of assurance (acr)".to_owned()
                } else {
                    "the login's level of assurance is too low for this action".to_owned()
                },
            ));
        }
        Ok(PersonEvidence {
            provider: provider.issuer.clone(),
            acr,
            auth_time: crate::time::rfc3339(auth_time.saturating_mul(1000)),
            id_token_sha256: sha256_b64(id_token.as_bytes()),
            assertion_id: claims.jti.clone(),
        })
    }
}
