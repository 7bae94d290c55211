//! Every caller is rate-limited, on every RPC, over mTLS.
//!
//! On a second gateway of the demo network (in the test process, a rate of
//! one request a second and a burst of two, on a clock the test moves):
//! every method of every service refuses a caller over its rate with
//! RESOURCE_EXHAUSTED, `RATE_LIMITED` and a `RetryInfo`, and writes no
//! audit entry for it; certificates of the adapter and gateway roles and
//! certificates without a samverka identity are limited too, each on its
//! own, without touching the agency's allowance; an agency with a rate of
//! its own in `[[agencies]]` gets it, the others `[limits]`'s.
//!
//! On a `samverka serve` process in front of adapters that count their
//! `Describe` calls: a hundred `ListSources` calls ask each adapter to
//! describe itself at most twice (once at start, and once more if a
//! refresh falls in between).

mod support;

use samverka_proto::admin::v1 as admin;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY, pki_spec};
use samverka_certs::dev::{CertRequest, DevCa, DevPkiFiles};
use samverka_certs::{OrgNumber, Role};
use samverka_gateway::net::client::AgencyTls;
use samverka_gateway::service::rpc::Method;
use samverka_proto::adapter::v1::adapter_server::Adapter;
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse,
};
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    GetCompetencePassportRequest, GetConsentRequest, GrantConsentRequest, ListAccessEventsRequest,
    ListConsentsRequest, ListSourcesRequest, RevokeConsentRequest,
};
use support::process::start_gateway;
use support::*;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt;

/// A gateway of the demo network's configuration with `extra` appended
/// (its own store), served in the test process on a clock the test moves.
struct LimitedGateway {
    gateway: Arc<samverka_gateway::Gateway>,
    clock: samverka_gateway::Clock,
    address: String,
}

/// A rate of one request a second and a burst of two.
const SLOW: &str = "\n[limits]\nrate_per_second = 1\nburst = 2\n";

impl LimitedGateway {
    async fn start(net: &TestNet, db: &str, edit: impl Fn(String) -> String) -> LimitedGateway {
        let text = std::fs::read_to_string(&net.config_path)
            .unwrap()
            .replace("samverka.db", db);
        let config = samverka_gateway::Config::from_toml(&edit(text), net.dir.path()).unwrap();
        let clock = samverka_gateway::Clock::manual(samverka_gateway::time::system_now_ms());
        let gateway = samverka_gateway::Gateway::new(config, clock.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(samverka_gateway::server::serve(
            gateway.clone(),
            listener,
            std::future::pending(),
        ));
        LimitedGateway {
            gateway,
            clock,
            address,
        }
    }

    async fn connect(&self, tls: &AgencyTls) -> Channel {
        samverka_gateway::net::client::connect(&self.address, "localhost", tls)
            .await
            .unwrap()
    }

    /// Moves the clock on far enough for every bucket to be full again.
    fn refill(&self) {
        self.clock.set_ms(self.clock.now_ms() + 60_000);
    }

    async fn audited(&self) -> usize {
        self.gateway.store.audit_entries(None).await.unwrap().len()
    }
}

/// One call of `method` on `channel`, with a request that needs no consent
/// or data to be judged: only whether it was refused, and how.
async fn call(method: Method, channel: &Channel) -> Result<(), Status> {
    let exchange = || RecordExchangeClient::new(channel.clone());
    let consents = || ConsentsClient::new(channel.clone());
    let registry = || admin::registry_client::RegistryClient::new(channel.clone());
    let merits = || {
        samverka_proto::v1::self_declared_merit_service_client::SelfDeclaredMeritServiceClient::new(
            channel.clone(),
        )
    };
    // No wildcard: a new method must be added here.
    match method {
        Method::GetRecords => exchange().get_records(demo_read()).await.map(drop),
        Method::GetCompetencePassport => exchange()
            .get_competence_passport(GetCompetencePassportRequest {
                subject_id: DEMO_SUBJECT.into(),
                purpose: DEMO_PURPOSE.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::ListSources => exchange()
            .list_sources(ListSourcesRequest {})
            .await
            .map(drop),
        Method::ConsentsGrant => consents()
            .grant(GrantConsentRequest::default())
            .await
            .map(drop),
        Method::ConsentsRevoke => consents()
            .revoke(RevokeConsentRequest {
                consent_id: uuid::Uuid::new_v4().to_string(),
                reason: "rate test".into(),
                person_assertion: String::new(),
            })
            .await
            .map(drop),
        Method::ConsentsGet => consents()
            .get(GetConsentRequest {
                consent_id: uuid::Uuid::new_v4().to_string(),
                person_assertion: String::new(),
            })
            .await
            .map(drop),
        Method::ConsentsList => consents()
            .list(ListConsentsRequest {
                subject_id: DEMO_SUBJECT.into(),
                grantee_agency: String::new(),
                person_assertion: String::new(),
                states: Vec::new(),
            })
            .await
            .map(drop),
        Method::ConsentsRequest => consents()
            .request_consent(samverka_proto::v1::RequestConsentRequest::default())
            .await
            .map(drop),
        Method::ConsentsApprove => consents()
            .approve_consent(samverka_proto::v1::ApproveConsentRequest::default())
            .await
            .map(drop),
        Method::ConsentsReject => consents()
            .reject_consent(samverka_proto::v1::RejectConsentRequest::default())
            .await
            .map(drop),
        Method::ConsentsPause => consents()
            .pause_consent(samverka_proto::v1::PauseConsentRequest::default())
            .await
            .map(drop),
        Method::ConsentsResume => consents()
            .resume_consent(samverka_proto::v1::ResumeConsentRequest::default())
            .await
            .map(drop),
        Method::ConsentsWatch => consents()
            .watch_consents(samverka_proto::v1::WatchConsentsRequest::default())
            .await
            .map(drop),
        Method::AccessLogList => AccessLogClient::new(channel.clone())
            .list(ListAccessEventsRequest {
                subject_id: DEMO_SUBJECT.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::MeritsDeclare => merits()
            .declare_merit(samverka_proto::v1::DeclareMeritRequest {
                subject_id: DEMO_SUBJECT.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::MeritsList => merits()
            .list_merits(samverka_proto::v1::ListMeritsRequest {
                subject_id: DEMO_SUBJECT.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::MeritsWithdraw => merits()
            .withdraw_merit(samverka_proto::v1::WithdrawMeritRequest {
                subject_id: DEMO_SUBJECT.into(),
                merit_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::RegistryGet => registry()
            .get_registry(admin::GetRegistryRequest::default())
            .await
            .map(drop),
        Method::RegistryList => registry()
            .list_items(admin::ListItemsRequest::default())
            .await
            .map(drop),
        Method::RegistryPut => registry()
            .put_item(admin::PutItemRequest::default())
            .await
            .map(drop),
        Method::RegistryDelete => registry()
            .delete_item(admin::DeleteItemRequest::default())
            .await
            .map(drop),
        Method::RegistryApply => registry()
            .apply_document(admin::ApplyDocumentRequest::default())
            .await
            .map(drop),
        Method::RegistryHistory => registry()
            .list_versions(admin::ListVersionsRequest::default())
            .await
            .map(drop),
    }
}

/// Whatever a call answered, it was not a rate refusal.
fn within_rate(what: &str, answer: Result<(), Status>) {
    if let Err(status) = answer {
        assert_ne!(reason(&status), "RATE_LIMITED", "{what}: {status:?}");
    }
}

/// A rate refusal, saying when to retry.
fn assert_rate_limited(what: &str, answer: Result<(), Status>, retry: Duration) {
    let status = answer.expect_err(what);
    assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED", "{what}");
    let delay = status
        .get_details_retry_info()
        .unwrap_or_else(|| panic!("{what}: no RetryInfo in {status:?}"))
        .retry_delay
        .unwrap_or_else(|| panic!("{what}: no retry delay"));
    assert_eq!(delay, retry, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_refuses_a_caller_over_its_rate() {
    let net = start().await;
    let limited = LimitedGateway::start(&net, "rate-methods.db", |t| t + SLOW).await;
    let reader = limited.connect(&net.agency_tls("reader").unwrap()).await;
    let registrar = limited.connect(&net.agency_tls("registrar").unwrap()).await;
    for method in Method::ALL {
        let channel = match method.service() {
            "samverka.v1.RecordExchange" => &reader,
            _ => &registrar,
        };
        let what = method.label();
        limited.refill();
        for _ in 0..2 {
            within_rate(what, call(method, channel).await);
        }
        let audited = limited.audited().await;
        let fetched = net.fetch_calls();
        assert_rate_limited(what, call(method, channel).await, Duration::from_secs(1));
        // Neither audited nor sent on: a flood must not fill the trail or
        // reach the registers.
        assert_eq!(limited.audited().await, audited, "{what}");
        assert_eq!(net.fetch_calls(), fetched, "{what}");
        // A second later the caller may go on.
        limited.clock.set_ms(limited.clock.now_ms() + 1000);
        within_rate(what, call(method, channel).await);
    }
}

/// The demo CA, loaded back from the files the network wrote.
fn demo_ca(pki: &DevPkiFiles) -> DevCa {
    DevCa::from_pem(
        &std::fs::read_to_string(&pki.ca_cert).unwrap(),
        &std::fs::read_to_string(&pki.ca_key).unwrap(),
    )
    .unwrap()
}

/// A client certificate for `org` in `role` (without a samverka identity
/// when `anonymous`), from the demo CA.
fn client_certificate(net: &TestNet, org: &str, role: Role, anonymous: bool) -> AgencyTls {
    let mut req = CertRequest::new(OrgNumber::parse(org).unwrap(), role, "rate test caller");
    req.client_auth = true;
    if anonymous {
        req.uris.clear();
    }
    let issued = demo_ca(&net.pki).issue(&req).unwrap();
    let mut tls = net.agency_tls("reader").unwrap();
    tls.cert_pem = issued.cert_pem;
    tls.key_pem = issued.key_pem;
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_certificates_are_limited_each_on_its_own() {
    let net = start().await;
    let limited = LimitedGateway::start(&net, "rate-roles.db", |t| t + SLOW).await;
    let gateway_tls = AgencyTls::from_files(
        &net.pki.ca_cert,
        &net.pki.gateway_client.0,
        &net.pki.gateway_client.1,
    )
    .unwrap();
    let callers = [
        (
            "the gateway's client certificate",
            gateway_tls,
            "ROLE_REQUIRED",
        ),
        (
            "an adapter certificate of the reader's organisation",
            client_certificate(&net, READER_AGENCY, Role::Adapter, false),
            "ROLE_REQUIRED",
        ),
        (
            "another adapter certificate of the same organisation",
            client_certificate(&net, READER_AGENCY, Role::Adapter, false),
            "ROLE_REQUIRED",
        ),
        (
            "a certificate without a samverka identity",
            client_certificate(&net, READER_AGENCY, Role::Agency, true),
            "IDENTITY_MISSING",
        ),
    ];
    let reader = limited.connect(&net.agency_tls("reader").unwrap()).await;
    for (what, tls, refusal) in callers {
        let channel = limited.connect(&tls).await;
        let audited = limited.audited().await;
        // Refused, and audited, within its rate ...
        for _ in 0..2 {
            let status = call(Method::GetRecords, &channel).await.unwrap_err();
            assert_eq!(reason(&status), refusal, "{what}: {status:?}");
        }
        assert_eq!(limited.audited().await, audited + 2, "{what}");
        // ... then refused for its rate, and not audited.
        assert_rate_limited(
            what,
            call(Method::GetRecords, &channel).await,
            Duration::from_secs(1),
        );
        assert_rate_limited(
            what,
            call(Method::ListSources, &channel).await,
            Duration::from_secs(1),
        );
        assert_eq!(limited.audited().await, audited + 2, "{what}");
    }
    // None of them used the reader agency's allowance.
    for _ in 0..2 {
        let status = call(Method::GetRecords, &reader).await.unwrap_err();
        assert_eq!(reason(&status), "CONSENT_MISSING", "{status:?}");
    }
    assert_rate_limited(
        "the reader",
        call(Method::GetRecords, &reader).await,
        Duration::from_secs(1),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_with_a_rate_of_its_own_gets_it() {
    let net = start().await;
    let reader_entry = "name = \"Study and career guidance service (demo)\"";
    let limited = LimitedGateway::start(&net, "rate-own.db", |t| {
        assert!(t.contains(reader_entry));
        t.replace(
            reader_entry,
            &format!("{reader_entry}\nrate_per_second = 4\nburst = 5"),
        ) + SLOW
    })
    .await;
    let reader = limited.connect(&net.agency_tls("reader").unwrap()).await;
    let outsider = limited.connect(&net.agency_tls("outsider").unwrap()).await;
    // How many calls pass before one is refused, and when to retry.
    let allowed = async |channel: &Channel| {
        for n in 0..20 {
            if let Err(status) = call(Method::ListSources, channel).await {
                assert_eq!(reason(&status), "RATE_LIMITED", "{status:?}");
                return (n, status.get_details_retry_info().unwrap().retry_delay);
            }
        }
        panic!("20 calls in a row, none refused");
    };
    // The reader: its own burst, and its own rate (a token every 250 ms).
    assert_eq!(
        allowed(&reader).await,
        (5, Some(Duration::from_millis(250)))
    );
    // The outsider: [limits]'s.
    assert_eq!(allowed(&outsider).await, (2, Some(Duration::from_secs(1))));
    limited.clock.set_ms(limited.clock.now_ms() + 500);
    assert_eq!(allowed(&reader).await.0, 2);
    assert_eq!(allowed(&outsider).await.0, 0);
}

/// An adapter that counts the `Describe` calls it answers.
struct Counting {
    agency: &'static str,
    record_types: &'static [&'static str],
    describes: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Adapter for Counting {
    async fn describe(
        &self,
        _: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        self.describes.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(AdapterDescription {
            agency_id: self.agency.into(),
            name: "counting register".into(),
            record_types: strings(self.record_types),
            sdk_version: String::new(),
        }))
    }

    async fn fetch_records(
        &self,
        _: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        Ok(Response::new(FetchRecordsResponse::default()))
    }
}

/// Serves a [`Counting`] adapter with the certificate of the demo adapter
/// `name`; its address.
async fn serve_counting(pki: &DevPkiFiles, name: &str, adapter: Counting) -> SocketAddr {
    serve_test_adapter(pki, name, adapter).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sources_does_not_make_the_gateway_call_the_adapters() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let mut adapters = Vec::new();
    let mut counters = Vec::new();
    for source in &samverka::cli::demo::DEMO_SOURCES {
        let describes = Arc::new(AtomicUsize::new(0));
        let adapter = Counting {
            agency: source.agency,
            record_types: source.record_types,
            describes: describes.clone(),
        };
        let address = serve_counting(&pki, source.name, adapter).await;
        adapters.push((source.name.to_owned(), address));
        counters.push((source.name, describes));
    }
    let gateway = start_gateway(dir.path(), &pki, &adapters, "", &[]);
    let mut reader = gateway.reader(&pki).await;
    for i in 0..100 {
        let sources = reader
            .list_sources(ListSourcesRequest {})
            .await
            .unwrap()
            .into_inner()
            .sources;
        assert_eq!(sources.len(), adapters.len(), "call {i}: {sources:?}");
        for s in &sources {
            // Described by the refresh the first call waited for.
            assert!(s.reachable, "call {i}: {s:?}");
            assert_eq!(s.description, "counting register", "call {i}");
        }
    }
    for (name, describes) in &counters {
        let n = describes.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&n),
            "{name} was asked to describe itself {n} times"
        );
    }
}
