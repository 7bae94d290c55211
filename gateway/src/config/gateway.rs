//! The `[gateway]` section: the listening addresses, the gateway's
//! organisation, its TLS files, the store and the request deadlines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use samverka_certs::OrgNumber;
use serde::Deserialize;

use super::ConfigError;
use super::fields::org_number;
use crate::net::tls::crl::StaleCrlPolicy;
use crate::store::StoreLocation;

/// The `[gateway]` section.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Where agencies connect (gRPC over mTLS).
    pub address: SocketAddr,
    /// Certificate revocation lists checked at every handshake, with
    /// agencies and with adapters.
    pub crls: Vec<PathBuf>,
    /// What to do with a list of `crls` whose `nextUpdate` has passed
    /// (`stale_crl = "warn"` or `"refuse"`, the default).
    pub stale_crl: StaleCrlPolicy,
    /// The operators' plain-HTTP listener: `/metrics`, `/healthz`,
    /// `/readyz` (default `127.0.0.1:9464`).
    pub admin_address: SocketAddr,
    /// The public HTTPS listener for verifiers (no client certificate):
    /// the key set and the passports' revocation list; none by default.
    pub public_address: Option<SocketAddr>,
    /// The base URL at which verifiers reach that listener (`https://...`,
    /// no trailing slash); passports name `{public_url}/revocations` as
    /// their status. Without it passports carry no `credentialStatus`.
    pub public_url: Option<String>,
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
    /// What a passport does with a record its source does not attest
    /// (`unattested_records = "accept"`, the default, or `"refuse"`).
    pub unattested_records: UnattestedRecords,
}

/// What a passport does with a record its source sent without an
/// attestation (an adapter without an attestation key, e.g. an older one).
/// A record whose attestation is there but does not hold is always
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnattestedRecords {
    /// Take it into the passport, issued by the gateway (relayed, not
    /// attested by its source), as the passport says.
    #[default]
    Accept,
    /// Drop it: the source's outcome is `INVALID_RESPONSE`.
    Refuse,
}

/// The section as written. Field order and the type's name show in serde's
/// messages ("unknown field ..., expected one of ..."), so they stay as
/// they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
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
    #[serde(default)]
    stale_crl: StaleCrlPolicy,
    #[serde(default)]
    public_address: Option<SocketAddr>,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    unattested_records: UnattestedRecords,
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

/// `url` as a base URL verifiers reach: `https://` and an authority
/// (host, perhaps a port) with no user, path, query, fragment or blank;
/// the scheme in lower case.
fn base_url(url: &str) -> Option<String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) || url.ends_with('/') {
        return None;
    }
    let uri: hyper::Uri = url.parse().ok()?;
    let authority = uri.authority()?;
    let plain = uri.scheme_str()?.eq_ignore_ascii_case("https")
        && uri.path() == "/"
        && uri.query().is_none()
        && !authority.as_str().contains('@')
        && !authority.host().is_empty()
        && !url.contains('#');
    plain.then(|| format!("https://{authority}"))
}

/// Checks the deadlines and resolves relative paths (the TLS files, the
/// CRLs and a SQLite store) against `base_dir`.
pub(super) fn parse(g: RawGateway, base_dir: &Path) -> Result<GatewaySettings, ConfigError> {
    if g.default_deadline_ms == 0 || g.default_deadline_ms > g.max_deadline_ms {
        return Err(ConfigError::for_key(
            "gateway.default_deadline_ms",
            "must be between 1 and gateway.max_deadline_ms",
        ));
    }
    let public_url = match g.public_url {
        Some(url) => Some(base_url(&url).ok_or_else(|| {
            ConfigError::for_key(
                "gateway.public_url",
                "must be https://HOST[:PORT], nothing more (no path, user, query or fragment): passports name it for good",
            )
        })?),
        None => None,
    };
    if g.public_address.is_some() && public_url.is_none() {
        return Err(ConfigError::for_key(
            "gateway.public_address",
            "needs gateway.public_url: the URL at which verifiers reach it",
        ));
    }
    let path = |p: PathBuf| if p.is_absolute() { p } else { base_dir.join(p) };
    Ok(GatewaySettings {
        public_address: g.public_address,
        public_url,
        address: g.address,
        crls: g.crls.into_iter().map(path).collect(),
        stale_crl: g.stale_crl,
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
        unattested_records: g.unattested_records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
address = "127.0.0.1:8443"
org_number = "2021999012"
ca_cert = "ca.pem"
cert = "gateway.pem"
key = "gateway.key"
client_cert = "client.pem"
client_key = "/etc/client.key"
store = "samverka.db"
"#;

    fn parse_text(text: &str) -> Result<GatewaySettings, ConfigError> {
        parse(toml::from_str(text).unwrap(), Path::new("/srv"))
    }

    #[test]
    fn the_public_listener_needs_an_https_url() {
        let g = parse_text(MINIMAL).unwrap();
        assert_eq!((g.public_address, g.public_url), (None, None));
        let with = |extra: &str| parse_text(&format!("{MINIMAL}{extra}"));
        let g = with(
            "public_address = \"0.0.0.0:8445\"\npublic_url = \"https://gw.example.se:8445\"\n",
        )
        .unwrap();
        assert_eq!(g.public_url.as_deref(), Some("https://gw.example.se:8445"));
        let g = with("public_url = \"HTTPS://gw.example.se\"\n").unwrap();
        assert_eq!(g.public_url.as_deref(), Some("https://gw.example.se"));
        for bad in [
            "public_address = \"0.0.0.0:8445\"\n",
            "public_url = \"http://gw.example.se\"\n",
            "public_url = \"https://gw.example.se/\"\n",
            "public_url = \"https://gw.example.se/?x=1\"\n",
            "public_url = \"https://\"\n",
            "public_url = \"https://gw.example.se/base\"\n",
            "public_url = \"https://user@gw.example.se\"\n",
            "public_url = \"https://gw.example.se\\t\"\n",
            "public_url = \"https://gw.example.se#x\"\n",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_resolved_paths() {
        let g = parse_text(MINIMAL).unwrap();
        assert_eq!(g.admin_address, SocketAddr::from(([127, 0, 0, 1], 9464)));
        assert_eq!(g.default_deadline, Duration::from_secs(5));
        assert_eq!(g.max_deadline, Duration::from_secs(30));
        assert!(g.crls.is_empty());
        assert_eq!(g.stale_crl, StaleCrlPolicy::Refuse);
        assert_eq!(g.ca_cert, Path::new("/srv/ca.pem"));
        assert_eq!(g.client_key, Path::new("/etc/client.key"));
        assert_eq!(g.store, StoreLocation::Sqlite("/srv/samverka.db".into()));
    }

    #[test]
    fn a_stale_crl_policy_is_warn_or_refuse() {
        let g = parse_text(&format!(
            "{MINIMAL}crls = [\"crl.pem\"]\nstale_crl = \"warn\""
        ))
        .unwrap();
        assert_eq!(g.stale_crl, StaleCrlPolicy::Warn);
        assert_eq!(g.crls, vec![PathBuf::from("/srv/crl.pem")]);
        let g = parse_text(&format!("{MINIMAL}stale_crl = \"refuse\"")).unwrap();
        assert_eq!(g.stale_crl, StaleCrlPolicy::Refuse);
        let e = toml::from_str::<RawGateway>(&format!("{MINIMAL}stale_crl = \"ignore\""))
            .err()
            .unwrap();
        assert!(e.to_string().contains("refuse"), "{e}");
    }

    #[test]
    fn a_default_deadline_above_the_maximum_is_refused() {
        let e = parse_text(&format!(
            "{MINIMAL}default_deadline_ms = 2000\nmax_deadline_ms = 1000"
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            " gateway.default_deadline_ms: must be between 1 and gateway.max_deadline_ms"
        );
        let e = parse_text(&format!("{MINIMAL}default_deadline_ms = 0")).unwrap_err();
        assert_eq!(e.key, "gateway.default_deadline_ms");
    }
}
