//! The registry as one document: agencies, purposes, access rules, adapter
//! routes and identity providers, the five tables that say who may read
//! what. The configuration file holds them (and seeds the store with them),
//! and the store holds versions of them as documents in the same TOML
//! shape, checked by the same parsers with the same reasons.
//!
//! `[registry] source` says which is in force:
//! - `"store"` (the default): the store's latest version. A store with no
//!   version yet is seeded from the file's tables; once it has one, the
//!   store's is in force, and the file's tables count only if they changed
//!   since the file last wrote them into the store: then the gateway
//!   refuses to start (two registries and no way to know which is meant).
//!   Tables left as they were seeded are no conflict: the store moves on
//!   through the management API.
//! - `"file"`: the file's tables, read again on SIGHUP; the management
//!   API refuses changes.
//!
//! `apply_file = true` (with `"store"`) makes a changed file win at start
//! instead of being refused: its tables are written as a new version,
//! audited like any change, and changes made through the API since are
//! overwritten. `samverka demo` uses it, as its adapters listen on new
//! ports at each start.

use std::path::Path;

use samverka_certs::OrgNumber;
use serde::Deserialize;
use toml::{Spanned, Table, Value};

use super::{
    AccessRule, AdapterRoute, Agency, ConfigError, IdentityProvider, KeySource, Purpose, adapters,
    person, registry,
};

/// Which registry is in force: see the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrySource {
    /// The store's versions, changed through the management API.
    #[default]
    Store,
    /// The configuration file's tables, read again on SIGHUP.
    File,
}

/// The `[registry]` section as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistrySettings {
    #[serde(default)]
    pub(super) source: RegistrySource,
    #[serde(default)]
    pub(super) apply_file: bool,
}

/// The five tables, checked against each other.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistryTables {
    /// Agencies known to this gateway.
    pub agencies: Vec<Agency>,
    /// The purpose registry.
    pub purposes: Vec<Purpose>,
    /// Who may read what, for which purpose.
    pub access_rules: Vec<AccessRule>,
    /// Where each record type is fetched from.
    pub adapters: Vec<AdapterRoute>,
    /// Identity providers whose ID tokens prove a person's login.
    pub identity_providers: Vec<IdentityProvider>,
}

/// The tables as written, in a configuration file or a document.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTables {
    #[serde(default)]
    pub(super) agencies: Vec<Spanned<registry::RawAgency>>,
    #[serde(default)]
    pub(super) purposes: Vec<Spanned<registry::RawPurpose>>,
    #[serde(default)]
    pub(super) access_rules: Vec<Spanned<registry::RawAccessRule>>,
    #[serde(default)]
    pub(super) adapters: Vec<Spanned<adapters::RawAdapter>>,
    #[serde(default)]
    pub(super) identity_providers: Vec<Spanned<person::RawIdentityProvider>>,
}

impl RawTables {
    /// Whether the file wrote any of the tables.
    pub(super) fn is_empty(&self) -> bool {
        self.agencies.is_empty()
            && self.purposes.is_empty()
            && self.access_rules.is_empty()
            && self.adapters.is_empty()
            && self.identity_providers.is_empty()
    }

    /// Checks the tables against each other; `text` is the whole text they
    /// were read from, to turn spans into lines.
    pub(super) fn parse(self, text: &str, base_dir: &Path) -> Result<RegistryTables, ConfigError> {
        let registry::Registry {
            agencies,
            purposes,
            access_rules,
        } = registry::parse(
            text,
            base_dir,
            self.agencies,
            self.purposes,
            self.access_rules,
        )?;
        let adapters = adapters::parse(text, self.adapters)?;
        let identity_providers =
            person::parse_providers(text, base_dir, self.identity_providers, &agencies)?;
        let tables = RegistryTables {
            agencies,
            purposes,
            access_rules,
            adapters,
            identity_providers,
        };
        no_control_characters(&tables)?;
        Ok(tables)
    }
}

/// No control character (a line break, an escape, NUL, ...) in a name,
/// id or address, which name items in logs, operators' terminals and the
/// audit trail's summaries of changes, where a line break could forge a
/// line; descriptions may break lines and hold tabs, nothing else. (Codes,
/// numbers and record types have stricter forms already; key sets are PEM
/// or JSON, checked when read.)
fn no_control_characters(t: &RegistryTables) -> Result<(), ConfigError> {
    let mut fields: Vec<(String, &str)> = Vec::new();
    let mut descriptions: Vec<(String, &str)> = Vec::new();
    for (i, a) in t.agencies.iter().enumerate() {
        fields.push((format!("agencies[{i}].name"), &a.name));
        for (j, c) in a
            .registrar
            .iter()
            .flat_map(|r| &r.login_clients)
            .enumerate()
        {
            fields.push((
                format!("agencies[{i}].login_clients[{j}].issuer"),
                &c.issuer,
            ));
            fields.push((
                format!("agencies[{i}].login_clients[{j}].client_id"),
                &c.client_id,
            ));
        }
    }
    for (i, p) in t.purposes.iter().enumerate() {
        descriptions.push((format!("purposes[{i}].description"), &p.description));
        if let Some(sv) = &p.description_sv {
            descriptions.push((format!("purposes[{i}].description_sv"), sv));
        }
    }
    for (i, r) in t.access_rules.iter().enumerate() {
        fields.push((format!("access_rules[{i}].id"), &r.id));
    }
    for (i, a) in t.adapters.iter().enumerate() {
        fields.push((format!("adapters[{i}].name"), &a.name));
        fields.push((format!("adapters[{i}].address"), &a.address));
        fields.push((format!("adapters[{i}].server_name"), &a.server_name));
    }
    for (i, p) in t.identity_providers.iter().enumerate() {
        fields.push((format!("identity_providers[{i}].issuer"), &p.issuer));
        fields.push((format!("identity_providers[{i}].name"), &p.name));
    }
    let in_text = |c: char| c.is_control() && c != '\n' && c != '\t';
    let bad = fields
        .into_iter()
        .find(|(_, v)| v.chars().any(char::is_control))
        .or_else(|| {
            descriptions
                .into_iter()
                .find(|(_, v)| v.chars().any(in_text))
        });
    match bad {
        Some((key, _)) => Err(ConfigError::for_key(
            key,
            "must not contain control characters (line breaks, escapes, ...)",
        )),
        None => Ok(()),
    }
}

/// Converts a value the document writes.
fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

fn key_set(source: &KeySource) -> Result<Value, String> {
    source.text().map(Value::String)
}

impl RegistryTables {
    /// Reads a registry document (as [`RegistryTables::to_document`] writes
    /// it). Keys must be written in it: a path would name a file on one
    /// replica's disk.
    pub fn from_document(text: &str) -> Result<RegistryTables, ConfigError> {
        let raw: RawTables = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| super::line_of(text, s.start));
            ConfigError {
                file: None,
                line,
                key: line
                    .and_then(|l| text.lines().nth(l - 1))
                    .map(|l| l.trim().to_owned())
                    .unwrap_or_default(),
                reason: e.message().to_owned(),
            }
        })?;
        let tables = raw.parse(text, Path::new("/"))?;
        let file_key = tables
            .agencies
            .iter()
            .enumerate()
            .find(|(_, a)| {
                matches!(&a.registrar, Some(r) if matches!(r.assertion_keys, KeySource::File(_)))
            })
            .map(|(i, _)| format!("agencies[{i}].assertion_keys"))
            .or_else(|| {
                tables
                    .identity_providers
                    .iter()
                    .position(|p| matches!(p.keys, KeySource::File(_)))
                    .map(|i| format!("identity_providers[{i}].keys"))
            });
        if let Some(key) = file_key {
            return Err(ConfigError::for_key(
                key,
                "the registry in the store holds keys themselves (assertion_key_set, key_set), \
                 not file names",
            ));
        }
        Ok(tables)
    }

    /// The canonical document: the tables in TOML, in their order, keys
    /// read from their files and written in. The same tables always give
    /// the same text, so that its digest names a version's content.
    pub fn to_document(&self) -> Result<String, String> {
        let mut doc = Table::new();
        let mut agencies = Vec::new();
        for a in &self.agencies {
            let mut t = Table::new();
            t.insert("org_number".into(), Value::String(a.org_number.to_string()));
            t.insert("name".into(), Value::String(a.name.clone()));
            if let Some(r) = &a.registrar {
                t.insert("registrar".into(), Value::Boolean(true));
                t.insert("registrar_purposes".into(), strings(&r.purposes));
                t.insert("registrar_self_grant".into(), Value::Boolean(r.self_grant));
                t.insert("assertion_key_set".into(), key_set(&r.assertion_keys)?);
                let clients = r.login_clients.iter().map(|c| {
                    let mut t = Table::new();
                    t.insert("issuer".into(), Value::String(c.issuer.clone()));
                    t.insert("client_id".into(), Value::String(c.client_id.clone()));
                    Value::Table(t)
                });
                t.insert("login_clients".into(), Value::Array(clients.collect()));
            }
            if let Some(r) = a.rate_per_second {
                t.insert("rate_per_second".into(), Value::Float(r));
            }
            if let Some(b) = a.burst {
                t.insert("burst".into(), Value::Float(b));
            }
            agencies.push(Value::Table(t));
        }
        doc.insert("agencies".into(), Value::Array(agencies));
        let purposes = self.purposes.iter().map(|p| {
            let mut t = Table::new();
            t.insert("code".into(), Value::String(p.code.clone()));
            t.insert("description".into(), Value::String(p.description.clone()));
            if let Some(sv) = &p.description_sv {
                t.insert("description_sv".into(), Value::String(sv.clone()));
            }
            t.insert("record_types".into(), strings(&p.record_types));
            Value::Table(t)
        });
        doc.insert("purposes".into(), Value::Array(purposes.collect()));
        let rules = self.access_rules.iter().map(|r| {
            let mut t = Table::new();
            t.insert("id".into(), Value::String(r.id.clone()));
            t.insert("agency".into(), Value::String(r.agency.to_string()));
            t.insert("purposes".into(), strings(&r.purposes));
            t.insert("record_types".into(), strings(&r.record_types));
            Value::Table(t)
        });
        doc.insert("access_rules".into(), Value::Array(rules.collect()));
        let adapters = self.adapters.iter().map(|a| {
            let mut t = Table::new();
            t.insert("name".into(), Value::String(a.name.clone()));
            t.insert("address".into(), Value::String(a.address.clone()));
            t.insert("org_number".into(), Value::String(a.org_number.to_string()));
            t.insert("record_types".into(), strings(&a.record_types));
            // Empty: the host of the address, as when the key is left out.
            if !a.server_name.is_empty() {
                t.insert("server_name".into(), Value::String(a.server_name.clone()));
            }
            Value::Table(t)
        });
        doc.insert("adapters".into(), Value::Array(adapters.collect()));
        let mut providers = Vec::new();
        for p in &self.identity_providers {
            let mut t = Table::new();
            t.insert("issuer".into(), Value::String(p.issuer.clone()));
            // Empty: the issuer, as when the key is left out.
            if !p.name.is_empty() {
                t.insert("name".into(), Value::String(p.name.clone()));
            }
            t.insert("key_set".into(), key_set(&p.keys)?);
            providers.push(Value::Table(t));
        }
        doc.insert("identity_providers".into(), Value::Array(providers));
        toml::to_string(&doc).map_err(|e| e.to_string())
    }

    /// The configured agency with this organisation number.
    pub fn agency(&self, org: &OrgNumber) -> Option<&Agency> {
        self.agencies.iter().find(|a| &a.org_number == org)
    }

    /// The purpose with this code.
    pub fn purpose(&self, code: &str) -> Option<&Purpose> {
        self.purposes.iter().find(|p| p.code == code)
    }

    /// Whether this gateway knows the record type: some purpose covers it or
    /// some adapter serves it.
    pub fn knows_record_type(&self, record_type: &str) -> bool {
        self.purposes
            .iter()
            .any(|p| p.record_types.iter().any(|t| t == record_type))
            || self
                .adapters
                .iter()
                .any(|a| a.record_types.iter().any(|t| t == record_type))
    }
}

/// Hex SHA-256 of a document: what the audit trail names a version by.
pub fn document_digest(document: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, document.as_bytes());
    samverka_proto::hex(d.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = r#"
[[agencies]]
org_number = "2021999020"
name = "Guidance service"

[[agencies]]
org_number = "2021999038"
name = "Registrar"
registrar = true
registrar_purposes = ["study_guidance"]
assertion_key_set = "KEYS"
login_clients = [{ issuer = "https://idp.example", client_id = "eservice" }]
rate_per_second = 5.5

[[purposes]]
code = "study_guidance"
description = "Study and career guidance"
description_sv = "Studie- och yrkesvägledning"
record_types = ["education.course_result"]

[[access_rules]]
agency = "2021999020"
purposes = ["study_guidance"]
record_types = ["education.course_result"]

[[adapters]]
name = "ladok"
address = "127.0.0.1:1"
org_number = "2021999046"
record_types = ["education.course_result"]

[[identity_providers]]
issuer = "https://idp.example"
key_set = "KEYS"
"#;

    fn keys() -> String {
        samverka_certs::dev::signing_key().unwrap().1
    }

    #[test]
    fn a_document_reads_back_as_the_same_tables_and_text() {
        let text = TABLES.replace("KEYS", &keys().replace('\n', "\\n"));
        let tables = RegistryTables::from_document(&text).unwrap();
        assert_eq!(
            tables.access_rules[0].id, "2021999020/study_guidance",
            "a rule without an id is named by its agency and purposes"
        );
        let doc = tables.to_document().unwrap();
        let again = RegistryTables::from_document(&doc).unwrap();
        assert_eq!(again, tables);
        assert_eq!(again.to_document().unwrap(), doc, "canonical");
        assert_eq!(document_digest(&doc).len(), 64);
    }

    #[test]
    fn no_name_or_id_carries_a_control_character() {
        let keys = keys().replace('\n', "\\n");
        let good = TABLES.replace("KEYS", &keys);
        assert!(RegistryTables::from_document(&good).is_ok());
        // A description may break lines.
        let multiline = good.replace(
            "description = \"Study and career guidance\"",
            "description = \"Study and\\n\\tcareer guidance\"",
        );
        assert_ne!(multiline, good);
        assert!(RegistryTables::from_document(&multiline).is_ok());
        for (from, to, key) in [
            (
                "agency = \"2021999020\"",
                "id = \"x\\nremoved agencies 2021999020\"\nagency = \"2021999020\"",
                "access_rules[0].id",
            ),
            (
                "name = \"Guidance service\"",
                "name = \"Guidance\\u001b[31m\"",
                "agencies[0].name",
            ),
            (
                "name = \"ladok\"",
                "name = \"la\\tdok\"",
                "adapters[0].name",
            ),
            (
                "issuer = \"https://idp.example\"\nkey_set",
                "issuer = \"https://idp.example\"\nname = \"a\\u0000b\"\nkey_set",
                "identity_providers[0].name",
            ),
        ] {
            let text = good.replacen(from, to, 1);
            assert_ne!(text, good, "{from}");
            let e = RegistryTables::from_document(&text).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains("control characters"), "{e}");
        }
    }

    #[test]
    fn a_document_names_no_files_and_its_faults_have_the_config_reasons() {
        let text = TABLES
            .replace("KEYS", &keys().replace('\n', "\\n"))
            .replace("key_set = ", "keys = ");
        let e = RegistryTables::from_document(&text).unwrap_err();
        assert_eq!(e.key, "agencies[1].assertion_keys", "{e}");
        let text = text.replace("assertion_keys = ", "assertion_key_set = ");
        let e = RegistryTables::from_document(&text).unwrap_err();
        assert_eq!(e.key, "identity_providers[0].keys", "{e}");
        let text = TABLES.replace(
            "purposes = [\"study_guidance\"]\nrecord",
            "purposes = [\"x\"]\nrecord",
        );
        let e = RegistryTables::from_document(&text).unwrap_err();
        assert_eq!(e.reason, "purpose \"x\" is not defined under [[purposes]]");
        let header = text.lines().position(|l| l == "[[access_rules]]").unwrap() + 1;
        assert_eq!(e.line, Some(header), "the rule's header line");
    }
}
