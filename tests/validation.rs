//! Nonsense input is refused at validation, whichever RPC it reaches: for
//! every field of every RPC that takes a person, a record type, a purpose,
//! an id or a source agency, an empty and a blank value is INVALID_ARGUMENT
//! with FIELD_MISSING and a field violation naming the field, and reaches
//! neither a register nor the store. What a registrar stores is bounded
//! (FIELD_TOO_LONG), and so is every message that repeats what a caller
//! sent.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY};
use samverka_gateway::error::MAX_MESSAGE_CHARS;
use samverka_gateway::pipeline::validate::{
    MAX_EVIDENCE_REF_CHARS, MAX_ID_CHARS, MAX_REVOCATION_REASON_CHARS,
};
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    GetCompetencePassportRequest, GetConsentRequest, GetRecordsRequest, GrantConsentRequest,
    ListAccessEventsRequest, ListConsentsRequest, RevokeConsentRequest, consent,
};
use support::*;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Empty, and blank in several kinds of whitespace.
const NONSENSE: [&str; 5] = ["", " ", "  \t", "\r\n", "\u{3000}\u{a0}"];

/// One request to one RPC.
enum Rpc {
    GetRecords(GetRecordsRequest),
    Passport(GetCompetencePassportRequest),
    Grant(GrantConsentRequest),
    Revoke(RevokeConsentRequest),
    GetConsent(GetConsentRequest),
    ListConsents(ListConsentsRequest),
    ListAccessEvents(ListAccessEventsRequest),
}

/// Clients of the three services, each as an agency allowed to call it.
/// The registrar's requests carry a person assertion made as they are
/// sent, for the request as it is (whatever field a test changed, and for
/// the person it names, however invalid: the development identity
/// provider signs any login), so that what answers is the fields' check.
struct Clients<'a> {
    net: &'a TestNet,
    exchange: RecordExchangeClient<Channel>,
    consents: ConsentsClient<Channel>,
    access_log: AccessLogClient<Channel>,
}

impl<'a> Clients<'a> {
    async fn new(net: &'a TestNet) -> Clients<'a> {
        Clients {
            net,
            exchange: exchange(net, "reader").await,
            consents: consents(net, "registrar").await,
            access_log: AccessLogClient::new(net.channel("registrar").await.unwrap()),
        }
    }

    fn seal<R: samverka_proto::terms::PersonBound>(&self, req: R) -> R {
        sealed(self.net, "registrar", req)
    }

    async fn call(&mut self, rpc: Rpc) -> Result<(), Status> {
        match rpc {
            Rpc::GetRecords(r) => self.exchange.get_records(r).await.map(drop),
            Rpc::Passport(r) => self.exchange.get_competence_passport(r).await.map(drop),
            Rpc::Grant(r) => self.consents.grant(self.seal(r)).await.map(drop),
            Rpc::Revoke(r) => self.consents.revoke(self.seal(r)).await.map(drop),
            Rpc::GetConsent(r) => self.consents.get(self.seal(r)).await.map(drop),
            Rpc::ListConsents(r) => self.consents.list(self.seal(r)).await.map(drop),
            Rpc::ListAccessEvents(r) => self.access_log.list(self.seal(r)).await.map(drop),
        }
    }
}

/// One field of one RPC's request: the RPC, the field's path as a field
/// violation names it, a value that validation takes, and the request
/// (valid in every other field) with a value in that field.
struct Field {
    rpc: &'static str,
    path: &'static str,
    valid: &'static str,
    with: Box<dyn Fn(&str) -> Rpc>,
}

/// The field of `base()` that `set` writes, of the RPC that `rpc` calls.
fn field<R: 'static>(
    (name, rpc): (&'static str, fn(R) -> Rpc),
    path: &'static str,
    valid: &'static str,
    base: impl Fn() -> R + 'static,
    set: fn(&mut R, &str),
) -> Field {
    Field {
        rpc: name,
        path,
        valid,
        with: Box::new(move |value| {
            let mut request = base();
            set(&mut request, value);
            rpc(request)
        }),
    }
}

/// Every required field of every RPC that takes a person, record types, a
/// purpose, source agencies or an id.
fn fields(net: &TestNet) -> Vec<Field> {
    let get_records = ("GetRecords", Rpc::GetRecords as fn(_) -> _);
    let passport = ("GetCompetencePassport", Rpc::Passport as fn(_) -> _);
    let grant = ("Grant", Rpc::Grant as fn(_) -> _);
    let revoke = ("Revoke", Rpc::Revoke as fn(_) -> _);
    let get = ("Get", Rpc::GetConsent as fn(_) -> _);
    let list = ("Consents/List", Rpc::ListConsents as fn(_) -> _);
    let access_log = ("AccessLog/List", Rpc::ListAccessEvents as fn(_) -> _);

    let passport_request = || GetCompetencePassportRequest {
        subject_id: DEMO_SUBJECT.into(),
        purpose: DEMO_PURPOSE.into(),
        ..Default::default()
    };
    // Each grant with a request id of its own, so that none is a retry.
    let base = grant_request(net, DEMO_PURPOSE, &["employment.period"], "");
    let grant_request = move || {
        let base = base.clone();
        move || GrantConsentRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..base.clone()
        }
    };
    let revoke_request = || RevokeConsentRequest {
        consent_id: "no-such-consent".into(),
        reason: "withdrawn by the person".into(),
        person_assertion: String::new(),
    };
    let list_request = || ListConsentsRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: READER_AGENCY.into(),
        person_assertion: String::new(),
        states: Vec::new(),
    };
    let access_log_request = || ListAccessEventsRequest {
        subject_id: DEMO_SUBJECT.into(),
        ..Default::default()
    };
    let course = "education.course_result";
    vec![
        field(
            get_records,
            "subject_id",
            DEMO_SUBJECT,
            demo_read,
            |r, v| r.subject_id = v.into(),
        ),
        field(get_records, "record_types[0]", course, demo_read, |r, v| {
            r.record_types = strings(&[v])
        }),
        field(get_records, "record_types[1]", course, demo_read, |r, v| {
            r.record_types = strings(&["employment.period", v])
        }),
        field(get_records, "purpose", DEMO_PURPOSE, demo_read, |r, v| {
            r.purpose = v.into()
        }),
        field(get_records, "source_agencies[0]", HE, demo_read, |r, v| {
            r.source_agencies = strings(&[v])
        }),
        field(get_records, "source_agencies[1]", HE, demo_read, |r, v| {
            r.source_agencies = strings(&[EMP, v])
        }),
        field(
            passport,
            "subject_id",
            DEMO_SUBJECT,
            passport_request,
            |r, v| r.subject_id = v.into(),
        ),
        field(
            passport,
            "purpose",
            DEMO_PURPOSE,
            passport_request,
            |r, v| r.purpose = v.into(),
        ),
        field(
            grant,
            "subject_id",
            DEMO_SUBJECT,
            grant_request(),
            |r, v| r.subject_id = v.into(),
        ),
        field(
            grant,
            "grantee_agency",
            READER_AGENCY,
            grant_request(),
            |r, v| r.grantee_agency = v.into(),
        ),
        field(grant, "record_types[0]", course, grant_request(), |r, v| {
            r.record_types = strings(&[v])
        }),
        field(grant, "record_types[1]", course, grant_request(), |r, v| {
            r.record_types = strings(&["employment.period", v])
        }),
        field(grant, "purpose", DEMO_PURPOSE, grant_request(), |r, v| {
            r.purpose = v.into()
        }),
        field(grant, "source_agencies[0]", EMP, grant_request(), |r, v| {
            r.source_agencies = strings(&[v])
        }),
        field(grant, "source_agencies[1]", HE, grant_request(), |r, v| {
            r.source_agencies = strings(&[EMP, v])
        }),
        field(
            grant,
            "request_id",
            "a-request-id",
            grant_request(),
            |r, v| r.request_id = v.into(),
        ),
        field(
            revoke,
            "consent_id",
            "no-such-consent",
            revoke_request,
            |r, v| r.consent_id = v.into(),
        ),
        field(
            get,
            "consent_id",
            "no-such-consent",
            GetConsentRequest::default,
            |r, v| r.consent_id = v.into(),
        ),
        field(list, "subject_id", DEMO_SUBJECT, list_request, |r, v| {
            r.subject_id = v.into()
        }),
        field(
            access_log,
            "subject_id",
            DEMO_SUBJECT,
            access_log_request,
            |r, v| r.subject_id = v.into(),
        ),
    ]
}

/// The reason and the violated field of an INVALID_ARGUMENT, checking
/// that its message is bounded.
fn invalid(status: &Status) -> (String, String) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().chars().count() <= MAX_MESSAGE_CHARS,
        "{status:?}"
    );
    let violations = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no field violation in {status:?}"))
        .field_violations;
    (reason(status), violations[0].field.clone())
}

#[tokio::test]
async fn empty_and_blank_values_are_refused_in_every_field_of_every_rpc() {
    let net = start().await;
    let mut clients = Clients::new(&net).await;
    let fields = fields(&net);

    for f in &fields {
        for value in NONSENSE {
            let status = clients.call((f.with)(value)).await.unwrap_err();
            assert_eq!(
                invalid(&status),
                ("FIELD_MISSING".to_owned(), f.path.to_owned()),
                "{} {} = {value:?}: {status:?}",
                f.rpc,
                f.path
            );
        }
    }
    assert_eq!(net.fetch_calls(), 0, "a refused request reached a register");
    assert!(
        net.gateway
            .store
            .consents_for(DEMO_SUBJECT, None)
            .await
            .unwrap()
            .is_empty(),
        "a refused grant was stored"
    );

    // The same requests with a real value in the field pass validation
    // (they may still be refused later, for want of a consent or a
    // consent with that id): the refusals above were the field's.
    for f in &fields {
        if let Err(status) = clients.call((f.with)(f.valid)).await {
            assert_ne!(
                status.code(),
                Code::InvalidArgument,
                "{} {} = {:?}: {status:?}",
                f.rpc,
                f.path,
                f.valid
            );
        }
    }
}

#[tokio::test]
async fn blank_optional_values_are_refused_and_empty_ones_mean_none() {
    let net = start().await;
    let mut clients = Clients::new(&net).await;
    for value in &NONSENSE[1..] {
        let status = clients
            .call(Rpc::ListConsents(ListConsentsRequest {
                subject_id: DEMO_SUBJECT.into(),
                grantee_agency: (*value).into(),
                person_assertion: String::new(),
                states: Vec::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(
            invalid(&status),
            ("AGENCY_ID_INVALID".to_owned(), "grantee_agency".to_owned())
        );
        let status = clients
            .call(Rpc::ListAccessEvents(ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                page_token: (*value).into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(
            invalid(&status),
            ("PAGE_TOKEN_INVALID".to_owned(), "page_token".to_owned())
        );
    }
    clients
        .call(Rpc::ListConsents(ListConsentsRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: String::new(),
            person_assertion: String::new(),
            states: Vec::new(),
        }))
        .await
        .unwrap();
    clients
        .call(Rpc::ListAccessEvents(ListAccessEventsRequest {
            subject_id: DEMO_SUBJECT.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    // A grant's evidence and a revocation's reason may be left empty.
    let mut registrar = consents(&net, "registrar").await;
    let mut request = grant_request(&net, DEMO_PURPOSE, &["employment.period"], "no-evidence");
    request.evidence_ref = String::new();
    let consent = registrar
        .grant(sealed(&net, "registrar", request))
        .await
        .unwrap()
        .into_inner()
        .consent;
    registrar
        .revoke(sealed(
            &net,
            "registrar",
            RevokeConsentRequest {
                consent_id: consent.unwrap().consent_id,
                reason: String::new(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn what_a_registrar_stores_is_bounded() {
    let net = start().await;
    let mut registrar = consents(&net, "registrar").await;
    let too_long = |max: usize| "ä".repeat(max + 1);

    // Characters are counted, not bytes: ä is two bytes in UTF-8.
    let mut request = grant_request(&net, DEMO_PURPOSE, &["employment.period"], "bounded");
    request.evidence_ref = too_long(MAX_EVIDENCE_REF_CHARS);
    let status = registrar
        .grant(sealed(&net, "registrar", request.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        invalid(&status),
        ("FIELD_TOO_LONG".to_owned(), "evidence_ref".to_owned())
    );
    request.evidence_ref = "ä".repeat(MAX_EVIDENCE_REF_CHARS);
    let granted = registrar
        .grant(sealed(&net, "registrar", request.clone()))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    assert_eq!(granted.evidence_ref, request.evidence_ref);

    request.request_id = too_long(MAX_ID_CHARS);
    let status = registrar
        .grant(sealed(&net, "registrar", request))
        .await
        .unwrap_err();
    assert_eq!(
        invalid(&status),
        ("FIELD_TOO_LONG".to_owned(), "request_id".to_owned())
    );
    for status in [
        registrar
            .get(sealed(
                &net,
                "registrar",
                GetConsentRequest {
                    consent_id: too_long(MAX_ID_CHARS),
                    person_assertion: String::new(),
                },
            ))
            .await
            .unwrap_err(),
        registrar
            .revoke(sealed(
                &net,
                "registrar",
                RevokeConsentRequest {
                    consent_id: too_long(MAX_ID_CHARS),
                    reason: String::new(),
                    person_assertion: String::new(),
                },
            ))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            invalid(&status),
            ("FIELD_TOO_LONG".to_owned(), "consent_id".to_owned())
        );
    }

    // A revocation with too long a reason is refused, and revokes nothing.
    let status = registrar
        .revoke(sealed(
            &net,
            "registrar",
            RevokeConsentRequest {
                consent_id: granted.consent_id.clone(),
                reason: too_long(MAX_REVOCATION_REASON_CHARS),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        invalid(&status),
        ("FIELD_TOO_LONG".to_owned(), "reason".to_owned())
    );
    let get = GetConsentRequest {
        consent_id: granted.consent_id.clone(),
        person_assertion: String::new(),
    };
    let still = registrar
        .get(sealed(&net, "registrar", get.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.status(), consent::Status::Active);
    let reason = "å".repeat(MAX_REVOCATION_REASON_CHARS);
    registrar
        .revoke(sealed(
            &net,
            "registrar",
            RevokeConsentRequest {
                consent_id: granted.consent_id,
                reason: reason.clone(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        registrar
            .get(sealed(&net, "registrar", get))
            .await
            .unwrap()
            .into_inner()
            .revocation_reason,
        reason
    );
}

#[tokio::test]
async fn a_message_repeating_long_input_is_bounded_and_clean() {
    let net = start().await;
    let mut clients = Clients::new(&net).await;
    // 10 KB of a record type, with a line break and an escape sequence:
    // the message names it cut short, without control characters.
    let long = format!("education.{}\r\n\u{1b}[2J", "x".repeat(10 * 1024));
    let requests = [
        Rpc::GetRecords(GetRecordsRequest {
            record_types: vec![long.clone()],
            ..demo_read()
        }),
        Rpc::Grant(GrantConsentRequest {
            record_types: vec![long.clone()],
            ..grant_request(&net, DEMO_PURPOSE, &[], "long")
        }),
    ];
    for request in requests {
        let status = clients.call(request).await.unwrap_err();
        assert_eq!(
            invalid(&status),
            (
                "RECORD_TYPE_UNKNOWN".to_owned(),
                "record_types[0]".to_owned()
            )
        );
        let message = status.message();
        assert!(message.contains("education.xxx"), "{message}");
        assert!(message.contains('…'), "{message}");
        assert!(message.len() < 200, "{} bytes: {message}", message.len());
        assert!(!message.chars().any(char::is_control), "{message}");
    }
}
