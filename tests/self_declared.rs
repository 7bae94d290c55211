//! Self-declared merits end to end: a real demo network (four adapters,
//! gateway, mTLS, SQLite), the registrar declaring and withdrawing merits
//! with the person's assertion over gRPC, and the competence passport that
//! shows them, as the person's, next to the non-formal learning the
//! fourth register attests; `passport verify`'s checks and the independent
//! Python verifier both refuse a passport that presents a self-declared
//! merit as an organisation's.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, GATEWAY_AGENCY, OTHER_SUBJECT};
use samverka_gateway::credential::passport;
use samverka_gateway::credential::signing::JwsSigner;
use samverka_proto::records::v1::SelfDeclaredMerit;
use samverka_proto::v1::self_declared_merit_service_client::SelfDeclaredMeritServiceClient;
use samverka_proto::v1::{
    DeclareMeritRequest, DeclaredMerit, ListMeritsRequest, WithdrawMeritRequest,
};
use serde_json::{Value, json};
use support::independent::{claims_of, independent_checked, python_ready};
use support::*;
use tonic::transport::Channel;

const SELF_DECLARED: &str = "competence.self_declared";
const ALL_TYPES: [&str; 6] = [
    "education.course_result",
    "education.degree",
    "education.non_formal",
    "employment.period",
    "competence.validated",
    SELF_DECLARED,
];
const ESCO: &str = "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000d001";

async fn merits(net: &TestNet, agency: &str) -> SelfDeclaredMeritServiceClient<Channel> {
    SelfDeclaredMeritServiceClient::new(net.channel(agency).await.unwrap())
}

fn treasurer() -> SelfDeclaredMerit {
    SelfDeclaredMerit {
        title: "Föreningskassör".into(),
        description: "Kept the accounts of a sports club\nfor five years.".into(),
        skill_concepts: vec![ESCO.into()],
        start_date: "2019-01-01".into(),
        end_date: "2023-12-31".into(),
        declared_at: String::new(),
    }
}

async fn declare(net: &TestNet, merit: SelfDeclaredMerit) -> Result<DeclaredMerit, tonic::Status> {
    let req = DeclareMeritRequest {
        subject_id: DEMO_SUBJECT.into(),
        merit: Some(merit),
        person_assertion: String::new(),
    };
    merits(net, "registrar")
        .await
        .declare_merit(sealed(net, "registrar", req))
        .await
        .map(|r| r.into_inner().merit.unwrap())
}

async fn listed(net: &TestNet) -> Vec<DeclaredMerit> {
    let req = ListMeritsRequest {
        subject_id: DEMO_SUBJECT.into(),
        person_assertion: String::new(),
    };
    merits(net, "registrar")
        .await
        .list_merits(sealed(net, "registrar", req))
        .await
        .unwrap()
        .into_inner()
        .merits
}

async fn withdraw(net: &TestNet, id: &str) -> Result<DeclaredMerit, tonic::Status> {
    let req = WithdrawMeritRequest {
        subject_id: DEMO_SUBJECT.into(),
        merit_id: id.into(),
        person_assertion: String::new(),
    };
    merits(net, "registrar")
        .await
        .withdraw_merit(sealed(net, "registrar", req))
        .await
        .map(|r| r.into_inner().merit.unwrap())
}

fn merits_of(credential: &Value) -> Vec<Value> {
    credential["credentialSubject"]["verifiableCredential"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_declared_merit_is_in_the_passport_as_the_persons_own_never_as_attested() {
    let net = start().await;
    let declared = declare(&net, treasurer()).await.unwrap();
    assert!(uuid::Uuid::try_parse(&declared.merit_id).is_ok());
    assert!(!declared.audit_id.is_empty());
    assert_eq!(
        declared.registrar_agency,
        samverka::cli::demo::REGISTRAR_AGENCY
    );
    let shown = listed(&net).await;
    assert_eq!(shown.len(), 1);
    let merit = shown[0].merit.clone().unwrap();
    assert_eq!(merit.title, "Föreningskassör");
    assert!(merit.declared_at.starts_with("20"), "{}", merit.declared_at);

    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    let p = demo_passport(&net).await;
    // The gateway is the self-declared merits' source, and says so.
    let own = p
        .outcomes
        .iter()
        .find(|o| o.source_agency == GATEWAY_AGENCY)
        .expect("the gateway's own source");
    assert_eq!(own.record_count, 1);
    assert_eq!(own.source_name, "self-declared by the person");
    let non_formal = p
        .outcomes
        .iter()
        .find(|o| o.source_agency == samverka_adapter_non_formal::DEMO_AGENCY)
        .expect("the non-formal register was asked");
    assert_eq!(non_formal.record_count, 2);

    let cert = std::fs::read_to_string(&net.pki.gateway.0).unwrap();
    let federation =
        passport::Federation::from_pem(&std::fs::read_to_string(&net.pki.ca_cert).unwrap())
            .unwrap();
    let trust = passport::Trust::Cert(cert.clone());
    let report = passport::verify_report_from(&p.credential, &trust, None, Some(&federation));
    assert!(report.failure().is_none(), "{:?}", report.failure());
    let vc = report.credential.clone().unwrap();

    // Every merit says its kind; the self-declared one is issued and
    // created by the holder and carries no attestation; the non-formal
    // ones are attested by their register.
    let all = merits_of(&vc);
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|m| {
            (
                m["recordType"].as_str().unwrap(),
                m["meritKind"].as_str().unwrap(),
            )
        })
        .collect();
    for (record_type, kind) in &kinds {
        let expected = match *record_type {
            "education.non_formal" => "non-formal",
            "competence.validated" => "validated",
            SELF_DECLARED => "self-declared",
            t if t.starts_with("employment.") => "work-experience",
            _ => "formal",
        };
        assert_eq!(kind, &expected, "{record_type}");
    }
    let own: Vec<&Value> = all
        .iter()
        .filter(|m| m["recordType"] == SELF_DECLARED)
        .collect();
    assert_eq!(own.len(), 1);
    let own = own[0];
    let holder = &vc["credentialSubject"]["id"];
    assert_eq!(&own["issuer"]["id"], holder);
    assert_eq!(
        &own["credentialSubject"]["achievement"]["creator"]["id"],
        holder
    );
    assert!(own.get("attestation").is_none());
    assert_eq!(
        own["credentialSubject"]["achievement"]["name"],
        "Föreningskassör"
    );
    assert_eq!(
        own["credentialSubject"]["achievement"]["alignment"][0]["targetCode"],
        ESCO
    );
    let courses: Vec<&Value> = all
        .iter()
        .filter(|m| m["recordType"] == "education.non_formal")
        .collect();
    assert_eq!(courses.len(), 2);
    for c in &courses {
        assert!(c.get("attestation").is_some(), "{c}");
        assert_eq!(c["credentialSubject"]["achievement"]["creditUnit"], "hours");
    }
    // The ELM export has the person, not an organisation, award it.
    let elm = samverka_gateway::credential::elm::from_passport(&vc);
    let claims = elm["credentialSubject"]["hasClaim"].as_array().unwrap();
    let own_claim = claims
        .iter()
        .find(|c| c["title"].to_string().contains("Föreningskassör"))
        .unwrap();
    assert_eq!(own_claim["awardedBy"]["awardingBody"][0]["type"], "Person");
    assert!(
        claims
            .iter()
            .filter(|c| c != &own_claim)
            .all(|c| c["awardedBy"]["awardingBody"][0]["type"] == "Organisation")
    );
    let people = passport::merits(&vc);
    let mine = people.iter().find(|m| m.kind() == "self-declared").unwrap();
    assert!(!mine.source_attested);
    assert!(
        mine.describe().contains("attested by no one"),
        "{}",
        mine.describe()
    );

    // Forgeries by someone holding the gateway's key: the self-declared
    // merit presented as the gateway's or as attested, or a register's
    // merit presented as self-declared. Both verifiers refuse each.
    let key = std::fs::read_to_string(&net.pki.gateway.1).unwrap();
    let gateway_key = JwsSigner::from_pem(&cert, &key, GATEWAY_AGENCY).unwrap();
    let claims = claims_of(&p.credential);
    let index = |c: &Value, t: &str| {
        merits_of(c)
            .iter()
            .position(|m| m["recordType"] == t)
            .unwrap()
    };
    let forge = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        edit(&mut c);
        gateway_key.sign_jwt(&c).unwrap()
    };
    let attested =
        merits_of(&claims)[index(&claims, "education.non_formal")]["attestation"].clone();
    let cases = [
        (
            "the self-declared merit issued in the gateway's name",
            forge(&|c| {
                let i = index(c, SELF_DECLARED);
                c["credentialSubject"]["verifiableCredential"][i]["issuer"] = c["issuer"].clone();
            }),
        ),
        (
            "the self-declared merit carrying a register's attestation",
            forge(&|c| {
                let i = index(c, SELF_DECLARED);
                c["credentialSubject"]["verifiableCredential"][i]["attestation"] = attested.clone();
            }),
        ),
        (
            "the self-declared merit calling itself validated",
            forge(&|c| {
                let i = index(c, SELF_DECLARED);
                c["credentialSubject"]["verifiableCredential"][i]["meritKind"] = json!("validated");
            }),
        ),
        (
            "a register's course presented as issued by the holder",
            forge(&|c| {
                let i = index(c, "education.non_formal");
                let m = &mut c["credentialSubject"]["verifiableCredential"][i];
                m.as_object_mut().unwrap().remove("attestation");
                m["issuer"] = json!({"id": m["credentialSubject"]["id"], "type": ["Profile"]});
            }),
        ),
    ];
    let python = python_ready();
    if !python {
        eprintln!(
            "independent half skipped: python3 lacks jwcrypto or jsonschema (pip install jwcrypto jsonschema; .ci/run does)"
        );
    }
    let cert_path = net.pki.gateway.0.clone();
    for (what, jws) in std::iter::once(("genuine", p.credential.clone())).chain(cases) {
        let ours = passport::verify_report_from(&jws, &trust, None, Some(&federation)).failure();
        assert_eq!(ours.is_none(), what == "genuine", "{what}: {ours:?}");
        if python {
            let (valid, failed) = independent_checked(
                &jws,
                &cert_path,
                None,
                Some(&net.pki.ca_cert),
                net.dir.path(),
            );
            assert_eq!(valid, what == "genuine", "{what}: {failed}");
        }
    }
}

#[tokio::test]
async fn a_withdrawn_merit_leaves_later_passports_and_every_step_is_in_the_persons_log() {
    let net = start().await;
    let first = declare(&net, treasurer()).await.unwrap();
    let second = declare(
        &net,
        SelfDeclaredMerit {
            title: "Svenska som andraspråk, muntligt".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let gone = withdraw(&net, &first.merit_id).await.unwrap();
    assert!(gone.withdrawn_at.is_some());
    let e = withdraw(&net, &first.merit_id).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(reason(&e), "MERIT_NOT_FOUND");
    let ids: Vec<String> = listed(&net).await.into_iter().map(|m| m.merit_id).collect();
    assert_eq!(ids, std::slice::from_ref(&second.merit_id));

    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    let p = demo_passport(&net).await;
    let own: Vec<String> = p
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|e| e.record.as_ref())
        .filter(|r| r.record_type == SELF_DECLARED)
        .map(|r| r.record_id.clone())
        .collect();
    assert_eq!(own, std::slice::from_ref(&second.merit_id));

    // The person's log: each declaration, the withdrawal and its refused
    // repeat, the lists, and the passport that read the merit.
    let trail = net.gateway.store.audit_range(0, 10_000).await.unwrap();
    let of = |method: &str, decision: &str| {
        trail
            .iter()
            .filter(|e| {
                e.method == method && e.decision == decision && e.subject_id == DEMO_SUBJECT
            })
            .count()
    };
    assert_eq!(of("SelfDeclaredMeritService/DeclareMerit", "allowed"), 2);
    assert_eq!(of("SelfDeclaredMeritService/WithdrawMerit", "allowed"), 1);
    assert_eq!(of("SelfDeclaredMeritService/WithdrawMerit", "denied"), 1);
    assert_eq!(of("SelfDeclaredMeritService/ListMerits", "allowed"), 1);
    let withdrawn = trail
        .iter()
        .find(|e| e.method == "SelfDeclaredMeritService/WithdrawMerit" && e.decision == "allowed")
        .unwrap();
    assert_eq!(withdrawn.details.get("merit_id"), Some(&first.merit_id));
    assert_eq!(withdrawn.record_types, [SELF_DECLARED]);
    let read = trail
        .iter()
        .find(|e| {
            e.method == "RecordExchange/GetCompetencePassport"
                && e.decision == "allowed"
                && e.record_types.iter().any(|t| t == SELF_DECLARED)
        })
        .expect("the passport read of the self-declared merits");
    assert!(
        read.sources.iter().any(|s| s.contains(GATEWAY_AGENCY)),
        "{:?}",
        read.sources
    );
}

#[tokio::test]
async fn only_the_person_through_a_registrar_declares_and_bad_merits_store_nothing() {
    let net = start().await;
    // Not a registrar.
    let req = DeclareMeritRequest {
        subject_id: DEMO_SUBJECT.into(),
        merit: Some(treasurer()),
        person_assertion: String::new(),
    };
    let e = merits(&net, "reader")
        .await
        .declare_merit(sealed(&net, "registrar", req.clone()))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "ROLE_REQUIRED");
    // Without the person's assertion.
    let e = merits(&net, "registrar")
        .await
        .declare_merit(req.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    // The assertion of another person, for this person's merit.
    let mut other = sealed(
        &net,
        "registrar",
        DeclareMeritRequest {
            subject_id: OTHER_SUBJECT.into(),
            ..req.clone()
        },
    );
    other.subject_id = DEMO_SUBJECT.into();
    let e = merits(&net, "registrar")
        .await
        .declare_merit(other)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        ),
        "{e:?}"
    );
    // Bad merits, each with its stable reason.
    let bad = |edit: &dyn Fn(&mut SelfDeclaredMerit)| {
        let mut m = treasurer();
        edit(&mut m);
        m
    };
    for (merit, code, why) in [
        (
            bad(&|m| m.title.clear()),
            tonic::Code::InvalidArgument,
            "FIELD_MISSING",
        ),
        (
            bad(&|m| m.title = "x".repeat(201)),
            tonic::Code::InvalidArgument,
            "FIELD_TOO_LONG",
        ),
        (
            bad(&|m| m.skill_concepts = vec!["javascript:alert(1)".into()]),
            tonic::Code::InvalidArgument,
            "FIELD_INVALID",
        ),
        (
            bad(&|m| m.start_date = "2999-01-01".into()),
            tonic::Code::InvalidArgument,
            "FIELD_INVALID",
        ),
        (
            bad(&|m| m.end_date = "2018-01-01".into()),
            tonic::Code::InvalidArgument,
            "FIELD_INVALID",
        ),
    ] {
        let e = declare(&net, merit).await.unwrap_err();
        assert_eq!((e.code(), reason(&e).as_str()), (code, why));
    }
    // A merit id that is not the person's.
    let theirs = declare(&net, treasurer()).await.unwrap();
    let req = WithdrawMeritRequest {
        subject_id: OTHER_SUBJECT.into(),
        merit_id: theirs.merit_id.clone(),
        person_assertion: String::new(),
    };
    let e = merits(&net, "registrar")
        .await
        .withdraw_merit(sealed(&net, "registrar", req))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "MERIT_NOT_FOUND");
    assert_eq!(listed(&net).await.len(), 1, "only the good merit is kept");

    // A consent that does not cover self-declared merits keeps them out.
    grant(&net, DEMO_PURPOSE, &ALL_TYPES[..5]).await;
    let p = demo_passport(&net).await;
    assert!(
        p.sections
            .iter()
            .flat_map(|s| &s.entries)
            .all(|e| e.record.as_ref().unwrap().record_type != SELF_DECLARED)
    );
    assert!(p.outcomes.iter().all(|o| o.source_agency != GATEWAY_AGENCY));

    // Never as bare records: GetRecords refuses the type outright.
    grant(&net, DEMO_PURPOSE, &ALL_TYPES).await;
    let e = exchange(&net, "reader")
        .await
        .get_records(read_request(DEMO_SUBJECT, &[SELF_DECLARED], DEMO_PURPOSE))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (tonic::Code::InvalidArgument, "FIELD_INVALID")
    );
}

#[tokio::test]
async fn a_person_keeps_at_most_the_limit() {
    let net = start().await;
    let limit = samverka_gateway::service::merits::MAX_MERITS;
    for i in 0..limit {
        declare(
            &net,
            SelfDeclaredMerit {
                title: format!("Merit {i}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let e = declare(&net, treasurer()).await.unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (tonic::Code::FailedPrecondition, "MERIT_LIMIT")
    );
    let first = listed(&net).await[0].merit_id.clone();
    withdraw(&net, &first).await.unwrap();
    declare(&net, treasurer()).await.unwrap();
}

/// A consent's period applies to the person's own merits as to any
/// source's records, and the passport's count for their source is what
/// is within it: nothing is said of what the person did not consent to.
#[tokio::test]
async fn a_consents_period_keeps_merits_outside_it_out_and_uncounted() {
    use samverka_proto::v1::{ApproveConsentRequest, RequestConsentRequest};
    let net = start().await;
    // 2019–2023: before the period below.
    declare(&net, treasurer()).await.unwrap();
    // Undated: counts from the day it is declared (today).
    let undated = declare(
        &net,
        SelfDeclaredMerit {
            title: "Svenska som andraspråk, muntligt".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let asked = consents(&net, "reader")
        .await
        .request_consent(RequestConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
            record_types: vec![SELF_DECLARED.into()],
            valid_for_days: 30,
            justification: "Vi vill se vad du själv har lagt till sedan 2024.".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            records_from: "2024-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    consents(&net, "registrar")
        .await
        .approve_consent(sealed(
            &net,
            "registrar",
            ApproveConsentRequest {
                consent_id: asked.consent_id,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let p = demo_passport(&net).await;
    let own: Vec<&str> = p
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|e| e.record.as_ref())
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(own, [undated.merit_id.as_str()]);
    let keeper = p
        .outcomes
        .iter()
        .find(|o| o.source_agency == GATEWAY_AGENCY)
        .unwrap();
    assert_eq!(keeper.record_count, 1, "{keeper:?}");
    let vc = claims_of(&p.credential);
    assert_eq!(
        vc["credentialSubject"]["sources"][0]["recordCount"], 1,
        "{}",
        vc["credentialSubject"]["sources"]
    );
}
