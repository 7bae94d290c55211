//! Certificate revocation lists: reading the files of `gateway.crls`, what
//! each list says about itself (its issuer and `nextUpdate`), and what the
//! gateway does with a list whose `nextUpdate` has passed
//! (`gateway.stale_crl`).
//!
//! The same lists are checked on both mTLS hops: the agencies' client
//! certificates on the gRPC port and the adapters' server certificates
//! when the gateway connects to them ([`crate::net::tls`] builds both
//! verifiers from one [`Crls`]).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// What the gateway does with a CRL whose `nextUpdate` has passed
/// (`gateway.stale_crl`). Either way it says so: the metric
/// `samverka_crl_stale` and a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaleCrlPolicy {
    /// Keep checking certificates against it: a certificate revoked after
    /// the list was signed is not known to be revoked.
    Warn,
    /// Fail closed: the list no longer covers its issuer, so every
    /// certificate that issuer signed, agency or adapter, is refused at
    /// the handshake (as if no list covered it), and the gateway is not
    /// ready (`/readyz` says which list) until a fresh list is loaded.
    #[default]
    Refuse,
}

impl StaleCrlPolicy {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleCrlPolicy::Warn => "warn",
            StaleCrlPolicy::Refuse => "refuse",
        }
    }
}

/// What one loaded list says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The file it came from.
    pub file: PathBuf,
    /// Its issuer's distinguished name, as in `CN=..., O=...`.
    pub issuer: String,
    /// Its `nextUpdate`, in seconds since the Unix epoch: by then the
    /// issuer has promised a newer list.
    pub next_update: i64,
}

impl CrlInfo {
    /// Whether its `nextUpdate` has passed at `now` (seconds since the
    /// Unix epoch), as webpki judges it.
    pub fn stale_at(&self, now: i64) -> bool {
        now >= self.next_update
    }

    /// Its `nextUpdate` in RFC 3339, for people.
    pub fn next_update_text(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.next_update)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.next_update.to_string())
    }
}

/// The lists of every CRL file, for the verifiers, and what each says.
#[derive(Debug, Clone, Default)]
pub struct Crls {
    /// The lists, DER, in the order of the files.
    pub lists: Vec<CertificateRevocationListDer<'static>>,
    /// One per list, in the same order.
    pub info: Vec<CrlInfo>,
}

/// Reads every file of `paths` (PEM, one or more lists each). A file that
/// cannot be read, holds no list, or holds one that webpki would not use
/// with `roots` is an error naming the file.
pub fn load(
    paths: &[PathBuf],
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Crls, String> {
    let mut crls = Crls::default();
    for path in paths {
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let pem = std::fs::read(path).map_err(|e| named(&e))?;
        let in_file = CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| named(&e))?;
        if in_file.is_empty() {
            return Err(named(&"no certificate revocation list"));
        }
        // Each file on its own first, so that an error names it.
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(in_file.clone())
            .build()
            .map_err(|e| named(&e))?;
        for der in &in_file {
            let (_, list) = CertificateRevocationList::from_der(der.as_ref())
                .map_err(|e| named(&format!("certificate revocation list: {e}")))?;
            let next_update = list
                .next_update()
                .ok_or_else(|| named(&"a certificate revocation list without nextUpdate"))?;
            crls.info.push(CrlInfo {
                file: path.clone(),
                issuer: list.issuer().to_string(),
                next_update: next_update.timestamp(),
            });
        }
        crls.lists.extend(in_file);
    }
    Ok(crls)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use crate::net::tls::crl::{CrlInfo, StaleCrlPolicy};

    #[test]
    fn the_policy_is_read_by_name_and_refuses_by_default() {
        #[derive(Deserialize)]
        struct T {
            p: StaleCrlPolicy,
        }
        let read = |text: &str| toml::from_str::<T>(text).map(|t| t.p);
        assert_eq!(read("p = \"warn\"").unwrap(), StaleCrlPolicy::Warn);
        assert_eq!(read("p = \"refuse\"").unwrap(), StaleCrlPolicy::Refuse);
        assert!(read("p = \"ignore\"").is_err());
        assert_eq!(StaleCrlPolicy::default(), StaleCrlPolicy::Refuse);
    }

    #[test]
    fn a_list_is_stale_from_its_next_update_on() {
        let info = CrlInfo {
            file: "crl.pem".into(),
            issuer: "CN=test".into(),
            next_update: 1_000,
        };
        assert!(!info.stale_at(999));
        assert!(info.stale_at(1_000));
        assert_eq!(info.next_update_text(), "1970-01-01T00:16:40Z");
    }
}
