//! Step 1 of a request: the TLS handshake on the agency-facing port, with
//! samverka's TLS policy, certificate revocation, and reload without a
//! restart.
//!
//! - **Policy**: TLS 1.3 and TLS 1.2, ECDHE key exchange with AEAD cipher
//!   suites only (the aws-lc-rs provider's defaults), the post-quantum
//!   hybrid X25519MLKEM768 preferred: chosen whenever the client sends a
//!   key share for it (clients that prefer it do); a client that sends
//!   only an X25519 share gets X25519 rather than an extra round trip. ALPN
//!   `h2`. A client certificate
//!   is required and must chain to the trust bundle (`gateway.ca_cert`),
//!   be within its validity and carry the client-authentication usage; its
//!   samverka role is checked after the handshake ([`crate::pipeline::identity`]).
//! - **Revocation**: the CRLs named in `gateway.crls` ([`crl`]) are checked
//!   at every handshake on both hops: agencies' client certificates here,
//!   adapters' server certificates when the gateway connects to them
//!   ([`crate::net::adapter_tls`]). A revoked certificate is refused, and
//!   so is one whose issuer has no CRL among them when any are configured
//!   (fail closed). A list whose `nextUpdate` has passed is stale: with
//!   `gateway.stale_crl = "refuse"` (the default) it no longer covers its
//!   issuer, so the certificates it covers are refused on both hops and
//!   [`ServerTls::check_crls`] makes the gateway not ready; with `"warn"`
//!   it is still used. Either way `samverka_crl_stale` says so and one log
//!   line per stale list.
//! - **Reload**: the certificate, key, trust bundle and CRLs, and the
//!   gateway's client certificate and key towards adapters, are read again
//!   when one of the files changes (checked every two seconds) or on
//!   SIGHUP. New handshakes, with agencies and with adapters, use the new
//!   material (the same CRLs on both hops), and what the gateway signs from
//!   then on (receipts, checkpoints, passports) is signed with the new key;
//!   established connections and their requests go on (agency connections
//!   until `limits.max_connection_age_s`; connections to an adapter until
//!   it or the network closes them, see `docs/operations.md`). A file that
//!   does not load (a broken CRL, a key that does not match) is refused
//!   with a log line, and the material in use is kept.
//!
//! The handshake is done here rather than by tonic, so that the material
//! can change under a running server; tonic gets the established TLS
//! streams and reads the client's certificates from them.

pub mod crl;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;

use crate::credential::signing::{JwsSigner, SignerSlot};
use crate::metrics::{CountedConnection, Metrics};
use crate::net::adapter_tls::AdapterTlsMaterial;
use crl::{CrlInfo, Crls, StaleCrlPolicy};

/// How often the files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The files the agency-facing TLS is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The gateway's server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The trust bundle for client certificates (PEM, one or more CAs).
    pub ca: PathBuf,
    /// Certificate revocation lists (PEM).
    pub crls: Vec<PathBuf>,
    /// The gateway's client certificate towards adapters (PEM).
    pub client_cert: PathBuf,
    /// Its key (PEM).
    pub client_key: PathBuf,
    /// The operator's organisation number, named in what the gateway
    /// signs with `cert` and `key`.
    pub issuer: String,
    /// What to do with a CRL whose `nextUpdate` has passed.
    pub stale_crl: StaleCrlPolicy,
}

impl TlsFiles {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [
            &self.cert,
            &self.key,
            &self.ca,
            &self.client_cert,
            &self.client_key,
        ]
        .into_iter()
        .chain(self.crls.iter())
    }

    /// What the files look like now (modification time and length), to
    /// notice a change.
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.all()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The CRLs of `files`, read once for both hops.
fn load_crls(files: &TlsFiles) -> Result<Crls, String> {
    let provider = Arc::new(samverka_adapter::crypto_provider());
    let roots = samverka_adapter::root_store(&read(&files.ca)?)
        .map_err(|e| format!("{}: {e}", files.ca.display()))?;
    crl::load(&files.crls, &Arc::new(roots), &provider)
}

/// Builds the server configuration from `files`.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    server_config_with(files, &load_crls(files)?)
}

/// The server configuration from `files`, checking client certificates
/// against `crls` (which [`load_crls`] read from `files`).
fn server_config_with(files: &TlsFiles, crls: &Crls) -> Result<ServerConfig, String> {
    let provider = Arc::new(samverka_adapter::crypto_provider());
    let roots = samverka_adapter::root_store(&read(&files.ca)?)
        .map_err(|e| format!("{}: {e}", files.ca.display()))?;
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(crls.lists.clone());
    if files.stale_crl == StaleCrlPolicy::Refuse {
        verifier = verifier.enforce_revocation_expiration();
    }
    let verifier = verifier
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let (chain, key) = identity(files)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The gateway's identity towards adapters, from `files`, checking the
/// adapters' certificates against `crls`.
fn adapter_material(files: &TlsFiles, crls: &Crls) -> Result<AdapterTlsMaterial, String> {
    let text =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    Ok(AdapterTlsMaterial::from_pem(
        &text(&files.ca)?,
        &text(&files.client_cert)?,
        &text(&files.client_key)?,
    )
    .map_err(|e| format!("{}: {e}", files.client_cert.display()))?
    .with_crls(crls.lists.clone(), files.stale_crl))
}

/// Everything made of the files at one moment: both hops' TLS material,
/// built from the same CRLs, and what those lists say about themselves.
struct Material {
    server: Arc<ServerConfig>,
    public: Arc<ServerConfig>,
    adapters: Arc<AdapterTlsMaterial>,
    crls: Arc<Vec<CrlInfo>>,
}

/// The gateway's server certificate chain and key.
fn identity(
    files: &TlsFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    Ok((chain, key))
}

/// The public listener's configuration: the same certificate and key,
/// no client certificate asked for, HTTP/1.1.
fn public_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let (chain, key) = identity(files)?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(samverka_adapter::crypto_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("{}: {e}", files.key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn material(files: &TlsFiles) -> Result<Material, String> {
    let crls = load_crls(files)?;
    Ok(Material {
        public: Arc::new(public_config(files)?),
        server: Arc::new(server_config_with(files, &crls)?),
        adapters: Arc::new(adapter_material(files, &crls)?),
        crls: Arc::new(crls.info),
    })
}

/// The TLS material in use (towards agencies and towards adapters), and how
/// to renew it.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    public: RwLock<Arc<ServerConfig>>,
    adapters: RwLock<Arc<AdapterTlsMaterial>>,
    crls: RwLock<Arc<Vec<CrlInfo>>>,
    /// The stale lists already logged, so that each is logged once.
    stale_logged: Mutex<Vec<CrlInfo>>,
    signer: Arc<SignerSlot>,
    stamp: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

/// The value behind `lock`, even if a thread panicked holding it.
fn get<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .map(|c| c.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

fn set<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut c) => *c = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

/// The signer made of the server certificate and key of `files`.
fn signer(files: &TlsFiles) -> Result<JwsSigner, String> {
    let text =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    JwsSigner::from_pem(&text(&files.cert)?, &text(&files.key)?, &files.issuer)
        .map_err(|e| format!("{}: {e}", files.key.display()))
}

impl ServerTls {
    /// Loads `files`; an error names the file and what is wrong. `signer`
    /// (made of the same certificate and key) is replaced on each reload.
    pub fn load(files: TlsFiles, signer: Arc<SignerSlot>) -> Result<Arc<ServerTls>, String> {
        let stamp = files.stamp();
        let Material {
            server,
            public,
            adapters,
            crls,
        } = material(&files)?;
        Ok(Arc::new(ServerTls {
            files,
            current: RwLock::new(server),
            public: RwLock::new(public),
            adapters: RwLock::new(adapters),
            crls: RwLock::new(crls),
            stale_logged: Mutex::new(Vec::new()),
            signer,
            stamp: Mutex::new(stamp),
        }))
    }

    /// The identity new connections to adapters use, and the CRLs they
    /// check adapters' certificates against.
    pub fn adapter_material(&self) -> Arc<AdapterTlsMaterial> {
        get(&self.adapters)
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        get(&self.current)
    }

    /// The configuration of the public listener's new handshakes.
    pub fn public(&self) -> Arc<ServerConfig> {
        get(&self.public)
    }

    /// What the CRLs in use say about themselves.
    pub fn crls(&self) -> Arc<Vec<CrlInfo>> {
        get(&self.crls)
    }

    /// Whether the CRLs in use cover their issuers now: an error naming
    /// the first stale list when `gateway.stale_crl = "refuse"` (the
    /// gateway is then not ready: the certificates it covers are refused
    /// on both hops). Each list found stale is logged once, with either
    /// policy.
    pub fn check_crls(&self) -> Result<(), String> {
        let now = crl::unix_now();
        let stale: Vec<CrlInfo> = self
            .crls()
            .iter()
            .filter(|c| c.stale_at(now))
            .cloned()
            .collect();
        let policy = self.files.stale_crl;
        if let Ok(mut logged) = self.stale_logged.lock() {
            for c in stale.iter().filter(|c| !logged.contains(c)) {
                let (file, next_update) = (c.file.display(), c.next_update_text());
                match policy {
                    StaleCrlPolicy::Warn => tracing::warn!(
                        %file, issuer = %c.issuer, %next_update,
                        "certificate revocation list is stale (its nextUpdate has passed); still used, as gateway.stale_crl = \"warn\" says: a certificate revoked since it was signed is not known to be revoked"
                    ),
                    StaleCrlPolicy::Refuse => tracing::error!(
                        %file, issuer = %c.issuer, %next_update,
                        "certificate revocation list is stale (its nextUpdate has passed); the certificates it covers are refused and the gateway is not ready, as gateway.stale_crl = \"refuse\" says"
                    ),
                }
            }
            logged.clone_from(&stale);
        }
        match (policy, stale.first()) {
            (StaleCrlPolicy::Refuse, Some(c)) => Err(format!(
                "certificate revocation list {} (issuer {}) is stale: its nextUpdate {} has passed; the certificates it covers are refused (gateway.stale_crl = \"refuse\")",
                c.file.display(),
                c.issuer,
                c.next_update_text()
            )),
            _ => Ok(()),
        }
    }

    /// Reports the CRLs in use in `metrics` (`samverka_crl_*`), as long as
    /// this material lives.
    pub fn report_crls_to(self: &Arc<Self>, metrics: &Metrics) {
        let tls = Arc::downgrade(self);
        metrics.watch_crls(move || {
            tls.upgrade()
                .map(|tls| {
                    tls.crls()
                        .iter()
                        .map(|c| (c.issuer.clone(), c.next_update))
                        .collect()
                })
                .unwrap_or_default()
        });
    }

    /// Reads the files again; on success new handshakes use them, on
    /// failure the material in use stays and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let stamp = self.files.stamp();
        if let Ok(mut s) = self.stamp.lock() {
            *s = stamp;
        }
        // All or nothing.
        let Material {
            server,
            public,
            adapters,
            crls,
        } = material(&self.files)?;
        let new_signer = signer(&self.files)?;
        self.signer
            .replace(new_signer)
            .map_err(|e| format!("{}: {e}", self.files.cert.display()))?;
        set(&self.current, server);
        set(&self.public, public);
        set(&self.adapters, adapters);
        set(&self.crls, crls);
        Ok(())
    }

    /// Whether a file changed since the last load or reload.
    fn changed(&self) -> bool {
        let now = self.files.stamp();
        self.stamp.lock().map(|s| *s != now).unwrap_or(true)
    }

    fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(why, "TLS material reloaded"),
            Err(e) => tracing::error!(
                why,
                error = %e,
                "TLS material NOT reloaded: the new files were refused, the material in use is kept"
            ),
        }
    }

    /// Reloads on SIGHUP and when a file changes, until the process ends.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<()>();
                let why = tokio::select! {
                    () = signalled => "SIGHUP",
                    () = tokio::time::sleep(WATCH_INTERVAL) => "file changed",
                };
                let Some(tls) = tls.upgrade() else { return };
                if why == "SIGHUP" || tls.changed() {
                    tls.reload_and_log(why);
                }
            }
        })
    }
}

/// The connections accepted on `listener` that completed a handshake with
/// the material in use at the time, within the bounds of
/// [`crate::net::accept::tls_handshakes`] (a timeout and a cap on
/// handshakes in progress), each counted in the metrics while it is open;
/// refused and unfinished handshakes are counted too.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    metrics: Metrics,
) -> impl futures_util::Stream<
    Item = Result<
        samverka_adapter::coalesce::Coalesced<TlsStream<CountedConnection<tokio::net::TcpStream>>>,
        std::io::Error,
    >,
> {
    let counted = metrics.clone();
    crate::net::accept::tls_handshakes(
        listener,
        move || tls.current(),
        move |tcp| counted.connection(tcp),
        move || metrics.handshake_failed(),
    )
}
