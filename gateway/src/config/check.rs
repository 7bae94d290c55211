//! Opening what a configuration names, so that a file the gateway would
//! fail on (or be useless with) is found before it starts: `samverka
//! check-config` prints every [`Problem`] of a [`Report`], and `samverka
//! serve` refuses to start (exit 64) on the same errors.
//!
//! What is checked, each problem with the line of the key that names the
//! file:
//!
//! - `gateway.ca_cert`: a readable PEM bundle of certificates that parse
//!   and make a trust anchor;
//! - `gateway.cert` and `gateway.client_cert`: readable PEM chains whose
//!   first certificate `gateway.key` / `gateway.client_key` belongs to,
//!   that verify against `gateway.ca_cert` for TLS server (`cert`) and
//!   client (`client_cert`) authentication and that no list of
//!   `gateway.crls` revokes; `gateway.key` must also be an ECDSA P-256
//!   key, as it signs receipts and audit checkpoints;
//! - `gateway.crls`: readable PEM revocation lists that webpki would use
//!   with the trust bundle; a list past its `nextUpdate` is a warning (what
//!   the gateway then does is `gateway.stale_crl`'s choice);
//! - `gateway.store`: for SQLite, that its directory exists and that the
//!   file, if there, is a SQLite database; for PostgreSQL, the URL's
//!   `sslrootcert`, `sslcert` and `sslkey` files as above (the client
//!   certificate's chain is the server's business and is not checked);
//! - every certificate's validity: expired or not yet valid is an error,
//!   expiring within [`EXPIRY_WARNING_DAYS`] a warning;
//! - `agencies[].assertion_keys` and `identity_providers[].keys`: readable
//!   PEM or JWKS files holding at least one usable signing key.
//!
//! (`[[adapters]]` name no files: the gateway meets adapters with
//! `gateway.client_cert` and checks them against `gateway.ca_cert`.)
//!
//! Every problem is reported, not only the first. A configuration that
//! does not parse ([`Config::from_toml`]'s one error) still has its files
//! checked, as far as the `[gateway]` keys that name them can be read.

mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use serde::Deserialize;
use toml::Spanned;

use super::{Config, ConfigError, line_of};
use crate::net::tls::crl::{StaleCrlPolicy, unix_now};
use crate::store::StoreLocation;

/// A certificate that expires within this many days is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The gateway must not start with it: `check-config` and `serve`
    /// exit 64.
    Error,
    /// Worth an operator's attention, but usable (a certificate about to
    /// expire, a stale revocation list).
    Warning,
}

/// One thing wrong with a configuration or a file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where and why: the file, the line and key naming it, the reason.
    pub error: ConfigError,
}

impl std::fmt::Display for Problem {
    /// `file:line: key: reason`, with `warning: ` before a warning's
    /// reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.severity {
            Severity::Error => self.error.fmt(f),
            Severity::Warning => ConfigError {
                reason: format!("warning: {}", self.error.reason),
                ..self.error.clone()
            }
            .fmt(f),
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The configuration, when it parsed.
    pub config: Option<Config>,
    /// Every problem, errors and warnings, in the order of their lines.
    pub problems: Vec<Problem>,
}

impl Report {
    /// The problems that keep the gateway from starting.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Reads the configuration at `path` and opens every file it names, now.
pub fn check(path: &Path) -> Report {
    check_at(path, unix_now())
}

/// [`check`] as of `now` (seconds since the Unix epoch).
pub fn check_at(path: &Path, now: i64) -> Report {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return Report {
                config: None,
                problems: vec![Problem {
                    severity: Severity::Error,
                    error: ConfigError {
                        file: Some(path.to_owned()),
                        line: None,
                        key: String::new(),
                        reason: format!("cannot read: {e}"),
                    },
                }],
            };
        }
    };
    let mut report = check_text(&text, path.parent().unwrap_or(Path::new(".")), now);
    for p in &mut report.problems {
        p.error.file = Some(path.to_owned());
    }
    report
}

/// [`check`] of configuration text whose relative paths are relative to
/// `base_dir`.
pub fn check_text(text: &str, base_dir: &Path, now: i64) -> Report {
    let mut checker = Checker {
        text,
        base_dir,
        now,
        provider: Arc::new(samverka_adapter::crypto_provider()),
        problems: Vec::new(),
    };
    let config = match Config::from_toml(text, base_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            checker.problems.push(Problem {
                severity: Severity::Error,
                error: e,
            });
            None
        }
    };
    // When even these keys do not read, the parser's error says why.
    if let Ok(named) = toml::from_str::<Named>(text) {
        if let Some(gateway) = named.gateway {
            checker.gateway(gateway);
        }
        let keys = named
            .agencies
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some((format!("agencies[{i}].assertion_keys"), a.file.as_ref()?)))
            .chain(
                named
                    .identity_providers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        Some((format!("identity_providers[{i}].keys"), p.file.as_ref()?))
                    }),
            )
            .map(|(key, value)| checker.site(&key, value))
            .collect::<Vec<_>>();
        for site in keys {
            checker.key_file(&site);
        }
    }
    let mut problems = checker.problems;
    problems.sort_by_key(|p| p.error.line.unwrap_or(0));
    Report { config, problems }
}

/// The keys that name files, with their places in the text; everything
/// else is left to [`Config::from_toml`].
#[derive(Deserialize)]
struct Named {
    gateway: Option<NamedGateway>,
    #[serde(default)]
    agencies: Vec<NamedKeys>,
    #[serde(default)]
    identity_providers: Vec<NamedKeys>,
}

/// An `[[agencies]]` entry's `assertion_keys` or an
/// `[[identity_providers]]` entry's `keys`.
#[derive(Deserialize)]
struct NamedKeys {
    #[serde(alias = "assertion_keys", alias = "keys")]
    file: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
struct NamedGateway {
    ca_cert: Option<Spanned<PathBuf>>,
    cert: Option<Spanned<PathBuf>>,
    key: Option<Spanned<PathBuf>>,
    client_cert: Option<Spanned<PathBuf>>,
    client_key: Option<Spanned<PathBuf>>,
    #[serde(default)]
    crls: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    stale_crl: StaleCrlPolicy,
    store: Option<Spanned<String>>,
}

/// A key naming a file: where it is written and the file it names.
struct Site {
    line: usize,
    key: String,
    path: PathBuf,
}

/// Which authentication a certificate is for.
#[derive(Clone, Copy)]
enum Usage {
    Server,
    Client,
}

struct Checker<'a> {
    text: &'a str,
    base_dir: &'a Path,
    now: i64,
    provider: Arc<CryptoProvider>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn site(&self, key: &str, value: &Spanned<PathBuf>) -> Site {
        let path = value.get_ref();
        Site {
            line: line_of(self.text, value.span().start),
            key: key.to_owned(),
            path: if path.is_absolute() {
                path.clone()
            } else {
                self.base_dir.join(path)
            },
        }
    }

    fn push(&mut self, severity: Severity, site: &Site, reason: String) {
        self.problems.push(Problem {
            severity,
            error: ConfigError {
                file: None,
                line: Some(site.line),
                key: site.key.clone(),
                reason,
            },
        });
    }

    fn error(&mut self, site: &Site, reason: String) {
        self.push(Severity::Error, site, reason);
    }

    fn gateway(&mut self, g: NamedGateway) {
        let ca = g.ca_cert.map(|v| self.site("gateway.ca_cert", &v));
        let roots = ca.as_ref().and_then(|ca| self.trust_anchor(ca));
        let mut lists = Vec::new();
        for (i, crl) in g.crls.iter().enumerate() {
            let site = self.site(&format!("gateway.crls[{i}]"), crl);
            lists.extend(self.revocation_lists(&site, roots.as_ref(), g.stale_crl));
        }
        let trust = match (&ca, &roots) {
            (Some(ca), Some(roots)) => Some((ca, roots, lists.as_slice())),
            _ => None,
        };
        for (cert, key, usage) in [
            (g.cert, g.key, Usage::Server),
            (g.client_cert, g.client_key, Usage::Client),
        ] {
            let cert = cert.map(|c| {
                let key = if matches!(usage, Usage::Server) {
                    "gateway.cert"
                } else {
                    "gateway.client_cert"
                };
                self.site(key, &c)
            });
            let key = key.map(|k| {
                let name = if matches!(usage, Usage::Server) {
                    "gateway.key"
                } else {
                    "gateway.client_key"
                };
                self.site(name, &k)
            });
            self.identity(cert.as_ref(), key.as_ref(), trust, usage);
        }
        if let Some(store) = g.store {
            self.store(&store);
        }
    }

    /// A file of public keys that verify person assertions or ID tokens.
    fn key_file(&mut self, site: &Site) {
        match std::fs::read(&site.path) {
            Err(e) => self.error(site, format!("cannot read {}: {e}", site.path.display())),
            Ok(bytes) => {
                if let Err(e) = crate::person::keys::parse_keys(&bytes) {
                    self.error(site, format!("{}: {e}", site.path.display()));
                }
            }
        }
    }

    fn store(&mut self, store: &Spanned<String>) {
        let line = line_of(self.text, store.span().start);
        let site = |key: &str, path: PathBuf| Site {
            line,
            key: key.to_owned(),
            path,
        };
        match StoreLocation::parse(store.get_ref(), self.base_dir) {
            StoreLocation::Sqlite(path) => self.sqlite(&site("gateway.store", path)),
            StoreLocation::Postgres(url) => {
                let file = |name: &str| {
                    url_parameter(&url, name)
                        .map(|p| site(&format!("gateway.store ({name})"), PathBuf::from(p)))
                };
                if let Some(root) = file("sslrootcert") {
                    self.trust_anchor(&root);
                }
                let (cert, key) = (file("sslcert"), file("sslkey"));
                self.identity(cert.as_ref(), key.as_ref(), None, Usage::Client);
            }
        }
    }

    fn sqlite(&mut self, site: &Site) {
        let path = &site.path;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            let reason = format!(
                "{}: its directory {} does not exist",
                path.display(),
                dir.display()
            );
            self.error(site, reason);
            return;
        }
        if path.is_dir() {
            let reason = format!("{} is a directory", path.display());
            self.error(site, reason);
        } else if path.exists() {
            use std::io::Read;
            let mut header = [0u8; 16];
            let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut header));
            match read {
                Err(e) => {
                    let reason = format!("cannot read {}: {e}", path.display());
                    self.error(site, reason);
                }
                // An empty file is what SQLite makes of a new database.
                Ok(n) if n > 0 && header[..n] != b"SQLite format 3\0"[..n] => {
                    let reason = format!("{}: not a SQLite database", path.display());
                    self.error(site, reason);
                }
                Ok(_) => {}
            }
        }
    }
}

/// The decoded value of parameter `name` of a URL's query.
fn url_parameter(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (n, value) = pair.split_once('=')?;
        (n == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_parameter_is_decoded() {
        let url = "postgresql://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem";
        assert_eq!(
            url_parameter(url, "sslrootcert").as_deref(),
            Some("/etc/ca x.pem")
        );
        assert_eq!(url_parameter(url, "sslcert"), None);
        assert_eq!(url_parameter("postgresql://h/db", "sslcert"), None);
    }

    #[test]
    fn missing_files_are_all_reported_with_their_lines() {
        let text = "[gateway]\naddress = \"127.0.0.1:0\"\norg_number = \"2021999012\"\n\
                    ca_cert = \"ca.pem\"\ncert = \"g.pem\"\nkey = \"g.key\"\n\
                    client_cert = \"c.pem\"\nclient_key = \"c.key\"\nstore = \"nodir/s.db\"\n";
        let dir = std::env::temp_dir().join("samverka-check-unit-missing");
        let report = check_text(text, &dir, unix_now());
        assert!(report.config.is_some());
        let lines: Vec<_> = report.errors().map(|p| p.error.line.unwrap()).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9], "{:?}", report.problems);
    }
    #[test]
    fn key_files_of_registrars_and_providers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = samverka_certs::dev::signing_key().unwrap();
        std::fs::write(dir.path().join("good.pem"), public).unwrap();
        std::fs::write(dir.path().join("empty.json"), r#"{"keys":[]}"#).unwrap();
        let text = "[gateway]\naddress = \"127.0.0.1:0\"\norg_number = \"2021999012\"\n\
                    ca_cert = \"ca.pem\"\ncert = \"g.pem\"\nkey = \"g.key\"\n\
                    client_cert = \"c.pem\"\nclient_key = \"c.key\"\nstore = \"s.db\"\n\
                    [[identity_providers]]\nissuer = \"https://idp.example\"\nkeys = \"empty.json\"\n\
                    [[agencies]]\norg_number = \"2021999038\"\nname = \"E\"\nregistrar = true\n\
                    registrar_purposes = [\"p\"]\nassertion_keys = \"missing.pem\"\n\
                    login_clients = [{ issuer = \"https://idp.example\", client_id = \"e\" }]\n\
                    [[agencies]]\norg_number = \"2021999020\"\nname = \"F\"\nregistrar = true\n\
                    registrar_purposes = [\"p\"]\nassertion_keys = \"good.pem\"\n\
                    login_clients = [{ issuer = \"https://idp.example\", client_id = \"f\" }]\n\
                    [[purposes]]\ncode = \"p\"\ndescription = \"P\"\nrecord_types = [\"employment.period\"]\n";
        let report = check_text(text, dir.path(), unix_now());
        assert!(report.config.is_some(), "{:?}", report.problems);
        let keyed: Vec<(usize, &str)> = report
            .errors()
            .filter(|p| p.error.key.contains("keys"))
            .map(|p| (p.error.line.unwrap(), p.error.key.as_str()))
            .collect();
        assert_eq!(
            keyed,
            [
                (12, "identity_providers[0].keys"),
                (18, "agencies[0].assertion_keys")
            ],
            "{:?}",
            report.problems
        );
    }
}
