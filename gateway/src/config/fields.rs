//! Field deserializers shared by several sections: organisation numbers
//! (`[gateway]`, `[[agencies]]`, `[[access_rules]]`, `[[adapters]]`) and
//! record type lists (`[[purposes]]`, `[[access_rules]]`, `[[adapters]]`);
//! and where key sets are ([`KeySource`]: `[[agencies]]`,
//! `[[identity_providers]]`).
//!
//! They refuse bad values while the file is read, so the error carries the
//! line of the offending value.

use std::path::{Path, PathBuf};

use samverka_certs::OrgNumber;
use serde::{Deserialize, Deserializer};

use super::is_record_type_name;

/// An organisation number, check digit verified.
pub(super) fn org_number<'de, D: Deserializer<'de>>(d: D) -> Result<OrgNumber, D::Error> {
    let s = String::deserialize(d)?;
    OrgNumber::parse(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid organisation number {s:?}: {e}")))
}

/// A non-empty list of well-formed record type names.
pub(super) fn record_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(
            "at least one record type is required",
        ));
    }
    if let Some(bad) = v.iter().find(|t| !is_record_type_name(t)) {
        return Err(serde::de::Error::custom(format!(
            "invalid record type {bad:?}: expected dotted lower-case names such as \"education.degree\""
        )));
    }
    Ok(v)
}

/// Where a set of verification keys is: a file (`keys`, `assertion_keys`),
/// read again when it changes, or the PEM or JWKS text itself (`key_set`,
/// `assertion_key_set`), as the registry in the store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM or JWKS file.
    File(PathBuf),
    /// PEM or JWKS text.
    Inline(String),
}

impl KeySource {
    /// Exactly one of a file (relative to `base_dir`) and inline text.
    pub(super) fn of(
        base_dir: &Path,
        file: &Option<PathBuf>,
        inline: &Option<String>,
    ) -> Result<KeySource, String> {
        match (file, inline) {
            (Some(f), None) => Ok(KeySource::File(base_dir.join(f))),
            (None, Some(t)) if !t.trim().is_empty() => Ok(KeySource::Inline(t.clone())),
            (None, Some(_)) => Err("the key set is blank".into()),
            (None, None) => Err("name a PEM or JWKS file, or write the key set itself".into()),
            (Some(_), Some(_)) => Err("name a file or write the key set, not both".into()),
        }
    }

    /// The PEM or JWKS text, read from the file when it is one.
    pub fn text(&self) -> Result<String, String> {
        match self {
            KeySource::File(p) => {
                std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
            }
            KeySource::Inline(t) => Ok(t.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Fields {
        #[serde(deserialize_with = "org_number")]
        _org: OrgNumber,
        #[serde(deserialize_with = "record_types")]
        _types: Vec<String>,
    }

    fn read(text: &str) -> Result<Fields, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn good_values_are_read() {
        read("_org = \"2021999012\"\n_types = [\"education.degree\"]").unwrap();
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let e = read("_org = \"2021999013\"\n_types = [\"education.degree\"]").unwrap_err();
        assert!(
            e.starts_with("invalid organisation number \"2021999013\""),
            "{e}"
        );
        let e = read("_org = \"2021999012\"\n_types = []").unwrap_err();
        assert_eq!(e, "at least one record type is required");
        let e = read("_org = \"2021999012\"\n_types = [\"Education\"]").unwrap_err();
        assert!(e.starts_with("invalid record type \"Education\""), "{e}");
    }
}
