//! The competence passport: one person's education, employment and
//! validated competences from every source, as a W3C Verifiable Credential
//! signed by the gateway.
//!
//! The gateway assembles a passport in
//! `RecordExchange.GetCompetencePassport` (see [`crate::service::passport`]);
//! this module turns the assembled `CompetencePassport` message into the
//! credential, signs it and verifies it offline (`samverka passport
//! verify` describes it for people).
//!
//! # The credential
//! A JSON document in the W3C Verifiable Credentials data model 2.0 whose
//! entries have the shape of Open Badges 3.0 achievements:
//! - `issuer`: the agency operating the gateway
//!   (`urn:samverka:agency:<org number>`, the identity in its certificate);
//! - `credentialSubject`: the person, identified by their personal identity
//!   or coordination number (an Open Badges `IdentityObject` of type
//!   `nationalIdentityNumber`), with one entry in `achievement` per record:
//!   its Open Badges `achievementType`, name, code, credits, result, dates,
//!   the organisation behind it (`creator`), and the record's public
//!   classification codes as `alignment`s (SUN 2020, SeQF/EQF, SSYK 2012,
//!   ISCO-08, ESCO); `source` names the agency register it came from and
//!   when the gateway received it;
//! - `credentialSubject.sources`: every source asked and what it answered,
//!   so that a source that was down is visible in what is signed;
//!   `credentialSubject.omitted`: the record types left out and why.
//!
//! It is secured as a compact JWS (ES256, `typ` `vc+jwt`, the payload is the
//! credential itself, as in W3C VC-JOSE-COSE) made with the gateway's key;
//! [`verify`] checks it against the gateway's certificate and that the
//! issuer is the agency that certificate names. See
//! `docs/competence-passport.md` for an example and the mapping to the
//! European Learning Model.

use samverka_certs::{CertIdentity, Role};
use samverka_proto::records::v1::{GradingScale, Record, record::Payload};
use samverka_proto::v1::{CompetencePassport, source_outcome};
use serde_json::{Value, json};

use crate::credential::signing::{JwsSigner, SignatureError};
use crate::time::{from_timestamp, rfc3339};

/// The JWS `typ` of a passport credential.
pub const CREDENTIAL_TYPE: &str = "vc+jwt";

/// The credential's own type, beside `VerifiableCredential`.
pub const PASSPORT_TYPE: &str = "CompetencePassportCredential";

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

fn agency_urn(org: &str) -> String {
    format!("urn:samverka:agency:{org}")
}

fn ms(ts: &Option<prost_types::Timestamp>) -> String {
    ts.as_ref()
        .and_then(from_timestamp)
        .map(rfc3339)
        .unwrap_or_default()
}

/// An Open Badges `Alignment` to a public classification.
fn alignment(framework: &str, code: &str) -> Value {
    let mut a = json!({
        "type": ["Alignment"],
        "targetFramework": framework,
        "targetCode": code,
        "targetName": format!("{framework} {code}"),
    });
    if code.starts_with("http://") || code.starts_with("https://") {
        a["targetUrl"] = json!(code);
    }
    a
}

fn eqf(level: u32) -> Option<Value> {
    (level > 0).then(|| alignment("EQF", &level.to_string()))
}

fn profile(org: &str, name: &str) -> Value {
    let mut p = json!({ "type": ["Profile"], "name": name });
    if !org.is_empty() {
        p["id"] = json!(agency_urn(org));
    }
    p
}

fn grading_scale(scale: i32) -> &'static str {
    match GradingScale::try_from(scale).unwrap_or(GradingScale::Unspecified) {
        GradingScale::UGVg => "U/G/VG",
        GradingScale::U345 => "U/3/4/5",
        GradingScale::Ects => "ECTS A-F",
        GradingScale::AF => "A-F",
        GradingScale::Unspecified => "",
    }
}

/// Puts `value` under `key` unless it is empty (an empty string, a zero,
/// an empty list or null).
fn set(entry: &mut Value, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if !empty {
        entry[key] = value;
    }
}

/// One record as an achievement entry of the credential.
pub fn achievement(record: &Record, source_name: &str, retrieved_at: &str) -> Value {
    let mut e = json!({
        "id": format!("urn:samverka:record:{}:{}", record.source_agency, record.record_id),
        "type": ["Achievement"],
        "recordType": record.record_type,
    });
    let alignments: Vec<Value>;
    match &record.payload {
        Some(Payload::CourseResult(c)) => {
            set(&mut e, "achievementType", json!("Course"));
            set(&mut e, "name", json!(c.course_name));
            set(&mut e, "nameEn", json!(c.course_name_en));
            set(&mut e, "humanCode", json!(c.course_code));
            set(&mut e, "creditsAvailable", json!(c.credits));
            set(&mut e, "creditUnit", json!("hp"));
            set(
                &mut e,
                "result",
                json!([{ "type": ["Result"], "value": c.grade, "scale": grading_scale(c.grading_scale) }]),
            );
            set(&mut e, "awardedDate", json!(c.examination_date));
            e["creator"] = profile(&c.institution_org_number, &c.institution_name);
            alignments = (!c.sun_field.is_empty())
                .then(|| alignment("SUN 2020 field", &c.sun_field))
                .into_iter()
                .collect();
        }
        Some(Payload::Degree(d)) => {
            let kind = match d.eqf_level {
                6 => "BachelorDegree",
                7 => "MasterDegree",
                8 => "DoctoralDegree",
                _ => "Degree",
            };
            set(&mut e, "achievementType", json!(kind));
            set(&mut e, "name", json!(d.title));
            set(&mut e, "nameEn", json!(d.title_en));
            set(&mut e, "fieldOfStudy", json!(d.main_field));
            set(&mut e, "creditsAvailable", json!(d.credits));
            set(&mut e, "creditUnit", json!("hp"));
            set(&mut e, "awardedDate", json!(d.award_date));
            e["creator"] = profile(&d.institution_org_number, &d.institution_name);
            alignments = [
                (!d.sun_level.is_empty()).then(|| alignment("SUN 2020 level", &d.sun_level)),
                (!d.sun_field.is_empty()).then(|| alignment("SUN 2020 field", &d.sun_field)),
                eqf(d.eqf_level),
            ]
            .into_iter()
            .flatten()
            .collect();
        }
        Some(Payload::UpperSecondaryGrade(g)) => {
            set(&mut e, "achievementType", json!("Course"));
            set(&mut e, "name", json!(g.course_name));
            set(&mut e, "humanCode", json!(g.course_code));
            set(&mut e, "creditsAvailable", json!(g.points));
            set(&mut e, "creditUnit", json!("gymnasiepoäng"));
            set(
                &mut e,
                "result",
                json!([{ "type": ["Result"], "value": g.grade, "scale": "A-F" }]),
            );
            set(&mut e, "awardedDate", json!(g.grade_date));
            set(&mut e, "programmeCode", json!(g.programme_code));
            e["creator"] = profile(&g.school_org_number, &g.school_name);
            alignments = Vec::new();
        }
        Some(Payload::VocationalDiploma(v)) => {
            set(&mut e, "achievementType", json!("Diploma"));
            set(&mut e, "name", json!(v.programme_name));
            set(&mut e, "description", json!(v.diploma_kind));
            set(&mut e, "creditsAvailable", json!(v.yh_credits));
            set(&mut e, "creditUnit", json!("yh-poäng"));
            set(&mut e, "awardedDate", json!(v.issue_date));
            e["creator"] = profile(&v.provider_org_number, &v.provider_name);
            alignments = [
                (!v.sun_field.is_empty()).then(|| alignment("SUN 2020 field", &v.sun_field)),
                eqf(v.eqf_level),
            ]
            .into_iter()
            .flatten()
            .collect();
        }
        Some(Payload::EmploymentPeriod(p)) => {
            set(&mut e, "achievementType", json!("ext:EmploymentPeriod"));
            set(&mut e, "name", json!(p.occupation_title));
            set(&mut e, "activityStartDate", json!(p.start_date));
            set(&mut e, "activityEndDate", json!(p.end_date));
            set(&mut e, "extentPercent", json!(p.extent_percent));
            e["creator"] = profile(&p.employer_org_number, &p.employer_name);
            alignments = [
                (!p.ssyk_code.is_empty()).then(|| alignment("SSYK 2012", &p.ssyk_code)),
                (!p.isco_code.is_empty()).then(|| alignment("ISCO-08", &p.isco_code)),
            ]
            .into_iter()
            .flatten()
            .collect();
        }
        Some(Payload::ValidatedCompetence(c)) => {
            set(&mut e, "achievementType", json!("Competency"));
            set(&mut e, "name", json!(c.competence_area));
            set(&mut e, "assessmentMethod", json!(c.method));
            set(&mut e, "awardedDate", json!(c.assessment_date));
            e["creator"] = profile(&c.assessor_org_number, &c.assessor_name);
            alignments = c
                .skill_concepts
                .iter()
                .map(|s| {
                    let framework = if s.starts_with("http://data.europa.eu/esco/") {
                        "ESCO"
                    } else {
                        "JobTech taxonomy"
                    };
                    alignment(framework, s)
                })
                .chain(eqf(c.eqf_level))
                .collect();
        }
        Some(Payload::Other(any)) => {
            set(&mut e, "achievementType", json!("Achievement"));
            set(&mut e, "name", json!(any.type_url));
            alignments = Vec::new();
        }
        None => alignments = Vec::new(),
    }
    set(&mut e, "alignment", Value::Array(alignments));
    e["source"] = json!({
        "agency": record.source_agency,
        "name": source_name,
        "retrievedAt": retrieved_at,
    });
    set(&mut e, "updatedAt", json!(ms(&record.updated_at)));
    e
}

/// The credential for an assembled passport (its `credential` field is not
/// read). `issuer_name` is the operator's name as configured.
pub fn credential(passport: &CompetencePassport, issuer_name: &str) -> Value {
    let achievements: Vec<Value> = passport
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|entry| {
            let record = entry.record.as_ref()?;
            Some(achievement(
                record,
                &entry.source_name,
                &ms(&entry.retrieved_at),
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
            set(&mut s, "message", json!(o.message));
            s
        })
        .collect();
    let omitted: Vec<Value> = passport
        .record_types
        .iter()
        .filter(|d| !d.included)
        .map(|d| json!({ "recordType": d.record_type, "reason": d.reason, "message": d.message }))
        .collect();
    json!({
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
        ],
        "id": format!("urn:uuid:{}", passport.passport_id),
        "type": ["VerifiableCredential", PASSPORT_TYPE],
        "name": "Competence passport",
        "issuer": {
            "id": agency_urn(&passport.issuer_agency),
            "type": ["Profile"],
            "name": issuer_name,
        },
        "validFrom": ms(&passport.issued_at),
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [{
                "type": "IdentityObject",
                "identityType": "nationalIdentityNumber",
                "hashed": false,
                "identityHash": passport.subject_id,
            }],
            "achievement": achievements,
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

/// Signs the credential of `passport` with the gateway's key.
pub fn sign(
    signer: &JwsSigner,
    passport: &CompetencePassport,
    issuer_name: &str,
) -> Result<String, SignatureError> {
    signer.sign(CREDENTIAL_TYPE, &credential(passport, issuer_name))
}

/// Verifies a passport credential against the gateway's certificate
/// (PEM): the signature, that the certificate is a samverka gateway's, and
/// that the credential's issuer is the agency the certificate names.
/// Returns the credential.
pub fn verify(jws: &str, gateway_cert_pem: &str) -> Result<Value, SignatureError> {
    let fail = |m: String| SignatureError(m);
    let credential: Value =
        crate::credential::signing::verify(jws, CREDENTIAL_TYPE, gateway_cert_pem)?;
    let identity =
        CertIdentity::from_pem(gateway_cert_pem).map_err(|e| fail(format!("certificate: {e}")))?;
    if identity.role != Role::Gateway {
        return Err(fail(format!(
            "the certificate is a {:?}'s, not a samverka gateway's",
            identity.role
        )));
    }
    let types = credential["type"].as_array().cloned().unwrap_or_default();
    if !types.iter().any(|t| t == "VerifiableCredential")
        || !types.iter().any(|t| t == PASSPORT_TYPE)
    {
        return Err(fail("not a competence passport credential".into()));
    }
    let issuer = credential["issuer"]["id"].as_str().unwrap_or_default();
    if issuer != agency_urn(identity.agency.as_str()) {
        return Err(fail(format!(
            "issued in the name of {issuer:?}, but signed by the gateway of {}",
            identity.agency
        )));
    }
    Ok(credential)
}

/// One achievement of a passport credential in a line for people: what,
/// its credits, result and dates, who attests it and its classification
/// codes.
pub fn describe_achievement(a: &Value) -> String {
    fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key].as_str().unwrap_or_default()
    }
    let mut parts = vec![str_of(a, "achievementType").to_owned()];
    if !str_of(a, "humanCode").is_empty() {
        parts.push(str_of(a, "humanCode").to_owned());
    }
    parts.push(str_of(a, "name").to_owned());
    let mut line = parts.join(" ");
    if let Some(credits) = a["creditsAvailable"].as_f64() {
        line.push_str(&format!(", {credits} {}", str_of(a, "creditUnit")));
    }
    if let Some(result) = a["result"][0]["value"].as_str() {
        line.push_str(&format!(", result {result}"));
    }
    let start = str_of(a, "activityStartDate");
    if !start.is_empty() {
        let end = match str_of(a, "activityEndDate") {
            "" => "now",
            end => end,
        };
        line.push_str(&format!(", {start} to {end}"));
    }
    if !str_of(a, "awardedDate").is_empty() {
        line.push_str(&format!(", {}", str_of(a, "awardedDate")));
    }
    let codes: Vec<String> = a["alignment"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|al| {
                    format!(
                        "{} {}",
                        str_of(al, "targetFramework"),
                        str_of(al, "targetCode")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    line.push_str(&format!("\n        by {}", str_of(&a["creator"], "name")));
    if !codes.is_empty() {
        line.push_str(&format!("; {}", codes.join("; ")));
    }
    line.push_str(&format!(
        "\n        from {} ({}), retrieved {}",
        str_of(&a["source"], "name"),
        str_of(&a["source"], "agency"),
        str_of(&a["source"], "retrievedAt"),
    ));
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_certs::OrgNumber;
    use samverka_certs::dev::{CertRequest, DevCa};
    use samverka_proto::records::v1::{UpperSecondaryGrade, VocationalDiploma};

    fn record(record_type: &str, payload: Payload) -> Record {
        Record {
            record_type: record_type.into(),
            subject_id: "199003142388".into(),
            source_agency: "2021999095".into(),
            record_id: "r-1".into(),
            updated_at: None,
            payload: Some(payload),
        }
    }

    #[test]
    fn every_record_kind_becomes_an_achievement_with_its_codes() {
        let grade = achievement(
            &record(
                "education.upper_secondary_grade",
                Payload::UpperSecondaryGrade(UpperSecondaryGrade {
                    course_code: "MATMAT01c".into(),
                    course_name: "Matematik 1c".into(),
                    points: 100,
                    grade: "B".into(),
                    programme_code: "NA".into(),
                    grade_date: "2008-06-10".into(),
                    school_org_number: "2120001234".into(),
                    school_name: "Demo gymnasium".into(),
                }),
            ),
            "upper-secondary",
            "2026-11-29T10:00:00.000Z",
        );
        assert_eq!(grade["achievementType"], "Course");
        assert_eq!(grade["humanCode"], "MATMAT01c");
        assert_eq!(grade["creditsAvailable"], 100);
        assert_eq!(grade["result"][0]["value"], "B");
        assert_eq!(grade["creator"]["id"], "urn:samverka:agency:2120001234");
        assert_eq!(grade["source"]["name"], "upper-secondary");
        assert_eq!(grade["id"], "urn:samverka:record:2021999095:r-1");
        // Nothing to align with: the key is left out, not empty.
        assert!(grade.get("alignment").is_none());

        let diploma = achievement(
            &record(
                "education.vocational_diploma",
                Payload::VocationalDiploma(VocationalDiploma {
                    programme_name: "Automationstekniker".into(),
                    yh_credits: 400,
                    diploma_kind: "kvalificerad yrkeshogskoleexamen".into(),
                    eqf_level: 5,
                    sun_field: "523".into(),
                    issue_date: "2019-06-01".into(),
                    provider_org_number: "".into(),
                    provider_name: "Demo YH".into(),
                }),
            ),
            "vocational",
            "",
        );
        assert_eq!(diploma["achievementType"], "Diploma");
        assert_eq!(diploma["creditUnit"], "yh-poäng");
        let frameworks: Vec<&str> = diploma["alignment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["targetFramework"].as_str().unwrap())
            .collect();
        assert_eq!(frameworks, ["SUN 2020 field", "EQF"]);
        // A creator without an organisation number has no id.
        assert!(diploma["creator"].get("id").is_none());

        let other = achievement(
            &record(
                "competence.language_test",
                Payload::Other(prost_types::Any {
                    type_url: "type.example/LanguageTest".into(),
                    value: vec![],
                }),
            ),
            "x",
            "",
        );
        assert_eq!(other["achievementType"], "Achievement");
        assert_eq!(other["name"], "type.example/LanguageTest");
    }

    #[test]
    fn only_a_gateway_certificate_vouches_for_a_passport() {
        let ca = DevCa::generate("ca").unwrap();
        let org = OrgNumber::parse("2021999012").unwrap();
        let passport = CompetencePassport {
            passport_id: "p-1".into(),
            subject_id: "199003142388".into(),
            issuer_agency: "2021999012".into(),
            ..Default::default()
        };
        // An agency certificate's key signing in the gateway's name.
        let agency = ca
            .issue(&CertRequest::new(org.clone(), Role::Agency, "agency"))
            .unwrap();
        let signer = JwsSigner::from_pem(&agency.cert_pem, &agency.key_pem, "2021999012").unwrap();
        let jws = sign(&signer, &passport, "x").unwrap();
        let err = verify(&jws, &agency.cert_pem).unwrap_err();
        assert!(err.0.contains("not a samverka gateway's"), "{err}");

        // A gateway's signature over something that is not a passport.
        let gateway = ca
            .issue(&CertRequest::new(org, Role::Gateway, "gw"))
            .unwrap();
        let signer =
            JwsSigner::from_pem(&gateway.cert_pem, &gateway.key_pem, "2021999012").unwrap();
        let not_passport = signer
            .sign(CREDENTIAL_TYPE, &json!({"type": ["VerifiableCredential"]}))
            .unwrap();
        let err = verify(&not_passport, &gateway.cert_pem).unwrap_err();
        assert_eq!(err.0, "not a competence passport credential");
        // And the passport itself verifies.
        let ok = verify(
            &sign(&signer, &passport, "Operator").unwrap(),
            &gateway.cert_pem,
        )
        .unwrap();
        assert_eq!(ok["issuer"]["name"], "Operator");
        assert_eq!(ok["id"], "urn:uuid:p-1");
    }
}
