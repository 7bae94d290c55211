//! Certificate signing requests in the samverka convention, so that an
//! agency's key never leaves it: the agency makes its key and a request
//! (`samverka certs request`), the operator checks the request and issues
//! the certificate (`samverka admin onboard`).
//!
//! The certificate issued is made from what was checked (the organisation
//! number and role the request's URIs name, its common name, and for an
//! adapter its server names), in the convention of [`super::CertRequest`]:
//! nothing else the request carries reaches the certificate.

use rcgen::{CertificateSigningRequestParams, DnType, DnValue, KeyPair, SanType};
use time::Duration;

use super::{CertRequest, DevCa, DevPkiError, params_of};
use crate::identity::{AGENCY_URI_PREFIX, ROLE_URI_PREFIX, Role};
use crate::ids::OrgNumber;

/// A request and the key it was made with (PEM); the key stays with its
/// holder.
#[derive(Debug, Clone)]
pub struct SigningRequest {
    /// The PKCS#10 request.
    pub csr_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A fresh key and a request for the certificate `req` describes.
pub fn make_request(req: &CertRequest) -> Result<SigningRequest, DevPkiError> {
    let key = KeyPair::generate()?;
    let mut params = params_of(req)?;
    // The issuer's key identifier is the issuer's to add.
    params.use_authority_key_identifier_extension = false;
    let csr = params.serialize_request(&key)?;
    Ok(SigningRequest {
        csr_pem: csr.pem()?,
        key_pem: key.serialize_pem(),
    })
}

/// What a request asks for, checked.
#[derive(Debug)]
pub struct CheckedRequest {
    /// The organisation its agency URI names.
    pub agency: OrgNumber,
    /// The role its role URI names: `agency` or `adapter`.
    pub role: Role,
    /// Its subject's common name (the issuer may set another).
    pub common_name: String,
    /// The DNS names and IP addresses it asks for (an adapter's); the
    /// issuer decides which the certificate names (this list, as the
    /// issuer leaves it: no wildcard is issued).
    pub server_names: Vec<String>,
    public_key: rcgen::PublicKey,
}

fn invalid(m: impl Into<String>) -> DevPkiError {
    DevPkiError::Invalid(m.into())
}

/// Reads a PEM request, checks its signature, and that it names exactly one
/// organisation and one role, `agency` or `adapter` (operators and
/// gateways are the operator's own: not onboarded).
pub fn check_request(pem: &str) -> Result<CheckedRequest, DevPkiError> {
    let csr = CertificateSigningRequestParams::from_pem(pem)
        .map_err(|e| invalid(format!("not a valid certificate signing request: {e}")))?;
    let (mut agency, mut role, mut server_names) = (None, None, Vec::new());
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::URI(uri) => {
                let uri = uri.as_str();
                if let Some(org) = uri.strip_prefix(AGENCY_URI_PREFIX) {
                    if agency.replace(org.to_owned()).is_some() {
                        return Err(invalid("the request names two organisations"));
                    }
                } else if let Some(r) = uri.strip_prefix(ROLE_URI_PREFIX)
                    && role.replace(r.to_owned()).is_some()
                {
                    return Err(invalid("the request names two roles"));
                }
            }
            SanType::DnsName(name) => server_names.push(name.as_str().to_owned()),
            SanType::IpAddress(ip) => server_names.push(ip.to_string()),
            _ => {}
        }
    }
    let agency =
        agency.ok_or_else(|| invalid(format!("the request names no {AGENCY_URI_PREFIX} URI")))?;
    let agency = OrgNumber::parse(&agency)
        .map_err(|e| invalid(format!("the request's organisation number: {e}")))?;
    let role = match role.as_deref() {
        Some("agency") => Role::Agency,
        Some("adapter") => Role::Adapter,
        Some(other) => {
            return Err(invalid(format!(
                "the request asks for role {other:?}: only agency and adapter certificates are onboarded"
            )));
        }
        None => {
            return Err(invalid(format!(
                "the request names no {ROLE_URI_PREFIX} URI"
            )));
        }
    };
    let common_name = match csr.params.distinguished_name.get(&DnType::CommonName) {
        Some(DnValue::Utf8String(s)) => s.clone(),
        Some(DnValue::PrintableString(s)) => s.as_str().to_owned(),
        _ => String::new(),
    };
    let common_name = match common_name.trim() {
        "" => format!("{role} of {agency}"),
        name => name.chars().filter(|c| !c.is_control()).take(64).collect(),
    };
    Ok(CheckedRequest {
        agency,
        role,
        common_name,
        server_names,
        public_key: csr.public_key,
    })
}

impl DevCa {
    /// Issues the certificate `req` asks for, valid for `days` from now, for
    /// the key it was made with: the key is never seen here.
    pub fn issue_requested(&self, req: &CheckedRequest, days: i64) -> Result<String, DevPkiError> {
        let mut cert = CertRequest::new(req.agency.clone(), req.role, &req.common_name);
        if req.server_names.iter().any(|n| n.contains('*')) {
            return Err(invalid("no wildcard server name is issued"));
        }
        if req.role == Role::Adapter && !req.server_names.is_empty() {
            cert.server_names = req.server_names.clone();
        }
        cert.not_after = cert.not_before + Duration::hours(1) + Duration::days(days);
        Ok(params_of(&cert)?
            .signed_by(&req.public_key, &self.issuer)?
            .pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertIdentity;

    fn org(s: &str) -> OrgNumber {
        OrgNumber::parse(s).unwrap()
    }

    #[test]
    fn a_request_becomes_a_certificate_for_its_key_in_the_convention() {
        let ca = DevCa::generate("test CA").unwrap();
        let mut want = CertRequest::new(org("2021999707"), Role::Adapter, "new register");
        want.server_names = vec!["register.example".into()];
        let made = make_request(&want).unwrap();
        let checked = check_request(&made.csr_pem).unwrap();
        assert_eq!(checked.agency, org("2021999707"));
        assert_eq!(checked.role, Role::Adapter);
        assert_eq!(checked.common_name, "new register");
        assert_eq!(checked.server_names, ["register.example"]);
        let pem = ca.issue_requested(&checked, 365).unwrap();
        let (_, cert) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let id = CertIdentity::from_der(&cert.contents).unwrap();
        assert_eq!((id.agency, id.role), (org("2021999707"), Role::Adapter));
        // For the requester's key.
        let key = KeyPair::from_pem(&made.key_pem).unwrap();
        let x509 = cert.parse_x509().unwrap();
        assert_eq!(
            x509.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }

    #[test]
    fn requests_outside_the_convention_are_refused() {
        let mut op = CertRequest::new(org("2021999707"), Role::Operator, "me");
        op.client_auth = true;
        let e = check_request(&make_request(&op).unwrap().csr_pem).unwrap_err();
        assert!(e.to_string().contains("only agency and adapter"), "{e}");
        let mut none = CertRequest::new(org("2021999707"), Role::Agency, "me");
        none.uris.clear();
        assert!(check_request(&make_request(&none).unwrap().csr_pem).is_err());
        assert!(
            check_request(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            )
            .is_err()
        );
    }
}
