//! The `[[agencies]]`, `[[purposes]]` and `[[access_rules]]` tables: who
//! may call, for which purposes, and who may read what for which purpose.
//!
//! They are one section because they refer to each other: an access rule
//! must name a listed agency and defined purposes. Each entry keeps its
//! span so that an error names the line of its `[[...]]` header.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use samverka_certs::OrgNumber;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::ConfigError;
use super::fields::{KeySource, org_number, record_types};

/// An agency that may call the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Agency {
    /// Its organisation number, as in its certificate.
    pub org_number: OrgNumber,
    /// A name for people.
    pub name: String,
    /// Set when it may record consents: within what bounds.
    pub registrar: Option<Registrar>,
    /// Its own `rate_per_second`, instead of `[limits]`'s.
    pub rate_per_second: Option<f64>,
    /// Its own `burst`, instead of `[limits]`'s.
    pub burst: Option<f64>,
}

/// What a registrar agency may do for people, and how it proves that a
/// person is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registrar {
    /// The purposes it may record consents for.
    pub purposes: Vec<String>,
    /// Whether it may record a consent that lets itself read.
    pub self_grant: bool,
    /// Its person-assertion public keys: PEM (public keys or
    /// certificates) or JWKS, in a file reloaded on change or written in
    /// the registry itself.
    pub assertion_keys: KeySource,
    /// Its client ids at trusted identity providers: an ID token it passes
    /// as evidence must be addressed to one of them.
    pub login_clients: Vec<LoginClient>,
}

/// A registrar's client id at an identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginClient {
    /// The provider's issuer, as under `[[identity_providers]]`.
    pub issuer: String,
    /// The registrar's client id there.
    pub client_id: String,
}

/// A purpose a read may state and a consent may be given for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    /// The code used in requests and consents.
    pub code: String,
    /// What it means (in English).
    pub description: String,
    /// What it means, in Swedish, when written.
    pub description_sv: Option<String>,
    /// The record types a consent for this purpose may cover.
    pub record_types: Vec<String>,
}

/// Lets one agency read some record types for some purposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// Names the rule in the registry: as written, or else the agency and
    /// its purposes (`2021999020/study_guidance+job_matching`).
    pub id: String,
    /// The agency.
    pub agency: OrgNumber,
    /// The purposes it may state.
    pub purposes: Vec<String>,
    /// The record types it may read for those purposes.
    pub record_types: Vec<String>,
}

/// The three tables, checked against each other.
#[derive(Debug)]
pub(super) struct Registry {
    pub(super) agencies: Vec<Agency>,
    pub(super) purposes: Vec<Purpose>,
    pub(super) access_rules: Vec<AccessRule>,
}

/// One `[[agencies]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgency {
    #[serde(deserialize_with = "org_number")]
    org_number: OrgNumber,
    name: String,
    #[serde(default)]
    registrar: bool,
    rate_per_second: Option<f64>,
    burst: Option<f64>,
    registrar_purposes: Option<Vec<String>>,
    #[serde(default)]
    registrar_self_grant: bool,
    assertion_keys: Option<PathBuf>,
    assertion_key_set: Option<String>,
    #[serde(default)]
    login_clients: Vec<LoginClient>,
}

/// One `[[purposes]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPurpose {
    #[serde(deserialize_with = "purpose_code")]
    code: String,
    description: String,
    description_sv: Option<String>,
    #[serde(deserialize_with = "record_types")]
    record_types: Vec<String>,
}

/// One `[[access_rules]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessRule {
    id: Option<String>,
    #[serde(deserialize_with = "org_number")]
    agency: OrgNumber,
    purposes: Vec<String>,
    #[serde(deserialize_with = "record_types")]
    record_types: Vec<String>,
}

/// A purpose code: lower-case letters, digits and `_`.
fn purpose_code<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "invalid purpose code {s:?}: expected lower-case letters, digits and '_'"
        )))
    }
}

/// Checks the agencies, then the purposes, then the access rules against
/// both; `text` is the whole file, to turn spans into lines.
pub(super) fn parse(
    text: &str,
    base_dir: &Path,
    agencies: Vec<Spanned<RawAgency>>,
    purposes: Vec<Spanned<RawPurpose>>,
    access_rules: Vec<Spanned<RawAccessRule>>,
) -> Result<Registry, ConfigError> {
    let purposes = parse_purposes(text, purposes)?;
    let agencies = parse_agencies(text, base_dir, agencies, &purposes)?;
    let access_rules = parse_access_rules(text, access_rules, &agencies, &purposes)?;
    Ok(Registry {
        agencies,
        purposes,
        access_rules,
    })
}

/// No organisation number twice; a rate of its own above 0 and a burst of
/// at least 1, as in `[limits]`; a registrar's bounds (see [`registrar`]).
fn parse_agencies(
    text: &str,
    base_dir: &Path,
    raw: Vec<Spanned<RawAgency>>,
    purposes: &[Purpose],
) -> Result<Vec<Agency>, ConfigError> {
    let mut agencies = Vec::new();
    let mut seen = HashSet::new();
    for (i, a) in raw.into_iter().enumerate() {
        let span = a.span();
        let a = a.into_inner();
        if !seen.insert(a.org_number.clone()) {
            return Err(ConfigError::at(
                text,
                span,
                format!("agencies[{i}].org_number"),
                format!("{} is listed twice", a.org_number),
            ));
        }
        // Finite and at least `min`: refuses NaN and infinities too.
        let sane = |v: Option<f64>, min: f64| v.is_none_or(|v| v.is_finite() && v >= min);
        if !sane(a.rate_per_second, f64::MIN_POSITIVE) || !sane(a.burst, 1.0) {
            return Err(ConfigError::at(
                text,
                span,
                format!("agencies[{i}]"),
                "rate_per_second must be above 0 and burst at least 1".into(),
            ));
        }
        let registrar = registrar(&a, base_dir, purposes).map_err(|(key, reason)| {
            ConfigError::at(text, span, format!("agencies[{i}]{key}"), reason)
        })?;
        agencies.push(Agency {
            org_number: a.org_number,
            name: a.name,
            registrar,
            rate_per_second: a.rate_per_second,
            burst: a.burst,
        });
    }
    Ok(agencies)
}

/// A registrar names the purposes it may record consents for (all
/// defined), its assertion keys and at least one login client; the
/// registrar keys on an agency that is not one are refused, as they would
/// mean nothing. Errors are (key suffix, reason).
fn registrar(
    a: &RawAgency,
    base_dir: &Path,
    purposes: &[Purpose],
) -> Result<Option<Registrar>, (String, String)> {
    if !a.registrar {
        let set = a.registrar_purposes.is_some()
            || a.registrar_self_grant
            || a.assertion_keys.is_some()
            || a.assertion_key_set.is_some()
            || !a.login_clients.is_empty();
        return if set {
            Err((
                String::new(),
                "registrar_purposes, registrar_self_grant, assertion_keys, assertion_key_set \
                 and login_clients are only for registrar = true"
                    .into(),
            ))
        } else {
            Ok(None)
        };
    }
    let listed = a.registrar_purposes.clone().unwrap_or_default();
    if listed.is_empty() {
        return Err((
            ".registrar_purposes".into(),
            "a registrar must name the purposes it may record consents for".into(),
        ));
    }
    if let Some(code) = listed
        .iter()
        .find(|c| !purposes.iter().any(|p| &p.code == *c))
    {
        return Err((
            ".registrar_purposes".into(),
            format!("purpose {code:?} is not defined under [[purposes]]"),
        ));
    }
    let keys =
        KeySource::of(base_dir, &a.assertion_keys, &a.assertion_key_set).map_err(|reason| {
            (
                ".assertion_keys".into(),
                format!("a registrar's person-assertion keys: {reason}"),
            )
        })?;
    if a.login_clients.is_empty() {
        return Err((
            ".login_clients".into(),
            "a registrar needs at least one client id at a trusted identity provider".into(),
        ));
    }
    Ok(Some(Registrar {
        purposes: listed,
        self_grant: a.registrar_self_grant,
        assertion_keys: keys,
        login_clients: a.login_clients.clone(),
    }))
}

/// No purpose code twice.
fn parse_purposes(text: &str, raw: Vec<Spanned<RawPurpose>>) -> Result<Vec<Purpose>, ConfigError> {
    let mut purposes: Vec<Purpose> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let span = p.span();
        let p = p.into_inner();
        if purposes.iter().any(|q| q.code == p.code) {
            return Err(ConfigError::at(
                text,
                span,
                format!("purposes[{i}].code"),
                format!("{:?} is defined twice", p.code),
            ));
        }
        purposes.push(Purpose {
            code: p.code,
            description: p.description,
            description_sv: p.description_sv,
            record_types: p.record_types,
        });
    }
    Ok(purposes)
}

/// Each rule names a listed agency and at least one purpose, all defined;
/// no rule id twice.
fn parse_access_rules(
    text: &str,
    raw: Vec<Spanned<RawAccessRule>>,
    agencies: &[Agency],
    purposes: &[Purpose],
) -> Result<Vec<AccessRule>, ConfigError> {
    let mut access_rules = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let span = r.span();
        let r = r.into_inner();
        if !agencies.iter().any(|a| a.org_number == r.agency) {
            return Err(ConfigError::at(
                text,
                span,
                format!("access_rules[{i}].agency"),
                format!("{} is not listed under [[agencies]]", r.agency),
            ));
        }
        if r.purposes.is_empty() {
            return Err(ConfigError::at(
                text,
                span,
                format!("access_rules[{i}].purposes"),
                "at least one purpose is required".into(),
            ));
        }
        for code in &r.purposes {
            if !purposes.iter().any(|p| &p.code == code) {
                return Err(ConfigError::at(
                    text,
                    span.clone(),
                    format!("access_rules[{i}].purposes"),
                    format!("purpose {code:?} is not defined under [[purposes]]"),
                ));
            }
        }
        let id =
            r.id.unwrap_or_else(|| format!("{}/{}", r.agency, r.purposes.join("+")));
        if id.trim().is_empty() || id.chars().count() > 128 {
            return Err(ConfigError::at(
                text,
                span,
                format!("access_rules[{i}].id"),
                "must have 1 to 128 characters, not all blank".into(),
            ));
        }
        if access_rules.iter().any(|q: &AccessRule| q.id == id) {
            return Err(ConfigError::at(
                text,
                span,
                format!("access_rules[{i}].id"),
                format!("{id:?} names two rules: give each an id of its own"),
            ));
        }
        access_rules.push(AccessRule {
            id,
            agency: r.agency,
            purposes: r.purposes,
            record_types: r.record_types,
        });
    }
    Ok(access_rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three tables alone, as `Config::from_toml` reads them.
    #[derive(Deserialize)]
    struct Tables {
        #[serde(default)]
        agencies: Vec<Spanned<RawAgency>>,
        #[serde(default)]
        purposes: Vec<Spanned<RawPurpose>>,
        #[serde(default)]
        access_rules: Vec<Spanned<RawAccessRule>>,
    }

    const GOOD: &str = r#"
[[agencies]]
org_number = "2021999020"
name = "Guidance service"

[[purposes]]
code = "study_guidance"
description = "Study and career guidance"
record_types = ["education.course_result"]

[[access_rules]]
agency = "2021999020"
purposes = ["study_guidance"]
record_types = ["education.course_result"]
"#;

    fn parse_text(text: &str) -> Result<Registry, ConfigError> {
        let t: Tables = toml::from_str(text).unwrap();
        parse(
            text,
            Path::new("/cfg"),
            t.agencies,
            t.purposes,
            t.access_rules,
        )
    }

    #[test]
    fn empty_tables_and_defaults() {
        let r = parse_text("").unwrap();
        assert!(r.agencies.is_empty() && r.purposes.is_empty() && r.access_rules.is_empty());
        let r = parse_text(GOOD).unwrap();
        assert!(r.agencies[0].registrar.is_none());
        assert_eq!(r.purposes[0].code, "study_guidance");
        assert_eq!(r.access_rules[0].purposes, ["study_guidance"]);
    }

    #[test]
    fn a_twice_listed_agency_names_its_header_line() {
        let text = format!("{GOOD}\n[[agencies]]\norg_number = \"2021999020\"\nname = \"Again\"\n");
        let e = parse_text(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "16: agencies[1].org_number: 2021999020 is listed twice"
        );
    }

    #[test]
    fn an_agency_may_have_a_rate_of_its_own() {
        let r = parse_text(GOOD).unwrap();
        assert_eq!(
            (r.agencies[0].rate_per_second, r.agencies[0].burst),
            (None, None)
        );
        let own = GOOD.replace(
            "name = \"Guidance service\"",
            "name = \"Guidance service\"\nrate_per_second = 5.5\nburst = 20",
        );
        let r = parse_text(&own).unwrap();
        assert_eq!(
            (r.agencies[0].rate_per_second, r.agencies[0].burst),
            (Some(5.5), Some(20.0))
        );
        for bad in [
            "rate_per_second = 0",
            "rate_per_second = -1",
            "burst = 0.5",
            "burst = inf",
            "rate_per_second = nan",
        ] {
            let text = GOOD.replace(
                "name = \"Guidance service\"",
                &format!("name = \"Guidance service\"\n{bad}"),
            );
            let e = parse_text(&text).unwrap_err();
            assert_eq!(
                e.to_string(),
                "2: agencies[0]: rate_per_second must be above 0 and burst at least 1",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_rule_without_purposes_or_with_an_undefined_one_is_refused() {
        let e = parse_text(&GOOD.replace("[\"study_guidance\"]", "[]")).unwrap_err();
        assert_eq!(e.key, "access_rules[0].purposes");
        assert_eq!(e.reason, "at least one purpose is required");
        let e =
            parse_text(&GOOD.replace("code = \"study_guidance\"", "code = \"other\"")).unwrap_err();
        assert_eq!(
            e.reason,
            "purpose \"study_guidance\" is not defined under [[purposes]]"
        );
        assert_eq!(e.line, Some(11)); // the rule's [[access_rules]] header
    }
    #[test]
    fn a_registrar_names_its_purposes_keys_and_login_clients() {
        let registrar = GOOD.replace(
            "name = \"Guidance service\"",
            "name = \"Guidance service\"\nregistrar = true\n\
             registrar_purposes = [\"study_guidance\"]\n\
             assertion_keys = \"keys/registrar.pem\"\n\
             login_clients = [{ issuer = \"https://idp.example\", client_id = \"eservice\" }]",
        );
        let r = parse_text(&registrar).unwrap();
        let bounds = r.agencies[0].registrar.as_ref().unwrap();
        assert_eq!(bounds.purposes, ["study_guidance"]);
        assert!(!bounds.self_grant, "never to itself unless configured");
        assert_eq!(
            bounds.assertion_keys,
            KeySource::File("/cfg/keys/registrar.pem".into())
        );
        assert_eq!(bounds.login_clients[0].client_id, "eservice");

        for (drop, key) in [
            (
                "registrar_purposes = [\"study_guidance\"]\n",
                "agencies[0].registrar_purposes",
            ),
            (
                "assertion_keys = \"keys/registrar.pem\"\n",
                "agencies[0].assertion_keys",
            ),
        ] {
            let e = parse_text(&registrar.replace(drop, "")).unwrap_err();
            assert_eq!(e.key, key);
            assert_eq!(e.line, Some(2));
        }
        let e = parse_text(&registrar.replace(
            "login_clients = [{ issuer = \"https://idp.example\", client_id = \"eservice\" }]",
            "",
        ))
        .unwrap_err();
        assert_eq!(e.key, "agencies[0].login_clients");
        let e = parse_text(
            &registrar.replace("[\"study_guidance\"]\nassertion", "[\"other\"]\nassertion"),
        )
        .unwrap_err();
        assert_eq!(
            e.reason,
            "purpose \"other\" is not defined under [[purposes]]"
        );
        // Bounds on an agency that is no registrar mean nothing: refused.
        let e = parse_text(&registrar.replace("registrar = true\n", "")).unwrap_err();
        assert_eq!(e.key, "agencies[0]");
        assert!(e.reason.contains("only for registrar = true"), "{e}");
    }
}
