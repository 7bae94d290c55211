//! The competence passport end to end: a real demo network (three adapters,
//! gateway, mTLS, SQLite), `GetCompetencePassport` called as the guidance
//! agency, and the credential verified as an employer would.
//! `tests/passport_standards.rs` runs `samverka passport verify` and an
//! independent verifier.

mod support;

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SOURCES, DEMO_SUBJECT, OTHER_SUBJECT};
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};
use samverka_gateway::credential::passport;
use samverka_gateway::credential::signing::JwsSigner;
use samverka_proto::v1::{
    CompetencePassport, GetCompetencePassportRequest, source_outcome::Status as SourceStatus,
};
use support::*;

/// Every record type of the demo's study-guidance purpose: those the
/// registers serve, then the merits the person declares.
const ALL_TYPES: [&str; 6] = [
    "education.course_result",
    "education.degree",
    "education.non_formal",
    "employment.period",
    "competence.validated",
    "competence.self_declared",
];
/// The types of [`ALL_TYPES`] a register serves.
const REGISTER_TYPES: &[&str] = ALL_TYPES.split_at(5).0;

fn passport_request(subject: &str, purpose: &str) -> GetCompetencePassportRequest {
    GetCompetencePassportRequest {
        subject_id: subject.into(),
        purpose: purpose.into(),
        ..Default::default()
    }
}

async fn get_passport(net: &TestNet) -> CompetencePassport {
    exchange(net, "reader")
        .await
        .get_competence_passport(passport_request(DEMO_SUBJECT, DEMO_PURPOSE))
        .await
        .unwrap()
        .into_inner()
}

fn gateway_cert(net: &TestNet) -> String {
    std::fs::read_to_string(&net.pki.gateway.0).unwrap()
}

/// The credential's payload, changed by `edit`, under the original header
/// and signature.
fn tampered(jws: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = jws.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    let payload = B64.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

fn source_of(record_type: &str) -> &'static str {
    DEMO_SOURCES
        .iter()
        .find(|s| s.record_types.contains(&record_type))
        .map(|s| s.agency)
        .unwrap()
}

#[tokio::test]
async fn a_passport_holds_every_record_once_from_its_source() {
    let net = start().await;
    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    let p = get_passport(&net).await;

    // Kinds in order, every record in the section of its kind, from the
    // source that serves its type.
    let kinds: Vec<&str> = p.sections.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["education", "employment", "competence"]);
    let mut seen = BTreeSet::new();
    for section in &p.sections {
        for entry in &section.entries {
            let r = entry.record.as_ref().unwrap();
            assert_eq!(r.subject_id, DEMO_SUBJECT);
            assert!(r.record_type.starts_with(&format!("{}.", section.kind)));
            assert_eq!(r.source_agency, source_of(&r.record_type));
            assert!(entry.retrieved_at.is_some());
            assert!(
                seen.insert((r.source_agency.clone(), r.record_id.clone())),
                "record {} twice",
                r.record_id
            );
        }
    }

    // The same records GetRecords gives for the same types, no more.
    let all = exchange(&net, "reader")
        .await
        .get_records(read_request(DEMO_SUBJECT, REGISTER_TYPES, DEMO_PURPOSE))
        .await
        .unwrap()
        .into_inner();
    let expected: BTreeSet<(String, String)> = all
        .records
        .iter()
        .map(|r| (r.source_agency.clone(), r.record_id.clone()))
        .collect();
    assert_eq!(seen, expected);
    assert!(seen.len() >= 8, "the demo person has records in all four");

    // Every source asked answered (the gateway for the self-declared
    // merits, of which the demo person has none), and the counts add up.
    assert_eq!(p.outcomes.len(), DEMO_SOURCES.len() + 1);
    for o in &p.outcomes {
        assert_eq!(o.status, SourceStatus::Ok as i32, "{o:?}");
        let n = seen.iter().filter(|(a, _)| *a == o.source_agency).count();
        assert_eq!(o.record_count as usize, n);
    }
    assert!(p.record_types.iter().all(|d| d.included));
    assert_eq!(p.consent_ids.len(), 1);
    assert_eq!(p.issuer_agency, samverka::cli::demo::GATEWAY_AGENCY);

    // The credential says the same, signed by the gateway.
    let vc = passport::verify(&p.credential, &gateway_cert(&net)).unwrap();
    let merits = passport::merits(&vc);
    assert_eq!(merits.len(), seen.len());
    for m in &merits {
        assert_eq!(m.source_agency, source_of(&m.record_type));
        assert!(!m.achievement_type.is_empty());
    }
    assert_eq!(vc["partial"], false);
    // The person is named only by a hash salted with what the credential
    // does not hold.
    assert_eq!(
        vc["credentialSubject"]["identifier"][0]["identityHash"],
        passport::identity_hash(DEMO_SUBJECT, &p.holder_salt)
    );
    assert!(!vc.to_string().contains(DEMO_SUBJECT));
    assert_eq!(
        vc["issuer"]["id"],
        format!(
            "urn:samverka:agency:{}",
            samverka::cli::demo::GATEWAY_AGENCY
        )
    );
    // Classification codes travel with the records.
    let codes: Vec<String> = merits
        .iter()
        .flat_map(|m| m.codes.iter().map(|(framework, _)| framework.clone()))
        .collect();
    for framework in ["SUN 2020 field", "EQF", "SSYK 2012", "ESCO"] {
        assert!(codes.iter().any(|c| c == framework), "no {framework} code");
    }

    // The read is audited as allowed, naming the consent.
    let audit = net
        .gateway
        .store
        .audit_entries(Some(DEMO_SUBJECT))
        .await
        .unwrap();
    let entry = audit
        .iter()
        .find(|e| e.audit_id == p.audit_ids[0])
        .expect("the passport's audit entry");
    assert_eq!(entry.method, "RecordExchange/GetCompetencePassport");
    assert_eq!(entry.decision, "allowed");
    assert_eq!(entry.consent_id, p.consent_ids[0]);
    assert_eq!(entry.sources.len(), p.outcomes.len());
}

#[tokio::test]
async fn a_source_that_is_down_is_named_and_the_rest_is_signed() {
    let mut net = start().await;
    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    net.stop("competence").await;
    let p = get_passport(&net).await;

    let competence = samverka_adapter_competence::DEMO_AGENCY;
    let down = p
        .outcomes
        .iter()
        .find(|o| o.source_agency == competence)
        .expect("the competence source is named");
    assert_eq!(down.status, SourceStatus::Unavailable as i32);
    assert_eq!(down.record_count, 0);
    let kinds: Vec<&str> = p.sections.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["education", "employment"]);

    let vc = passport::verify(&p.credential, &gateway_cert(&net)).unwrap();
    let sources = vc["credentialSubject"]["sources"].as_array().unwrap();
    let named = sources
        .iter()
        .find(|s| s["agency"] == competence)
        .expect("the credential names the source that was down");
    assert_eq!(named["status"], "UNAVAILABLE");
    assert_eq!(vc["partial"], true);
    assert!(
        passport::merits(&vc)
            .iter()
            .all(|m| m.source_agency != competence)
    );
    let text = samverka::cli::passport::describe(&vc);
    assert!(
        text.contains("competence (2021999087): UNAVAILABLE"),
        "{text}"
    );
}

#[tokio::test]
async fn a_kind_without_consent_is_left_out_with_the_reason_and_audited() {
    let net = start().await;
    // Consent for course results and employment only.
    let consent = grant_demo_consent(&net).await;
    let p = get_passport(&net).await;

    let types: BTreeSet<String> = p
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| e.record.as_ref().unwrap().record_type.clone())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["education.course_result".into(), "employment.period".into()])
    );
    for d in &p.record_types {
        match d.record_type.as_str() {
            "education.course_result" | "employment.period" => {
                assert!(d.included, "{d:?}");
                assert_eq!(d.consent_id, consent);
            }
            "education.degree"
            | "education.non_formal"
            | "competence.validated"
            | "competence.self_declared" => {
                assert!(!d.included, "{d:?}");
                assert_eq!(d.reason, "CONSENT_MISSING");
                assert!(!d.message.is_empty());
            }
            other => panic!("unexpected record type {other}"),
        }
    }
    // The competence source holds no type the consent covers: not asked.
    assert!(
        p.outcomes
            .iter()
            .all(|o| o.source_agency != samverka_adapter_competence::DEMO_AGENCY)
    );

    // The credential says what was left out and why.
    let vc = passport::verify(&p.credential, &gateway_cert(&net)).unwrap();
    let omitted: BTreeSet<(String, String)> = vc["credentialSubject"]["omitted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["recordType"].as_str().unwrap().to_owned(),
                o["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        omitted,
        BTreeSet::from([
            ("competence.self_declared".into(), "CONSENT_MISSING".into()),
            ("competence.validated".into(), "CONSENT_MISSING".into()),
            ("education.degree".into(), "CONSENT_MISSING".into()),
            ("education.non_formal".into(), "CONSENT_MISSING".into()),
        ])
    );

    // The audit holds both decisions: the read allowed, the rest refused.
    assert_eq!(p.audit_ids.len(), 2);
    let audit = net
        .gateway
        .store
        .audit_entries(Some(DEMO_SUBJECT))
        .await
        .unwrap();
    let find = |id: &str| audit.iter().find(|e| e.audit_id == id).unwrap();
    let allowed = find(&p.audit_ids[0]);
    assert_eq!(allowed.decision, "allowed");
    assert_eq!(
        allowed.record_types,
        ["education.course_result", "employment.period"]
    );
    let refused = find(&p.audit_ids[1]);
    assert_eq!(refused.decision, "denied");
    assert_eq!(refused.reason, "CONSENT_MISSING");
    assert_eq!(
        refused.record_types,
        [
            "competence.self_declared",
            "competence.validated",
            "education.degree",
            "education.non_formal"
        ]
    );
    assert_eq!(refused.method, "RecordExchange/GetCompetencePassport");
}

/// A consent limited to sources that serve none of a type's sources does
/// not include the type: no source of it would be asked. Another consent
/// that reaches a source of the type still does.
#[tokio::test]
async fn a_type_no_source_of_which_the_consent_allows_is_not_included() {
    let net = start().await;
    // An older consent without a source restriction, for employment only.
    let employment = grant(&net, DEMO_PURPOSE, &["employment.period"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The newest consent covers every type, from the university alone.
    let mut request = grant_request(&net, DEMO_PURPOSE, &ALL_TYPES, "limited-to-he");
    request.source_agencies = vec![HE.into()];
    let limited = consents(&net, "registrar")
        .await
        .grant(sealed(&net, "registrar", request))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap()
        .consent_id;
    let p = get_passport(&net).await;

    for d in &p.record_types {
        match d.record_type.as_str() {
            "education.course_result" | "education.degree" => {
                assert!(d.included, "{d:?}");
                assert_eq!(d.consent_id, limited);
            }
            // Not through the limited consent, but through the other.
            "employment.period" => {
                assert!(d.included, "{d:?}");
                assert_eq!(d.consent_id, employment);
            }
            "competence.validated" | "education.non_formal" | "competence.self_declared" => {
                assert!(!d.included, "{d:?}");
                assert_eq!(d.reason, "CONSENT_MISSING");
                assert!(d.message.contains("sources"), "{d:?}");
                assert!(d.consent_id.is_empty());
            }
            other => panic!("unexpected record type {other}"),
        }
    }
    // The competence source was not asked; the other two were.
    let asked: BTreeSet<&str> = p
        .outcomes
        .iter()
        .map(|o| o.source_agency.as_str())
        .collect();
    assert_eq!(asked, BTreeSet::from([HE, EMP]));
    assert!(
        p.outcomes
            .iter()
            .all(|o| o.status == SourceStatus::Ok as i32)
    );
    assert!(
        p.sections.iter().all(|s| s.kind != "competence"),
        "{:?}",
        p.sections
    );

    // The credential and the audit say the same.
    let vc = passport::verify(&p.credential, &gateway_cert(&net)).unwrap();
    let omitted = vc["credentialSubject"]["omitted"].as_array().unwrap();
    let left_out: Vec<&str> = omitted
        .iter()
        .map(|o| o["recordType"].as_str().unwrap())
        .collect();
    assert_eq!(
        left_out,
        [
            "competence.self_declared",
            "competence.validated",
            "education.non_formal"
        ],
        "{omitted:?}"
    );
    assert!(omitted.iter().all(|o| o["reason"] == "CONSENT_MISSING"));
    let audit = net
        .gateway
        .store
        .audit_entries(Some(DEMO_SUBJECT))
        .await
        .unwrap();
    let refused: Vec<_> = audit
        .iter()
        .filter(|e| p.audit_ids.contains(&e.audit_id) && e.decision == "denied")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].reason, "CONSENT_MISSING");
    assert_eq!(
        refused[0].record_types,
        [
            "competence.self_declared",
            "competence.validated",
            "education.non_formal"
        ]
    );
    let mut used = p.consent_ids.clone();
    used.sort();
    let mut expected = vec![limited, employment];
    expected.sort();
    assert_eq!(used, expected);
}

#[tokio::test]
async fn no_consent_or_no_access_rule_refuses_the_whole_passport() {
    let net = start().await;
    let calls_before = net.fetch_calls();

    let status = exchange(&net, "reader")
        .await
        .get_competence_passport(passport_request(OTHER_SUBJECT, DEMO_PURPOSE))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(reason(&status), "CONSENT_MISSING");
    let id = audit_id(&status);

    let status = exchange(&net, "outsider")
        .await
        .get_competence_passport(passport_request(DEMO_SUBJECT, DEMO_PURPOSE))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ACCESS_RULE_MISSING");

    for (subject, purpose, expected) in [
        ("199003142389", DEMO_PURPOSE, "SUBJECT_ID_INVALID"),
        (DEMO_SUBJECT, "marketing", "PURPOSE_UNKNOWN"),
    ] {
        let status = exchange(&net, "reader")
            .await
            .get_competence_passport(passport_request(subject, purpose))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(reason(&status), expected);
    }
    assert_eq!(net.fetch_calls(), calls_before, "no register was asked");

    let audit = net
        .gateway
        .store
        .audit_entries(Some(OTHER_SUBJECT))
        .await
        .unwrap();
    let entry = audit.iter().find(|e| e.audit_id == id).unwrap();
    assert_eq!(entry.decision, "denied");
    assert_eq!(entry.reason, "CONSENT_MISSING");
}

#[tokio::test]
async fn verification_fails_on_any_change_and_on_another_key() {
    let net = start().await;
    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    let p = get_passport(&net).await;
    let cert = gateway_cert(&net);
    passport::verify(&p.credential, &cert).unwrap();

    // A changed grade, a changed person, a changed issuer.
    let changed_record = tampered(&p.credential, |vc| {
        vc["credentialSubject"]["verifiableCredential"][0]["credentialSubject"]["result"][0]["value"] =
            "U".into();
    });
    let changed_subject = tampered(&p.credential, |vc| {
        vc["credentialSubject"]["identifier"][0]["identityHash"] =
            passport::identity_hash(OTHER_SUBJECT, "").into();
    });
    let changed_issuer = tampered(&p.credential, |vc| {
        vc["issuer"]["id"] = "urn:samverka:agency:2021999020".into();
    });
    for forged in [changed_record, changed_subject, changed_issuer] {
        assert_eq!(
            passport::verify(&forged, &cert).unwrap_err().0,
            "signature does not verify"
        );
    }

    // The same credential signed by another gateway's key: it verifies
    // only against that gateway's certificate, which names another issuer.
    let ca = DevCa::generate("another CA").unwrap();
    let other = ca
        .issue(&CertRequest::new(
            OrgNumber::parse("2021999020").unwrap(),
            Role::Gateway,
            "other gateway",
        ))
        .unwrap();
    let signer = JwsSigner::from_pem(&other.cert_pem, &other.key_pem, "2021999020").unwrap();
    let vc = passport::verify(&p.credential, &cert).unwrap();
    let resigned = signer.sign_jwt(&vc).unwrap();
    assert!(passport::verify(&resigned, &cert).is_err());
    // Signed by the other gateway with the claims in place.
    let mut claims = vc.clone();
    claims["iss"] = vc["issuer"]["id"].clone();
    claims["jti"] = vc["id"].clone();
    claims["sub"] = vc["credentialSubject"]["id"].clone();
    claims["nbf"] = serde_json::json!(0);
    let resigned = signer.sign_jwt(&claims).unwrap();
    let err = passport::verify(&resigned, &other.cert_pem).unwrap_err();
    assert!(err.0.contains("issued in the name of"), "{err}");

    // Every changed character of the token fails.
    let bytes = p.credential.as_bytes();
    for i in (0..bytes.len()).step_by(97) {
        let mut changed = bytes.to_vec();
        changed[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).unwrap();
        if changed != p.credential {
            assert!(passport::verify(&changed, &cert).is_err(), "byte {i}");
        }
    }
}
