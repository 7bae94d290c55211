//! The gateway's configuration: one TOML file with typed sections, parsed
//! and validated once at start.
//!
//! ```toml
//! [gateway]
//! address = "127.0.0.1:8443"      # gRPC over mTLS
//! admin_address = "127.0.0.1:9464" # plain HTTP: /metrics, /healthz, /readyz
//! org_number = "2021999012"       # the organisation operating this gateway
//! ca_cert = "certs/ca.pem"        # trust anchor for every peer certificate
//! cert = "certs/gateway.pem"      # server certificate towards agencies
//! key = "certs/gateway.key"
//! client_cert = "certs/gateway-client.pem"   # identity towards adapters
//! client_key = "certs/gateway-client.key"
//! crls = ["certs/crl.pem"]        # revocation lists checked at every handshake,
//!                                 # with agencies and with adapters (these
//!                                 # files, ca_cert and the certificates and
//!                                 # keys above are reloaded on change or SIGHUP)
//! stale_crl = "refuse"            # a list past its nextUpdate: "refuse" (the
//!                                 # default: the certificates it covers are
//!                                 # refused, /readyz not ready) or "warn"
//!                                 # (still used); both: samverka_crl_stale, a log line
//! store = "samverka.db"           # SQLite file for consents and audit, or
//!                                 # a postgresql:// URL shared by replicas
//!                                 # (TLS: ?sslmode=verify-full&sslrootcert=..
//!                                 # [&sslcert=..&sslkey=..], as for libpq)
//! default_deadline_ms = 5000      # when a caller sets no deadline
//! max_deadline_ms = 30000         # longer caller deadlines are cut to this
//!
//! [consents]
//! max_lifetime_days = 730         # the longest consent a registrar may grant
//! request_expiry_days = 7         # a requested consent undecided this long expires
//!
//! [audit]
//! checkpoint_every = 1000         # sign a checkpoint after this many entries
//! checkpoint_interval_s = 60      # or after this long, if anything was added
//! retention_days = 3650           # `samverka audit prune` archives older entries
//!
//! [telemetry]                     # OpenTelemetry traces and logs
//! otlp_endpoint = "http://127.0.0.1:4317"  # OTLP/gRPC collector; unset: no traces
//! sampling_ratio = 0.1            # share of new traces sampled (callers' decisions are kept)
//! otlp_metrics = false           # also send the metrics over OTLP (/metrics has them anyway)
//! service_name = "samverka-gateway"
//! log_format = "json"             # or "text" (the default)
//! resource_attributes = { "deployment.environment" = "production" }
//! # The standard OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME,
//! # OTEL_TRACES_SAMPLER(_ARG) and OTEL_RESOURCE_ATTRIBUTES override these.
//!
//! [limits]
//! max_request_bytes = 65536       # larger requests: RESOURCE_EXHAUSTED
//!                                 # MESSAGE_TOO_LARGE, refused unread (the
//!                                 # registry API takes max_response_bytes)
//! max_response_bytes = 4194304    # larger answers: RESOURCE_EXHAUSTED
//!                                 # MESSAGE_TOO_LARGE, audited as refused
//! max_concurrent_streams = 256    # requests in flight per connection
//! max_header_list_bytes = 16384   # request metadata
//! keepalive_interval_s = 30       # ping idle connections ...
//! keepalive_timeout_s = 10        # ... and close them if no answer
//! max_connection_age_s = 3600     # then close gracefully: clients reconnect
//!                                 # with a fresh handshake (and CRL check)
//! breaker_failures = 5            # a source failing this often in a row ...
//! breaker_pause_s = 10            # ... is not called for this long, then probed
//! rate_per_second = 1000          # per caller (agency, or certificate), on average ...
//! burst = 2000                    # ... and at once; then RATE_LIMITED
//!
//! [person_assertion]              # how a registrar proves the person is present
//! audience = "samverka:2021999012" # the `aud` assertions name (this default)
//! max_lifetime_s = 300            # longest assertion (exp - iat), at most 300
//! max_login_age_s = 300           # oldest login (the ID token's auth_time)
//! clock_skew_s = 30               # tolerated clock difference
//! [person_assertion.assurance]    # accepted `acr` per action (default:
//! grant = ["http://id.elegnamnden.se/loa/1.0/loa3"]  # substantial or high);
//! revoke = ["http://id.elegnamnden.se/loa/1.0/loa3"] # revoke must accept all
//! read = ["http://id.elegnamnden.se/loa/1.0/loa3"]   # of grant's levels
//!
//! [[identity_providers]]          # whose ID tokens prove a person's login
//! issuer = "https://eid-broker.example.se"
//! name = "eID broker"
//! keys = "certs/eid-broker.jwks.json"  # JWKS or PEM, reloaded on change
//!
//! [[agencies]]                    # agencies that may call the gateway
//! org_number = "2021999038"
//! name = "Citizen e-service"
//! registrar = true                # may record consents (Consents service)
//! registrar_purposes = ["study_guidance"]  # ... for these purposes only
//! registrar_self_grant = false    # ... never for itself (the default)
//! assertion_keys = "certs/registrar-assertion.pub.pem"  # PEM or JWKS
//! login_clients = [{ issuer = "https://eid-broker.example.se", client_id = "citizen-eservice" }]
//! rate_per_second = 50            # optional: its own rate instead of [limits]
//! burst = 100                     # optional: its own burst
//!
//! [[purposes]]                    # the purpose registry
//! code = "study_guidance"
//! description = "Study and career guidance"
//! description_sv = "Studie- och yrkesvägledning"  # optional
//! record_types = ["education.course_result", "employment.period"]
//!
//! [[access_rules]]                # agency x purposes x record types
//! id = "guidance"                 # optional: default "AGENCY/PURPOSE+..."
//! agency = "2021999020"
//! purposes = ["study_guidance"]
//! record_types = ["education.course_result", "employment.period"]
//!
//! [[adapters]]                    # the routing table
//! name = "employment"
//! address = "127.0.0.1:50062"
//! org_number = "2021999053"
//! record_types = ["employment.period"]
//!
//! [registry]                      # which registry is in force (config/document.rs):
//! source = "store"                # the store's (seeded from the tables above when
//!                                 # it has none; changed through the management
//!                                 # API), or "file": these tables, read again on SIGHUP
//! apply_file = false              # true: tables edited since they were written into
//!                                 # the store replace its registry at start (a new
//!                                 # version); false: such a file is refused
//! ```
//!
//! `assertion_keys` and `keys` name files; `assertion_key_set` and
//! `key_set` hold the PEM or JWKS text itself instead.
//!
//! Relative paths are relative to the file's directory. Unknown keys are
//! errors, so that a misspelt key cannot silently fall back to a default.
//! Every error names the line and the reason. The `[agency]`, `[registrar]`,
//! `[subject]` and `[operator]` tables that `samverka demo` writes for clients are
//! accepted and ignored.
//!
//! # Layout
//! [`Config::from_toml`] reads the whole file at once (so that an unknown
//! key or a bad value anywhere names its line), then hands each section to
//! its parser, in this order, the first refusal answering:
//! `gateway.rs` (`[gateway]`), `consents.rs`, `audit.rs`, `limits.rs`,
//! `telemetry.rs`, `registry.rs` (`[[agencies]]`, `[[purposes]]` and
//! `[[access_rules]]`, checked against each other) and `adapters.rs`
//! (`[[adapters]]`). `fields.rs` holds the deserializers of organisation
//! numbers and record type lists that several sections share.
//! [`check`] opens the files a configuration names (certificates, keys,
//! trust bundle, revocation lists, the store) and reports every problem
//! with its line: `samverka check-config` and `samverka serve` share it.

mod adapters;
mod audit;
pub mod check;
mod consents;
mod document;
mod fields;
mod gateway;
mod limits;
mod person;
mod registry;
mod telemetry;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use adapters::AdapterRoute;
pub use audit::AuditSettings;
pub use consents::ConsentSettings;
pub use document::{RegistrySource, RegistryTables, document_digest};
pub use fields::KeySource;
pub use gateway::{GatewaySettings, UnattestedRecords};
pub use limits::Limits;
pub use person::{DEFAULT_ACCEPTED_ACR, IdentityProvider, PersonAssertionSettings};
pub use registry::{AccessRule, Agency, LoginClient, Purpose, Registrar};
pub use samverka_proto::is_record_type_name;

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when read from one.
    pub file: Option<PathBuf>,
    /// 1-based line of the offending key, when known.
    pub line: Option<usize>,
    /// The offending key (a path such as `access_rules[1].purposes`) or the
    /// text of the offending line.
    pub key: String,
    /// Why it is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A refused value found after reading, when its line is no longer
    /// known: `key` names it (`limits`, `telemetry.log_format`, ...).
    fn for_key(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            line: None,
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A refused table entry: the line is where its `span` starts in
    /// `text`, the whole file.
    fn at(text: &str, span: Range<usize>, key: String, reason: String) -> ConfigError {
        ConfigError {
            file: None,
            line: Some(line_of(text, span.start)),
            key,
            reason,
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `[gateway]` section.
    pub gateway: GatewaySettings,
    /// The `[consents]` section.
    pub consents: ConsentSettings,
    /// The `[audit]` section.
    pub audit: AuditSettings,
    /// The `[limits]` section.
    pub limits: Limits,
    /// Agencies known to this gateway.
    pub agencies: Vec<Agency>,
    /// The purpose registry.
    pub purposes: Vec<Purpose>,
    /// Who may read what, for which purpose.
    pub access_rules: Vec<AccessRule>,
    /// Where each record type is fetched from.
    pub adapters: Vec<AdapterRoute>,
    /// The `[telemetry]` section: traces and logs.
    pub telemetry: samverka_adapter::telemetry::TelemetryConfig,
    /// The `[person_assertion]` section.
    pub person_assertion: PersonAssertionSettings,
    /// Identity providers whose ID tokens prove a person's login.
    pub identity_providers: Vec<IdentityProvider>,
    /// `[registry] source`: the store's registry or these tables.
    pub registry_source: RegistrySource,
    /// `[registry] apply_file`: at start, these tables, if edited since
    /// they were last written into the store, become its latest version.
    pub apply_file: bool,
    /// Whether the file writes any registry table (agencies, purposes,
    /// access rules, adapters, identity providers).
    pub writes_registry: bool,
    /// The file this was read from, when it was ([`Config::load`]).
    pub file: Option<PathBuf>,
}

/// The file's shape: each section's own shape lives with its parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    gateway: gateway::RawGateway,
    #[serde(default)]
    consents: consents::RawConsents,
    #[serde(default)]
    audit: audit::RawAudit,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    telemetry: telemetry::RawTelemetry,
    #[serde(default)]
    agencies: Vec<Spanned<registry::RawAgency>>,
    #[serde(default)]
    purposes: Vec<Spanned<registry::RawPurpose>>,
    #[serde(default)]
    access_rules: Vec<Spanned<registry::RawAccessRule>>,
    #[serde(default)]
    adapters: Vec<Spanned<adapters::RawAdapter>>,
    #[serde(default)]
    person_assertion: person::RawPersonAssertion,
    #[serde(default)]
    identity_providers: Vec<Spanned<person::RawIdentityProvider>>,
    #[serde(default)]
    registry: document::RawRegistrySettings,
    // Written by `samverka demo` for clients; the gateway does not use them.
    #[serde(default, rename = "agency")]
    _demo_agency: Option<toml::Table>,
    #[serde(default, rename = "registrar")]
    _demo_registrar: Option<toml::Table>,
    #[serde(default, rename = "subject")]
    _demo_subject: Option<toml::Table>,
    #[serde(default, rename = "operator")]
    _demo_operator: Option<toml::Table>,
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            line: None,
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::from_toml(&text, base).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            ..e
        })?;
        config.file = Some(path.to_owned());
        Ok(config)
    }

    /// Parses and validates configuration text; relative paths are taken
    /// relative to `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        // A syntax error, unknown key or malformed value: the key is the
        // text of the offending line.
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
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

        // One parser per section, in the order the checks have always run,
        // so that a file with several faults names the same one first.
        let gateway = gateway::parse(raw.gateway, base_dir)?;
        let consents = consents::parse(raw.consents)?;
        let audit = audit::parse(raw.audit)?;
        let limits = limits::parse(raw.limits)?;
        let telemetry = telemetry::parse(raw.telemetry)?;
        let tables = document::RawTables {
            agencies: raw.agencies,
            purposes: raw.purposes,
            access_rules: raw.access_rules,
            adapters: raw.adapters,
            identity_providers: raw.identity_providers,
        };
        let writes_registry = !tables.is_empty();
        let RegistryTables {
            agencies,
            purposes,
            access_rules,
            adapters,
            identity_providers,
        } = tables.parse(text, base_dir)?;
        let person_assertion = person::parse(raw.person_assertion, gateway.org_number.as_str())?;

        Ok(Config {
            gateway,
            consents,
            audit,
            limits,
            agencies,
            purposes,
            access_rules,
            adapters,
            telemetry,
            person_assertion,
            identity_providers,
            registry_source: raw.registry.source,
            apply_file: raw.registry.apply_file,
            writes_registry,
            file: None,
        })
    }

    /// The file's registry tables.
    pub fn tables(&self) -> RegistryTables {
        RegistryTables {
            agencies: self.agencies.clone(),
            purposes: self.purposes.clone(),
            access_rules: self.access_rules.clone(),
            adapters: self.adapters.clone(),
            identity_providers: self.identity_providers.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
