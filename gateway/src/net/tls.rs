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
//! - **Revocation**: the CRLs named in `gateway.crls` are checked at every
//!   handshake; a revoked certificate is refused, and so is one whose
//!   issuer has no CRL among them when any are configured (fail closed).
//! - **Reload**: the certificate, key, trust bundle and CRLs, and the
//!   gateway's client certificate and key towards adapters, are read again
//!   when one of the files changes (checked every two seconds) or on
//!   SIGHUP. New handshakes, with agencies and with adapters, use the new
//!   material, and what the gateway signs from then on (receipts,
//!   checkpoints, passports) is signed with the new key; established
//!   connections and their requests go on. A file that does not load (a broken CRL, a
//!   key that does not match) is refused with a log line, and the material
//!   in use is kept.
//!
//! The handshake is done here rather than by tonic, so that the material
//! can change under a running server; tonic gets the established TLS
//! streams and reads the client's certificates from them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;

use crate::credential::signing::{JwsSigner, SignerSlot};
use crate::metrics::{CountedConnection, Metrics};
use crate::net::adapter_tls::AdapterTlsMaterial;

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

/// Builds the server configuration from `files`.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let provider = Arc::new(samverka_adapter::crypto_provider());
    let roots = samverka_adapter::root_store(&read(&files.ca)?)
        .map_err(|e| format!("{}: {e}", files.ca.display()))?;
    let roots = Arc::new(roots);
    let mut crls = Vec::new();
    for path in &files.crls {
        let in_file = CertificateRevocationListDer::pem_slice_iter(&read(path)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if in_file.is_empty() {
            return Err(format!(
                "{}: no certificate revocation list",
                path.display()
            ));
        }
        // Each file on its own first, so that an error names it.
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(in_file.clone())
            .build()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        crls.extend(in_file);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The gateway's identity towards adapters, from `files`.
fn adapter_material(files: &TlsFiles) -> Result<AdapterTlsMaterial, String> {
    let text =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    AdapterTlsMaterial::from_pem(
        &text(&files.ca)?,
        &text(&files.client_cert)?,
        &text(&files.client_key)?,
    )
    .map_err(|e| format!("{}: {e}", files.client_cert.display()))
}

/// The TLS material in use (towards agencies and towards adapters), and how
/// to renew it.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    adapters: RwLock<Arc<AdapterTlsMaterial>>,
    signer: Arc<SignerSlot>,
    stamp: Mutex<Vec<Option<(SystemTime, u64)>>>,
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
        let config = server_config(&files)?;
        let adapters = adapter_material(&files)?;
        Ok(Arc::new(ServerTls {
            files,
            current: RwLock::new(Arc::new(config)),
            adapters: RwLock::new(Arc::new(adapters)),
            signer,
            stamp: Mutex::new(stamp),
        }))
    }

    /// The identity new connections to adapters use.
    pub fn adapter_material(&self) -> Arc<AdapterTlsMaterial> {
        self.adapters
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Reads the files again; on success new handshakes use them, on
    /// failure the material in use stays and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let stamp = self.files.stamp();
        if let Ok(mut s) = self.stamp.lock() {
            *s = stamp;
        }
        // All or nothing.
        let config = Arc::new(server_config(&self.files)?);
        let adapters = Arc::new(adapter_material(&self.files)?);
        let new_signer = signer(&self.files)?;
        self.signer.replace(new_signer);
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        match self.adapters.write() {
            Ok(mut c) => *c = adapters,
            Err(poisoned) => *poisoned.into_inner() = adapters,
        }
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
/// the material in use at the time (see [`samverka_adapter::handshakes`]),
/// each counted in the metrics while it is open; refused handshakes are
/// counted too.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    metrics: Metrics,
) -> impl futures_util::Stream<
    Item = Result<TlsStream<CountedConnection<tokio::net::TcpStream>>, std::io::Error>,
> {
    let counted = metrics.clone();
    samverka_adapter::handshakes(
        listener,
        move || tls.current(),
        move |tcp| counted.connection(tcp),
        move || metrics.handshake_failed(),
    )
}
