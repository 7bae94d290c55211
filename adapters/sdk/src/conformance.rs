//! The conformance kit: the checks every adapter must pass before the
//! gateway routes to it, run over the network against any running adapter,
//! whatever language it is written in.
//!
//! | check | what passes |
//! |---|---|
//! | `describe` | `Describe` answers with a valid organisation number, a name and at least one well-formed record type |
//! | `known-subject` | for each offered type, the known person's records come back, of that type only, about that person, each with a payload and a record id; at least one record in all |
//! | `payload-matches-type` | each of those records carries the one payload message of its record type ([`payload_mismatch`]); a type `records.proto` describes in its typed field, not in `other` |
//! | `attests` | asked for a passport (with a holder id and salt), an adapter that holds its agency's attestation key attests every record: each attestation verifies under an attester certificate of the described agency that the trust anchor issued for document signing, and says what its record says ([`crate::credential::verify`]); a salt too short to hide the person's number is refused (`INVALID_ARGUMENT`). An adapter without a key passes, and is told its records reach passports unattested |
//! | `other-subjects-never-returned` | asking for every type at once returns nothing about anyone else |
//! | `unknown-subject` | a valid number the register does not know gets an empty answer, not an error |
//! | `malformed-subject` | a bad check digit, letters, an empty id: each `INVALID_ARGUMENT` |
//! | `unoffered-type` | a record type the adapter did not offer: `INVALID_ARGUMENT`, or an empty answer |
//! | `deadline` | asked with a 250 ms deadline (`grpc-timeout`), the adapter itself ends the call (answer or `DEADLINE_EXCEEDED`) within 500 ms; the kit sends this call over a plain HTTP/2 connection that does not enforce the deadline on its own, so only the adapter can pass it |
//! | `non-gateway-refused` | a certificate of the same CA without the gateway role is refused |
//! | `no-client-certificate-refused` | a caller without a client certificate is refused |
//!
//! An adapter built on an SDK never lets a record that breaks the rules
//! leave; it names those it dropped, per rule, in the answer's
//! [`DROPPED_HEADER`] (`x-samverka-dropped: 1 other-person`, see
//! [`DropRule`]). The kit reads the header and fails the check a record
//! sent anyway would have failed, saying what the adapter's code returned:
//! `known-subject` for another person's record or a type not declared or
//! not asked, `payload-matches-type` for a wrong payload,
//! `other-subjects-never-returned` and `unknown-subject` for records about
//! someone else.
//!
//! From the command line: `samverka adapter check`. From an adapter's own
//! Rust tests: [`run_checks`] and assert that every [`CheckResult`] passed.
//!
//! The rule that a record's payload is its record type's message
//! ([`PAYLOAD_MESSAGES`], [`payload_mismatch`]) is defined here, once: the
//! gateway drops a record that breaks it (and decodes the bytes of `other`
//! too), and this kit fails an adapter that sends one.

mod attests;
mod clients;
mod dropped;

use std::time::{Duration, Instant};

use samverka_certs::{OrgNumber, SubjectId};
use samverka_proto::adapter::v1::DescribeRequest;
use samverka_proto::records::v1::Record;
use samverka_proto::records::v1::record::Payload;
use tonic::Code;

use clients::{client, fetch, raw_client};
pub use dropped::{DROPPED_HEADER, DropRule, Dropped, broken_rule};

/// The record types `records.proto` describes, each with the full name of
/// the one message its payload is: the record's typed field of that
/// message, or, in `other`, a `google.protobuf.Any` whose type URL ends in
/// that name (`type.googleapis.com/samverka.records.v1.Degree`).
pub const PAYLOAD_MESSAGES: [(&str, &str); 8] = [
    (
        "education.course_result",
        "samverka.records.v1.CourseResult",
    ),
    ("education.degree", "samverka.records.v1.Degree"),
    (
        "education.upper_secondary_grade",
        "samverka.records.v1.UpperSecondaryGrade",
    ),
    (
        "education.vocational_diploma",
        "samverka.records.v1.VocationalDiploma",
    ),
    ("employment.period", "samverka.records.v1.EmploymentPeriod"),
    (
        "competence.validated",
        "samverka.records.v1.ValidatedCompetence",
    ),
    (
        "education.non_formal",
        "samverka.records.v1.NonFormalLearning",
    ),
    (
        "competence.self_declared",
        "samverka.records.v1.SelfDeclaredMerit",
    ),
];

/// The full name of the payload message of `record_type`, if
/// `records.proto` describes the type.
pub fn payload_message(record_type: &str) -> Option<&'static str> {
    PAYLOAD_MESSAGES
        .iter()
        .find(|(t, _)| *t == record_type)
        .map(|(_, m)| *m)
}

/// The full name of the message `payload` carries: its typed field's, or
/// for `other` the name its type URL ends in (after the last `/`).
pub fn carried_message(payload: &Payload) -> &str {
    let described = |record_type| payload_message(record_type).unwrap_or_default();
    match payload {
        Payload::CourseResult(_) => described("education.course_result"),
        Payload::Degree(_) => described("education.degree"),
        Payload::UpperSecondaryGrade(_) => described("education.upper_secondary_grade"),
        Payload::VocationalDiploma(_) => described("education.vocational_diploma"),
        Payload::EmploymentPeriod(_) => described("employment.period"),
        Payload::ValidatedCompetence(_) => described("competence.validated"),
        Payload::NonFormalLearning(_) => described("education.non_formal"),
        Payload::SelfDeclaredMerit(_) => described("competence.self_declared"),
        Payload::Other(any) => any.type_url.rsplit('/').next().unwrap_or_default(),
    }
}

/// Why `record`'s payload is not the one message of its record type, or
/// `None` when it is. Each record type has exactly one payload message:
/// - a type `records.proto` describes ([`PAYLOAD_MESSAGES`]) carries its
///   message, in the typed field or in `other` under that message's type
///   URL (as an adapter built before the type was described would send
///   it);
/// - any other type (a new register's) carries its payload in `other`,
///   under a type URL that names none of the described messages, which
///   belong to their own record types.
///
/// The bytes in `other` are not decoded here (the kit has no decoder for
/// them): the gateway also decodes them as the named message.
pub fn payload_mismatch(record: &Record) -> Option<String> {
    let t = &record.record_type;
    let Some(payload) = &record.payload else {
        return Some(format!("a {t} record without payload"));
    };
    let carried = carried_message(payload);
    match (payload_message(t), payload) {
        (Some(expected), _) if carried != expected => Some(format!(
            "a {t} record carries a {} payload instead of a {expected}",
            if carried.is_empty() {
                "nameless"
            } else {
                carried
            }
        )),
        (Some(_), _) => None,
        (None, Payload::Other(_)) if carried.is_empty() => Some(format!(
            "a {t} record carries an `other` payload without a type URL"
        )),
        (None, Payload::Other(_)) => PAYLOAD_MESSAGES
            .iter()
            .find(|(_, m)| *m == carried)
            .map(|(owner, m)| format!("a {t} record carries a {m} payload, which is {owner}'s")),
        (None, _) => Some(format!(
            "a {t} record carries a {carried} payload, which is not a {t} record's; \
             a record type records.proto does not describe travels in `other`"
        )),
    }
}

/// What `payload-matches-type` finds wrong with a record: what
/// [`payload_mismatch`] finds, and, stricter than the gateway, a type
/// `records.proto` describes sent in `other` (the gateway would decode its
/// bytes; the kit cannot, and records.proto asks for the typed field). A
/// record without payload is left to `known-subject`.
fn kit_payload_problem(record: &Record) -> Option<String> {
    let payload = record.payload.as_ref()?;
    if let Some(p) = payload_mismatch(record) {
        return Some(p);
    }
    match (payload_message(&record.record_type), payload) {
        (Some(m), Payload::Other(_)) => Some(format!(
            "a {} record in `other`; records.proto describes the type, so its {m} goes in \
             the typed field",
            record.record_type
        )),
        _ => None,
    }
}

/// How the kit says that an SDK dropped what the adapter's code returned.
const SDK_DROPPED: &str = "the SDK dropped them before they left (x-samverka-dropped: \
     the adapter's log names each record and the rule it broke)";

/// What the kit needs to reach and question an adapter.
#[derive(Debug, Clone)]
pub struct KitConfig {
    /// `host:port` of the adapter.
    pub address: String,
    /// The name its server certificate must be valid for.
    pub server_name: String,
    /// The trust anchor, PEM.
    pub ca_pem: String,
    /// A certificate with the gateway role, and its key (PEM): the kit
    /// calls as the gateway.
    pub gateway_cert_pem: String,
    /// Its key.
    pub gateway_key_pem: String,
    /// A certificate of the same CA without the gateway role (e.g. an
    /// agency's), and its key; the refusal check needs it.
    pub other_identity: Option<(String, String)>,
    /// A person the register holds records for.
    pub known_subject: String,
    /// A valid number the register does not know.
    pub unknown_subject: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check's name, as in the table above.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// Why, for people.
    pub detail: String,
}

fn pass(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        passed: true,
        detail: detail.into(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        passed: false,
        detail: detail.into(),
    }
}

/// Runs every check, in the order of the table above.
pub async fn run_checks(cfg: &KitConfig) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let mut gw = match client(cfg, Some((&cfg.gateway_cert_pem, &cfg.gateway_key_pem))).await {
        Ok(c) => c,
        Err(e) => return vec![fail("describe", e)],
    };

    // describe
    let mut described_agency = String::new();
    let offered = match gw.describe(DescribeRequest {}).await {
        Err(s) => {
            results.push(fail(
                "describe",
                format!("Describe failed: {:?} {}", s.code(), s.message()),
            ));
            Vec::new()
        }
        Ok(d) => {
            let d = d.into_inner();
            let bad_type = d
                .record_types
                .iter()
                .find(|t| !samverka_proto::is_record_type_name(t));
            let problem = if let Err(e) = OrgNumber::parse(&d.agency_id) {
                Some(format!("agency_id {:?}: {e}", d.agency_id))
            } else if d.name.trim().is_empty() {
                Some("name is empty".into())
            } else if d.record_types.is_empty() {
                Some("no record types offered".into())
            } else {
                bad_type.map(|t| format!("record type {t:?} is not a dotted lower-case name"))
            };
            match problem {
                Some(p) => results.push(fail("describe", p)),
                None => results.push(pass(
                    "describe",
                    format!(
                        "agency {}, {} record type(s): {}",
                        d.agency_id,
                        d.record_types.len(),
                        d.record_types.join(", ")
                    ),
                )),
            }
            described_agency = d.agency_id;
            d.record_types
        }
    };

    // known-subject, and payload-matches-type on the same records
    let mut total = 0;
    let mut problem = None;
    let mut payload_problem = None;
    for t in &offered {
        match gw
            .fetch_records(fetch(&cfg.known_subject, std::slice::from_ref(t)))
            .await
        {
            Err(s) => problem = Some(format!("{t}: {:?} {}", s.code(), s.message())),
            Ok(r) => {
                // What an SDK dropped counts as what the adapter returned.
                let dropped = Dropped::from_metadata(r.metadata());
                if let Some(d) = dropped.explain_except(&[DropRule::PayloadMismatch]) {
                    problem = Some(format!(
                        "asked for {t} about {}, the adapter's code returned {d}; {SDK_DROPPED}",
                        cfg.known_subject
                    ));
                }
                let mismatched = dropped.count(DropRule::PayloadMismatch);
                if mismatched > 0 {
                    total += usize::try_from(mismatched).unwrap_or(usize::MAX);
                    payload_problem = Some(format!(
                        "asked for {t}, the adapter's code returned {mismatched} record(s) whose \
                         payload is not their record type's message (payload-mismatch); \
                         {SDK_DROPPED}"
                    ));
                }
                for rec in r.into_inner().records {
                    total += 1;
                    if let Some(p) = kit_payload_problem(&rec) {
                        payload_problem = Some(format!("record {:?}: {p}", rec.record_id));
                    }
                    if &rec.record_type != t {
                        problem = Some(format!("asked for {t}, got a {} record", rec.record_type));
                    } else if rec.subject_id != cfg.known_subject {
                        problem = Some(format!(
                            "asked about {}, got a record about someone else",
                            cfg.known_subject
                        ));
                    } else if rec.payload.is_none() || rec.record_id.is_empty() {
                        problem = Some(format!("a {t} record without payload or record id"));
                    }
                }
            }
        }
    }
    results.push(match (problem, total) {
        (Some(p), _) => fail("known-subject", p),
        (None, 0) => fail(
            "known-subject",
            format!(
                "no records at all for {} (give a person the register knows)",
                cfg.known_subject
            ),
        ),
        (None, n) => pass(
            "known-subject",
            format!("{n} record(s), each of the type asked for"),
        ),
    });
    results.push(match (payload_problem, total) {
        (Some(p), _) => fail("payload-matches-type", p),
        (None, 0) => pass("payload-matches-type", "no records to check"),
        (None, n) => pass(
            "payload-matches-type",
            format!("{n} record(s), each with its record type's payload message"),
        ),
    });

    results.push(attests::check(&mut gw, cfg, &offered, &described_agency).await);

    // other-subjects-never-returned
    results.push(
        match gw.fetch_records(fetch(&cfg.known_subject, &offered)).await {
            Err(s) => fail(
                "other-subjects-never-returned",
                format!("{:?} {}", s.code(), s.message()),
            ),
            Ok(r) => {
                let dropped = Dropped::from_metadata(r.metadata()).count(DropRule::OtherPerson);
                let others = r
                    .into_inner()
                    .records
                    .iter()
                    .filter(|r| r.subject_id != cfg.known_subject)
                    .count();
                match (others, dropped) {
                    (0, 0) => pass(
                        "other-subjects-never-returned",
                        "only the person asked about",
                    ),
                    (0, n) => fail(
                        "other-subjects-never-returned",
                        format!(
                            "the adapter's code returned {n} record(s) about other people; \
                             {SDK_DROPPED}"
                        ),
                    ),
                    (n, _) => fail(
                        "other-subjects-never-returned",
                        format!("{n} record(s) about other people"),
                    ),
                }
            }
        },
    );

    // unknown-subject
    results.push(
        match gw
            .fetch_records(fetch(&cfg.unknown_subject, &offered))
            .await
        {
            Ok(r) if r.get_ref().records.is_empty() => {
                match Dropped::from_metadata(r.metadata()).explain_except(&[]) {
                    None => pass("unknown-subject", "empty answer"),
                    Some(d) => fail(
                        "unknown-subject",
                        format!(
                            "for a person the register should not know, the adapter's code \
                             returned {d}; {SDK_DROPPED}"
                        ),
                    ),
                }
            }
            Ok(r) => fail(
                "unknown-subject",
                format!(
                    "{} record(s) for a person the register should not know",
                    r.get_ref().records.len()
                ),
            ),
            Err(s) => fail(
                "unknown-subject",
                format!(
                    "an error instead of an empty answer: {:?} {}",
                    s.code(),
                    s.message()
                ),
            ),
        },
    );

    // malformed-subject
    let mut bad = Vec::new();
    for id in [
        bad_check_digit(&cfg.known_subject),
        "19900314238A".to_owned(),
        String::new(),
    ] {
        match gw.fetch_records(fetch(&id, &offered)).await {
            Err(s) if s.code() == Code::InvalidArgument => {}
            Err(s) => bad.push(format!("{id:?}: {:?}", s.code())),
            Ok(_) => bad.push(format!("{id:?}: answered")),
        }
    }
    results.push(if bad.is_empty() {
        pass("malformed-subject", "INVALID_ARGUMENT for each")
    } else {
        fail(
            "malformed-subject",
            format!("expected INVALID_ARGUMENT: {}", bad.join(", ")),
        )
    });

    // unoffered-type
    let unoffered = ["samverka.conformance_unoffered".to_owned()];
    results.push(
        match gw
            .fetch_records(fetch(&cfg.known_subject, &unoffered))
            .await
        {
            Err(s) if s.code() == Code::InvalidArgument => {
                pass("unoffered-type", "INVALID_ARGUMENT")
            }
            Ok(r) if r.get_ref().records.is_empty() => pass("unoffered-type", "empty answer"),
            Ok(_) => fail(
                "unoffered-type",
                "returned records of a type it does not offer",
            ),
            Err(s) => fail("unoffered-type", format!("{:?} {}", s.code(), s.message())),
        },
    );

    // deadline
    results.push(match raw_client(cfg).await {
        Err(e) => fail("deadline", e),
        Ok(mut raw) => {
            let mut request = fetch(&cfg.known_subject, &offered);
            request.set_timeout(Duration::from_millis(250));
            let started = Instant::now();
            let outcome =
                tokio::time::timeout(Duration::from_secs(5), raw.fetch_records(request)).await;
            let took = started.elapsed();
            match outcome {
                Ok(Ok(_)) | Ok(Err(_)) if took <= Duration::from_millis(500) => {
                    pass("deadline", format!("ended after {} ms", took.as_millis()))
                }
                Ok(_) => fail(
                    "deadline",
                    format!(
                        "answered only after {} ms, though the deadline was 250 ms",
                        took.as_millis()
                    ),
                ),
                Err(_) => fail("deadline", "still running after 5 s with a 250 ms deadline"),
            }
        }
    });

    // non-gateway-refused
    results.push(match &cfg.other_identity {
        None => fail(
            "non-gateway-refused",
            "needs a non-gateway certificate of the same CA (--other-cert, --other-key)",
        ),
        Some((cert, key)) => match client(cfg, Some((cert, key))).await {
            Err(e) => pass("non-gateway-refused", format!("refused at connect: {e}")),
            Ok(mut c) => match c.fetch_records(fetch(&cfg.known_subject, &offered)).await {
                Ok(_) => fail(
                    "non-gateway-refused",
                    "answered a caller without the gateway role",
                ),
                Err(s) => pass("non-gateway-refused", format!("refused: {:?}", s.code())),
            },
        },
    });

    // no-client-certificate-refused
    results.push(match client(cfg, None).await {
        Err(e) => pass(
            "no-client-certificate-refused",
            format!("refused at connect: {e}"),
        ),
        Ok(mut c) => match c.fetch_records(fetch(&cfg.known_subject, &offered)).await {
            Ok(_) => fail(
                "no-client-certificate-refused",
                "answered a caller without a certificate",
            ),
            Err(s) => pass(
                "no-client-certificate-refused",
                format!("refused: {:?}", s.code()),
            ),
        },
    });
    results
}

/// The same number with its check digit changed (still 12 digits).
fn bad_check_digit(subject: &str) -> String {
    let mut s = if SubjectId::parse(subject).is_ok() {
        subject.to_owned()
    } else {
        "199003142388".to_owned()
    };
    let last = s.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
    s.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
    s
}
