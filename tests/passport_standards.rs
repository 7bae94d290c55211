//! The passport as verifiers outside samverka see it: `samverka passport
//! verify` and `samverka passport elm` run as processes, and an
//! independent verifier in Python (`jwcrypto` for the VC-JWT, `jsonschema`
//! for 1EdTech's schemas, `tests/independent/verify_passport.py`) agreeing
//! with `passport verify` on a genuine passport and on each kind of
//! forgery.
//!
//! Needs python3 with jwcrypto and jsonschema (`.ci/run` installs them);
//! without them the Python half says so and skips.

mod support;

use std::process::Command;

use base64::Engine;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT};
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};
use samverka_gateway::credential::passport;
use samverka_gateway::credential::signing::JwsSigner;
use samverka_proto::v1::CompetencePassport;
use serde_json::{Value, json};
use support::independent::{claims_of, independent_checked, python_ready, with_payload};
use support::*;

const ALL_TYPES: [&str; 4] = [
    "education.course_result",
    "education.degree",
    "employment.period",
    "competence.validated",
];

async fn get_passport(net: &TestNet) -> CompetencePassport {
    grant(net, DEMO_PURPOSE, &ALL_TYPES).await;
    demo_passport(net).await
}

fn gateway_cert(net: &TestNet) -> String {
    std::fs::read_to_string(&net.pki.gateway.0).unwrap()
}

#[tokio::test]
async fn an_independent_verifier_agrees_on_genuine_and_forged_passports() {
    let net = start().await;
    let p = get_passport(&net).await;
    let cert_path = net.pki.gateway.0.clone();
    let cert = gateway_cert(&net);
    let key = std::fs::read_to_string(&net.pki.gateway.1).unwrap();
    // The gateway's own key, as an insider forging content would have it.
    let gateway_key = JwsSigner::from_pem(&cert, &key, "2021999012").unwrap();
    let ca = DevCa::generate("another CA").unwrap();
    let other = ca
        .issue(&CertRequest::new(
            OrgNumber::parse("2021999012").unwrap(),
            Role::Gateway,
            "another gateway",
        ))
        .unwrap();
    let other_key = JwsSigner::from_pem(&other.cert_pem, &other.key_pem, "2021999012").unwrap();

    let claims = claims_of(&p.credential);
    // Another passport of the same person: other holder id and salt.
    let other_passport = claims_of(&demo_passport(&net).await.credential);
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        edit(&mut c);
        c
    };
    let cases: Vec<(&str, String)> = vec![
        ("genuine", p.credential.clone()),
        (
            "a grade changed under the gateway's signature",
            with_payload(
                &p.credential,
                &edited(&|c| {
                    let merits = c["credentialSubject"]["verifiableCredential"]
                        .as_array_mut()
                        .unwrap();
                    let graded = merits
                        .iter_mut()
                        .find(|m| m["credentialSubject"]["result"].is_array())
                        .unwrap();
                    graded["credentialSubject"]["result"][0]["value"] = json!("U");
                }),
            ),
        ),
        (
            "another person's hash under the gateway's signature",
            with_payload(
                &p.credential,
                &edited(&|c| {
                    c["credentialSubject"]["identifier"][0]["identityHash"] =
                        json!(passport::identity_hash(OTHER_SUBJECT, &p.holder_salt));
                }),
            ),
        ),
        (
            "re-signed by another gateway's key",
            other_key.sign_jwt(&claims).unwrap(),
        ),
        (
            "a merit without its criteria, signed by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| {
                    c["credentialSubject"]["verifiableCredential"][0]["credentialSubject"]
                        ["achievement"]
                        .as_object_mut()
                        .unwrap()
                        .remove("criteria");
                }))
                .unwrap(),
        ),
        (
            "a jti that is not the credential's, signed by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| c["jti"] = json!("urn:uuid:another")))
                .unwrap(),
        ),
        (
            "a context from elsewhere, signed by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| {
                    c["@context"][1] =
                        json!("https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.9.json")
                }))
                .unwrap(),
        ),
        (
            "a header field OB 3.0 does not allow",
            gateway_key.sign(passport::PASSPORT_TYPE, &claims).unwrap(),
        ),
        (
            "an attested grade changed, signed again by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| {
                    let merits = c["credentialSubject"]["verifiableCredential"]
                        .as_array_mut()
                        .unwrap();
                    let graded = merits
                        .iter_mut()
                        .find(|m| m["credentialSubject"]["result"].is_array())
                        .unwrap();
                    assert!(graded.get("attestation").is_some());
                    graded["credentialSubject"]["result"][0]["value"] = json!("U");
                }))
                .unwrap(),
        ),
        (
            "two merits' attestations swapped, signed again by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| {
                    let merits = &mut c["credentialSubject"]["verifiableCredential"];
                    let first = merits[0]["attestation"].clone();
                    merits[0]["attestation"] = merits[1]["attestation"].clone();
                    merits[1]["attestation"] = first;
                }))
                .unwrap(),
        ),
        (
            "an attested merit of another passport copied in, signed again by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| {
                    c["credentialSubject"]["verifiableCredential"][0] =
                        other_passport["credentialSubject"]["verifiableCredential"][0].clone();
                }))
                .unwrap(),
        ),
        (
            "a merit attested under a key of another CA, signed again by the gateway",
            gateway_key
                .sign_jwt(&edited(&|c| {
                    let merit = &mut c["credentialSubject"]["verifiableCredential"][0];
                    merit.as_object_mut().unwrap().remove("attestation");
                    let agency = merit["source"]["agency"].as_str().unwrap().to_owned();
                    let rogue = ca
                        .issue(&CertRequest::new(
                            OrgNumber::parse(&agency).unwrap(),
                            Role::Attester,
                            "rogue",
                        ))
                        .unwrap();
                    let jwt = JwsSigner::from_pem(&rogue.cert_pem, &rogue.key_pem, &agency)
                        .unwrap()
                        .sign_jwt(merit)
                        .unwrap();
                    let der = {
                        use rustls_pki_types::pem::PemObject;
                        rustls_pki_types::CertificateDer::from_pem_slice(rogue.cert_pem.as_bytes())
                            .unwrap()
                    };
                    merit["attestation"] = json!({
                        "jwt": jwt,
                        "x5c": [base64::engine::general_purpose::STANDARD.encode(der)],
                    });
                }))
                .unwrap(),
        ),
    ];
    let python = python_ready();
    if !python {
        eprintln!(
            "independent half skipped: python3 lacks jwcrypto or jsonschema (pip install jwcrypto jsonschema; .ci/run does)"
        );
    }
    let federation =
        passport::Federation::from_pem(&std::fs::read_to_string(&net.pki.ca_cert).unwrap())
            .unwrap();
    for (what, jws) in &cases {
        let trust = passport::Trust::Cert(cert.clone());
        let ours = passport::verify_report_from(jws, &trust, None, Some(&federation)).failure();
        let ours = ours.map_or(Ok(()), Err);
        assert_eq!(ours.is_ok(), *what == "genuine", "{what}: {ours:?}");
        if python {
            let (valid, failed) = independent_checked(
                jws,
                &cert_path,
                None,
                Some(&net.pki.ca_cert),
                net.dir.path(),
            );
            assert_eq!(
                valid,
                ours.is_ok(),
                "{what}: ours {ours:?}, theirs {failed}"
            );
        }
    }
}

#[tokio::test]
async fn samverka_passport_verify_checks_a_file_offline() {
    let net = start().await;
    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    let p = get_passport(&net).await;
    let file = net.dir.path().join("passport.jws");
    std::fs::write(&file, &p.credential).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_samverka"))
            .args(args)
            .arg("--cert")
            .arg(&net.pki.gateway.0)
            .output()
            .unwrap()
    };
    let path = file.to_str().unwrap();
    let verify = |file: &std::path::Path, json: bool| {
        let file = file.to_str().unwrap();
        run(&if json {
            vec!["passport", "verify", file, "--json"]
        } else {
            vec!["passport", "verify", file]
        })
    };

    let out = verify(&file, false);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("valid passport, signed by the gateway of 2021999012"));
    for check in [
        "signature",
        "issuer",
        "claims",
        "contexts",
        "schema",
        "merits",
    ] {
        assert!(
            text.contains(&format!("  {check:<10} ok")),
            "{check}: {text}"
        );
    }
    assert!(text.contains("holder     not checked"), "{text}");
    let merit_count =
        passport::merits(&passport::verify(&p.credential, &gateway_cert(&net)).unwrap()).len();
    assert!(
        text.contains(&format!(
            "  sources    ok ({merit_count} of {merit_count} merits attested by their source; \
             the attesters' certificates were not checked against a federation CA)"
        )),
        "{text}"
    );
    assert!(text.contains("signed by the source"), "{text}");
    // With the federation CA, every source's certificate is checked too.
    let ca = net.pki.ca_cert.to_str().unwrap();
    let out = run(&["passport", "verify", path, "--ca", ca]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "  sources    ok ({merit_count} of {merit_count} merits attested by their source)\n"
        )),
        "{text}"
    );
    assert!(
        !text.contains(DEMO_SUBJECT),
        "the number is not in the passport"
    );
    assert!(text.contains("Teknologie kandidatexamen"), "{text}");
    assert!(text.contains("employment:"));

    // About the demo person: with the number and the salt, and not with
    // another number.
    let salt = p.holder_salt.as_str();
    let out = run(&[
        "passport",
        "verify",
        path,
        "--person",
        DEMO_SUBJECT,
        "--salt",
        salt,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("  holder     ok")
    );
    let out = run(&[
        "passport",
        "verify",
        path,
        "--person",
        OTHER_SUBJECT,
        "--salt",
        salt,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("holder     FAILED")
    );
    let out = run(&["passport", "verify", path, "--person", DEMO_SUBJECT]);
    assert_eq!(out.status.code(), Some(64), "the salt is needed: {out:?}");

    // The ELM export of the same passport.
    let out = run(&["passport", "elm", path]);
    assert!(out.status.success(), "{out:?}");
    let elm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(elm["type"][1], "EuropeanDigitalCredential");
    assert!(elm.get("proof").is_none(), "the export is not sealed");
    assert!(
        elm["displayParameter"]["description"]["en"]
            .as_str()
            .unwrap()
            .starts_with("Unsealed")
    );
    let claims = elm["credentialSubject"]["hasClaim"].as_array().unwrap();
    assert_eq!(
        claims.len(),
        passport::merits(&passport::verify(&p.credential, &gateway_cert(&net)).unwrap()).len()
    );
    assert!(claims.iter().any(|c| c["type"] == "LearningActivity"));
    assert!(
        claims
            .iter()
            .any(|c| c["specifiedBy"]["title"]["sv"] == "Teknologie kandidatexamen")
    );

    let out = verify(&file, true);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["type"][1], passport::PASSPORT_TYPE);

    // One edited byte of the payload: exit 1 and why.
    let mut edited = p.credential.clone().into_bytes();
    let middle = p.credential.find('.').unwrap() + 40;
    edited[middle] = if edited[middle] == b'x' { b'y' } else { b'x' };
    std::fs::write(&file, edited).unwrap();
    let out = verify(&file, false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("invalid passport"), "{err}");

    // A file that is not there: a usage error.
    let out = verify(&net.dir.path().join("missing.jws"), false);
    assert_eq!(out.status.code(), Some(64));
}
