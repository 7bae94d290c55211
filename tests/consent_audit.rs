//! End to end: every call to `Consents` and `AccessLog`, allowed or
//! refused, is an entry in the audit trail's hash chain, committed before
//! the answer leaves, and the person it concerns sees it in their access
//! log; `samverka audit verify` then finds the trail intact.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY};
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::{
    GetConsentRequest, ListAccessEventsRequest, ListConsentsRequest, RevokeConsentRequest,
};
use support::audit::{assert_intact, run};
use support::*;

const REGISTRAR_AGENCY: &str = samverka::cli::demo::REGISTRAR_AGENCY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consent_action_is_on_the_record_and_in_the_persons_log() {
    let net = start().await;
    let mut registrar = consents(&net, "registrar").await;
    let mut reader = consents(&net, "reader").await;
    let log = |agency: &'static str| {
        let net = &net;
        async move { AccessLogClient::new(net.channel(agency).await.unwrap()) }
    };
    let list = || ListConsentsRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: String::new(),
        person_assertion: String::new(),
        states: Vec::new(),
    };
    let revoke = |id: &str| RevokeConsentRequest {
        consent_id: id.into(),
        reason: "the person withdrew".into(),
        person_assertion: String::new(),
    };
    let get = |id: &str| GetConsentRequest {
        consent_id: id.into(),
        person_assertion: String::new(),
    };
    let read_log = || ListAccessEventsRequest {
        subject_id: DEMO_SUBJECT.into(),
        ..Default::default()
    };

    // (method, caller, decision, reason, about the demo person) per call,
    // and the audit id a refusal named.
    let mut want: Vec<(&str, &str, &str, &str, bool)> = Vec::new();
    let mut refusal_ids = Vec::new();

    // The registrar's calls carry the person's assertion (the reader's
    // need none: the role check comes first).
    let receipt = registrar
        .grant(sealed(
            &net,
            "registrar",
            grant_request(&net, DEMO_PURPOSE, &["employment.period"], "a-1"),
        ))
        .await
        .unwrap()
        .into_inner();
    let id = receipt.consent.unwrap().consent_id;
    want.push(("Consents/Grant", REGISTRAR_AGENCY, "allowed", "", true));
    registrar
        .get(sealed(&net, "registrar", get(&id)))
        .await
        .unwrap();
    want.push(("Consents/Get", REGISTRAR_AGENCY, "allowed", "", true));
    registrar
        .list(sealed(&net, "registrar", list()))
        .await
        .unwrap();
    want.push(("Consents/List", REGISTRAR_AGENCY, "allowed", "", true));

    // Refused: a non-registrar doing each, and nonsense from the registrar.
    let refusals = [
        reader
            .grant(grant_request(
                &net,
                DEMO_PURPOSE,
                &["employment.period"],
                "x-1",
            ))
            .await
            .unwrap_err(),
        reader.get(get(&id)).await.unwrap_err(),
        reader.list(list()).await.unwrap_err(),
        reader.revoke(revoke(&id)).await.unwrap_err(),
        log("reader").await.list(read_log()).await.unwrap_err(),
    ];
    for (status, method) in refusals.iter().zip([
        "Consents/Grant",
        "Consents/Get",
        "Consents/List",
        "Consents/Revoke",
        "AccessLog/List",
    ]) {
        assert_eq!(reason(status), "ROLE_REQUIRED", "{method}");
        refusal_ids.push(audit_id(status));
        want.push((method, READER_AGENCY, "denied", "ROLE_REQUIRED", true));
    }
    let unknown = registrar
        .get(sealed(&net, "registrar", get("no-such-consent")))
        .await
        .unwrap_err();
    assert_eq!(reason(&unknown), "CONSENT_NOT_FOUND");
    refusal_ids.push(audit_id(&unknown));
    want.push((
        "Consents/Get",
        REGISTRAR_AGENCY,
        "denied",
        "CONSENT_NOT_FOUND",
        false,
    ));
    let bad = registrar
        .grant(sealed(
            &net,
            "registrar",
            grant_request(&net, "no_such_purpose", &["employment.period"], "x-2"),
        ))
        .await
        .unwrap_err();
    refusal_ids.push(audit_id(&bad));
    want.push((
        "Consents/Grant",
        REGISTRAR_AGENCY,
        "denied",
        "PURPOSE_UNKNOWN",
        true,
    ));

    // A retry re-seals: an assertion is good for one call.
    registrar
        .revoke(sealed(&net, "registrar", revoke(&id)))
        .await
        .unwrap();
    want.push(("Consents/Revoke", REGISTRAR_AGENCY, "allowed", "", true));
    registrar
        .revoke(sealed(&net, "registrar", revoke(&id)))
        .await
        .unwrap();
    want.push(("Consents/Revoke", REGISTRAR_AGENCY, "allowed", "", true));

    let mut entries = net.gateway.store.audit_entries(None).await.unwrap();
    // The registry's own entries (its seed) and the signing key's are
    // other tests'.
    entries.retain(|e| !e.method.starts_with("registry/") && !e.method.starts_with("keys/"));
    let got: Vec<(&str, &str, &str, &str, bool)> = entries
        .iter()
        .map(|e| {
            (
                e.method.as_str(),
                e.caller.as_str(),
                e.decision.as_str(),
                e.reason.as_str(),
                e.subject_id == DEMO_SUBJECT,
            )
        })
        .collect();
    assert_eq!(got, want);
    for refused in &refusal_ids {
        assert!(
            entries
                .iter()
                .any(|e| &e.audit_id == refused && e.decision == "denied"),
            "the refusal names its entry {refused:?}"
        );
    }
    // The entries name the consent and its terms.
    let grant = &entries[0];
    assert_eq!(grant.consent_id, id);
    assert_eq!(grant.record_types, ["employment.period"]);
    assert_eq!(grant.details["grantee_agency"], READER_AGENCY);
    assert_eq!(entries[1].consent_id, id);
    assert_eq!(entries[2].details["consents"], "1");
    // A refused Get of an existing consent is about its person too.
    assert_eq!(entries[4].consent_id, id);
    let revocations: Vec<&str> = entries
        .iter()
        .filter(|e| e.method == "Consents/Revoke" && e.decision == "allowed")
        .map(|e| e.details["event"].as_str())
        .collect();
    assert_eq!(revocations, ["revoked", "already_revoked"]);

    // The person sees every call about them, and this read of the log.
    let events = log("registrar")
        .await
        .list(sealed(&net, "registrar", read_log()))
        .await
        .unwrap()
        .into_inner()
        .events;
    let last = net.gateway.store.audit_entries(None).await.unwrap();
    let read = last.last().unwrap();
    assert_eq!(
        (
            read.method.as_str(),
            read.decision.as_str(),
            read.subject_id.as_str()
        ),
        ("AccessLog/List", "allowed", DEMO_SUBJECT)
    );
    let about_person: Vec<&str> = last
        .iter()
        .filter(|e| e.subject_id == DEMO_SUBJECT)
        .map(|e| e.audit_id.as_str())
        .collect();
    assert_eq!(
        events
            .iter()
            .map(|e| e.audit_id.as_str())
            .collect::<Vec<_>>(),
        about_person
    );
    assert_eq!(events[0].details["grantee_agency"], READER_AGENCY);

    let config = net.config_path.display().to_string();
    let out = tokio::task::spawn_blocking(move || run(&["verify", "--config", &config]))
        .await
        .unwrap();
    assert_intact(&out, last.len() as u64);
}
