//! The gateway's signing keys and revoked credentials in the store, on
//! SQLite (a real file) and PostgreSQL (a real server; skipped with a
//! printed reason when it is not installed): a key is recorded by every
//! replica that puts it in use, the earliest time kept, and retired once
//! (a superseded key may later be found compromised); a credential is
//! revoked once; each change with its audit entry in the chain.

mod support;

use samverka_gateway::store::keys::{Retire, RetireReason};
use samverka_gateway::store::{Store, StoreLocation};
use support::store::audit;

async fn keys_are_kept_and_retired_once_with_their_entry(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    assert!(store.signing_keys().await.unwrap().is_empty());
    let start = store.audit_head().await.unwrap();
    let a = store
        .note_signing_key("kid-a".into(), "cert a".into(), 2_000, audit("j-1", ""))
        .await
        .unwrap();
    assert_eq!((a.in_use_from_ms, a.retired_at_ms), (2_000, None));
    let joined = store.audit_head().await.unwrap();
    assert_eq!(joined.seq, start.seq + 1, "a new key joins with its entry");
    // Another replica put the same key in use earlier; a third later.
    store
        .note_signing_key("kid-a".into(), "cert a".into(), 1_000, audit("j-2", ""))
        .await
        .unwrap();
    let a = store
        .note_signing_key("kid-a".into(), "cert a".into(), 5_000, audit("j-3", ""))
        .await
        .unwrap();
    assert_eq!(a.in_use_from_ms, 1_000, "the earliest time is kept");
    assert_eq!(
        store.audit_head().await.unwrap().seq,
        joined.seq,
        "a key already in the set appends no entry"
    );
    store
        .note_signing_key("kid-b".into(), "cert b".into(), 3_000, audit("j-4", ""))
        .await
        .unwrap();
    assert_eq!(store.audit_head().await.unwrap().seq, joined.seq + 1);
    let kids = |keys: Vec<samverka_gateway::store::keys::SigningKeyRecord>| {
        keys.into_iter().map(|k| k.kid).collect::<Vec<_>>()
    };
    assert_eq!(
        kids(store.signing_keys().await.unwrap()),
        ["kid-a", "kid-b"]
    );

    let head = store.audit_head().await.unwrap();
    let Retire::Done(entry) = store
        .retire_signing_key(
            "kid-a".into(),
            4_000,
            RetireReason::Superseded,
            audit("r-1", ""),
        )
        .await
        .unwrap()
    else {
        panic!("retired")
    };
    assert_eq!(
        entry.seq,
        head.seq + 1,
        "the entry is linked into the chain"
    );
    assert_eq!(entry.prev_hash, head.hash);
    let retire = |reason, id: &'static str| {
        store.retire_signing_key("kid-a".into(), 9_000, reason, audit(id, ""))
    };
    let again = retire(RetireReason::Superseded, "r-2").await.unwrap();
    assert!(matches!(again, Retire::Already(4_000)), "{again:?}");
    // Found compromised later: graver, so it changes, keeping its time.
    let graver = retire(RetireReason::Compromised, "r-4").await.unwrap();
    assert!(matches!(graver, Retire::Done(_)), "{graver:?}");
    let again = retire(RetireReason::Compromised, "r-5").await.unwrap();
    assert!(matches!(again, Retire::Already(4_000)), "{again:?}");
    let unknown = store
        .retire_signing_key(
            "kid-x".into(),
            9_000,
            RetireReason::Superseded,
            audit("r-3", ""),
        )
        .await
        .unwrap();
    assert!(matches!(unknown, Retire::Unknown), "{unknown:?}");
    assert_eq!(
        store.audit_head().await.unwrap().seq,
        head.seq + 2,
        "a refused retirement writes no entry"
    );
    // Noting a retired key does not bring it back.
    let a = store
        .note_signing_key("kid-a".into(), "cert a".into(), 500, audit("j-5", ""))
        .await
        .unwrap();
    assert_eq!(a.retired_at_ms, Some(4_000));
    assert_eq!(a.retire_reason.as_deref(), Some("compromised"));
    drop(store);
    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap().len(),
        2,
        "kept on reopening"
    );
}

async fn credentials_are_revoked_once_with_their_entry(location: StoreLocation) {
    use samverka_gateway::store::status::{RevokeCredential, RevokedCredential};
    let store = Store::open(&location).await.unwrap();
    assert!(store.revoked_credentials().await.unwrap().is_empty());
    let revoked = |id: &str, at: i64| RevokedCredential {
        credential_id: id.into(),
        revoked_at_ms: at,
        reason: "issued in error".into(),
        revoked_by: "operator:x".into(),
    };
    let head = store.audit_head().await.unwrap();
    let done = store
        .revoke_credential(revoked("urn:uuid:a", 1_000), audit("v-1", ""))
        .await
        .unwrap();
    let RevokeCredential::Done(entry) = done else {
        panic!("revoked: {done:?}")
    };
    assert_eq!((entry.seq, &entry.prev_hash), (head.seq + 1, &head.hash));
    let again = store
        .revoke_credential(revoked("urn:uuid:a", 2_000), audit("v-2", ""))
        .await
        .unwrap();
    assert!(
        matches!(again, RevokeCredential::Already(1_000)),
        "{again:?}"
    );
    assert_eq!(store.audit_head().await.unwrap().seq, head.seq + 1);
    store
        .revoke_credential(revoked("urn:uuid:b", 3_000), audit("v-3", ""))
        .await
        .unwrap();
    drop(store);
    let store = Store::open(&location).await.unwrap();
    let ids: Vec<String> = store
        .revoked_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.credential_id)
        .collect();
    assert_eq!(ids, ["urn:uuid:a", "urn:uuid:b"]);
}

crate::on_both_backends!(
    keys_are_kept_and_retired_once_with_their_entry,
    credentials_are_revoked_once_with_their_entry,
);
