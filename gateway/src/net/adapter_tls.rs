//! TLS towards adapters: the gateway's client identity, the trust bundle,
//! and a check that the adapter at a configured address really is the
//! agency the routing table names.
//!
//! The usual server-certificate check (chain to the trust bundle, validity,
//! the configured server name) is not enough here: any adapter's
//! certificate from the same CA would pass it, and the records it returned
//! would be labelled with the configured agency. So the verifier also reads
//! the certificate's samverka identity and requires the `adapter` role and
//! the configured organisation number; a mismatch fails the handshake, and
//! the source's outcome says `UNAVAILABLE`.
//!
//! The adapter's certificate is also checked against the same CRLs as the
//! agencies' (`gateway.crls`, reloaded with them by [`crate::net::tls`]):
//! a revoked adapter, or one whose issuer no list covers, fails the
//! handshake of every new connection to it; a stale list is used or not as
//! `gateway.stale_crl` says.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use samverka_certs::{CertIdentity, OrgNumber, Role};

use crate::net::tls::crl::StaleCrlPolicy;

/// The gateway's TLS material towards adapters.
#[derive(Debug)]
pub struct AdapterTlsMaterial {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    stale_crl: StaleCrlPolicy,
}

impl AdapterTlsMaterial {
    /// From PEM text: the trust bundle, and the gateway's client
    /// certificate (chain) and key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let roots = samverka_adapter::root_store(ca_pem.as_bytes())
            .map_err(|e| format!("trust bundle: {e}"))?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("client key: {e}"))?;
        Ok(AdapterTlsMaterial {
            roots: Arc::new(roots),
            chain,
            key,
            crls: Vec::new(),
            stale_crl: StaleCrlPolicy::default(),
        })
    }

    /// The same material, also refusing adapters' certificates that these
    /// CRLs revoke, and (when any are given) those whose issuer none of
    /// them covers; a list past its `nextUpdate` is used with
    /// [`StaleCrlPolicy::Warn`] and covers nothing with
    /// [`StaleCrlPolicy::Refuse`].
    pub fn with_crls(
        mut self,
        crls: Vec<CertificateRevocationListDer<'static>>,
        stale_crl: StaleCrlPolicy,
    ) -> Self {
        self.crls = crls;
        self.stale_crl = stale_crl;
        self
    }

    /// The attestation certificate `cert_der` chains to the trust bundle
    /// for signing, valid now and not revoked by the CRLs (a stale list
    /// refuses under [`StaleCrlPolicy::Refuse`]).
    pub fn check_attester(&self, cert_der: &[u8]) -> Result<(), String> {
        crate::credential::attestation::check_chain(
            cert_der,
            &self.roots,
            &self.crls,
            self.stale_crl == StaleCrlPolicy::Refuse,
            crate::credential::attestation::now_seconds(),
        )
    }

    /// A client configuration that accepts only the adapter of `agency`.
    pub fn client_config(&self, agency: &OrgNumber) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut inner =
            WebPkiServerVerifier::builder(self.roots.clone()).with_crls(self.crls.clone());
        if self.stale_crl == StaleCrlPolicy::Refuse {
            inner = inner.enforce_revocation_expiration();
        }
        let inner = inner.build().map_err(|e| e.to_string())?;
        let verifier = Arc::new(AdapterVerifier {
            inner,
            expected: agency.clone(),
        });
        let mut config = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The standard server-certificate check, plus the samverka identity of
/// the adapter.
#[derive(Debug)]
struct AdapterVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: OrgNumber,
}

impl ServerCertVerifier for AdapterVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| {
                tracing::warn!(expected = %self.expected, error = %e, "adapter certificate refused");
            })?;
        match CertIdentity::from_der(end_entity) {
            Ok(id) if id.role == Role::Adapter && id.agency == self.expected => Ok(verified),
            Ok(id) => {
                tracing::error!(expected = %self.expected, agency = %id.agency, role = %id.role, "adapter certificate names another agency or role; refused");
                Err(rustls::Error::General(format!(
                    "adapter certificate is for {} ({}), not {}",
                    id.agency, id.role, self.expected
                )))
            }
            Err(e) => Err(rustls::Error::General(format!("adapter certificate: {e}"))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
