//! The public listener (`gateway.public_address`): HTTPS with the
//! gateway's own certificate and no client certificate asked for, so that
//! any verifier of a passport or receipt can reach it. It serves only what
//! is public by design, read from the store at each request:
//!
//! - `GET /keys`: the gateway's signing keys, old and current, as a key
//!   set with each key's validity ([`crate::credential::keys`]);
//! - `GET /revocations`: the revocation list passports name as their
//!   status ([`crate::credential::status`]).
//!
//! Each document is made at most every [`FRESH_FOR`] (per replica), so that
//! unauthenticated callers cannot load the store beyond that; an answer
//! says `Cache-Control: max-age=60`, an error `no-store`.
//!
//! It is bounded like the admin listener ([`crate::admin`]): at most
//! [`MAX_CONNECTIONS`] at once, a handshake within [`HANDSHAKE_TIMEOUT`],
//! a header within [`crate::admin::HEADER_TIMEOUT`], and a connection
//! lifetime of [`crate::admin::CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::credential::keys::KeySet;
use crate::net::accept::Listener;
use crate::state::Gateway;

/// At most this many connections at once; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A document is served from memory for this long after it was made.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// The documents made lately: path → (when, body).
type Made = std::sync::Mutex<std::collections::HashMap<&'static str, (std::time::Instant, String)>>;

/// `path`'s document, from memory when made within [`FRESH_FOR`].
async fn document(gateway: &Gateway, made: &Made, path: &'static str) -> Result<String, String> {
    let fresh = made.lock().ok().and_then(|m| {
        m.get(path)
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, body)| body.clone())
    });
    if let Some(body) = fresh {
        return Ok(body);
    }
    let body = match path {
        "/keys" => key_set(gateway).await?,
        _ => revocation_list(gateway).await?,
    }
    .to_string();
    if let Ok(mut m) = made.lock() {
        m.insert(path, (std::time::Instant::now(), body.clone()));
    }
    Ok(body)
}

/// The revocation list, as served.
pub async fn revocation_list(gateway: &Gateway) -> Result<Value, String> {
    let public_url = gateway
        .config
        .gateway
        .public_url
        .as_deref()
        .ok_or("no gateway.public_url")?;
    let revoked = gateway
        .store
        .revoked_credentials()
        .await
        .map_err(|e| e.to_string())?;
    Ok(crate::credential::status::revocation_list(
        &crate::credential::status::list_url(public_url),
        &crate::credential::passport::agency_urn(gateway.config.gateway.org_number.as_str()),
        &revoked,
    ))
}

/// The key set, as served.
pub async fn key_set(gateway: &Gateway) -> Result<Value, String> {
    let records = gateway
        .store
        .signing_keys()
        .await
        .map_err(|e| e.to_string())?;
    Ok(KeySet::from_records(&records)
        .map_err(|e| e.to_string())?
        .to_json())
}

async fn answer(
    gateway: Arc<Gateway>,
    made: Arc<Made>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut r = crate::admin::reply(status, content_type, body)?;
        // A verifier may cache an answer for a minute, not longer: a
        // revocation must reach it soon. Errors are not to be cached.
        r.headers_mut().insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static(if status == StatusCode::OK {
                "max-age=60"
            } else {
                "no-store"
            }),
        );
        Ok(r)
    };
    if request.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    let (path, content_type) = match request.uri().path() {
        "/keys" => ("/keys", "application/jwk-set+json"),
        "/revocations" => ("/revocations", "application/json"),
        _ => return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    match document(&gateway, &made, path).await {
        Ok(body) => reply(StatusCode::OK, content_type, body),
        Err(e) => {
            tracing::warn!(error = %e, path = request.uri().path(), "public listener cannot answer");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "unavailable; try again\n".into(),
            )
        }
    }
}

/// Serves the public endpoints on `listener` until `shutdown` completes.
pub async fn serve_public(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let made = Arc::new(Made::default());
    let listener = Listener::new(listener, MAX_CONNECTIONS, "public");
    crate::admin::serve_bounded(listener, shutdown, move |stream| {
        let (gateway, made) = (gateway.clone(), made.clone());
        async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(gateway.server_tls.public());
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    crate::admin::serve_http1(tls, move |req| {
                        answer(gateway.clone(), made.clone(), req)
                    })
                    .await
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "public listener: handshake failed"),
                Err(_) => tracing::debug!("public listener: handshake timed out"),
            }
        }
    })
    .await
}
