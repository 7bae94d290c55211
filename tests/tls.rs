//! The TLS policy of the agency-facing port, checked with real rustls
//! clients against a running gateway: TLS 1.3 by default, TLS 1.2 only
//! with ECDHE and AEAD, the post-quantum hybrid key exchange for clients
//! that offer it, ALPN h2, and no handshake without a client certificate.

mod support;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite, kx_group};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::*;

struct Client {
    provider: CryptoProvider,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    with_certificate: bool,
}

impl Client {
    fn new() -> Self {
        Client {
            provider: aws_lc_rs::default_provider(),
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            with_certificate: true,
        }
    }

    /// Handshakes with the gateway as the reader agency.
    async fn handshake(
        self,
        net: &TestNet,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&net.pki.ca_cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let (_, cert, key) = net
            .pki
            .agencies
            .iter()
            .find(|(n, _, _)| n == "reader")
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(self.provider))
            .with_protocol_versions(&self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = if self.with_certificate {
            builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .unwrap()
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(net.gateway_address)
            .await
            .unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        // With TLS 1.3 the server's verdict on the client certificate
        // arrives after the client's handshake: read to see it.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok(tls)
    }
}

#[tokio::test]
async fn tls_1_3_with_the_post_quantum_hybrid_for_a_client_that_offers_it() {
    let net = start().await;
    // As samverka's own clients do (and browsers, and rustls by default).
    let mut client = Client::new();
    client.provider = samverka_adapter::crypto_provider();
    let tls = client.handshake(&net).await.unwrap();
    let session = tls.get_ref().1;
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        session.negotiated_key_exchange_group().map(|g| g.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn a_client_without_the_hybrid_still_gets_ecdhe() {
    let net = start().await;
    for (groups, expected) in [
        (vec![kx_group::X25519], rustls::NamedGroup::X25519),
        (vec![kx_group::SECP256R1], rustls::NamedGroup::secp256r1),
    ] {
        let mut client = Client::new();
        client.provider.kx_groups = groups;
        let tls = client.handshake(&net).await.unwrap();
        assert_eq!(
            tls.get_ref()
                .1
                .negotiated_key_exchange_group()
                .map(|g| g.name()),
            Some(expected)
        );
    }
}

#[tokio::test]
async fn tls_1_2_is_accepted_only_with_ecdhe_and_aead() {
    let net = start().await;
    let mut client = Client::new();
    client.versions = vec![&rustls::version::TLS12];
    client.provider.cipher_suites = vec![cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    let tls = client.handshake(&net).await.unwrap();
    let session = tls.get_ref().1;
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        session.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
    );

    // Every suite the server accepts under TLS 1.2 is ECDHE with an AEAD.
    let mut accepted = Vec::new();
    for suite in aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS12)
    {
        let mut client = Client::new();
        client.versions = vec![&rustls::version::TLS12];
        client.provider.cipher_suites = vec![*suite];
        if client.handshake(&net).await.is_ok() {
            accepted.push(format!("{:?}", suite.suite()));
        }
    }
    assert!(!accepted.is_empty());
    for name in &accepted {
        assert!(
            name.contains("ECDHE") && (name.contains("GCM") || name.contains("CHACHA20_POLY1305")),
            "{name} accepted"
        );
    }
}

#[tokio::test]
async fn no_client_certificate_no_handshake() {
    let net = start().await;
    let mut client = Client::new();
    client.with_certificate = false;
    let err = client.handshake(&net).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Operators see the refusal (counted as the gateway's side ends).
    let mut refused = 0.0;
    for _ in 0..50 {
        let (_, text) = admin_get(net.admin_address, "/metrics").await;
        refused = sample(&text, "samverka_tls_handshake_failures_total", &[]);
        if refused >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused >= 1.0, "refused handshakes not counted");
}
