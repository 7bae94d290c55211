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
//! crls = ["certs/crl.pem"]        # revocation lists checked at every handshake
//!                                 # (these files, ca_cert and the certificates
//!                                 # and keys above are reloaded on change or
//!                                 # SIGHUP)
//! store = "samverka.db"           # SQLite file for consents and audit, or
//!                                 # a postgresql:// URL shared by replicas
//!                                 # (TLS: ?sslmode=verify-full&sslrootcert=..
//!                                 # [&sslcert=..&sslkey=..], as for libpq)
//! default_deadline_ms = 5000      # when a caller sets no deadline
//! max_deadline_ms = 30000         # longer caller deadlines are cut to this
//!
//! [consents]
//! max_lifetime_days = 730         # the longest consent a registrar may grant
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
//! max_response_bytes = 4194304    # larger answers: RESOURCE_EXHAUSTED
//! max_concurrent_streams = 256    # requests in flight per connection
//! max_header_list_bytes = 16384   # request metadata
//! keepalive_interval_s = 30       # ping idle connections ...
//! keepalive_timeout_s = 10        # ... and close them if no answer
//! max_connection_age_s = 3600     # then close gracefully: clients reconnect
//!                                 # with a fresh handshake (and CRL check)
//! breaker_failures = 5            # a source failing this often in a row ...
//! breaker_pause_s = 10            # ... is not called for this long, then probed
//! rate_per_second = 1000          # per calling agency, on average ...
//! burst = 2000                    # ... and at once; then RATE_LIMITED
//!
//! [[agencies]]                    # agencies that may call the gateway
//! org_number = "2021999038"
//! name = "Citizen e-service"
//! registrar = true                # may record consents (Consents service)
//!
//! [[purposes]]                    # the purpose registry
//! code = "study_guidance"
//! description = "Study and career guidance"
//! record_types = ["education.course_result", "employment.period"]
//!
//! [[access_rules]]                # agency x purposes x record types
//! agency = "2021999020"
//! purposes = ["study_guidance"]
//! record_types = ["education.course_result", "employment.period"]
//!
//! [[adapters]]                    # the routing table
//! name = "employment"
//! address = "127.0.0.1:50062"
//! org_number = "2021999053"
//! record_types = ["employment.period"]
//! ```
//!
//! Relative paths are relative to the file's directory. Unknown keys are
//! errors, so that a misspelt key cannot silently fall back to a default.
//! Every error names the line and the reason. The `[agency]`, `[registrar]`
//! and `[subject]` tables that `samverka demo` writes for clients are
//! accepted and ignored.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use samverka_certs::OrgNumber;
use serde::{Deserialize, Deserializer};

use crate::store::StoreLocation;

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
}

/// The `[gateway]` section.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Where agencies connect (gRPC over mTLS).
    pub address: SocketAddr,
    /// Certificate revocation lists checked at every agency handshake.
    pub crls: Vec<PathBuf>,
    /// The operators' plain-HTTP listener: `/metrics`, `/healthz`,
    /// `/readyz` (default `127.0.0.1:9464`).
    pub admin_address: SocketAddr,
    /// The organisation operating this gateway.
    pub org_number: OrgNumber,
    /// Trust anchor for agency and adapter certificates.
    pub ca_cert: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Client certificate towards adapters.
    pub client_cert: PathBuf,
    /// Client key towards adapters.
    pub client_key: PathBuf,
    /// The consent and audit store.
    pub store: StoreLocation,
    /// Deadline for a request whose caller set none.
    pub default_deadline: Duration,
    /// The longest deadline a caller may set.
    pub max_deadline: Duration,
}

/// The `[consents]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentSettings {
    /// The longest time from `valid_from` to `valid_until` a grant may ask
    /// for.
    pub max_lifetime: Duration,
}

/// The `[audit]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// When to sign checkpoints of the audit trail.
    pub checkpoints: crate::audit::writer::CheckpointPolicy,
    /// How long entries stay in the store before `samverka audit prune`
    /// archives them.
    pub retention: Duration,
}

/// The `[limits]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// The largest answer sent, in bytes; a larger one is
    /// RESOURCE_EXHAUSTED (ask for fewer record types or sources).
    pub max_response_bytes: usize,
    /// Requests per second each agency may make, on average.
    pub rate_per_second: f64,
    /// How many requests an agency may make at once after a quiet spell.
    pub burst: f64,
    /// Requests in flight on one connection (HTTP/2 streams).
    pub max_concurrent_streams: u32,
    /// The largest set of request headers (metadata) accepted, in bytes.
    pub max_header_list_bytes: u32,
    /// How often an idle connection is pinged (HTTP/2 keepalive) ...
    pub keepalive_interval: Duration,
    /// ... and how long an answer to the ping may take before the
    /// connection is closed.
    pub keepalive_timeout: Duration,
    /// After this long a connection is closed gracefully (GOAWAY, requests
    /// in flight finish) and the client reconnects: with a fresh handshake,
    /// so that a revoked certificate's connection ends too.
    pub max_connection_age: Duration,
    /// A source failing this many calls in a row (unreachable, or too slow
    /// with at least a second to answer) ...
    pub breaker_failures: u32,
    /// ... is not called for this long, then probed with one call.
    pub breaker_pause: Duration,
}

/// An agency that may call the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    /// Its organisation number, as in its certificate.
    pub org_number: OrgNumber,
    /// A name for people.
    pub name: String,
    /// Whether it may record consents.
    pub registrar: bool,
}

/// A purpose a read may state and a consent may be given for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    /// The code used in requests and consents.
    pub code: String,
    /// What it means.
    pub description: String,
    /// The record types a consent for this purpose may cover.
    pub record_types: Vec<String>,
}

/// Lets one agency read some record types for some purposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// The agency.
    pub agency: OrgNumber,
    /// The purposes it may state.
    pub purposes: Vec<String>,
    /// The record types it may read for those purposes.
    pub record_types: Vec<String>,
}

/// One adapter in the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRoute {
    /// A short name, e.g. `higher-education`.
    pub name: String,
    /// `host:port` of the adapter's mTLS endpoint.
    pub address: String,
    /// The agency whose register it serves; records from it carry this.
    pub org_number: OrgNumber,
    /// The record types routed to it.
    pub record_types: Vec<String>,
    /// The name to expect in its server certificate (default: the host of
    /// `address`).
    pub server_name: String,
}

// ---- the file's shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    gateway: RawGateway,
    #[serde(default)]
    consents: RawConsents,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    telemetry: RawTelemetry,
    #[serde(default)]
    agencies: Vec<toml::Spanned<RawAgency>>,
    #[serde(default)]
    purposes: Vec<toml::Spanned<RawPurpose>>,
    #[serde(default)]
    access_rules: Vec<toml::Spanned<RawAccessRule>>,
    #[serde(default)]
    adapters: Vec<toml::Spanned<RawAdapter>>,
    // Written by `samverka demo` for clients; the gateway does not use them.
    #[serde(default, rename = "agency")]
    _demo_agency: Option<toml::Table>,
    #[serde(default, rename = "registrar")]
    _demo_registrar: Option<toml::Table>,
    #[serde(default, rename = "subject")]
    _demo_subject: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    address: SocketAddr,
    #[serde(deserialize_with = "org_number")]
    org_number: OrgNumber,
    ca_cert: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    store: String,
    #[serde(default = "default_deadline_ms")]
    default_deadline_ms: u64,
    #[serde(default = "max_deadline_ms")]
    max_deadline_ms: u64,
    #[serde(default = "default_admin_address")]
    admin_address: SocketAddr,
    #[serde(default)]
    crls: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsents {
    #[serde(default = "max_lifetime_days")]
    max_lifetime_days: u32,
}

impl Default for RawConsents {
    fn default() -> Self {
        RawConsents {
            max_lifetime_days: max_lifetime_days(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAudit {
    checkpoint_every: u64,
    checkpoint_interval_s: u64,
    retention_days: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        RawAudit {
            checkpoint_every: 1000,
            checkpoint_interval_s: 60,
            retention_days: 3650,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_request_bytes: usize,
    max_response_bytes: usize,
    rate_per_second: f64,
    burst: f64,
    max_concurrent_streams: u32,
    max_header_list_bytes: u32,
    keepalive_interval_s: u64,
    keepalive_timeout_s: u64,
    max_connection_age_s: u64,
    breaker_failures: u32,
    breaker_pause_s: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_request_bytes: 64 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            rate_per_second: 1000.0,
            burst: 2000.0,
            max_concurrent_streams: 256,
            max_header_list_bytes: 16 * 1024,
            keepalive_interval_s: 30,
            keepalive_timeout_s: 10,
            max_connection_age_s: 3600,
            breaker_failures: 5,
            breaker_pause_s: 10,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTelemetry {
    otlp_endpoint: Option<String>,
    otlp_metrics: bool,
    sampling_ratio: f64,
    service_name: String,
    log_format: String,
    resource_attributes: std::collections::BTreeMap<String, String>,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            otlp_metrics: false,
            sampling_ratio: 1.0,
            service_name: "samverka-gateway".into(),
            log_format: "text".into(),
            resource_attributes: Default::default(),
        }
    }
}

fn max_lifetime_days() -> u32 {
    730
}

fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

fn default_deadline_ms() -> u64 {
    5_000
}

fn max_deadline_ms() -> u64 {
    30_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgency {
    #[serde(deserialize_with = "org_number")]
    org_number: OrgNumber,
    name: String,
    #[serde(default)]
    registrar: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    #[serde(deserialize_with = "purpose_code")]
    code: String,
    description: String,
    #[serde(deserialize_with = "record_types")]
    record_types: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessRule {
    #[serde(deserialize_with = "org_number")]
    agency: OrgNumber,
    purposes: Vec<String>,
    #[serde(deserialize_with = "record_types")]
    record_types: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    name: String,
    address: String,
    #[serde(deserialize_with = "org_number")]
    org_number: OrgNumber,
    #[serde(deserialize_with = "record_types")]
    record_types: Vec<String>,
    server_name: Option<String>,
}

fn org_number<'de, D: Deserializer<'de>>(d: D) -> Result<OrgNumber, D::Error> {
    let s = String::deserialize(d)?;
    OrgNumber::parse(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid organisation number {s:?}: {e}")))
}

fn record_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

pub use samverka_proto::is_record_type_name;

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
        Config::from_toml(&text, base).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            ..e
        })
    }

    /// Parses and validates configuration text; relative paths are taken
    /// relative to `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
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
        let err = |span: std::ops::Range<usize>, key: String, reason: String| ConfigError {
            file: None,
            line: Some(line_of(text, span.start)),
            key,
            reason,
        };
        let path = |p: PathBuf| if p.is_absolute() { p } else { base_dir.join(p) };

        let g = raw.gateway;
        if g.default_deadline_ms == 0 || g.default_deadline_ms > g.max_deadline_ms {
            return Err(ConfigError {
                file: None,
                line: None,
                key: "gateway.default_deadline_ms".into(),
                reason: "must be between 1 and gateway.max_deadline_ms".into(),
            });
        }
        let gateway = GatewaySettings {
            address: g.address,
            crls: g.crls.into_iter().map(path).collect(),
            admin_address: g.admin_address,
            org_number: g.org_number,
            ca_cert: path(g.ca_cert),
            cert: path(g.cert),
            key: path(g.key),
            client_cert: path(g.client_cert),
            client_key: path(g.client_key),
            store: StoreLocation::parse(&g.store, base_dir),
            default_deadline: Duration::from_millis(g.default_deadline_ms),
            max_deadline: Duration::from_millis(g.max_deadline_ms),
        };

        if raw.consents.max_lifetime_days == 0 || raw.consents.max_lifetime_days > 36_500 {
            return Err(ConfigError {
                file: None,
                line: None,
                key: "consents.max_lifetime_days".into(),
                reason: "must be between 1 and 36500".into(),
            });
        }
        let consents = ConsentSettings {
            max_lifetime: Duration::from_secs(
                u64::from(raw.consents.max_lifetime_days) * 24 * 3600,
            ),
        };

        let a = raw.audit;
        if a.checkpoint_every == 0 || a.checkpoint_interval_s == 0 || a.retention_days == 0 {
            return Err(ConfigError {
                file: None,
                line: None,
                key: "audit".into(),
                reason:
                    "checkpoint_every, checkpoint_interval_s and retention_days must be at least 1"
                        .into(),
            });
        }
        let audit = AuditSettings {
            checkpoints: crate::audit::writer::CheckpointPolicy {
                every: a.checkpoint_every,
                interval: Duration::from_secs(a.checkpoint_interval_s),
            },
            retention: Duration::from_secs(u64::from(a.retention_days) * 24 * 3600),
        };

        let l = raw.limits;
        let sane = |v: f64, min: f64| v.is_finite() && v >= min;
        if l.max_request_bytes < 1024
            || l.max_response_bytes < 1024
            || !sane(l.rate_per_second, f64::MIN_POSITIVE)
            || !sane(l.burst, 1.0)
        {
            return Err(ConfigError {
                file: None,
                line: None,
                key: "limits".into(),
                reason: "max_request_bytes and max_response_bytes must be at least 1024, rate_per_second above 0 and burst at least 1".into(),
            });
        }
        if l.max_concurrent_streams == 0
            || l.max_header_list_bytes < 1024
            || l.keepalive_interval_s == 0
            || l.keepalive_timeout_s == 0
            || l.max_connection_age_s == 0
            || l.breaker_failures == 0
            || l.breaker_pause_s == 0
        {
            return Err(ConfigError {
                file: None,
                line: None,
                key: "limits".into(),
                reason: "max_concurrent_streams, keepalive_interval_s, keepalive_timeout_s, max_connection_age_s, breaker_failures and breaker_pause_s must be at least 1, max_header_list_bytes at least 1024".into(),
            });
        }
        let limits = Limits {
            max_request_bytes: l.max_request_bytes,
            max_response_bytes: l.max_response_bytes,
            rate_per_second: l.rate_per_second,
            burst: l.burst,
            max_concurrent_streams: l.max_concurrent_streams,
            max_header_list_bytes: l.max_header_list_bytes,
            keepalive_interval: Duration::from_secs(l.keepalive_interval_s),
            keepalive_timeout: Duration::from_secs(l.keepalive_timeout_s),
            max_connection_age: Duration::from_secs(l.max_connection_age_s),
            breaker_failures: l.breaker_failures,
            breaker_pause: Duration::from_secs(l.breaker_pause_s),
        };

        let t = raw.telemetry;
        let telemetry_error = |key: &str, reason: &str| ConfigError {
            file: None,
            line: None,
            key: format!("telemetry.{key}"),
            reason: reason.into(),
        };
        if !(0.0..=1.0).contains(&t.sampling_ratio) {
            return Err(telemetry_error(
                "sampling_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        let json_logs = match t.log_format.as_str() {
            "text" => false,
            "json" => true,
            _ => {
                return Err(telemetry_error(
                    "log_format",
                    "must be \"text\" or \"json\"",
                ));
            }
        };
        if let Some(e) = &t.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(telemetry_error(
                "otlp_endpoint",
                "must be an http:// or https:// URL, e.g. http://127.0.0.1:4317",
            ));
        }
        if t.service_name.trim().is_empty() {
            return Err(telemetry_error("service_name", "must not be empty"));
        }
        let telemetry = samverka_adapter::telemetry::TelemetryConfig {
            service_name: t.service_name,
            otlp_endpoint: t.otlp_endpoint,
            otlp_metrics: t.otlp_metrics,
            sampling_ratio: t.sampling_ratio,
            resource_attributes: t.resource_attributes.into_iter().collect(),
            json_logs,
            default_log_filter: "info".into(),
        };

        let mut agencies = Vec::new();
        let mut seen = HashSet::new();
        for (i, a) in raw.agencies.into_iter().enumerate() {
            let span = a.span();
            let a = a.into_inner();
            if !seen.insert(a.org_number.clone()) {
                return Err(err(
                    span,
                    format!("agencies[{i}].org_number"),
                    format!("{} is listed twice", a.org_number),
                ));
            }
            agencies.push(Agency {
                org_number: a.org_number,
                name: a.name,
                registrar: a.registrar,
            });
        }

        let mut purposes: Vec<Purpose> = Vec::new();
        for (i, p) in raw.purposes.into_iter().enumerate() {
            let span = p.span();
            let p = p.into_inner();
            if purposes.iter().any(|q| q.code == p.code) {
                return Err(err(
                    span,
                    format!("purposes[{i}].code"),
                    format!("{:?} is defined twice", p.code),
                ));
            }
            purposes.push(Purpose {
                code: p.code,
                description: p.description,
                record_types: p.record_types,
            });
        }

        let mut access_rules = Vec::new();
        for (i, r) in raw.access_rules.into_iter().enumerate() {
            let span = r.span();
            let r = r.into_inner();
            if !seen.contains(&r.agency) {
                return Err(err(
                    span,
                    format!("access_rules[{i}].agency"),
                    format!("{} is not listed under [[agencies]]", r.agency),
                ));
            }
            if r.purposes.is_empty() {
                return Err(err(
                    span,
                    format!("access_rules[{i}].purposes"),
                    "at least one purpose is required".into(),
                ));
            }
            for code in &r.purposes {
                if !purposes.iter().any(|p| &p.code == code) {
                    return Err(err(
                        span.clone(),
                        format!("access_rules[{i}].purposes"),
                        format!("purpose {code:?} is not defined under [[purposes]]"),
                    ));
                }
            }
            access_rules.push(AccessRule {
                agency: r.agency,
                purposes: r.purposes,
                record_types: r.record_types,
            });
        }

        let mut adapters: Vec<AdapterRoute> = Vec::new();
        for (i, a) in raw.adapters.into_iter().enumerate() {
            let span = a.span();
            let a = a.into_inner();
            if adapters.iter().any(|b| b.name == a.name) {
                return Err(err(
                    span,
                    format!("adapters[{i}].name"),
                    format!("{:?} is used twice", a.name),
                ));
            }
            let Some((host, port)) = a.address.rsplit_once(':') else {
                return Err(err(
                    span,
                    format!("adapters[{i}].address"),
                    "expected host:port".into(),
                ));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(err(
                    span,
                    format!("adapters[{i}].address"),
                    "expected host:port".into(),
                ));
            }
            let server_name = a.server_name.unwrap_or_else(|| {
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            });
            adapters.push(AdapterRoute {
                name: a.name,
                address: a.address,
                org_number: a.org_number,
                record_types: a.record_types,
                server_name,
            });
        }

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
        })
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

#[cfg(test)]
mod tests;
