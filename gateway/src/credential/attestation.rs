//! Source attestations: each record of a passport as its source agency's
//! own `OpenBadgeCredential`, signed with the agency's attestation key (see
//! `samverka_adapter::credential`).
//!
//! Checked twice:
//! - by the gateway as the record arrives ([`check_received`]): the
//!   certificate chains to the federation CA, has the `attester` role and
//!   names the agency of the routing table's adapter; the signature holds
//!   under its key; the credential is issued by that agency, about this
//!   passport's holder, and its `recordDigest` is that of the record as
//!   received. A record whose attestation fails is dropped
//!   (`INVALID_RESPONSE`);
//! - by a verifier of the passport ([`check_embedded`]): the merit in the
//!   passport is exactly the credential its source signed, the certificate
//!   names the agency the merit is issued by and, given the federation CA,
//!   was issued by it.

use base64::Engine;
use samverka_adapter::credential::{agency_urn, attestation_claims, identity_hash, record_digest};
use samverka_certs::{CertIdentity, OrgNumber, Role};
use samverka_proto::records::v1::Record;
use serde_json::Value;

use crate::credential::signing::verify_jwt;

/// The property of a passport's merit that carries its source's
/// attestation: `{"jwt": <VC-JWT>, "x5c": [<certificate, base64 DER>]}`.
pub const PROPERTY: &str = "attestation";

/// Who the attested records must be about: the passport's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The person's number.
    pub subject_id: &'a str,
    /// The passport's holder id (`urn:uuid:`).
    pub holder_id: &'a str,
    /// The passport's holder salt.
    pub holder_salt: &'a str,
}

fn pem_of(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// How far an attestation's `nbf` may be from the time the gateway
/// receives it (clocks of two hosts, and a slow register).
pub const ARRIVAL_SKEW_SECONDS: i64 = 300;

/// An attestation is made during the passport's read: its `nbf` is at
/// most this long before the passport's, and at most [`CLOCK_SKEW_SECONDS`]
/// after it.
pub const BEFORE_PASSPORT_SECONDS: i64 = 600;

/// Clocks of a source and the gateway may differ by this much.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// The attester's identity from its certificate (DER): role `attester`,
/// and document signing its one extended key usage.
fn attester(cert_der: &[u8]) -> Result<OrgNumber, String> {
    let identity = CertIdentity::from_peer_der(cert_der)
        .map_err(|e| format!("attestation certificate: {e}"))?;
    if identity.role != Role::Attester {
        return Err(format!(
            "attestation certificate has role {}, not attester",
            identity.role
        ));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("attestation certificate: {e}"))?;
    let signing_only = cert.extended_key_usage().ok().flatten().is_some_and(|eku| {
        let u = eku.value;
        let document_signing = x509_parser::der_parser::oid!(1.3.6.1.5.5.7.3.36);
        !(u.any
            || u.server_auth
            || u.client_auth
            || u.code_signing
            || u.email_protection
            || u.time_stamping
            || u.ocsp_signing)
            && u.other == [document_signing]
    });
    if !signing_only {
        return Err("attestation certificate is not for document signing only".into());
    }
    Ok(identity.agency)
}

/// The certificate (DER) was issued for document signing by a CA of
/// `roots`, was valid at `at` (Unix seconds), and none of `crls` revokes it
/// (a list past its `nextUpdate` counts only if not `enforce_expiry`).
pub fn check_chain(
    cert_der: &[u8],
    roots: &rustls::RootCertStore,
    crls: &[rustls_pki_types::CertificateRevocationListDer<'_>],
    enforce_expiry: bool,
    at: u64,
) -> Result<(), String> {
    let der = rustls_pki_types::CertificateDer::from(cert_der.to_vec());
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| format!("attestation certificate: {e}"))?;
    let parsed: Vec<webpki::CertRevocationList<'_>> = crls
        .iter()
        .filter_map(|c| webpki::BorrowedCertRevocationList::from_der(c).ok())
        .map(webpki::CertRevocationList::from)
        .collect();
    let refs: Vec<&webpki::CertRevocationList<'_>> = parsed.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&refs).ok().map(|b| {
        b.with_depth(webpki::RevocationCheckDepth::EndEntity)
            .with_status_policy(webpki::UnknownStatusPolicy::Allow)
            .with_expiration_policy(if enforce_expiry {
                webpki::ExpirationPolicy::Enforce
            } else {
                webpki::ExpirationPolicy::Ignore
            })
            .build()
    });
    let provider = samverka_adapter::crypto_provider();
    let time = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(at));
    cert.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &roots.roots,
        &[],
        time,
        webpki::KeyUsage::required(samverka_certs::dev::DOCUMENT_SIGNING_OID),
        revocation,
        None,
    )
    .map(|_| ())
    .map_err(|e| {
        format!("attestation certificate not issued by the federation CA for signing ({e:?})")
    })
}

/// Now, in Unix seconds.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks the attestation `jws` of `record` (as received, naming `agency`)
/// made with the certificate `cert_der`, for the passport of `expected`;
/// `chain` checks the certificate's path to the federation CA (see
/// [`check_chain`]). Returns the attested credential.
pub fn check_received(
    jws: &str,
    cert_der: &[u8],
    record: &Record,
    agency: &OrgNumber,
    expected: &Expected<'_>,
    chain: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<Value, String> {
    let signer = attester(cert_der)?;
    if &signer != agency {
        return Err(format!(
            "attestation certificate names agency {signer}, the source is {agency}"
        ));
    }
    chain(cert_der)?;
    let claims = verify_jwt(jws, &pem_of(cert_der)).map_err(|e| e.0)?;
    if claims["iss"] != agency_urn(agency.as_str()) || claims["issuer"]["id"] != claims["iss"] {
        return Err("the attestation is not issued by the source agency".into());
    }
    if record.source_agency != agency.as_str() {
        return Err("the record does not name the source agency".into());
    }
    if claims["recordDigest"] != record_digest(record, expected.holder_salt).as_str() {
        return Err("the attestation is not of this record (recordDigest)".into());
    }
    let subject = &claims["credentialSubject"];
    if subject["id"] != expected.holder_id
        || claims["sub"] != expected.holder_id
        || subject["identifier"][0]["identityHash"]
            != identity_hash(expected.subject_id, expected.holder_salt).as_str()
    {
        return Err("the attestation is about another holder".into());
    }
    let nbf = claims["nbf"].as_i64().ok_or("the attestation has no nbf")?;
    if (nbf - now_seconds() as i64).abs() > ARRIVAL_SKEW_SECONDS {
        return Err("the attestation was not made now (nbf)".into());
    }
    // What the passport will show is exactly what the record says, as the
    // gateway would render it, under the source's name for itself.
    let name = claims["issuer"]["name"]
        .as_str()
        .filter(|n| !n.trim().is_empty() && n.chars().count() <= 200)
        .ok_or("the attestation's issuer has no name (or one over 200 characters)")?;
    let valid_from = claims["validFrom"].as_str().unwrap_or_default();
    let rendered = attestation_claims(
        record,
        name,
        expected.holder_id,
        expected.holder_salt,
        valid_from,
    );
    if claims != rendered {
        return Err("the attestation does not say what the record says".into());
    }
    Ok(claims)
}

/// The passport's merit as it carries its attestation: the attested
/// credential with [`PROPERTY`] added.
pub fn embed(mut credential: Value, jws: &str, cert_der: &[u8]) -> Value {
    credential[PROPERTY] = serde_json::json!({
        "jwt": jws,
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    credential
}

/// Checks a passport's merit that carries an attestation: it is exactly
/// the credential its source signed, by a key whose certificate (for
/// document signing only, role attester) names the agency the merit is
/// issued by and its source, made during the read of the passport issued
/// at `passport_nbf` (Unix seconds); with `roots` (the federation CA), the
/// certificate was issued by it for signing and valid when the
/// attestation was made. Returns the attesting agency.
pub fn check_embedded(
    merit: &Value,
    roots: Option<&rustls::RootCertStore>,
    passport_nbf: i64,
) -> Result<OrgNumber, String> {
    let attestation = &merit[PROPERTY];
    let jws = attestation["jwt"].as_str().ok_or("no attestation jwt")?;
    let cert_der = attestation["x5c"][0]
        .as_str()
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .ok_or("no attestation certificate (x5c)")?;
    let agency = attester(&cert_der)?;
    let claims = verify_jwt(jws, &pem_of(&cert_der)).map_err(|e| e.0)?;
    let mut shown = merit.clone();
    if let Some(map) = shown.as_object_mut() {
        map.remove(PROPERTY);
    }
    if shown != claims {
        return Err("the merit is not what its source signed".into());
    }
    let urn = agency_urn(agency.as_str());
    if claims["issuer"]["id"] != urn.as_str() || claims["iss"] != urn.as_str() {
        return Err(format!(
            "issued in another name than the attester's ({agency})"
        ));
    }
    if claims["source"]["agency"] != agency.as_str() {
        return Err(format!("its source is not the attester ({agency})"));
    }
    let at = claims["nbf"]
        .as_i64()
        .ok_or("no nbf: when it was attested is not said")?;
    if at < passport_nbf - BEFORE_PASSPORT_SECONDS || at > passport_nbf + CLOCK_SKEW_SECONDS {
        return Err("attested at another time than the passport's read (nbf)".into());
    }
    if let Some(roots) = roots {
        check_chain(&cert_der, roots, &[], false, at.max(0) as u64)?;
    }
    Ok(agency)
}

#[cfg(test)]
mod tests;
