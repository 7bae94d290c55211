//! End to end: records exchanged through the gateway, and every refusal,
//! over real mTLS with a real SQLite store and real adapters.

mod support;

use samverka::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::source_outcome::Status as SourceStatus;
use samverka_proto::v1::{
    GetConsentRequest, ListConsentsRequest, ListSourcesRequest, RevokeConsentRequest, consent,
};
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

/// A change that makes a grant request invalid.
type GrantChange = Box<dyn Fn(&mut samverka_proto::v1::GrantConsentRequest)>;

const HE: &str = samverka_adapter_higher_education::DEMO_AGENCY;
const EMP: &str = samverka_adapter_employment::DEMO_AGENCY;

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

    let audit = net.gateway.store.audit_entries(None).await.unwrap();
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
    let audit = net.gateway.store.audit_entries(None).await.unwrap();
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
        .revoke(RevokeConsentRequest {
            consent_id: consent_id.clone(),
            reason: "withdrawn by the person".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.event, "revoked");
    assert_eq!(receipt.consent.unwrap().status(), consent::Status::Revoked);

    assert_denied(&net, "reader", demo_read(), "CONSENT_REVOKED").await;

    // Revoking again is idempotent: the first revocation's receipt.
    let again = consents(&net, "registrar")
        .await
        .revoke(RevokeConsentRequest {
            consent_id,
            reason: "a retry".into(),
        })
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
    let clock = samverka::Clock::manual(samverka::time::system_now_ms());
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
        "",
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
    let audit = net.gateway.store.audit_entries(None).await.unwrap();
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
    let audit = net.gateway.store.audit_entries(None).await.unwrap();
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
            (samverka_adapter_competence::DEMO_AGENCY, true)
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
    assert_eq!(sources.len(), 3);
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
async fn only_registrars_may_manage_consents() {
    let net = start().await;
    for agency in ["reader", "outsider"] {
        let status = consents(&net, agency)
            .await
            .grant(grant_request(
                &net,
                DEMO_PURPOSE,
                &["employment.period"],
                "r-1",
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{agency}");
        assert_eq!(reason(&status), "ROLE_REQUIRED");
        let status = consents(&net, agency)
            .await
            .list(ListConsentsRequest {
                subject_id: DEMO_SUBJECT.into(),
                grantee_agency: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "ROLE_REQUIRED");
    }
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
    let receipt = registrar.grant(request.clone()).await.unwrap().into_inner();
    let first = receipt.consent.unwrap();
    // A retry of the same request (a lost answer) gets the same consent.
    let second = registrar
        .grant(request.clone())
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    // The same request id for something else is refused, not merged.
    let mut changed = request.clone();
    changed.record_types = strings(&["education.course_result"]);
    let status = registrar.grant(changed).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");

    // The receipt is signed by the gateway and says what was recorded.
    let gateway_cert = std::fs::read_to_string(&net.pki.gateway.0).unwrap();
    let claims = samverka::receipt::verify(&receipt.jws, &gateway_cert).unwrap();
    assert_eq!(claims.event, "granted");
    assert_eq!(claims.iss, samverka::demo::GATEWAY_AGENCY);
    assert_eq!(claims.consent.consent_id, first.consent_id);
    assert_eq!(claims.consent.subject_id, DEMO_SUBJECT);
    assert_eq!(claims.consent.grantee_agency, READER_AGENCY);
    assert_eq!(claims.consent.record_types, ["employment.period"]);
    assert_eq!(claims.consent.status, "active");
    assert_eq!(
        claims.consent.registrar_agency,
        samverka::demo::REGISTRAR_AGENCY
    );

    assert_eq!(first.consent_id, second.consent_id);
    assert_eq!(first.status(), consent::Status::Active);

    let got = registrar
        .get(GetConsentRequest {
            consent_id: first.consent_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, first);
    let listed = registrar
        .list(ListConsentsRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: READER_AGENCY.into(),
        })
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
            Box::new(|r| r.grantee_agency = "2021999079".into()),
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
            Box::new(|r| r.valid_until = Some(samverka::time::to_timestamp(1_000))),
        ),
        ("FIELD_MISSING", Box::new(|r| r.request_id = String::new())),
        (
            "VALIDITY_INVALID",
            Box::new(|r| {
                // Longer than the configured maximum of 730 days.
                let until = samverka::time::system_now_ms() + 731 * DAY_MS;
                r.valid_until = Some(samverka::time::to_timestamp(until));
            }),
        ),
    ];
    for status in [
        registrar
            .get(GetConsentRequest {
                consent_id: "no-such-consent".into(),
            })
            .await
            .unwrap_err(),
        registrar
            .revoke(RevokeConsentRequest {
                consent_id: "no-such-consent".into(),
                reason: String::new(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(reason(&status), "CONSENT_NOT_FOUND");
    }
    let status = registrar
        .revoke(RevokeConsentRequest::default())
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
        let status = registrar.grant(request).await.unwrap_err();
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

#[tokio::test]
async fn health_and_reflection_answer_on_the_mtls_ports() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let net = start().await;
    let gateway = net.channel("reader").await.unwrap();
    let mut health = HealthClient::new(gateway.clone());
    for service in [
        "",
        "samverka.v1.RecordExchange",
        "samverka.v1.Consents",
        "samverka.v1.AccessLog",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "samverka.v1.Nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(gateway)
        .server_reflection_info(futures_util::stream::iter(vec![list]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(services)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let mut names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "samverka.v1.AccessLog",
            "samverka.v1.Consents",
            "samverka.v1.RecordExchange"
        ]
    );

    // An adapter built with the SDK answers health checks too (as the gateway).
    let (_, address) = net.adapters[1];
    let gateway_tls = samverka::client::AgencyTls::from_files(
        &net.pki.ca_cert,
        &net.pki.gateway_client.0,
        &net.pki.gateway_client.1,
    )
    .unwrap();
    let adapter = samverka::client::connect(&address.to_string(), "localhost", &gateway_tls)
        .await
        .unwrap();
    let status = HealthClient::new(adapter)
        .check(HealthCheckRequest {
            service: "samverka.adapter.v1.Adapter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}

/// The gRPC health service's status of RecordExchange once it is `want`,
/// within a few of the gateway's 1 s updates; the metric `samverka_ready`
/// then agrees.
async fn wait_for_health(
    net: &samverka::demo::Network,
    want: tonic_health::pb::health_check_response::ServingStatus,
) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut health = HealthClient::new(net.channel("reader").await.unwrap());
    let mut status = None;
    for _ in 0..50 {
        status = Some(
            health
                .check(HealthCheckRequest {
                    service: "samverka.v1.RecordExchange".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status(),
        );
        if status == Some(want) {
            let (_, metrics) = admin_get(net.admin_address, "/metrics").await;
            let ready = f64::from(want == ServingStatus::Serving);
            assert_eq!(sample(&metrics, "samverka_ready", &[]), ready);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("gRPC health says {status:?}, not {want:?}");
}

/// A store that still answers reads but refuses the audit trail's writes
/// (here a trigger makes SQLite refuse every insert into the trail, as a
/// full disk makes every commit fail): every read is refused, so
/// `/readyz` and the gRPC health service say so, with the reason, and a
/// load balancer sends the reads to another replica. `/healthz` stays 200:
/// a restart would not help. The first commit that succeeds makes the
/// gateway ready again; without traffic it reports ready again 10 s after
/// the failure, so that reads come and find out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_audit_commits_fail_is_not_ready_until_one_succeeds() {
    use tonic_health::pb::health_check_response::ServingStatus;

    let clock = samverka::Clock::manual(samverka::time::system_now_ms());
    let net = start_with_clock(clock.clone()).await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    let ready = || admin_get(net.admin_address, "/readyz");
    assert_eq!(ready().await, (200, "ready\n".to_owned()));

    let store = rusqlite::Connection::open(net.dir.path().join("samverka.db")).unwrap();
    store
        .execute_batch(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries \
             BEGIN SELECT RAISE(ABORT, 'no space left (test)'); END",
        )
        .unwrap();
    let status = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&status), "STORE_UNAVAILABLE");
    let (code, body) = ready().await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("audit trail unavailable: the last audit commit failed")
            && body.contains("no space left (test)"),
        "{body}"
    );
    assert_eq!(admin_get(net.admin_address, "/healthz").await.0, 200);
    wait_for_health(&net, ServingStatus::NotServing).await;

    // No traffic for 10 s: ready again, and the next read finds the store
    // still refusing.
    clock.set_ms(clock.now_ms() + 9_999);
    assert_eq!(ready().await.0, 503);
    clock.set_ms(clock.now_ms() + 1);
    assert_eq!(ready().await.0, 200);
    reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(ready().await.0, 503);

    // The store mended: the next read's commit succeeds, and the gateway
    // is ready at once.
    store.execute_batch("DROP TRIGGER refuse_audit").unwrap();
    reader.get_records(demo_read()).await.unwrap();
    assert_eq!(ready().await, (200, "ready\n".to_owned()));
    wait_for_health(&net, ServingStatus::Serving).await;
}

#[tokio::test]
async fn the_admin_listener_counts_what_happened() {
    let mut net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    reader.get_records(demo_read()).await.unwrap();
    reader
        .get_records(read_request(
            OTHER_SUBJECT,
            &["employment.period"],
            DEMO_PURPOSE,
        ))
        .await
        .unwrap_err();
    net.stop("higher-education").await;
    reader.get_records(demo_read()).await.unwrap();

    let (status, text) = admin_get(net.admin_address, "/metrics").await;
    assert_eq!(status, 200);
    let requests = |decision: &str, reason: &str| {
        sample(
            &text,
            "samverka_requests_total",
            &[
                ("method", "GetRecords"),
                ("agency", READER_AGENCY),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(requests("allowed", ""), 3.0, "{text}");
    assert_eq!(requests("denied", "CONSENT_MISSING"), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "samverka_requests_total",
            &[("method", "Consents/Grant"), ("decision", "allowed")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "samverka_consent_checks_total",
            &[("result", "allowed")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "samverka_consent_checks_total",
            &[("result", "CONSENT_MISSING")]
        ),
        1.0
    );
    let source = |name: &str, outcome: &str| {
        sample(
            &text,
            "samverka_source_requests_total",
            &[("source", name), ("outcome", outcome)],
        )
    };
    assert_eq!(source("employment", "OK"), 3.0);
    assert_eq!(source("higher-education", "OK"), 2.0);
    assert_eq!(source("higher-education", "UNAVAILABLE"), 1.0);
    assert_eq!(
        sample(
            &text,
            "samverka_request_duration_seconds_count",
            &[("method", "GetRecords")]
        ),
        4.0
    );
    assert_eq!(
        sample(&text, "samverka_audit_batch_entries_sum", &[]),
        4.0,
        "one entry per read"
    );
    // Entries not yet in the access log's index by person: at most the
    // four reads, and none once the index has caught up.
    let pending = sample(&text, "samverka_access_index_pending_entries", &[]);
    assert!((0.0..=4.0).contains(&pending), "{pending}");
    net.gateway.store.index_access_log().await.unwrap();
    assert_eq!(
        sample(
            &admin_get(net.admin_address, "/metrics").await.1,
            "samverka_access_index_pending_entries",
            &[]
        ),
        0.0
    );
    assert_eq!(sample(&text, "samverka_ready", &[]), 1.0);
    assert!(
        !text.contains(DEMO_SUBJECT) && !text.contains(OTHER_SUBJECT),
        "no person's number in metrics"
    );

    // What operators load from deploy/ queries only metrics that exist.
    for file in [
        "deploy/grafana/samverka-dashboard.json",
        "deploy/prometheus/samverka-alerts.yml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(file);
        let queries = std::fs::read_to_string(&path).unwrap();
        let mut names: Vec<&str> = queries
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("samverka_"))
            .collect();
        names.sort();
        names.dedup();
        assert!(!names.is_empty(), "{file}");
        for name in names {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{file} queries {name}, which the gateway does not export"
            );
        }
    }

    // Connections: the registrar's and the reader's were accepted; the
    // reader's is open, and is counted as closed once the reader hangs up.
    assert!(
        sample(&text, "samverka_connections_total", &[]) >= 2.0,
        "{text}"
    );
    assert!(
        sample(&text, "samverka_open_connections", &[]) >= 1.0,
        "{text}"
    );
    drop(reader);
    let mut open = f64::NAN;
    for _ in 0..50 {
        open = sample(
            &admin_get(net.admin_address, "/metrics").await.1,
            "samverka_open_connections",
            &[],
        );
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0.0, "connections still counted as open");

    assert_eq!(admin_get(net.admin_address, "/healthz").await.0, 200);
    assert_eq!(admin_get(net.admin_address, "/readyz").await.0, 200);
    assert_eq!(admin_get(net.admin_address, "/nothing").await.0, 404);
}

/// The alert rules operators load fire as docs/operations.md says:
/// promtool checks them and runs their unit tests
/// (deploy/prometheus/samverka-alerts.test.yml), which include every
/// replica down, when no replica exports `samverka_ready` at all.
#[test]
fn the_alert_rules_fire_as_documented() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for args in [
        ["check", "rules", "samverka-alerts.yml"],
        ["test", "rules", "samverka-alerts.test.yml"],
    ] {
        let output = match std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "SKIPPED: promtool not found (apt-get install prometheus; .ci/run installs it)"
                );
                return;
            }
            Err(e) => panic!("promtool: {e}"),
        };
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_with_another_agencys_certificate_is_not_believed() {
    let net = start().await;
    // A gateway whose routing table sends the employment agency's record
    // types to the higher-education adapter's address: the certificate
    // there names another agency, so the handshake is refused.
    let address = |name: &str| {
        net.adapters
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .to_string()
    };
    let text = std::fs::read_to_string(&net.config_path)
        .unwrap()
        .replace(&address("employment"), &address("higher-education"))
        .replace("samverka.db", "impersonation.db");
    let config = samverka::Config::from_toml(&text, net.dir.path()).unwrap();
    let gateway = samverka::Gateway::new(config, samverka::Clock::system())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_address = listener.local_addr().unwrap().to_string();
    tokio::spawn(samverka::server::serve(
        gateway,
        listener,
        std::future::pending(),
    ));

    let registrar_tls = net.agency_tls("registrar").unwrap();
    let registrar = samverka::client::connect(&gateway_address, "localhost", &registrar_tls)
        .await
        .unwrap();
    let request = grant_request(
        &net,
        DEMO_PURPOSE,
        &["education.course_result", "employment.period"],
        "impersonation",
    );
    ConsentsClient::new(registrar).grant(request).await.unwrap();
    let reader = samverka::client::connect(
        &gateway_address,
        "localhost",
        &net.agency_tls("reader").unwrap(),
    )
    .await
    .unwrap();
    let answer = RecordExchangeClient::new(reader)
        .get_records(demo_read())
        .await
        .unwrap()
        .into_inner();
    let outcome = |agency: &str| {
        answer
            .outcomes
            .iter()
            .find(|o| o.source_agency == agency)
            .unwrap()
            .status()
    };
    assert_eq!(outcome(EMP), SourceStatus::Unavailable);
    assert_eq!(outcome(HE), SourceStatus::Ok);
    assert!(
        answer
            .records
            .iter()
            .all(|r| r.record_type == "education.course_result")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_over_its_rate_is_told_when_to_retry() {
    use tonic_types::StatusExt;
    let net = start().await;
    let rated = RatedGateway::start(&net, "rate.db").await;
    let clock = rated.clock.clone();
    let gateway = rated.gateway.clone();
    let mut reader = RecordExchangeClient::new(rated.channel(&net, "reader").await);
    let mut outsider = RecordExchangeClient::new(rated.channel(&net, "outsider").await);

    for _ in 0..2 {
        let status = reader.get_records(demo_read()).await.unwrap_err();
        assert_eq!(reason(&status), "CONSENT_MISSING");
    }
    let status = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED");
    let retry = status
        .get_details_retry_info()
        .expect("retry info")
        .retry_delay
        .unwrap();
    assert_eq!(retry, std::time::Duration::from_secs(1));
    // Another agency has its own allowance.
    assert_eq!(
        reason(&outsider.get_records(demo_read()).await.unwrap_err()),
        "ACCESS_RULE_MISSING"
    );
    // Refusals for rate are not audited: two reads and the outsider's.
    assert_eq!(gateway.store.audit_entries(None).await.unwrap().len(), 3);
    // A second later the reader may go on.
    clock.set_ms(clock.now_ms() + 1000);
    assert_eq!(
        reason(&reader.get_records(demo_read()).await.unwrap_err()),
        "CONSENT_MISSING"
    );

    // A request larger than the limit is refused whole.
    let mut big = demo_read();
    big.purpose = "x".repeat(100 * 1024);
    clock.set_ms(clock.now_ms() + 10_000);
    let status = reader.get_records(big).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(status.message().contains("too large"), "{status:?}");
}

/// The demo network's gateway configuration again, as a second gateway
/// (its own store `db`) with a rate of one request a second and a burst of
/// two, on a clock the test moves.
struct RatedGateway {
    gateway: std::sync::Arc<samverka::Gateway>,
    clock: samverka::Clock,
    address: String,
}

impl RatedGateway {
    async fn start(net: &TestNet, db: &str) -> RatedGateway {
        let text = std::fs::read_to_string(&net.config_path)
            .unwrap()
            .replace("samverka.db", db)
            + "\n[limits]\nrate_per_second = 1\nburst = 2\n";
        let config = samverka::Config::from_toml(&text, net.dir.path()).unwrap();
        let clock = samverka::Clock::manual(samverka::time::system_now_ms());
        let gateway = samverka::Gateway::new(config, clock.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(samverka::server::serve(
            gateway.clone(),
            listener,
            std::future::pending(),
        ));
        RatedGateway {
            gateway,
            clock,
            address,
        }
    }

    async fn channel(&self, net: &TestNet, agency: &str) -> tonic::transport::Channel {
        samverka::client::connect(&self.address, "localhost", &net.agency_tls(agency).unwrap())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_thousand_requests_over_the_rate_reach_no_adapter() {
    let net = start().await;
    // The clock stands still, so the bucket never refills.
    let rated = RatedGateway::start(&net, "rate-1000.db").await;
    let gateway = rated.gateway.clone();
    ConsentsClient::new(rated.channel(&net, "registrar").await)
        .grant(grant_request(
            &net,
            DEMO_PURPOSE,
            &samverka::demo::DEMO_RECORD_TYPES,
            "rate-1000",
        ))
        .await
        .unwrap();
    let mut reader = RecordExchangeClient::new(rated.channel(&net, "reader").await);

    // Two reads reach the adapters.
    for _ in 0..2 {
        assert_eq!(
            reader
                .get_records(demo_read())
                .await
                .unwrap()
                .into_inner()
                .records
                .len(),
            5
        );
    }
    let calls = net.fetch_calls();
    let audited = gateway.store.audit_entries(None).await.unwrap().len();

    // A thousand more, all RATE_LIMITED, none reaching a register or the
    // audit trail.
    for _ in 0..1000 {
        let status = reader.get_records(demo_read()).await.unwrap_err();
        assert_eq!(reason(&status), "RATE_LIMITED");
    }
    assert_eq!(
        net.fetch_calls(),
        calls,
        "a rate-limited read reached an adapter"
    );
    assert_eq!(
        gateway.store.audit_entries(None).await.unwrap().len(),
        audited
    );
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
    let entries = net.gateway.store.audit_entries(None).await.unwrap();
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
    let entries = net.gateway.store.audit_entries(None).await.unwrap();
    let denied = entries
        .iter()
        .find(|e| e.audit_id == audit_id(&status))
        .unwrap();
    assert_eq!(denied.trace_id, new_id);
}
