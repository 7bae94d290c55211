//! End to end: the audit trail a running gateway keeps, on a real demo
//! network. The gateway chains every decision and signs checkpoints as it
//! goes (and `samverka audit verify` finds the trail intact); a closed
//! audit writer checkpoints its head and refuses reads it could not
//! record; and the access log shows a person every decision about their
//! records, page by page, to registrars only.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY};
use samverka_proto::v1::ListAccessEventsRequest;
use samverka_proto::v1::access_log_client::AccessLogClient;
use support::audit::{assert_intact, run};
use support::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_chains_and_checkpoints_what_it_decides() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    for i in 0..12u32 {
        let subject = if i.is_multiple_of(4) {
            OTHER_SUBJECT
        } else {
            DEMO_SUBJECT
        };
        let _ = reader
            .get_records(read_request(subject, &["employment.period"], DEMO_PURPOSE))
            .await;
    }
    // The demo configuration checkpoints every 10 entries.
    let mut checkpoints = Vec::new();
    for _ in 0..50 {
        checkpoints = net.gateway.store.checkpoints().await.unwrap();
        if !checkpoints.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(checkpoints.first().map(|c| c.seq), Some(10));
    // The registry's seed, the signing key joining the key set, the grant
    // and the twelve reads.
    let entries = net.gateway.store.audit_entries(None).await.unwrap();
    assert_eq!(entries.len(), 15);
    assert_eq!(entries[0].method, "registry/seed");
    assert_eq!(entries[1].method, "keys/joined");
    assert!(
        entries
            .windows(2)
            .all(|w| w[1].prev_hash == w[0].hash && w[1].seq == w[0].seq + 1)
    );

    let config = net.config_path.display().to_string();
    let out = tokio::task::spawn_blocking(move || run(&["verify", "--config", &config]))
        .await
        .unwrap();
    assert_intact(&out, 15);
}

/// One request must not make an intact trail look tampered with: reads
/// refused for whatever they carry (empty, blank or comma-holding record
/// types, control characters, brackets and quotes) are audited as sent
/// (made safe to repeat), read back exactly as hashed, and the trail
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_makes_the_trail_look_tampered_with() {
    let net = start().await;
    let mut reader = exchange(&net, "reader").await;
    let odd: &[&[&str]] = &[
        &[""],
        &["", ""],
        &[" "],
        &["employment.period,education.degree"],
        &["a,", ",b", ","],
        &["[\"x\"]", "{}", "\\", "\u{0}", "\n"],
        &["employment.period", ""],
    ];
    for (i, types) in odd.iter().enumerate() {
        let purpose = if i % 2 == 0 { DEMO_PURPOSE } else { "" };
        let status = reader
            .get_records(read_request(DEMO_SUBJECT, types, purpose))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{types:?}");
    }
    let mut entries = net.gateway.store.audit_entries(None).await.unwrap();
    entries.retain(|e| !e.method.starts_with("registry/") && !e.method.starts_with("keys/"));
    assert_eq!(entries.len(), odd.len());
    for (e, types) in entries.iter().zip(odd) {
        let sent: Vec<String> = types
            .iter()
            .map(|t| samverka_gateway::pipeline::validate::sanitize(t))
            .collect();
        assert_eq!(e.record_types, sent, "audited as sent");
    }
    let config = net.config_path.display().to_string();
    let out = tokio::task::spawn_blocking(move || run(&["verify", "--config", &config]))
        .await
        .unwrap();
    assert_intact(&out, odd.len() as u64 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_audit_writer_checkpoints_its_head_and_refuses_reads() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    let read = || read_request(DEMO_SUBJECT, &["employment.period"], DEMO_PURPOSE);
    for _ in 0..3 {
        reader.get_records(read()).await.unwrap();
    }
    net.gateway.audit.close().await;

    let head = net.gateway.store.audit_head().await.unwrap();
    let last = net
        .gateway
        .store
        .checkpoints()
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((last.seq, last.hash), (head.seq, head.hash));
    // Nothing is answered that the trail cannot record: deny by default.
    let refused = reader.get_records(read()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(net.gateway.store.audit_head().await.unwrap().seq, head.seq);
}

#[tokio::test]
async fn the_access_log_shows_a_person_every_decision() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    let denied = read_request(DEMO_SUBJECT, &["employment.period"], "job_matching");
    reader.get_records(denied).await.unwrap_err();
    // Someone else's read is not in this person's log.
    let _ = reader
        .get_records(read_request(
            OTHER_SUBJECT,
            &["employment.period"],
            DEMO_PURPOSE,
        ))
        .await;

    let mut log = AccessLogClient::new(net.channel("registrar").await.unwrap());
    let page = log
        .list(sealed(
            &net,
            "registrar",
            ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.next_page_token, "");
    let all = page.events;
    assert_eq!(all.len(), 4, "{all:#?}");
    // The registrar's grant of the consent is in the person's log too.
    assert_eq!(
        (all[0].method.as_str(), all[0].agency.as_str()),
        ("Consents/Grant", samverka::cli::demo::REGISTRAR_AGENCY)
    );
    let events = &all[1..];
    assert_eq!(
        (events[0].outcome.as_str(), events[0].agency.as_str()),
        ("allowed", READER_AGENCY)
    );
    assert_eq!(
        events[0].agency_name,
        "Study and career guidance service (demo)"
    );
    assert_eq!(events[0].purpose_description, "Study and career guidance");
    assert_eq!(
        events[0].record_types,
        ["education.course_result", "employment.period"]
    );
    assert_eq!(events[0].sources.len(), 2);
    assert_eq!(
        (events[1].outcome.as_str(), events[1].reason.as_str()),
        ("denied", "PURPOSE_MISMATCH")
    );
    // Reading the log is itself in the log.
    assert_eq!(events[2].method, "AccessLog/List");
    assert_eq!(events[2].agency, samverka::cli::demo::REGISTRAR_AGENCY);

    // Pages.
    let first = log
        .list(sealed(
            &net,
            "registrar",
            ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                page_size: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.events.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = log
        .list(sealed(
            &net,
            "registrar",
            ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                page_size: 2,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.events[0].audit_id, all[2].audit_id);

    // A time range in the future holds nothing.
    let later =
        samverka_gateway::time::to_timestamp(samverka_gateway::time::system_now_ms() + DAY_MS);
    let none = log
        .list(sealed(
            &net,
            "registrar",
            ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                from: Some(later),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(none.events.is_empty());

    let status = log
        .list(sealed(
            &net,
            "registrar",
            ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                page_token: "not-a-token".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "PAGE_TOKEN_INVALID")
    );

    // Only registrars read the log.
    let status = AccessLogClient::new(net.channel("reader").await.unwrap())
        .list(ListAccessEventsRequest {
            subject_id: DEMO_SUBJECT.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ROLE_REQUIRED");
}

/// The log newest first and by agency, as the person's web view reads it;
/// both are terms of the assertion, and a bad agency is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_reads_newest_first_and_by_agency() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    for _ in 0..3 {
        reader.get_records(demo_read()).await.unwrap();
    }
    let mut log = AccessLogClient::new(net.channel("registrar").await.unwrap());
    let list = |newest_first: bool, agency: &str, page_token: String| ListAccessEventsRequest {
        subject_id: DEMO_SUBJECT.into(),
        newest_first,
        agency: agency.into(),
        page_size: 2,
        page_token,
        ..Default::default()
    };
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = log
            .list(sealed(&net, "registrar", list(true, READER_AGENCY, token)))
            .await
            .unwrap()
            .into_inner();
        pages.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages.len(), 3, "the reader's three reads: {pages:#?}");
    assert!(pages.iter().all(|e| e.agency == READER_AGENCY));
    let ms = |e: &samverka_proto::v1::AccessEvent| {
        samverka_gateway::time::from_timestamp(e.time.as_ref().unwrap()).unwrap()
    };
    assert!(
        pages.windows(2).all(|w| ms(&w[0]) >= ms(&w[1])),
        "newest first"
    );
    let newest = log
        .list(sealed(&net, "registrar", list(true, "", String::new())))
        .await
        .unwrap()
        .into_inner();
    // The registrar's read of this very log comes first.
    assert_eq!(newest.events[0].method, "AccessLog/List");
    assert_eq!(
        newest.events[0].purpose_description_sv, "",
        "no purpose on a log read"
    );

    // An assertion for one order or agency is not one for another.
    let mut req = sealed(&net, "registrar", list(false, "", String::new()));
    req.newest_first = true;
    let status = log.list(req).await.unwrap_err();
    assert_eq!(reason(&status), "PERSON_ASSERTION_INVALID");
    let mut req = sealed(&net, "registrar", list(true, READER_AGENCY, String::new()));
    req.agency = samverka::cli::demo::REGISTRAR_AGENCY.into();
    let status = log.list(req).await.unwrap_err();
    assert_eq!(reason(&status), "PERSON_ASSERTION_INVALID");
    let status = log
        .list(sealed(
            &net,
            "registrar",
            list(true, "12345", String::new()),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "AGENCY_ID_INVALID")
    );
}
