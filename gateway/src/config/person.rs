//! The `[person_assertion]` section and the `[[identity_providers]]`
//! table: how the gateway checks that a person is present when a registrar
//! acts for them (see [`crate::person`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Agency, ConfigError, KeySource};

/// Levels of assurance the Swedish eID framework and eIDAS define at
/// substantial or high, accepted for every action unless configured.
pub const DEFAULT_ACCEPTED_ACR: &[&str] = &[
    "http://id.elegnamnden.se/loa/1.0/loa3",
    "http://id.elegnamnden.se/loa/1.0/loa4",
    "http://id.elegnamnden.se/loa/1.0/eidas-sub",
    "http://id.elegnamnden.se/loa/1.0/eidas-nf-sub",
    "http://id.elegnamnden.se/loa/1.0/eidas-high",
    "http://id.elegnamnden.se/loa/1.0/eidas-nf-high",
    "http://eidas.europa.eu/LoA/substantial",
    "http://eidas.europa.eu/LoA/high",
];

/// The `[person_assertion]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonAssertionSettings {
    /// The `aud` an assertion must name; unset: `samverka:` and the
    /// gateway's organisation number.
    pub audience: String,
    /// The longest an assertion may live (`exp - iat`), at most 5 minutes.
    pub max_lifetime: Duration,
    /// The oldest login (`auth_time`) an ID token may report.
    pub max_login_age: Duration,
    /// Clock difference tolerated with registrars and providers.
    pub clock_skew: Duration,
    /// Levels of assurance (`acr`) accepted to grant a consent.
    pub grant_acr: Vec<String>,
    /// ... to revoke one (every level accepted to grant must be here).
    pub revoke_acr: Vec<String>,
    /// ... to read consents and the access log.
    pub read_acr: Vec<String>,
}

/// An identity provider whose ID tokens the gateway accepts as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// Its issuer (`iss`), exactly as in its tokens.
    pub issuer: String,
    /// A name for people.
    pub name: String,
    /// Its signing keys: PEM (public keys or certificates) or JWKS (the
    /// provider's `jwks_uri` document), in a file reloaded on change or
    /// written in the registry itself.
    pub keys: KeySource,
}

/// The section as written (absent: all defaults).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersonAssertion {
    audience: Option<String>,
    max_lifetime_s: Option<u64>,
    max_login_age_s: Option<u64>,
    clock_skew_s: Option<u64>,
    #[serde(default)]
    assurance: RawAssurance,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAssurance {
    grant: Option<Vec<String>>,
    revoke: Option<Vec<String>>,
    read: Option<Vec<String>>,
}

/// One `[[identity_providers]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentityProvider {
    issuer: String,
    name: Option<String>,
    keys: Option<PathBuf>,
    key_set: Option<String>,
}

fn seconds(key: &str, v: Option<u64>, default: u64, max: u64) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if v > max {
        return Err(ConfigError::for_key(
            format!("person_assertion.{key}"),
            format!("must be at most {max}"),
        ));
    }
    Ok(Duration::from_secs(v))
}

fn levels(key: &str, v: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let v = v.unwrap_or_else(|| DEFAULT_ACCEPTED_ACR.iter().map(|s| s.to_string()).collect());
    if v.is_empty() || v.iter().any(|l| l.trim().is_empty()) {
        return Err(ConfigError::for_key(
            format!("person_assertion.assurance.{key}"),
            "must list at least one level of assurance URI, none blank",
        ));
    }
    Ok(v)
}

/// Checks the section: lifetimes in range, and that revoking never needs a
/// higher level of assurance than granting (GDPR art. 7(3): withdrawing is
/// as easy as giving).
pub(super) fn parse(
    raw: RawPersonAssertion,
    gateway_org: &str,
) -> Result<PersonAssertionSettings, ConfigError> {
    let max_lifetime = seconds("max_lifetime_s", raw.max_lifetime_s, 300, 300)?;
    if max_lifetime.is_zero() {
        return Err(ConfigError::for_key(
            "person_assertion.max_lifetime_s",
            "must be between 1 and 300",
        ));
    }
    let max_login_age = seconds("max_login_age_s", raw.max_login_age_s, 300, 3600)?;
    let clock_skew = seconds("clock_skew_s", raw.clock_skew_s, 30, 300)?;
    let grant_acr = levels("grant", raw.assurance.grant)?;
    let revoke_acr = levels("revoke", raw.assurance.revoke)?;
    let read_acr = levels("read", raw.assurance.read)?;
    if let Some(l) = grant_acr.iter().find(|l| !revoke_acr.contains(l)) {
        return Err(ConfigError::for_key(
            "person_assertion.assurance.revoke",
            format!(
                "must accept every level accepted to grant (missing {l:?}): revoking may never need more"
            ),
        ));
    }
    let audience = raw
        .audience
        .unwrap_or_else(|| format!("samverka:{gateway_org}"));
    if audience.trim().is_empty() {
        return Err(ConfigError::for_key(
            "person_assertion.audience",
            "must not be blank",
        ));
    }
    Ok(PersonAssertionSettings {
        audience,
        max_lifetime,
        max_login_age,
        clock_skew,
        grant_acr,
        revoke_acr,
        read_acr,
    })
}

/// Checks the providers (no issuer twice) and that every registrar's login
/// clients name one of them.
pub(super) fn parse_providers(
    text: &str,
    base_dir: &Path,
    raw: Vec<Spanned<RawIdentityProvider>>,
    agencies: &[Agency],
) -> Result<Vec<IdentityProvider>, ConfigError> {
    let mut providers: Vec<IdentityProvider> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let span = p.span();
        let p = p.into_inner();
        let refuse = |key: &str, reason: String| {
            ConfigError::at(
                text,
                span.clone(),
                format!("identity_providers[{i}].{key}"),
                reason,
            )
        };
        if p.issuer.trim().is_empty() {
            return Err(refuse("issuer", "must not be blank".into()));
        }
        if providers.iter().any(|q| q.issuer == p.issuer) {
            return Err(refuse("issuer", format!("{:?} is listed twice", p.issuer)));
        }
        let keys = KeySource::of(base_dir, &p.keys, &p.key_set)
            .map_err(|reason| refuse("keys", reason))?;
        providers.push(IdentityProvider {
            name: p.name.unwrap_or_else(|| p.issuer.clone()),
            issuer: p.issuer,
            keys,
        });
    }
    for a in agencies {
        let Some(r) = &a.registrar else { continue };
        if let Some(c) = r
            .login_clients
            .iter()
            .find(|c| !providers.iter().any(|p| p.issuer == c.issuer))
        {
            return Err(ConfigError::for_key(
                format!("agencies[{}].login_clients", a.org_number),
                format!(
                    "issuer {:?} is not listed under [[identity_providers]]",
                    c.issuer
                ),
            ));
        }
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<PersonAssertionSettings, ConfigError> {
        parse(toml::from_str(text).unwrap(), "2021999012")
    }

    #[test]
    fn defaults_are_five_minutes_and_substantial_or_high() {
        let s = parse_text("").unwrap();
        assert_eq!(s.audience, "samverka:2021999012");
        assert_eq!(s.max_lifetime, Duration::from_secs(300));
        assert_eq!(s.max_login_age, Duration::from_secs(300));
        assert_eq!(s.grant_acr.len(), DEFAULT_ACCEPTED_ACR.len());
        assert!(!s.grant_acr.iter().any(|l| l.ends_with("loa2")));
    }

    #[test]
    fn revoking_may_not_need_more_than_granting() {
        let e = parse_text(
            "[assurance]\ngrant = [\"http://id.elegnamnden.se/loa/1.0/loa3\"]\n\
             revoke = [\"http://id.elegnamnden.se/loa/1.0/loa4\"]",
        )
        .unwrap_err();
        assert_eq!(e.key, "person_assertion.assurance.revoke");
        assert!(e.reason.contains("loa3"), "{e}");
        parse_text(
            "[assurance]\ngrant = [\"http://id.elegnamnden.se/loa/1.0/loa4\"]\n\
             revoke = [\"http://id.elegnamnden.se/loa/1.0/loa3\", \"http://id.elegnamnden.se/loa/1.0/loa4\"]",
        )
        .unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (text, key) in [
            ("max_lifetime_s = 301", "person_assertion.max_lifetime_s"),
            ("max_lifetime_s = 0", "person_assertion.max_lifetime_s"),
            ("max_login_age_s = 3601", "person_assertion.max_login_age_s"),
            ("clock_skew_s = 301", "person_assertion.clock_skew_s"),
            ("[assurance]\nread = []", "person_assertion.assurance.read"),
            ("audience = \" \"", "person_assertion.audience"),
        ] {
            assert_eq!(parse_text(text).unwrap_err().key, key, "{text}");
        }
    }
}
