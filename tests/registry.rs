//! The registry through `samverka.admin.v1.Registry`, on one gateway (the
//! demo network, SQLite): a change decides the next read with no restart,
//! a read in flight finishes under the version it began with, invalid and
//! stale changes are refused and change nothing, only operators are let
//! in, and every call is on the record.

mod support;

use std::sync::Arc;
use std::time::Duration;

use samverka::cli::demo::{GATEWAY_AGENCY, READER_AGENCY};
use samverka_proto::adapter::v1::adapter_server::Adapter;
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse,
};
use samverka_proto::admin::v1 as pb;
use samverka_proto::admin::v1::registry_client::RegistryClient;
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{EmploymentPeriod, Record};
use support::{demo_read, exchange, grant_demo_consent, reason, start};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt;

const READER_RULE: &str = "2021999020/study_guidance";
const STUDY_TYPES: [&str; 4] = [
    "education.course_result",
    "education.degree",
    "employment.period",
    "competence.validated",
];

async fn operator(net: &samverka::cli::demo::Network) -> RegistryClient<Channel> {
    RegistryClient::new(net.operator_channel().await.unwrap())
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

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn item(i: pb::item::Item) -> Option<pb::Item> {
    Some(pb::Item { item: Some(i) })
}

fn reader_rule() -> pb::item::Item {
    pb::item::Item::AccessRule(pb::AccessRule {
        id: String::new(),
        agency: READER_AGENCY.into(),
        purposes: strings(&["study_guidance"]),
        record_types: strings(&STUDY_TYPES),
    })
}

fn delete_rule(id: &str, expected_version: i64, dry_run: bool) -> pb::DeleteItemRequest {
    pb::DeleteItemRequest {
        kind: pb::ItemKind::AccessRule as i32,
        key: id.into(),
        expected_version,
        dry_run,
    }
}

/// `(method, decision, reason)` of every registry entry of the trail.
async fn registry_entries(net: &samverka::cli::demo::Network) -> Vec<(String, String, String)> {
    net.gateway
        .store
        .audit_entries(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.method.starts_with("Registry/") || e.method.starts_with("registry/"))
        .map(|e| (e.method, e.decision, e.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_removed_and_added_again_decides_the_next_read_without_a_restart() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    let mut op = operator(&net).await;
    let v = latest(&mut op).await;
    assert_eq!(v, 1, "seeded from demo.toml");

    // A dry run says what would change and changes nothing.
    let dry = op
        .delete_item(delete_rule(READER_RULE, v, true))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!((dry.version_before, dry.version), (v, v + 1));
    assert_eq!(dry.changes.len(), 1);
    assert_eq!(dry.changes[0].key, READER_RULE);
    assert_eq!(dry.changes[0].action, pb::ChangeAction::Removed as i32);
    reader.get_records(demo_read()).await.unwrap();
    assert_eq!(latest(&mut op).await, v);

    // Removed: the very next read is refused.
    let done = op
        .delete_item(delete_rule(READER_RULE, v, false))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(done.version, v + 1);
    assert_ne!(done.digest, done.digest_before);
    let refused = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&refused), "ACCESS_RULE_MISSING");

    // Added again: the next read is allowed.
    let added = op
        .put_item(pb::PutItemRequest {
            item: item(reader_rule()),
            expected_version: v + 1,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(added.version, v + 2);
    assert_eq!(added.changes[0].action, pb::ChangeAction::Added as i32);
    reader.get_records(demo_read()).await.unwrap();
    // The same item again changes nothing and makes no version.
    let same = op
        .put_item(pb::PutItemRequest {
            item: item(reader_rule()),
            expected_version: v + 2,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert!(same.changes.is_empty());
    assert_eq!(same.version, v + 2);

    // The history: who, what, newest first.
    let versions = op
        .list_versions(pb::ListVersionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .versions;
    let numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert!(versions[0].changed_by.starts_with(GATEWAY_AGENCY));
    assert_eq!(
        versions[1].summary,
        format!("removed access_rules {READER_RULE}")
    );
    assert_eq!(versions[2].changed_by, "seed");

    // Every call on the record, in the same chain, which verifies.
    let ok = |m: &str| (m.to_owned(), "allowed".to_owned(), String::new());
    assert_eq!(
        registry_entries(&net).await,
        [
            ok("registry/seed"),
            ok("Registry/GetRegistry"),
            ok("Registry/DeleteItem"),
            ok("Registry/GetRegistry"),
            ok("Registry/DeleteItem"),
            ok("Registry/PutItem"),
            ok("Registry/PutItem"),
            ok("Registry/ListVersions"),
        ]
    );
    let entries = net.gateway.store.audit_entries(None).await.unwrap();
    let removal = entries
        .iter()
        .find(|e| e.audit_id == done.audit_id)
        .expect("the change names its entry");
    assert_eq!(removal.caller, GATEWAY_AGENCY);
    assert_eq!(removal.details["digest_before"], done.digest_before);
    assert_eq!(removal.details["digest"], done.digest);
    assert_eq!(removal.details["dry_run"], "false");
    let config = net.config_path.display().to_string();
    let out =
        tokio::task::spawn_blocking(move || support::audit::run(&["verify", "--config", &config]))
            .await
            .unwrap();
    support::audit::assert_intact(&out, entries.len() as u64);
}

/// An employment source that answers only when told to.
struct Held {
    release: Arc<tokio::sync::Notify>,
    asked: Arc<tokio::sync::Notify>,
}

#[tonic::async_trait]
impl Adapter for Held {
    async fn describe(
        &self,
        _: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        Ok(Response::new(AdapterDescription {
            agency_id: samverka_adapter_employment::DEMO_AGENCY.into(),
            name: "held".into(),
            record_types: strings(&["employment.period"]),
            sdk_version: String::new(),
        }))
    }

    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        self.asked.notify_one();
        self.release.notified().await;
        Ok(Response::new(FetchRecordsResponse {
            records: vec![Record {
                record_type: "employment.period".into(),
                subject_id: request.into_inner().subject_id,
                record_id: "held-1".into(),
                payload: Some(Payload::EmploymentPeriod(EmploymentPeriod {
                    employer_name: "Exempelbolaget AB".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_flight_finishes_under_the_version_it_began_with() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let (release, asked) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let held = Held {
        release: release.clone(),
        asked: asked.clone(),
    };
    let address = support::serve_test_adapter(&net.pki, "employment", held).await;
    // The route itself is changed through the API: no restart.
    let mut op = operator(&net).await;
    let v = latest(&mut op).await;
    op.put_item(pb::PutItemRequest {
        item: item(pb::item::Item::AdapterRoute(pb::AdapterRoute {
            name: "employment".into(),
            address: format!("localhost:{}", address.port()),
            org_number: samverka_adapter_employment::DEMO_AGENCY.into(),
            record_types: strings(&["employment.period"]),
            server_name: String::new(),
        })),
        expected_version: v,
        dry_run: false,
    })
    .await
    .unwrap();

    let mut reader = exchange(&net, "reader").await;
    let mut read = demo_read();
    read.record_types = strings(&["employment.period"]);
    let in_flight = tokio::spawn({
        let mut reader = reader.clone();
        let read = read.clone();
        async move { reader.get_records(read).await }
    });
    tokio::time::timeout(Duration::from_secs(10), asked.notified())
        .await
        .expect("the read reaches the held source");
    op.delete_item(delete_rule(READER_RULE, v + 1, false))
        .await
        .unwrap();
    // A new read is refused at once; the one in flight still finishes.
    let refused = reader.get_records(read).await.unwrap_err();
    assert_eq!(reason(&refused), "ACCESS_RULE_MISSING");
    release.notify_one();
    let answer = in_flight.await.unwrap().unwrap().into_inner();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.records[0].record_id, "held-1");
}

fn refused_with(status: Status, code: Code, want: &str) -> String {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), want, "{status:?}");
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_stale_changes_are_refused_with_reasons_and_change_nothing() {
    let net = start().await;
    let mut op = operator(&net).await;
    let v = latest(&mut op).await;
    // A new rule goes after the rules there are.
    let new_rule = net.gateway.registry.current().access_rules.len();
    let put = |i: pb::item::Item, expected_version: i64| pb::PutItemRequest {
        item: item(i),
        expected_version,
        dry_run: false,
    };
    let rule = |purposes: &[&str]| {
        pb::item::Item::AccessRule(pb::AccessRule {
            id: "new".into(),
            agency: READER_AGENCY.into(),
            purposes: strings(purposes),
            record_types: strings(&["employment.period"]),
        })
    };
    let invalid = Code::InvalidArgument;

    // An access rule naming an unknown purpose, or none.
    let s = op.put_item(put(rule(&["nope"]), v)).await.unwrap_err();
    assert!(
        s.message()
            .contains("\"nope\" is not defined under [[purposes]]"),
        "{s:?}"
    );
    assert_eq!(
        refused_with(s, invalid, "REGISTRY_INVALID"),
        format!("access_rules[{new_rule}].purposes")
    );
    let s = op.put_item(put(rule(&[]), v)).await.unwrap_err();
    refused_with(s, invalid, "REGISTRY_INVALID");
    // A purpose or an agency still named by a rule.
    let delete = |kind: pb::ItemKind, key: &str| pb::DeleteItemRequest {
        kind: kind as i32,
        key: key.into(),
        expected_version: v,
        dry_run: false,
    };
    let s = op
        .delete_item(delete(pb::ItemKind::Purpose, "study_guidance"))
        .await
        .unwrap_err();
    refused_with(s, invalid, "REGISTRY_INVALID");
    let s = op
        .delete_item(delete(pb::ItemKind::Agency, READER_AGENCY))
        .await
        .unwrap_err();
    assert!(
        s.message().contains("is not listed under [[agencies]]"),
        "{s:?}"
    );
    refused_with(s, invalid, "REGISTRY_INVALID");
    // What is not there.
    let s = op
        .delete_item(delete(pb::ItemKind::AccessRule, "no-such-rule"))
        .await
        .unwrap_err();
    refused_with(s, Code::NotFound, "REGISTRY_ITEM_NOT_FOUND");
    let s = op
        .delete_item(delete(pb::ItemKind::Unspecified, "x"))
        .await
        .unwrap_err();
    refused_with(s, invalid, "FIELD_MISSING");
    // Malformed items and documents.
    let agency = |org: &str| {
        pb::item::Item::Agency(pb::Agency {
            org_number: org.into(),
            name: "Malformed".into(),
            ..Default::default()
        })
    };
    let s = op.put_item(put(agency("12345"), v)).await.unwrap_err();
    assert_eq!(
        refused_with(s, invalid, "REGISTRY_INVALID"),
        "item.agency.org_number"
    );
    let provider = pb::item::Item::IdentityProvider(pb::IdentityProvider {
        issuer: "https://idp.example".into(),
        name: String::new(),
        key_set: "not a key".into(),
    });
    let s = op.put_item(put(provider, v)).await.unwrap_err();
    refused_with(s, invalid, "REGISTRY_INVALID");
    let route = pb::item::Item::AdapterRoute(pb::AdapterRoute {
        name: "broken".into(),
        address: "no-port".into(),
        org_number: samverka_adapter_employment::DEMO_AGENCY.into(),
        record_types: strings(&["employment.period"]),
        server_name: String::new(),
    });
    let s = op.put_item(put(route, v)).await.unwrap_err();
    assert_eq!(
        refused_with(s, invalid, "REGISTRY_INVALID"),
        "adapters[4].address"
    );
    // No register may serve the merits people declare themselves.
    let route = pb::item::Item::AdapterRoute(pb::AdapterRoute {
        name: "own-merits".into(),
        address: "own:50051".into(),
        org_number: samverka_adapter_employment::DEMO_AGENCY.into(),
        record_types: strings(&["competence.self_declared"]),
        server_name: String::new(),
    });
    let s = op.put_item(put(route, v)).await.unwrap_err();
    assert_eq!(
        refused_with(s, invalid, "REGISTRY_INVALID"),
        "adapters[4].record_types"
    );
    for document in [
        "[[[ not toml",
        "[[agencies]]\norg_number = \"2021999020\"\nname = \"x\"\ncolour = \"red\"\n",
    ] {
        let s = op
            .apply_document(pb::ApplyDocumentRequest {
                document: document.into(),
                expected_version: v,
                dry_run: false,
            })
            .await
            .unwrap_err();
        refused_with(s, invalid, "REGISTRY_INVALID");
    }
    // A line break in a key would forge a line in the trail's summary.
    let forged = pb::item::Item::AccessRule(pb::AccessRule {
        id: "x\nremoved agencies 2021999020".into(),
        agency: READER_AGENCY.into(),
        purposes: strings(&["study_guidance"]),
        record_types: strings(&["employment.period"]),
    });
    let s = op.put_item(put(forged, v)).await.unwrap_err();
    assert_eq!(
        refused_with(s, invalid, "REGISTRY_INVALID"),
        format!("access_rules[{new_rule}].id")
    );
    // No version to match, or a stale one.
    let good = || reader_rule();
    let s = op.put_item(put(good(), 0)).await.unwrap_err();
    assert_eq!(
        refused_with(s, invalid, "FIELD_MISSING"),
        "expected_version"
    );
    let s = op.put_item(put(good(), v + 5)).await.unwrap_err();
    refused_with(s, Code::Aborted, "REGISTRY_VERSION_MISMATCH");

    // Nothing was written; every refusal is on the record.
    assert_eq!(latest(&mut op).await, v);
    let denied: Vec<String> = registry_entries(&net)
        .await
        .into_iter()
        .filter(|(_, d, _)| d == "denied")
        .map(|(_, _, r)| r)
        .collect();
    assert_eq!(denied.len(), 15, "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operator_certificates_get_in_and_their_refusals_are_audited() {
    let net = start().await;
    let mut as_agency = RegistryClient::new(net.channel("registrar").await.unwrap());
    let s = as_agency
        .get_registry(pb::GetRegistryRequest::default())
        .await
        .unwrap_err();
    refused_with(s, Code::PermissionDenied, "ROLE_REQUIRED");
    let s = as_agency
        .put_item(pb::PutItemRequest {
            item: item(reader_rule()),
            expected_version: 1,
            dry_run: false,
        })
        .await
        .unwrap_err();
    refused_with(s, Code::PermissionDenied, "ROLE_REQUIRED");
    let entries = net.gateway.store.audit_entries(None).await.unwrap();
    let refusals: Vec<_> = entries
        .iter()
        .filter(|e| e.method.starts_with("Registry/"))
        .collect();
    assert_eq!(refusals.len(), 2);
    for e in refusals {
        assert_eq!(
            (e.decision.as_str(), e.reason.as_str()),
            ("denied", "ROLE_REQUIRED")
        );
        assert_eq!(e.caller, samverka::cli::demo::REGISTRAR_AGENCY);
        assert_eq!(e.details["role"], "agency");
        assert_eq!(e.details["certificate_sha256"].len(), 64);
    }
    let mut op = operator(&net).await;
    assert_eq!(latest(&mut op).await, 1, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_changes_on_one_version_one_wins_and_the_other_is_aborted() {
    let net = start().await;
    let (mut one, mut two) = (operator(&net).await, operator(&net).await);
    for round in 0..5 {
        let v = latest(&mut one).await;
        let document = one
            .get_registry(pb::GetRegistryRequest::default())
            .await
            .unwrap()
            .into_inner()
            .document;
        let with = |code: &str| {
            format!(
                "{document}\n[[purposes]]\ncode = \"{code}\"\ndescription = \"Round {round}\"\nrecord_types = [\"employment.period\"]\n"
            )
        };
        let apply = |document: String| pb::ApplyDocumentRequest {
            document,
            expected_version: v,
            dry_run: false,
        };
        let (a, b) = tokio::join!(
            one.apply_document(apply(with(&format!("a{round}")))),
            two.apply_document(apply(with(&format!("b{round}"))))
        );
        let won: Vec<_> = [&a, &b].into_iter().filter(|r| r.is_ok()).collect();
        assert_eq!(won.len(), 1, "{a:?} {b:?}");
        let lost = [a, b].into_iter().find_map(|r| r.err()).unwrap();
        refused_with(lost, Code::Aborted, "REGISTRY_VERSION_MISMATCH");
        assert_eq!(latest(&mut one).await, v + 1);
        let items = one
            .list_items(pb::ListItemsRequest {
                kind: pb::ItemKind::Purpose as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        let this_round = items
            .iter()
            .filter(|i| {
                matches!(&i.item, Some(pb::item::Item::Purpose(p)) if p.code.ends_with(&round.to_string()))
            })
            .count();
        assert_eq!(this_round, 1, "exactly the winner's purpose");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_follow_the_stores_registry_says_it_is_not_ready() {
    let net = start().await;
    let (status, _) = support::admin_get(net.admin_address, "/readyz").await;
    assert_eq!(status, 200);
    // A version this gateway cannot use (as from a newer release, or a
    // hand edit): it keeps deciding with the one in force, and says so.
    let db = net.net.dir.join("samverka.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO registry_versions (version, document, digest, changed_at_ms, changed_by, summary) \
         VALUES (2, 'not = [a registry', 'x', 0, 'test', 'broken')",
        [],
    )
    .unwrap();
    drop(conn);
    let mut reader = exchange(&net, "reader").await;
    grant_demo_consent(&net).await;
    reader.get_records(demo_read()).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let (status, body) = support::admin_get(net.admin_address, "/readyz").await;
        if status == 503 {
            assert!(body.contains("registry"), "{body}");
            assert!(
                started.elapsed() >= Duration::from_secs(9),
                "not before the grace"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
