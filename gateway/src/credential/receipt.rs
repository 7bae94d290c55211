//! Signed consent receipts: what the gateway recorded for a grant or a
//! revocation, as a compact JWS of type `samverka-consent-receipt+jwt`
//! (see [`crate::credential::signing`]) that anyone holding the gateway's certificate
//! can verify offline.

use samverka_proto::v1::{Consent, consent};
use serde::{Deserialize, Serialize};

use crate::credential::keys::Trust;
use crate::credential::signing::{JwsSigner, SignatureError};
pub use crate::person::PersonEvidence;
use crate::time::from_timestamp;
pub use crate::time::rfc3339;

/// The JWS `typ` of a consent receipt.
pub const RECEIPT_TYPE: &str = "samverka-consent-receipt+jwt";

/// What a receipt attests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptClaims {
    /// Organisation number of the gateway's operator.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// `granted` or `revoked`.
    pub event: String,
    /// When the event was recorded, RFC 3339.
    pub recorded_at: String,
    /// The registrar that made the call (for a revocation, the one that
    /// revoked).
    #[serde(default)]
    pub registrar: String,
    /// The consent after the event.
    pub consent: ReceiptConsent,
    /// What proved the person's presence for the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonEvidence>,
}

/// The consent's fields in a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptConsent {
    /// Its id.
    pub consent_id: String,
    /// The person.
    pub subject_id: String,
    /// The agency allowed to read.
    pub grantee_agency: String,
    /// The record types it may read.
    pub record_types: Vec<String>,
    /// The purpose code.
    pub purpose: String,
    /// The only sources it may read; empty means any.
    pub source_agencies: Vec<String>,
    /// Start of validity, RFC 3339.
    pub valid_from: String,
    /// End of validity (exclusive), RFC 3339.
    pub valid_until: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    /// The registrar that recorded it.
    pub registrar_agency: String,
    /// The registrar's evidence reference.
    pub evidence_ref: String,
    /// When it was granted, RFC 3339.
    pub granted_at: String,
    /// When it was revoked, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
    /// The registrar through which it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// For a requested consent: the agency that asked, and its terms as
    /// asked and approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ReceiptRequest>,
}

/// What an agency asked for, in a receipt of a requested consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRequest {
    /// The agency that asked.
    pub requested_by: String,
    /// Why, in its words.
    pub justification: String,
    /// Only records dated on or after this day, if set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub records_from: String,
    /// Only records dated on or before this day, if set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub records_until: String,
    /// One read only.
    #[serde(default)]
    pub one_time: bool,
    /// At most this many reads; 0: no limit.
    #[serde(default)]
    pub max_reads: u32,
    /// How long it lasts once approved, in days.
    pub valid_for_days: u32,
    /// The registrar through which the person decided, once they did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decided_by: String,
}

impl From<&Consent> for ReceiptConsent {
    /// The one rendering of a consent for people and scripts: receipts,
    /// and the `samverka consent` command's text and JSON.
    fn from(c: &Consent) -> Self {
        let t =
            |ts: &Option<prost_types::Timestamp>| ts.as_ref().and_then(from_timestamp).map(rfc3339);
        let status = match c.status() {
            consent::Status::Active => "active",
            consent::Status::Revoked => "revoked",
            consent::Status::Expired => "expired",
            consent::Status::Pending => "pending",
            consent::Status::Paused => "paused",
            consent::Status::Rejected => "rejected",
            consent::Status::Used => "used",
            consent::Status::Unspecified => "unspecified",
        };
        ReceiptConsent {
            consent_id: c.consent_id.clone(),
            subject_id: c.subject_id.clone(),
            grantee_agency: c.grantee_agency.clone(),
            record_types: c.record_types.clone(),
            purpose: c.purpose.clone(),
            source_agencies: c.source_agencies.clone(),
            valid_from: t(&c.valid_from).unwrap_or_default(),
            valid_until: t(&c.valid_until).unwrap_or_default(),
            status: status.to_owned(),
            registrar_agency: c.registrar_agency.clone(),
            evidence_ref: c.evidence_ref.clone(),
            granted_at: t(&c.granted_at).unwrap_or_default(),
            revoked_at: t(&c.revoked_at),
            revocation_reason: (!c.revocation_reason.is_empty())
                .then(|| c.revocation_reason.clone()),
            revoked_by: (!c.revoked_by.is_empty()).then(|| c.revoked_by.clone()),
            request: (!c.requested_by.is_empty()).then(|| ReceiptRequest {
                requested_by: c.requested_by.clone(),
                justification: c.justification.clone(),
                records_from: c.records_from.clone(),
                records_until: c.records_until.clone(),
                one_time: c.one_time,
                max_reads: c.max_reads,
                valid_for_days: c.valid_for_days,
                decided_by: c.decided_by.clone(),
            }),
        }
    }
}

/// Signs a receipt.
pub fn sign(signer: &JwsSigner, claims: &ReceiptClaims) -> Result<String, SignatureError> {
    signer.sign(RECEIPT_TYPE, claims)
}

/// Verifies a receipt against the gateway's certificate and returns what it
/// attests: the certificate is a gateway's, and the receipt is issued in
/// the name of the organisation it names.
pub fn verify(jws: &str, gateway_cert_pem: &str) -> Result<ReceiptClaims, SignatureError> {
    let claims: ReceiptClaims =
        crate::credential::signing::verify(jws, RECEIPT_TYPE, gateway_cert_pem)?;
    let identity = crate::credential::signing::gateway_identity(gateway_cert_pem)?;
    if claims.iss != identity.agency.as_str() {
        return Err(SignatureError(format!(
            "issued in the name of {}, but signed by the gateway of {}",
            claims.iss, identity.agency
        )));
    }
    Ok(claims)
}

/// Verifies a receipt against what the verifier trusts: with a key set,
/// the certificate it names must be one of the set's, and that key valid
/// when the receipt was issued (`iat`).
pub fn verify_with(jws: &str, trust: &Trust) -> Result<ReceiptClaims, SignatureError> {
    let kid = crate::credential::signing::named_signer(jws)
        .ok_or_else(|| SignatureError("not a samverka receipt".into()))?;
    let named = trust.by_kid(&kid);
    let Some(first) = named.first() else {
        return Err(SignatureError(
            "signed with a key that is not in the key set".into(),
        ));
    };
    let claims = verify(jws, first.cert_pem)?;
    // Judged by every certificate of the set that holds the same key.
    let candidates = match first.key {
        Some(key) => trust.by_jwk(&key.jwk),
        None => named,
    };
    match crate::credential::keys::valid_at(&candidates, claims.iat) {
        Some(Err(e)) => Err(SignatureError(e)),
        _ => Ok(claims),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::signing::JwsSigner;
    use samverka_certs::dev::{CertRequest, DevCa};
    use samverka_certs::{OrgNumber, Role};

    fn claims() -> ReceiptClaims {
        ReceiptClaims {
            iss: "2021999012".into(),
            iat: 1_764_400_000,
            event: "granted".into(),
            recorded_at: rfc3339(1_764_400_000_123),
            registrar: "2021999038".into(),
            person: None,
            consent: ReceiptConsent {
                consent_id: "c-1".into(),
                subject_id: "199003142388".into(),
                grantee_agency: "2021999020".into(),
                record_types: vec!["employment.period".into()],
                purpose: "study_guidance".into(),
                source_agencies: vec![],
                valid_from: rfc3339(1_764_400_000_000),
                valid_until: rfc3339(1_795_936_000_000),
                status: "active".into(),
                registrar_agency: "2021999038".into(),
                evidence_ref: "ev".into(),
                granted_at: rfc3339(1_764_400_000_123),
                revoked_at: None,
                revocation_reason: None,
                revoked_by: None,
                request: None,
            },
        }
    }

    fn gateway_cert(ca: &DevCa) -> samverka_certs::dev::IssuedCert {
        ca.issue(&CertRequest::new(
            OrgNumber::parse("2021999012").unwrap(),
            Role::Gateway,
            "gw",
        ))
        .unwrap()
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_change_fails() {
        let ca = DevCa::generate("ca").unwrap();
        let gw = gateway_cert(&ca);
        let signer = JwsSigner::from_pem(&gw.cert_pem, &gw.key_pem, "2021999012").unwrap();
        let jws = sign(&signer, &claims()).unwrap();
        assert_eq!(verify(&jws, &gw.cert_pem).unwrap(), claims());

        // Every single changed character of the token fails.
        let bytes = jws.as_bytes();
        for i in (0..bytes.len()).step_by(7) {
            let mut changed = bytes.to_vec();
            changed[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            if changed != jws {
                assert!(
                    verify(&changed, &gw.cert_pem).is_err(),
                    "byte {i} changed and still verified"
                );
            }
        }

        // A payload swapped in under the same signature fails.
        let mut other = claims();
        other.consent.subject_id = "198511224571".into();
        use base64::Engine;
        let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&other).unwrap());
        let parts: Vec<&str> = jws.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&forged, &gw.cert_pem).unwrap_err().0,
            "signature does not verify"
        );

        // Another gateway certificate, even from the same CA, does not verify it.
        let other_gw = gateway_cert(&ca);
        assert!(verify(&jws, &other_gw.cert_pem).is_err());
    }

    #[test]
    fn against_a_key_set_only_a_gateway_signing_in_its_own_name_counts() {
        use crate::credential::keys::{KeySet, Trust};
        use crate::store::keys::SigningKeyRecord;
        let ca = DevCa::generate("ca").unwrap();
        let set = |cert: &str| {
            Trust::Keys(
                KeySet::from_records(&[SigningKeyRecord {
                    kid: crate::credential::signing::cert_thumbprint(cert).unwrap(),
                    cert_pem: cert.to_owned(),
                    in_use_from_ms: 0,
                    retired_at_ms: None,
                    retire_reason: None,
                }])
                .unwrap(),
            )
        };
        let gw = gateway_cert(&ca);
        let signer = JwsSigner::from_pem(&gw.cert_pem, &gw.key_pem, "2021999012").unwrap();
        let jws = sign(&signer, &claims()).unwrap();
        assert_eq!(verify_with(&jws, &set(&gw.cert_pem)).unwrap(), claims());
        // In the name of another organisation than the certificate's.
        let mut other = claims();
        other.iss = "2021999020".into();
        let e = verify_with(&sign(&signer, &other).unwrap(), &set(&gw.cert_pem)).unwrap_err();
        assert!(e.0.contains("issued in the name of 2021999020"), "{e}");
        // Signed with an agency's certificate put in a key set.
        let agency = ca
            .issue(&CertRequest::new(
                OrgNumber::parse("2021999012").unwrap(),
                Role::Agency,
                "an agency",
            ))
            .unwrap();
        let signer = JwsSigner::from_pem(&agency.cert_pem, &agency.key_pem, "2021999012").unwrap();
        let e =
            verify_with(&sign(&signer, &claims()).unwrap(), &set(&agency.cert_pem)).unwrap_err();
        assert!(e.0.contains("not a samverka gateway's"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let ca = DevCa::generate("ca").unwrap();
        let a = gateway_cert(&ca);
        let b = gateway_cert(&ca);
        assert!(JwsSigner::from_pem(&a.cert_pem, &b.key_pem, "2021999012").is_err());
    }

    #[test]
    fn a_signature_of_another_type_is_not_a_receipt() {
        let ca = DevCa::generate("ca").unwrap();
        let gw = gateway_cert(&ca);
        let signer = JwsSigner::from_pem(&gw.cert_pem, &gw.key_pem, "2021999012").unwrap();
        let other = signer
            .sign("samverka-audit-checkpoint+jwt", &claims())
            .unwrap();
        assert!(verify(&other, &gw.cert_pem).is_err());
    }
}
