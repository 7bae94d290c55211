//! samverka's reference adapter for a register of non-formal learning:
//! organised courses outside the formal education system, such as an
//! employer's in-house training, a folk high school's general course or a
//! study association's circle, each with its provider, hours, dates and
//! the skills it trained (ESCO skill concepts). With the study records, the
//! employment register and the validation platform it gives a competence
//! passport its fourth source, so that what a person learnt outside school
//! is shown, as non-formal, beside what they were graded for.
//!
//! It serves a fixture of synthetic people (`fixtures/people.toml`,
//! compiled in). A real adapter would query the register instead.
//!
//! # Layout
//! - [`demo`], [`with_agency`]: the register, as a
//!   [`samverka_adapter::InMemoryRegister`] filled from the fixture.

use samverka_adapter::records::{NonFormalLearning, Record, record::Payload};
use samverka_adapter::{Description, InMemoryRegister};
use serde::Deserialize;

/// Organisation number of the demo agency that keeps this register.
pub const DEMO_AGENCY: &str = "2021999111";
/// The record types this adapter answers for.
pub const RECORD_TYPES: [&str; 1] = ["education.non_formal"];
/// Who may have organised a course.
pub const PROVIDER_KINDS: [&str; 4] =
    ["employer", "folk_high_school", "study_association", "other"];

const FIXTURE: &str = include_str!("../fixtures/people.toml");

#[derive(Deserialize)]
struct Fixture {
    people: Vec<Person>,
}

#[derive(Deserialize)]
struct Person {
    subject_id: String,
    #[serde(default)]
    courses: Vec<Course>,
}

#[derive(Deserialize)]
struct Course {
    id: String,
    title: String,
    description: String,
    provider_kind: String,
    provider_org_number: String,
    provider_name: String,
    hours: u32,
    start_date: String,
    completion_date: String,
    skill_concepts: Vec<String>,
    #[serde(default)]
    eqf_level: u32,
}

/// The demo agency's register with the synthetic fixture.
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
        "Non-formal learning (synthetic course register)",
        RECORD_TYPES,
    ));
    for p in fixture.people {
        for c in p.courses {
            register.insert(Record {
                record_type: RECORD_TYPES[0].to_owned(),
                subject_id: p.subject_id.clone(),
                record_id: c.id,
                payload: Some(Payload::NonFormalLearning(NonFormalLearning {
                    title: c.title,
                    description: c.description,
                    provider_kind: c.provider_kind,
                    provider_org_number: c.provider_org_number,
                    provider_name: c.provider_name,
                    hours: c.hours,
                    start_date: c.start_date,
                    completion_date: c.completion_date,
                    skill_concepts: c.skill_concepts,
                    eqf_level: c.eqf_level,
                })),
                ..Default::default()
            });
        }
    }
    register
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_adapter::{Adapter, FetchQuery, OrgNumber, SubjectId};

    #[test]
    fn fixture_numbers_kinds_dates_and_skills_are_valid() {
        let fixture: Fixture = toml::from_str(FIXTURE).unwrap();
        for p in &fixture.people {
            SubjectId::parse(&p.subject_id).unwrap();
            for c in &p.courses {
                OrgNumber::parse(&c.provider_org_number).unwrap();
                assert!(
                    PROVIDER_KINDS.contains(&c.provider_kind.as_str()),
                    "{}",
                    c.id
                );
                assert!(c.eqf_level <= 8, "{}", c.id);
                assert!(c.hours > 0, "{}", c.id);
                assert!(c.start_date <= c.completion_date, "{}", c.id);
                assert!(!c.skill_concepts.is_empty(), "{}", c.id);
                for uri in &c.skill_concepts {
                    assert!(
                        uri.starts_with("http://data.europa.eu/esco/skill/"),
                        "{uri}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn answers_with_the_persons_courses_only() {
        let a = demo();
        let q = |s: &str| FetchQuery {
            subject: SubjectId::parse(s).unwrap(),
            record_types: RECORD_TYPES.iter().map(|t| (*t).into()).collect(),
            purpose: "study_guidance".into(),
            consent_id: "c".into(),
            requesting_agency: "2021999020".into(),
            trace_id: None,
        };
        let mine = a.fetch_records(q("199003142388")).await.unwrap();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|r| r.subject_id == "199003142388"));
        assert!(a.fetch_records(q("199204638762")).await.unwrap().is_empty());
    }
}
