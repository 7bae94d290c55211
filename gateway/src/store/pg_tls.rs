//! TLS to PostgreSQL, asked for in the store URL the way libpq asks for it,
//! so that the URL an operator tests with `psql` works unchanged:
//!
//! ```text
//! postgresql://samverka@db.example:5432/samverka?sslmode=verify-full&sslrootcert=/etc/samverka/db-ca.pem
//!     &sslcert=/etc/samverka/db-client.pem&sslkey=/etc/samverka/db-client.key
//! ```
//!
//! - `sslmode=verify-full` (or `require`): TLS (rustls, samverka's crypto
//!   provider), the server's certificate checked against `sslrootcert`
//!   and its name against the URL's host. Unlike libpq, `require` checks
//!   both too, and `sslrootcert` is then required: a connection that
//!   carries consents and the audit trail is not encrypted to an
//!   unchecked server. `verify-ca` (chain but not name) is refused.
//! - `sslcert` and `sslkey` (both or neither): a client certificate, for
//!   the server's `cert` authentication (its common name is the user).
//! - No `sslmode`, or `disable`, `allow`, `prefer`: no TLS.
//!
//! In a configuration file, relative paths are taken from its directory,
//! like every other path there.
//!
//! The TLS parameters are taken out of the URL before it goes to
//! tokio-postgres, which knows only `disable`, `prefer` and `require`.

use std::path::Path;
use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// A store URL with its TLS parameters taken out.
#[derive(Clone)]
pub(super) struct PgTarget {
    /// What tokio-postgres is given.
    pub url: String,
    /// TLS to the server, if asked for.
    pub tls: Option<MakeRustlsConnect>,
}

fn error(message: impl std::fmt::Display) -> StoreError {
    StoreError(format!("postgresql TLS: {message}"))
}

fn decode(value: &str) -> Result<String, StoreError> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|e| error(format!("a URL parameter is not UTF-8: {e}")))
}

fn read(what: &str, path: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(Path::new(path)).map_err(|e| error(format!("{what} {path}: {e}")))
}

/// `url` with relative `sslrootcert`, `sslcert` and `sslkey` paths taken
/// as relative to `base_dir` (the configuration's directory, like every
/// other path in it).
pub(super) fn resolve_files(url: &str, base_dir: &Path) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = params(query)
        .map(|(pair, name, value)| {
            let file = matches!(name, "sslrootcert" | "sslcert" | "sslkey");
            match decode(value) {
                Ok(path) if file && Path::new(&path).is_relative() => {
                    let path = base_dir.join(path).to_string_lossy().into_owned();
                    format!("{name}={}", utf8_percent_encode(&path, QUERY_VALUE))
                }
                _ => pair.to_owned(),
            }
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// What must be escaped in a URL query value.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=');

/// A URL query's parameters: each whole, its name, and its value as
/// written.
fn params(query: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (pair, name, value)
    })
}

/// Splits the TLS parameters off `url` and builds the connector they ask
/// for.
pub(super) fn target(url: &str) -> Result<PgTarget, StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
    for (pair, name, value) in params(query) {
        match name {
            "sslmode" => mode = Some(decode(value)?),
            "sslrootcert" => root = Some(decode(value)?),
            "sslcert" => cert = Some(decode(value)?),
            "sslkey" => key = Some(decode(value)?),
            _ => kept.push(pair),
        }
    }
    let files = root.is_some() || cert.is_some() || key.is_some();
    let tls = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") if files => {
            return Err(error(
                "sslrootcert, sslcert and sslkey need sslmode=verify-full",
            ));
        }
        None => None,
        Some("disable") => {
            kept.push("sslmode=disable");
            None
        }
        // tokio-postgres has no "allow"; without TLS both mean "prefer".
        Some("allow" | "prefer") => {
            kept.push("sslmode=prefer");
            None
        }
        Some("require" | "verify-full") => {
            kept.push("sslmode=require");
            let root = root.ok_or_else(|| {
                error("sslmode=require and verify-full need sslrootcert=CA.pem: samverka checks the server's certificate")
            })?;
            Some(connector(&root, cert.as_deref(), key.as_deref())?)
        }
        Some("verify-ca") => {
            return Err(error(
                "sslmode=verify-ca is not supported: samverka checks the server's name too; use sslmode=verify-full",
            ));
        }
        Some(other) => return Err(error(format!("unknown sslmode {other:?}"))),
    };
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(PgTarget { url, tls })
}

fn connector(
    root: &str,
    cert: Option<&str>,
    key: Option<&str>,
) -> Result<MakeRustlsConnect, StoreError> {
    let roots = samverka_adapter::root_store(&read("sslrootcert", root)?)
        .map_err(|e| error(format!("sslrootcert {root}: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        samverka_adapter::crypto_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(error)?
    .with_root_certificates(Arc::new(roots));
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&read("sslcert", cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| error(format!("sslcert {cert}: {e}")))?;
            let key_der = PrivateKeyDer::from_pem_slice(&read("sslkey", key)?)
                .map_err(|e| error(format!("sslkey {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| error(format!("sslcert {cert} with sslkey {key}: {e}")))?
        }
        _ => return Err(error("give both sslcert and sslkey, or neither")),
    };
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_tls_pass_through() {
        for (url, expected) in [
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            (
                "postgresql://u@h/db?application_name=x",
                "postgresql://u@h/db?application_name=x",
            ),
            (
                "postgresql://u@h/db?sslmode=disable&connect_timeout=2",
                "postgresql://u@h/db?connect_timeout=2&sslmode=disable",
            ),
            (
                "postgresql://u@h/db?sslmode=allow",
                "postgresql://u@h/db?sslmode=prefer",
            ),
        ] {
            let t = target(url).unwrap();
            assert_eq!(t.url, expected);
            assert!(t.tls.is_none());
        }
    }

    #[test]
    fn relative_files_are_found_beside_the_configuration() {
        let dir = Path::new("/etc/samverka");
        assert_eq!(
            resolve_files(
                "postgresql://u@h/db?sslmode=verify-full&sslrootcert=db%20ca.pem&sslcert=/abs/c.pem&sslkey=k&x=y",
                dir
            ),
            "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/etc/samverka/db%20ca.pem\
             &sslcert=/abs/c.pem&sslkey=/etc/samverka/k&x=y"
        );
        assert_eq!(
            resolve_files("postgresql://u@h/db", dir),
            "postgresql://u@h/db"
        );
    }

    #[test]
    fn tls_that_cannot_be_checked_is_refused() {
        for (url, words) in [
            ("postgresql://u@h/db?sslmode=require", "need sslrootcert"),
            (
                "postgresql://u@h/db?sslmode=verify-full",
                "need sslrootcert",
            ),
            (
                "postgresql://u@h/db?sslmode=verify-ca&sslrootcert=/x",
                "verify-full",
            ),
            ("postgresql://u@h/db?sslmode=on", "unknown sslmode"),
            (
                "postgresql://u@h/db?sslrootcert=/x",
                "need sslmode=verify-full",
            ),
            (
                "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/no/such/ca.pem",
                "/no/such/ca.pem",
            ),
        ] {
            let e = target(url).err().expect(url).to_string();
            assert!(e.contains(words), "{url}: {e}");
        }
    }
}
