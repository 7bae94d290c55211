//! Step 2 of a request: who is calling, read from the client certificate.
//!
//! The TLS layer has already verified the chain against the trust bundle
//! (a client without a certificate, or with one from another CA, never gets
//! this far). Here the leaf certificate is read with the convention of
//! `samverka_certs::identity`; the caller must hold the `agency` role. The
//! request body never says who the caller is: an agency cannot act as
//! another by anything it writes in a request.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use samverka_certs::{CertIdentity, OrgNumber, Role};
use tonic::Request;

use crate::error::{GatewayError, Reason};

/// The verified calling agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its organisation number, from its certificate.
    pub agency: OrgNumber,
}

/// The calling agency of `request`.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, GatewayError> {
    let certs = request.peer_certs();
    let leaf = certs.as_ref().and_then(|c| c.first()).ok_or_else(|| {
        GatewayError::new(Reason::IdentityMissing, "a client certificate is required")
    })?;
    let id = read_identity(leaf).map_err(|e| GatewayError {
        detail: Some(e.to_string()),
        ..GatewayError::new(
            Reason::IdentityMissing,
            "the client certificate carries no samverka agency identity",
        )
    })?;
    if id.role != Role::Agency {
        return Err(GatewayError {
            detail: Some(format!("{} presented a {} certificate", id.agency, id.role)),
            ..GatewayError::new(Reason::RoleRequired, "an agency certificate is required")
        });
    }
    Ok(Caller { agency: id.agency })
}

/// Certificates already read, and what they say. An agency presents the
/// same certificate on every request of a connection, and parsing it was
/// the costliest part of this step; the identity is a function of the
/// certificate's bytes alone, so it is read once. (Whether the certificate
/// may be used at all, its chain and revocation, is the TLS layer's check
/// at each handshake.)
static KNOWN: LazyLock<RwLock<HashMap<Box<[u8]>, CertIdentity>>> = LazyLock::new(Default::default);

/// How many certificates [`KNOWN`] holds before it starts over.
const KNOWN_MAX: usize = 4096;

fn read_identity(der: &[u8]) -> Result<CertIdentity, samverka_certs::IdentityError> {
    if let Some(id) = KNOWN.read().ok().and_then(|known| known.get(der).cloned()) {
        return Ok(id);
    }
    let id = CertIdentity::from_der(der)?;
    if let Ok(mut known) = KNOWN.write() {
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert(der.into(), id.clone());
    }
    Ok(id)
}

/// The calling agency of `request`, which must hold the consent-registrar
/// permission in the gateway's configuration.
pub fn registrar<T>(
    request: &Request<T>,
    config: &crate::config::Config,
) -> Result<OrgNumber, GatewayError> {
    let caller = caller(request)?;
    // On the request span (see `telemetry::request_span`).
    tracing::Span::current().record("samverka.caller", caller.agency.as_str());
    match config.agency(&caller.agency) {
        Some(a) if a.registrar => Ok(caller.agency),
        _ => Err(GatewayError {
            detail: Some(format!("{} is not a consent registrar", caller.agency)),
            ..GatewayError::new(Reason::RoleRequired, "only a consent registrar may do this")
        }),
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use samverka_certs::dev::{CertRequest, DevCa};

    use super::*;

    fn der(ca: &DevCa, agency: &str, role: Role) -> CertificateDer<'static> {
        let org = OrgNumber::parse(agency).expect("valid");
        let cert = ca
            .issue(&CertRequest::new(org, role, "test"))
            .expect("issued");
        CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("PEM")
    }

    #[test]
    fn each_certificate_keeps_its_own_identity_when_read_again() {
        let ca = DevCa::generate("samverka identity test CA").expect("CA");
        let reader = der(&ca, crate::demo::READER_AGENCY, Role::Agency);
        let adapter = der(&ca, "2021999053", Role::Adapter);
        for _ in 0..3 {
            let id = read_identity(&reader).expect("reader");
            assert_eq!(id.agency.as_str(), crate::demo::READER_AGENCY);
            assert_eq!(id.role, Role::Agency);
            let id = read_identity(&adapter).expect("adapter");
            assert_eq!(id.agency.as_str(), "2021999053");
            assert_eq!(id.role, Role::Adapter);
        }
        // What cannot be read is refused every time, never remembered.
        for _ in 0..2 {
            assert!(read_identity(b"not a certificate").is_err());
        }
    }
}
