//! A source whose records carry payloads of the wrong message, behind a
//! `samverka serve` process over mutual TLS: for every record type, a
//! record carrying each other type's message (in its typed field and in
//! `other`), a foreign message, and bytes that do not decode. Only the
//! records whose payload is their type's message reach the caller (and the
//! passport); the rest are dropped one by one, the source's outcome is
//! `INVALID_RESPONSE`, and so is its outcome in the audit entry.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY, pki_spec};
use samverka_adapter::conformance::PAYLOAD_MESSAGES;
use samverka_certs::dev::DevPkiFiles;
use samverka_proto::adapter::v1::adapter_server::Adapter;
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse,
};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{
    CourseResult, Degree, EmploymentPeriod, NonFormalLearning, Record, SelfDeclaredMerit,
    UpperSecondaryGrade, ValidatedCompetence, VocationalDiploma,
};
use samverka_proto::v1::source_outcome::Status as Outcome;
use support::process::{audit_entry, grant_on as grant, start_edited_gateway};
use support::*;

/// The described types a register may serve (self-declared merits are
/// the gateway's own).
fn served() -> Vec<&'static str> {
    PAYLOAD_MESSAGES
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != samverka_adapter::credential::merit::SELF_DECLARED)
        .collect()
}
use tonic::{Request, Response, Status};

/// The source's agency: the demo university's, whose certificate it uses.
const AGENCY: &str = samverka_adapter_higher_education::DEMO_AGENCY;
/// A record type records.proto does not describe: a new register's, whose
/// payload travels in `other` under a message of its own.
const NEW_TYPE: &str = "education.folk_high_school_course";
const NEW_MESSAGE: &str = "type.googleapis.com/se.folkhogskola.v1.Course";
/// A purpose for the types study guidance does not cover.
const OTHER_PURPOSE: &str = "vocational_guidance";

/// The typed payload of a described record type.
fn typed(record_type: &str) -> Payload {
    match record_type {
        "education.course_result" => Payload::CourseResult(CourseResult {
            course_code: "DA1001".into(),
            credits: 7.5,
            ..Default::default()
        }),
        "education.degree" => Payload::Degree(Degree {
            title: "Kandidatexamen".into(),
            eqf_level: 6,
            credits: 180.0,
            ..Default::default()
        }),
        "education.upper_secondary_grade" => Payload::UpperSecondaryGrade(UpperSecondaryGrade {
            course_code: "MATMAT01c".into(),
            points: 100,
            grade: "A".into(),
            ..Default::default()
        }),
        "education.vocational_diploma" => Payload::VocationalDiploma(VocationalDiploma {
            programme_name: "Mjukvaruutvecklare".into(),
            yh_credits: 400,
            ..Default::default()
        }),
        "employment.period" => Payload::EmploymentPeriod(EmploymentPeriod {
            employer_name: "Exempelbolaget AB".into(),
            ssyk_code: "2512".into(),
            extent_percent: 100,
            ..Default::default()
        }),
        "competence.validated" => Payload::ValidatedCompetence(ValidatedCompetence {
            competence_area: "Svetsning".into(),
            eqf_level: 4,
            ..Default::default()
        }),
        "education.non_formal" => Payload::NonFormalLearning(NonFormalLearning {
            title: "Truckkörning A+B".into(),
            hours: 40,
            ..Default::default()
        }),
        "competence.self_declared" => Payload::SelfDeclaredMerit(SelfDeclaredMerit {
            title: "Föreningskassör".into(),
            ..Default::default()
        }),
        other => panic!("{other} is not described"),
    }
}

/// A payload of `record_type`'s message in `other`, under that message's
/// type URL: field 1, a string in every described message, encoded by
/// hand (this package does not depend on prost).
fn in_other(record_type: &str) -> Payload {
    let message = PAYLOAD_MESSAGES
        .iter()
        .find(|(t, _)| *t == record_type)
        .unwrap()
        .1;
    let text = b"DA1001";
    let mut value = vec![0x0a, text.len() as u8];
    value.extend_from_slice(text);
    any(&format!("type.googleapis.com/{message}"), value)
}

fn any(type_url: &str, value: Vec<u8>) -> Payload {
    Payload::Other(prost_types::Any {
        type_url: type_url.into(),
        value,
    })
}

/// What the source sends for one record type: records whose id starts with
/// `good-` carry the type's message, the others do not.
fn answer_for(subject: &str, record_type: &str) -> Vec<Record> {
    let mut payloads: Vec<(String, Payload)> = Vec::new();
    if record_type == NEW_TYPE {
        // Any message but a described one may be a new type's; it must
        // have a name.
        payloads.push((
            "good-other".into(),
            any(NEW_MESSAGE, b"\x0a\x02ok".to_vec()),
        ));
        payloads.push(("nameless".into(), any("", b"\x0a\x02ok".to_vec())));
    } else {
        payloads.push(("good-typed".into(), typed(record_type)));
        payloads.push(("good-other".into(), in_other(record_type)));
        // Its own message's type URL, bytes that are no protobuf message.
        let Payload::Other(mut garbage) = in_other(record_type) else {
            unreachable!()
        };
        garbage.value = b"\xff\xff\xff\xff".to_vec();
        payloads.push(("undecodable".into(), Payload::Other(garbage)));
        // A message from outside records.proto.
        payloads.push((
            "foreign".into(),
            any("type.googleapis.com/google.protobuf.Duration", vec![8, 1]),
        ));
    }
    // Every other record type's message, in its field and in `other`.
    for (other, _) in PAYLOAD_MESSAGES.iter().filter(|(t, _)| *t != record_type) {
        payloads.push((format!("typed-{other}"), typed(other)));
        payloads.push((format!("other-{other}"), in_other(other)));
    }
    payloads
        .into_iter()
        .map(|(id, payload)| Record {
            record_type: record_type.into(),
            subject_id: subject.into(),
            record_id: format!("{record_type}/{id}"),
            payload: Some(payload),
            ..Default::default()
        })
        .collect()
}

/// The ids of the records of `types` that must pass.
fn good_ids(types: &[&str]) -> BTreeSet<String> {
    types
        .iter()
        .flat_map(|t| answer_for(DEMO_SUBJECT, t))
        .map(|r| r.record_id)
        .filter(|id| id.split('/').nth(1).unwrap().starts_with("good-"))
        .collect()
}

struct Mismatched;

#[tonic::async_trait]
impl Adapter for Mismatched {
    async fn describe(
        &self,
        _: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        Ok(Response::new(AdapterDescription {
            agency_id: AGENCY.into(),
            name: "payloads of the wrong message, on purpose".into(),
            record_types: served().iter().map(|t| t.to_string()).collect(),
            sdk_version: String::new(),
        }))
    }

    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        let request = request.into_inner();
        let records = request
            .record_types
            .iter()
            .flat_map(|t| answer_for(&request.subject_id, t))
            .collect();
        Ok(Response::new(FetchRecordsResponse {
            records,
            ..Default::default()
        }))
    }
}

async fn serve_mismatched(pki: &DevPkiFiles) -> SocketAddr {
    serve_test_adapter(pki, "higher-education", Mismatched).await
}

/// The one source, serving every described type and [`NEW_TYPE`]; a
/// purpose for the types study guidance does not cover, and the reader's
/// access rule for it.
fn extra(address: SocketAddr) -> String {
    let mut types = served();
    types.push(NEW_TYPE);
    format!(
        "[[adapters]]\nname = \"registers\"\naddress = \"{address}\"\norg_number = \"{AGENCY}\"\n\
         record_types = {types:?}\n\n\
         [[purposes]]\ncode = \"{OTHER_PURPOSE}\"\ndescription = \"Vocational guidance\"\n\
         record_types = {other:?}\n\n\
         [[access_rules]]\nagency = \"{READER_AGENCY}\"\npurposes = [\"{OTHER_PURPOSE}\"]\n\
         record_types = {other:?}\n",
        other = OTHER_TYPES,
    )
}

/// `config` with [`OTHER_PURPOSE`] among the purposes the demo registrar
/// may record consents for.
fn registrable(config: String) -> String {
    let purposes = r#"registrar_purposes = ["study_guidance", "job_matching", "admission"]"#;
    assert_eq!(
        config.matches(purposes).count(),
        1,
        "the demo registrar's purposes: {config}"
    );
    config.replace(
        purposes,
        &format!(
            r#"registrar_purposes = ["study_guidance", "job_matching", "admission", "{OTHER_PURPOSE}"]"#
        ),
    )
}

/// The types of [`OTHER_PURPOSE`].
const OTHER_TYPES: [&str; 3] = [
    "education.upper_secondary_grade",
    "education.vocational_diploma",
    NEW_TYPE,
];

/// The record types of the demo purpose, study guidance.
const GUIDANCE_TYPES: [&str; 4] = [
    "education.course_result",
    "education.degree",
    "employment.period",
    "competence.validated",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_whose_payload_is_not_their_types_message_are_dropped_one_by_one() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let address = serve_mismatched(&pki).await;
    let gateway = start_edited_gateway(dir.path(), &pki, &[], &extra(address), &[], registrable);
    grant(&gateway, &pki, DEMO_PURPOSE, &GUIDANCE_TYPES).await;
    grant(&gateway, &pki, OTHER_PURPOSE, &OTHER_TYPES).await;
    let mut reader = gateway.reader(&pki).await;

    // Between them, the two reads ask for every described type and a new
    // one.
    for (purpose, types) in [
        (DEMO_PURPOSE, &GUIDANCE_TYPES[..]),
        (OTHER_PURPOSE, &OTHER_TYPES[..]),
    ] {
        let answer = reader
            .get_records(read_request(DEMO_SUBJECT, types, purpose))
            .await
            .unwrap()
            .into_inner();
        let expected = good_ids(types);
        // Two per described type (typed field, `other`), one for the new.
        let described = types.iter().filter(|t| **t != NEW_TYPE).count();
        assert_eq!(expected.len(), 2 * described + (types.len() - described));
        let got: BTreeSet<String> = answer.records.iter().map(|r| r.record_id.clone()).collect();
        assert_eq!(got, expected, "{purpose}");
        assert!(answer.records.iter().all(|r| r.source_agency == AGENCY));

        assert_eq!(answer.outcomes.len(), 1);
        let o = &answer.outcomes[0];
        assert_eq!(o.status, Outcome::InvalidResponse as i32, "{o:?}");
        assert_eq!(o.record_count as usize, expected.len());
        assert!(o.message.contains("payload"), "{o:?}");

        let entry = audit_entry(dir.path(), DEMO_SUBJECT, &answer.audit_id).await;
        assert_eq!(entry.decision, "allowed");
        assert_eq!(entry.sources, [format!("{AGENCY}=INVALID_RESPONSE")]);
        assert_eq!(entry.record_types, strings(types));
    }

    // The passport reads through the same check.
    let passport = reader
        .get_competence_passport(samverka_proto::v1::GetCompetencePassportRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: BTreeSet<String> = passport
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| e.record.as_ref().unwrap().record_id.clone())
        .collect();
    assert_eq!(got, good_ids(&GUIDANCE_TYPES));
    assert_eq!(passport.outcomes.len(), 1);
    assert_eq!(passport.outcomes[0].status, Outcome::InvalidResponse as i32);
}

/// The same register behind the SDK: it drops what the gateway would
/// (all but the undecodable bytes in `other`, which it cannot decode and
/// leaves to the gateway) before anything leaves the agency.
struct MismatchedRegister;

impl samverka_adapter::Adapter for MismatchedRegister {
    fn describe(&self) -> samverka_adapter::Description {
        samverka_adapter::Description::new(AGENCY, "mismatched payloads", served())
    }

    async fn fetch_records(
        &self,
        query: samverka_adapter::FetchQuery,
    ) -> Result<Vec<Record>, samverka_adapter::AdapterError> {
        Ok(query
            .record_types
            .iter()
            .flat_map(|t| answer_for(query.subject.as_str(), t))
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_adapter_sends_only_records_whose_payload_is_their_types() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let (_, cert, key) = pki
        .adapters
        .iter()
        .find(|(n, _, _)| n == "higher-education")
        .unwrap();
    let tls = samverka_adapter::AdapterTls::from_files(cert, key, &pki.ca_cert).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(samverka_adapter::serve_with_listener(
        MismatchedRegister,
        listener,
        tls,
        std::future::pending(),
    ));
    let gateway_tls = samverka_gateway::net::client::AgencyTls::from_files(
        &pki.ca_cert,
        &pki.gateway_client.0,
        &pki.gateway_client.1,
    )
    .unwrap();
    let channel =
        samverka_gateway::net::client::connect(&address.to_string(), "localhost", &gateway_tls)
            .await
            .unwrap();
    let types = served();
    let records = samverka_proto::adapter::v1::adapter_client::AdapterClient::new(channel)
        .fetch_records(FetchRecordsRequest {
            subject_id: DEMO_SUBJECT.into(),
            record_types: types.iter().map(|t| t.to_string()).collect(),
            purpose: DEMO_PURPOSE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let sent: BTreeSet<String> = records.into_iter().map(|r| r.record_id).collect();
    let mut want = good_ids(&types);
    want.extend(types.iter().map(|t| format!("{t}/undecodable")));
    assert_eq!(sent, want);
}
