//! End to end: `GetRecords` and `ListSources` through the gateway, over
//! real mTLS with a real SQLite store and real adapters. An allowed read
//! fans out to both sources and is audited; each refusal names its reason
//! (no consent, a revoked or expired one, another purpose, no access rule,
//! a malformed subject id, an unknown record type or purpose), and a
//! denial is audited and reaches no adapter; a source that is down or
//! keeps failing gets its own outcome while the others answer; and one
//! trace id names the exchange in the answer, the adapters and the trail.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::v1::source_outcome::Status as SourceStatus;
use samverka_proto::v1::{ListSourcesRequest, RevokeConsentRequest, consent};
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn allowed_read_returns_records_from_both_sources_and_is_audited() {
    let net = start().await;
    let consent_id = grant_demo_consent(&net).await;

    let answer = exchange(&net, "reader")
        .await
        .get_records(demo_read())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(answer.consent_id, consent_id);
    let from = |agency: &str| {
        answer
            .records
            .iter()
            .filter(|r| r.source_agency == agency)
            .count()
    };
    assert_eq!(from(HE), 3, "course results from higher education");
    assert_eq!(from(EMP), 2, "employment periods");
    assert_eq!(answer.records.len(), 5);
    for r in &answer.records {
        assert_eq!(r.subject_id, DEMO_SUBJECT);
        match (&r.record_type[..], &r.payload) {
            ("education.course_result", Some(Payload::CourseResult(c))) => assert!(c.credits > 0.0),
            ("employment.period", Some(Payload::EmploymentPeriod(e))) => {
                assert_eq!(e.ssyk_code.len(), 4)
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
    assert_eq!(answer.outcomes.len(), 2);
    for o in &answer.outcomes {
        assert_eq!(o.status(), SourceStatus::Ok, "{o:?}");
    }

    let audit = read_entries(&net.gateway.store).await;
    assert_eq!(audit.len(), 1);
    let e = &audit[0];
    assert_eq!(e.audit_id, answer.audit_id);
    assert_eq!(e.decision, "allowed");
    assert_eq!(e.caller, READER_AGENCY);
    assert_eq!(e.subject_id, DEMO_SUBJECT);
    assert_eq!(e.consent_id, consent_id);
    assert_eq!(e.sources, [format!("{HE}=OK"), format!("{EMP}=OK")]);
}

/// Asserts a PERMISSION_DENIED with `expected` reason, and that the audit
/// holds the denial under the id the status names.
async fn assert_denied(
    net: &TestNet,
    agency: &str,
    request: samverka_proto::v1::GetRecordsRequest,
    expected: &str,
) {
    let calls_before = net.fetch_calls();
    let status = exchange(net, agency)
        .await
        .get_records(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status), expected);
    let id = audit_id(&status);
    let audit = read_entries(&net.gateway.store).await;
    let entry = audit
        .iter()
        .find(|e| e.audit_id == id)
        .expect("denial is audited");
    assert_eq!(entry.decision, "denied");
    assert_eq!(entry.reason, expected);
    assert!(entry.sources.is_empty());
    assert_eq!(
        net.fetch_calls(),
        calls_before,
        "a denied read reached an adapter"
    );
}

#[tokio::test]
async fn no_consent_is_consent_missing() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let request = read_request(OTHER_SUBJECT, &["employment.period"], DEMO_PURPOSE);
    assert_denied(&net, "reader", request, "CONSENT_MISSING").await;
    // A consent that covers fewer record types than asked for is no consent.
    let request = read_request(DEMO_SUBJECT, &["education.degree"], DEMO_PURPOSE);
    assert_denied(&net, "reader", request, "CONSENT_MISSING").await;
}

#[tokio::test]
async fn revoked_consent_is_refused_on_the_next_read() {
    let net = start().await;
    let consent_id = grant_demo_consent(&net).await;
    exchange(&net, "reader")
        .await
        .get_records(demo_read())
        .await
        .unwrap();

    let receipt = consents(&net, "registrar")
        .await
        .revoke(sealed(
            &net,
            "registrar",
            RevokeConsentRequest {
                consent_id: consent_id.clone(),
                reason: "withdrawn by the person".into(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.event, "revoked");
    assert_eq!(receipt.consent.unwrap().status(), consent::Status::Revoked);

    assert_denied(&net, "reader", demo_read(), "CONSENT_REVOKED").await;

    // Revoking again is idempotent: the first revocation's receipt.
    let again = consents(&net, "registrar")
        .await
        .revoke(sealed(
            &net,
            "registrar",
            RevokeConsentRequest {
                consent_id,
                reason: "a retry".into(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.event, "revoked");
    let again = again.consent.unwrap();
    assert_eq!(again.status(), consent::Status::Revoked);
    assert_eq!(again.revocation_reason, "withdrawn by the person");
}

#[tokio::test]
async fn consent_for_another_purpose_is_purpose_mismatch() {
    let net = start().await;
    grant(&net, "job_matching", &["employment.period"]).await;
    let request = read_request(DEMO_SUBJECT, &["employment.period"], DEMO_PURPOSE);
    assert_denied(&net, "reader", request, "PURPOSE_MISMATCH").await;
    // The consent's own purpose is allowed.
    let request = read_request(DEMO_SUBJECT, &["employment.period"], "job_matching");
    exchange(&net, "reader")
        .await
        .get_records(request)
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_consent_is_refused_without_waiting() {
    let clock = samverka_gateway::Clock::manual(samverka_gateway::time::system_now_ms());
    let net = start_with_clock(clock.clone()).await;
    grant(&net, DEMO_PURPOSE, &["employment.period"]).await;
    let request = read_request(DEMO_SUBJECT, &["employment.period"], DEMO_PURPOSE);
    exchange(&net, "reader")
        .await
        .get_records(request.clone())
        .await
        .unwrap();
    clock.set_ms(clock.now_ms() + 31 * DAY_MS);
    assert_denied(&net, "reader", request, "CONSENT_EXPIRED").await;
}

#[tokio::test]
async fn no_access_rule_is_access_rule_missing() {
    let net = start().await;
    grant_demo_consent(&net).await;
    // The outsider agency has no rules at all.
    assert_denied(&net, "outsider", demo_read(), "ACCESS_RULE_MISSING").await;
    // The reader may read employment periods for job matching, but not
    // course results.
    let request = read_request(DEMO_SUBJECT, &["education.course_result"], "job_matching");
    assert_denied(&net, "reader", request, "ACCESS_RULE_MISSING").await;
}

#[tokio::test]
async fn malformed_subject_ids_are_invalid_and_reach_no_adapter() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut client = exchange(&net, "reader").await;
    for bad in [
        "199003142389",
        "19900314238A",
        "abcdefghijkl",
        "9003142388",
        "1990031423880",
        "19900314-2388",
        " 199003142388",
    ] {
        let mut request = demo_read();
        request.subject_id = bad.into();
        let status = client.get_records(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert_eq!(reason(&status), "SUBJECT_ID_INVALID", "{bad}");
        let violations = status
            .get_details_bad_request()
            .expect("field violation")
            .field_violations;
        assert_eq!(violations[0].field, "subject_id");
    }
    assert_eq!(
        net.fetch_calls(),
        0,
        "an adapter was called for a malformed subject id"
    );
    let audit = read_entries(&net.gateway.store).await;
    assert_eq!(audit.len(), 7);
    assert!(audit.iter().all(|e| e.reason == "SUBJECT_ID_INVALID"));
}

#[tokio::test]
async fn unknown_record_types_and_purposes_are_invalid() {
    let net = start().await;
    let mut client = exchange(&net, "reader").await;
    let status = client
        .get_records(read_request(
            DEMO_SUBJECT,
            &["education.transcript"],
            DEMO_PURPOSE,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "RECORD_TYPE_UNKNOWN");
    let status = client
        .get_records(read_request(
            DEMO_SUBJECT,
            &["employment.period"],
            "marketing",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PURPOSE_UNKNOWN");
    let status = client
        .get_records(read_request(DEMO_SUBJECT, &[], DEMO_PURPOSE))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(net.fetch_calls(), 0);
}

#[tokio::test]
async fn a_source_that_keeps_failing_is_paused_and_the_others_answer() {
    let mut net = start().await;
    grant_demo_consent(&net).await;
    net.stop("higher-education").await;
    let mut reader = exchange(&net, "reader").await;

    // Five failures in a row (the default) are attempted; then the source
    // is paused and answered for at once.
    let mut last = None;
    for _ in 0..7 {
        let answer = reader.get_records(demo_read()).await.unwrap().into_inner();
        let he = answer
            .outcomes
            .iter()
            .find(|o| o.source_agency == HE)
            .unwrap()
            .clone();
        assert_eq!(he.status(), SourceStatus::Unavailable);
        assert_eq!(answer.records.len(), 2, "the employment records still come");
        last = Some(he);
    }
    assert!(last.unwrap().message.contains("paused"));
    let (_, text) = admin_get(net.admin_address, "/metrics").await;
    let calls = |outcome: &str| {
        sample(
            &text,
            "samverka_source_requests_total",
            &[("source", "higher-education"), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("UNAVAILABLE"), 5.0, "{text}");
    assert_eq!(calls("CIRCUIT_OPEN"), 2.0, "{text}");
}

#[tokio::test]
async fn a_stopped_adapter_is_unavailable_while_the_other_answers() {
    let mut net = start().await;
    grant_demo_consent(&net).await;
    net.stop("higher-education").await;

    let answer = exchange(&net, "reader")
        .await
        .get_records(demo_read())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(answer.records.len(), 2);
    assert!(answer.records.iter().all(|r| r.source_agency == EMP));
    let outcome = |agency: &str| {
        answer
            .outcomes
            .iter()
            .find(|o| o.source_agency == agency)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome(HE).status(), SourceStatus::Unavailable);
    assert_eq!(outcome(HE).record_count, 0);
    assert_eq!(outcome(EMP).status(), SourceStatus::Ok);
    let audit = read_entries(&net.gateway.store).await;
    assert_eq!(
        audit[0].sources,
        [format!("{HE}=UNAVAILABLE"), format!("{EMP}=OK")]
    );

    let sources = exchange(&net, "reader")
        .await
        .list_sources(ListSourcesRequest {})
        .await
        .unwrap()
        .into_inner()
        .sources;
    let reachable: Vec<_> = sources
        .iter()
        .map(|s| (s.agency_id.as_str(), s.reachable))
        .collect();
    assert_eq!(
        reachable,
        [
            (HE, false),
            (EMP, true),
            (samverka_adapter_competence::DEMO_AGENCY, true),
            (samverka_adapter_non_formal::DEMO_AGENCY, true),
        ]
    );
}

#[tokio::test]
async fn list_sources_names_agencies_and_record_types() {
    let net = start().await;
    let sources = exchange(&net, "reader")
        .await
        .list_sources(ListSourcesRequest {})
        .await
        .unwrap()
        .into_inner()
        .sources;
    assert_eq!(sources.len(), samverka::cli::demo::DEMO_SOURCES.len());
    assert_eq!(sources[0].agency_id, HE);
    assert_eq!(
        sources[0].record_types,
        ["education.course_result", "education.degree"]
    );
    assert!(sources[0].reachable);
    assert!(sources[0].description.contains("higher education"));
    assert_eq!(sources[1].agency_id, EMP);
    assert_eq!(sources[1].record_types, ["employment.period"]);
}

#[tokio::test]
async fn one_trace_id_names_the_exchange_everywhere() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;

    // The caller's W3C trace context is continued.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request = traced_read(trace_id, "00f067aa0ba902b7", true);
    let response = reader.get_records(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-samverka-trace-id").unwrap(),
        trace_id
    );
    let allowed_id = response.into_inner().audit_id;
    assert_eq!(
        net.last_adapter_trace_id().as_deref(),
        Some(trace_id),
        "the adapters saw the caller's trace"
    );
    let entries = read_entries(&net.gateway.store).await;
    let entry = entries.iter().find(|e| e.audit_id == allowed_id).unwrap();
    assert_eq!(entry.trace_id, trace_id);

    // Without one, the gateway starts a trace, and says which.
    let status = reader
        .get_records(read_request(
            OTHER_SUBJECT,
            &["employment.period"],
            DEMO_PURPOSE,
        ))
        .await
        .unwrap_err();
    let new_id = status
        .metadata()
        .get("x-samverka-trace-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_id.len(), 32);
    assert_ne!(new_id, trace_id);
    let entries = read_entries(&net.gateway.store).await;
    let denied = entries
        .iter()
        .find(|e| e.audit_id == audit_id(&status))
        .unwrap();
    assert_eq!(denied.trace_id, new_id);
}
