//! Step 2 of a request: who is calling, read from the client certificate.
//!
//! The TLS layer has already verified the chain against the trust bundle
//! (a client without a certificate, or with one from another CA, never gets
//! this far). Here the leaf certificate is read with the convention of
//! `samverka_certs::identity`; the caller must hold the `agency` role. The
//! request body never says who the caller is: an agency cannot act as
//! another by anything it writes in a request.

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
    let id = CertIdentity::from_peer_der(leaf).map_err(|e| GatewayError {
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

/// The calling agency, which must hold the consent-registrar permission in
/// the registry, with the bounds it has there.
pub fn registrar(
    caller: Caller,
    registry: &crate::config::RegistryTables,
) -> Result<(OrgNumber, crate::config::Registrar), GatewayError> {
    match registry
        .agency(&caller.agency)
        .and_then(|a| a.registrar.as_ref())
    {
        Some(r) => Ok((caller.agency, r.clone())),
        _ => Err(GatewayError {
            detail: Some(format!("{} is not a consent registrar", caller.agency)),
            ..GatewayError::new(Reason::RoleRequired, "only a consent registrar may do this")
        }),
    }
}
