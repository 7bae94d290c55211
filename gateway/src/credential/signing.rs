//! Compact JWS (RFC 7515) signatures made with the gateway's key, for
//! anything the gateway attests: consent receipts, audit checkpoints.
//!
//! The algorithm is ES256 (ECDSA P-256 with SHA-256, in the fixed-size
//! `r||s` form JWS uses), made with the gateway's server key. The protected
//! header is `{"alg":"ES256","typ":<what is signed>,"x5t#S256":<SHA-256
//! thumbprint of the gateway certificate>}`; the payload is JSON.
//! Verification checks the algorithm and type, that the thumbprint names
//! the given certificate, and the signature against that certificate's
//! public key; any changed byte of header, payload or signature fails.
//!
//! Credentials meant for verifiers outside samverka (the competence
//! passport) are signed as Open Badges 3.0 / CLR 2.0 VC-JWTs instead
//! ([`JwsSigner::sign_jwt`], [`verify_jwt`]): those rules allow only
//! `alg`, `typ` ("JWT"), `kid` and `jwk` in the header, so the key travels
//! as a `jwk` and the verifier matches it to the certificate it trusts.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// The public half of a P-256 key as a JSON Web Key (RFC 7517/7518).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
}

impl Jwk {
    /// The JWK of an uncompressed P-256 point (`04 || x || y`).
    fn from_point(point: &[u8]) -> Result<Self, SignatureError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(err("not an uncompressed P-256 public key"));
        }
        Ok(Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: B64.encode(&point[1..33]),
            y: B64.encode(&point[33..]),
        })
    }

    /// The JWK of a certificate's public key.
    pub fn of_cert(cert_pem: &str) -> Result<Self, SignatureError> {
        let cert = cert_der(cert_pem)?;
        let (_, parsed) =
            X509Certificate::from_der(&cert).map_err(|e| err(format!("certificate: {e}")))?;
        Jwk::from_point(parsed.public_key().subject_public_key.data.as_ref())
    }
}

/// Why a signature does not verify, or a signer cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureError(pub String);

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignatureError {}

fn err(m: impl Into<String>) -> SignatureError {
    SignatureError(m.into())
}

fn thumbprint(cert_der: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        cert_der,
    ))
}

/// The DER of a PEM certificate.
pub(crate) fn cert_der(cert_pem: &str) -> Result<CertificateDer<'static>, SignatureError> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| err(format!("certificate: {e}")))
}

/// Signs with the gateway's key.
pub struct JwsSigner {
    key: EcdsaKeyPair,
    jwk: Jwk,
    x5t_s256: String,
    cert_pem: String,
    issuer: String,
    /// Its certificate's notBefore (Unix ms).
    not_before_ms: i64,
    rng: SystemRandom,
}

impl std::fmt::Debug for JwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwsSigner")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl JwsSigner {
    /// A signer from the gateway's certificate and its PKCS#8 P-256 key;
    /// `issuer` is the operator's organisation number, named in what it
    /// signs.
    pub fn from_pem(cert_pem: &str, key_pem: &str, issuer: &str) -> Result<Self, SignatureError> {
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
        Ok(JwsSigner {
            jwk: Jwk::from_point(key.public_key().as_ref())?,
            key,
            x5t_s256: thumbprint(&cert),
            cert_pem: cert_pem.to_owned(),
            issuer: issuer.to_owned(),
            not_before_ms: parsed
                .validity()
                .not_before
                .timestamp()
                .saturating_mul(1000),
            rng: SystemRandom::new(),
        })
    }

    /// The key's id: the `x5t#S256` thumbprint of its certificate.
    pub fn kid(&self) -> &str {
        &self.x5t_s256
    }

    /// The certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// From when the key may have signed (Unix ms): its certificate's
    /// notBefore, the time the key set publishes as its `nbf`.
    pub fn in_use_from_ms(&self) -> i64 {
        self.not_before_ms
    }

    /// The issuer (the operator's organisation number).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The compact JWS of `claims`, with JWS type `typ`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, SignatureError> {
        let header = Header {
            alg: "ES256".into(),
            typ: typ.into(),
            x5t_s256: self.x5t_s256.clone(),
        };
        self.sign_with_header(&header, claims)
    }

    /// `claims` as a VC-JWT in the Open Badges 3.0 / CLR 2.0 form: header
    /// `{"alg":"ES256","typ":"JWT","jwk":<the public key>}`.
    pub fn sign_jwt(&self, claims: &impl Serialize) -> Result<String, SignatureError> {
        let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "jwk": self.jwk });
        self.sign_with_header(&header, claims)
    }

    fn sign_with_header(
        &self,
        header: &impl Serialize,
        claims: &impl Serialize,
    ) -> Result<String, SignatureError> {
        let header = serde_json::to_vec(header).map_err(|e| err(e.to_string()))?;
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

/// The gateway's signer in use, replaced when its certificate and key are
/// reloaded (see [`crate::net::tls`]): what is signed after a rotation verifies
/// against the new certificate. Every signer put in use waits in a queue
/// until the key set's recorder ([`crate::credential::keys`]) takes it.
#[derive(Debug)]
pub struct SignerSlot {
    current: std::sync::RwLock<std::sync::Arc<JwsSigner>>,
    put_in_use: std::sync::Mutex<Vec<std::sync::Arc<JwsSigner>>>,
    changed: tokio::sync::Notify,
    /// The keys operators have retired, as the recorder last read them.
    retired: std::sync::RwLock<Vec<String>>,
}

impl SignerSlot {
    /// A slot holding `signer` (recorded in the key set at start, not
    /// queued).
    pub fn new(signer: JwsSigner) -> Self {
        SignerSlot {
            current: std::sync::RwLock::new(std::sync::Arc::new(signer)),
            put_in_use: std::sync::Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
            retired: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// The keys (kids) operators have retired, as read from the store.
    pub fn set_retired(&self, kids: Vec<String>) {
        match self.retired.write() {
            Ok(mut r) => *r = kids,
            Err(p) => *p.into_inner() = kids,
        }
    }

    /// The signers put in use since the last call (not the first one).
    pub fn take_put_in_use(&self) -> Vec<std::sync::Arc<JwsSigner>> {
        match self.put_in_use.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    /// Completes when a signer is put in use (or was since the last wait).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The signer to use now.
    pub fn current(&self) -> std::sync::Arc<JwsSigner> {
        self.current
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Puts `signer` in use. A key an operator has retired is refused: what
    /// it signed would not verify.
    pub fn replace(&self, signer: JwsSigner) -> Result<(), SignatureError> {
        let retired = self
            .retired
            .read()
            .map(|r| r.contains(&signer.x5t_s256))
            .unwrap_or(false);
        if retired {
            return Err(err(format!(
                "the signing key {} was retired (samverka keys retire); put a new certificate and key in use",
                signer.x5t_s256
            )));
        }
        let signer = std::sync::Arc::new(signer);
        match self.put_in_use.lock() {
            Ok(mut q) => q.push(signer.clone()),
            Err(p) => p.into_inner().push(signer.clone()),
        }
        match self.current.write() {
            Ok(mut s) => *s = signer,
            Err(p) => *p.into_inner() = signer,
        }
        self.changed.notify_one();
        Ok(())
    }
}

/// The thumbprint (`x5t#S256`) of the certificate `jws` names as its
/// signer, whether or not the signature then holds; `None` for what is
/// not a samverka JWS. A verifier uses it to tell "signed with a
/// certificate I was not given" (nothing can be said) from "does not
/// verify" (altered).
pub fn named_signer(jws: &str) -> Option<String> {
    let header = jws.trim().split('.').next()?;
    let header: Header = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
    Some(header.x5t_s256)
}

/// The public key in the header of a VC-JWT (its `jwk`), whether or not
/// the signature then holds.
pub fn header_jwk(jws: &str) -> Option<Jwk> {
    let header = jws.trim().split('.').next()?;
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
    serde_json::from_value(header.get("jwk")?.clone()).ok()
}

/// The payload of a compact JWS, not verified: only for one verified
/// before (e.g. a source attestation the gateway checked as it arrived).
pub fn payload(jws: &str) -> Result<serde_json::Value, SignatureError> {
    let parts = split(jws)?;
    serde_json::from_slice(&parts.payload).map_err(|e| err(format!("payload: {e}")))
}

/// The identity of a samverka gateway's certificate: what signs receipts,
/// checkpoints and passports must be one (by its role).
pub fn gateway_identity(cert_pem: &str) -> Result<samverka_certs::CertIdentity, SignatureError> {
    let identity = samverka_certs::CertIdentity::from_pem(cert_pem)
        .map_err(|e| err(format!("certificate: {e}")))?;
    if identity.role != samverka_certs::Role::Gateway {
        return Err(err(format!(
            "the certificate is a {:?}'s, not a samverka gateway's",
            identity.role
        )));
    }
    Ok(identity)
}

/// The thumbprint (`x5t#S256`) by which a JWS names this certificate.
pub fn cert_thumbprint(cert_pem: &str) -> Result<String, SignatureError> {
    Ok(thumbprint(&cert_der(cert_pem)?))
}

/// A compact JWS taken apart: decoded header, payload and signature, and
/// the signing input.
struct Parts<'a> {
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
    input: &'a str,
}

/// Splits a compact JWS into its [`Parts`].
fn split(jws: &str) -> Result<Parts<'_>, SignatureError> {
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
    let input = &jws[..h.len() + 1 + p.len()];
    Ok(Parts {
        header: decode(h, "header")?,
        payload: decode(p, "payload")?,
        signature: decode(s, "signature")?,
        input,
    })
}

/// Verifies a VC-JWT made by [`JwsSigner::sign_jwt`] against the gateway's
/// certificate and returns its payload: the header holds only the fields
/// the Open Badges 3.0 rules allow, its algorithm is ES256, its `jwk` is
/// the certificate's key, and the signature holds under that key.
pub fn verify_jwt(jws: &str, gateway_cert_pem: &str) -> Result<serde_json::Value, SignatureError> {
    let Parts {
        header,
        payload,
        signature,
        input,
    } = split(jws)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| err(format!("header: {e}")))?;
    if let Some(extra) = header
        .keys()
        .find(|k| !["alg", "typ", "kid", "jwk"].contains(&k.as_str()))
    {
        return Err(err(format!(
            "header field {extra:?} is not allowed in a VC-JWT"
        )));
    }
    if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
        return Err(err(format!(
            "unsupported algorithm {:?}",
            header.get("alg")
        )));
    }
    if header.get("typ").is_some_and(|t| t != "JWT") {
        return Err(err(format!(
            "typ must be \"JWT\", found {:?}",
            header["typ"]
        )));
    }
    let jwk: Jwk = header
        .get("jwk")
        .cloned()
        .ok_or_else(|| err("the header has no jwk"))
        .and_then(|j| serde_json::from_value(j).map_err(|e| err(format!("jwk: {e}"))))?;
    if jwk != Jwk::of_cert(gateway_cert_pem)? {
        return Err(err("signed with another key than the certificate's"));
    }
    let cert = cert_der(gateway_cert_pem)?;
    let (_, parsed) =
        X509Certificate::from_der(&cert).map_err(|e| err(format!("certificate: {e}")))?;
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        parsed.public_key().subject_public_key.data.to_vec(),
    )
    .verify(input.as_bytes(), &signature)
    .map_err(|_| err("signature does not verify"))?;
    serde_json::from_slice(&payload).map_err(|e| err(format!("payload: {e}")))
}

/// Verifies a compact JWS of type `typ` against the gateway's certificate
/// and returns its payload.
pub fn verify<T: DeserializeOwned>(
    jws: &str,
    typ: &str,
    gateway_cert_pem: &str,
) -> Result<T, SignatureError> {
    let Parts {
        header,
        payload,
        signature,
        input,
    } = split(jws)?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| err(format!("header: {e}")))?;
    if header.alg != "ES256" {
        return Err(err(format!("unsupported algorithm {:?}", header.alg)));
    }
    if header.typ != typ {
        return Err(err(format!("expected a {typ}, found typ {:?}", header.typ)));
    }
    let cert = cert_der(gateway_cert_pem)?;
    if header.x5t_s256 != thumbprint(&cert) {
        return Err(err("signed with another certificate"));
    }
    let (_, parsed) =
        X509Certificate::from_der(&cert).map_err(|e| err(format!("certificate: {e}")))?;
    let public_key = parsed.public_key().subject_public_key.data.to_vec();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(input.as_bytes(), &signature)
        .map_err(|_| err("signature does not verify"))?;
    serde_json::from_slice(&payload).map_err(|e| err(format!("payload: {e}")))
}
