//! The kit's connections to the adapter under test: a tonic client (with
//! or without a client certificate), a raw HTTP/2 client that enforces no
//! deadline of its own, and the request the checks send.

use std::time::Duration;

use samverka_proto::adapter::v1::FetchRecordsRequest;
use samverka_proto::adapter::v1::adapter_client::AdapterClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::KitConfig;

pub(super) async fn client(
    cfg: &KitConfig,
    identity: Option<(&str, &str)>,
) -> Result<AdapterClient<Channel>, String> {
    crate::install_crypto_provider();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cfg.ca_pem))
        .domain_name(cfg.server_name.clone());
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{}", cfg.address))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", cfg.address))?;
    Ok(AdapterClient::new(channel))
}

/// A client over one HTTP/2 connection with no deadline enforcement of its
/// own (tonic's `Channel` stops waiting at the `grpc-timeout` it sends, so
/// an adapter that ignores deadlines would look like one that honours
/// them).
pub(super) async fn raw_client(
    cfg: &KitConfig,
) -> Result<
    AdapterClient<
        impl tonic::client::GrpcService<
            tonic::body::Body,
            ResponseBody = hyper::body::Incoming,
            Error = hyper::Error,
            Future = impl Send,
        > + Clone
        + Send,
    >,
    String,
> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    crate::install_crypto_provider();
    let roots = crate::root_store(cfg.ca_pem.as_bytes()).map_err(|e| format!("CA: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(cfg.gateway_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(cfg.gateway_key_pem.as_bytes())
        .map_err(|e| format!("key: {e}"))?;
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate: {e}"))?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(cfg.server_name.clone()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(&cfg.address)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", cfg.address))?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", cfg.address))?;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| format!("HTTP/2 with {}: {e}", cfg.address))?;
    tokio::spawn(connection);
    let service = tower::service_fn(
        move |request: tonic::codegen::http::Request<tonic::body::Body>| {
            let mut sender = sender.clone();
            async move { sender.send_request(request).await }
        },
    );
    let origin = format!("https://{}", cfg.server_name)
        .parse()
        .map_err(|e| format!("{e}"))?;
    Ok(AdapterClient::with_origin(service, origin))
}

pub(super) fn fetch(subject: &str, types: &[String]) -> tonic::Request<FetchRecordsRequest> {
    let mut request = tonic::Request::new(FetchRecordsRequest {
        subject_id: subject.to_owned(),
        record_types: types.to_vec(),
        purpose: "conformance_check".into(),
        consent_id: "conformance-check".into(),
        requesting_agency: String::new(),
        audit_ref: String::new(),
        attest: None,
    });
    request.set_timeout(Duration::from_secs(5));
    request
}
