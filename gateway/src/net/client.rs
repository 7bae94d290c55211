//! mTLS channels to a samverka gateway, for agency systems written in Rust,
//! the demo and the tests.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// An agency's TLS material: the trust anchor and its client certificate.
#[derive(Debug, Clone)]
pub struct AgencyTls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The agency's certificate, PEM.
    pub cert_pem: String,
    /// The agency's key, PEM.
    pub key_pem: String,
}

impl AgencyTls {
    /// Reads the three PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> std::io::Result<Self> {
        Ok(AgencyTls {
            ca_pem: std::fs::read_to_string(ca)?,
            cert_pem: std::fs::read_to_string(cert)?,
            key_pem: std::fs::read_to_string(key)?,
        })
    }
}

/// Connects to the gateway at `address` (`host:port`) over mTLS, expecting
/// its certificate to be valid for `server_name`.
///
/// With TLS 1.3 the connection succeeds even when the gateway will refuse
/// the client certificate; the refusal shows on the first call.
pub async fn connect(
    address: &str,
    server_name: &str,
    tls: &AgencyTls,
) -> Result<Channel, tonic::transport::Error> {
    samverka_adapter::install_crypto_provider();
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .domain_name(server_name);
    if !tls.cert_pem.is_empty() {
        config = config.identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    }
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(config)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}
