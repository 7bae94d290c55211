//! End to end: two `samverka serve` processes on one PostgreSQL database,
//! which they reach over TLS with a client certificate (the server takes
//! nothing else). A consent revoked through one replica is refused by the
//! other on the very next read, and when the database goes away every read
//! is refused (fail closed) and both say they are not ready. Skipped, with the reason printed, when PostgreSQL is not
//! installed; `.ci/run` installs it.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, pki_spec};
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::RevokeConsentRequest;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::postgres::PgCluster;
use support::process::{Replica, spawn_adapters, start_replica};
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

async fn channel(replica: &Replica, tls: &AgencyTls) -> Channel {
    connect(&replica.address.to_string(), "localhost", tls)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_replica_is_enforced_by_the_other() {
    let Some(pg) = PgCluster::start_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();

    // The two reference adapters, shared by both replicas.
    let adapters = spawn_adapters(&pki).await;
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        samverka::cli::demo::demo_config(
            &pki,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &adapters,
            &pg.url(),
            "",
        )
        // Both replicas share the adapters and the PKI: one registry, in
        // the store, seeded by the first to start.
        .replace("source = \"file\"", "source = \"store\""),
    )
    .unwrap();

    let one = start_replica(BIN, &config);
    let two = start_replica(BIN, &config);
    assert_ne!(one.address, two.address);

    let tls = |name: &str| {
        let (_, cert, key) = pki.agencies.iter().find(|(n, _, _)| n == name).unwrap();
        AgencyTls::from_files(&pki.ca_cert, cert, key).unwrap()
    };
    let (registrar, reader) = (tls("registrar"), tls("reader"));
    let mut consents_one = ConsentsClient::new(channel(&one, &registrar).await);
    let mut read_one = RecordExchangeClient::new(channel(&one, &reader).await);
    let mut read_two = RecordExchangeClient::new(channel(&two, &reader).await);

    // Granted through replica 1, readable through replica 2.
    let now = samverka_gateway::time::system_now_ms();
    let request = samverka_proto::v1::GrantConsentRequest {
        subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
        grantee_agency: samverka::cli::demo::READER_AGENCY.into(),
        record_types: strings(&["education.course_result", "employment.period"]),
        purpose: DEMO_PURPOSE.into(),
        valid_until: Some(samverka_gateway::time::to_timestamp(now + 30 * DAY_MS)),
        request_id: "replicas-1".into(),
        ..Default::default()
    };
    let consent_id = consents_one
        .grant(sealed_pki(&pki, "registrar", request))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap()
        .consent_id;
    let answer = read_two
        .get_records(demo_read())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.records.len(), 5);

    // Revoked through replica 1: replica 2 refuses the very next read.
    consents_one
        .revoke(sealed_pki(
            &pki,
            "registrar",
            RevokeConsentRequest {
                consent_id,
                reason: "withdrawn".into(),
                person_assertion: String::new(),
            },
        ))
        .await
        .unwrap();
    let status = read_two.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REVOKED");
    let status = read_one.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REVOKED");

    // Both replicas audited into the one database.
    let store = samverka_gateway::store::Store::open(
        &samverka_gateway::store::StoreLocation::Postgres(pg.url()),
    )
    .await
    .unwrap();
    let decisions: Vec<(String, String, String)> = store
        .audit_entries(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.method.starts_with("registry/") && !e.method.starts_with("keys/"))
        .map(|e| (e.method, e.decision, e.reason))
        .collect();
    let read = "RecordExchange/GetRecords";
    assert_eq!(
        decisions,
        [
            ("Consents/Grant", "allowed", ""),
            (read, "allowed", ""),
            ("Consents/Revoke", "allowed", ""),
            (read, "denied", "CONSENT_REVOKED"),
            (read, "denied", "CONSENT_REVOKED"),
        ]
        .map(|(m, d, r)| (m.to_owned(), d.to_owned(), r.to_owned()))
    );

    // Both replicas write one chain: concurrent reads through both, then
    // the whole trail verifies.
    let mut tasks = Vec::new();
    for client in [&read_one, &read_two] {
        for _ in 0..8 {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    let _ = client.get_records(demo_read()).await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The registry's seed, the signing key joining the set (once, though
    // both replicas use it), then the five entries above.
    assert_eq!(store.audit_head().await.unwrap().seq, 7 + 160);
    let out = support::audit::run(&[
        "verify",
        "--store",
        &pg.url(),
        "--cert",
        &pki.gateway.0.display().to_string(),
    ]);
    support::audit::assert_intact(&out, 167);
    drop(store);

    for replica in [&one, &two] {
        assert_eq!(admin_get(replica.admin, "/readyz").await.0, 200);
    }

    // The database goes away: every read is refused, none answered, and
    // both replicas tell their load balancer why.
    pg.stop();
    for client in [&mut read_one, &mut read_two] {
        let status = client.get_records(demo_read()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "STORE_UNAVAILABLE");
    }
    for replica in [&one, &two] {
        let (code, body) = admin_get(replica.admin, "/readyz").await;
        assert_eq!(code, 503, "{body}");
        assert!(
            body.starts_with("audit trail unavailable: the last audit commit failed")
                || body.starts_with("store unavailable"),
            "{body}"
        );
        assert_eq!(admin_get(replica.admin, "/healthz").await.0, 200);
    }
    let status = consents_one
        .list(sealed_pki(
            &pki,
            "registrar",
            samverka_proto::v1::ListConsentsRequest {
                subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
                grantee_agency: String::new(),
                person_assertion: String::new(),
                states: Vec::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "STORE_UNAVAILABLE");
}
