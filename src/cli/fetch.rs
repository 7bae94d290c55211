//! Fetching a public document (a key set, a revocation list) over HTTPS
//! for the verifying commands: the web PKI's roots, or a CA of the
//! verifier's choosing (`--ca`, e.g. a federation's or the demo's);
//! https only, ten seconds and 1 MiB at most, no redirects followed.

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
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca {
        Some(ca) => {
            let pem =
                std::fs::read(ca).map_err(|e| CliError::Usage(format!("{}: {e}", ca.display())))?;
            let roots = samverka_adapter::root_store(&pem)
                .map_err(|e| CliError::Usage(format!("{}: {e}", ca.display())))?;
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                samverka_adapter::crypto_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(CliError::failed)?
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder.with_tls_config(config)
        }
        None => builder
            .with_provider_and_webpki_roots(samverka_adapter::crypto_provider())
            .map_err(CliError::failed)?,
    };
    let connector = builder.https_only().enable_http1().build();
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
