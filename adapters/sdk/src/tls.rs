//! [`AdapterTls`]: an adapter's TLS material (its certificate and key, the
//! CA of the gateway's client certificate, the CRLs) as a rustls server
//! configuration with samverka's policy, and the CRL files watched while
//! the adapter serves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::{ServeError, crypto_provider, root_store};

/// The adapter's TLS material: its server certificate and key, the CA
/// that issued the gateway's client certificate, and optionally the CA's
/// certificate revocation lists (a revoked gateway certificate is then
/// refused at the handshake, and so is one whose issuer no list covers).
///
/// CRL files given with [`AdapterTls::with_crl_files`] are watched while
/// the adapter serves: when one changes (checked every
/// [`CRL_WATCH_INTERVAL`]) they are read again and new handshakes use
/// them; a file that does not load is refused with a log line and the
/// lists in use are kept. A list past its `nextUpdate` is still used.
#[derive(Clone)]
pub struct AdapterTls {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
    crl_pems: Vec<String>,
    crl_files: Vec<std::path::PathBuf>,
    attester: Option<Arc<crate::credential::Attester>>,
}

/// How often an adapter checks its CRL files for changes.
pub const CRL_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// A connection from the gateway is closed (gracefully: its requests
/// finish, the gateway reconnects at once) after this long, so that every
/// connection is handshaken again at least this often: a certificate
/// revoked since, the gateway's at this adapter or the adapter's at the
/// gateway, is refused then at the latest (new connections see a new CRL
/// at once). The same bound as the gateway's `limits.max_connection_age_s`
/// default.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);

impl std::fmt::Debug for AdapterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterTls").finish_non_exhaustive()
    }
}

impl AdapterTls {
    /// From PEM text.
    pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Self {
        AdapterTls {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            ca_pem: ca_pem.to_owned(),
            crl_pems: Vec::new(),
            crl_files: Vec::new(),
            attester: None,
        }
    }

    /// The same material with the agency's attestation key: the adapter
    /// then attests each record of a passport read
    /// ([`crate::credential`]).
    pub fn with_attester(mut self, attester: crate::credential::Attester) -> Self {
        self.attester = Some(Arc::new(attester));
        self
    }

    /// [`AdapterTls::with_attester`] from the certificate and key files.
    pub fn with_attester_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ServeError> {
        let attester = crate::credential::Attester::from_files(cert.as_ref(), key.as_ref())
            .map_err(ServeError::Io)?;
        Ok(self.with_attester(attester))
    }

    /// The attestation key, if any.
    pub(crate) fn attester(&self) -> Option<Arc<crate::credential::Attester>> {
        self.attester.clone()
    }

    /// The same material, also refusing the certificates these CRL files
    /// (PEM) revoke; the files are read again when they change, while the
    /// adapter serves.
    pub fn with_crl_files(mut self, crls: &[impl AsRef<Path>]) -> Result<Self, ServeError> {
        for path in crls {
            let path = path.as_ref();
            self.crl_pems.push(
                std::fs::read_to_string(path)
                    .map_err(|e| ServeError::Io(format!("{}: {e}", path.display())))?,
            );
            self.crl_files.push(path.to_owned());
        }
        Ok(self)
    }

    /// The same material with the CRL files read again.
    fn with_crls_reread(&self) -> Result<Self, ServeError> {
        let files = self.crl_files.clone();
        AdapterTls {
            crl_pems: Vec::new(),
            crl_files: Vec::new(),
            ..self.clone()
        }
        .with_crl_files(&files)
    }

    /// What the CRL files look like now (modification time and length).
    fn crl_stamp(&self) -> Vec<Option<(std::time::SystemTime, u64)>> {
        self.crl_files
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }

    /// Reloads the CRL files into `slot` when they change, until aborted;
    /// `None` when there are none.
    pub(crate) fn watch_crls(
        &self,
        slot: Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.crl_files.is_empty() {
            return None;
        }
        let tls = self.clone();
        Some(tokio::spawn(async move {
            let mut seen = tls.crl_stamp();
            loop {
                tokio::time::sleep(CRL_WATCH_INTERVAL).await;
                let now = tls.crl_stamp();
                if now == seen {
                    continue;
                }
                seen = now;
                match tls.with_crls_reread().and_then(|t| t.server_config()) {
                    Ok(config) => {
                        let config = Arc::new(config);
                        match slot.write() {
                            Ok(mut c) => *c = config,
                            Err(poisoned) => *poisoned.into_inner() = config,
                        }
                        tracing::info!("certificate revocation lists reloaded");
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "certificate revocation lists NOT reloaded: the new files were refused, the lists in use are kept"
                    ),
                }
            }
        }))
    }

    /// The rustls server configuration: samverka's TLS policy
    /// ([`crypto_provider`]), a client certificate from the CA required and
    /// checked against the CRLs, ALPN h2.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, ServeError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
        let bad = |what: &str, e: &dyn std::fmt::Display| ServeError::Io(format!("{what}: {e}"));
        let provider = std::sync::Arc::new(crypto_provider());
        let roots = root_store(self.ca_pem.as_bytes()).map_err(|e| bad("CA", &e))?;
        let mut crls = Vec::new();
        for pem in &self.crl_pems {
            for crl in CertificateRevocationListDer::pem_slice_iter(pem.as_bytes()) {
                crls.push(crl.map_err(|e| bad("CRL", &e))?);
            }
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .with_crls(crls)
        .build()
        .map_err(|e| bad("client certificate verifier", &e))?;
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", &e))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| bad("key", &e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| bad("TLS versions", &e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| bad("certificate and key", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// From PEM files.
    pub fn from_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<Self, ServeError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| ServeError::Io(format!("{}: {e}", p.display())))
        };
        Ok(Self::from_pem(
            &read(cert.as_ref())?,
            &read(key.as_ref())?,
            &read(ca.as_ref())?,
        ))
    }
}
