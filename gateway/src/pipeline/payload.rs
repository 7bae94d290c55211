//! Part of step 5: is a record an adapter returned of the form its record
//! type says? Each record type has exactly one payload message
//! ([`samverka_adapter::conformance::PAYLOAD_MESSAGES`]; the rule is
//! defined once, in the SDK, so that its conformance kit fails an adapter
//! for what the gateway drops). A record passes when
//! - its type is one `records.proto` describes, and it carries that type's
//!   message: in the typed field, or in `other` under that message's type
//!   URL with bytes that decode as it;
//! - or its type is a new one (a register's own, no typed field yet), and
//!   it carries an `other` payload whose type URL names none of the
//!   described messages (the gateway cannot decode those bytes: it does
//!   not know the message).
//!
//! [`crate::pipeline::routing`] drops every record that fails, and only
//! that record: the source's other records still pass, and its outcome is
//! `INVALID_RESPONSE`, as for a record of another person or of a type not
//! asked for.

use prost::Message;
use samverka_adapter::conformance::{payload_message, payload_mismatch};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{
    CourseResult, Degree, EmploymentPeriod, NonFormalLearning, Record, SelfDeclaredMerit,
    UpperSecondaryGrade, ValidatedCompetence, VocationalDiploma,
};

/// Why `record`'s payload is not its record type's, or `Ok`.
pub fn check(record: &Record) -> Result<(), String> {
    if let Some(problem) = payload_mismatch(record) {
        return Err(problem);
    }
    match (&record.payload, payload_message(&record.record_type)) {
        (Some(Payload::Other(any)), Some(message)) => match decode(message, &any.value) {
            Ok(()) => Ok(()),
            Err(e) => Err(format!(
                "a {} record's payload does not decode as {message}: {e}",
                record.record_type
            )),
        },
        _ => Ok(()),
    }
}

/// Decodes `bytes` as the described message named `message`.
fn decode(message: &str, bytes: &[u8]) -> Result<(), String> {
    fn as_<M: Message + Default>(bytes: &[u8]) -> Result<(), String> {
        M::decode(bytes).map(drop).map_err(|e| e.to_string())
    }
    // One arm per typed field of `Record.payload`; the tests check that
    // every described message has one.
    match message {
        "samverka.records.v1.CourseResult" => as_::<CourseResult>(bytes),
        "samverka.records.v1.Degree" => as_::<Degree>(bytes),
        "samverka.records.v1.UpperSecondaryGrade" => as_::<UpperSecondaryGrade>(bytes),
        "samverka.records.v1.VocationalDiploma" => as_::<VocationalDiploma>(bytes),
        "samverka.records.v1.EmploymentPeriod" => as_::<EmploymentPeriod>(bytes),
        "samverka.records.v1.ValidatedCompetence" => as_::<ValidatedCompetence>(bytes),
        "samverka.records.v1.NonFormalLearning" => as_::<NonFormalLearning>(bytes),
        "samverka.records.v1.SelfDeclaredMerit" => as_::<SelfDeclaredMerit>(bytes),
        _ => Err("no decoder for this message".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_adapter::conformance::PAYLOAD_MESSAGES;

    /// One non-empty payload of each described record type, in its typed
    /// field.
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
                ..Default::default()
            }),
            "education.upper_secondary_grade" => {
                Payload::UpperSecondaryGrade(UpperSecondaryGrade {
                    course_code: "MATMAT01c".into(),
                    points: 100,
                    ..Default::default()
                })
            }
            "education.vocational_diploma" => Payload::VocationalDiploma(VocationalDiploma {
                programme_name: "Mjukvaruutvecklare".into(),
                yh_credits: 400,
                ..Default::default()
            }),
            "employment.period" => Payload::EmploymentPeriod(EmploymentPeriod {
                employer_name: "Exempelbolaget AB".into(),
                extent_percent: 100,
                ..Default::default()
            }),
            "competence.validated" => Payload::ValidatedCompetence(ValidatedCompetence {
                competence_area: "Svetsning".into(),
                skill_concepts: vec!["http://data.europa.eu/esco/skill/x".into()],
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
            other => panic!("no payload for {other}"),
        }
    }

    /// The same payload as a `google.protobuf.Any`.
    fn any(payload: &Payload) -> Payload {
        let value = match payload {
            Payload::CourseResult(m) => m.encode_to_vec(),
            Payload::Degree(m) => m.encode_to_vec(),
            Payload::UpperSecondaryGrade(m) => m.encode_to_vec(),
            Payload::VocationalDiploma(m) => m.encode_to_vec(),
            Payload::EmploymentPeriod(m) => m.encode_to_vec(),
            Payload::ValidatedCompetence(m) => m.encode_to_vec(),
            Payload::NonFormalLearning(m) => m.encode_to_vec(),
            Payload::SelfDeclaredMerit(m) => m.encode_to_vec(),
            Payload::Other(a) => return Payload::Other(a.clone()),
        };
        let message = samverka_adapter::conformance::carried_message(payload);
        Payload::Other(prost_types::Any {
            type_url: format!("type.googleapis.com/{message}"),
            value,
        })
    }

    fn record(record_type: &str, payload: Option<Payload>) -> Record {
        Record {
            record_type: record_type.into(),
            payload,
            ..Default::default()
        }
    }

    #[test]
    fn the_table_is_the_contract() {
        // Every type the contract describes, once.
        let types: Vec<&str> = PAYLOAD_MESSAGES.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, samverka_proto::KNOWN_RECORD_TYPES);
        // Each message is the one of the typed field of `Record.payload`
        // named after it, as the descriptor set of records.proto says.
        let set =
            prost_types::FileDescriptorSet::decode(samverka_proto::FILE_DESCRIPTOR_SET).unwrap();
        let file = set
            .file
            .iter()
            .find(|f| f.package() == "samverka.records.v1")
            .unwrap();
        let record = file
            .message_type
            .iter()
            .find(|m| m.name() == "Record")
            .unwrap();
        let typed_fields: Vec<(&str, &str)> = record
            .field
            .iter()
            .filter(|f| f.oneof_index.is_some() && f.name() != "other")
            .map(|f| (f.name(), f.type_name().trim_start_matches('.')))
            .collect();
        assert_eq!(typed_fields.len(), PAYLOAD_MESSAGES.len());
        let field_of = |p: &Payload| match p {
            Payload::CourseResult(_) => "course_result",
            Payload::Degree(_) => "degree",
            Payload::UpperSecondaryGrade(_) => "upper_secondary_grade",
            Payload::VocationalDiploma(_) => "vocational_diploma",
            Payload::EmploymentPeriod(_) => "employment_period",
            Payload::ValidatedCompetence(_) => "validated_competence",
            Payload::NonFormalLearning(_) => "non_formal_learning",
            Payload::SelfDeclaredMerit(_) => "self_declared_merit",
            Payload::Other(_) => "other",
        };
        for (record_type, message) in PAYLOAD_MESSAGES {
            let payload = typed(record_type);
            let field = field_of(&payload);
            let in_proto = typed_fields
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, m)| *m);
            assert_eq!(in_proto, Some(message), "field {field}");
            assert_eq!(
                samverka_adapter::conformance::carried_message(&payload),
                message
            );
            // And the gateway can decode it from `other`.
            assert!(decode(message, &[]).is_ok(), "{message}");
        }
    }

    #[test]
    fn each_type_passes_with_its_own_payload_only() {
        for (record_type, _) in PAYLOAD_MESSAGES {
            let own = typed(record_type);
            assert_eq!(check(&record(record_type, Some(own.clone()))), Ok(()));
            // In `other`, under its own type URL, with bytes that decode.
            assert_eq!(check(&record(record_type, Some(any(&own)))), Ok(()));
            for (other_type, _) in PAYLOAD_MESSAGES.iter().filter(|(t, _)| *t != record_type) {
                let foreign = typed(other_type);
                assert!(
                    check(&record(record_type, Some(foreign.clone()))).is_err(),
                    "{record_type} with a {other_type} payload"
                );
                assert!(
                    check(&record(record_type, Some(any(&foreign)))).is_err(),
                    "{record_type} with a {other_type} payload in other"
                );
            }
            for type_url in [
                "type.googleapis.com/google.protobuf.Duration",
                "samverka.records.v1.Nothing",
                "",
            ] {
                let foreign = Payload::Other(prost_types::Any {
                    type_url: type_url.into(),
                    value: Vec::new(),
                });
                assert!(
                    check(&record(record_type, Some(foreign))).is_err(),
                    "{record_type} with {type_url:?}"
                );
            }
            // Its own type URL, bytes that are no protobuf message.
            let Payload::Other(mut garbage) = any(&own) else {
                unreachable!()
            };
            garbage.value = b"\xff\xff\xff\xff".to_vec();
            let e = check(&record(record_type, Some(Payload::Other(garbage)))).unwrap_err();
            assert!(e.contains("does not decode"), "{e}");
            assert!(check(&record(record_type, None)).is_err());
        }
    }

    #[test]
    fn a_new_record_type_travels_in_other_under_a_message_of_its_own() {
        let new_type = "education.folk_high_school_course";
        let own = Payload::Other(prost_types::Any {
            type_url: "type.googleapis.com/se.folkhogskola.v1.Course".into(),
            value: b"\xff opaque to the gateway".to_vec(),
        });
        assert_eq!(check(&record(new_type, Some(own))), Ok(()));
        for (described, _) in PAYLOAD_MESSAGES {
            let typed = typed(described);
            assert!(check(&record(new_type, Some(typed.clone()))).is_err());
            assert!(check(&record(new_type, Some(any(&typed)))).is_err());
        }
        let nameless = Payload::Other(prost_types::Any::default());
        assert!(check(&record(new_type, Some(nameless))).is_err());
    }
}
