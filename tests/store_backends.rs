//! What only one store backend has. On SQLite, the access log's index by
//! person is a file beside the store, rebuilt when it does not match its
//! store and filled by a thread of its own. On PostgreSQL (a real server
//! started by the test; skipped with a printed reason when PostgreSQL is
//! not installed), TLS as libpq asks for it in the URL, checking the
//! server and showing a client certificate; an unreachable server
//! fails within seconds; and an audit append its caller stops waiting for
//! leaves no transaction open. The suite both backends pass is tests/store.rs.

mod support;

use samverka_gateway::store::{AuditTrail, Store, StoreLocation};
use support::postgres::PgCluster;
use support::store::{append, audit, indexed_or_not};

/// The SQLite store in the file `path`.
async fn sqlite(path: &std::path::Path) -> Store {
    Store::open(&StoreLocation::Sqlite(path.to_owned()))
        .await
        .unwrap()
}

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

/// The access log on SQLite reads its index and the entries not yet in it:
/// with the boundary anywhere (nothing, part or all indexed), each page
/// size gives the same log oldest first, newest first (its reverse) and
/// by agency, in both orders (`support::store::access_log` checks each).
#[tokio::test]
async fn the_access_log_reads_alike_in_both_orders_wherever_the_index_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir.path().join("s.db")).await;
    let person = "199003142388";
    let entries = |prefix: &str, callers: &[&str]| -> Vec<samverka_gateway::audit::AuditEntry> {
        callers
            .iter()
            .enumerate()
            .map(|(i, caller)| {
                let mut e = audit(&format!("{prefix}-{i}"), person);
                e.caller = (*caller).to_owned();
                e
            })
            .collect()
    };
    let (reader, registrar) = ("2021999020", "2021999038");
    store
        .append_audit_batch(entries("a", &[reader, registrar, reader, reader]))
        .await
        .unwrap();
    append(&store, "other", "198511224571", 2).await;
    let mut logs = Vec::new();
    for size in 1..=5 {
        logs.push(support::store::access_log(&store, person, 0, i64::MAX, size).await);
    }
    store.index_access_log().await.unwrap();
    store
        .append_audit_batch(entries("b", &[registrar, reader, registrar]))
        .await
        .unwrap();
    for size in 1..=5 {
        logs.push(support::store::access_log(&store, person, 0, i64::MAX, size).await);
    }
    assert!(logs[..5].iter().all(|l| l == &[1, 2, 3, 4]), "{logs:?}");
    let whole = [1, 2, 3, 4, 7, 8, 9];
    assert!(logs[5..].iter().all(|l| l == &whole), "{logs:?}");
    store.index_access_log().await.unwrap();
    assert_eq!(
        support::store::access_log(&store, person, 0, i64::MAX, 2).await,
        whole
    );
}

/// The audit writer's append sends `BEGIN` and the head's lock first and
/// the rest in a second round trip. A caller that stops waiting between
/// the two (here: while another session holds the head's lock) must not
/// leave that connection in the pool with its transaction open: it would
/// hold the head's lock, and every replica's appends would wait behind it.
#[tokio::test]
async fn an_append_abandoned_halfway_leaves_no_transaction_open() {
    use std::time::Duration;
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let store = Store::open(&StoreLocation::Postgres(pg.url()))
        .await
        .unwrap();
    let writer = store.for_audit_writer().unwrap();
    writer
        .append_audit(audit("first", "199003142388"))
        .await
        .unwrap();

    let (holder, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        writer.append_audit(audit("abandoned", "199003142388")),
    )
    .await;
    assert!(abandoned.is_err(), "the append waited for the head's lock");
    holder.batch_execute("ROLLBACK").await.unwrap();

    // Another replica's append, and the writer's next ones, go through.
    let other = Store::open(&StoreLocation::Postgres(pg.url()))
        .await
        .unwrap();
    for (store, id) in [(&other, "other"), (&writer, "next-1"), (&writer, "next-2")] {
        tokio::time::timeout(
            Duration::from_secs(5),
            store.append_audit(audit(id, "199003142388")),
        )
        .await
        .unwrap_or_else(|_| panic!("{id} waited for a lock left held"))
        .unwrap();
    }
    let ids = store.audit_entries(None).await.unwrap();
    assert_eq!(
        ids.iter().map(|e| e.audit_id.as_str()).collect::<Vec<_>>(),
        ["first", "other", "next-1", "next-2"]
    );
}
