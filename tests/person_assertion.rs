//! End to end, on `samverka serve` processes over SQLite and over
//! PostgreSQL: a registrar acts for a person only with a person assertion
//! that proves the person is present, for that one call; registrars stay
//! within their purposes and never grant to themselves; any registrar
//! holding the person's assertion may revoke and is then named; an
//! agency's case reference and official reach the person's access log.
//! Every refusal changes nothing, is audited with its reason and shows in
//! the person's access log, and `samverka audit verify` finds the trail
//! intact. On PostgreSQL, an assertion used on one replica is refused on
//! the other. (The same checks, one by one against forged tokens, are in
//! gateway/src/person/tests.rs.) PostgreSQL runs skip with a printed
//! reason when it is not installed; `.ci/run` installs it.

mod support;

use std::path::Path;

use samverka::cli::demo::{
    DEMO_PURPOSE, DEMO_SUBJECT, DemoLogin, OTHER_SUBJECT, OUTSIDER_AGENCY, READER_AGENCY,
    REGISTRAR_AGENCY, pki_spec,
};
use samverka_certs::dev::DevPkiFiles;
use samverka_gateway::time::{Clock, system_now_ms, to_timestamp};
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    AccessEvent, ConsentReceipt, GetConsentRequest, GetRecordsRequest, GrantConsentRequest,
    ListAccessEventsRequest, ListConsentsRequest, RevokeConsentRequest,
};
use support::postgres::PgCluster;
use support::process::{Replica, spawn_adapters, start_replica};
use support::{DAY_MS, reason};
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");
const LOA2: &str = "http://id.elegnamnden.se/loa/1.0/loa2";

/// A gateway process on `store`, with the demo's configuration.
struct Setup {
    _dir: tempfile::TempDir,
    pki: DevPkiFiles,
    config: std::path::PathBuf,
}

async fn setup(store: impl FnOnce(&Path) -> String) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = spawn_adapters(&pki).await;
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        samverka::cli::demo::demo_config(
            &pki,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &adapters,
            &store(dir.path()),
            "",
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        pki,
        config,
    }
}

impl Setup {
    fn login(&self, registrar: &str, person: &str) -> DemoLogin {
        DemoLogin::new(&self.pki, registrar, person, Clock::system()).unwrap()
    }
}

async fn consents(g: &Replica, pki: &DevPkiFiles, agency: &str) -> ConsentsClient<Channel> {
    ConsentsClient::new(g.channel(pki, agency).await)
}

fn grant_request(grantee: &str, purpose: &str, types: &[&str]) -> GrantConsentRequest {
    GrantConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: grantee.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: purpose.into(),
        valid_until: Some(to_timestamp(system_now_ms() + 30 * DAY_MS)),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

fn study_guidance() -> GrantConsentRequest {
    grant_request(READER_AGENCY, DEMO_PURPOSE, &["employment.period"])
}

/// The reason a refused call carries, after checking its code.
fn refused<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, code: Code) -> String {
    let status = r.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    reason(&status)
}

/// The demo person's access log, as the registrar reads it for them.
async fn access_log(g: &Replica, s: &Setup) -> Vec<AccessEvent> {
    let req = s
        .login("registrar", DEMO_SUBJECT)
        .seal(ListAccessEventsRequest {
            subject_id: DEMO_SUBJECT.into(),
            page_size: 1000,
            ..Default::default()
        });
    AccessLogClient::new(g.channel(&s.pki, "registrar").await)
        .list(req)
        .await
        .unwrap()
        .into_inner()
        .events
}

/// Grant refusals: each with its reason, none recording anything.
async fn grants_without_the_person_are_refused(g: &Replica, s: &Setup) {
    let mut registrar = consents(g, &s.pki, "registrar").await;
    let person = s.login("registrar", DEMO_SUBJECT);
    let unauthenticated = Code::Unauthenticated;

    let r = registrar.grant(study_guidance()).await;
    assert_eq!(refused(r, unauthenticated), "PERSON_ASSERTION_MISSING");

    let mut alone = study_guidance();
    alone.person_assertion = person.id_token();
    let r = registrar.grant(alone).await;
    assert_eq!(refused(r, unauthenticated), "PERSON_ASSERTION_INVALID");

    let mut widened = person.seal(study_guidance());
    widened.record_types.push("education.course_result".into());
    let r = registrar.grant(widened).await;
    assert_eq!(refused(r, unauthenticated), "PERSON_ASSERTION_INVALID");

    // An assertion for a List sent with a Grant of the same person.
    let list = person.seal(ListConsentsRequest {
        subject_id: DEMO_SUBJECT.into(),
        ..Default::default()
    });
    let mut other_action = study_guidance();
    other_action.person_assertion = list.person_assertion;
    let r = registrar.grant(other_action).await;
    assert_eq!(refused(r, unauthenticated), "PERSON_ASSERTION_INVALID");

    // A login of another person, for a grant naming the demo person.
    let r = registrar
        .grant(s.login("registrar", OTHER_SUBJECT).seal(study_guidance()))
        .await;
    assert_eq!(refused(r, Code::PermissionDenied), "PERSON_MISMATCH");

    let mut stale = s.login("registrar", DEMO_SUBJECT);
    stale.login.auth_time -= 3600;
    let r = registrar.grant(stale.seal(study_guidance())).await;
    assert_eq!(refused(r, unauthenticated), "PERSON_LOGIN_STALE");

    let mut weak = s.login("registrar", DEMO_SUBJECT);
    weak.login.acr = LOA2.into();
    let r = registrar.grant(weak.seal(study_guidance())).await;
    assert_eq!(refused(r, Code::PermissionDenied), "ASSURANCE_TOO_LOW");

    // The person's login at the second registrar, used by the first.
    let mut elsewhere = s.login("registrar", DEMO_SUBJECT);
    elsewhere.login.client_id = samverka::cli::demo::OUTSIDER_CLIENT_ID.into();
    let r = registrar.grant(elsewhere.seal(study_guidance())).await;
    assert_eq!(refused(r, unauthenticated), "PERSON_ASSERTION_INVALID");

    // The second registrar's assertion sent on the first's connection.
    let r = registrar
        .grant(s.login("outsider", DEMO_SUBJECT).seal(study_guidance()))
        .await;
    assert_eq!(refused(r, unauthenticated), "PERSON_ASSERTION_INVALID");

    // Control characters (a NUL no PostgreSQL stores) in what a registrar
    // has stored: refused before the assertion is spent, on both stores.
    for evidence in ["e\u{0}vidence", "line\nbreak", "tab\t"] {
        let bad = person.seal(GrantConsentRequest {
            evidence_ref: evidence.into(),
            ..study_guidance()
        });
        for _ in 0..2 {
            let r = registrar.grant(bad.clone()).await;
            assert_eq!(refused(r, Code::InvalidArgument), "FIELD_INVALID");
        }
    }

    // Bounds: outside the registrar's purposes, and to itself.
    let mut outsider = consents(g, &s.pki, "outsider").await;
    let r = outsider
        .grant(s.login("outsider", DEMO_SUBJECT).seal(study_guidance()))
        .await;
    assert_eq!(
        refused(r, Code::PermissionDenied),
        "PURPOSE_NOT_REGISTRABLE"
    );
    let to_itself = grant_request(REGISTRAR_AGENCY, "job_matching", &["employment.period"]);
    let r = registrar.grant(person.seal(to_itself)).await;
    assert_eq!(refused(r, Code::PermissionDenied), "SELF_GRANT");
}

/// A grant with the person's assertion, which cannot be sent twice.
async fn grant(g: &Replica, s: &Setup) -> ConsentReceipt {
    let mut registrar = consents(g, &s.pki, "registrar").await;
    let req = s.login("registrar", DEMO_SUBJECT).seal(study_guidance());
    let receipt = registrar.grant(req.clone()).await.unwrap().into_inner();
    let r = registrar.grant(req).await;
    assert_eq!(refused(r, Code::Unauthenticated), "PERSON_ASSERTION_REUSED");

    let claims = samverka_gateway::credential::receipt::verify(
        &receipt.jws,
        &std::fs::read_to_string(&s.pki.gateway.0).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.registrar, REGISTRAR_AGENCY);
    let person = claims
        .person
        .expect("the receipt names what proved the person");
    assert_eq!(person.acr, samverka_gateway::person::issue::DEV_ACR);
    assert_eq!(
        person.provider,
        samverka_gateway::person::issue::DEV_IDP_ISSUER
    );
    receipt
}

/// Reading and revoking: the person's assertion, for the consent's
/// person; any registrar may revoke and is named.
async fn reads_and_revocation(g: &Replica, s: &Setup, consent_id: &str) {
    let mut registrar = consents(g, &s.pki, "registrar").await;
    let person = s.login("registrar", DEMO_SUBJECT);
    let other = s.login("registrar", OTHER_SUBJECT);
    let get = || GetConsentRequest {
        consent_id: consent_id.into(),
        ..Default::default()
    };
    let r = registrar.get(get()).await;
    assert_eq!(
        refused(r, Code::Unauthenticated),
        "PERSON_ASSERTION_MISSING"
    );
    let r = registrar.get(other.seal(get())).await;
    assert_eq!(refused(r, Code::PermissionDenied), "PERSON_MISMATCH");
    let c = registrar
        .get(person.seal(get()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.consent_id, consent_id);

    let list = ListConsentsRequest {
        subject_id: DEMO_SUBJECT.into(),
        ..Default::default()
    };
    let r = registrar.list(other.seal(list.clone())).await;
    assert_eq!(refused(r, Code::PermissionDenied), "PERSON_MISMATCH");
    let listed = registrar.list(person.seal(list.clone())).await.unwrap();
    assert_eq!(
        listed.into_inner().consents.len(),
        1,
        "refusals recorded nothing"
    );

    let read_log = ListAccessEventsRequest {
        subject_id: DEMO_SUBJECT.into(),
        ..Default::default()
    };
    let mut log = AccessLogClient::new(g.channel(&s.pki, "registrar").await);
    let r = log.list(read_log.clone()).await;
    assert_eq!(
        refused(r, Code::Unauthenticated),
        "PERSON_ASSERTION_MISSING"
    );
    let r = log.list(other.seal(read_log)).await;
    assert_eq!(refused(r, Code::PermissionDenied), "PERSON_MISMATCH");

    // Revoking another person's consent, then this person's through the
    // second registrar, which did not grant it.
    let revoke = || RevokeConsentRequest {
        consent_id: consent_id.into(),
        reason: "withdrawn by the person".into(),
        ..Default::default()
    };
    let mut outsider = consents(g, &s.pki, "outsider").await;
    let r = outsider
        .revoke(s.login("outsider", OTHER_SUBJECT).seal(revoke()))
        .await;
    assert_eq!(refused(r, Code::PermissionDenied), "PERSON_MISMATCH");
    let receipt = outsider
        .revoke(s.login("outsider", DEMO_SUBJECT).seal(revoke()))
        .await
        .unwrap()
        .into_inner();
    let consent = receipt.consent.unwrap();
    assert_eq!(consent.revoked_by, OUTSIDER_AGENCY);
    assert_eq!(consent.registrar_agency, REGISTRAR_AGENCY);
    let claims = samverka_gateway::credential::receipt::verify(
        &receipt.jws,
        &std::fs::read_to_string(&s.pki.gateway.0).unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims.registrar, OUTSIDER_AGENCY,
        "the receipt names who revoked"
    );
    assert_eq!(claims.consent.revoked_by.as_deref(), Some(OUTSIDER_AGENCY));

    // Revoking again through the first registrar changes nothing: the
    // receipt still names the one that revoked.
    let again = registrar
        .revoke(person.seal(revoke()))
        .await
        .unwrap()
        .into_inner();
    let claims = samverka_gateway::credential::receipt::verify(
        &again.jws,
        &std::fs::read_to_string(&s.pki.gateway.0).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.registrar, OUTSIDER_AGENCY);
    assert_eq!(again.consent.unwrap().revoked_by, OUTSIDER_AGENCY);
}

/// Reads name their case and official; malformed ones are refused.
async fn reads_name_their_case(g: &Replica, s: &Setup) {
    let mut reader = RecordExchangeClient::new(g.channel(&s.pki, "reader").await);
    let read = |case: &str, official: &str| GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: vec!["employment.period".into()],
        purpose: DEMO_PURPOSE.into(),
        case_reference: case.into(),
        official_id: official.into(),
        ..Default::default()
    };
    for (case, official) in [
        ("SG-2026/0412", "199003142388"),
        ("SG-2026/0412", "900314-2388"),
        ("case with spaces", ""),
        (&*"x".repeat(65), ""),
    ] {
        let status = reader.get_records(read(case, official)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case} {official}");
        let r = reason(&status);
        assert!(r == "FIELD_INVALID" || r == "FIELD_TOO_LONG", "{r}");
    }
    // The consent is revoked by now: refused, and still on the record.
    let status = reader
        .get_records(read("SG-2026/0412", "officer-17"))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REVOKED");
}

/// The person's log holds every call with its reason, the evidence of
/// each allowed one, and the read's case; the trail verifies.
async fn everything_is_on_the_record(g: &Replica, s: &Setup) {
    let events = access_log(g, s).await;
    let reasons: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.method.as_str(), e.agency.as_str(), e.reason.as_str()))
        .collect();
    for expected in [
        (
            "Consents/Grant",
            REGISTRAR_AGENCY,
            "PERSON_ASSERTION_MISSING",
        ),
        (
            "Consents/Grant",
            REGISTRAR_AGENCY,
            "PERSON_ASSERTION_INVALID",
        ),
        ("Consents/Grant", REGISTRAR_AGENCY, "PERSON_LOGIN_STALE"),
        ("Consents/Grant", REGISTRAR_AGENCY, "ASSURANCE_TOO_LOW"),
        (
            "Consents/Grant",
            REGISTRAR_AGENCY,
            "PERSON_ASSERTION_REUSED",
        ),
        ("Consents/Grant", REGISTRAR_AGENCY, "SELF_GRANT"),
        ("Consents/Grant", REGISTRAR_AGENCY, "PERSON_MISMATCH"),
        ("Consents/Grant", OUTSIDER_AGENCY, "PURPOSE_NOT_REGISTRABLE"),
        ("Consents/Grant", REGISTRAR_AGENCY, ""),
        ("Consents/Get", REGISTRAR_AGENCY, "PERSON_MISMATCH"),
        ("Consents/Get", REGISTRAR_AGENCY, ""),
        ("Consents/List", REGISTRAR_AGENCY, ""),
        ("Consents/List", REGISTRAR_AGENCY, "PERSON_MISMATCH"),
        ("AccessLog/List", REGISTRAR_AGENCY, "PERSON_MISMATCH"),
        (
            "AccessLog/List",
            REGISTRAR_AGENCY,
            "PERSON_ASSERTION_MISSING",
        ),
        ("Consents/Revoke", OUTSIDER_AGENCY, "PERSON_MISMATCH"),
        ("Consents/Revoke", OUTSIDER_AGENCY, ""),
        ("RecordExchange/GetRecords", READER_AGENCY, "FIELD_INVALID"),
        (
            "RecordExchange/GetRecords",
            READER_AGENCY,
            "CONSENT_REVOKED",
        ),
    ] {
        assert!(
            reasons.contains(&expected),
            "{expected:?} missing from {reasons:#?}"
        );
    }
    for e in events
        .iter()
        .filter(|e| e.method.contains("Consents/") && e.reason.is_empty())
    {
        for key in [
            "person.provider",
            "person.acr",
            "person.auth_time",
            "person.id_token_sha256",
            "person.assertion_id",
        ] {
            assert!(e.details.contains_key(key), "{key} missing from {e:?}");
        }
    }
    let case = events
        .iter()
        .rev()
        .find(|e| e.reason == "CONSENT_REVOKED")
        .unwrap();
    assert_eq!(case.details["case_reference"], "SG-2026/0412");
    assert_eq!(case.details["official_id"], "officer-17");

    let out = support::audit::run(&["verify", "--config", s.config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit trail intact"), "{stdout}");
}

async fn the_whole_story(g: &Replica, s: &Setup) {
    grants_without_the_person_are_refused(g, s).await;
    let receipt = grant(g, s).await;
    let consent_id = receipt.consent.unwrap().consent_id;
    reads_and_revocation(g, s, &consent_id).await;
    reads_name_their_case(g, s).await;
    everything_is_on_the_record(g, s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persons_presence_is_proven_on_sqlite() {
    let s = setup(|dir| dir.join("samverka.db").display().to_string()).await;
    let g = start_replica(BIN, &s.config);
    the_whole_story(&g, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persons_presence_is_proven_on_postgresql_and_an_assertion_is_used_once_across_replicas()
 {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let s = setup(|_| pg.url()).await;
    let one = start_replica(BIN, &s.config);
    let two = start_replica(BIN, &s.config);
    the_whole_story(&one, &s).await;

    // Sealed once, sent to each replica: the second refuses it.
    let req = s
        .login("registrar", DEMO_SUBJECT)
        .seal(ListConsentsRequest {
            subject_id: DEMO_SUBJECT.into(),
            ..Default::default()
        });
    assert!(!req.person_assertion().is_empty());
    consents(&one, &s.pki, "registrar")
        .await
        .list(req.clone())
        .await
        .unwrap();
    let r = consents(&two, &s.pki, "registrar").await.list(req).await;
    assert_eq!(refused(r, Code::Unauthenticated), "PERSON_ASSERTION_REUSED");
}
