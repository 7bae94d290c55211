//! samverka's reference adapter for a higher-education study records
//! register: course results (with credits in hp and grades) and degrees,
//! as a university's study records system holds them.
//!
//! It serves a fixture of synthetic people (`fixtures/people.toml`,
//! compiled in) so that the gateway, the demo and the tests have a register
//! to talk to. A real adapter would query the register instead; everything
//! else (mTLS, caller check, output check) comes from the SDK.
//!
//! # Layout
//! - [`demo`], [`with_agency`]: the register, as a
//!   [`samverka_adapter::InMemoryRegister`] filled from the fixture.
//! - `fixture` types (private): the TOML shape of the synthetic register.

use samverka_adapter::records::{CourseResult, Degree, GradingScale, Record, record::Payload};
use samverka_adapter::{Description, InMemoryRegister};
use serde::Deserialize;

/// Organisation number of the demo institution this adapter speaks for.
pub const DEMO_AGENCY: &str = "2021999046";
/// Name of the demo institution.
pub const DEMO_INSTITUTION: &str = "Demo University (synthetic)";
/// The record types this adapter answers for.
pub const RECORD_TYPES: [&str; 2] = ["education.course_result", "education.degree"];

const FIXTURE: &str = include_str!("../fixtures/people.toml");

#[derive(Deserialize)]
struct Fixture {
    people: Vec<Person>,
}

#[derive(Deserialize)]
struct Person {
    subject_id: String,
    #[serde(default)]
    course_results: Vec<FixtureCourse>,
    #[serde(default)]
    degrees: Vec<FixtureDegree>,
}

#[derive(Deserialize)]
struct FixtureCourse {
    id: String,
    course_code: String,
    course_name: String,
    course_name_en: String,
    credits: f64,
    grade: String,
    grading_scale: String,
    examination_date: String,
    sun_field: String,
}

#[derive(Deserialize)]
struct FixtureDegree {
    id: String,
    title: String,
    title_en: String,
    sun_level: String,
    sun_field: String,
    main_field: String,
    eqf_level: u32,
    credits: f64,
    award_date: String,
}

/// The demo institution's register with the synthetic fixture.
pub fn demo() -> InMemoryRegister {
    with_agency(DEMO_AGENCY)
}

/// The same fixture, served under another organisation number.
pub fn with_agency(agency: &str) -> InMemoryRegister {
    // The fixture is part of the source tree and checked by this crate's
    // tests; a parse failure is a build defect.
    let fixture: Fixture = toml::from_str(FIXTURE).expect("compiled-in fixture parses");
    let mut register = InMemoryRegister::new(Description::new(
        agency,
        "Study records (higher education, synthetic)",
        RECORD_TYPES,
    ));
    for p in fixture.people {
        for c in p.course_results {
            let scale = match c.grading_scale.as_str() {
                "U_G_VG" => GradingScale::UGVg,
                "U_3_4_5" => GradingScale::U345,
                "ECTS" => GradingScale::Ects,
                _ => GradingScale::Unspecified,
            };
            register.insert(record(
                &p.subject_id,
                "education.course_result",
                c.id,
                Payload::CourseResult(CourseResult {
                    course_code: c.course_code,
                    course_name: c.course_name,
                    course_name_en: c.course_name_en,
                    credits: c.credits,
                    grade: c.grade,
                    grading_scale: scale as i32,
                    examination_date: c.examination_date,
                    institution_org_number: agency.to_owned(),
                    institution_name: DEMO_INSTITUTION.to_owned(),
                    sun_field: c.sun_field,
                }),
            ));
        }
        for d in p.degrees {
            register.insert(record(
                &p.subject_id,
                "education.degree",
                d.id,
                Payload::Degree(Degree {
                    title: d.title,
                    title_en: d.title_en,
                    sun_level: d.sun_level,
                    sun_field: d.sun_field,
                    main_field: d.main_field,
                    eqf_level: d.eqf_level,
                    credits: d.credits,
                    award_date: d.award_date,
                    institution_org_number: agency.to_owned(),
                    institution_name: DEMO_INSTITUTION.to_owned(),
                }),
            ));
        }
    }
    register
}

fn record(subject: &str, record_type: &str, id: String, payload: Payload) -> Record {
    Record {
        record_type: record_type.to_owned(),
        subject_id: subject.to_owned(),
        record_id: id,
        payload: Some(payload),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_adapter::{Adapter, FetchQuery, SubjectId};

    #[test]
    fn fixture_people_have_valid_numbers_and_records() {
        let fixture: Fixture = toml::from_str(FIXTURE).unwrap();
        assert!(fixture.people.len() >= 3);
        for p in &fixture.people {
            SubjectId::parse(&p.subject_id).unwrap();
            for c in &p.course_results {
                assert!(
                    c.credits > 0.0 && (c.credits * 2.0).fract() == 0.0,
                    "{}",
                    c.id
                );
            }
        }
    }

    #[tokio::test]
    async fn answers_only_the_requested_types_of_the_requested_person() {
        let a = demo();
        let query = |types: &[&str], subject: &str| FetchQuery {
            subject: SubjectId::parse(subject).unwrap(),
            record_types: types.iter().map(|t| t.to_string()).collect(),
            purpose: "study_guidance".into(),
            consent_id: "c".into(),
            requesting_agency: "2021999020".into(),
            trace_id: None,
        };
        let degrees = a
            .fetch_records(query(&["education.degree"], "199003142388"))
            .await
            .unwrap();
        assert_eq!(degrees.len(), 1);
        assert!(degrees.iter().all(|r| r.record_type == "education.degree"));
        let all = a
            .fetch_records(query(&RECORD_TYPES, "199003142388"))
            .await
            .unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|r| r.subject_id == "199003142388"));
        let unknown = a
            .fetch_records(query(&RECORD_TYPES, "200107079139"))
            .await
            .unwrap();
        assert!(unknown.is_empty());
    }
}
