//! The passport credential: its shape against the published schemas, each
//! check of its verification, and the holder binding.

use super::*;
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};
use samverka_proto::records::v1::GradingScale;
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{
    CourseResult, Degree, EmploymentPeriod, Record, UpperSecondaryGrade, ValidatedCompetence,
    VocationalDiploma,
};
use samverka_proto::v1::{PassportEntry, PassportSection, RecordTypeDecision, SourceOutcome};

const PERSON: &str = "199003142388";

fn record(record_type: &str, id: &str, payload: Payload) -> PassportEntry {
    PassportEntry {
        record: Some(Record {
            record_type: record_type.into(),
            subject_id: PERSON.into(),
            source_agency: "2021999095".into(),
            record_id: id.into(),
            updated_at: None,
            payload: Some(payload),
        }),
        source_name: "register".into(),
        retrieved_at: Some(crate::time::to_timestamp(1_764_000_000_000)),
        ..Default::default()
    }
}

/// A passport with one record of every kind the proto knows, some
/// fields left empty.
fn passport() -> CompetencePassport {
    let entries = vec![
        record(
            "education.course_result",
            "c",
            Payload::CourseResult(CourseResult {
                course_code: "DD1310".into(),
                course_name: "Programmeringsteknik".into(),
                credits: 7.5,
                grade: "A".into(),
                grading_scale: GradingScale::Ects as i32,
                examination_date: "2011-01-14".into(),
                institution_org_number: "2021002114".into(),
                institution_name: "Demo university".into(),
                sun_field: "481".into(),
                ..Default::default()
            }),
        ),
        record(
            "education.degree",
            "d",
            Payload::Degree(Degree {
                title: "Teknologie kandidatexamen".into(),
                credits: 180.0,
                eqf_level: 6,
                award_date: "2013-06-01".into(),
                institution_name: "Demo university".into(),
                ..Default::default()
            }),
        ),
        record(
            "education.upper_secondary_grade",
            "g",
            Payload::UpperSecondaryGrade(UpperSecondaryGrade {
                course_code: "MATMAT01c".into(),
                course_name: "Matematik 1c".into(),
                points: 100,
                grade: "B".into(),
                grade_date: "not a date".into(),
                ..Default::default()
            }),
        ),
        record(
            "education.vocational_diploma",
            "v",
            Payload::VocationalDiploma(VocationalDiploma {
                programme_name: "Automationstekniker".into(),
                yh_credits: 400,
                eqf_level: 5,
                ..Default::default()
            }),
        ),
        record(
            "employment.period",
            "e",
            Payload::EmploymentPeriod(EmploymentPeriod {
                occupation_title: "Systemutvecklare".into(),
                start_date: "2014-02-01".into(),
                ssyk_code: "2512".into(),
                isco_code: "2512".into(),
                employer_name: "Demo AB".into(),
                ..Default::default()
            }),
        ),
        record(
            "competence.validated",
            "k",
            Payload::ValidatedCompetence(ValidatedCompetence {
                competence_area: "Svetsning".into(),
                skill_concepts: vec![
                    "http://data.europa.eu/esco/skill/abc".into(),
                    "x1Y_2".into(),
                ],
                ..Default::default()
            }),
        ),
        record(
            "competence.language_test",
            "o",
            Payload::Other(prost_types::Any {
                type_url: "type.example/LanguageTest".into(),
                value: vec![],
            }),
        ),
    ];
    CompetencePassport {
        passport_id: "0b6f9c1e-3c1a-4d7e-9a53-1f1b0c2d3e4f".into(),
        subject_id: PERSON.into(),
        issuer_agency: "2021999012".into(),
        issued_at: Some(crate::time::to_timestamp(1_764_000_000_000)),
        sections: vec![PassportSection {
            kind: "education".into(),
            entries,
        }],
        record_types: vec![RecordTypeDecision {
            record_type: "competence.validated".into(),
            included: false,
            reason: "CONSENT_MISSING".into(),
            message: "no consent".into(),
            ..Default::default()
        }],
        outcomes: vec![SourceOutcome {
            source_agency: "2021999095".into(),
            source_name: "register".into(),
            status: source_outcome::Status::Ok as i32,
            record_count: 7,
            message: String::new(),
        }],
        holder_salt: new_holder_salt(),
        consent_ids: vec!["c-1".into()],
        ..Default::default()
    }
}

fn gateway() -> (JwsSigner, String) {
    let ca = DevCa::generate("ca").unwrap();
    let gw = ca
        .issue(&CertRequest::new(
            OrgNumber::parse("2021999012").unwrap(),
            Role::Gateway,
            "gw",
        ))
        .unwrap();
    let signer = JwsSigner::from_pem(&gw.cert_pem, &gw.key_pem, "2021999012").unwrap();
    (signer, gw.cert_pem)
}

#[test]
fn every_record_kind_gives_a_passport_that_matches_the_published_schemas() {
    let (signer, cert) = gateway();
    let p = passport();
    let jws = sign(&signer, &p, "Operator", None).unwrap().unwrap();
    let report = verify_report(
        &jws,
        &cert,
        Some(&Holder {
            subject_id: PERSON.into(),
            salt: p.holder_salt.clone(),
        }),
    );
    assert_eq!(report.failure(), None, "{:?}", report.checks);
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "signature",
            "issuer",
            "claims",
            "contexts",
            "schema",
            "merits",
            "sources",
            "holder"
        ]
    );
    let vc = report.credential.unwrap();
    assert_eq!(vc["type"], json!(["VerifiableCredential", "ClrCredential"]));
    assert_eq!(vc["partial"], true, "a type was left out");
    // The number is nowhere in the credential, hashed or not, without
    // the salt.
    let text = vc.to_string();
    assert!(!text.contains(PERSON));
    assert!(!text.contains(&identity_hash(PERSON, "")));
    assert!(!text.contains(&p.holder_salt));

    let merits = merits(&vc);
    assert_eq!(merits.len(), 7);
    let course = &merits[0];
    assert_eq!(
        (course.code.as_str(), course.result.as_str(), course.credits),
        ("DD1310", "A", Some(7.5))
    );
    assert_eq!(course.awarded, "2011-01-14");
    assert_eq!(
        course.codes,
        [("SUN 2020 field".to_owned(), "481".to_owned())]
    );
    // A date that is not one is left out, not passed on.
    assert_eq!(merits[2].awarded, "");
    assert_eq!(merits[4].start, "2014-02-01");
    assert_eq!(merits[4].end, "");
    assert_eq!(merits[4].achievement_type, "ext:EmploymentPeriod");
    assert_eq!(merits[6].name, "type.example/LanguageTest");
    let merit_vc = &vc["credentialSubject"]["verifiableCredential"][0];
    assert_eq!(
        merit_vc["credentialSubject"]["result"][0]["resultDescription"],
        merit_vc["credentialSubject"]["achievement"]["resultDescription"][0]["id"]
    );
}

#[test]
fn the_holder_check_needs_the_number_and_the_salt() {
    let (signer, cert) = gateway();
    let p = passport();
    let jws = sign(&signer, &p, "Operator", None).unwrap().unwrap();
    for (person, salt) in [
        ("199003142396", p.holder_salt.as_str()),
        (PERSON, "00000000000000000000000000000000"),
        (PERSON, ""),
    ] {
        let holder = Holder {
            subject_id: person.into(),
            salt: salt.into(),
        };
        let report = verify_report(&jws, &cert, Some(&holder));
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.failure.is_some())
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["holder"], "{person} {salt}");
    }
    // Two passports of one person share no identifier.
    let other = sign(&signer, &passport(), "Operator", None)
        .unwrap()
        .unwrap();
    let a = verify(&jws, &cert).unwrap();
    let b = verify(&other, &cert).unwrap();
    assert_ne!(a["credentialSubject"]["id"], b["credentialSubject"]["id"]);
    assert_ne!(
        a["credentialSubject"]["identifier"],
        b["credentialSubject"]["identifier"]
    );
}

#[test]
fn a_passport_without_records_has_no_credential() {
    let (signer, _) = gateway();
    let mut p = passport();
    p.sections[0].entries.clear();
    assert_eq!(sign(&signer, &p, "Operator", None).unwrap(), None);
}

/// A credential that a gateway's key signed correctly but whose
/// content breaks a rule: each is refused by the check named.
#[test]
fn each_check_refuses_what_it_is_for() {
    let (signer, cert) = gateway();
    let vc = verify(
        &sign(&signer, &passport(), "Op", None).unwrap().unwrap(),
        &cert,
    )
    .unwrap();
    let claims = with_claims(vc.clone());
    let cases: Vec<(&str, Value)> = vec![
        ("claims", {
            let mut c = claims.clone();
            c["sub"] = json!("urn:uuid:someone-else");
            c
        }),
        ("claims", {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("nbf");
            c
        }),
        ("contexts", {
            let mut c = claims.clone();
            c["@context"][2] = json!("https://example.org/context.json");
            c
        }),
        ("contexts", {
            let mut c = claims.clone();
            c["credentialSubject"]["verifiableCredential"][1]["@context"] = json!([VC_CONTEXT]);
            c
        }),
        ("schema", {
            let mut c = claims.clone();
            c["credentialSubject"]["verifiableCredential"][0]["credentialSubject"]["achievement"]
                .as_object_mut()
                .unwrap()
                .remove("criteria");
            c
        }),
        ("schema", {
            let mut c = claims.clone();
            c["credentialSubject"]["identifier"][0]["salt"] = json!(1);
            c["credentialSubject"]["verifiableCredential"] = json!([]);
            c
        }),
        ("merits", {
            let mut c = claims.clone();
            c["credentialSubject"]["verifiableCredential"][3]["credentialSubject"]["identifier"]
                [0]["identityHash"] = json!(identity_hash("199003142396", "x"));
            c
        }),
        ("issuer", {
            let mut c = with_claims({
                let mut v = vc.clone();
                v["issuer"]["id"] = json!("urn:samverka:agency:2021999020");
                v
            });
            c["credentialSubject"]["verifiableCredential"] = json!([]);
            c
        }),
    ];
    for (check, claims) in cases {
        let jws = signer.sign_jwt(&claims).unwrap();
        let report = verify_report(&jws, &cert, None);
        let failed = report
            .checks
            .iter()
            .find(|c| c.failure.is_some())
            .map(|c| c.name);
        assert_eq!(failed, Some(check), "{:?}", report.checks);
    }
}

#[test]
fn only_a_gateway_certificate_vouches_for_a_passport() {
    let ca = DevCa::generate("ca").unwrap();
    let org = OrgNumber::parse("2021999012").unwrap();
    // An agency certificate's key signing in the gateway's name.
    let agency = ca
        .issue(&CertRequest::new(org.clone(), Role::Agency, "agency"))
        .unwrap();
    let signer = JwsSigner::from_pem(&agency.cert_pem, &agency.key_pem, "2021999012").unwrap();
    let jws = sign(&signer, &passport(), "x", None).unwrap().unwrap();
    let err = verify(&jws, &agency.cert_pem).unwrap_err();
    assert!(err.0.contains("not a samverka gateway's"), "{err}");

    // A gateway's signature over something that is not a passport.
    let (signer, cert) = gateway();
    let not_passport = signer
        .sign_jwt(&json!({"type": ["VerifiableCredential"]}))
        .unwrap();
    let err = verify(&not_passport, &cert).unwrap_err();
    assert_eq!(err.0, "not a competence passport credential");
    // Another gateway's certificate: the key in the header is not its.
    let (_, other_cert) = gateway();
    let jws = sign(&signer, &passport(), "x", None).unwrap().unwrap();
    let err = verify(&jws, &other_cert).unwrap_err();
    assert_eq!(err.0, "signed with another key than the certificate's");
    // And the passport itself verifies.
    let ok = verify(&jws, &cert).unwrap();
    assert_eq!(ok["issuer"]["name"], "x");
    assert_eq!(ok["id"], "urn:uuid:0b6f9c1e-3c1a-4d7e-9a53-1f1b0c2d3e4f");
    assert!(
        ok.get("iss").is_none(),
        "the JWT claims are not the credential's"
    );
}

/// A passport whose first record its source attested: the merit is the
/// source's credential, the passport verifies with the federation CA, and
/// a merit changed and signed again by the gateway fails `sources`.
#[test]
fn a_merit_attested_by_its_source_is_shown_as_signed_and_checked() {
    use samverka_adapter::credential::Attester;
    let ca = DevCa::generate("federation").unwrap();
    let gw = ca
        .issue(&CertRequest::new(
            OrgNumber::parse("2021999012").unwrap(),
            Role::Gateway,
            "gw",
        ))
        .unwrap();
    let signer = JwsSigner::from_pem(&gw.cert_pem, &gw.key_pem, "2021999012").unwrap();
    let att = ca
        .issue(&CertRequest::new(
            OrgNumber::parse("2021999095").unwrap(),
            Role::Attester,
            "a",
        ))
        .unwrap();
    let attester = Attester::from_pem(&att.cert_pem, &att.key_pem).unwrap();
    let mut p = passport();
    p.holder_id = new_holder_id();
    // Issued now: the attestation is made during the passport's read.
    p.issued_at = Some(crate::time::to_timestamp(crate::time::system_now_ms()));
    let entry = &mut p.sections[0].entries[0];
    let record = entry.record.clone().unwrap();
    entry.attestation = attester
        .attest(&record, "register", &p.holder_id, &p.holder_salt)
        .unwrap();
    entry.attestation_certificate = attester.certificate_der().to_vec();
    let jws = sign(&signer, &p, "Operator", None).unwrap().unwrap();
    let federation = Federation::from_pem(ca.cert_pem()).unwrap();
    let trust = Trust::Cert(gw.cert_pem.clone());
    let report = verify_report_from(&jws, &trust, None, Some(&federation));
    assert_eq!(report.failure(), None, "{:?}", report.checks);
    let sources = report.checks.iter().find(|c| c.name == "sources").unwrap();
    assert_eq!(
        sources.note.as_deref(),
        Some("1 of 7 merits attested by their source")
    );
    let vc = report.credential.unwrap();
    let first = &vc["credentialSubject"]["verifiableCredential"][0];
    assert_eq!(first["issuer"]["id"], "urn:samverka:agency:2021999095");
    assert_eq!(first["credentialSubject"]["id"], json!(p.holder_id));
    let merits = merits(&vc);
    assert!(merits[0].source_attested);
    assert!(!merits[1].source_attested);

    // Under another federation CA the attestation's certificate fails.
    let stranger = Federation::from_pem(DevCa::generate("other").unwrap().cert_pem()).unwrap();
    let report = verify_report_from(&jws, &trust, None, Some(&stranger));
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "sources" && c.failure.is_some())
    );

    // The gateway changes the attested grade and signs the passport again.
    let mut claims = crate::credential::signing::payload(&jws).unwrap();
    claims["credentialSubject"]["verifiableCredential"][0]["credentialSubject"]["result"][0]["value"] =
        json!("VG");
    let forged = signer.sign_jwt(&claims).unwrap();
    let report = verify_report_from(&forged, &trust, None, Some(&federation));
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.failure.is_some())
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, ["sources"], "{:?}", report.checks);
}
