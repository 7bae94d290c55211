//! End to end: the `samverka audit` command, a real process on a real
//! SQLite file holding a trail of twelve entries with two signed
//! checkpoints. `verify` finds each kind of tampering (an edited, deleted,
//! reordered, inserted or truncated entry, a rechained trail, a forged or
//! moved checkpoint) at the first broken entry; verifying and exporting
//! change nothing in the store, even one in a read-only directory or from
//! an older schema; a store this build cannot read is named, not
//! verified; exports and the archives `prune` writes verify on their own.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY};
use samverka_certs::dev::{DevPkiFiles, write_dev_pki};
use samverka_gateway::audit::AuditEntry;
use samverka_gateway::audit::chain;
use samverka_gateway::credential::signing::JwsSigner;
use samverka_gateway::store::{Store, StoreLocation};
use support::audit::{assert_intact, run};
use support::*;

struct Trail {
    dir: tempfile::TempDir,
    db: PathBuf,
    pki: DevPkiFiles,
}

fn entry(i: usize) -> AuditEntry {
    let mut e =
        samverka_gateway::audit::entry("RecordExchange/GetRecords", 1_764_400_000_000 + i as i64);
    e.caller = READER_AGENCY.into();
    e.subject_id = DEMO_SUBJECT.into();
    e.record_types = strings(&["employment.period"]);
    e.purpose = DEMO_PURPOSE.into();
    e.decision = if i.is_multiple_of(3) {
        "denied"
    } else {
        "allowed"
    }
    .into();
    e.reason = if i.is_multiple_of(3) {
        "CONSENT_MISSING".into()
    } else {
        String::new()
    };
    e
}

/// Twelve entries in a SQLite file, with checkpoints at 5 (signed three
/// days ago) and 10 (now), signed with the dev PKI's gateway key.
async fn trail() -> Trail {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_dev_pki(&dir.path().join("certs"), &samverka::cli::demo::pki_spec()).unwrap();
    let signer = JwsSigner::from_pem(
        &std::fs::read_to_string(&pki.gateway.0).unwrap(),
        &std::fs::read_to_string(&pki.gateway.1).unwrap(),
        samverka::cli::demo::GATEWAY_AGENCY,
    )
    .unwrap();
    let db = dir.path().join("samverka.db");
    let store = Store::open(&StoreLocation::Sqlite(db.clone()))
        .await
        .unwrap();
    let now = samverka_gateway::time::system_now_ms();
    for i in 1..=12 {
        let e = store.append_audit(entry(i)).await.unwrap();
        assert_eq!(e.seq, i as i64);
        if i == 5 || i == 10 {
            let head = store.audit_head().await.unwrap();
            let time = if i == 5 { now - 3 * DAY_MS } else { now };
            store
                .add_checkpoint(chain::checkpoint(&signer, &head, time).unwrap())
                .await
                .unwrap();
        }
    }
    drop(store);
    // Fold the write-ahead log into the file, so that copies of the file
    // hold the whole trail.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    Trail { dir, db, pki }
}

fn verify(t: &Trail, db: &Path) -> Output {
    run(&[
        "verify",
        "--store",
        &db.display().to_string(),
        "--cert",
        &t.pki.gateway.0.display().to_string(),
    ])
}

/// Asserts exit 1 and `words` in what it says; returns that.
fn assert_failed(out: &Output, words: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains(words), "expected {words:?}: {stderr}");
    stderr
}

/// Asserts exit 1 and a report naming `entry N` and `words`.
fn assert_broken(out: &Output, seq: i64, words: &str) {
    let stderr = assert_failed(out, words);
    assert!(
        stderr.contains(&format!("BROKEN at entry {seq}")),
        "expected entry {seq}: {stderr}"
    );
}

/// Exports the trail of the store `db` to `out`.
fn export(db: &Path, out: &Path) {
    let done = run(&[
        "export",
        "--store",
        &db.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// A copy of the trail's database with `sql` applied.
fn tampered(t: &Trail, name: &str, sql: &str) -> PathBuf {
    let copy = t.dir.path().join(format!("{name}.db"));
    std::fs::copy(&t.db, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute_batch(sql).unwrap();
    copy
}

#[tokio::test]
async fn an_intact_trail_verifies() {
    let t = trail().await;
    let out = assert_intact(&verify(&t, &t.db), 12);
    assert!(out.contains("2 signed checkpoints verified"), "{out}");
    assert!(out.contains("after the last checkpoint (10)"), "{out}");
}

/// The store file and the names of the files beside it. (A read-only
/// SQLite connection may leave empty `-wal` and `-shm` files, which hold
/// nothing of the store.)
fn store_and_names(db: &Path) -> (Vec<u8>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    names.sort();
    (std::fs::read(db).unwrap(), names)
}

#[tokio::test]
async fn verifying_and_exporting_change_nothing_in_the_store() {
    let t = trail().await;
    // A store from the first schema version, as an older release left it:
    // it must be verified as it is, not upgraded on the way.
    let db = tampered(
        &t,
        "older",
        "DELETE FROM schema_migrations WHERE version = 2;
         CREATE INDEX audit_by_subject ON audit_entries (subject_id, seq);
         CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
         INSERT INTO audit_head (id, seq, hash) SELECT 1, seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1;",
    );
    let dir = t.dir.path().join("older");
    std::fs::create_dir(&dir).unwrap();
    let older = dir.join("samverka.db");
    std::fs::rename(&db, &older).unwrap();
    let before = store_and_names(&older);

    assert_intact(&verify(&t, &older), 12);
    let exported = t.dir.path().join("older.jsonl");
    export(&older, &exported);
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap().lines().count(),
        2 + 12
    );

    let after = store_and_names(&older);
    assert_eq!(after.1, before.1, "no file is added beside the store");
    assert!(after.0 == before.0, "the store file is unchanged");
}

/// Makes a directory read-only until dropped: by its permissions, and
/// for root (whom permissions do not stop) with the immutable attribute.
struct ReadOnlyDir(PathBuf);

impl ReadOnlyDir {
    fn make(dir: &Path) -> Option<ReadOnlyDir> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let guard = ReadOnlyDir(dir.to_owned());
        let writable = || {
            let probe = dir.join("probe");
            let made = std::fs::File::create(&probe).is_ok();
            let _ = std::fs::remove_file(&probe);
            made
        };
        if writable() {
            let _ = Command::new("chattr").arg("+i").arg(dir).status();
            if writable() {
                eprintln!(
                    "SKIPPED: cannot make {} read-only for root (chattr +i)",
                    dir.display()
                );
                return None;
            }
        }
        Some(guard)
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// A store in a directory nobody may write to (a backup on read-only
/// media) is verified all the same: SQLite cannot create its `-shm` file
/// beside it there, and with no write-ahead log beside it either the file
/// is read as it is.
#[tokio::test]
async fn a_store_in_a_read_only_directory_verifies() {
    let t = trail().await;
    // (Named with characters a `file:` URI must escape: the file is
    // opened through one there.)
    let dir = t.dir.path().join("backup %41?#é");
    std::fs::create_dir(&dir).unwrap();
    let copy = dir.join("samverka.db");
    std::fs::copy(&t.db, &copy).unwrap();
    let Some(read_only) = ReadOnlyDir::make(&dir) else {
        return;
    };
    assert_intact(&verify(&t, &copy), 12);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    drop(read_only);

    // A write-ahead log beside it may hold commits the file lacks: then it
    // is not read without that log, and verify says why.
    std::fs::write(dir.join("samverka.db-wal"), [1u8; 32]).unwrap();
    let _read_only = ReadOnlyDir::make(&dir).unwrap();
    assert_failed(&verify(&t, &copy), "unable to open");
}

#[tokio::test]
async fn a_store_this_build_cannot_read_is_named_not_verified() {
    let t = trail().await;
    let newer = tampered(
        &t,
        "newer",
        "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (99, 0)",
    );
    assert_failed(
        &verify(&t, &newer),
        "schema version 99 is newer than this samverka knows",
    );

    let other = t.dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT)")
        .unwrap();
    let stderr = assert_failed(&verify(&t, &other), "not a samverka store");
    assert!(!stderr.contains("intact"), "{stderr}");
}

#[tokio::test]
async fn an_edited_field_is_found() {
    let t = trail().await;
    let db = tampered(
        &t,
        "edited",
        "UPDATE audit_entries SET purpose = 'marketing' WHERE seq = 7",
    );
    assert_broken(&verify(&t, &db), 7, "edited");
}

#[tokio::test]
async fn a_deleted_entry_is_found() {
    let t = trail().await;
    let db = tampered(&t, "deleted", "DELETE FROM audit_entries WHERE seq = 7");
    assert_broken(&verify(&t, &db), 7, "missing");
}

#[tokio::test]
async fn reordered_entries_are_found() {
    let t = trail().await;
    let db = tampered(
        &t,
        "reordered",
        "UPDATE audit_entries SET seq = -7 WHERE seq = 7;
         UPDATE audit_entries SET seq = 7 WHERE seq = 8;
         UPDATE audit_entries SET seq = 8 WHERE seq = -7;",
    );
    assert_broken(&verify(&t, &db), 7, "does not link");
}

#[tokio::test]
async fn an_inserted_entry_is_found() {
    let t = trail().await;
    let db = tampered(
        &t,
        "inserted",
        "UPDATE audit_entries SET seq = seq + 1000 WHERE seq > 6;
         UPDATE audit_entries SET seq = seq - 999 WHERE seq > 1000;",
    );
    // A well-formed entry that links to entry 6, slipped in as entry 7.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let prev: String = conn
        .query_row("SELECT hash FROM audit_entries WHERE seq = 6", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut forged = entry(99);
    forged.audit_id = "forged".into();
    forged.seq = 7;
    // Written as the row below stores it: format 1, lists joined by commas.
    forged.format = 1;
    forged.prev_hash = prev;
    forged.hash = chain::entry_hash(&forged, &forged.prev_hash).unwrap();
    conn.execute(
        "INSERT INTO audit_entries (seq, prev_hash, hash, audit_id, time_ms, caller, method, subject_id, \
         record_types, purpose, consent_id, sources, decision, reason, trace_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '', '', ?11, ?12, '')",
        rusqlite::params![
            forged.seq, forged.prev_hash, forged.hash, forged.audit_id, forged.time_ms, forged.caller,
            forged.method, forged.subject_id, "employment.period", forged.purpose, forged.decision, forged.reason
        ],
    )
    .unwrap();
    drop(conn);
    assert_broken(&verify(&t, &db), 8, "does not link");
}

#[tokio::test]
async fn a_truncated_tail_is_found() {
    let t = trail().await;
    let db = tampered(&t, "truncated", "DELETE FROM audit_entries WHERE seq >= 9");
    assert_broken(&verify(&t, &db), 9, "removed from the end");
}

#[tokio::test]
async fn a_rewritten_and_rechained_trail_is_found_by_its_checkpoint() {
    let t = trail().await;
    let copy = t.dir.path().join("rechained.db");
    std::fs::copy(&t.db, &copy).unwrap();
    let store = Store::open(&StoreLocation::Sqlite(copy.clone()))
        .await
        .unwrap();
    let mut entries = store.audit_entries(None).await.unwrap();
    drop(store);
    // Edit entry 3 and recompute every hash after it: the chain alone is
    // consistent again, but checkpoint 5 no longer matches.
    entries[2].decision = "allowed".into();
    entries[2].reason = String::new();
    let mut head = samverka_gateway::audit::AuditHead {
        seq: 2,
        hash: entries[1].hash.clone(),
    };
    let conn = rusqlite::Connection::open(&copy).unwrap();
    for e in entries.iter_mut().skip(2) {
        chain::link(&mut head, e);
        conn.execute(
            "UPDATE audit_entries SET prev_hash = ?2, hash = ?3, decision = ?4, reason = ?5 WHERE seq = ?1",
            rusqlite::params![e.seq, e.prev_hash, e.hash, e.decision, e.reason],
        )
        .unwrap();
    }
    drop(conn);
    assert_broken(&verify(&t, &copy), 5, "signed checkpoint");
}

#[tokio::test]
async fn a_checkpoint_needs_the_gateways_signature() {
    let t = trail().await;
    let other = tempfile::tempdir().unwrap();
    let other_pki = write_dev_pki(other.path(), &samverka::cli::demo::pki_spec()).unwrap();
    // The right trail, checked against another gateway's certificate: it
    // cannot be confirmed, and it is not called broken either.
    let db = t.db.display().to_string();
    let out = run(&[
        "verify",
        "--store",
        &db,
        "--cert",
        &other_pki.gateway.0.display().to_string(),
    ]);
    let said = assert_failed(&out, "NOT VERIFIED: the checkpoint at entry 5");
    assert!(!said.contains("BROKEN"), "{said}");
    // Without any certificate: a usage error, not a verdict.
    let out = run(&["verify", "--store", &db]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{said}");
    assert!(
        said.contains("--cert") && !said.contains("BROKEN"),
        "{said}"
    );
    // The same export, likewise.
    let exported = t.dir.path().join("no-cert.jsonl");
    export(&t.db, &exported);
    let out = run(&["verify", "--export", &exported.display().to_string()]);
    assert_eq!(out.status.code(), Some(64));
    // A checkpoint whose signature names the given certificate but does
    // not hold: altered.
    let db = tampered(
        &t,
        "resigned",
        "UPDATE audit_checkpoints SET jws = substr(jws, 1, length(jws) - 8) || 'AAAAAAAA' WHERE seq = 5",
    );
    assert_broken(&verify(&t, &db), 5, "signature does not verify");
    // A checkpoint whose signature names no certificate at all: altered,
    // not merely unverifiable.
    let db = tampered(
        &t,
        "garbled",
        "UPDATE audit_checkpoints SET jws = 'x' || jws WHERE seq = 5",
    );
    assert_broken(&verify(&t, &db), 5, "signature does not verify");
    // A checkpoint row moved to another entry.
    let db = tampered(
        &t,
        "moved",
        "UPDATE audit_checkpoints SET seq = 11 WHERE seq = 10",
    );
    assert_broken(
        &verify(&t, &db),
        11,
        "does not match what its signature attests",
    );
}

#[tokio::test]
async fn an_export_verifies_on_its_own_and_an_edit_to_it_is_found() {
    let t = trail().await;
    let exported = t.dir.path().join("trail.jsonl");
    export(&t.db, &exported);
    let cert = t.pki.gateway.0.display().to_string();
    let check = |file: &Path| {
        run(&[
            "verify",
            "--export",
            &file.display().to_string(),
            "--cert",
            &cert,
        ])
    };
    assert_intact(&check(&exported), 12);

    let text = std::fs::read_to_string(&exported).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 12, "two checkpoints, then twelve entries");
    let edited = text.replace("\"audit_id\":\"", "\"audit_id\":\"x");
    let edited_file = t.dir.path().join("edited.jsonl");
    std::fs::write(&edited_file, edited).unwrap();
    assert_broken(&check(&edited_file), 1, "edited");
}

#[tokio::test]
async fn pruning_archives_old_entries_and_keeps_the_rest_verifiable() {
    let t = trail().await;
    let config = t.dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        samverka::cli::demo::demo_config(
            &t.pki,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &[],
            &t.db.display().to_string(),
            "[audit]\nretention_days = 1\n",
        ),
    )
    .unwrap();
    let archive = t.dir.path().join("archive.jsonl");
    let out = run(&[
        "prune",
        "--config",
        &config.display().to_string(),
        "--archive",
        &archive.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Checkpoint 5 is older than a day, checkpoint 10 is not.
    assert!(
        stdout.contains("archived 5 entries (through seq 5)"),
        "{stdout}"
    );

    let cert = t.pki.gateway.0.display().to_string();
    assert_intact(
        &run(&[
            "verify",
            "--export",
            &archive.display().to_string(),
            "--cert",
            &cert,
        ]),
        5,
    );
    let out = assert_intact(
        &run(&["verify", "--config", &config.display().to_string()]),
        7,
    );
    assert!(out.contains("seq 6..12"), "{out}");

    // Without the checkpoint that anchors entry 6, the rest no longer verifies.
    let db = tampered(
        &t,
        "unanchored",
        "DELETE FROM audit_checkpoints WHERE seq = 5",
    );
    assert_broken(&verify(&t, &db), 6, "no signed checkpoint covers entry 5");
}
