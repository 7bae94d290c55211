//! Fetching a public document (a key set, a revocation list) over HTTPS
//! for the verifying commands: the server's certificate is trusted under
//! the web PKI's roots and, when given, the verifier's CA (`--ca`, the
//! federation's: a gateway's own public listener presents a federation
//! certificate, a proxy in front of it a public one); https only, ten
//! seconds and 1 MiB at most, no redirects followed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::CliError;

/// Whether `s` names a document on the network rather than a file.
pub fn is_url(s: &str) -> bool {
    s.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        || s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
}

/// The JSON document at `url`; the whole exchange, body included, within
/// ten seconds.
pub async fn get_json(url: &str, ca: Option<&Path>) -> Result<Value, CliError> {
    tokio::time::timeout(Duration::from_secs(10), get(url, ca))
        .await
        .map_err(|_| CliError::Failed(format!("{url}: no answer within 10 s")))?
}

async fn get(url: &str, ca: Option<&Path>) -> Result<Value, CliError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| CliError::Usage(format!("{url}: {e}")))?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(CliError::Usage(format!("{url}: only https:// is fetched")));
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = ca {
        let pem =
            std::fs::read(ca).map_err(|e| CliError::Usage(format!("{}: {e}", ca.display())))?;
        let extra = samverka_adapter::root_store(&pem)
            .map_err(|e| CliError::Usage(format!("{}: {e}", ca.display())))?;
        roots.roots.extend(extra.roots);
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(samverka_adapter::crypto_provider()))
            .with_safe_default_protocol_versions()
            .map_err(CliError::failed)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let answer = client
        .get(uri)
        .await
        .map_err(|e| CliError::Failed(format!("{url}: {}", causes(&e))))?;
    let status = answer.status();
    let body = Limited::new(answer.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| CliError::Failed(format!("{url}: {e}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(CliError::Failed(format!("{url}: HTTP {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| CliError::Failed(format!("{url}: not JSON: {e}")))
}

/// An error and its sources (hyper's client says only "client error").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
