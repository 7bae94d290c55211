//! Checking a source attestation ([`super::Attester`]): who made it (the
//! certificate), that it is signed, that it says what the record says, and
//! the certificate's path to the federation CA. The gateway checks each
//! attestation as it arrives with these, and so does the conformance kit.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use samverka_certs::{CertIdentity, OrgNumber, Role};
use samverka_proto::records::v1::Record;
use serde_json::Value;

use super::{agency_urn, attestation_claims, identity_hash, record_digest};

/// The attester's identity from its certificate (DER): role `attester`,
/// and document signing its one extended key usage.
pub fn attester_of(cert_der: &[u8]) -> Result<OrgNumber, String> {
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
    let provider = crate::crypto_provider();
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

/// The payload of a VC-JWT made with the key of the certificate
/// `cert_der`: the header has only the fields Open Badges 3.0 allows
/// (`alg`, `typ`, `kid`, `jwk`), `alg` is ES256, `typ` (if any) is `JWT`,
/// `jwk` is the certificate's key, and the signature holds under it.
pub fn verify_signed(jws: &str, cert_der: &[u8]) -> Result<Value, String> {
    let mut parts = jws.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let decode = |part: &str| B64.decode(part).map_err(|_| "not base64url".to_owned());
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&decode(h)?).map_err(|e| format!("header: {e}"))?;
    if let Some(extra) = header
        .keys()
        .find(|k| !["alg", "typ", "kid", "jwk"].contains(&k.as_str()))
    {
        return Err(format!("header field {extra:?} is not allowed in a VC-JWT"));
    }
    if header.get("alg").and_then(Value::as_str) != Some("ES256")
        || header.get("typ").is_some_and(|t| t != "JWT")
    {
        return Err("the header is not ES256 / JWT".into());
    }
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("attestation certificate: {e}"))?;
    let point = cert.public_key().subject_public_key.data.as_ref();
    let jwk = &header.get("jwk").cloned().unwrap_or_default();
    let coordinate = |name: &str| jwk[name].as_str().and_then(|c| B64.decode(c).ok());
    let same_key = point.len() == 65
        && jwk["kty"] == "EC"
        && jwk["crv"] == "P-256"
        && coordinate("x").as_deref() == Some(&point[1..33])
        && coordinate("y").as_deref() == Some(&point[33..]);
    if !same_key {
        return Err("signed with another key than the certificate's".into());
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{h}.{p}").as_bytes(), &decode(s)?)
        .map_err(|_| "signature does not verify".to_owned())?;
    serde_json::from_slice(&decode(p)?).map_err(|e| format!("payload: {e}"))
}

/// Checks the attestation `jws` of `record`, made with the certificate
/// `cert_der`, for the holder `holder_id` with the salt `holder_salt`:
/// an attester's certificate of the agency the record names, the
/// signature, the record's digest, the holder, and that it says, field for
/// field, what the record says ([`attestation_claims`], under the name the
/// source gives itself). Returns its claims. Not checked here: the
/// certificate's path ([`check_chain`]) and when it was made.
pub fn verify_attestation(
    jws: &str,
    cert_der: &[u8],
    record: &Record,
    holder_id: &str,
    holder_salt: &str,
) -> Result<Value, String> {
    let agency = attester_of(cert_der)?;
    if record.source_agency != agency.as_str() {
        return Err(format!(
            "the record names agency {:?}, the attestation certificate {agency}",
            record.source_agency
        ));
    }
    let claims = verify_signed(jws, cert_der)?;
    if claims["iss"] != agency_urn(agency.as_str()) || claims["issuer"]["id"] != claims["iss"] {
        return Err("the attestation is not issued by the source agency".into());
    }
    if claims["recordDigest"] != record_digest(record, holder_salt).as_str() {
        return Err("the attestation is not of this record (recordDigest)".into());
    }
    let subject = &claims["credentialSubject"];
    if subject["id"] != holder_id
        || claims["sub"] != holder_id
        || subject["identifier"][0]["identityHash"]
            != identity_hash(&record.subject_id, holder_salt).as_str()
    {
        return Err("the attestation is about another holder".into());
    }
    let name = claims["issuer"]["name"]
        .as_str()
        .filter(|n| !n.trim().is_empty() && n.chars().count() <= 200)
        .ok_or("the attestation's issuer has no name (or one over 200 characters)")?;
    let valid_from = claims["validFrom"].as_str().unwrap_or_default();
    let mut expected = attestation_claims(record, name, holder_id, holder_salt, valid_from);
    // An adapter built before merits said their kind signs no `meritKind`;
    // the kind follows from the record type either way.
    if claims.get("meritKind").is_none()
        && let Some(e) = expected.as_object_mut()
    {
        e.remove("meritKind");
    }
    if claims != expected {
        return Err("the attestation does not say what the record says".into());
    }
    Ok(claims)
}
