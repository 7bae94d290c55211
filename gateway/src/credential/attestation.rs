//! Source attestations: each record of a passport as its source agency's
//! own `OpenBadgeCredential`, signed with the agency's attestation key (see
//! `samverka_adapter::credential`).
//!
//! Checked twice:
//! - by the gateway as the record arrives ([`check_received`]): the
//!   certificate chains to the federation CA, has the `attester` role and
//!   names the agency of the routing table's adapter; the signature holds
//!   under its key; the credential is issued by that agency, about this
//!   passport's holder, made now, and says field for field what the record
//!   says (the checks shared with the conformance kit are the SDK's,
//!   `samverka_adapter::credential::verify`). A record whose attestation
//!   fails is dropped (`INVALID_RESPONSE`);
//! - by a verifier of the passport ([`check_embedded`]): the merit in the
//!   passport is exactly the credential its source signed, the certificate
//!   names the agency the merit is issued by and, given the federation CA,
//!   was issued by it.

use base64::Engine;
use samverka_adapter::credential::agency_urn;
pub use samverka_adapter::credential::verify::{
    attester_of, check_chain, verify_attestation, verify_signed,
};
use samverka_certs::OrgNumber;
use samverka_proto::records::v1::Record;
use serde_json::Value;

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

/// How far an attestation's `nbf` may be from the time the gateway
/// receives it (clocks of two hosts, and a slow register).
pub const ARRIVAL_SKEW_SECONDS: i64 = 300;

/// An attestation is made during the passport's read: its `nbf` is at
/// most this long before the passport's, and at most [`CLOCK_SKEW_SECONDS`]
/// after it.
pub const BEFORE_PASSPORT_SECONDS: i64 = 600;

/// Clocks of a source and the gateway may differ by this much.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// Now, in Unix seconds.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks the attestation `jws` of `record` (as received, naming `agency`)
/// made with the certificate `cert_der`, for the passport of `expected`
/// ([`verify_attestation`]): the certificate names the routing table's
/// agency, `chain` accepts its path to the federation CA ([`check_chain`]),
/// and it was made now. Returns the attested credential.
pub fn check_received(
    jws: &str,
    cert_der: &[u8],
    record: &Record,
    agency: &OrgNumber,
    expected: &Expected<'_>,
    chain: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<Value, String> {
    let signer = attester_of(cert_der)?;
    if &signer != agency {
        return Err(format!(
            "attestation certificate names agency {signer}, the source is {agency}"
        ));
    }
    if record.subject_id != expected.subject_id {
        return Err("the record is about another person".into());
    }
    chain(cert_der)?;
    let claims = verify_attestation(
        jws,
        cert_der,
        record,
        expected.holder_id,
        expected.holder_salt,
    )?;
    let nbf = claims["nbf"].as_i64().ok_or("the attestation has no nbf")?;
    if (nbf - now_seconds() as i64).abs() > ARRIVAL_SKEW_SECONDS {
        return Err("the attestation was not made now (nbf)".into());
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
    let agency = attester_of(&cert_der)?;
    let claims = verify_signed(jws, &cert_der)?;
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
