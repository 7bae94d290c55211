//! Builds the gateway from its configuration and serves it.
//!
//! The gRPC port requires a client certificate that chains to the
//! configured CA and is not revoked (see [`crate::net::tls`]); a client without
//! one, or with one from another CA, fails the handshake before any
//! service code runs. The services share one [`Gateway`].

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use samverka_proto::admin::v1::registry_server::RegistryServer;
use samverka_proto::v1::access_log_server::AccessLogServer;
use samverka_proto::v1::consents_server::ConsentsServer;
use samverka_proto::v1::record_exchange_server::RecordExchangeServer;
use samverka_proto::v1::self_declared_merit_service_server::SelfDeclaredMeritServiceServer;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::{Config, ConfigError};
use crate::service::access_log::AccessLogService;
use crate::service::consents::ConsentsService;
use crate::service::exchange::RecordExchangeService;
use crate::service::merits::MeritsService;
use crate::service::registry::RegistryService;
use crate::service::rpc::RequestLimit;
use crate::state::{Gateway, StartError};
use crate::time::Clock;

/// The gateway's gRPC services by their full names, as the health and
/// reflection services list them.
const SERVICES: [&str; 5] = [
    <RecordExchangeServer<RecordExchangeService> as NamedService>::NAME,
    <ConsentsServer<ConsentsService> as NamedService>::NAME,
    <AccessLogServer<AccessLogService> as NamedService>::NAME,
    <SelfDeclaredMeritServiceServer<MeritsService> as NamedService>::NAME,
    <RegistryServer<RegistryService> as NamedService>::NAME,
];

/// Sets the gRPC health status of the server (`""`) and of each service.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in std::iter::once("").chain(SERVICES) {
        health.set_service_status(name, status).await;
    }
}

/// How often the gRPC health service's statuses follow [`Gateway::ready`].
const HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the gRPC health service's statuses at SERVING while the gateway
/// is ready and NOT_SERVING while it is not, as `/readyz` on the admin
/// listener says, and the metric `samverka_ready` at 1 or 0.
async fn follow_readiness(gateway: Arc<Gateway>, health: HealthReporter) {
    let mut serving = true;
    let mut ticker = tokio::time::interval(HEALTH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ready = gateway.ready().await;
        gateway.metrics.ready(ready.is_ok());
        if ready.is_ok() == serving {
            continue;
        }
        serving = ready.is_ok();
        let status = match ready {
            Ok(()) => {
                tracing::info!("ready again: gRPC health says SERVING");
                ServingStatus::Serving
            }
            Err(why) => {
                tracing::warn!(%why, "not ready: gRPC health says NOT_SERVING");
                ServingStatus::NotServing
            }
        };
        set_health(&health, status).await;
    }
}

/// Serves the gateway on `listener` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let max_request = gateway.config.limits.max_request_bytes;
    let metrics = gateway.metrics.clone();
    // Streams that would run until the caller hangs up end when the drain
    // starts.
    let stopping = gateway.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.stopping.send_replace(true);
    };
    // Health (grpc.health.v1) and reflection (so that grpcurl works) sit on
    // the same mTLS port; they reveal the schema and liveness, no records.
    // Reflection lists SERVICES, health and itself, and serves the
    // descriptors of error details too, so that a client decodes a
    // refusal's ErrorInfo, BadRequest and RetryInfo (tests/grpcurl.rs).
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    let (reflection, reflection_v1alpha) = samverka_adapter::reflection(&SERVICES)
        .map_err(|e| StartError::Tls(format!("reflection: {e}")))?;
    let readiness = tokio::spawn(follow_readiness(gateway.clone(), health));
    // TLS is done by `tls::incoming` (so that certificates and CRLs can
    // be reloaded); the watcher renews them while this server runs.
    let watcher = gateway.server_tls.watch();
    let limits = &gateway.config.limits;
    let max_response = limits.max_response_bytes;
    let max_registry = max_request.max(max_response);
    let served = grpc_server(limits)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        // A request over max_request is refused by RequestLimit, with
        // MESSAGE_TOO_LARGE, before tonic's own limit (OUT_OF_RANGE) sees it.
        .add_service(RequestLimit::new(
            RecordExchangeServer::new(RecordExchangeService::new(gateway.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(max_response),
            gateway.metrics.clone(),
            max_request,
        ))
        .add_service(RequestLimit::new(
            ConsentsServer::new(ConsentsService::new(gateway.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(max_response),
            gateway.metrics.clone(),
            max_request,
        ))
        .add_service(RequestLimit::new(
            AccessLogServer::new(AccessLogService::new(gateway.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(max_response),
            gateway.metrics.clone(),
            max_request,
        ))
        .add_service(RequestLimit::new(
            SelfDeclaredMeritServiceServer::new(MeritsService::new(gateway.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(max_response),
            gateway.metrics.clone(),
            max_request,
        ))
        // A whole registry document (key sets written in) outgrows an
        // ordinary request: operators may send as much as answers carry.
        .add_service(RequestLimit::new(
            RegistryServer::new(RegistryService::new(gateway.clone()))
                .max_decoding_message_size(max_registry)
                .max_encoding_message_size(max_response),
            gateway.metrics.clone(),
            max_registry,
        ))
        .serve_with_incoming_shutdown(
            crate::net::tls::incoming(listener, gateway.server_tls.clone(), metrics),
            shutdown,
        )
        .await
        .map_err(StartError::Transport);
    watcher.abort();
    readiness.abort();
    served
}

/// tonic's server with the HTTP/2 settings of `limits`: the gateway's
/// gRPC port, and the relay that measures the stack under it
/// (`bench/src/bin/relay.rs`).
pub fn grpc_server(limits: &crate::config::Limits) -> Server {
    Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_connection_age(limits.max_connection_age)
}

/// `samverka serve`: load the config, bind its address, serve until Ctrl-C
/// or SIGTERM, then give in-flight requests a bounded time to finish.
///
/// Telemetry (logs, and traces when `[telemetry]` or the environment names
/// an OTLP endpoint) is set up from the configuration first; spans still
/// pending are exported before it returns.
pub async fn run(config_path: &Path) -> Result<(), StartError> {
    let config = Config::load(config_path).map_err(StartError::Config)?;
    let telemetry = samverka_adapter::telemetry::init(&config.telemetry).map_err(|reason| {
        StartError::Config(ConfigError {
            file: Some(config_path.to_owned()),
            line: None,
            key: "telemetry".into(),
            reason,
        })
    })?;
    if telemetry.tracing() {
        tracing::info!(
            endpoint = config
                .telemetry
                .effective_endpoint(|v| std::env::var(v).ok())
                .unwrap_or_default(),
            "exporting traces over OTLP"
        );
    }
    let result = run_config(config).await;
    telemetry.shutdown();
    result
}

async fn run_config(config: Config) -> Result<(), StartError> {
    let address = config.gateway.address;
    let gateway = Gateway::new(config, Clock::system()).await?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| StartError::Bind(format!("cannot listen on {address}: {e}")))?;
    let admin_address = gateway.config.gateway.admin_address;
    let admin = TcpListener::bind(admin_address)
        .await
        .map_err(|e| StartError::Bind(format!("cannot listen on {admin_address} (admin): {e}")))?;
    let admin_address = admin.local_addr().unwrap_or(admin_address);
    tokio::spawn(crate::admin::serve_admin(
        gateway.clone(),
        admin,
        std::future::pending(),
    ));
    if let Some(public_address) = gateway.config.gateway.public_address {
        let public = TcpListener::bind(public_address).await.map_err(|e| {
            StartError::Bind(format!("cannot listen on {public_address} (public): {e}"))
        })?;
        tracing::info!(address = %public.local_addr().unwrap_or(public_address), "public listener (key set, revocation list)");
        tokio::spawn(crate::public::serve_public(
            gateway.clone(),
            public,
            std::future::pending(),
        ));
    }
    // With port 0 in the config the OS picks the port; log the real one.
    let address = listener.local_addr().unwrap_or(address);
    #[cfg(feature = "unaudited-benchmark")]
    tracing::error!(
        "built with the unaudited-benchmark feature: NO AUDIT ENTRIES ARE WRITTEN; for benchmarks only"
    );
    tracing::info!(%address, %admin_address, adapters = gateway.registry.current().adapters.len(), "samverka gateway serving");
    let audit = gateway.audit.clone();
    let served = samverka_adapter::until_signal_then_drain(
        |stop| serve(gateway, listener, stop),
        samverka_adapter::DRAIN_TIMEOUT,
    )
    .await
    .unwrap_or(Ok(()));
    // The trail's last entries and checkpoint, before the process exits.
    audit.close().await;
    served?;
    tracing::info!("samverka gateway stopped");
    Ok(())
}
