//! End to end, with `samverka serve` processes: the registry changed
//! through one replica is in force on the other within two seconds (two
//! replicas on one PostgreSQL database), and both say so in their
//! metrics; a gateway whose registry is its
//! file refuses API changes and follows the file on SIGHUP; a file edited
//! after it seeded the store is refused at start, while one left as it was
//! keeps the changes made through the API.
//! The PostgreSQL case is skipped, with the reason printed, when
//! PostgreSQL is not installed; `.ci/run` installs it.

mod support;

use std::time::{Duration, Instant};

use samverka::cli::demo::{DEMO_PURPOSE, READER_AGENCY, pki_spec};
use samverka_certs::dev::DevPkiFiles;
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::admin::v1 as pb;
use samverka_proto::admin::v1::registry_client::RegistryClient;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::postgres::PgCluster;
use support::process::{Replica, agency_tls, spawn_adapters, start_edited_gateway, start_replica};
use support::*;
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");
const RULE: &str = "2021999020/study_guidance";
const DAY_MS: i64 = 24 * 3600 * 1000;

async fn channel(replica: &Replica, tls: &AgencyTls) -> Channel {
    connect(&replica.address.to_string(), "localhost", tls)
        .await
        .unwrap()
}

async fn operator(replica: &Replica, pki: &DevPkiFiles) -> RegistryClient<Channel> {
    let tls = AgencyTls::from_files(&pki.ca_cert, &pki.operator.0, &pki.operator.1).unwrap();
    RegistryClient::new(channel(replica, &tls).await)
}

async fn latest(op: &mut RegistryClient<Channel>) -> i64 {
    op.get_registry(pb::GetRegistryRequest::default())
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap()
        .version
}

fn rule() -> Option<pb::Item> {
    Some(pb::Item {
        item: Some(pb::item::Item::AccessRule(pb::AccessRule {
            id: RULE.into(),
            agency: READER_AGENCY.into(),
            purposes: vec![DEMO_PURPOSE.into()],
            record_types: strings(&[
                "education.course_result",
                "education.degree",
                "employment.period",
                "competence.validated",
            ]),
        })),
    })
}

async fn grant(replica: &Replica, pki: &DevPkiFiles) {
    let now = samverka_gateway::time::system_now_ms();
    let request = samverka_proto::v1::GrantConsentRequest {
        subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
        grantee_agency: READER_AGENCY.into(),
        record_types: strings(&["education.course_result", "employment.period"]),
        purpose: DEMO_PURPOSE.into(),
        valid_until: Some(samverka_gateway::time::to_timestamp(now + 30 * DAY_MS)),
        request_id: "registry-replicas".into(),
        ..Default::default()
    };
    ConsentsClient::new(channel(replica, &agency_tls(pki, "registrar")).await)
        .grant(sealed_pki(pki, "registrar", request))
        .await
        .unwrap();
}

/// Reads until the answer is refused (`refused`) or allowed, for at most
/// `within`; how long it took.
async fn until(
    reader: &mut RecordExchangeClient<Channel>,
    refused: bool,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let answer = reader.get_records(demo_read()).await;
        if answer.is_err() == refused {
            if let Err(status) = answer {
                assert_eq!(reason(&status), "ACCESS_RULE_MISSING");
            }
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still {answer:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_changed_through_one_replica_is_in_force_on_the_other_within_two_seconds() {
    let Some(pg) = PgCluster::start_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = spawn_adapters(&pki).await;
    let config = dir.path().join("gateway.toml");
    let text = samverka::cli::demo::demo_config(
        &pki,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &adapters,
        &pg.url(),
        "",
    )
    .replace("source = \"file\"", "source = \"store\"");
    std::fs::write(&config, text).unwrap();
    let one = start_replica(BIN, &config);
    let two = start_replica(BIN, &config);
    grant(&one, &pki).await;
    let reader = agency_tls(&pki, "reader");
    let mut read_one = RecordExchangeClient::new(channel(&one, &reader).await);
    let mut read_two = RecordExchangeClient::new(channel(&two, &reader).await);
    read_one.get_records(demo_read()).await.unwrap();
    read_two.get_records(demo_read()).await.unwrap();

    // Removed through replica 1: refused there at once, on replica 2
    // within two seconds.
    let (mut op_one, mut op_two) = (operator(&one, &pki).await, operator(&two, &pki).await);
    let v = latest(&mut op_one).await;
    assert_eq!(v, 1, "seeded once, by whichever replica started first");
    op_one
        .delete_item(pb::DeleteItemRequest {
            kind: pb::ItemKind::AccessRule as i32,
            key: RULE.into(),
            expected_version: v,
            dry_run: false,
        })
        .await
        .unwrap();
    let status = read_one.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&status), "ACCESS_RULE_MISSING");
    let took = until(&mut read_two, true, Duration::from_secs(2)).await;
    eprintln!("replica 2 refused {took:?} after the change");

    // Added through replica 2: allowed on replica 1 within two seconds.
    op_two
        .put_item(pb::PutItemRequest {
            item: rule(),
            expected_version: v + 1,
            dry_run: false,
        })
        .await
        .unwrap();
    read_two.get_records(demo_read()).await.unwrap();
    until(&mut read_one, false, Duration::from_secs(2)).await;

    // Two operators on one version, through two replicas: one wins.
    let delete = || pb::DeleteItemRequest {
        kind: pb::ItemKind::AccessRule as i32,
        key: "2021999020/job_matching".into(),
        expected_version: v + 2,
        dry_run: false,
    };
    let (a, b) = tokio::join!(op_one.delete_item(delete()), op_two.delete_item(delete()));
    assert_eq!(
        [&a, &b].iter().filter(|r| r.is_ok()).count(),
        1,
        "{a:?} {b:?}"
    );
    let lost = [a, b].into_iter().find_map(|r| r.err()).unwrap();
    assert_eq!(lost.code(), Code::Aborted);
    assert_eq!(reason(&lost), "REGISTRY_VERSION_MISMATCH");
    assert_eq!(latest(&mut op_two).await, v + 3);

    // Both replicas say in their metrics that they decide with it: one
    // series each, under the version's digest.
    let digest = op_two
        .get_registry(pb::GetRegistryRequest::default())
        .await
        .unwrap()
        .into_inner()
        .version
        .unwrap()
        .digest;
    for replica in [&one, &two] {
        let start = Instant::now();
        loop {
            let text = admin_get(replica.admin, "/metrics").await.1;
            let series: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("samverka_registry_version{"))
                .collect();
            if series
                == [format!(
                    "samverka_registry_version{{digest=\"{digest}\"}} {}",
                    v + 3
                )]
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(2), "{series:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // One chain for both, with every version in it.
    let out = support::audit::run(&[
        "verify",
        "--store",
        &pg.url(),
        "--cert",
        &pki.gateway.0.display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    drop((one, two));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_registry_refuses_api_changes_and_follows_the_file_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = spawn_adapters(&pki).await;
    let to_file = |config: String| {
        config
            .replace("source = \"store\"", "source = \"file\"")
            .replace("apply_file = true", "")
    };
    let gateway = start_edited_gateway(dir.path(), &pki, &adapters, "", &[], to_file);
    grant(&gateway, &pki).await;
    let mut reader =
        RecordExchangeClient::new(channel(&gateway, &agency_tls(&pki, "reader")).await);
    reader.get_records(demo_read()).await.unwrap();

    let mut op = operator(&gateway, &pki).await;
    let v = latest(&mut op).await;
    let s = op
        .put_item(pb::PutItemRequest {
            item: rule(),
            expected_version: v,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert_eq!(reason(&s), "REGISTRY_READ_ONLY");

    // The rule taken out of the file: in force on SIGHUP.
    let path = dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let block = "[[access_rules]]\nagency = \"2021999020\"\npurposes = [\"study_guidance\"]\n";
    assert!(text.contains(block), "{text}");
    let without = text.replacen(
        block,
        "[[access_rules]]\nagency = \"2021999020\"\npurposes = [\"admission\"]\n",
        1,
    );
    std::fs::write(&path, without).unwrap();
    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    hup(gateway.child.id());
    until(&mut reader, true, Duration::from_secs(5)).await;
    // A broken file keeps the registry in force.
    std::fs::write(&path, "[[agencies]]\nthis is not toml").unwrap();
    hup(gateway.child.id());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&status), "ACCESS_RULE_MISSING");
    assert_eq!(latest(&mut op).await, v + 1);
    drop(gateway);
    let store = support::process::gateway_store(dir.path()).await;
    let entries = store.audit_entries(None).await.unwrap();
    let reload = entries
        .iter()
        .find(|e| e.method == "registry/reload")
        .expect("the reload is on the record");
    assert!(
        reload.details["changes"].contains("access_rules 2021999020/"),
        "{:?}",
        reload.details
    );
    assert_eq!(entries[0].method, "registry/load");
}

/// `samverka serve --config PATH` that exits within 5 s: its exit code and
/// stderr; `None` if it is still serving then (it is killed).
fn exits(path: &std::path::Path) -> Option<(Option<i32>, String)> {
    use std::io::Read;
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.code(), err));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_edited_after_seeding_is_refused_at_start_and_an_unedited_one_keeps_api_changes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapters = spawn_adapters(&pki).await;
    let seeded = samverka::cli::demo::demo_config(
        &pki,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &adapters,
        &dir.path().join("samverka.db").display().to_string(),
        "",
    )
    .replace("apply_file = true", "");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &seeded).unwrap();

    // Seeded by the first start; then changed through the API.
    let gateway = start_replica(BIN, &path);
    let mut op = operator(&gateway, &pki).await;
    op.delete_item(pb::DeleteItemRequest {
        kind: pb::ItemKind::AccessRule as i32,
        key: RULE.into(),
        expected_version: 1,
        dry_run: false,
    })
    .await
    .unwrap();
    drop((op, gateway));

    // The same file again: no conflict, and the API's change stays.
    let gateway = start_replica(BIN, &path);
    let mut op = operator(&gateway, &pki).await;
    assert_eq!(latest(&mut op).await, 2);
    drop((op, gateway));

    // An edited file is refused, and says why.
    let edited = seeded.replace(
        "description = \"Admission to education\"",
        "description = \"Admission to higher education\"",
    );
    assert_ne!(edited, seeded);
    std::fs::write(&path, &edited).unwrap();
    let path_for_exit = path.clone();
    let refused = tokio::task::spawn_blocking(move || exits(&path_for_exit))
        .await
        .unwrap();
    let (code, err) = refused.expect("refused at start");
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("changed since they were written into the store"),
        "{err}"
    );

    // Unless the file is to win: then it is a new version, by the file.
    std::fs::write(
        &path,
        edited.replace(
            "source = \"store\"",
            "source = \"store\"\napply_file = true",
        ),
    )
    .unwrap();
    let gateway = start_replica(BIN, &path);
    let mut op = operator(&gateway, &pki).await;
    assert_eq!(latest(&mut op).await, 3);
    let versions = op
        .list_versions(pb::ListVersionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert!(
        versions[0].changed_by.starts_with("file:"),
        "{:?}",
        versions[0]
    );
    assert!(
        versions[0].summary.contains("changed purposes admission"),
        "{:?}",
        versions[0]
    );
    assert!(
        versions[0]
            .summary
            .contains(&format!("added access_rules {RULE}")),
        "{:?}",
        versions[0]
    );
    drop((op, gateway));

    // A replica still holding the file that seeded the store does not
    // undo what came after it, even with apply_file.
    std::fs::write(
        &path,
        seeded.replace(
            "source = \"store\"",
            "source = \"store\"\napply_file = true",
        ),
    )
    .unwrap();
    let gateway = start_replica(BIN, &path);
    let mut op = operator(&gateway, &pki).await;
    assert_eq!(latest(&mut op).await, 3, "no version from an old file");
}
