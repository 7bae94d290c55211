//! The identity convention: what a samverka certificate says about its
//! holder, and how the checking side reads it back.
//!
//! A certificate issued for samverka carries
//! - the holder's organisation number as a SAN URI `urn:samverka:agency:<10 digits>`
//!   and, the same number, in the subject's organizationIdentifier
//!   (OID 2.5.4.97) as `NTRSE-<10 digits>` (ETSI EN 319 412-1 notation:
//!   national trade register, Sweden);
//! - the holder's role as a SAN URI `urn:samverka:role:<role>`, where role is
//!   `agency` (an agency system calling the gateway), `adapter` (a register's
//!   adapter, called by the gateway) or `gateway`.
//!
//! [`CertIdentity::from_der`] is meant for a certificate whose chain the TLS
//! layer has already verified against samverka's trust bundle; it checks the
//! convention, not the signature. A certificate that breaks the convention in
//! any way (no URI, two organisation numbers, numbers that disagree, a bad
//! check digit) yields no identity at all: deny by default.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, RwLock};

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::ids::OrgNumber;

/// Prefix of the SAN URI that names the holder's organisation.
pub const AGENCY_URI_PREFIX: &str = "urn:samverka:agency:";
/// Prefix of the SAN URI that names the holder's role.
pub const ROLE_URI_PREFIX: &str = "urn:samverka:role:";
/// The X.520 organizationIdentifier attribute.
pub const ORGANIZATION_IDENTIFIER_OID: &[u64] = &[2, 5, 4, 97];
/// Prefix of the organizationIdentifier value (national trade register, SE).
pub const ORGANIZATION_IDENTIFIER_PREFIX: &str = "NTRSE-";

/// What a certificate holder is in samverka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An agency system that calls the gateway to read records or, with the
    /// registrar permission from the gateway's config, record consents.
    Agency,
    /// An adapter serving one agency register; only the gateway calls it.
    Adapter,
    /// A samverka gateway, as a server towards agencies and as a client
    /// towards adapters.
    Gateway,
    /// An operator of the gateway: may change its registry (agencies,
    /// purposes, access rules, adapter routes) through the management API.
    Operator,
    /// An agency's attestation key: signs the agency's own records as
    /// credentials (source attestations in a competence passport). Never a
    /// TLS identity: its certificate has only the document-signing
    /// extended key usage.
    Attester,
}

impl Role {
    /// The name used in the role URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agency => "agency",
            Role::Adapter => "adapter",
            Role::Gateway => "gateway",
            Role::Operator => "operator",
            Role::Attester => "attester",
        }
    }

    fn from_name(name: &str) -> Option<Role> {
        [
            Role::Agency,
            Role::Adapter,
            Role::Gateway,
            Role::Operator,
            Role::Attester,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no identity could be read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// No certificate was presented.
    NoCertificate,
    /// The bytes are not an X.509 certificate.
    Malformed,
    /// No `urn:samverka:agency:` URI.
    MissingAgency,
    /// No `urn:samverka:role:` URI.
    MissingRole,
    /// More than one agency or role URI.
    Ambiguous,
    /// The organisation number is not valid.
    InvalidAgency,
    /// The role is not one samverka knows.
    UnknownRole,
    /// The organizationIdentifier is missing or names another organisation
    /// than the SAN URI.
    OrganizationIdentifierMismatch,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityError::NoCertificate => "no client certificate",
            IdentityError::Malformed => "certificate cannot be parsed",
            IdentityError::MissingAgency => "certificate names no samverka agency",
            IdentityError::MissingRole => "certificate names no samverka role",
            IdentityError::Ambiguous => "certificate names more than one agency or role",
            IdentityError::InvalidAgency => "certificate's organisation number is invalid",
            IdentityError::UnknownRole => "certificate's role is unknown",
            IdentityError::OrganizationIdentifierMismatch => {
                "certificate's organizationIdentifier does not match its agency URI"
            }
        })
    }
}

impl std::error::Error for IdentityError {}

/// Who holds a certificate, according to the convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The holder's organisation number.
    pub agency: OrgNumber,
    /// The holder's role.
    pub role: Role,
}

impl CertIdentity {
    /// Reads the identity from a DER certificate (the leaf of a chain that
    /// the TLS layer has verified).
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Malformed)?;
        let mut agency = None;
        let mut role = None;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::Malformed)?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if let Some(org) = uri.strip_prefix(AGENCY_URI_PREFIX) {
                if agency.replace(org).is_some() {
                    return Err(IdentityError::Ambiguous);
                }
            } else if let Some(r) = uri.strip_prefix(ROLE_URI_PREFIX)
                && role.replace(r).is_some()
            {
                return Err(IdentityError::Ambiguous);
            }
        }
        let agency = agency.ok_or(IdentityError::MissingAgency)?;
        let agency = OrgNumber::parse(agency).map_err(|_| IdentityError::InvalidAgency)?;
        let role = role.ok_or(IdentityError::MissingRole)?;
        let role = Role::from_name(role).ok_or(IdentityError::UnknownRole)?;

        let mut org_ids = cert.subject().iter_attributes().filter(|a| {
            a.attr_type()
                .iter()
                .is_some_and(|arcs| arcs.eq(ORGANIZATION_IDENTIFIER_OID.iter().copied()))
        });
        let org_id = org_ids
            .next()
            .and_then(|a| a.as_str().ok())
            .ok_or(IdentityError::OrganizationIdentifierMismatch)?;
        if org_ids.next().is_some()
            || org_id.strip_prefix(ORGANIZATION_IDENTIFIER_PREFIX) != Some(agency.as_str())
        {
            return Err(IdentityError::OrganizationIdentifierMismatch);
        }
        Ok(CertIdentity { agency, role })
    }

    /// Like [`CertIdentity::from_der`], for a peer certificate read on
    /// every request: a peer presents the same certificate on every request
    /// of a connection, so what a certificate says is remembered (by its
    /// bytes, for at most [`KNOWN_MAX`] certificates) and it is parsed once.
    /// Whether the certificate may be used at all, its chain and
    /// revocation, is the TLS layer's check at each handshake. A
    /// certificate that cannot be read is never remembered.
    pub fn from_peer_der(der: &[u8]) -> Result<Self, IdentityError> {
        static KNOWN: LazyLock<RwLock<HashMap<Box<[u8]>, CertIdentity>>> =
            LazyLock::new(Default::default);
        if let Some(id) = KNOWN.read().ok().and_then(|known| known.get(der).cloned()) {
            return Ok(id);
        }
        let id = Self::from_der(der)?;
        if let Ok(mut known) = KNOWN.write() {
            if known.len() >= KNOWN_MAX {
                known.clear();
            }
            known.insert(der.into(), id.clone());
        }
        Ok(id)
    }

    /// Reads the identity from the first certificate of a PEM file's text.
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|_| IdentityError::Malformed)?;
        Self::from_der(&pem.contents)
    }
}

/// How many certificates [`CertIdentity::from_peer_der`] remembers before
/// it starts over.
pub const KNOWN_MAX: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{CertRequest, DevCa};

    #[test]
    fn each_peer_certificate_keeps_its_own_identity_when_read_again() {
        let ca = DevCa::generate("test CA").unwrap();
        let der = |agency: &str, role| {
            let cert = ca
                .issue(&CertRequest::new(org(agency), role, "holder"))
                .unwrap();
            x509_parser::pem::parse_x509_pem(cert.cert_pem.as_bytes())
                .unwrap()
                .1
                .contents
        };
        let reader = der("2021999020", Role::Agency);
        let adapter = der("2021999053", Role::Adapter);
        for _ in 0..3 {
            let id = CertIdentity::from_peer_der(&reader).unwrap();
            assert_eq!((id.agency.as_str(), id.role), ("2021999020", Role::Agency));
            let id = CertIdentity::from_peer_der(&adapter).unwrap();
            assert_eq!((id.agency.as_str(), id.role), ("2021999053", Role::Adapter));
        }
        // What cannot be read is refused every time, never remembered.
        for _ in 0..2 {
            assert_eq!(
                CertIdentity::from_peer_der(b"not a certificate"),
                Err(IdentityError::Malformed)
            );
        }
    }

    fn org(s: &str) -> OrgNumber {
        OrgNumber::parse(s).unwrap()
    }

    #[test]
    fn round_trips_through_the_dev_pki() {
        let ca = DevCa::generate("test CA").unwrap();
        for role in [
            Role::Agency,
            Role::Adapter,
            Role::Gateway,
            Role::Operator,
            Role::Attester,
        ] {
            let cert = ca
                .issue(&CertRequest::new(org("2021999020"), role, "holder"))
                .unwrap();
            let id = CertIdentity::from_pem(&cert.cert_pem).unwrap();
            assert_eq!(
                id,
                CertIdentity {
                    agency: org("2021999020"),
                    role
                }
            );
        }
    }

    #[test]
    fn refuses_certificates_that_break_the_convention() {
        let ca = DevCa::generate("test CA").unwrap();
        let base = CertRequest::new(org("2021999020"), Role::Agency, "holder");

        let mut no_uris = base.clone();
        no_uris.uris.clear();
        let c = ca.issue(&no_uris).unwrap();
        assert_eq!(
            CertIdentity::from_pem(&c.cert_pem),
            Err(IdentityError::MissingAgency)
        );

        let mut two_agencies = base.clone();
        two_agencies
            .uris
            .push(format!("{AGENCY_URI_PREFIX}2021999038"));
        let c = ca.issue(&two_agencies).unwrap();
        assert_eq!(
            CertIdentity::from_pem(&c.cert_pem),
            Err(IdentityError::Ambiguous)
        );

        let mut mismatched = base.clone();
        mismatched.organization_identifier = "NTRSE-2021999038".into();
        let c = ca.issue(&mismatched).unwrap();
        assert_eq!(
            CertIdentity::from_pem(&c.cert_pem),
            Err(IdentityError::OrganizationIdentifierMismatch)
        );

        assert_eq!(
            CertIdentity::from_der(b"not a certificate"),
            Err(IdentityError::Malformed)
        );
    }
}
