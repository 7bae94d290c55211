//! The portal's configuration file (`samverka portal --config FILE`).
//!
//! ```toml
//! [portal]
//! address = "127.0.0.1:8080"          # where it listens
//! public_url = "https://min.example.se" # where people reach it
//! session_idle_minutes = 15            # a session ends after this long unused
//! passport_purpose = "own_passport"    # optional: the "my passport" page,
//! passport_record_types = ["education.degree", "employment.period"] # with these
//! gateway_cert = "gateway.pem"         # optional: offered for `passport verify`
//! gateway_keys = "https://samverka.example.se/keys" # optional: the gateway's key set, for it
//!
//! [gateway]                            # the gateway, as this registrar calls it
//! address = "gateway.example.se:8443"  # by the name in its certificate
//! ca_cert = "ca.pem"
//! cert = "portal.pem"                  # the registrar agency's certificate
//! key = "portal.key"
//! org_number = "2021999079"
//! assertion_key = "portal-assertion.key" # signs person assertions
//! audience = "samverka:2021999012"     # the gateway's person_assertion.audience
//! max_login_age_s = 300                # the gateway's person_assertion.max_login_age_s
//!
//! [login]                              # the OpenID Connect provider
//! issuer = "https://eid-broker.example.se"
//! client_id = "min-kompetens"
//! client_secret_file = "client-secret.txt" # optional: a public client uses PKCE alone
//! acr_values = "http://id.elegnamnden.se/loa/1.0/loa3" # optional
//! scopes = ["https://id.oidc.se/scope/naturalPersonNumber"] # optional, besides openid
//! ```
//!
//! Relative paths are relative to the file's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole file, checked.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Where to listen.
    pub address: String,
    /// The URL people use, without a trailing slash; the login redirect is
    /// `{public_url}/callback`.
    pub public_url: String,
    /// How long an unused session lives.
    pub session_idle: Duration,
    /// The purpose under which the portal fetches the person's own
    /// passport (a consent to itself, granted and revoked around the read).
    pub passport_purpose: Option<String>,
    /// The record types the passport consent covers.
    pub passport_record_types: Vec<String>,
    /// The gateway's certificate, offered with the passport for
    /// `samverka passport verify`.
    pub gateway_cert: Option<PathBuf>,
    /// The URL of the gateway's key set (its public listener's `/keys`):
    /// the verify command shown with the passport uses it, and checks the
    /// passport's status too.
    pub gateway_keys: Option<String>,
    /// The gateway.
    pub gateway: GatewaySettings,
    /// The identity provider.
    pub login: LoginSettings,
}

/// How the portal reaches the gateway, as a registrar agency.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `host:port`, the host being the name in the gateway's certificate.
    pub address: String,
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// The registrar's certificate and key (PEM).
    pub cert: PathBuf,
    /// The key of `cert`.
    pub key: PathBuf,
    /// The registrar's organisation number.
    pub org_number: String,
    /// The registrar's person-assertion signing key (PKCS#8 P-256 PEM).
    pub assertion_key: PathBuf,
    /// The `aud` the gateway expects in assertions.
    pub audience: String,
    /// The oldest login the gateway accepts: older ones log in again.
    pub max_login_age: Duration,
}

/// The OpenID Connect provider and this client's registration there.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// The issuer; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// This portal's client id.
    pub client_id: String,
    /// The client secret, when the provider registered one.
    pub client_secret: Option<String>,
    /// `acr_values` to ask for, if any.
    pub acr_values: Option<String>,
    /// Scopes to ask for besides `openid`.
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    portal: RawPortal,
    gateway: RawGateway,
    login: RawLogin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortal {
    address: String,
    public_url: String,
    #[serde(default = "default_idle")]
    session_idle_minutes: u64,
    passport_purpose: Option<String>,
    #[serde(default)]
    passport_record_types: Vec<String>,
    gateway_cert: Option<PathBuf>,
    gateway_keys: Option<String>,
}

fn default_idle() -> u64 {
    15
}

fn default_login_age() -> u64 {
    300
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    address: String,
    ca_cert: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    org_number: String,
    assertion_key: PathBuf,
    audience: String,
    #[serde(default = "default_login_age")]
    max_login_age_s: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    issuer: String,
    client_id: String,
    client_secret_file: Option<PathBuf>,
    acr_values: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// A key set URL safe to print in a shell command: `https://`, a host,
/// a path ending in `/keys`, and only characters that need no quoting.
fn is_keys_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let safe = url
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~:/[]%".contains(c));
    let host = rest.split('/').next().unwrap_or_default();
    safe && !host.is_empty() && !host.starts_with(':') && rest.ends_with("/keys")
}

impl PortalConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<PortalConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks `text`, with paths relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<PortalConfig, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.to_string())?;
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let public_url = raw.portal.public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("https://") || is_loopback_http(&public_url)) {
            return Err(format!(
                "portal.public_url: {public_url} must be https:// (plain http only on localhost)"
            ));
        }
        if !(1..=240).contains(&raw.portal.session_idle_minutes) {
            return Err("portal.session_idle_minutes: must be between 1 and 240".into());
        }
        let issuer = raw.login.issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("https://") || is_loopback_http(&issuer)) {
            return Err(format!(
                "login.issuer: {issuer} must be https:// (plain http only on localhost)"
            ));
        }
        let client_secret = match raw.login.client_secret_file {
            Some(f) => {
                let f = at(f);
                let s = std::fs::read_to_string(&f)
                    .map_err(|e| format!("login.client_secret_file: {}: {e}", f.display()))?;
                Some(s.trim().to_owned())
            }
            None => None,
        };
        if let Some(keys) = &raw.portal.gateway_keys
            && !is_keys_url(keys)
        {
            return Err(format!(
                "portal.gateway_keys: {keys:?} must be https://HOST[:PORT]/.../keys (it is shown in a command people paste into a shell)"
            ));
        }
        if raw.portal.passport_purpose.is_some() && raw.portal.passport_record_types.is_empty() {
            return Err("portal.passport_record_types: needed with passport_purpose".into());
        }
        if !(60..=3600).contains(&raw.gateway.max_login_age_s) {
            return Err("gateway.max_login_age_s: must be between 60 and 3600".into());
        }
        Ok(PortalConfig {
            address: raw.portal.address,
            public_url,
            session_idle: Duration::from_secs(raw.portal.session_idle_minutes * 60),
            passport_purpose: raw.portal.passport_purpose,
            passport_record_types: raw.portal.passport_record_types,
            gateway_cert: raw.portal.gateway_cert.map(at),
            gateway_keys: raw.portal.gateway_keys,
            gateway: GatewaySettings {
                address: raw.gateway.address,
                ca_cert: at(raw.gateway.ca_cert),
                cert: at(raw.gateway.cert),
                key: at(raw.gateway.key),
                org_number: raw.gateway.org_number,
                assertion_key: at(raw.gateway.assertion_key),
                audience: raw.gateway.audience,
                max_login_age: Duration::from_secs(raw.gateway.max_login_age_s),
            },
            login: LoginSettings {
                issuer,
                client_id: raw.login.client_id,
                client_secret,
                acr_values: raw.login.acr_values,
                scopes: raw.login.scopes,
            },
        })
    }

    /// Where the provider sends the person back after logging in.
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.public_url)
    }
}

/// `http://localhost…` or `http://127.0.0.1…`: development only.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host == "127.0.0.1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(public_url: &str, extra: &str) -> String {
        format!(
            r#"[portal]
address = "127.0.0.1:0"
public_url = "{public_url}"
{extra}
[gateway]
address = "localhost:1"
ca_cert = "ca.pem"
cert = "c.pem"
key = "c.key"
org_number = "2021999079"
assertion_key = "a.key"
audience = "samverka:2021999012"

[login]
issuer = "http://localhost:9/"
client_id = "x"
"#
        )
    }

    #[test]
    fn paths_are_relative_to_the_file_and_defaults_apply() {
        let c = PortalConfig::parse(&sample("http://localhost:8080/", ""), Path::new("/etc/p"))
            .unwrap();
        assert_eq!(c.public_url, "http://localhost:8080");
        assert_eq!(c.redirect_uri(), "http://localhost:8080/callback");
        assert_eq!(c.gateway.ca_cert, Path::new("/etc/p/ca.pem"));
        assert_eq!(c.login.issuer, "http://localhost:9");
        assert_eq!(c.session_idle, Duration::from_secs(900));
        assert_eq!(c.gateway.max_login_age, Duration::from_secs(300));
    }

    #[test]
    fn plain_http_only_on_loopback_and_unknown_keys_refused() {
        let e = PortalConfig::parse(&sample("http://portal.example.se", ""), Path::new("."))
            .unwrap_err();
        assert!(e.contains("portal.public_url"), "{e}");
        let e = PortalConfig::parse(
            &sample("https://portal.example.se", "colour = \"red\""),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = PortalConfig::parse(
            &sample("https://p.example.se", "session_idle_minutes = 0"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("session_idle_minutes"), "{e}");
    }

    #[test]
    fn the_key_set_url_is_one_safe_to_paste() {
        let with = |url: &str| {
            PortalConfig::parse(
                &sample("https://p.example.se", &format!("gateway_keys = {url:?}")),
                Path::new("."),
            )
        };
        assert_eq!(
            with("https://gw.example.se:8445/keys")
                .unwrap()
                .gateway_keys
                .as_deref(),
            Some("https://gw.example.se:8445/keys")
        );
        for bad in [
            "https://",
            "https:///keys",
            "http://gw.example.se/keys",
            "https://gw.example.se/jwks",
            "https://gw.example.se/keys;rm -rf ~",
            "https://gw.example.se/$(id)/keys",
            "https://gw.example.se/keys?x=1",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }
}
