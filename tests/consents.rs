//! End to end: the Consents service, over real mTLS with a real SQLite
//! store: only registrars may grant, list or revoke, and a registrar grants
//! only for the purposes it is configured for; a grant is validated
//! field by field, idempotent by its request id, readable back with Get
//! and List, and answered with a receipt the gateway signs.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY};
use samverka_proto::v1::{GetConsentRequest, ListConsentsRequest, RevokeConsentRequest, consent};
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

/// A change that makes a grant request invalid.
type GrantChange = Box<dyn Fn(&mut samverka_proto::v1::GrantConsentRequest)>;

#[tokio::test]
async fn only_registrars_may_manage_consents() {
    let net = start().await;
    // The reader is no registrar: refused before anything else is looked
    // at, even without a person assertion. (The outsider, once the second
    // non-registrar here, is a registrar now: see below.)
    let mut reader = consents(&net, "reader").await;
    let status = reader
        .grant(grant_request(
            &net,
            DEMO_PURPOSE,
            &["employment.period"],
            "r-1",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ROLE_REQUIRED");
    let status = reader
        .list(ListConsentsRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: String::new(),
            person_assertion: String::new(),
            states: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ROLE_REQUIRED");
    // The outsider is a registrar for job matching only: with the
    // person's assertion it still may not record a consent for study
    // guidance.
    let status = consents(&net, "outsider")
        .await
        .grant(sealed(
            &net,
            "outsider",
            grant_request(&net, DEMO_PURPOSE, &["employment.period"], "r-1"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "PURPOSE_NOT_REGISTRABLE");
    assert!(
        net.gateway
            .store
            .consents_for(DEMO_SUBJECT, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn grants_are_validated_idempotent_and_readable() {
    let net = start().await;
    let mut registrar = consents(&net, "registrar").await;
    let request = grant_request(&net, DEMO_PURPOSE, &["employment.period"], "same-request");
    let receipt = registrar
        .grant(sealed(&net, "registrar", request.clone()))
        .await
        .unwrap()
        .into_inner();
    let first = receipt.consent.unwrap();
    // A retry of the same request (a lost answer) gets the same consent;
    // it carries a fresh assertion, as each is good for one call.
    let second = registrar
        .grant(sealed(&net, "registrar", request.clone()))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    // The same request id for something else is refused, not merged.
    let mut changed = request.clone();
    changed.record_types = strings(&["education.course_result"]);
    let status = registrar
        .grant(sealed(&net, "registrar", changed))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");

    // The receipt is signed by the gateway and says what was recorded.
    let gateway_cert = std::fs::read_to_string(&net.pki.gateway.0).unwrap();
    let claims =
        samverka_gateway::credential::receipt::verify(&receipt.jws, &gateway_cert).unwrap();
    assert_eq!(claims.event, "granted");
    assert_eq!(claims.iss, samverka::cli::demo::GATEWAY_AGENCY);
    assert_eq!(claims.consent.consent_id, first.consent_id);
    assert_eq!(claims.consent.subject_id, DEMO_SUBJECT);
    assert_eq!(claims.consent.grantee_agency, READER_AGENCY);
    assert_eq!(claims.consent.record_types, ["employment.period"]);
    assert_eq!(claims.consent.status, "active");
    assert_eq!(
        claims.consent.registrar_agency,
        samverka::cli::demo::REGISTRAR_AGENCY
    );

    assert_eq!(first.consent_id, second.consent_id);
    assert_eq!(first.status(), consent::Status::Active);

    let got = registrar
        .get(sealed(
            &net,
            "registrar",
            GetConsentRequest {
                consent_id: first.consent_id.clone(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, first);
    let listed = registrar
        .list(sealed(
            &net,
            "registrar",
            ListConsentsRequest {
                subject_id: DEMO_SUBJECT.into(),
                grantee_agency: READER_AGENCY.into(),
                person_assertion: String::new(),
                states: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .consents;
    assert_eq!(listed, [first]);

    let cases: Vec<(&str, GrantChange)> = vec![
        (
            "SUBJECT_ID_INVALID",
            Box::new(|r| r.subject_id = "199003142389".into()),
        ),
        (
            "AGENCY_ID_INVALID",
            Box::new(|r| r.grantee_agency = "2021999021".into()),
        ),
        (
            "AGENCY_UNKNOWN",
            Box::new(|r| r.grantee_agency = "2021999087".into()),
        ),
        (
            "PURPOSE_UNKNOWN",
            Box::new(|r| r.purpose = "marketing".into()),
        ),
        (
            "RECORD_TYPE_UNKNOWN",
            Box::new(|r| r.record_types = strings(&["education.transcript"])),
        ),
        (
            "RECORD_TYPE_NOT_COVERED",
            Box::new(|r| r.record_types = strings(&["education.upper_secondary_grade"])),
        ),
        ("FIELD_MISSING", Box::new(|r| r.valid_until = None)),
        (
            "VALIDITY_INVALID",
            Box::new(|r| r.valid_until = Some(samverka_gateway::time::to_timestamp(1_000))),
        ),
        ("FIELD_MISSING", Box::new(|r| r.request_id = String::new())),
        ("FIELD_MISSING", Box::new(|r| r.request_id = " ".into())),
        (
            "FIELD_TOO_LONG",
            Box::new(|r| r.evidence_ref = "e".repeat(1000)),
        ),
        (
            "VALIDITY_INVALID",
            Box::new(|r| {
                // Longer than the configured maximum of 730 days.
                let until = samverka_gateway::time::system_now_ms() + 731 * DAY_MS;
                r.valid_until = Some(samverka_gateway::time::to_timestamp(until));
            }),
        ),
    ];
    for status in [
        registrar
            .get(sealed(
                &net,
                "registrar",
                GetConsentRequest {
                    consent_id: "no-such-consent".into(),
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
                    consent_id: "no-such-consent".into(),
                    reason: String::new(),
                    person_assertion: String::new(),
                },
            ))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(reason(&status), "CONSENT_NOT_FOUND");
    }
    let status = registrar
        .revoke(sealed(&net, "registrar", RevokeConsentRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.get_details_bad_request().unwrap().field_violations[0].field,
        "consent_id"
    );

    for (i, (expected, change)) in cases.iter().enumerate() {
        let mut request = grant_request(
            &net,
            DEMO_PURPOSE,
            &["employment.period"],
            &format!("bad-{i}"),
        );
        change(&mut request);
        // Sealed after the change, so that the assertion is for these
        // terms (for SUBJECT_ID_INVALID, for that invalid person: the
        // development identity provider signs any login) and the field's
        // own check answers.
        let status = registrar
            .grant(sealed(&net, "registrar", request))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{expected}: {status:?}"
        );
        assert_eq!(reason(&status), *expected);
    }
    assert_eq!(
        net.gateway
            .store
            .consents_for(DEMO_SUBJECT, None)
            .await
            .unwrap()
            .len(),
        1
    );
}
