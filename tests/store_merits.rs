//! Self-declared merits in the store, on both backends (SQLite, a real
//! file; PostgreSQL, a real server started by the test, skipped with a
//! printed reason when it is not installed): each declaration and
//! withdrawal is written with its audit entry or not at all, the limit per
//! person holds under concurrent declarations, and a withdrawn merit is
//! kept but no longer listed.

mod support;

use samverka_gateway::store::merits::{Declared, DeclaredMeritRow, Withdrawn};
use samverka_gateway::store::{Store, StoreLocation};
use support::store::audit;

const PERSON: &str = "199003142388";

fn row(id: &str, subject: &str, at_ms: i64) -> DeclaredMeritRow {
    DeclaredMeritRow {
        merit_id: id.into(),
        subject_id: subject.into(),
        registrar_agency: "2021999038".into(),
        merit: vec![10, 3, b'a', b'b', b'c'],
        declared_at_ms: at_ms,
        withdrawn_at_ms: None,
    }
}

async fn entries(store: &Store) -> Vec<String> {
    store
        .audit_range(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.audit_id)
        .collect()
}

async fn declarations_and_withdrawals_are_written_with_their_entries(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    for (i, at) in [(1, 200), (2, 100)] {
        let done = store
            .declare_merit(
                row(&format!("m-{i}"), PERSON, at),
                10,
                audit(&format!("d-{i}"), PERSON),
            )
            .await
            .unwrap();
        assert!(matches!(done, Declared::Done(e) if e.audit_id == format!("d-{i}")));
    }
    store
        .declare_merit(
            row("m-other", "198511224571", 50),
            10,
            audit("d-o", "198511224571"),
        )
        .await
        .unwrap();
    // The person's own, oldest first.
    let mine = store.declared_merits(PERSON).await.unwrap();
    assert_eq!(
        mine.iter().map(|r| r.merit_id.as_str()).collect::<Vec<_>>(),
        ["m-2", "m-1"]
    );
    assert_eq!(mine[1], row("m-1", PERSON, 200));

    // Another person's merit cannot be withdrawn in this person's name,
    // and nothing is written.
    let before = entries(&store).await;
    let refused = store
        .withdraw_merit(PERSON, "m-other", 300, audit("w-x", PERSON))
        .await
        .unwrap();
    assert!(matches!(refused, Withdrawn::NotFound));
    assert_eq!(entries(&store).await, before);

    let done = store
        .withdraw_merit(PERSON, "m-1", 300, audit("w-1", PERSON))
        .await
        .unwrap();
    let Withdrawn::Done(entry, now) = done else {
        panic!("not withdrawn")
    };
    assert_eq!(entry.audit_id, "w-1");
    assert_eq!(now.withdrawn_at_ms, Some(300));
    // Once.
    assert!(matches!(
        store
            .withdraw_merit(PERSON, "m-1", 400, audit("w-2", PERSON))
            .await
            .unwrap(),
        Withdrawn::NotFound
    ));
    let ids: Vec<String> = store
        .declared_merits(PERSON)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.merit_id)
        .collect();
    assert_eq!(ids, ["m-2"]);
    assert_eq!(entries(&store).await, ["d-1", "d-2", "d-o", "w-1"]);

    // An entry the chain refuses (its id is taken) takes the merit with it.
    let again = store
        .declare_merit(row("m-3", PERSON, 500), 10, audit("d-1", PERSON))
        .await;
    assert!(again.is_err());
    assert_eq!(store.declared_merits(PERSON).await.unwrap().len(), 1);
}

async fn the_limit_holds_under_concurrent_declarations(location: StoreLocation) {
    let store = Store::open(&location).await.unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .declare_merit(
                        row(&format!("m-{i}"), PERSON, i),
                        5,
                        audit(&format!("d-{i}"), PERSON),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        if let Declared::Done(_) = t.await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.declared_merits(PERSON).await.unwrap().len(), 5);
    assert_eq!(entries(&store).await.len(), 5, "no entry without its merit");
    // Withdrawing one makes room for one.
    let first = store.declared_merits(PERSON).await.unwrap()[0]
        .merit_id
        .clone();
    store
        .withdraw_merit(PERSON, &first, 99, audit("w", PERSON))
        .await
        .unwrap();
    assert!(matches!(
        store
            .declare_merit(row("m-new", PERSON, 100), 5, audit("d-new", PERSON))
            .await
            .unwrap(),
        Declared::Done(_)
    ));
}

crate::on_both_backends!(
    declarations_and_withdrawals_are_written_with_their_entries,
    the_limit_holds_under_concurrent_declarations,
);
