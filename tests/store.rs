//! The store suite: the same tests against the SQLite backend (a real
//! file) and the PostgreSQL backend (a real server started by the test;
//! skipped with a printed reason when PostgreSQL is not installed):
//! consents, idempotent grants and revocations, imports, the audit chain
//! with its checkpoints and pruning, the access log by person, and the
//! read-only audit trail. What only one backend has is in
//! tests/store_backends.rs.

mod support;

use samverka_gateway::audit::{AuditCheckpoint, AuditEntry};
use samverka_gateway::store::{
    AuditTrail, ConsentState, Store, StoreLocation, StoredConsent, Transition, Transitioned,
};
use support::store::{access_log, append, audit, consent, indexed_or_not};

async fn consents_round_trip_and_survive_reopening(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    let (c, inserted) = store
        .insert_consent(consent("c-1", "r-1", 100))
        .await
        .unwrap();
    assert!(inserted);
    assert_eq!(c, consent("c-1", "r-1", 100));
    assert_eq!(store.consent("c-1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.consent("nope").await.unwrap(), None);
    let version = store.schema_version().await.unwrap();
    drop(store);

    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        version,
        "reopening does not migrate again"
    );
    assert_eq!(store.consents_for("199003142388", None).await.unwrap(), [c]);
}

async fn grants_are_idempotent_by_registrar_and_request_id(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    let (first, _) = store
        .insert_consent(consent("c-1", "r-1", 100))
        .await
        .unwrap();
    let (again, inserted) = store
        .insert_consent(consent("c-2", "r-1", 200))
        .await
        .unwrap();
    assert!(!inserted);
    assert_eq!(again, first);
    // The same request id from another registrar is another consent.
    let mut other = consent("c-3", "r-1", 300);
    other.registrar_agency = "2021999061".into();
    assert!(store.insert_consent(other).await.unwrap().1);

    // Many concurrent retries of one request record one consent.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_consent(consent(&format!("race-{i}"), "r-race", 400))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().0.consent_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        store
            .consents_for("199003142388", None)
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn revocation_happens_once(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    store
        .insert_consent(consent("c-1", "r-1", 100))
        .await
        .unwrap();
    let revoke = |id: &str, at_ms: i64, reason: &str, by: &str| Transition {
        consent_id: id.into(),
        to: ConsentState::Revoked,
        only_from: None,
        at_ms,
        by: Some(by.into()),
        reason: Some(reason.into()),
        approved: None,
        entry: samverka_gateway::audit::entry("Consents/Revoke", at_ms),
    };
    let Transitioned::Done(c, entry) = store
        .transition(revoke("c-1", 1_500, "withdrawn", "2021999038"))
        .await
        .unwrap()
    else {
        panic!("not revoked")
    };
    assert_eq!(c.revoked_at_ms, Some(1_500));
    assert_eq!(c.revocation_reason.as_deref(), Some("withdrawn"));
    assert_eq!(c.revoked_by.as_deref(), Some("2021999038"));
    assert_eq!(entry.consent_id, "c-1", "committed with its entry");
    // Another registrar revoking again changes nothing either.
    let Transitioned::Refused(again) = store
        .transition(revoke("c-1", 1_600, "again", "2021999061"))
        .await
        .unwrap()
    else {
        panic!("revoked twice")
    };
    assert_eq!(again, c, "the first revocation stands");
    assert_eq!(
        store
            .transition(revoke("nope", 1, "", "2021999038"))
            .await
            .unwrap(),
        Transitioned::NotFound
    );
    assert_eq!(store.consent("c-1").await.unwrap(), Some(c));
}

async fn consents_are_found_by_subject_and_grantee_newest_first(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    // Ties (granted in the same millisecond) by id in byte order: B < a.
    let granted = [("old", 100), ("new", 200), ("tie-a", 250), ("tie-B", 250)];
    for (i, (id, at)) in granted.into_iter().enumerate() {
        let request = format!("r-{}", i + 10);
        store
            .insert_consent(consent(id, &request, at))
            .await
            .unwrap();
    }
    let mut other_grantee = consent("other-grantee", "r-3", 300);
    other_grantee.grantee_agency = "2021999061".into();
    store.insert_consent(other_grantee).await.unwrap();
    let mut other_subject = consent("other-subject", "r-4", 400);
    other_subject.subject_id = "198511224571".into();
    store.insert_consent(other_subject).await.unwrap();

    let ids = |v: Vec<StoredConsent>| v.into_iter().map(|c| c.consent_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .consents_for("199003142388", Some("2021999020"))
            .await
            .unwrap()),
        ["tie-B", "tie-a", "new", "old"]
    );
    assert_eq!(
        ids(store.consents_for("199003142388", None).await.unwrap()),
        ["other-grantee", "tie-B", "tie-a", "new", "old"]
    );
    assert!(
        store
            .consents_for("200107079139", None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn audit_entries_keep_their_order_and_fields(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    for (id, subject) in [
        ("a-2", "199003142388"),
        ("a-1", "not a number, with commas"),
        ("a-3", "199003142388"),
    ] {
        let mut e = audit(id, subject);
        e.subject_id = samverka_gateway::pipeline::validate::sanitize(&e.subject_id);
        store.append_audit(e).await.unwrap();
    }
    let all = store.audit_entries(None).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.audit_id.as_str()).collect::<Vec<_>>(),
        ["a-2", "a-1", "a-3"]
    );
    assert_eq!(all[0].audit_id, "a-2");
    assert_eq!(all[0].sources, audit("a-2", "x").sources);
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].prev_hash, all[0].hash);
    assert_eq!(all[1].subject_id, "not a number_ with commas");
    assert_eq!(
        store
            .audit_entries(Some("199003142388"))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store.append_audit(audit("a-1", "x")).await.is_err(),
        "audit ids are unique"
    );
}

/// A batch the store refuses (here: an audit id already in the trail)
/// writes none of its entries, and later batches link on from the same
/// head. Refused many more times than the audit writer's pool holds
/// connections, as the writer itself appends: a refusal must not use up a
/// connection for good (on PostgreSQL a refused batch's connection leaves
/// the pool, its transaction state unknown, and a new one is opened).
async fn a_refused_batch_writes_nothing_and_the_next_links_on(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    let writer = store.for_audit_writer().unwrap();
    append(&writer, "kept", "199003142388", 2).await;
    for i in 0..40 {
        let batch = vec![
            audit(&format!("lost-{i}"), "199003142388"),
            audit("kept-0", "199003142388"),
        ];
        let refused = writer.append_audit_batch(batch).await.unwrap_err();
        assert!(
            refused.0.to_lowercase().contains("unique"),
            "{i}: {refused}"
        );
    }
    let after = append(&writer, "after", "199003142388", 2).await;
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    let read = store.audit_entries(None).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.audit_id.as_str()).collect::<Vec<_>>(),
        ["kept-0", "kept-1", "after-0", "after-1"]
    );
    assert_eq!(store.audit_head().await.unwrap().seq, 4);
    let mut check = samverka_gateway::audit::chain::ChainCheck::new(&[], &[]).unwrap();
    for e in &read {
        check.push(e).unwrap();
    }
    assert_eq!(check.finish().unwrap().entries, 4);
}

/// Any text a caller could send, biased towards what a list or JSON
/// encoding might trip on: separators, quotes, brackets, blanks, NUL.
fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![any::<String>(), "[,;=\"\\\\\\[\\]{}: \t\u{0}aé]{0,5}"]
}

/// The class of attack where one request makes an intact trail look
/// tampered with: every field of an entry, for any value, is read back
/// exactly as it was hashed (a NUL, which PostgreSQL cannot store, is
/// U+FFFD in both), and the trail read back verifies.
async fn any_entry_round_trips_exactly(location: StoreLocation) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    let store = Store::open(&location).await.unwrap();
    let list = || proptest::collection::vec(any_text(), 0..4);
    let fields = (
        proptest::collection::vec(any_text(), 6),
        (list(), list()),
        proptest::collection::btree_map(any_text(), any_text(), 0..3),
        any::<i64>(),
    );
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut sent = Vec::new();
    for batch in 0..24 {
        let mut entries = Vec::new();
        for i in 0..4 {
            let (texts, (record_types, sources), details, time_ms) =
                fields.new_tree(&mut runner).unwrap().current();
            let mut e = audit(&format!("p-{batch}-{i}"), &texts[0]);
            e.time_ms = time_ms;
            e.caller = texts[1].clone();
            e.purpose = texts[2].clone();
            e.consent_id = texts[3].clone();
            e.reason = texts[4].clone();
            e.trace_id = texts[5].clone();
            e.record_types = record_types;
            e.sources = sources;
            e.details = details;
            entries.push(e);
        }
        // Edge cases first, the random ones after.
        if batch == 0 {
            entries[0].record_types = vec![String::new()];
            entries[1].record_types = vec!["a,b".into(), String::new(), "c".into()];
            entries[2].sources = vec!["[\"x\"]".into()];
            entries[3].subject_id = "nul\0inside".into();
        }
        sent.extend(entries.clone());
        let stored = store.append_audit_batch(entries).await.unwrap();
        assert_eq!(stored.len(), 4);
    }
    let read = store.audit_entries(None).await.unwrap();
    assert_eq!(read.len(), sent.len());
    let mut check = samverka_gateway::audit::chain::ChainCheck::new(&[], &[]).unwrap();
    for (back, mut want) in read.iter().zip(sent) {
        let nul = |s: &String| s.replace('\0', "\u{FFFD}");
        want.subject_id = nul(&want.subject_id);
        for s in [
            &mut want.caller,
            &mut want.purpose,
            &mut want.consent_id,
            &mut want.reason,
            &mut want.trace_id,
        ] {
            *s = nul(s);
        }
        want.record_types = want.record_types.iter().map(nul).collect();
        want.sources = want.sources.iter().map(nul).collect();
        want.details = want.details.iter().map(|(k, v)| (nul(k), nul(v))).collect();
        (want.seq, want.prev_hash, want.hash) =
            (back.seq, back.prev_hash.clone(), back.hash.clone());
        assert_eq!(back, &want, "read back differently from what was sent");
        check
            .push(back)
            .unwrap_or_else(|b| panic!("an intact trail reported broken: {b}"));
    }
    assert_eq!(read[0].record_types, [""]);
    assert_eq!(read[1].record_types, ["a,b", "", "c"]);
    assert_eq!(read[3].subject_id, "nul\u{FFFD}inside");
    // Read in pages too (what `audit verify` and `audit export` do).
    assert_eq!(store.audit_range(0, 1000).await.unwrap(), read);
}

/// Entries written before audit entries named their format (format 1,
/// lists joined by commas) still read back and verify, before and
/// after entries of the current format.
async fn format_1_entries_still_verify(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..6 {
        let mut e = audit(&format!("f-{i}"), "199003142388");
        if i < 3 || i == 4 {
            e.format = 1;
        }
        batch.push(e);
    }
    let stored = store.append_audit_batch(batch).await.unwrap();
    let read = store.audit_entries(None).await.unwrap();
    assert_eq!(read, stored);
    assert_eq!(
        read.iter().map(|e| e.format).collect::<Vec<_>>(),
        [1, 1, 1, 2, 1, 2]
    );
    let mut check = samverka_gateway::audit::chain::ChainCheck::new(&[], &[]).unwrap();
    for e in &read {
        check.push(e).unwrap();
    }
    assert_eq!(check.finish().unwrap().entries, 6);
}

async fn imports_are_all_or_nothing(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    let batch: Vec<_> = (0..25_000)
        .map(|i| consent(&format!("i-{i}"), &format!("r-{i}"), i))
        .collect();
    store.import_consents(batch).await.unwrap();
    assert_eq!(
        store
            .consents_for("199003142388", None)
            .await
            .unwrap()
            .len(),
        25_000
    );
    let mut revoked = consent("i-rev", "r-rev", 1);
    revoked.revoked_at_ms = Some(5);
    revoked.revocation_reason = Some("old".into());
    // A duplicate id in the batch fails the whole import.
    let bad = vec![revoked.clone(), consent("i-7", "r-new", 1)];
    assert!(store.import_consents(bad).await.is_err());
    assert_eq!(store.consent("i-rev").await.unwrap(), None);
    store.import_consents(vec![revoked.clone()]).await.unwrap();
    assert_eq!(store.consent("i-rev").await.unwrap(), Some(revoked));
}

async fn the_audit_chain_checkpoints_and_pruning(location: StoreLocation) {
    use samverka_gateway::audit::chain::{self, ChainCheck};
    let dir = tempfile::tempdir().unwrap();
    let pki =
        samverka_certs::dev::write_dev_pki(dir.path(), &samverka::cli::demo::pki_spec()).unwrap();
    let cert = std::fs::read_to_string(&pki.gateway.0).unwrap();
    let signer = samverka_gateway::credential::signing::JwsSigner::from_pem(
        &cert,
        &std::fs::read_to_string(&pki.gateway.1).unwrap(),
        "2021999012",
    )
    .unwrap();

    let store = Store::open(&location).await.unwrap();
    assert_eq!(store.audit_head().await.unwrap().seq, 0);
    let chained = append(&store, "b", "199003142388", 5).await;
    assert_eq!(
        chained.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(chained[0].prev_hash, chain::GENESIS);
    let head = store.audit_head().await.unwrap();
    assert_eq!(
        (head.seq, head.hash.as_str()),
        (5, chained[4].hash.as_str())
    );
    store
        .add_checkpoint(chain::checkpoint(&signer, &head, 1).unwrap())
        .await
        .unwrap();
    // A second checkpoint of the same entry (another replica) is ignored.
    store
        .add_checkpoint(chain::checkpoint(&signer, &head, 2).unwrap())
        .await
        .unwrap();
    for i in 5..8 {
        store
            .append_audit(audit(&format!("b-{i}"), "198511224571"))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .audit_range(3, 2)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [4, 5]
    );
    let mine = store
        .access_events("199003142388", 0, i64::MAX, 2, 10)
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);

    let verify = |entries: Vec<samverka_gateway::audit::AuditEntry>,
                  cps: Vec<samverka_gateway::audit::AuditCheckpoint>| {
        let mut check = ChainCheck::new(&cps, std::slice::from_ref(&cert)).unwrap();
        for e in &entries {
            check.push(e).unwrap();
        }
        check.finish().unwrap()
    };
    let checkpoints = store.checkpoints().await.unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(
        verify(
            store.audit_entries(None).await.unwrap(),
            checkpoints.clone()
        )
        .range,
        Some((1, 8))
    );

    // Pruning only up to a checkpoint; what is left still verifies.
    store.index_access_log().await.unwrap();
    assert!(store.prune_audit(4).await.is_err());
    assert_eq!(store.prune_audit(5).await.unwrap(), 5);
    assert_eq!(
        verify(store.audit_entries(None).await.unwrap(), checkpoints).range,
        Some((6, 8))
    );
    // And the chain goes on after the pruned part.
    let next = store
        .append_audit(audit("b-8", "199003142388"))
        .await
        .unwrap();
    assert_eq!(next.seq, 9);
    // The access log forgets what was pruned (all of it was indexed).
    assert_eq!(indexed_or_not(&store, "199003142388").await, [9]);
    assert_eq!(
        access_log(&store, "198511224571", 0, i64::MAX, 2).await,
        [6, 7, 8]
    );
}

async fn the_access_log_shows_indexed_and_newest_entries_alike(location: StoreLocation) {
    const PEOPLE: [&str; 3] = ["199003142388", "198511224571", "200001012380"];
    let store = Store::open(&location).await.unwrap();
    let append_among_three = |from: usize, to: usize| {
        let batch: Vec<_> = (from..to)
            .map(|i| {
                let mut e = audit(&format!("p-{i}"), PEOPLE[i % 3]);
                e.time_ms = 1_000 + i as i64;
                e
            })
            .collect();
        store.append_audit_batch(batch)
    };
    append_among_three(0, 20).await.unwrap();
    // On SQLite the first 20 go into the index, the next 10 are scanned.
    store.index_access_log().await.unwrap();
    append_among_three(20, 30).await.unwrap();
    let expect = |person: usize, from: i64, to: i64| -> Vec<i64> {
        (0..30)
            .filter(|i| i % 3 == person && (from..to).contains(&(1_000 + *i as i64)))
            .map(|i| i as i64 + 1)
            .collect()
    };
    for size in [1, 3, 4, 100] {
        assert_eq!(
            access_log(&store, PEOPLE[0], 0, i64::MAX, size).await,
            expect(0, 0, i64::MAX),
            "pages of {size}"
        );
    }
    assert_eq!(
        access_log(&store, PEOPLE[1], 1_010, 1_025, 2).await,
        expect(1, 1_010, 1_025),
        "a time range across what is indexed and what is not"
    );
    assert!(
        access_log(&store, "194401012385", 0, i64::MAX, 5)
            .await
            .is_empty()
    );

    // Once all is indexed, and after reopening, the answers are the same.
    store.index_access_log().await.unwrap();
    assert_eq!(
        access_log(&store, PEOPLE[2], 0, i64::MAX, 4).await,
        expect(2, 0, i64::MAX)
    );
    drop(store);
    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        access_log(&store, PEOPLE[0], 0, i64::MAX, 7).await,
        expect(0, 0, i64::MAX)
    );
}

/// Whether the store's location holds no samverka schema (on SQLite: no
/// file at all).
async fn has_no_schema(location: &StoreLocation) -> bool {
    match location {
        StoreLocation::Sqlite(path) => !path.exists(),
        StoreLocation::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query_one("SELECT to_regclass('schema_migrations') IS NULL", &[])
                .await
                .unwrap()
                .get(0)
        }
    }
}

/// What `samverka audit verify` and `export` read: the trail, opened
/// without changing the store, beside a gateway that goes on writing.
async fn the_audit_trail_is_read_without_changing_the_store(location: StoreLocation) {
    assert!(has_no_schema(&location).await);
    let refused = AuditTrail::open(&location).await.unwrap_err().to_string();
    assert!(has_no_schema(&location).await, "{refused}");

    let store = Store::open(&location).await.unwrap();
    append(&store, "t", "199003142388", 3).await;
    let head = store.audit_head().await.unwrap();
    store
        .add_checkpoint(AuditCheckpoint {
            seq: head.seq,
            hash: head.hash,
            time_ms: 20,
            jws: "signed".into(),
        })
        .await
        .unwrap();

    let trail = AuditTrail::open(&location).await.unwrap();
    assert_eq!(
        trail.checkpoints().await.unwrap(),
        store.checkpoints().await.unwrap()
    );
    assert_eq!(
        trail.audit_range(0, 10).await.unwrap(),
        store.audit_range(0, 10).await.unwrap()
    );
    let seqs = |page: Vec<AuditEntry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(trail.audit_range(1, 1).await.unwrap()), [2]);
    store
        .append_audit(audit("t-3", "199003142388"))
        .await
        .unwrap();
    assert_eq!(seqs(trail.audit_range(0, 10).await.unwrap()), [1, 2, 3, 4]);
}

crate::on_both_backends!(
    consents_round_trip_and_survive_reopening,
    grants_are_idempotent_by_registrar_and_request_id,
    revocation_happens_once,
    consents_are_found_by_subject_and_grantee_newest_first,
    audit_entries_keep_their_order_and_fields,
    a_refused_batch_writes_nothing_and_the_next_links_on,
    any_entry_round_trips_exactly,
    format_1_entries_still_verify,
    imports_are_all_or_nothing,
    the_audit_chain_checkpoints_and_pruning,
    the_access_log_shows_indexed_and_newest_entries_alike,
    the_audit_trail_is_read_without_changing_the_store,
);
