//! samverka's reference adapter for a register of validated competences:
//! the informal and non-formal merits a national validation platform
//! records (competence area, skill concepts from ESCO or the JobTech
//! taxonomy, EQF level, assessing organisation, method, date). With the
//! study records and the employment register it gives a "competence
//! passport" its third source.
//!
//! It serves a fixture of synthetic people (`fixtures/people.toml`,
//! compiled in). A real adapter would query the register instead.
//!
//! # Layout
//! - [`demo`], [`with_agency`]: the register, as a
//!   [`samverka_adapter::InMemoryRegister`] filled from the fixture.

use samverka_adapter::records::{Record, ValidatedCompetence, record::Payload};
use samverka_adapter::{Description, InMemoryRegister};
use serde::Deserialize;

/// Organisation number of the demo agency that keeps this register.
pub const DEMO_AGENCY: &str = "2021999087";
/// The record types this adapter answers for.
pub const RECORD_TYPES: [&str; 1] = ["competence.validated"];

const FIXTURE: &str = include_str!("../fixtures/people.toml");

#[derive(Deserialize)]
struct Fixture {
    people: Vec<Person>,
}

#[derive(Deserialize)]
struct Person {
    subject_id: String,
    #[serde(default)]
    competences: Vec<FixtureCompetence>,
}

#[derive(Deserialize)]
struct FixtureCompetence {
    id: String,
    competence_area: String,
    skill_concepts: Vec<String>,
    eqf_level: u32,
    assessor_org_number: String,
    assessor_name: String,
    method: String,
    assessment_date: String,
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
        "Validated competences (synthetic validation platform)",
        RECORD_TYPES,
    ));
    for p in fixture.people {
        for c in p.competences {
            register.insert(Record {
                record_type: "competence.validated".to_owned(),
                subject_id: p.subject_id.clone(),
                record_id: c.id,
                payload: Some(Payload::ValidatedCompetence(ValidatedCompetence {
                    competence_area: c.competence_area,
                    skill_concepts: c.skill_concepts,
                    eqf_level: c.eqf_level,
                    assessor_org_number: c.assessor_org_number,
                    assessor_name: c.assessor_name,
                    method: c.method,
                    assessment_date: c.assessment_date,
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
    fn fixture_numbers_levels_and_concepts_are_valid() {
        let fixture: Fixture = toml::from_str(FIXTURE).unwrap();
        for p in &fixture.people {
            SubjectId::parse(&p.subject_id).unwrap();
            for c in &p.competences {
                OrgNumber::parse(&c.assessor_org_number).unwrap();
                assert!((1..=8).contains(&c.eqf_level), "{}", c.id);
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
    async fn answers_with_the_persons_competences_only() {
        let a = demo();
        let q = |s: &str| FetchQuery {
            subject: SubjectId::parse(s).unwrap(),
            record_types: vec!["competence.validated".into()],
            purpose: "job_matching".into(),
            consent_id: "c".into(),
            requesting_agency: "2021999020".into(),
            trace_id: None,
        };
        let mine = a.fetch_records(q("199003142388")).await.unwrap();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|r| r.subject_id == "199003142388"));
        assert!(a.fetch_records(q("198511224571")).await.unwrap().is_empty());
    }
}
