//! End to end, on SQLite and on PostgreSQL: a consent requested by the
//! agency that needs it, decided by the person through a registrar, paused
//! and resumed, its terms (period, reads) enforced on every read, expired
//! on time, and every change followed by the agency with `WatchConsents`
//! from a cursor. Illegal changes, a request without the access rule, an
//! approval that widens the request and a justification over the limit
//! are refused with their reasons and change nothing. On PostgreSQL, two
//! gateways on one database: the last read of a counted consent is won by
//! exactly one of two racing replicas, and a change made through one is
//! seen by a watcher of the other. (PostgreSQL runs skip with a printed
//! reason when it is not installed; `.ci/run` installs it.)

mod support;

use std::time::Duration;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, Network};
use samverka_gateway::time::Clock;
use samverka_proto::v1::consent::Status;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    ApproveConsentRequest, Consent, ConsentEvent, GetRecordsRequest, ListConsentsRequest,
    PauseConsentRequest, RejectConsentRequest, RequestConsentRequest, ResumeConsentRequest,
    RevokeConsentRequest, WatchConsentsRequest,
};
use support::postgres::PgCluster;
use support::reason;
use tonic::Code;
use tonic::transport::Channel;

const DAY_MS: i64 = 24 * 3600 * 1000;
const COURSES: &str = "education.course_result";
const JOBS: &str = "employment.period";

async fn agency(net: &Network, name: &str) -> ConsentsClient<Channel> {
    ConsentsClient::new(net.channel(name).await.unwrap())
}

fn ask(types: &[&str]) -> RequestConsentRequest {
    RequestConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        purpose: DEMO_PURPOSE.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        valid_for_days: 30,
        justification: "Vi behöver dina kursresultat för studievägledningen.".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

fn read(types: &[&str]) -> GetRecordsRequest {
    GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: DEMO_PURPOSE.into(),
        ..Default::default()
    }
}

fn refused<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, code: Code) -> String {
    let status = r.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    reason(&status)
}

/// The person decides through the demo registrar: `req` sealed with a
/// fresh login.
fn person<R: samverka_proto::terms::PersonBound>(net: &Network, req: R) -> R {
    net.login("registrar", DEMO_SUBJECT).seal(req)
}

async fn consent(net: &Network, id: &str) -> Consent {
    let list = person(
        net,
        ListConsentsRequest {
            subject_id: DEMO_SUBJECT.into(),
            ..Default::default()
        },
    );
    agency(net, "registrar")
        .await
        .list(list)
        .await
        .unwrap()
        .into_inner()
        .consents
        .into_iter()
        .find(|c| c.consent_id == id)
        .unwrap_or_else(|| panic!("no consent {id}"))
}

/// Requests `req` as the reader, a second after the last request (the
/// clock is the test's): the refusal of a read names the newest consent
/// that would have covered it.
async fn request(net: &Network, req: RequestConsentRequest) -> String {
    let clock = &net.gateway.clock;
    clock.set_ms(clock.now_ms() + 1000);
    let c = agency(net, "reader")
        .await
        .request_consent(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.status(), Status::Pending);
    c.consent_id
}

async fn approve(net: &Network, id: &str) {
    let r = agency(net, "registrar")
        .await
        .approve_consent(person(
            net,
            ApproveConsentRequest {
                consent_id: id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.event, "approved");
}

async fn revoke(net: &Network, id: &str) {
    agency(net, "registrar")
        .await
        .revoke(person(
            net,
            RevokeConsentRequest {
                consent_id: id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

/// Requests that must not become consents, and illegal changes.
async fn refusals(net: &Network) {
    let mut outsider = agency(net, "outsider").await;
    let r = outsider.request_consent(ask(&[COURSES])).await;
    assert_eq!(refused(r, Code::PermissionDenied), "ACCESS_RULE_MISSING");
    let mut reader = agency(net, "reader").await;
    let long = RequestConsentRequest {
        justification: "x".repeat(501),
        ..ask(&[COURSES])
    };
    let r = reader.request_consent(long).await;
    assert_eq!(refused(r, Code::InvalidArgument), "FIELD_TOO_LONG");
    let r = reader
        .request_consent(RequestConsentRequest {
            records_from: "2019-13-01".into(),
            ..ask(&[COURSES])
        })
        .await;
    assert_eq!(refused(r, Code::InvalidArgument), "FIELD_INVALID");

    let id = request(net, ask(&[COURSES])).await;
    assert_eq!(probe(net).await, "CONSENT_PENDING");
    let mut registrar = agency(net, "registrar").await;
    let widen = ApproveConsentRequest {
        consent_id: id.clone(),
        record_types: vec![COURSES.into(), JOBS.into()],
        ..Default::default()
    };
    let r = registrar.approve_consent(person(net, widen)).await;
    assert_eq!(refused(r, Code::InvalidArgument), "APPROVAL_WIDENS");
    for illegal in ["pause", "resume"] {
        let r = match illegal {
            "pause" => {
                registrar
                    .pause_consent(person(
                        net,
                        PauseConsentRequest {
                            consent_id: id.clone(),
                            ..Default::default()
                        },
                    ))
                    .await
            }
            _ => {
                registrar
                    .resume_consent(person(
                        net,
                        ResumeConsentRequest {
                            consent_id: id.clone(),
                            ..Default::default()
                        },
                    ))
                    .await
            }
        };
        assert_eq!(
            refused(r, Code::FailedPrecondition),
            "CONSENT_STATE_INVALID",
            "{illegal} of a pending consent"
        );
    }
    let r = registrar
        .reject_consent(person(
            net,
            RejectConsentRequest {
                consent_id: id.clone(),
                reason: "inte nu".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.event, "rejected");
    let c = consent(net, &id).await;
    assert_eq!(c.status(), Status::Rejected);
    let r = registrar
        .approve_consent(person(
            net,
            ApproveConsentRequest {
                consent_id: id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        refused(r, Code::FailedPrecondition),
        "CONSENT_STATE_INVALID"
    );
    assert_eq!(consent(net, &id).await.status(), Status::Rejected);
    assert_eq!(probe(net).await, "CONSENT_REJECTED");
}

/// The reader's read of course results: its refusal reason, or "" when
/// it is allowed.
async fn probe(net: &Network) -> String {
    let mut exchange = RecordExchangeClient::new(net.channel("reader").await.unwrap());
    match exchange.get_records(read(&[COURSES])).await {
        Ok(_) => String::new(),
        Err(s) => reason(&s),
    }
}

/// Approved narrowed, paused, resumed; the period filters the records.
async fn approved_paused_resumed(net: &Network) -> String {
    let mut exchange = RecordExchangeClient::new(net.channel("reader").await.unwrap());
    let id = request(
        net,
        RequestConsentRequest {
            records_from: "2010-04-01".into(),
            ..ask(&[COURSES, JOBS])
        },
    )
    .await;
    let mut registrar = agency(net, "registrar").await;
    let now = net.gateway.clock.now_ms();
    let receipt = registrar
        .approve_consent(person(
            net,
            ApproveConsentRequest {
                consent_id: id.clone(),
                record_types: vec![COURSES.into()],
                valid_until: Some(samverka_gateway::time::to_timestamp(now + 10 * DAY_MS)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let c = receipt.consent.unwrap();
    assert_eq!(c.status(), Status::Active);
    assert_eq!(c.record_types, [COURSES], "narrowed");
    assert!(c.decided_at.is_some());

    // The demo person's three course results are dated 2010-01-15,
    // 2010-03-19 and 2010-06-04: two are before the period.
    let answer = exchange
        .get_records(read(&[COURSES]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.records.len(), 1, "{answer:?}");
    assert_eq!(answer.records_outside_period, 2);
    let r = exchange.get_records(read(&[COURSES, JOBS])).await;
    assert_eq!(refused(r, Code::PermissionDenied), "CONSENT_MISSING");

    let pause = PauseConsentRequest {
        consent_id: id.clone(),
        ..Default::default()
    };
    assert_eq!(
        registrar
            .pause_consent(person(net, pause.clone()))
            .await
            .unwrap()
            .into_inner()
            .event,
        "paused"
    );
    let r = exchange.get_records(read(&[COURSES])).await;
    assert_eq!(refused(r, Code::PermissionDenied), "CONSENT_PAUSED");
    let r = registrar.pause_consent(person(net, pause)).await;
    assert_eq!(
        refused(r, Code::FailedPrecondition),
        "CONSENT_STATE_INVALID"
    );
    // Resuming lets reads go on: only a registrar whose bounds allow the
    // purpose may (the second demo registrar records job matching only).
    let r = agency(net, "outsider")
        .await
        .resume_consent(
            net.login("outsider", DEMO_SUBJECT)
                .seal(ResumeConsentRequest {
                    consent_id: id.clone(),
                    ..Default::default()
                }),
        )
        .await;
    assert_eq!(
        refused(r, Code::PermissionDenied),
        "PURPOSE_NOT_REGISTRABLE"
    );
    registrar
        .resume_consent(person(
            net,
            ResumeConsentRequest {
                consent_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    exchange.get_records(read(&[COURSES])).await.unwrap();
    revoke(net, &id).await;
    id
}

/// One-time and counted consents: a read that returns records uses one,
/// the last one makes the consent USED.
async fn counted_reads(net: &Network) -> String {
    let mut exchange = RecordExchangeClient::new(net.channel("reader").await.unwrap());
    let id = request(
        net,
        RequestConsentRequest {
            max_reads: 2,
            ..ask(&[COURSES])
        },
    )
    .await;
    approve(net, &id).await;
    exchange.get_records(read(&[COURSES])).await.unwrap();
    assert_eq!(consent(net, &id).await.reads_used, 1);
    exchange.get_records(read(&[COURSES])).await.unwrap();
    let r = exchange.get_records(read(&[COURSES])).await;
    assert_eq!(refused(r, Code::PermissionDenied), "CONSENT_USED");
    let c = consent(net, &id).await;
    assert_eq!((c.status(), c.reads_used), (Status::Used, 2));

    let once = request(
        net,
        RequestConsentRequest {
            one_time: true,
            ..ask(&[COURSES])
        },
    )
    .await;
    approve(net, &once).await;
    exchange.get_records(read(&[COURSES])).await.unwrap();
    let r = exchange.get_records(read(&[COURSES])).await;
    assert_eq!(refused(r, Code::PermissionDenied), "CONSENT_USED");
    assert_eq!(consent(net, &once).await.status(), Status::Used);
    id
}

/// Requests and consents whose time is up expire within seconds.
async fn expiry(net: &Network, clock: &Clock) -> String {
    let pending = request(net, ask(&[COURSES])).await;
    let active = request(net, ask(&[COURSES])).await;
    approve(net, &active).await;
    clock.set_ms(clock.now_ms() + 31 * DAY_MS);
    for id in [&pending, &active] {
        let mut expired = false;
        for _ in 0..100 {
            let c = net.gateway.store.consent(id).await.unwrap().unwrap();
            if c.state == samverka_gateway::store::ConsentState::Expired {
                expired = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(expired, "{id} did not expire");
    }
    active
}

/// Every event the reader's watch gives from `cursor` until `until`
/// events have come.
async fn watch(net: &Network, cursor: &str, until: usize) -> Vec<ConsentEvent> {
    let mut stream = agency(net, "reader")
        .await
        .watch_consents(WatchConsentsRequest {
            cursor: cursor.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while events.len() < until {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        events.push(next);
    }
    events
}

async fn the_story(net: &Network, clock: &Clock) {
    refusals(net).await;
    let paused = approved_paused_resumed(net).await;
    let counted = counted_reads(net).await;
    let expired = expiry(net, clock).await;

    let names = |events: &[ConsentEvent], id: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.consent.as_ref().is_some_and(|c| c.consent_id == id))
            .map(|e| e.event.clone())
            .collect()
    };
    // The rejected request (2 events), the paused story (5), the counted
    // and the one-time consent (3 each), the two that expired (2 + 3).
    let all = watch(net, "", 18).await;
    let cursors: Vec<i64> = all.iter().map(|e| e.cursor.parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert_eq!(
        names(&all, &paused),
        ["requested", "approved", "paused", "resumed", "revoked"]
    );
    assert_eq!(names(&all, &counted), ["requested", "approved", "used"]);
    assert_eq!(names(&all, &expired), ["requested", "approved", "expired"]);
    // Resumed from the cursor of the 10th event: exactly the rest.
    let rest = watch(net, &all[9].cursor, all.len() - 10).await;
    let ids = |e: &[ConsentEvent]| e.iter().map(|e| e.audit_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rest), ids(&all[10..]));
    // An agency sees only its own consents' events.
    let outsider = agency(net, "outsider")
        .await
        .watch_consents(WatchConsentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut outsider = outsider;
    let none = tokio::time::timeout(Duration::from_millis(1500), outsider.message()).await;
    assert!(none.is_err(), "the outsider saw {none:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_consents_live_and_are_followed_on_sqlite() {
    let clock = Clock::manual(samverka_gateway::time::system_now_ms());
    let net = support::start_with_clock(clock.clone()).await;
    the_story(&net, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_consents_live_and_are_followed_on_postgresql_across_replicas() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let clock = Clock::manual(samverka_gateway::time::system_now_ms());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = Network::start_with_store(a.path(), clock.clone(), &pg.url())
        .await
        .unwrap();
    let two = Network::start_with_store(b.path(), clock.clone(), &pg.url())
        .await
        .unwrap();
    the_story(&one, &clock).await;

    // The last read of a one-time consent, raced on both replicas.
    let id = request(
        &one,
        RequestConsentRequest {
            one_time: true,
            ..ask(&[COURSES])
        },
    )
    .await;
    approve(&two, &id).await;
    let (mut x, mut y) = (
        RecordExchangeClient::new(one.channel("reader").await.unwrap()),
        RecordExchangeClient::new(two.channel("reader").await.unwrap()),
    );
    let (r1, r2) = tokio::join!(
        x.get_records(read(&[COURSES])),
        y.get_records(read(&[COURSES]))
    );
    let won = [&r1, &r2].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{r1:?} {r2:?}");
    for r in [r1, r2].into_iter().filter(|r| r.is_err()) {
        assert_eq!(reason(&r.unwrap_err()), "CONSENT_USED");
    }

    // A change through one replica, seen by a watcher of the other: the
    // story's 18 events and the race's 3, then a new request.
    let all = watch(&two, "", 21).await;
    let fresh = request(&one, ask(&[JOBS])).await;
    let seen = watch(&two, &all[20].cursor, 1).await;
    assert_eq!(seen[0].consent.as_ref().unwrap().consent_id, fresh);
    assert_eq!(seen[0].event, "requested");
}
