//! The kinds of merit, and how a self-declared merit and a non-formal
//! course are rendered.

use super::*;
use samverka_proto::records::v1::{NonFormalLearning, SelfDeclaredMerit};

#[test]
fn the_kind_follows_the_record_type_alone() {
    for (record_type, kind) in [
        ("education.course_result", "formal"),
        ("education.degree", "formal"),
        ("education.upper_secondary_grade", "formal"),
        ("education.vocational_diploma", "formal"),
        ("education.non_formal", "non-formal"),
        ("education.study_circle", "other"),
        ("employment.period", "work-experience"),
        ("competence.validated", "validated"),
        ("competence.self_declared", "self-declared"),
        ("competence.language_test", "other"),
        ("", "other"),
    ] {
        assert_eq!(merit_kind(record_type), kind, "{record_type}");
    }
}

fn credential(record_type: &str, payload: Payload) -> Value {
    let identity = json!({"type": "IdentityObject"});
    let issuer = json!({"id": "urn:samverka:agency:2021999012", "type": ["Profile"], "name": "gw"});
    let holder = Holder {
        identity: &identity,
        subject_id: "urn:uuid:00000000-0000-4000-8000-000000000001",
        issuer: &issuer,
        valid_from: "2026-12-01T00:00:00Z",
    };
    let record = Record {
        record_type: record_type.into(),
        subject_id: "199003142388".into(),
        source_agency: "2021999111".into(),
        record_id: "r-1".into(),
        payload: Some(payload),
        ..Default::default()
    };
    open_badge(&record, "a register", "", &holder)
}

#[test]
fn a_self_declared_merit_is_the_holders_and_a_course_its_providers() {
    let own = credential(
        SELF_DECLARED,
        Payload::SelfDeclaredMerit(SelfDeclaredMerit {
            title: "Kassör".into(),
            description: "Fem år i en idrottsförening.".into(),
            ..Default::default()
        }),
    );
    let holder = "urn:uuid:00000000-0000-4000-8000-000000000001";
    assert_eq!(own["meritKind"], "self-declared");
    assert_eq!(own["issuer"]["id"], holder);
    assert_eq!(
        own["credentialSubject"]["achievement"]["creator"]["id"],
        holder
    );
    assert_eq!(
        own["credentialSubject"]["achievement"]["description"],
        "Fem år i en idrottsförening."
    );
    let merit = Merit::of(&own);
    assert_eq!(merit.kind(), "self-declared");
    assert!(merit.describe().contains("attested by no one"));
    // Whatever it carries, it is never shown as attested.
    let mut forged = own.clone();
    forged["attestation"] = json!({"jwt": "x", "x5c": []});
    assert!(!Merit::of(&forged).source_attested);

    let course = credential(
        "education.non_formal",
        Payload::NonFormalLearning(NonFormalLearning {
            title: "Truckkörning A+B".into(),
            provider_kind: "folk_high_school".into(),
            provider_org_number: "8029990010".into(),
            provider_name: "Demo Folkhögskola".into(),
            hours: 40,
            completion_date: "2022-09-16".into(),
            skill_concepts: vec!["http://data.europa.eu/esco/skill/x".into()],
            ..Default::default()
        }),
    );
    let a = &course["credentialSubject"]["achievement"];
    assert_eq!(course["meritKind"], "non-formal");
    assert_eq!(course["issuer"]["id"], "urn:samverka:agency:2021999012");
    assert_eq!(a["achievementType"], "CertificateOfCompletion");
    assert_eq!(a["creator"]["id"], "urn:samverka:agency:8029990010");
    assert_eq!(
        (a["creditsAvailable"].as_f64(), &a["creditUnit"]),
        (Some(40.0), &json!("hours"))
    );
    assert_eq!(a["specialization"], "folk high school");
    assert_eq!(a["alignment"][0]["targetFramework"], "ESCO");
    assert_eq!(course["awardedDate"], "2022-09-16T00:00:00Z");
}
