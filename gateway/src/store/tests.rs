//! What holds for the store whichever backend it runs on.

use super::{Store, StoreLocation};

/// The store's calls on a read's path are small futures on either
/// backend: PostgreSQL's run to kilobytes and are boxed, so that they do
/// not make every caller's state that large, copied on every request.
#[tokio::test]
async fn store_calls_on_the_read_path_are_small_futures() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("s.db")))
        .await
        .unwrap();
    let consents = store.consents_for("199003142388", Some("2021999020"));
    let reserve = store.reserve_read("c-1");
    let consent = store.consent("c-1");
    let release = store.release_read("c-1");
    let sizes = [
        ("consents_for", std::mem::size_of_val(&consents)),
        ("reserve_read", std::mem::size_of_val(&reserve)),
        ("consent", std::mem::size_of_val(&consent)),
        ("release_read", std::mem::size_of_val(&release)),
    ];
    println!("{sizes:?}");
    for (call, size) in sizes {
        assert!(size <= 1024, "{call}: a future of {size} bytes");
    }
}
