//! Credentials about records: each record as an Open Badges 3.0
//! `OpenBadgeCredential` ([`merit`]), and the adapter's **source
//! attestation** of it ([`Attester`]): the agency's own credential for a
//! record, signed with the agency's attestation key, which the gateway
//! checks and a competence passport carries, so that a verifier sees that
//! the university said the grade, not only that a gateway passed it on.
//!
//! An attestation is a VC-JWT (ES256, the key as the header's `jwk`, as
//! Open Badges 3.0 requires) whose payload is the credential
//! ([`attestation_claims`]) with `recordDigest`: `sha256:` and the hex
//! SHA-256 of the holder salt followed by the record's protobuf encoding
//! ([`record_digest`]; salted, as the record holds the person's number),
//! the record naming the adapter's agency in `source_agency`. The attestation key is not the adapter's TLS
//! key: its certificate has the `attester` role and the document-signing
//! extended key usage only, and names the agency.

pub mod merit;
pub mod verify;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use prost::Message;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use samverka_certs::{CertIdentity, OrgNumber, Role};
use samverka_proto::records::v1::Record;
use serde_json::{Value, json};

pub use merit::{Holder, Merit, open_badge};

/// The W3C Verifiable Credentials 2.0 context.
pub const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// The Open Badges 3.0 context.
pub const OB_CONTEXT: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";

/// The URN by which a credential names an agency as its issuer.
pub fn agency_urn(org: &str) -> String {
    format!("urn:samverka:agency:{org}")
}

/// Lowercase hexadecimal.
pub use samverka_proto::hex;

/// The `identityHash` of a person's number under a holder salt:
/// `sha256$` and the hex SHA-256 of the number followed by the salt.
pub fn identity_hash(subject_id: &str, salt: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{subject_id}{salt}").as_bytes(),
    );
    format!("sha256${}", hex(digest.as_ref()))
}

/// The person as a credential names them: an Open Badges `IdentityObject`
/// holding only the salted hash of their number.
pub fn identity_object(subject_id: &str, salt: &str) -> Value {
    json!({
        "type": "IdentityObject",
        "identityType": "nationalIdentityNumber",
        "hashed": true,
        "identityHash": identity_hash(subject_id, salt),
    })
}

/// `sha256:` and the hex SHA-256 of `salt` followed by `record`'s protobuf
/// encoding (protobuf encodes a message's known fields in one canonical
/// way): what an attestation's `recordDigest` says, with the holder salt.
/// Without the salt the digest would let anyone confirm a guessed
/// personal number.
pub fn record_digest(record: &Record, salt: &str) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(salt.as_bytes());
    context.update(&record.encode_to_vec());
    format!("sha256:{}", hex(context.finish().as_ref()))
}

/// The claims of the attestation of `record` by its agency (which the
/// record names) under `issuer_name`, about `holder_id` with the salt
/// `holder_salt`, valid from `valid_from` (RFC 3339): what an adapter signs
/// and what the gateway expects, byte for byte.
pub fn attestation_claims(
    record: &Record,
    issuer_name: &str,
    holder_id: &str,
    holder_salt: &str,
    valid_from: &str,
) -> Value {
    let issuer = json!({
        "id": agency_urn(&record.source_agency),
        "type": ["Profile"],
        "name": issuer_name,
    });
    let identity = identity_object(&record.subject_id, holder_salt);
    let holder = Holder {
        identity: &identity,
        subject_id: holder_id,
        issuer: &issuer,
        valid_from,
    };
    let mut credential = open_badge(record, issuer_name, "", &holder);
    credential["recordDigest"] = json!(record_digest(record, holder_salt));
    with_claims(credential)
}

/// The VC-JWT claims of a credential: the credential itself with `iss`,
/// `jti`, `nbf` and `sub` added from its own fields.
pub fn with_claims(mut credential: Value) -> Value {
    let nbf = credential["validFrom"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    credential["iss"] = credential["issuer"]["id"].clone();
    credential["jti"] = credential["id"].clone();
    credential["nbf"] = json!(nbf);
    credential["sub"] = credential["credentialSubject"]["id"].clone();
    credential
}

/// An agency's attestation key with its certificate: signs the agency's
/// records as credentials.
pub struct Attester {
    agency: OrgNumber,
    cert_der: Vec<u8>,
    key: EcdsaKeyPair,
    jwk: Value,
    rng: SystemRandom,
}

impl std::fmt::Debug for Attester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attester")
            .field("agency", &self.agency)
            .finish_non_exhaustive()
    }
}

impl Attester {
    /// From the certificate and its ECDSA P-256 key (PKCS#8), both PEM.
    /// The certificate must have the `attester` role and hold this key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let identity = CertIdentity::from_pem(cert_pem)
            .map_err(|e| format!("attestation certificate: {e}"))?;
        if identity.role != Role::Attester {
            return Err(format!(
                "attestation certificate: role {} where attester is required",
                identity.role
            ));
        }
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("attestation certificate: {e}"))?
            .to_vec();
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("attestation key: {e}"))?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_der.secret_pkcs8_der())
                .map_err(|_| "attestation key: not an ECDSA P-256 key (PKCS#8)".to_owned())?;
        let point = key.public_key().as_ref().to_vec();
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| format!("attestation certificate: {e}"))?;
        if cert.public_key().subject_public_key.data.as_ref() != point.as_slice() {
            return Err("the attestation key is not the certificate's".to_owned());
        }
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..]),
        });
        Ok(Attester {
            agency: identity.agency,
            cert_der,
            key,
            jwk,
            rng: SystemRandom::new(),
        })
    }

    /// From the certificate and key files (PEM).
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, String> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    /// The agency the certificate names.
    pub fn agency(&self) -> &OrgNumber {
        &self.agency
    }

    /// The certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The agency's credential for `record` (which names the agency) about
    /// the holder `holder_id` with the salt `holder_salt`, issued by the
    /// agency under `issuer_name`, as a VC-JWT.
    pub fn attest(
        &self,
        record: &Record,
        issuer_name: &str,
        holder_id: &str,
        holder_salt: &str,
    ) -> Result<String, String> {
        if record.source_agency != self.agency.as_str() {
            return Err(format!(
                "the record names agency {:?}, the attestation key {}",
                record.source_agency, self.agency
            ));
        }
        let now = time::OffsetDateTime::now_utc();
        let valid_from = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| e.to_string())?;
        let claims = attestation_claims(record, issuer_name, holder_id, holder_salt, &valid_from);
        self.sign_jwt(&claims)
    }

    fn sign_jwt(&self, claims: &Value) -> Result<String, String> {
        let header = json!({ "alg": "ES256", "typ": "JWT", "jwk": self.jwk });
        let encode = |v: &Value| {
            serde_json::to_vec(v)
                .map(|b| B64.encode(b))
                .map_err(|e| e.to_string())
        };
        let input = format!("{}.{}", encode(&header)?, encode(claims)?);
        let signature = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| "signing failed".to_owned())?;
        Ok(format!("{input}.{}", B64.encode(signature.as_ref())))
    }
}
