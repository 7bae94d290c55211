//! The gateway's signing keys as a key set that verifiers keep: every key
//! the gateway has signed with, kept after rotation, with the period in
//! which what it signed is valid. `passport verify` and `consent
//! verify-receipt` check an old document against the set, so a verifier
//! needs neither the certificate that was in use then nor the gateway.
//!
//! The set is a JSON Web Key Set (RFC 7517). Each key carries, besides its
//! public key, `kid` and `x5t#S256` (the thumbprint of its certificate,
//! which receipts name), `x5c` (the certificate), and its validity as the
//! OpenID Federation historical key set spells it: `iat` and `nbf` (its
//! certificate's notBefore), `exp` (retired: nothing signed at or after it is valid),
//! and `revoked` (`{"revoked_at", "reason": "keyCompromise"}`: nothing it
//! ever signed is to be trusted, since anyone may have signed it).
//!
//! The set is trusted as a whole, as a certificate would be: a verifier
//! takes it from the operator (`samverka keys export`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use x509_parser::prelude::FromDer;

use super::signing::{Jwk, SignatureError, cert_thumbprint};
use crate::store::keys::SigningKeyRecord;

/// One key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// The `x5t#S256` thumbprint of its certificate.
    pub kid: String,
    /// Its certificate (PEM).
    pub cert_pem: String,
    /// Its public key.
    pub jwk: Jwk,
    /// In use from (Unix seconds).
    pub nbf: i64,
    /// Retired at (Unix seconds), if it is.
    pub exp: Option<i64>,
    /// When it was revoked as compromised (Unix seconds), if it was.
    pub revoked_at: Option<i64>,
}

impl PublishedKey {
    /// Whether a document this key signed at `t` (Unix seconds) is valid:
    /// the key was in use then, not yet retired, and never compromised.
    pub fn valid_at(&self, t: i64) -> Result<(), String> {
        if let Some(at) = self.revoked_at {
            return Err(format!(
                "the key was revoked as compromised at {}: nothing it signed is valid",
                when(at)
            ));
        }
        if t < self.nbf {
            return Err(format!(
                "issued at {}, before the key was in use (from {})",
                when(t),
                when(self.nbf)
            ));
        }
        match self.exp {
            Some(exp) if t >= exp => Err(format!(
                "issued at {}, after the key was retired ({})",
                when(t),
                when(exp)
            )),
            _ => Ok(()),
        }
    }

    /// The key from its store record.
    pub fn from_record(r: &SigningKeyRecord) -> Result<Self, SignatureError> {
        let compromised = r.retire_reason.as_deref() == Some("compromised");
        Ok(PublishedKey {
            kid: r.kid.clone(),
            jwk: Jwk::of_cert(&r.cert_pem)?,
            cert_pem: r.cert_pem.clone(),
            nbf: r.in_use_from_ms.div_euclid(1000),
            // The first whole second after retirement: a document dated
            // the second of the retirement (times are in seconds) may have
            // been signed before it.
            exp: r.retired_at_ms.map(|ms| ms.div_euclid(1000) + 1),
            revoked_at: r
                .retired_at_ms
                .filter(|_| compromised)
                .map(|ms| ms.div_euclid(1000)),
        })
    }

    /// As a JWK of the set.
    fn to_json(&self) -> Value {
        let mut key = serde_json::to_value(&self.jwk).unwrap_or_default();
        let der = super::signing::cert_der(&self.cert_pem)
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let more = json!({
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
            "x5c": [STANDARD.encode(der)],
            "x5t#S256": self.kid,
            "iat": self.nbf,
            "nbf": self.nbf,
        });
        if let (Some(map), Value::Object(more)) = (key.as_object_mut(), more) {
            map.extend(more);
            if let Some(exp) = self.exp {
                map.insert("exp".into(), json!(exp));
            }
            if let Some(at) = self.revoked_at {
                map.insert(
                    "revoked".into(),
                    json!({ "revoked_at": at, "reason": "keyCompromise" }),
                );
            }
        }
        key
    }

    /// A JWK of a set, checked: its certificate holds its public key and
    /// has its thumbprint.
    fn from_json(key: &Value) -> Result<Self, SignatureError> {
        let err = |m: String| SignatureError(format!("key set: {m}"));
        let kid = key["kid"].as_str().unwrap_or_default();
        let cert = key["x5c"][0]
            .as_str()
            .and_then(|c| STANDARD.decode(c).ok())
            .ok_or_else(|| err(format!("key {kid:?} has no certificate (x5c)")))?;
        let cert_pem = der_pem(&cert);
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": key["kty"], "crv": key["crv"], "x": key["x"], "y": key["y"],
        }))
        .map_err(|e| err(format!("key {kid:?}: {e}")))?;
        if jwk != Jwk::of_cert(&cert_pem)? {
            return Err(err(format!("key {kid:?} is not its certificate's key")));
        }
        if kid != cert_thumbprint(&cert_pem)? || key["x5t#S256"] != kid {
            return Err(err(format!(
                "key {kid:?}: kid and x5t#S256 must be its certificate's thumbprint"
            )));
        }
        let nbf = key["nbf"]
            .as_i64()
            .ok_or_else(|| err(format!("key {kid:?} has no nbf (in use from)")))?;
        let revoked_at =
            match &key["revoked"] {
                Value::Null => None,
                r => Some(r["revoked_at"].as_i64().ok_or_else(|| {
                    err(format!("key {kid:?}: revoked without a revoked_at time"))
                })?),
            };
        let exp = match &key["exp"] {
            Value::Null => None,
            e => Some(
                e.as_i64()
                    .ok_or_else(|| err(format!("key {kid:?}: exp is not a whole number")))?,
            ),
        };
        Ok(PublishedKey {
            kid: kid.to_owned(),
            cert_pem,
            jwk,
            nbf,
            exp,
            revoked_at,
        })
    }
}

/// A time in Unix seconds for people: RFC 3339 within years 0 to 9999,
/// else the number (a forged document may name any).
fn when(s: i64) -> String {
    if (0..=253_402_300_799).contains(&s) {
        crate::time::rfc3339(s * 1000)
    } else {
        format!("{s} (Unix seconds)")
    }
}

/// A certificate in PEM.
fn der_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
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

/// The gateway's signing keys, old and current.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    /// The keys, oldest first.
    pub keys: Vec<PublishedKey>,
}

impl KeySet {
    /// The set of the store's records.
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<Self, SignatureError> {
        Ok(KeySet {
            keys: records
                .iter()
                .map(PublishedKey::from_record)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The set as a JWKS document.
    pub fn to_json(&self) -> Value {
        json!({ "keys": self.keys.iter().map(PublishedKey::to_json).collect::<Vec<_>>() })
    }

    /// A JWKS document read back; every key is checked against its
    /// certificate.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| SignatureError(format!("key set: not JSON: {e}")))?;
        let keys = doc["keys"]
            .as_array()
            .ok_or_else(|| SignatureError("key set: no \"keys\" array".into()))?;
        let keys: Vec<PublishedKey> = keys
            .iter()
            .map(PublishedKey::from_json)
            .collect::<Result<_, _>>()?;
        let mut kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        kids.sort_unstable();
        if let Some(w) = kids.windows(2).find(|w| w[0] == w[1]) {
            return Err(SignatureError(format!("key set: key {:?} twice", w[0])));
        }
        Ok(KeySet { keys })
    }

    /// The certificates of keys never revoked as compromised (under any
    /// certificate that holds them): those that may vouch for something.
    pub fn trusted_certs(&self) -> Vec<String> {
        let leaked: Vec<&Jwk> = self
            .keys
            .iter()
            .filter(|k| k.revoked_at.is_some())
            .map(|k| &k.jwk)
            .collect();
        self.keys
            .iter()
            .filter(|k| !leaked.contains(&&k.jwk))
            .map(|k| k.cert_pem.clone())
            .collect()
    }

    /// Every certificate of the set is a samverka gateway's and was issued
    /// by a CA of `ca_pem` (the federation's): a key set from elsewhere
    /// than the operator is trusted only as far as that.
    pub fn check_issued_by(&self, ca_pem: &str) -> Result<(), SignatureError> {
        for k in &self.keys {
            check_gateway_cert(&k.cert_pem, ca_pem)
                .map_err(|e| SignatureError(format!("key set: key {}: {}", k.kid, e.0)))?;
        }
        Ok(())
    }
}

/// `cert_pem` is a samverka gateway's certificate issued by a CA of
/// `ca_pem`, judged at its own notBefore so that a certificate that has
/// since expired still counts.
pub fn check_gateway_cert(cert_pem: &str, ca_pem: &str) -> Result<(), SignatureError> {
    super::signing::gateway_identity(cert_pem)?;
    let roots = samverka_adapter::root_store(ca_pem.as_bytes())
        .map_err(|e| SignatureError(format!("CA: {e}")))?;
    let provider = samverka_adapter::crypto_provider();
    let der = super::signing::cert_der(cert_pem)?;
    let issued = x509_parser::prelude::X509Certificate::from_der(&der)
        .map(|(_, c)| c.validity().not_before.timestamp().max(0) as u64)
        .unwrap_or(0);
    rustls::server::ParsedCertificate::try_from(&der)
        .and_then(|parsed| {
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &parsed,
                &roots,
                &[],
                rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    issued,
                )),
                provider.signature_verification_algorithms.all,
            )
        })
        .map_err(|e| {
            SignatureError(format!(
                "the certificate is not issued by the given CA ({e})"
            ))
        })
}

/// What a verifier trusts: the one certificate of the gateway (no key
/// validity can be checked), or the gateway's key set.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A gateway certificate (PEM).
    Cert(String),
    /// A key set.
    Keys(KeySet),
}

/// A certificate that may have signed a document, and the key of the set
/// it belongs to (none when trusting a single certificate).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The certificate (PEM).
    pub cert_pem: &'a str,
    /// Its key in the set.
    pub key: Option<&'a PublishedKey>,
}

impl Trust {
    /// The certificates a JWS naming the certificate thumbprint `kid` may
    /// have been signed with.
    pub fn by_kid(&self, kid: &str) -> Vec<Candidate<'_>> {
        self.matching(|k| k.kid == kid)
    }

    /// The certificates holding the public key `jwk` (a renewed
    /// certificate may keep its key).
    pub fn by_jwk(&self, jwk: &Jwk) -> Vec<Candidate<'_>> {
        self.matching(|k| &k.jwk == jwk)
    }

    /// The single certificate, or the set's keys that `signed` accepts.
    fn matching(&self, signed: impl Fn(&PublishedKey) -> bool) -> Vec<Candidate<'_>> {
        match self {
            Trust::Cert(pem) => vec![Candidate {
                cert_pem: pem,
                key: None,
            }],
            Trust::Keys(set) => set
                .keys
                .iter()
                .filter(|k| signed(k))
                .map(|k| Candidate {
                    cert_pem: &k.cert_pem,
                    key: Some(k),
                })
                .collect(),
        }
    }
}

/// Whether the key that signed was valid at `t`, judged by `candidates`:
/// every certificate of the set holding that key (a renewed certificate
/// may keep it). Revoked as compromised under any of them, it is invalid;
/// else one of them must have been in use at `t`. `None` when no key set
/// was given, so nothing could be checked.
pub fn valid_at(candidates: &[Candidate<'_>], t: i64) -> Option<Result<(), String>> {
    let keys: Vec<&PublishedKey> = candidates.iter().filter_map(|c| c.key).collect();
    if keys.is_empty() {
        return None;
    }
    if let Some(revoked) = keys.iter().find(|k| k.revoked_at.is_some()) {
        return Some(revoked.valid_at(t));
    }
    let mut first = None;
    for key in keys {
        match key.valid_at(t) {
            Ok(()) => return Some(Ok(())),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    first.map(Err)
}

/// Records a signer put in use in the store; returns the key as recorded
/// (retired or not).
async fn note(
    store: &crate::store::Store,
    signer: &super::signing::JwsSigner,
) -> Result<SigningKeyRecord, crate::store::StoreError> {
    store
        .note_signing_key(
            signer.kid().to_owned(),
            signer.cert_pem().to_owned(),
            signer.in_use_from_ms(),
            joined(signer),
        )
        .await
}

/// The audit entry of a signing key joining the key set (`keys/joined`):
/// the gateway itself put it in use, at start or on a reload; committed
/// only when the key is new to the set.
fn joined(signer: &super::signing::JwsSigner) -> crate::audit::chain::AuditEntry {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut e = crate::audit::entry("keys/joined", now);
    e.decision = crate::audit::Decision::Allowed.as_str().to_owned();
    e.details.insert("kid".into(), signer.kid().to_owned());
    e.details.insert(
        "in_use_from".into(),
        crate::time::rfc3339(signer.in_use_from_ms()),
    );
    e
}

/// Why a gateway does not start with its signing key.
#[derive(Debug)]
pub enum StartRefused {
    /// The store cannot record it.
    Store(crate::store::StoreError),
    /// An operator retired it.
    Retired(String),
}

/// At start: the signing key in `slot` joins the key set before anything
/// is signed (a key an operator retired is refused), and the recorder
/// ([`spawn_recorder`]) follows the slot from then on.
pub async fn record_at_start(
    store: &crate::store::Store,
    slot: &std::sync::Arc<super::signing::SignerSlot>,
) -> Result<(), StartRefused> {
    let key = note(store, &slot.current())
        .await
        .map_err(StartRefused::Store)?;
    if let Some(at) = key.retired_at_ms {
        return Err(StartRefused::Retired(format!(
            "this signing key was retired at {} (samverka keys retire); put a new certificate and key in use",
            crate::time::rfc3339(at)
        )));
    }
    spawn_recorder(store.clone(), slot);
    Ok(())
}

/// Keeps the store's record of signing keys up to date, until the slot
/// goes: records every signer a reload puts in use as soon as it is (a
/// failed write is tried again; the first signer is recorded at start),
/// and every 10 seconds reads which keys are retired, tells the slot (so
/// that a reload refuses them) and logs once when the key in use is one
/// (what it signs from then on does not verify against the key set).
fn spawn_recorder(store: crate::store::Store, slot: &std::sync::Arc<super::signing::SignerSlot>) {
    let slot = std::sync::Arc::downgrade(slot);
    tokio::spawn(async move {
        let mut waiting: Vec<std::sync::Arc<super::signing::JwsSigner>> = Vec::new();
        let mut warned: Vec<String> = Vec::new();
        loop {
            let Some(live) = slot.upgrade() else { return };
            waiting.extend(live.take_put_in_use());
            let mut failed = Vec::new();
            for signer in waiting.drain(..) {
                if let Err(e) = note(&store, &signer).await {
                    tracing::warn!(error = %e, kid = signer.kid(), "cannot record the signing key; will retry");
                    failed.push(signer);
                }
            }
            waiting = failed;
            // What is retired: a reload does not put it in use, and the key
            // in use being retired is said once.
            if let Ok(keys) = store.signing_keys().await {
                let retired: Vec<SigningKeyRecord> = keys
                    .into_iter()
                    .filter(|k| k.retired_at_ms.is_some())
                    .collect();
                let current = live.current();
                if let Some(key) = retired.iter().find(|k| k.kid == current.kid())
                    && !warned.contains(&key.kid)
                {
                    tracing::error!(
                        kid = key.kid,
                        retired_at = crate::time::rfc3339(key.retired_at_ms.unwrap_or(0)),
                        "the gateway signs with a retired key: receipts and passports it signs now do not verify against the key set; put a new certificate and key in use"
                    );
                    warned.push(key.kid.clone());
                }
                live.set_retired(retired.into_iter().map(|k| k.kid).collect());
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), live.changed()).await;
        }
    });
}

#[cfg(test)]
mod tests;
