//! The gateway's shared state: what every request needs (configuration,
//! store, routing table, audit writer, signer, metrics, clock), built
//! once from the configuration. Every service holds one [`Gateway`].

use std::path::Path;
use std::sync::Arc;

use crate::audit::AuditWriter;
use crate::config::{Config, ConfigError};
use crate::credential::signing::JwsSigner;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::time::Clock;

/// Why the gateway could not start or stopped.
#[derive(Debug)]
pub enum StartError {
    /// The configuration is unusable.
    Config(ConfigError),
    /// A certificate or key file could not be read.
    Tls(String),
    /// The store could not be opened.
    Store(StoreError),
    /// The registry could not be put in force: the file's tables differ
    /// from the store's registry, or its keys or routes are unusable
    /// (`crate::registry::open`).
    Registry(String),
    /// The listen address could not be bound.
    Bind(String),
    /// The gRPC server failed.
    Transport(tonic::transport::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Tls(m) => write!(f, "TLS: {m}"),
            StartError::Store(e) => write!(f, "{e}"),
            StartError::Registry(m) => write!(f, "registry: {m}"),
            StartError::Bind(m) => write!(f, "{m}"),
            StartError::Transport(e) => write!(f, "gRPC server: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Everything a request needs: configuration, store, routing table, clock.
#[derive(Debug)]
pub struct Gateway {
    /// The validated configuration.
    pub config: Config,
    /// Consents and audit.
    pub store: Store,
    /// The registry in force: agencies, purposes, access rules, adapter
    /// routes and identity providers, and what is built from them. Take
    /// one snapshot per request ([`crate::registry::RegistrySlot::current`]).
    pub registry: Arc<crate::registry::RegistrySlot>,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Signs consent receipts and audit checkpoints with the gateway's key.
    pub signer: Arc<crate::credential::signing::SignerSlot>,
    /// Commits audit entries (group commit) and signs checkpoints.
    pub audit: AuditWriter,
    /// What operators scrape.
    pub metrics: Metrics,
    /// Requests per caller: every RPC takes a token
    /// ([`crate::service::rpc::Call::identify`]).
    pub rate: Arc<crate::pipeline::rate::RateLimiter>,
    /// The agency-facing TLS material, reloaded on change.
    pub server_tls: Arc<crate::net::tls::ServerTls>,
    /// Marks consents whose time is up EXPIRED.
    pub expiry: crate::service::consents::expiry::ExpiryTask,
    /// Set once the server starts to stop: long-lived streams
    /// (`WatchConsents`) end, so that the drain does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map_err(|e| StartError::Tls(format!("cannot read {}: {e}", path.display())))
}

/// A gateway dropped without [`crate::server::run`]'s orderly stop (an
/// embedding program, a test) still finishes its audit trail before it goes.
impl Drop for Gateway {
    fn drop(&mut self) {
        self.audit.close_blocking();
    }
}

impl Gateway {
    /// Opens the store, reads the certificates and prepares the channels to
    /// the adapters.
    pub async fn new(config: Config, clock: Clock) -> Result<Arc<Gateway>, StartError> {
        samverka_adapter::install_crypto_provider();
        let g = &config.gateway;
        let (cert_pem, key_pem) = (read(&g.cert)?, read(&g.key)?);
        let signer = JwsSigner::from_pem(&cert_pem, &key_pem, g.org_number.as_str())
            .map_err(|e| StartError::Tls(format!("{}: {e}", g.key.display())))?;
        let signer = Arc::new(crate::credential::signing::SignerSlot::new(signer));
        let server_tls = crate::net::tls::ServerTls::load(
            crate::net::tls::TlsFiles {
                cert: g.cert.clone(),
                key: g.key.clone(),
                ca: g.ca_cert.clone(),
                crls: g.crls.clone(),
                client_cert: g.client_cert.clone(),
                client_key: g.client_key.clone(),
                issuer: g.org_number.to_string(),
                stale_crl: g.stale_crl,
            },
            signer.clone(),
        )
        .map_err(StartError::Tls)?;
        let metrics = Metrics::new();
        server_tls.report_crls_to(&metrics);
        let store = Store::open(&g.store).await.map_err(StartError::Store)?;
        metrics.watch_access_index(store.access_index_progress());
        let audit = AuditWriter::spawn(
            store.for_audit_writer().map_err(StartError::Store)?,
            signer.clone(),
            clock.clone(),
            config.audit.checkpoints,
            metrics.clone(),
        );
        let rate = Arc::new(crate::pipeline::rate::RateLimiter::from_config(
            &config,
            clock.clone(),
        ));
        let (version, tables) = crate::registry::open(&config, &store, &clock)
            .await
            .map_err(|e| match e {
                crate::registry::OpenError::Refused(m) => StartError::Registry(m),
                crate::registry::OpenError::Failed(e) => StartError::Store(e),
            })?;
        // The signing key joins the key set (audited when new) after the
        // registry's own entries, before anything is signed.
        crate::credential::keys::record_at_start(&store, &signer)
            .await
            .map_err(|e| match e {
                crate::credential::keys::StartRefused::Store(e) => StartError::Store(e),
                crate::credential::keys::StartRefused::Retired(why) => {
                    StartError::Tls(format!("{}: {why}", g.cert.display()))
                }
            })?;
        let registry = Arc::new(
            crate::registry::RegistrySlot::new(
                &config,
                server_tls.clone(),
                metrics.clone(),
                rate.clone(),
                version,
                tables,
            )
            .map_err(StartError::Registry)?,
        );
        let stopping = tokio::sync::watch::Sender::new(false);
        crate::registry::follow(
            registry.clone(),
            store.clone(),
            config.clone(),
            clock.clone(),
            stopping.subscribe(),
        );
        let (store_for_expiry, clock_for_expiry) = (store.clone(), clock.clone());
        Ok(Arc::new(Gateway {
            config,
            store,
            registry,
            clock,
            signer,
            audit,
            metrics,
            rate,
            server_tls,
            expiry: crate::service::consents::expiry::spawn(store_for_expiry, clock_for_expiry),
            stopping,
        }))
    }

    /// Whether this gateway can answer reads now: its audit writer commits
    /// ([`AuditWriter::ready`]), its store answers, no CRL in use is
    /// stale when `gateway.stale_crl = "refuse"` says that a stale list
    /// covers nothing ([`crate::net::tls::ServerTls::check_crls`]), and it
    /// follows the store's registry
    /// ([`crate::registry::RegistrySlot::following`]). The error says why
    /// not, for an operator.
    pub async fn ready(&self) -> Result<(), String> {
        self.server_tls.check_crls()?;
        self.registry.following()?;
        self.audit
            .ready()
            .map_err(|e| format!("audit trail unavailable: {e}"))?;
        self.store
            .audit_head()
            .await
            .map(drop)
            .map_err(|e| format!("store unavailable: {e}"))
    }
}
