//! [`AdapterConfig`]: where an adapter listens and its TLS files, from a
//! TOML file or from the environment.
//!
//! ```toml
//! listen = "0.0.0.0:50070"
//! cert = "/etc/samverka/adapter.pem"   # the adapter's server certificate
//! key = "/etc/samverka/adapter.key"
//! ca = "/etc/samverka/ca.pem"          # the CA of the gateway's client certificate
//! crls = ["/etc/samverka/crl.pem"]     # optional: revoked certificates are refused
//!                                      # (read again when they change)
//! ```
//!
//! or `SAMVERKA_ADAPTER_LISTEN`, `SAMVERKA_ADAPTER_CERT`,
//! `SAMVERKA_ADAPTER_KEY`, `SAMVERKA_ADAPTER_CA` (and optionally
//! `SAMVERKA_ADAPTER_CRLS`, comma-separated). [`AdapterConfig::load`]
//! reads the file named by `SAMVERKA_ADAPTER_CONFIG` if that is set, and the
//! four variables otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ServeError;

/// Where an adapter listens, and its TLS material.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The adapter's server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that issued the gateway's client certificate (PEM).
    pub ca: PathBuf,
    /// The CA's certificate revocation lists (PEM); a revoked gateway
    /// certificate is refused at the handshake.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// The agency's attestation certificate (PEM, role `attester`): with
    /// `attestation_key`, the adapter attests each record of a passport
    /// read. Without them its records go into passports unattested, which
    /// a gateway may refuse.
    #[serde(default)]
    pub attestation_cert: Option<PathBuf>,
    /// The attestation certificate's key (PEM).
    #[serde(default)]
    pub attestation_key: Option<PathBuf>,
}

impl AdapterConfig {
    /// From a TOML file; relative paths are relative to the file.
    pub fn from_toml_file(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::Io(format!("{}: {e}", path.display())))?;
        let mut config: AdapterConfig = toml::from_str(&text)
            .map_err(|e| ServeError::Io(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut config.cert, &mut config.key, &mut config.ca]
            .into_iter()
            .chain(config.crls.iter_mut())
            .chain(config.attestation_cert.iter_mut())
            .chain(config.attestation_key.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// From `SAMVERKA_ADAPTER_LISTEN`, `_CERT`, `_KEY` and `_CA`, looked up
    /// with `var` (the process environment in [`AdapterConfig::load`]).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ServeError> {
        let get =
            |name: &str| var(name).ok_or_else(|| ServeError::Io(format!("{name} is not set")));
        let listen = get("SAMVERKA_ADAPTER_LISTEN")?;
        Ok(AdapterConfig {
            listen: listen
                .parse()
                .map_err(|e| ServeError::Io(format!("SAMVERKA_ADAPTER_LISTEN={listen:?}: {e}")))?,
            cert: get("SAMVERKA_ADAPTER_CERT")?.into(),
            key: get("SAMVERKA_ADAPTER_KEY")?.into(),
            ca: get("SAMVERKA_ADAPTER_CA")?.into(),
            crls: var("SAMVERKA_ADAPTER_CRLS")
                .map(|v| {
                    v.split(',')
                        .filter(|p| !p.trim().is_empty())
                        .map(|p| PathBuf::from(p.trim()))
                        .collect()
                })
                .unwrap_or_default(),
            attestation_cert: var("SAMVERKA_ADAPTER_ATTESTATION_CERT").map(PathBuf::from),
            attestation_key: var("SAMVERKA_ADAPTER_ATTESTATION_KEY").map(PathBuf::from),
        })
    }

    /// The file named by `SAMVERKA_ADAPTER_CONFIG`, or else the variables.
    pub fn load() -> Result<Self, ServeError> {
        match std::env::var_os("SAMVERKA_ADAPTER_CONFIG") {
            Some(path) => Self::from_toml_file(Path::new(&path)),
            None => Self::from_vars(|name| std::env::var(name).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_variables() {
        let vars = |name: &str| {
            Some(match name {
                "SAMVERKA_ADAPTER_LISTEN" => "127.0.0.1:50070".to_owned(),
                other => format!("/etc/{other}"),
            })
        };
        let c = AdapterConfig::from_vars(vars).unwrap();
        assert_eq!(c.listen, "127.0.0.1:50070".parse().unwrap());
        assert_eq!(c.ca, PathBuf::from("/etc/SAMVERKA_ADAPTER_CA"));
        let missing = AdapterConfig::from_vars(|_| None).unwrap_err();
        assert!(
            missing.to_string().contains("SAMVERKA_ADAPTER_LISTEN"),
            "{missing}"
        );
    }

    #[test]
    fn from_a_file_with_relative_paths() {
        let dir =
            std::env::temp_dir().join(format!("samverka-adapter-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("adapter.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:0\"\ncert = \"a.pem\"\nkey = \"a.key\"\nca = \"/abs/ca.pem\"\n",
        )
        .unwrap();
        let c = AdapterConfig::from_toml_file(&file).unwrap();
        assert_eq!(c.cert, dir.join("a.pem"));
        assert_eq!(c.ca, PathBuf::from("/abs/ca.pem"));
        std::fs::write(&file, "listen = \"127.0.0.1:0\"\nport = 1\n").unwrap();
        assert!(AdapterConfig::from_toml_file(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
