//! The samverka adapter SDK: connect one agency register to samverka by
//! implementing one trait.
//!
//! An adapter answers the gateway's questions about one register: what it
//! is ([`Adapter::describe`]) and which records it holds for a person
//! ([`Adapter::fetch_records`]). [`serve`] runs it as a gRPC server over
//! mutual TLS (with the gRPC health checking protocol and server
//! reflection beside it) that accepts only certificates carrying samverka's
//! gateway role, and checks everything the adapter returns before it leaves: a
//! record of another person or of a type the gateway did not ask for is
//! dropped, so a bug in an adapter cannot leak someone else's data.
//!
//! ```no_run
//! use samverka_adapter::{Adapter, AdapterError, AdapterTls, Description, FetchQuery};
//! use samverka_adapter::records::{Record, record::Payload, EmploymentPeriod};
//!
//! struct Payroll;
//!
//! impl Adapter for Payroll {
//!     fn describe(&self) -> Description {
//!         Description::new("2021999053", "Payroll register", ["employment.period"])
//!     }
//!
//!     async fn fetch_records(&self, query: FetchQuery) -> Result<Vec<Record>, AdapterError> {
//!         // Look the person up in the register; an unknown person is an
//!         // empty answer, not an error.
//!         let period = EmploymentPeriod {
//!             employer_org_number: "5569990012".into(),
//!             start_date: "2021-08-16".into(),
//!             extent_percent: 100,
//!             ssyk_code: "2512".into(),
//!             ..Default::default()
//!         };
//!         Ok(vec![Record {
//!             record_type: "employment.period".into(),
//!             subject_id: query.subject.to_string(),
//!             record_id: "emp-1".into(),
//!             payload: Some(Payload::EmploymentPeriod(period)),
//!             ..Default::default()
//!         }])
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = AdapterTls::from_files("adapter.pem", "adapter.key", "ca.pem")?;
//! samverka_adapter::serve(Payroll, "127.0.0.1:50061".parse()?, tls).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`Adapter`], [`Description`], [`FetchQuery`], [`AdapterError`]: what an
//!   adapter developer implements and sees.
//! - [`serve`], [`serve_with_listener`], [`serve_configured`]: run an
//!   adapter over mTLS; [`AdapterConfig`]: its address and TLS files from a
//!   TOML file or the environment; [`AdapterTls`] (`tls.rs`): the TLS
//!   material, with CRL files watched for changes while serving.
//! - [`InMemoryRegister`]: an adapter over records in memory, for
//!   fixtures and tests.
//! - [`conformance`]: the checks every adapter must pass, for an adapter's
//!   own tests and for `samverka adapter check`.
//! - [`telemetry`]: logs and OpenTelemetry traces (OTLP), set up the same
//!   way in every samverka process; the gateway's trace continues in the
//!   adapter's `Adapter/FetchRecords` span.
//! - `service` (private): the gRPC service around an [`Adapter`], with the
//!   caller check and the output check.

pub mod accept;
pub mod coalesce;
mod config;
pub mod conformance;
pub mod credential;
mod register;
mod service;
pub mod telemetry;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use samverka_certs::{OrgNumber, SubjectId};
use samverka_proto::adapter::v1::adapter_server::AdapterServer;
use tokio::net::TcpListener;
use tonic::transport::Server;

pub use config::AdapterConfig;
pub use register::InMemoryRegister;
pub use samverka_proto::records::v1 as records;
pub use tls::{AdapterTls, CRL_WATCH_INTERVAL, MAX_CONNECTION_AGE};

/// Version of this SDK, reported to the gateway by `Describe`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One agency register, as the gateway sees it.
pub trait Adapter: Send + Sync + 'static {
    /// What this adapter serves: the agency, a name, the record types.
    fn describe(&self) -> Description;

    /// The records of `query.record_types` that the register holds for
    /// `query.subject`. A person the register does not know is `Ok(vec![])`.
    /// The SDK sets each record's `source_agency`, and fills in an empty
    /// `subject_id`; records of another person or type, and records whose
    /// payload is not their type's message, are dropped.
    fn fetch_records(
        &self,
        query: FetchQuery,
    ) -> impl Future<Output = Result<Vec<records::Record>, AdapterError>> + Send;
}

/// What an adapter serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Organisation number of the agency whose register this is.
    pub agency: String,
    /// A human-readable name of the register.
    pub name: String,
    /// The record types this adapter can return.
    pub record_types: Vec<String>,
}

impl Description {
    /// A description from its parts.
    pub fn new<I, S>(agency: &str, name: &str, record_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Description {
            agency: agency.to_owned(),
            name: name.to_owned(),
            record_types: record_types.into_iter().map(Into::into).collect(),
        }
    }
}

/// One question from the gateway. The gateway has already checked the
/// requesting agency's access rule and the person's consent.
#[derive(Debug, Clone)]
pub struct FetchQuery {
    /// The person (validated: checksum and date).
    pub subject: SubjectId,
    /// The record types wanted, all among those described.
    pub record_types: Vec<String>,
    /// The purpose the person consented to.
    pub purpose: String,
    /// The consent that allowed the read.
    pub consent_id: String,
    /// The agency that asked the gateway.
    pub requesting_agency: String,
    /// The W3C trace id of the exchange (from the gateway's `traceparent`),
    /// to log with the register's own records of the query.
    pub trace_id: Option<String>,
}

/// Why an adapter could not answer. The gateway reports it to the caller
/// as this source's outcome; the message is not shown to agencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterError {
    /// The register behind the adapter cannot be reached right now.
    Unavailable(String),
    /// Anything else that went wrong inside the adapter.
    Internal(String),
}

impl std::fmt::Display for AdapterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterError::Unavailable(m) => write!(f, "register unavailable: {m}"),
            AdapterError::Internal(m) => write!(f, "adapter error: {m}"),
        }
    }
}

impl std::error::Error for AdapterError {}

/// Why an adapter server could not run.
#[derive(Debug)]
pub enum ServeError {
    /// A file or socket could not be used.
    Io(String),
    /// The adapter's description is not valid (e.g. a bad organisation
    /// number).
    Description(String),
    /// The gRPC server failed.
    Transport(tonic::transport::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Io(m) => write!(f, "{m}"),
            ServeError::Description(m) => write!(f, "invalid adapter description: {m}"),
            ServeError::Transport(e) => write!(f, "server failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Makes aws-lc-rs the process's TLS crypto provider. Called by [`serve`];
/// call it yourself before building TLS clients in the same process. Safe
/// to call more than once.
pub fn install_crypto_provider() {
    // An Err means a provider is already installed, which is what we want.
    let _ = crypto_provider().install_default();
}

/// The certificates of a PEM trust bundle as a rustls root store: the one
/// place samverka reads a trust bundle (the gateway's ports, its client
/// side towards adapters and PostgreSQL, adapters, the conformance kit).
/// A certificate that does not parse, or a bundle with none, is an error
/// saying so.
pub fn root_store(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate".into());
    }
    Ok(roots)
}

/// The TLS crypto provider of every samverka endpoint: aws-lc-rs (TLS 1.3
/// and 1.2, ECDHE with AEAD suites only) with the post-quantum hybrid key
/// exchange X25519MLKEM768 preferred, then X25519, P-256 and P-384.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::aws_lc_rs::{self, kx_group};
    rustls::crypto::CryptoProvider {
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ],
        ..aws_lc_rs::default_provider()
    }
}

/// Serves `adapter` as `config` says, until Ctrl-C or SIGTERM: what an
/// adapter's `main` calls with [`AdapterConfig::load`].
pub async fn serve_configured<A: Adapter>(
    adapter: A,
    config: AdapterConfig,
) -> Result<(), ServeError> {
    let mut tls = AdapterTls::from_files(&config.cert, &config.key, &config.ca)?
        .with_crl_files(&config.crls)?;
    match (&config.attestation_cert, &config.attestation_key) {
        (Some(cert), Some(key)) => tls = tls.with_attester_files(cert, key)?,
        (None, None) => {}
        _ => {
            return Err(ServeError::Io(
                "attestation_cert and attestation_key go together".into(),
            ));
        }
    }
    serve(adapter, config.listen, tls).await
}

/// How long in-flight requests get to finish after Ctrl-C or SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `adapter` on `addr` until Ctrl-C or SIGTERM, then gives in-flight
/// requests up to [`DRAIN_TIMEOUT`] to finish.
pub async fn serve<A: Adapter>(
    adapter: A,
    addr: SocketAddr,
    tls: AdapterTls,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {addr}: {e}")))?;
    until_signal_then_drain(
        |stop| serve_with_listener(adapter, listener, tls, stop),
        DRAIN_TIMEOUT,
    )
    .await
    .unwrap_or(Ok(()))
}

/// Runs a server until Ctrl-C or SIGTERM, then waits at most `drain` for it
/// to finish. `server` gets the future that tells it to stop accepting.
///
/// A graceful shutdown alone waits for every client to close its
/// connection; a client that never does would keep the process alive
/// forever. Returns `None` when the drain timed out.
pub async fn until_signal_then_drain<F, T>(
    server: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
    drain: Duration,
) -> Option<T>
where
    F: Future<Output = T>,
{
    let signalled = Arc::new(tokio::sync::Notify::new());
    let notify = signalled.clone();
    let stop = Box::pin(async move {
        shutdown_signal().await;
        notify.notify_one();
    });
    let server = server(stop);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => Some(result),
        () = async {
            signalled.notified().await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(?drain, "in-flight requests did not finish in time; stopping anyway");
            None
        }
    }
}

/// Serves `adapter` on an already bound listener until `shutdown`
/// completes. Tests bind `127.0.0.1:0` and pass the listener here.
pub async fn serve_with_listener<A: Adapter>(
    adapter: A,
    listener: TcpListener,
    tls: AdapterTls,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    install_crypto_provider();
    let description = adapter.describe();
    let agency = OrgNumber::parse(&description.agency)
        .map_err(|e| ServeError::Description(format!("agency {:?}: {e}", description.agency)))?;
    if description.record_types.is_empty() {
        return Err(ServeError::Description("no record types".into()));
    }
    let address = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let serving = format!("agency {agency}: {}", description.record_types.join(", "));
    let attester = tls.attester();
    if let Some(a) = &attester
        && a.agency() != &agency
    {
        return Err(ServeError::Description(format!(
            "the attestation certificate names agency {}, the adapter serves {agency}",
            a.agency()
        )));
    }
    let svc = service::AdapterService::new(adapter, agency, description, attester);
    let tls_config = Arc::new(std::sync::RwLock::new(Arc::new(tls.server_config()?)));
    let crl_watch = tls.watch_crls(tls_config.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AdapterServer<service::AdapterService<A>>>()
        .await;
    // v1 and, for older grpcurl versions, v1alpha.
    let (reflection, reflection_v1alpha) = reflection(&["samverka.adapter.v1.Adapter"])
        .map_err(|e| ServeError::Description(format!("reflection: {e}")))?;
    // The one line that says the adapter is up, and where.
    tracing::info!(%address, "samverka adapter listening on {address} ({serving})");
    let current = move || {
        tls_config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    };
    let served = Server::builder()
        .max_connection_age(MAX_CONNECTION_AGE)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(AdapterServer::new(svc))
        .serve_with_incoming_shutdown(handshakes(listener, current, |tcp| tcp, || {}), shutdown)
        .await
        .map_err(ServeError::Transport);
    if let Some(watch) = crl_watch {
        watch.abort();
    }
    served
}

/// The TLS connections accepted on `listener`, one by one, for tonic to
/// serve, with the bounds of [`accept`]: see [`accept::tls_handshakes`].
pub use accept::tls_handshakes as handshakes;

/// Accepted connections with Nagle's algorithm off: gRPC writes small
/// frames, and Nagle plus delayed ACKs would add tens of milliseconds to
/// each answer. (tonic applies its own TCP settings only to listeners it
/// binds itself.)
pub fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The services every server built with [`reflection`] serves besides its
/// own: the gRPC health service and reflection itself (v1, and v1alpha for
/// older clients such as grpcurl before 1.8.8).
pub const STANDARD_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// gRPC server reflection for a server that serves `services` (fully
/// qualified names) beside the health service and reflection, as v1 and,
/// for older clients such as earlier grpcurl versions, v1alpha.
///
/// Both list `services` and [`STANDARD_SERVICES`], and both resolve every
/// symbol of: samverka's protos, the messages of error details
/// (`google.rpc.ErrorInfo`, `BadRequest`, `RetryInfo`, `Status`, ...,
/// which a refusal carries), the health service's and both reflection
/// versions'. So grpcurl lists, describes and calls every service on the
/// port, and prints a refusal's details decoded, with nothing but the
/// certificates.
#[allow(clippy::type_complexity)]
pub fn reflection(
    services: &[&str],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        services.iter().chain(&STANDARD_SERVICES).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(samverka_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                ),
            |b, name| b.with_service_name(*name),
        )
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
