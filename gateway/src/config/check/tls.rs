//! The TLS files of a configuration: certificates, keys, the trust bundle
//! and revocation lists, each opened, parsed and checked against the others
//! (see [`super`] for what is checked).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, InconsistentKeys, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::{Checker, EXPIRY_WARNING_DAYS, Severity, Site, Usage};
use crate::credential::signing::JwsSigner;
use crate::net::tls::crl::StaleCrlPolicy;

impl Checker<'_> {
    /// A certificate with its key: each readable, the key the
    /// certificate's, the chain verified against `trust` (the CA's site,
    /// its roots and the revocation lists) when there is one.
    pub(super) fn identity(
        &mut self,
        cert: Option<&Site>,
        key: Option<&Site>,
        trust: Option<(
            &Site,
            &Arc<RootCertStore>,
            &[CertificateRevocationListDer<'static>],
        )>,
        usage: Usage,
    ) {
        let chain = cert.and_then(|c| self.certificates(c));
        let private = key.and_then(|k| self.private_key(k));
        let (Some(cert), Some(chain)) = (cert, chain) else {
            return;
        };
        if let (Some(key), Some(private)) = (key, private)
            && self.key_matches(key, &private, cert, &chain)
            && matches!(usage, Usage::Server)
        {
            self.signs_receipts(cert, key);
        }
        if let Some((ca, roots, lists)) = trust {
            self.verifies(cert, &chain, ca, roots, lists, usage);
        }
    }

    fn read(&mut self, site: &Site) -> Option<Vec<u8>> {
        match std::fs::read(&site.path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                let reason = format!("cannot read {}: {e}", site.path.display());
                self.error(site, reason);
                None
            }
        }
    }

    /// The PEM certificates of a file, each parsed and its validity
    /// checked; `None` (after saying why) when there are none to use.
    fn certificates(&mut self, site: &Site) -> Option<Vec<CertificateDer<'static>>> {
        let pem = self.read(site)?;
        let path = site.path.display().to_string();
        let certs = match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if certs.is_empty() => {
                self.error(site, format!("{path}: no PEM certificate in it"));
                return None;
            }
            Ok(certs) => certs,
            Err(e) => {
                self.error(site, format!("{path}: not PEM: {e}"));
                return None;
            }
        };
        let mut usable = true;
        for (i, der) in certs.iter().enumerate() {
            let which = if certs.len() == 1 {
                "the certificate".to_owned()
            } else {
                format!("certificate {} of {}", i + 1, certs.len())
            };
            match X509Certificate::from_der(der) {
                Ok((_, cert)) => self.validity(site, &which, &cert),
                Err(e) => {
                    self.error(site, format!("{path}: {which} does not parse: {e}"));
                    usable = false;
                }
            }
        }
        usable.then_some(certs)
    }

    fn validity(&mut self, site: &Site, which: &str, cert: &X509Certificate<'_>) {
        let path = site.path.display();
        let subject = cert.subject().to_string();
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if self.now < not_before {
            let reason = format!(
                "{path}: {which} ({subject}) is not valid before {}",
                rfc3339(not_before)
            );
            self.error(site, reason);
        } else if self.now > not_after {
            let reason = format!(
                "{path}: {which} ({subject}) expired on {}",
                rfc3339(not_after)
            );
            self.error(site, reason);
        } else if not_after - self.now < EXPIRY_WARNING_DAYS * 86_400 {
            let days = (not_after - self.now + 86_399) / 86_400;
            let reason = format!(
                "{path}: {which} ({subject}) expires in {days} day{}, on {}",
                if days == 1 { "" } else { "s" },
                rfc3339(not_after)
            );
            self.push(Severity::Warning, site, reason);
        }
    }

    /// A trust bundle: its certificates, as roots.
    pub(super) fn trust_anchor(&mut self, site: &Site) -> Option<Arc<RootCertStore>> {
        let certs = self.certificates(site)?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            if let Err(e) = roots.add(cert) {
                let reason = format!("{}: not a usable trust anchor: {e}", site.path.display());
                self.error(site, reason);
                return None;
            }
        }
        Some(Arc::new(roots))
    }

    fn private_key(&mut self, site: &Site) -> Option<PrivateKeyDer<'static>> {
        let pem = self.read(site)?;
        match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(key) => Some(key),
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                let reason = format!("{}: no PEM private key in it", site.path.display());
                self.error(site, reason);
                None
            }
            Err(e) => {
                let reason = format!("{}: not a PEM private key: {e}", site.path.display());
                self.error(site, reason);
                None
            }
        }
    }

    /// Whether the key belongs to the chain's first certificate (an error
    /// on the key's line when it does not).
    fn key_matches(
        &mut self,
        key: &Site,
        private: &PrivateKeyDer<'static>,
        cert: &Site,
        chain: &[CertificateDer<'static>],
    ) -> bool {
        let signing = match self
            .provider
            .key_provider
            .load_private_key(private.clone_key())
        {
            Ok(signing) => signing,
            Err(e) => {
                let reason = format!("{}: unusable private key: {e}", key.path.display());
                self.error(key, reason);
                return false;
            }
        };
        match CertifiedKey::new(chain.to_vec(), signing).keys_match() {
            Ok(()) => true,
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => true,
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                let reason = format!(
                    "{}: does not belong to the certificate of {} ({})",
                    key.path.display(),
                    cert.key,
                    cert.path.display()
                );
                self.error(key, reason);
                false
            }
            Err(e) => {
                let reason = format!("{}: {e}", key.path.display());
                self.error(key, reason);
                false
            }
        }
    }

    /// The gateway's server key also signs receipts and checkpoints, which
    /// takes an ECDSA P-256 key.
    fn signs_receipts(&mut self, cert: &Site, key: &Site) {
        let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        if let Err(e) = JwsSigner::from_pem(&text(&cert.path), &text(&key.path), "") {
            let reason = format!("{}: {e}", key.path.display());
            self.error(key, reason);
        }
    }

    /// The chain verifies against the trust bundle for `usage`, and is not
    /// revoked by `lists`. Dates are left to `Checker::validity` and the
    /// server's name to its clients.
    fn verifies(
        &mut self,
        cert: &Site,
        chain: &[CertificateDer<'static>],
        ca: &Site,
        roots: &Arc<RootCertStore>,
        lists: &[CertificateRevocationListDer<'static>],
        usage: Usage,
    ) {
        // Judged at a moment the certificate is valid (now, if it is), so
        // that webpki, which looks at the dates first, still says whether
        // the rest holds.
        let at = match X509Certificate::from_der(&chain[0]) {
            Ok((_, c)) if c.validity().not_before <= c.validity().not_after => self.now.clamp(
                c.validity().not_before.timestamp(),
                c.validity().not_after.timestamp(),
            ),
            _ => self.now,
        };
        let now = UnixTime::since_unix_epoch(Duration::from_secs(at.max(0) as u64));
        let (end_entity, intermediates) = (&chain[0], &chain[1..]);
        let result = match usage {
            Usage::Server => {
                WebPkiServerVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                    .with_crls(lists.to_vec())
                    .allow_unknown_revocation_status()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
                        v.verify_server_cert(end_entity, intermediates, &name, &[], now)
                            .map(drop)
                            .or_else(judge)
                    })
            }
            Usage::Client => {
                WebPkiClientVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                    .with_crls(lists.to_vec())
                    .allow_unknown_revocation_status()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        v.verify_client_cert(end_entity, intermediates, now)
                            .map(drop)
                            .or_else(judge)
                    })
            }
        };
        let Err(why) = result else { return };
        let path = cert.path.display();
        let ca_path = ca.path.display();
        let reason = match why.as_str() {
            UNKNOWN_ISSUER => format!("{path}: not issued by a CA of gateway.ca_cert ({ca_path})"),
            BAD_SIGNATURE => format!(
                "{path}: not issued by a CA of gateway.ca_cert ({ca_path}): its signature does not verify with the CA of that name (another CA of the same name?)"
            ),
            REVOKED => format!("{path}: revoked by a list of gateway.crls"),
            WRONG_PURPOSE => format!(
                "{path}: not valid for TLS {} authentication (its extended key usage)",
                match usage {
                    Usage::Server => "server",
                    Usage::Client => "client",
                }
            ),
            _ => format!("{path}: does not verify against gateway.ca_cert ({ca_path}): {why}"),
        };
        self.error(cert, reason);
    }

    /// The lists of one file of `gateway.crls`, if they can be used.
    pub(super) fn revocation_lists(
        &mut self,
        site: &Site,
        roots: Option<&Arc<RootCertStore>>,
        policy: StaleCrlPolicy,
    ) -> Vec<CertificateRevocationListDer<'static>> {
        let Some(pem) = self.read(site) else {
            return Vec::new();
        };
        let path = site.path.display().to_string();
        let lists = match CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(lists) if lists.is_empty() => {
                self.error(
                    site,
                    format!("{path}: no PEM certificate revocation list in it"),
                );
                return Vec::new();
            }
            Ok(lists) => lists,
            Err(e) => {
                self.error(site, format!("{path}: not PEM: {e}"));
                return Vec::new();
            }
        };
        for der in &lists {
            match CertificateRevocationList::from_der(der) {
                Ok((_, list)) => match list.next_update() {
                    None => self.error(site, format!("{path}: a list without nextUpdate")),
                    Some(next) if self.now >= next.timestamp() => {
                        let reason = format!(
                            "{path}: stale: its nextUpdate {} has passed (issuer {}); {}",
                            rfc3339(next.timestamp()),
                            list.issuer(),
                            match policy {
                                StaleCrlPolicy::Refuse => {
                                    "with stale_crl = \"refuse\" every certificate its issuer signed is refused and /readyz is not ready until one is loaded"
                                }
                                StaleCrlPolicy::Warn => {
                                    "with stale_crl = \"warn\" it is still used"
                                }
                            }
                        );
                        self.push(Severity::Warning, site, reason);
                    }
                    Some(_) => {}
                },
                Err(e) => {
                    self.error(site, format!("{path}: a list does not parse: {e}"));
                    return Vec::new();
                }
            }
        }
        if let Some(roots) = roots
            && let Err(e) =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), self.provider.clone())
                    .with_crls(lists.clone())
                    .build()
        {
            self.error(site, format!("{path}: {e}"));
            return Vec::new();
        }
        lists
    }
}

// What [`judge`] makes of a verifier's refusal.
const UNKNOWN_ISSUER: &str = "unknown issuer";
const BAD_SIGNATURE: &str = "bad signature";
const REVOKED: &str = "revoked";
const WRONG_PURPOSE: &str = "wrong purpose";

/// A verifier's refusal: `Ok` for what is not this check's business (the
/// dates, reported by `Checker::validity`, and the server's name), else
/// a short reason.
fn judge(e: rustls::Error) -> Result<(), String> {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. }
            | C::NotValidForName
            | C::NotValidForNameContext { .. } => Ok(()),
            C::UnknownIssuer => Err(UNKNOWN_ISSUER.into()),
            C::BadSignature => Err(BAD_SIGNATURE.into()),
            C::Revoked => Err(REVOKED.into()),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => Err(WRONG_PURPOSE.into()),
            other => Err(rustls::Error::InvalidCertificate(other).to_string()),
        },
        other => Err(other.to_string()),
    }
}

/// Seconds since the epoch in RFC 3339, for people.
fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}
