//! Public keys that verify person assertions (a registrar's) and ID tokens
//! (an identity provider's), read from a PEM file (public keys or
//! certificates, any number) or a JWKS file (an identity provider's
//! `jwks_uri` document), and read again when the file changes, so that
//! keys rotate without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

/// One verification key and the algorithms it may be used with.
#[derive(Clone)]
pub struct VerifyKey {
    /// The JWK `kid`, if the file gave one.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// The JWS algorithms it verifies (never `none`, never HMAC).
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const RSA: &str = "1.2.840.113549.1.1.1";
const ED25519: &str = "1.3.101.112";
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// A key from a DER SubjectPublicKeyInfo.
fn from_spki(der: &[u8]) -> Result<VerifyKey, String> {
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|e| format!("not a public key: {e}"))?;
    let raw = spki.subject_public_key.data.as_ref();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let (key, algorithms) = match spki.algorithm.algorithm.to_id_string().as_str() {
        EC_PUBLIC_KEY if curve.as_deref() == Some(P256) => {
            (DecodingKey::from_ec_der(raw), vec![Algorithm::ES256])
        }
        EC_PUBLIC_KEY if curve.as_deref() == Some(P384) => {
            (DecodingKey::from_ec_der(raw), vec![Algorithm::ES384])
        }
        RSA => (DecodingKey::from_rsa_der(raw), RSA_ALGORITHMS.to_vec()),
        ED25519 => (DecodingKey::from_ed_der(raw), vec![Algorithm::EdDSA]),
        other => return Err(format!("unsupported public key algorithm {other}")),
    };
    Ok(VerifyKey {
        kid: None,
        key,
        algorithms,
    })
}

/// Every key in a PEM file: `PUBLIC KEY` and `CERTIFICATE` blocks.
fn from_pem(bytes: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let mut keys = Vec::new();
    for spki in SubjectPublicKeyInfoDer::pem_slice_iter(bytes) {
        let spki = spki.map_err(|e| format!("bad PEM: {e}"))?;
        keys.push(from_spki(spki.as_ref())?);
    }
    for cert in CertificateDer::pem_slice_iter(bytes) {
        let cert = cert.map_err(|e| format!("bad PEM: {e}"))?;
        let (_, parsed) =
            X509Certificate::from_der(&cert).map_err(|e| format!("bad certificate: {e}"))?;
        keys.push(from_spki(parsed.tbs_certificate.subject_pki.raw)?);
    }
    Ok(keys)
}

/// Every signing key in a JWKS document (keys marked for encryption and
/// symmetric keys are left out: a public file must not hold a secret).
fn from_jwks(bytes: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("bad JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let mut algorithms = match key.family() {
            jsonwebtoken::AlgorithmFamily::Ec => vec![Algorithm::ES256, Algorithm::ES384],
            jsonwebtoken::AlgorithmFamily::Rsa => RSA_ALGORITHMS.to_vec(),
            jsonwebtoken::AlgorithmFamily::Ed => vec![Algorithm::EdDSA],
            _ => continue,
        };
        if let Some(alg) = jwk
            .common
            .key_algorithm
            .and_then(|a| Algorithm::try_from(a).ok())
        {
            algorithms.retain(|a| *a == alg);
        }
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        });
    }
    Ok(keys)
}

/// The keys of a PEM or JWKS file (JWKS if it starts with `{`); at least
/// one.
pub fn parse_keys(bytes: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let keys = if bytes.trim_ascii_start().starts_with(b"{") {
        from_jwks(bytes)?
    } else {
        from_pem(bytes)?
    };
    if keys.is_empty() {
        return Err("holds no usable signing key".into());
    }
    Ok(keys)
}

/// How often a key file is looked at for changes, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
    keys: Arc<Vec<VerifyKey>>,
}

/// A key file, read again when its modification time or size changes. A
/// change that cannot be read keeps the keys last read (and is logged): a
/// half-written file must not lock every person out.
pub struct KeyFile {
    /// `None` for keys written in the registry: nothing to read again.
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read(path: &Path) -> Result<Vec<VerifyKey>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_keys(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

impl KeyFile {
    /// Reads the file, or the keys written in the registry; either must
    /// hold at least one key.
    pub fn from_source(source: &crate::config::KeySource) -> Result<KeyFile, String> {
        match source {
            crate::config::KeySource::File(path) => KeyFile::open(path),
            crate::config::KeySource::Inline(text) => Ok(KeyFile {
                path: None,
                loaded: Mutex::new(Loaded {
                    stamp: None,
                    checked: Instant::now(),
                    keys: Arc::new(parse_keys(text.as_bytes())?),
                }),
            }),
        }
    }

    /// Reads the file; it must hold at least one key.
    pub fn open(path: &Path) -> Result<KeyFile, String> {
        let stamp = stamp(path);
        let keys = read(path)?;
        Ok(KeyFile {
            path: Some(path.to_owned()),
            loaded: Mutex::new(Loaded {
                stamp,
                checked: Instant::now(),
                keys: Arc::new(keys),
            }),
        })
    }

    /// The current keys, read again first if the file changed.
    pub fn keys(&self) -> Arc<Vec<VerifyKey>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.path else {
            return loaded.keys.clone();
        };
        if loaded.checked.elapsed() >= CHECK_EVERY {
            loaded.checked = Instant::now();
            let now = stamp(path);
            if now != loaded.stamp {
                match read(path) {
                    Ok(keys) => {
                        tracing::info!(path = %path.display(), keys = keys.len(), "key file read again");
                        loaded.keys = Arc::new(keys);
                        loaded.stamp = now;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "key file changed but cannot be read; keeping the keys read before");
                    }
                }
            }
        }
        loaded.keys.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_public_keys_and_jwks_are_read() {
        let (_, public) = samverka_certs::dev::signing_key().unwrap();
        let keys = parse_keys(public.as_bytes()).unwrap();
        assert_eq!(keys[0].algorithms, [Algorithm::ES256]);
        let two = format!("{public}{public}");
        assert_eq!(parse_keys(two.as_bytes()).unwrap().len(), 2);
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"oct","k":"c2VjcmV0"}]}"#;
        let keys = parse_keys(jwks.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "the symmetric key is left out");
        assert_eq!(keys[0].kid.as_deref(), Some("k1"));
        assert!(parse_keys(b"").is_err());
        assert!(parse_keys(br#"{"keys":[]}"#).is_err());
    }
}
