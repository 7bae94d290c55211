//! Every way a person assertion or its evidence can be wrong, each refused
//! with its reason, and the one way it is right.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use samverka_certs::OrgNumber;
use samverka_proto::v1::{GetConsentRequest, GrantConsentRequest, ListConsentsRequest};
use serde_json::{Value, json};

use super::issue::{AssertionSigner, DevIdentityProvider, Login};
use super::*;
use crate::config::Config;
use crate::error::Reason;

const NOW: i64 = 1_764_400_000;
const ISS: &str = "https://idp.example";
const REGISTRAR: &str = "2021999038";
const OTHER_REGISTRAR: &str = "2021999061";
const PERSON: &str = "199003142388";
const OTHER_PERSON: &str = "198511224571";
const LOA3: &str = "http://id.elegnamnden.se/loa/1.0/loa3";

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    verifier: PersonVerifier,
    registrar_key: String,
    other_registrar_key: String,
    idp_key: String,
    stranger_key: String,
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let (private, public) = samverka_certs::dev::signing_key().unwrap();
        write(dir.path(), &format!("{name}.pub.pem"), &public);
        private
    };
    let registrar_key = key("registrar");
    let other_registrar_key = key("other");
    let idp_key = key("idp");
    let stranger_key = key("stranger");
    let text = format!(
        r#"
[gateway]
address = "127.0.0.1:8443"
org_number = "2021999012"
ca_cert = "ca.pem"
cert = "gw.pem"
key = "gw.key"
client_cert = "gwc.pem"
client_key = "gwc.key"
store = "samverka.db"

[person_assertion.assurance]
grant = ["{LOA3}"]
revoke = ["{LOA3}", "http://id.elegnamnden.se/loa/1.0/loa2"]
read = ["{LOA3}"]

[[identity_providers]]
issuer = "{ISS}"
keys = "idp.pub.pem"

[[agencies]]
org_number = "{REGISTRAR}"
name = "E-service"
registrar = true
registrar_purposes = ["study_guidance"]
assertion_keys = "registrar.pub.pem"
login_clients = [{{ issuer = "{ISS}", client_id = "eservice" }}]

[[agencies]]
org_number = "{OTHER_REGISTRAR}"
name = "Other e-service"
registrar = true
registrar_purposes = ["study_guidance"]
assertion_keys = "other.pub.pem"
login_clients = [{{ issuer = "{ISS}", client_id = "municipal" }}]

[[purposes]]
code = "study_guidance"
description = "Study and career guidance"
record_types = ["employment.period"]
"#
    );
    let config = Config::from_toml(&text, dir.path()).unwrap();
    let verifier = PersonVerifier::new(&config).unwrap();
    Fixture {
        _dir: dir,
        config,
        verifier,
        registrar_key,
        other_registrar_key,
        idp_key,
        stranger_key,
    }
}

fn sign(key: &str, header: Header, claims: &Value) -> String {
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn id_token_claims() -> Value {
    json!({
        "iss": ISS, "sub": "pairwise-1", "aud": "eservice", "iat": NOW - 10, "exp": NOW + 290,
        "auth_time": NOW - 10, "acr": LOA3, PERSONAL_IDENTITY_NUMBER_CLAIM: PERSON,
    })
}

fn request() -> GrantConsentRequest {
    GrantConsentRequest {
        subject_id: PERSON.into(),
        grantee_agency: "2021999020".into(),
        record_types: vec!["employment.period".into()],
        purpose: "study_guidance".into(),
        request_id: "r-1".into(),
        ..Default::default()
    }
}

fn assertion_claims<R: samverka_proto::terms::PersonBound>(req: &R, id_token: &str) -> Value {
    json!({
        "iss": REGISTRAR, "aud": "samverka:2021999012", "iat": NOW, "exp": NOW + 120,
        "jti": "j-1", "sub": PERSON, "action": R::ACTION,
        "terms_sha256": sha256_b64(req.terms_text().as_bytes()),
        "evidence": {"id_token": id_token},
    })
}

fn assertion_header() -> Header {
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some(ASSERTION_TYPE.into());
    h
}

impl Fixture {
    fn id_token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = id_token_claims();
        edit(&mut c);
        sign(&self.idp_key, Header::new(Algorithm::ES256), &c)
    }

    /// A grant for [`request`] with the assertion `edit` makes of the
    /// good one (whose evidence is `id_token`).
    fn grant(&self, id_token: &str, edit: impl FnOnce(&mut Value)) -> GrantConsentRequest {
        let mut req = request();
        let mut c = assertion_claims(&req, id_token);
        edit(&mut c);
        req.person_assertion = sign(&self.registrar_key, assertion_header(), &c);
        req
    }

    fn verify<R: samverka_proto::terms::PersonBound>(
        &self,
        registrar: &str,
        req: &R,
        level: Level,
    ) -> Result<Proven, crate::error::GatewayError> {
        let org = OrgNumber::parse(registrar).unwrap();
        let tables = self.config.tables();
        let bounds = tables.agency(&org).unwrap().registrar.clone().unwrap();
        self.verifier.verify(&org, &bounds, req, level, NOW * 1000)
    }

    fn refused(&self, req: &GrantConsentRequest) -> (Reason, String) {
        let e = self.verify(REGISTRAR, req, Level::Grant).unwrap_err();
        (e.reason, e.message)
    }
}

#[test]
fn a_good_assertion_proves_the_person_and_records_what_was_checked() {
    let f = fixture();
    let token = f.id_token(|_| {});
    let proven = f
        .verify(REGISTRAR, &f.grant(&token, |_| {}), Level::Grant)
        .unwrap();
    assert_eq!(proven.person, PERSON);
    assert_eq!(proven.expires_at_ms, (NOW + 120 + 30 + 1) * 1000);
    let e = &proven.evidence;
    assert_eq!(
        (e.provider.as_str(), e.acr.as_str(), e.assertion_id.as_str()),
        (ISS, LOA3, "j-1")
    );
    assert_eq!(e.id_token_sha256, sha256_b64(token.as_bytes()));
    assert!(!e.details().values().any(|v| v.contains(&token)));
}

#[test]
fn the_library_signers_make_what_the_verifier_takes() {
    let f = fixture();
    let idp = DevIdentityProvider::with_issuer(&f.idp_key, ISS).unwrap();
    let login = Login {
        person: PERSON.into(),
        client_id: "eservice".into(),
        acr: LOA3.into(),
        auth_time: NOW - 5,
    };
    let token = idp.id_token(&login, NOW).unwrap();
    let signer = AssertionSigner::new(&f.registrar_key, REGISTRAR, "samverka:2021999012").unwrap();
    let mut req = request();
    signer.seal(&mut req, PERSON, &token, NOW).unwrap();
    f.verify(REGISTRAR, &req, Level::Grant).unwrap();
    let mut list = ListConsentsRequest {
        subject_id: PERSON.into(),
        ..Default::default()
    };
    signer.seal(&mut list, PERSON, &token, NOW).unwrap();
    f.verify(REGISTRAR, &list, Level::Read).unwrap();
    assert_eq!(named_person(&token).as_deref(), Some(PERSON));
}

#[test]
fn a_broken_envelope_is_refused_with_its_reason() {
    let f = fixture();
    let token = f.id_token(|_| {});
    let invalid = Reason::PersonAssertionInvalid;
    let mut missing = request();
    missing.person_assertion = " ".into();
    assert_eq!(f.refused(&missing).0, Reason::PersonAssertionMissing);

    let cases: Vec<(&str, GrantConsentRequest, &str)> = vec![
        (
            "wrong issuer",
            f.grant(&token, |c| c["iss"] = json!(OTHER_REGISTRAR)),
            "issuer",
        ),
        (
            "audience",
            f.grant(&token, |c| c["aud"] = json!("samverka:2021999020")),
            "addressed",
        ),
        (
            "expired",
            f.grant(&token, |c| {
                c["iat"] = json!(NOW - 400);
                c["exp"] = json!(NOW - 200)
            }),
            "expired",
        ),
        (
            "too long",
            f.grant(&token, |c| c["exp"] = json!(NOW + 301)),
            "at most 300",
        ),
        (
            "future",
            f.grant(&token, |c| {
                c["iat"] = json!(NOW + 100);
                c["exp"] = json!(NOW + 200)
            }),
            "future",
        ),
        (
            "action",
            f.grant(&token, |c| {
                c["action"] = json!("/samverka.v1.Consents/Revoke")
            }),
            "another action",
        ),
        (
            "terms",
            f.grant(&token, |c| c["terms_sha256"] = json!(sha256_b64(b"{}"))),
            "other terms",
        ),
        ("no jti", f.grant(&token, |c| c["jti"] = json!("")), "jti"),
        (
            "long jti",
            f.grant(&token, |c| c["jti"] = json!("j".repeat(129))),
            "jti",
        ),
        (
            "no exp",
            f.grant(&token, |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "exp",
        ),
    ];
    for (what, req, says) in cases {
        let (reason, message) = f.refused(&req);
        assert_eq!(reason, invalid, "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
    }

    // Changed terms after signing: the request no longer matches.
    let mut changed = f.grant(&token, |_| {});
    changed.record_types.push("education.degree".into());
    assert!(f.refused(&changed).1.contains("other terms"));

    // Signed by another registrar's key, or by a key nobody registered.
    for key in [&f.other_registrar_key, &f.stranger_key] {
        let mut req = request();
        req.person_assertion = sign(key, assertion_header(), &assertion_claims(&req, &token));
        let (reason, message) = f.refused(&req);
        assert_eq!(reason, invalid);
        assert!(message.contains("signature"), "{message}");
    }
    // A byte of the signature changed.
    let mut req = f.grant(&token, |_| {});
    let last = req.person_assertion.pop().unwrap();
    req.person_assertion
        .push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(f.refused(&req).0, invalid);

    // alg none, HS256 and a wrong typ.
    let mut req = request();
    let claims = assertion_claims(&req, &token);
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    req.person_assertion = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": ASSERTION_TYPE})),
        b64(&claims)
    );
    assert_eq!(f.refused(&req).0, invalid);
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some(ASSERTION_TYPE.into());
    req.person_assertion = encode(&hs, &claims, &EncodingKey::from_secret(b"k").unwrap()).unwrap();
    assert!(f.refused(&req).1.contains("not registered"));
    req.person_assertion = sign(&f.registrar_key, Header::new(Algorithm::ES256), &claims);
    assert!(f.refused(&req).1.contains("typ"));
}

#[test]
fn an_id_token_sent_alone_is_refused_as_such() {
    let f = fixture();
    let mut req = request();
    req.person_assertion = f.id_token(|_| {});
    let (reason, message) = f.refused(&req);
    assert_eq!(reason, Reason::PersonAssertionInvalid);
    assert!(message.contains("ID token alone"), "{message}");
}

/// A change to the good ID token's claims.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn bad_evidence_is_refused_with_its_reason() {
    let f = fixture();
    let invalid = Reason::PersonAssertionInvalid;
    let edits: Vec<(&str, Edit, Reason, &str)> = vec![
        (
            "unknown issuer",
            Box::new(|c| c["iss"] = json!("https://evil.example")),
            invalid,
            "trusted",
        ),
        (
            "another registrar's client",
            Box::new(|c| c["aud"] = json!("municipal")),
            invalid,
            "addressed",
        ),
        (
            "azp of another client",
            Box::new(|c| {
                c["aud"] = json!(["eservice", "municipal"]);
                c["azp"] = json!("municipal")
            }),
            invalid,
            "azp",
        ),
        (
            "expired",
            Box::new(|c| {
                c["exp"] = json!(NOW - 100);
                c["iat"] = json!(NOW - 400)
            }),
            invalid,
            "expired",
        ),
        (
            "stale login",
            Box::new(|c| c["auth_time"] = json!(NOW - 400)),
            Reason::PersonLoginStale,
            "log in again",
        ),
        (
            "no auth_time",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("auth_time");
            }),
            invalid,
            "auth_time",
        ),
        (
            "another person",
            Box::new(|c| c[PERSONAL_IDENTITY_NUMBER_CLAIM] = json!(OTHER_PERSON)),
            Reason::PersonMismatch,
            "another person",
        ),
        (
            "no person number",
            Box::new(|c| {
                c.as_object_mut()
                    .unwrap()
                    .remove(PERSONAL_IDENTITY_NUMBER_CLAIM);
            }),
            invalid,
            "names no person",
        ),
        (
            "acr too low",
            Box::new(|c| c["acr"] = json!("http://id.elegnamnden.se/loa/1.0/loa2")),
            Reason::AssuranceTooLow,
            "too low",
        ),
        (
            "acr missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("acr");
            }),
            Reason::AssuranceTooLow,
            "acr",
        ),
    ];
    for (what, edit, reason, says) in edits {
        let token = f.id_token(|c| edit(c));
        let (got, message) = f.refused(&f.grant(&token, |_| {}));
        assert_eq!(got, reason, "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
    }
    // The person number is never taken from `sub`.
    let token = f.id_token(|c| {
        c.as_object_mut()
            .unwrap()
            .remove(PERSONAL_IDENTITY_NUMBER_CLAIM);
        c["sub"] = json!(PERSON);
    });
    assert_eq!(f.refused(&f.grant(&token, |_| {})).0, invalid);
    // A coordination number is a person number too.
    let token = f.id_token(|c| {
        c.as_object_mut()
            .unwrap()
            .remove(PERSONAL_IDENTITY_NUMBER_CLAIM);
        c[COORDINATION_NUMBER_CLAIM] = json!(PERSON);
    });
    f.verify(REGISTRAR, &f.grant(&token, |_| {}), Level::Grant)
        .unwrap();
    // Signed by a key the provider does not hold.
    let forged = sign(
        &f.stranger_key,
        Header::new(Algorithm::ES256),
        &id_token_claims(),
    );
    assert!(f.refused(&f.grant(&forged, |_| {})).1.contains("signature"));
}

#[test]
fn the_person_of_the_request_and_the_actor_must_be_the_person_proven() {
    let f = fixture();
    let token = f.id_token(|_| {});
    let (reason, _) = f.refused(&f.grant(&token, |c| c["sub"] = json!(OTHER_PERSON)));
    assert_eq!(reason, Reason::PersonMismatch);
    let (reason, message) =
        f.refused(&f.grant(&token, |c| c["act"] = json!({"sub": OTHER_PERSON})));
    assert_eq!(reason, Reason::PersonMismatch);
    assert!(message.contains("another person"), "{message}");
    // The same actor as the person is the person acting themself.
    f.verify(
        REGISTRAR,
        &f.grant(&token, |c| c["act"] = json!({"sub": PERSON})),
        Level::Grant,
    )
    .unwrap();
    // A request naming no person (Get) proves whoever the assertion names;
    // the service compares it with the consent's person.
    let mut get = GetConsentRequest {
        consent_id: "c-1".into(),
        ..Default::default()
    };
    let c = assertion_claims(&get, &token);
    get.person_assertion = sign(&f.registrar_key, assertion_header(), &c);
    assert_eq!(
        f.verify(REGISTRAR, &get, Level::Read).unwrap().person,
        PERSON
    );
}

#[test]
fn a_level_accepted_to_revoke_need_not_be_accepted_to_grant() {
    let f = fixture();
    let token = f.id_token(|c| c["acr"] = json!("http://id.elegnamnden.se/loa/1.0/loa2"));
    let req = f.grant(&token, |_| {});
    assert_eq!(f.refused(&req).0, Reason::AssuranceTooLow);
    // The levels are per action: the same login may revoke.
    let mut revoke = samverka_proto::v1::RevokeConsentRequest {
        consent_id: "c-1".into(),
        ..Default::default()
    };
    let c = assertion_claims(&revoke, &token);
    revoke.person_assertion = sign(&f.registrar_key, assertion_header(), &c);
    f.verify(REGISTRAR, &revoke, Level::Revoke).unwrap();
}

#[test]
fn keys_rotate_without_a_restart() {
    let f = fixture();
    let (new_key, new_public) = samverka_certs::dev::signing_key().unwrap();
    let token = f.id_token(|_| {});
    let mut req = request();
    req.person_assertion = sign(
        &new_key,
        assertion_header(),
        &assertion_claims(&req, &token),
    );
    assert_eq!(f.refused(&req).0, Reason::PersonAssertionInvalid);
    write(f._dir.path(), "registrar.pub.pem", &new_public);
    // The file is looked at again at most once a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.verify(REGISTRAR, &req, Level::Grant).unwrap();
}

#[test]
fn what_other_jose_libraries_make_is_taken() {
    let f = fixture();
    // An ID token with fractional times and an `aud` list.
    let token = f.id_token(|c| {
        c["aud"] = json!(["eservice", "another-api"]);
        c["auth_time"] = json!(NOW as f64 - 10.5);
        c["exp"] = json!(NOW as f64 + 290.25);
    });
    let mut req = request();
    let mut c = assertion_claims(&req, &token);
    c["aud"] = json!(["samverka:2021999012"]);
    c["iat"] = json!(NOW as f64 + 0.5);
    c["exp"] = json!(NOW as f64 + 120.75);
    let mut header = assertion_header();
    header.typ = Some(format!("application/{}", ASSERTION_TYPE.to_uppercase()));
    header.kid = Some("registrar-2026".into());
    req.person_assertion = sign(&f.registrar_key, header, &c);
    let proven = f.verify(REGISTRAR, &req, Level::Grant).unwrap();
    assert_eq!(proven.expires_at_ms, (NOW + 120 + 30 + 1) * 1000);
    // ... but an `aud` list without the gateway is someone else's.
    c["aud"] = json!(["samverka:2021999020"]);
    req.person_assertion = sign(&f.registrar_key, assertion_header(), &c);
    assert_eq!(f.refused(&req).0, Reason::PersonAssertionInvalid);
    c["aud"] = json!("samverka:2021999012");
    c["exp"] = json!(f64::MAX);
    req.person_assertion = sign(&f.registrar_key, assertion_header(), &c);
    assert_eq!(f.refused(&req).0, Reason::PersonAssertionInvalid);
}
