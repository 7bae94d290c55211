use super::*;
use proptest::prelude::*;
use samverka_proto::adapter::v1::FetchRecordsResponse;
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{Degree, EmploymentPeriod, ValidatedCompetence};

const SUBJECTS: [&str; 3] = ["199003142388", "198511224571", ""];
const TYPES: [&str; 3] = [
    "employment.period",
    "education.degree",
    "competence.validated",
];

fn route() -> AdapterRoute {
    AdapterRoute {
        name: "employment".into(),
        address: "127.0.0.1:1".into(),
        org_number: samverka_certs::OrgNumber::parse("2021999053").unwrap(),
        record_types: TYPES.iter().map(|t| t.to_string()).collect(),
        server_name: "localhost".into(),
    }
}

/// A payload of the type `TYPES[i]`, for `i` below 3; none for 3; a
/// foreign message in `other` for 4.
fn payload(i: usize) -> Option<Payload> {
    match i {
        0 => Some(Payload::EmploymentPeriod(EmploymentPeriod::default())),
        1 => Some(Payload::Degree(Degree::default())),
        2 => Some(Payload::ValidatedCompetence(ValidatedCompetence::default())),
        3 => None,
        _ => Some(Payload::Other(prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.Duration".into(),
            value: Vec::new(),
        })),
    }
}

/// A record as an adapter might send it: any subject, any type, any
/// claimed source, with any payload or none.
fn record() -> impl Strategy<Value = Record> {
    (0usize..3, 0usize..3, 0usize..5, "[0-9]{0,10}").prop_map(
        |(subject, record_type, payload_of, claimed)| Record {
            record_type: TYPES[record_type].into(),
            subject_id: SUBJECTS[subject].into(),
            source_agency: claimed,
            record_id: "r".into(),
            updated_at: None,
            payload: payload(payload_of),
        },
    )
}

#[test]
fn only_absence_counts_against_a_source() {
    use source_outcome::Status;
    let long = Duration::from_secs(5);
    assert!(source_failed(Status::Unavailable, long));
    assert!(source_failed(Status::DeadlineExceeded, long));
    // A caller's short deadline says nothing about the source.
    assert!(!source_failed(
        Status::DeadlineExceeded,
        Duration::from_millis(200)
    ));
    assert!(source_failed(
        Status::Unavailable,
        Duration::from_millis(200)
    ));
    // A source that answered is there, whatever it answered.
    for status in [Status::Ok, Status::SourceError, Status::InvalidResponse] {
        assert!(!source_failed(status, long));
    }
}

proptest! {
    /// Whatever an adapter answers, only the asked person's records of
    /// the asked types, each with its type's payload, pass, and all of
    /// them; each names the routed agency; anything dropped makes the
    /// outcome INVALID_RESPONSE.
    #[test]
    fn only_what_was_asked_for_passes(
        records in prop::collection::vec(record(), 0..12),
        asked in prop::sample::subsequence(TYPES.to_vec(), 1..=3),
    ) {
        let asked: Vec<String> = asked.iter().map(|t| t.to_string()).collect();
        let sent = records.len();
        let good = records
            .iter()
            .filter(|r| {
                r.subject_id == SUBJECTS[0]
                    && asked.contains(&r.record_type)
                    && TYPES.iter().position(|t| *t == r.record_type)
                        .map(payload) == Some(r.payload.clone())
            })
            .count();
        let answer = Ok(Ok(tonic::Response::new(FetchRecordsResponse { records, ..Default::default() })));
        let (passed, _, outcome) = judge(&route(), SUBJECTS[0], &asked, answer, None);
        prop_assert_eq!(passed.len(), good);
        for r in &passed {
            prop_assert_eq!(r.subject_id.as_str(), SUBJECTS[0]);
            prop_assert!(asked.contains(&r.record_type));
            prop_assert!(payload::check(r).is_ok());
            prop_assert_eq!(r.source_agency.as_str(), "2021999053");
        }
        prop_assert_eq!(outcome.record_count as usize, passed.len());
        let expected = if passed.len() == sent {
            source_outcome::Status::Ok
        } else {
            source_outcome::Status::InvalidResponse
        };
        prop_assert_eq!(outcome.status, expected as i32);
    }
}

/// A source that attests some of its records and not others: under
/// either policy only the attested ones pass; a source that attests none
/// is relayed under `accept` and dropped under `refuse`.
#[test]
fn a_source_that_attests_must_attest_every_record() {
    use samverka_adapter::credential::Attester;
    use samverka_certs::Role;
    use samverka_certs::dev::{CertRequest, DevCa};
    let ca = DevCa::generate("federation").unwrap();
    let issued = ca
        .issue(&CertRequest::new(
            route().org_number,
            Role::Attester,
            "employment",
        ))
        .unwrap();
    let attester = Attester::from_pem(&issued.cert_pem, &issued.key_pem).unwrap();
    let roots = samverka_adapter::root_store(ca.cert_pem().as_bytes()).unwrap();
    let chain = |der: &[u8]| {
        crate::credential::attestation::check_chain(
            der,
            &roots,
            &[],
            true,
            attestation::now_seconds(),
        )
    };
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            record_type: TYPES[0].into(),
            subject_id: SUBJECTS[0].into(),
            source_agency: route().org_number.to_string(),
            record_id: format!("emp-{i}"),
            updated_at: None,
            payload: payload(0),
        })
        .collect();
    let holder = "urn:uuid:11111111-2222-4333-8444-555555555555";
    let salt = "0123456789abcdef0123456789abcdef";
    let first = attester
        .attest(&records[0], "employment", holder, salt)
        .unwrap();
    let asked = vec![TYPES[0].to_owned()];
    for (attestations, required, passed) in [
        (vec![first.clone()], false, 1),
        (vec![first.clone()], true, 1),
        (vec![], false, 2),
        (vec![], true, 0),
    ] {
        let response = FetchRecordsResponse {
            records: records.clone(),
            attestations,
            attestation_certificate: attester.certificate_der().to_vec(),
        };
        let attest = Attest {
            holder_id: holder.into(),
            holder_salt: salt.into(),
            required,
        };
        let attesting = Attesting {
            attest: &attest,
            chain: &chain,
        };
        let (kept, attested, outcome) = judge(
            &route(),
            SUBJECTS[0],
            &asked,
            Ok(Ok(tonic::Response::new(response))),
            Some(attesting),
        );
        assert_eq!(kept.len(), passed, "required {required}: {outcome:?}");
        assert_eq!(
            attested.len(),
            usize::from(passed == 1),
            "only the first is attested"
        );
        let status = if passed == 2 {
            source_outcome::Status::Ok
        } else {
            source_outcome::Status::InvalidResponse
        };
        assert_eq!(outcome.status, status as i32, "{outcome:?}");
    }
}
