//! samverka's reference adapter for an employment register: employment
//! periods with employer, dates, extent and SSYK 2012 occupation code, as
//! employers report them.
//!
//! It serves a fixture of synthetic people (`fixtures/people.toml`,
//! compiled in). A real adapter would query the register instead.
//!
//! # Layout
//! - [`demo`], [`with_agency`]: the register, as a
//!   [`samverka_adapter::InMemoryRegister`] filled from the fixture.
//! - `fixture` types (private): the TOML shape of the synthetic register.

use samverka_adapter::records::{EmploymentPeriod, Record, record::Payload};
use samverka_adapter::{Description, InMemoryRegister};
use serde::Deserialize;

/// Organisation number of the demo agency that keeps this register.
pub const DEMO_AGENCY: &str = "2021999053";
/// The record types this adapter answers for.
pub const RECORD_TYPES: [&str; 1] = ["employment.period"];

const FIXTURE: &str = include_str!("../fixtures/people.toml");

#[derive(Deserialize)]
struct Fixture {
    people: Vec<Person>,
}

#[derive(Deserialize)]
struct Person {
    subject_id: String,
    #[serde(default)]
    periods: Vec<FixturePeriod>,
}

#[derive(Deserialize)]
struct FixturePeriod {
    id: String,
    employer_org_number: String,
    employer_name: String,
    start_date: String,
    end_date: String,
    extent_percent: u32,
    ssyk_code: String,
    occupation_title: String,
    isco_code: String,
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
        "Employment register (synthetic)",
        RECORD_TYPES,
    ));
    for p in fixture.people {
        for e in p.periods {
            register.insert(Record {
                record_type: "employment.period".to_owned(),
                subject_id: p.subject_id.clone(),
                record_id: e.id,
                payload: Some(Payload::EmploymentPeriod(EmploymentPeriod {
                    employer_org_number: e.employer_org_number,
                    employer_name: e.employer_name,
                    start_date: e.start_date,
                    end_date: e.end_date,
                    extent_percent: e.extent_percent,
                    ssyk_code: e.ssyk_code,
                    occupation_title: e.occupation_title,
                    isco_code: e.isco_code,
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
    fn fixture_numbers_and_codes_are_valid() {
        let fixture: Fixture = toml::from_str(FIXTURE).unwrap();
        for p in &fixture.people {
            SubjectId::parse(&p.subject_id).unwrap();
            for e in &p.periods {
                OrgNumber::parse(&e.employer_org_number).unwrap();
                assert_eq!(e.ssyk_code.len(), 4, "{}", e.id);
                assert!((1..=100).contains(&e.extent_percent), "{}", e.id);
            }
        }
    }

    #[tokio::test]
    async fn unknown_person_is_an_empty_answer() {
        let a = demo();
        let q = |s: &str| FetchQuery {
            subject: SubjectId::parse(s).unwrap(),
            record_types: vec!["employment.period".into()],
            purpose: "study_guidance".into(),
            consent_id: "c".into(),
            requesting_agency: "2021999020".into(),
            trace_id: None,
        };
        assert_eq!(a.fetch_records(q("199003142388")).await.unwrap().len(), 2);
        assert!(a.fetch_records(q("199204638762")).await.unwrap().is_empty());
    }
}
