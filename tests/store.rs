//! The store suite: the same tests against the SQLite backend (a real
//! file) and the PostgreSQL backend (a real server started by the test;
//! skipped with a printed reason when PostgreSQL is not installed).

mod support;

use samverka::store::{
    AuditCheckpoint, AuditEntry, AuditTrail, Revocation, Store, StoreLocation, StoredConsent,
};
use support::postgres::PgCluster;

fn consent(id: &str, request_id: &str, granted_at_ms: i64) -> StoredConsent {
    StoredConsent {
        consent_id: id.into(),
        subject_id: "199003142388".into(),
        grantee_agency: "2021999020".into(),
        record_types: vec!["education.degree".into(), "employment.period".into()],
        purpose: "study_guidance".into(),
        source_agencies: vec!["2021999053".into()],
        valid_from_ms: 1_000,
        valid_until_ms: 2_000,
        registrar_agency: "2021999038".into(),
        evidence_ref: "ev-1".into(),
        request_id: request_id.into(),
        granted_at_ms,
        revoked_at_ms: None,
        revocation_reason: None,
    }
}

fn audit(id: &str, subject: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        prev_hash: String::new(),
        hash: String::new(),
        audit_id: id.into(),
        time_ms: 10,
        caller: "2021999020".into(),
        method: "RecordExchange/GetRecords".into(),
        subject_id: subject.into(),
        record_types: vec!["employment.period".into()],
        purpose: "study_guidance".into(),
        consent_id: String::new(),
        sources: vec!["2021999046=OK".into(), "2021999053=UNAVAILABLE".into()],
        decision: "allowed".into(),
        reason: String::new(),
        trace_id: String::new(),
    }
}

/// Appends `n` entries about `subject` in one batch, with ids
/// `{prefix}-{i}`; returns them as chained.
async fn append(store: &Store, prefix: &str, subject: &str, n: usize) -> Vec<AuditEntry> {
    let batch = (0..n)
        .map(|i| audit(&format!("{prefix}-{i}"), subject))
        .collect();
    store.append_audit_batch(batch).await.unwrap()
}

/// The SQLite store in the file `path`.
async fn sqlite(path: &std::path::Path) -> Store {
    Store::open(&StoreLocation::Sqlite(path.to_owned()))
        .await
        .unwrap()
}

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
    let Revocation::Revoked(c) = store
        .revoke_consent("c-1", 1_500, "withdrawn")
        .await
        .unwrap()
    else {
        panic!("not revoked")
    };
    assert_eq!(c.revoked_at_ms, Some(1_500));
    assert_eq!(c.revocation_reason.as_deref(), Some("withdrawn"));
    let Revocation::AlreadyRevoked(again) =
        store.revoke_consent("c-1", 1_600, "again").await.unwrap()
    else {
        panic!("revoked twice")
    };
    assert_eq!(again, c, "the first revocation stands");
    assert_eq!(
        store.revoke_consent("nope", 1, "").await.unwrap(),
        Revocation::NotFound
    );
    assert_eq!(store.consent("c-1").await.unwrap(), Some(c));
}

async fn consents_are_found_by_subject_and_grantee_newest_first(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    store
        .insert_consent(consent("old", "r-1", 100))
        .await
        .unwrap();
    store
        .insert_consent(consent("new", "r-2", 200))
        .await
        .unwrap();
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
        ["new", "old"]
    );
    assert_eq!(
        ids(store.consents_for("199003142388", None).await.unwrap()),
        ["other-grantee", "new", "old"]
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
        e.subject_id = samverka::audit::sanitize(&e.subject_id);
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
    use samverka::audit::chain::{self, ChainCheck};
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(dir.path(), &samverka::demo::pki_spec()).unwrap();
    let cert = std::fs::read_to_string(&pki.gateway.0).unwrap();
    let signer = samverka::signing::JwsSigner::from_pem(
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

    let verify = |entries: Vec<samverka::store::AuditEntry>,
                  cps: Vec<samverka::store::AuditCheckpoint>| {
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

/// One person's whole access log, read in pages of 3 before and after
/// the index catches up (an answer is the same either way).
async fn indexed_or_not(store: &Store, subject: &str) -> Vec<i64> {
    let before = access_log(store, subject, 0, i64::MAX, 3).await;
    store.index_access_log().await.unwrap();
    let after = access_log(store, subject, 0, i64::MAX, 3).await;
    assert_eq!(before, after, "indexing changed the access log");
    after
}

/// Every page of one person's access log, `size` entries a page.
async fn access_log(store: &Store, subject: &str, from_ms: i64, to_ms: i64, size: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let after = seqs.last().copied().unwrap_or(0);
        let page = store
            .access_events(subject, from_ms, to_ms, after, size)
            .await
            .unwrap();
        assert!(page.len() as i64 <= size);
        assert!(page.iter().all(|e| e.subject_id == subject));
        if page.is_empty() {
            return seqs;
        }
        seqs.extend(page.iter().map(|e| e.seq));
    }
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

/// Runs each suite function against a fresh SQLite file and a fresh
/// PostgreSQL cluster. The file's name has characters that a `file:` URI
/// must escape (the store opens its index file, and the index the store,
/// through such URIs).
macro_rules! on_both_backends {
    ($($suite:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $suite() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$suite(samverka::store::StoreLocation::Sqlite(dir.path().join("sam %41?#é.db"))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $suite() {
                    let Some(pg) = super::PgCluster::start() else { return };
                    super::$suite(samverka::store::StoreLocation::Postgres(pg.url())).await;
                }
            )*
        }
    };
}

on_both_backends!(
    consents_round_trip_and_survive_reopening,
    grants_are_idempotent_by_registrar_and_request_id,
    revocation_happens_once,
    consents_are_found_by_subject_and_grantee_newest_first,
    audit_entries_keep_their_order_and_fields,
    imports_are_all_or_nothing,
    the_audit_chain_checkpoints_and_pruning,
    the_access_log_shows_indexed_and_newest_entries_alike,
    the_audit_trail_is_read_without_changing_the_store,
);

/// The SQLite store's index by person: a file beside the store.
fn index_file(store: &std::path::Path) -> std::path::PathBuf {
    beside(store, ".by-person")
}

/// The file named like `path` with `suffix` added.
fn beside(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The access log's index on SQLite is a file beside the store that can be
/// rebuilt from it: one that belongs to another store, or to an older copy
/// of this one, is not trusted.
#[tokio::test]
async fn a_sqlite_index_that_does_not_match_its_store_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    // Store a: entries 1..=4 are about 199003142388, and indexed.
    let store_a = sqlite(&a).await;
    append(&store_a, "a", "199003142388", 4).await;
    store_a.index_access_log().await.unwrap();
    drop(store_a);
    assert!(
        index_file(&a).exists(),
        "the index is a file beside the store"
    );
    assert!(
        !beside(&index_file(&a), "-wal").exists(),
        "a closed store leaves its index whole in one file"
    );

    // Store b: entries 1..=4 are about someone else, with a's index in place.
    let store_b = sqlite(&b).await;
    append(&store_b, "b", "198511224571", 4).await;
    drop(store_b);
    std::fs::copy(index_file(&a), index_file(&b)).unwrap();
    let store_b = sqlite(&b).await;
    assert!(indexed_or_not(&store_b, "199003142388").await.is_empty());
    assert_eq!(indexed_or_not(&store_b, "198511224571").await, [1, 2, 3, 4]);
    drop(store_b);

    // Deleted, it is rebuilt.
    std::fs::remove_file(index_file(&a)).unwrap();
    let store_a = sqlite(&a).await;
    assert_eq!(indexed_or_not(&store_a, "199003142388").await, [1, 2, 3, 4]);
}

/// On SQLite the index by person is filled by a thread of its own, with
/// nobody asking: its file records how far it got.
#[tokio::test]
async fn the_sqlite_index_thread_catches_up_by_itself_and_counts_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("samverka.db");
    let store = sqlite(&db).await;
    append(&store, "t", "199003142388", 50).await;
    let progress = store.access_index_progress().unwrap();
    let pending = progress.pending();
    let index = rusqlite::Connection::open_with_flags(
        index_file(&db),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let indexed = || -> (i64, i64) {
        index
            .query_row(
                "SELECT (SELECT entry FROM audit_indexed), (SELECT COUNT(*) FROM audit_by_person)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    // All 50 pending, unless the thread has indexed some already (it
    // records them in the file before it counts them).
    if pending != 50 {
        assert!(indexed().0 > 0, "{pending} pending, none indexed");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while indexed() != (50, 50) || progress.pending() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not indexed within 10 s: {:?}, {} pending",
            indexed(),
            progress.pending()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// PostgreSQL over TLS, asked for in the URL as libpq asks for it: the
/// server's certificate is checked against `sslrootcert`, the gateway
/// shows `sslcert`, and the server (which takes TCP connections only over
/// TLS and with a client certificate) lets it in.
#[tokio::test]
async fn postgresql_over_tls_checks_the_server_and_shows_a_client_certificate() {
    let Some(pg) = PgCluster::start_tls() else {
        return;
    };
    let store = Store::open(&StoreLocation::Postgres(pg.url()))
        .await
        .unwrap();
    store
        .append_audit(audit("over-tls", "199003142388"))
        .await
        .unwrap();
    let trail = AuditTrail::open(&StoreLocation::Postgres(pg.url()))
        .await
        .unwrap();
    assert_eq!(trail.audit_range(0, 10).await.unwrap().len(), 1);

    let files = pg.tls().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(
        &other_ca,
        samverka_certs::dev::DevCa::generate("another CA")
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    for (query, words) in [
        // The server takes nothing without TLS...
        ("sslmode=disable".to_owned(), "pg_hba.conf rejects"),
        // ...nor TLS without a client certificate...
        (
            format!("sslmode=verify-full&sslrootcert={}", files.ca),
            "requires a valid client certificate",
        ),
        // ...and samverka does not talk to a server its CA did not sign.
        (
            format!(
                "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                other_ca.display(),
                files.cert,
                files.key
            ),
            "UnknownIssuer",
        ),
    ] {
        let refused = Store::open(&StoreLocation::Postgres(pg.url_with(&query)))
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(refused.contains(words), "{query}: {refused}");
    }
}

#[tokio::test]
async fn an_unreachable_postgresql_fails_within_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let result = Store::open(&StoreLocation::Postgres(format!(
        "postgresql://postgres@127.0.0.1:{port}/postgres"
    )))
    .await;
    assert!(result.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
