//! Signed consent receipts: what the gateway recorded for a grant or a
//! revocation, as a compact JWS (RFC 7515) that anyone holding the
//! gateway's certificate can verify offline.
//!
//! The signature is ES256 (ECDSA P-256 with SHA-256, the fixed-size `r||s`
//! form JWS uses), made with the gateway's server key. The protected
//! header is `{"alg":"ES256","typ":"samverka-consent-receipt+jwt",
//! "x5t#S256":<SHA-256 thumbprint of the gateway certificate>}`; the payload
//! is [`ReceiptClaims`] as JSON. Verification checks the algorithm, that the
//! thumbprint names the given certificate, and the signature against that
//! certificate's public key; any changed byte of header, payload or
//! signature fails.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

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
    /// The consent after the event.
    pub consent: ReceiptConsent,
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
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).unwrap_or_else(|_| ms.to_string())
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// Why a receipt does not verify, or a signer cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptError(pub String);

impl std::fmt::Display for ReceiptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReceiptError {}

fn err(m: impl Into<String>) -> ReceiptError {
    ReceiptError(m.into())
}

fn thumbprint(cert_der: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        cert_der,
    ))
}

fn cert_der(cert_pem: &str) -> Result<CertificateDer<'static>, ReceiptError> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| err(format!("certificate: {e}")))
}

/// Signs receipts with the gateway's key.
pub struct ReceiptSigner {
    key: EcdsaKeyPair,
    x5t_s256: String,
    issuer: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl ReceiptSigner {
    /// A signer from the gateway's certificate and its PKCS#8 P-256 key;
    /// `issuer` is the operator's organisation number.
    pub fn from_pem(cert_pem: &str, key_pem: &str, issuer: &str) -> Result<Self, ReceiptError> {
        let cert = cert_der(cert_pem)?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            err(format!(
                "key: {e} (a PKCS#8 ECDSA P-256 key is needed to sign receipts)"
            ))
        })?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.secret_pkcs8_der())
                .map_err(|e| err(format!("key: {e} (receipts need an ECDSA P-256 key)")))?;
        let (_, parsed) =
            X509Certificate::from_der(&cert).map_err(|e| err(format!("certificate: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key().as_ref() {
            return Err(err("the key does not belong to the certificate"));
        }
        Ok(ReceiptSigner {
            key,
            x5t_s256: thumbprint(&cert),
            issuer: issuer.to_owned(),
            rng: SystemRandom::new(),
        })
    }

    /// The issuer named in every receipt.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &ReceiptClaims) -> Result<String, ReceiptError> {
        let header = Header {
            alg: "ES256".into(),
            typ: RECEIPT_TYPE.into(),
            x5t_s256: self.x5t_s256.clone(),
        };
        let header = serde_json::to_vec(&header).map_err(|e| err(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| err(e.to_string()))?;
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| err("signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            B64.encode(signature.as_ref())
        ))
    }
}

/// Verifies a compact JWS receipt against the gateway's certificate and
/// returns what it attests.
pub fn verify(jws: &str, gateway_cert_pem: &str) -> Result<ReceiptClaims, ReceiptError> {
    let jws = jws.trim();
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err(
            "not a compact JWS (expected three dot-separated parts)",
        ));
    };
    let decode = |part: &str, what: &str| {
        B64.decode(part)
            .map_err(|_| err(format!("{what} is not base64url")))
    };
    let header: Header =
        serde_json::from_slice(&decode(h, "header")?).map_err(|e| err(format!("header: {e}")))?;
    if header.alg != "ES256" {
        return Err(err(format!("unsupported algorithm {:?}", header.alg)));
    }
    if header.typ != RECEIPT_TYPE {
        return Err(err(format!(
            "not a samverka consent receipt (typ {:?})",
            header.typ
        )));
    }
    let cert = cert_der(gateway_cert_pem)?;
    if header.x5t_s256 != thumbprint(&cert) {
        return Err(err("the receipt was signed with another certificate"));
    }
    let (_, parsed) =
        X509Certificate::from_der(&cert).map_err(|e| err(format!("certificate: {e}")))?;
    let public_key = parsed.public_key().subject_public_key.data.to_vec();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(format!("{h}.{p}").as_bytes(), &decode(s, "signature")?)
        .map_err(|_| err("signature does not verify"))?;
    serde_json::from_slice(&decode(p, "payload")?).map_err(|e| err(format!("payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_certs::dev::{CertRequest, DevCa};
    use samverka_certs::{OrgNumber, Role};

    fn claims() -> ReceiptClaims {
        ReceiptClaims {
            iss: "2021999012".into(),
            iat: 1_764_400_000,
            event: "granted".into(),
            recorded_at: rfc3339(1_764_400_000_123),
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
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_400_000_123), "2025-11-29T07:06:40.123Z");
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_change_fails() {
        let ca = DevCa::generate("ca").unwrap();
        let gw = gateway_cert(&ca);
        let signer = ReceiptSigner::from_pem(&gw.cert_pem, &gw.key_pem, "2021999012").unwrap();
        let jws = signer.sign(&claims()).unwrap();
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
        let forged_payload = B64.encode(serde_json::to_vec(&other).unwrap());
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
    fn a_key_of_another_certificate_is_refused() {
        let ca = DevCa::generate("ca").unwrap();
        let a = gateway_cert(&ca);
        let b = gateway_cert(&ca);
        assert!(ReceiptSigner::from_pem(&a.cert_pem, &b.key_pem, "2021999012").is_err());
    }
}
