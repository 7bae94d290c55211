//! The competence passport: one person's education, employment and
//! validated competences from every source, as a credential that Open
//! Badges 3.0 and CLR 2.0 verifiers accept, signed by the gateway.
//!
//! The gateway assembles a passport in
//! `RecordExchange.GetCompetencePassport` (see [`crate::service::passport`]);
//! this module turns the assembled `CompetencePassport` message into the
//! credential, signs it and verifies it offline (`samverka passport
//! verify` describes it for people).
//!
//! # The credential
//! A 1EdTech CLR 2.0 `ClrCredential` (W3C Verifiable Credentials data
//! model 2.0):
//! - `issuer`: the agency operating the gateway
//!   (`urn:samverka:agency:<org number>`, the identity in its certificate);
//! - `credentialSubject` (a `ClrSubject`): the person, and in
//!   `verifiableCredential` one Open Badges 3.0 `OpenBadgeCredential` per
//!   record (see [`merit`]); `sources` (every source asked and what it
//!   answered, so that a source that was down is visible in what is
//!   signed) and `omitted` (the record types left out and why) are
//!   samverka's own properties; `partial` is true when either is not
//!   clean;
//! - `evidence`: the consents that allowed the read.
//!
//! # The person
//! A verifier must be able to tell that a passport is about the person in
//! front of them, and no one else who sees the credential should learn
//! who that is. A personal identity number has about 10^7 plausible values
//! for a given birth year, so a hash of it, salted or not, is reversed in
//! seconds by anyone holding the credential and its salt. The subject is
//! therefore identified by an `IdentityObject` of type
//! `nationalIdentityNumber` whose `identityHash` is
//! `sha256$hex(SHA-256(number || salt))`, where the salt (128 random bits,
//! new for every passport) is *not* in the credential: the gateway returns
//! it beside the credential (`CompetencePassport.holder_salt`), and the
//! person gives it only to whom they show the passport, who checks it with
//! the number they know (`samverka passport verify --person --salt`).
//! Without the salt the credential reveals nothing of the number; an Open
//! Badges verifier that hashes the number unsalted finds no match, never a
//! false one. `credentialSubject.id` (the JWT's `sub`) is a random
//! `urn:uuid:` of that passport alone, so two passports cannot be linked
//! through it.
//!
//! # The proof
//! A VC-JWT as Open Badges 3.0 and CLR 2.0 define it: the payload is the
//! credential itself plus the claims `iss` (issuer id), `jti` (credential
//! id), `nbf` (`validFrom`) and `sub` (subject id); the header is
//! `{"alg":"ES256","typ":"JWT","jwk":<the gateway's public key>}`, no
//! other header field being allowed. [`verify`] checks the key against the
//! gateway's certificate, the claims against the credential, the contexts
//! against the bundled ones, and the credential and each merit against
//! 1EdTech's JSON Schemas (bundled in `gateway/standards/`).

pub mod standards;

use samverka_proto::v1::{CompetencePassport, source_outcome};
use serde_json::{Value, json};

pub use crate::credential::keys::Trust;
use crate::credential::signing::{JwsSigner, SignatureError};
use crate::time::{from_timestamp, rfc3339};

pub use samverka_adapter::credential::{
    Merit, OB_CONTEXT, VC_CONTEXT, agency_urn, identity_hash, merit, with_claims,
};
use samverka_adapter::credential::{hex, identity_object};

use crate::credential::attestation;

/// The CLR 2.0 context.
pub const CLR_CONTEXT: &str = "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json";

/// The credential's own type, beside `VerifiableCredential`.
pub const PASSPORT_TYPE: &str = "ClrCredential";

/// The kinds of record a passport holds, in the order it lists them: the
/// first dotted part of a record type.
pub const KINDS: [&str; 3] = ["education", "employment", "competence"];

/// The kind of a record type (`education.degree` → `education`).
pub fn kind_of(record_type: &str) -> &str {
    record_type.split('.').next().unwrap_or(record_type)
}

/// Whether a record type belongs in a passport.
pub fn is_passport_type(record_type: &str) -> bool {
    KINDS.contains(&kind_of(record_type))
}

fn ms(ts: &Option<prost_types::Timestamp>) -> String {
    ts.as_ref()
        .and_then(from_timestamp)
        .map(rfc3339)
        .unwrap_or_default()
}

/// A new holder salt: 128 random bits, as 32 hexadecimal digits.
pub fn new_holder_salt() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random generator");
    hex(&bytes)
}

/// A new holder id: a random `urn:uuid:` of one passport.
pub fn new_holder_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// The credential for an assembled passport (its `credential` field is not
/// read; `holder_salt` must be set). `issuer_name` is the operator's name
/// as configured; `holder_id` the random subject id of this passport.
pub fn credential(passport: &CompetencePassport, issuer_name: &str, holder_id: &str) -> Value {
    let issuer = json!({
        "id": agency_urn(&passport.issuer_agency),
        "type": ["Profile"],
        "name": issuer_name,
    });
    let identity = identity_object(&passport.subject_id, &passport.holder_salt);
    let valid_from = ms(&passport.issued_at);
    let holder = merit::Holder {
        identity: &identity,
        subject_id: holder_id,
        issuer: &issuer,
        valid_from: &valid_from,
    };
    let merits: Vec<Value> = passport
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|entry| {
            let record = entry.record.as_ref()?;
            // A record its source attested is shown as the source signed
            // it (the gateway checked that credential as it arrived).
            if !entry.attestation.is_empty()
                && let Ok(claims) = crate::credential::signing::payload(&entry.attestation)
            {
                return Some(attestation::embed(
                    claims,
                    &entry.attestation,
                    &entry.attestation_certificate,
                ));
            }
            Some(merit::open_badge(
                record,
                &entry.source_name,
                &ms(&entry.retrieved_at),
                &holder,
            ))
        })
        .collect();
    let sources: Vec<Value> = passport
        .outcomes
        .iter()
        .map(|o| {
            let status = source_outcome::Status::try_from(o.status)
                .unwrap_or(source_outcome::Status::Unspecified);
            let mut s = json!({
                "agency": o.source_agency,
                "name": o.source_name,
                "status": status.as_str_name(),
                "recordCount": o.record_count,
            });
            if !o.message.is_empty() {
                s["message"] = json!(o.message);
            }
            s
        })
        .collect();
    let omitted: Vec<Value> = passport
        .record_types
        .iter()
        .filter(|d| !d.included)
        .map(|d| json!({ "recordType": d.record_type, "reason": d.reason, "message": d.message }))
        .collect();
    let partial = !omitted.is_empty()
        || passport
            .outcomes
            .iter()
            .any(|o| o.status != source_outcome::Status::Ok as i32);
    json!({
        "@context": [VC_CONTEXT, CLR_CONTEXT, OB_CONTEXT],
        "id": format!("urn:uuid:{}", passport.passport_id),
        "type": ["VerifiableCredential", PASSPORT_TYPE],
        "name": "Competence passport",
        "description": "Merits from the registers connected to samverka, read with the person's consent.",
        "issuer": issuer,
        "validFrom": valid_from,
        "partial": partial,
        "credentialSubject": {
            "id": holder_id,
            "type": ["ClrSubject"],
            "identifier": [identity],
            "verifiableCredential": merits,
            "sources": sources,
            "omitted": omitted,
        },
        "evidence": passport.consent_ids.iter().map(|id| json!({
            "id": format!("urn:samverka:consent:{id}"),
            "type": ["Evidence"],
            "name": "The person's consent to this read",
        })).collect::<Vec<_>>(),
    })
}

/// Signs the credential of `passport` with the gateway's key. A passport
/// without a single record has no credential (a CLR holds at least one),
/// and gets `None`. The credential names the revocation list at `status_list` (its URL)
/// as its status when there is one.
pub fn sign(
    signer: &JwsSigner,
    passport: &CompetencePassport,
    issuer_name: &str,
    status_list: Option<&str>,
) -> Result<Option<String>, SignatureError> {
    if passport.sections.iter().all(|s| s.entries.is_empty()) {
        return Ok(None);
    }
    let holder_id = if passport.holder_id.is_empty() {
        new_holder_id()
    } else {
        passport.holder_id.clone()
    };
    let mut credential = credential(passport, issuer_name, &holder_id);
    if let Some(url) = status_list {
        credential["credentialStatus"] = crate::credential::status::credential_status(url);
    }
    signer.sign_jwt(&with_claims(credential)).map(Some)
}

/// One check of a passport's verification, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `signature`, `key` (with a key set), `issuer`,
    /// `claims`, `contexts`, `schema`, `merits`, `holder`.
    pub name: &'static str,
    /// `None` when it holds, else why not.
    pub failure: Option<String>,
    /// What else a person should know about it (e.g. how many merits
    /// their sources attest).
    pub note: Option<String>,
}

/// What [`verify_report`] found: every check made, and the credential when
/// its signature held (whether or not the rest did).
#[derive(Debug, Clone)]
pub struct Report {
    /// The checks, in the order made.
    pub checks: Vec<Check>,
    /// The credential, without its JWT claims.
    pub credential: Option<Value>,
}

impl Report {
    /// The first failure, if any.
    pub fn failure(&self) -> Option<SignatureError> {
        self.checks
            .iter()
            .find_map(|c| c.failure.clone())
            .map(SignatureError)
    }
}

/// Who a verifier believes the passport is about: the person's number and
/// the salt they gave.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The personal identity or coordination number.
    pub subject_id: String,
    /// The holder salt the person gave.
    pub salt: String,
}

/// Verifies a passport credential against the gateway's certificate
/// (PEM), check by check; `holder` adds the check that it is about that
/// person.
pub fn verify_report(jws: &str, gateway_cert_pem: &str, holder: Option<&Holder>) -> Report {
    verify_report_with(jws, &Trust::Cert(gateway_cert_pem.to_owned()), holder)
}

/// Verifies a passport credential against what the verifier trusts, check
/// by check. With a key set there is one more check, `key`: the key that
/// signed was valid when the passport was issued (`nbf`).
pub fn verify_report_with(jws: &str, trust: &Trust, holder: Option<&Holder>) -> Report {
    verify_report_from(jws, trust, holder, None)
}

/// The federation CA a verifier trusts for the sources' attestation
/// certificates.
#[derive(Debug, Clone)]
pub struct Federation {
    roots: rustls::RootCertStore,
}

impl Federation {
    /// From the CA certificate(s), PEM.
    pub fn from_pem(ca_pem: &str) -> Result<Self, SignatureError> {
        samverka_adapter::root_store(ca_pem.as_bytes())
            .map(|roots| Federation { roots })
            .map_err(|e| SignatureError(format!("federation CA: {e}")))
    }

    /// Whether `merit` (of a passport issued at `passport_nbf`, Unix
    /// seconds) carries its source's attestation and that holds, under a
    /// certificate of this federation ([`attestation::check_embedded`]).
    pub fn attests(&self, merit: &Value, passport_nbf: i64) -> bool {
        merit.get(attestation::PROPERTY).is_some()
            && attestation::check_embedded(merit, Some(&self.roots), passport_nbf).is_ok()
    }
}

/// [`verify_report_with`], and with `federation` the check that each
/// source attestation's certificate was issued by the federation CA.
pub fn verify_report_from(
    jws: &str,
    trust: &Trust,
    holder: Option<&Holder>,
    federation: Option<&Federation>,
) -> Report {
    let mut checks = Vec::new();
    let mut check = |name: &'static str, result: Result<(), String>| {
        checks.push(Check {
            name,
            failure: result.err(),
            note: None,
        });
    };
    let jwk = crate::credential::signing::header_jwk(jws);
    let candidates = jwk
        .as_ref()
        .map(|jwk| trust.by_jwk(jwk))
        .unwrap_or_default();
    let Some(signer) = candidates.first() else {
        check(
            "signature",
            Err(match jwk {
                None => "the header has no jwk (the key that signed)".into(),
                Some(_) => "signed with a key that is not in the key set".into(),
            }),
        );
        return Report {
            checks,
            credential: None,
        };
    };
    let gateway_cert_pem = signer.cert_pem;
    let signed = crate::credential::signing::verify_jwt(jws, gateway_cert_pem);
    let claims = match signed {
        Ok(claims) => {
            check("signature", Ok(()));
            claims
        }
        Err(e) => {
            check("signature", Err(e.0));
            return Report {
                checks,
                credential: None,
            };
        }
    };
    if candidates.iter().any(|c| c.key.is_some()) {
        let valid = match claims["nbf"].as_i64() {
            Some(nbf) => crate::credential::keys::valid_at(&candidates, nbf).unwrap_or(Ok(())),
            None => Err("no nbf: when it was issued is not said".into()),
        };
        check("key", valid);
    }
    check("issuer", issuer_matches(&claims, gateway_cert_pem));
    check("claims", claims_match(&claims));
    check("contexts", standards::contexts_are_bundled(&claims));
    check("schema", standards::validate(&claims));
    check("merits", merits_match(&claims));
    let sources = sources_attest(&claims, federation.map(|f| &f.roots));
    let (attested, total) = (
        sources.as_ref().copied().unwrap_or(0),
        claims["credentialSubject"]["verifiableCredential"]
            .as_array()
            .map_or(0, Vec::len),
    );
    let sources_note = match federation {
        Some(_) => format!("{attested} of {total} merits attested by their source"),
        None => format!(
            "{attested} of {total} merits attested by their source; the attesters' \
             certificates were not checked against a federation CA"
        ),
    };
    check("sources", sources.map(|_| ()));
    if let Some(holder) = holder {
        let expected = identity_hash(&holder.subject_id, &holder.salt);
        let found = claims["credentialSubject"]["identifier"][0]["identityHash"]
            .as_str()
            .unwrap_or_default();
        check(
            "holder",
            if found == expected {
                Ok(())
            } else {
                Err("not about this person (or not this salt)".into())
            },
        );
    }
    if let Some(c) = checks.iter_mut().find(|c| c.name == "sources") {
        c.note = Some(sources_note);
    }
    let mut credential = claims;
    if let Some(map) = credential.as_object_mut() {
        for claim in ["iss", "jti", "nbf", "sub"] {
            map.remove(claim);
        }
    }
    Report {
        checks,
        credential: Some(credential),
    }
}

/// Verifies a passport credential against the gateway's certificate: every
/// check of [`verify_report`] must hold. Returns the credential.
pub fn verify(jws: &str, gateway_cert_pem: &str) -> Result<Value, SignatureError> {
    let report = verify_report(jws, gateway_cert_pem, None);
    match report.failure() {
        Some(e) => Err(e),
        None => report
            .credential
            .ok_or_else(|| SignatureError("no credential".into())),
    }
}

/// The certificate is a samverka gateway's, and the credential is issued
/// in the name of the agency it names.
fn issuer_matches(claims: &Value, gateway_cert_pem: &str) -> Result<(), String> {
    let identity =
        crate::credential::signing::gateway_identity(gateway_cert_pem).map_err(|e| e.0)?;
    let types = claims["type"].as_array().cloned().unwrap_or_default();
    if !types.iter().any(|t| t == "VerifiableCredential")
        || !types.iter().any(|t| t == PASSPORT_TYPE)
    {
        return Err("not a competence passport credential".into());
    }
    let issuer = claims["issuer"]["id"].as_str().unwrap_or_default();
    if issuer != agency_urn(identity.agency.as_str()) {
        return Err(format!(
            "issued in the name of {issuer:?}, but signed by the gateway of {}",
            identity.agency
        ));
    }
    Ok(())
}

/// The JWT claims say what the credential says (`iss`, `jti`, `nbf`,
/// `sub`).
fn claims_match(claims: &Value) -> Result<(), String> {
    let expected = with_claims(claims.clone());
    for claim in ["iss", "jti", "nbf", "sub"] {
        if claims.get(claim).is_none() || claims[claim].is_null() {
            return Err(format!("the JWT has no {claim:?} claim"));
        }
        if claims[claim] != expected[claim] {
            return Err(format!("the {claim:?} claim does not match the credential"));
        }
    }
    Ok(())
}

/// Every merit is about the passport's person, says the kind its record
/// type is, and is issued by the passport's issuer, or, for a merit
/// attested by its source, by that source (whose attestation
/// [`sources_attest`] checks), or, for a self-declared merit, by the
/// holder, and then never attested.
fn merits_match(claims: &Value) -> Result<(), String> {
    let subject = &claims["credentialSubject"];
    for (i, merit) in subject["verifiableCredential"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if merit["credentialSubject"]["identifier"] != subject["identifier"]
            || merit["credentialSubject"]["id"] != subject["id"]
        {
            return Err(format!("merit {i} is about another person"));
        }
        let attested = merit.get(attestation::PROPERTY).is_some();
        let source = merit["source"]["agency"].as_str().unwrap_or_default();
        let kind = merit::merit_kind(merit["recordType"].as_str().unwrap_or_default());
        // Passports (and adapters' attestations) from before merits said
        // their kind carry none; a self-declared merit always says so.
        let said = merit.get("meritKind");
        if said.is_some_and(|k| k != kind) || (said.is_none() && kind == "self-declared") {
            return Err(format!(
                "merit {i} says it is {} but its record type makes it {kind}",
                merit["meritKind"]
            ));
        }
        let issuer = &merit["issuer"]["id"];
        let by_holder = issuer == &subject["id"];
        if kind == "self-declared" {
            if attested || !by_holder {
                return Err(format!(
                    "merit {i} is self-declared but presented as issued or attested by an organisation"
                ));
            }
        } else if issuer != &claims["issuer"]["id"]
            && !(attested && issuer == agency_urn(source).as_str())
        {
            return Err(format!("merit {i} names another issuer"));
        }
    }
    Ok(())
}

/// Every merit that carries its source's attestation is exactly what that
/// source signed ([`attestation::check_embedded`]); with `roots`, each
/// attestation certificate was issued by the federation CA. Says how many
/// merits are attested.
fn sources_attest(claims: &Value, roots: Option<&rustls::RootCertStore>) -> Result<usize, String> {
    let mut attested = 0;
    for (i, merit) in claims["credentialSubject"]["verifiableCredential"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if merit.get(attestation::PROPERTY).is_some() {
            let nbf = claims["nbf"].as_i64().unwrap_or_default();
            attestation::check_embedded(merit, roots, nbf)
                .map_err(|e| format!("merit {i}: {e}"))?;
            attested += 1;
        }
    }
    Ok(attested)
}

/// The merits of a verified passport credential, in its order.
pub fn merits(credential: &Value) -> Vec<Merit> {
    credential["credentialSubject"]["verifiableCredential"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Merit::of)
        .collect()
}

#[cfg(test)]
mod tests;
