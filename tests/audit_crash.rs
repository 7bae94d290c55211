//! End to end: the audit entry of every answered request is durable. A
//! real gateway process is killed with SIGKILL in the middle of a load of
//! concurrent requests and restarted on the same store: every request that
//! got an answer has its entry, the trail verifies, and the chain goes on.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use samverka::cli::demo::{
    DEMO_AUDIT, DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, demo_config, pki_spec,
};
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_gateway::store::{Store, StoreLocation};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::process::{spawn_adapters, start_replica, thread_policies};
use support::*;
use tonic_types::StatusExt;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

fn verify(config: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_survive_sigkill_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = spawn_adapters(&pki).await;
    let db = dir.path().join("samverka.db");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        demo_config(
            &pki,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &adapters,
            &db.display().to_string(),
            DEMO_AUDIT,
        ),
    )
    .unwrap();
    let tls = |name: &str| {
        let (_, cert, key) = pki.agencies.iter().find(|(n, _, _)| n == name).unwrap();
        AgencyTls::from_files(&pki.ca_cert, cert, key).unwrap()
    };

    let mut gateway = start_replica(BIN, &config);
    let address = gateway.address.to_string();
    // The audit writer gives way to requests when the CPU is busy (see
    // `audit::writer`): one thread, under SCHED_BATCH, which it sets as it
    // starts.
    let mut policies = Vec::new();
    for _ in 0..50 {
        policies = thread_policies(gateway.child.id(), "samverka-audit");
        if policies == [3] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(policies, [3], "the audit writer's scheduling policy");
    let mut registrar = ConsentsClient::new(
        connect(&address, "localhost", &tls("registrar"))
            .await
            .unwrap(),
    );
    let mut request = grant_request_for(DEMO_PURPOSE);
    request.request_id = "crash-test".into();
    registrar
        .grant(sealed_pki(&pki, "registrar", request))
        .await
        .unwrap();

    // Sixteen clients on four connections, allowed and denied reads mixed,
    // recording the audit id of every answer they get.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..4 {
        let channel = connect(&address, "localhost", &tls("reader"))
            .await
            .unwrap();
        for t in 0..4 {
            let mut client = RecordExchangeClient::new(channel.clone());
            let answered = answered.clone();
            clients.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let subject = if (c + t + i) % 3 == 0 {
                        OTHER_SUBJECT
                    } else {
                        DEMO_SUBJECT
                    };
                    let read = read_request(subject, &["employment.period"], DEMO_PURPOSE);
                    match client.get_records(read).await {
                        Ok(answer) => answered.lock().unwrap().push(answer.into_inner().audit_id),
                        Err(status) => match status.get_details_error_info() {
                            Some(info) => answered
                                .lock()
                                .unwrap()
                                .push(info.metadata["audit_id"].clone()),
                            None => break, // the gateway is gone
                        },
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.child.kill().unwrap(); // SIGKILL
    gateway.child.wait().unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 50,
        "only {} answers before the kill",
        answered.len()
    );
    eprintln!("{} requests answered before SIGKILL", answered.len());

    // Restarted on the same store: everything answered is there.
    let gateway = start_replica(BIN, &config);
    let store = Store::open(&StoreLocation::Sqlite(db.clone()))
        .await
        .unwrap();
    let entries = store.audit_entries(None).await.unwrap();
    let stored: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.audit_id.as_str()).collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} answered requests have no audit entry: {lost:?}",
        lost.len()
    );
    let before = verify(&config);
    assert!(before.contains("audit trail intact"), "{before}");

    // And the chain continues where it stopped.
    let head = store.audit_head().await.unwrap();
    let mut reader = RecordExchangeClient::new(
        connect(&gateway.address.to_string(), "localhost", &tls("reader"))
            .await
            .unwrap(),
    );
    let answer = reader
        .get_records(read_request(
            DEMO_SUBJECT,
            &["employment.period"],
            DEMO_PURPOSE,
        ))
        .await
        .unwrap()
        .into_inner();
    let after = store.audit_range(head.seq, 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].audit_id, answer.audit_id);
    assert_eq!(after[0].seq, head.seq + 1);
    assert_eq!(after[0].prev_hash, head.hash);
    verify(&config);
}

fn grant_request_for(purpose: &str) -> samverka_proto::v1::GrantConsentRequest {
    samverka_proto::v1::GrantConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: samverka::cli::demo::READER_AGENCY.into(),
        record_types: strings(&["employment.period"]),
        purpose: purpose.into(),
        valid_until: Some(samverka_gateway::time::to_timestamp(
            samverka_gateway::time::system_now_ms() + 30 * DAY_MS,
        )),
        request_id: String::new(),
        ..Default::default()
    }
}
