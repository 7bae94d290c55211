//! A read the caller cancels (drops) at any point leaves nothing behind:
//! the circuit breaker's probe, if it was one, does not leave the source
//! paused for everyone; and once a register was asked about the person,
//! the audit trail records the read, with decision `cancelled`, whatever
//! the caller does. On a `samverka serve` process with a source that
//! hangs or answers as the test says.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, pki_spec};
use samverka_certs::dev::DevPkiFiles;
use samverka_proto::adapter::v1::adapter_server::Adapter;
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse,
};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{EmploymentPeriod, Record};
use samverka_proto::v1::source_outcome::Status as Outcome;
use support::process::{Replica, gateway_store, start_gateway};
use support::*;
use tonic::{Request, Response, Status};

/// The employment register, hanging while `hang` is set, else answering
/// after `delay_ms`; `ended` counts the calls that ended, answered or
/// dropped by the gateway.
#[derive(Clone, Default)]
struct Switchable {
    hang: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    asked: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
}

/// Counts a call's end when dropped.
struct Ends(Arc<AtomicUsize>);

impl Drop for Ends {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl Adapter for Switchable {
    async fn describe(
        &self,
        _: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        Ok(Response::new(AdapterDescription {
            agency_id: samverka_adapter_employment::DEMO_AGENCY.into(),
            name: "switchable".into(),
            record_types: vec!["employment.period".into()],
            sdk_version: String::new(),
        }))
    }

    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let _ends = Ends(self.ended.clone());
        if self.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        let subject_id = request.into_inner().subject_id;
        Ok(Response::new(FetchRecordsResponse {
            records: vec![Record {
                record_type: "employment.period".into(),
                subject_id,
                record_id: "emp-1".into(),
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

async fn serve(pki: &DevPkiFiles, adapter: Switchable) -> SocketAddr {
    serve_test_adapter(pki, "employment", adapter).await
}

struct Setup {
    dir: tempfile::TempDir,
    pki: DevPkiFiles,
    gateway: Replica,
    adapter: Switchable,
}

async fn setup(extra: &str) -> Setup {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let adapter = Switchable::default();
    let adapters = vec![("employment".to_owned(), serve(&pki, adapter.clone()).await)];
    let gateway = start_gateway(dir.path(), &pki, &adapters, extra, &[]);
    gateway
        .grant(&pki, &["employment.period"], "cancellation-test")
        .await;
    Setup {
        dir,
        pki,
        gateway,
        adapter,
    }
}

fn employment_read(timeout: Duration) -> Request<samverka_proto::v1::GetRecordsRequest> {
    let mut request = Request::new(read_request(
        DEMO_SUBJECT,
        &["employment.period"],
        DEMO_PURPOSE,
    ));
    request.set_timeout(timeout);
    request
}

/// Starts a read, waits until the register has been asked, and cancels
/// it (the client drops the call, which resets the stream).
async fn cancel_once_asked(s: &Setup) {
    let before = s.adapter.asked.load(Ordering::SeqCst);
    let ended = s.adapter.ended.load(Ordering::SeqCst);
    let mut reader = s.gateway.reader(&s.pki).await;
    let call = tokio::spawn(async move {
        let _ = reader
            .get_records(employment_read(Duration::from_secs(20)))
            .await;
    });
    for _ in 0..500 {
        if s.adapter.asked.load(Ordering::SeqCst) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        s.adapter.asked.load(Ordering::SeqCst) > before,
        "the register was never asked"
    );
    call.abort();
    let _ = call.await;
    // The gateway has let go of the call once it dropped its register
    // call: only then is what it left behind worth looking at.
    for _ in 0..500 {
        if s.adapter.ended.load(Ordering::SeqCst) > ended {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway never let go of the cancelled call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_probe_does_not_leave_the_source_paused() {
    let s = setup("[limits]\nbreaker_failures = 1\nbreaker_pause_s = 1\n").await;
    let mut reader = s.gateway.reader(&s.pki).await;

    // One read too slow for its deadline opens the circuit.
    s.adapter.hang.store(true, Ordering::SeqCst);
    let answer = reader
        .get_records(employment_read(Duration::from_millis(1500)))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(answer.outcomes[0].status(), Outcome::Ok);
    let answer = reader
        .get_records(employment_read(Duration::from_secs(5)))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.outcomes[0].message.contains("paused"), "{answer:?}");

    // After the pause, the next read is the probe: cancelled while the
    // register is asked.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cancel_once_asked(&s).await;

    // The register answers again, and the next read reaches it.
    s.adapter.hang.store(false, Ordering::SeqCst);
    let answer = reader
        .get_records(employment_read(Duration::from_secs(5)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.outcomes[0].status(),
        Outcome::Ok,
        "the source was left paused: {answer:?}"
    );
    assert_eq!(answer.records.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cancelled_after_a_register_was_asked_is_audited() {
    let s = setup("").await;
    s.adapter.hang.store(true, Ordering::SeqCst);
    cancel_once_asked(&s).await;

    let store = gateway_store(s.dir.path()).await;
    let mut cancelled = Vec::new();
    for _ in 0..200 {
        cancelled = store
            .audit_entries(Some(DEMO_SUBJECT))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.method == "RecordExchange/GetRecords")
            .collect();
        if !cancelled.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    let entry = &cancelled[0];
    assert_eq!(entry.decision, "cancelled");
    assert_eq!(
        entry.sources,
        [format!(
            "{}=CANCELLED",
            samverka_adapter_employment::DEMO_AGENCY
        )]
    );
    assert_eq!(entry.record_types, ["employment.period"]);

    // The person sees it in their access log.
    let events = samverka_proto::v1::access_log_client::AccessLogClient::new(
        s.gateway.channel(&s.pki, "registrar").await,
    )
    .list(sealed_pki(
        &s.pki,
        "registrar",
        samverka_proto::v1::ListAccessEventsRequest {
            subject_id: DEMO_SUBJECT.into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .events;
    assert!(
        events
            .iter()
            .any(|e| e.audit_id == entry.audit_id && e.outcome == "cancelled"),
        "{events:?}"
    );
}

/// The class: a read cancelled at any point (before, while and after the
/// register is asked, and after its answer) leaves no register asked
/// without an entry in the trail, a trail that verifies, and a source that
/// answers the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cancelled_at_any_point_leaves_no_register_asked_unaudited() {
    let s = setup("[limits]\nrate_per_second = 1000\nburst = 1000\n").await;
    s.adapter.delay_ms.store(20, Ordering::SeqCst);
    let mut cancelled = 0;
    for step in 0..40u64 {
        let mut reader = s.gateway.reader(&s.pki).await;
        let call = tokio::spawn(async move {
            reader
                .get_records(employment_read(Duration::from_secs(5)))
                .await
                .is_ok()
        });
        tokio::time::sleep(Duration::from_micros(step * 1_000)).await;
        call.abort();
        if !matches!(call.await, Ok(true)) {
            cancelled += 1;
        }
    }
    assert!(cancelled > 10, "only {cancelled} reads were cancelled");

    // The last background commits land; then every register asked has an
    // entry naming it.
    let store = gateway_store(s.dir.path()).await;
    let employment = samverka_adapter_employment::DEMO_AGENCY;
    let mut naming = 0;
    for _ in 0..100 {
        naming = read_entries(&store)
            .await
            .iter()
            .filter(|e| e.sources.iter().any(|src| src.starts_with(employment)))
            .count();
        if naming >= s.adapter.asked.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = s.adapter.asked.load(Ordering::SeqCst);
    assert!(asked > 0);
    assert!(
        naming >= asked,
        "the register was asked {asked} times, the trail names it {naming} times"
    );

    let mut reader = s.gateway.reader(&s.pki).await;
    let answer = reader
        .get_records(employment_read(Duration::from_secs(5)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.outcomes[0].status(), Outcome::Ok, "{answer:?}");
    let config = s.dir.path().join("gateway.toml").display().to_string();
    let out =
        tokio::task::spawn_blocking(move || support::audit::run(&["verify", "--config", &config]))
            .await
            .unwrap();
    let entries = store.audit_entries(None).await.unwrap().len() as u64;
    support::audit::assert_intact(&out, entries);
}
