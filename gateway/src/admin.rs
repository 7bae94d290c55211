//! The admin listener: plain HTTP for operators, on loopback unless
//! configured otherwise (`gateway.admin_address`).
//!
//! - `GET /metrics`: [`crate::metrics`], in the Prometheus text format
//!   0.0.4, or in OpenMetrics 1.0.0 when the `Accept` header asks for
//!   `application/openmetrics-text` ([`Format::negotiate`]);
//! - `GET /healthz`: 200 while the process serves; 503 when its audit
//!   writer has ended without being asked to, which only a restart mends;
//! - `GET /readyz`: 200 when the gateway can answer reads
//!   ([`Gateway::ready`]: its audit commits succeed, its store answers and,
//!   with `gateway.stale_crl = "refuse"`, no CRL is past its `nextUpdate`;
//!   certificates are loaded before the gateway starts at all), 503 with
//!   the reason otherwise, so that a load balancer stops sending requests
//!   to a replica that would refuse them.
//!
//! The listener is bounded, so that clients that connect and send nothing
//! (or half a request) cannot hold it: at most [`MAX_CONNECTIONS`] at once,
//! more wait in the kernel's listen backlog until one closes (see
//! [`crate::net::accept`], which also backs off and logs sparingly when
//! accepting fails); a request's header must arrive within
//! [`HEADER_TIMEOUT`] of the connection or of the previous answer; and no
//! connection lives longer than [`CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Format;
use crate::net::accept::Listener;
use crate::state::Gateway;

/// At most this many admin connections open at once; further ones are not
/// refused but wait in the listen backlog until one closes, which takes at
/// most [`HEADER_TIMEOUT`] for an idle one. A Prometheus server or two and
/// a load balancer's probes need a handful.
pub const MAX_CONNECTIONS: usize = 64;

/// A request's whole header must arrive within this time of the
/// connection being accepted, or of the answer before it on a kept-alive
/// connection; otherwise the connection is closed. It covers clients that
/// send nothing, half a header, or keep a connection idle.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// No admin connection lives longer (a slow reader of `/metrics`, a
/// dripped body, a stuck `/readyz`): it is then asked to close after the
/// answer in progress, and dropped five seconds later if it has not.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// How long a connection at the end of its lifetime may take to finish
/// the answer in progress.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// An answer of `status` with `body` of `content_type` (also the public
/// listener's, [`crate::public`]).
pub(crate) fn reply(
    status: StatusCode,
    content_type: &str,
    body: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(r)
}

/// The answer to a request that is not a GET, if it is not.
pub(crate) fn get_only(
    request: &Request<Incoming>,
) -> Option<Result<Response<Full<Bytes>>, Infallible>> {
    (request.method() != Method::GET).then(|| {
        reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        )
    })
}

async fn answer(
    gateway: Arc<Gateway>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(refused) = get_only(&request) {
        return refused;
    }
    match request.uri().path() {
        "/metrics" => {
            let accept = request.headers().get(hyper::header::ACCEPT);
            let format = Format::negotiate(accept.and_then(|v| v.to_str().ok()));
            let mut answer = reply(
                StatusCode::OK,
                format.content_type(),
                gateway.metrics.render(format),
            );
            // Caches must not answer one format's request with the other.
            if let Ok(r) = &mut answer {
                r.headers_mut().insert(
                    hyper::header::VARY,
                    hyper::header::HeaderValue::from_static("accept"),
                );
            }
            answer
        }
        "/healthz" if gateway.audit.alive() => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/healthz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the audit writer has stopped; restart the process\n".into(),
        ),
        "/readyz" => match gateway.ready().await {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            Err(why) => {
                tracing::warn!(%why, "not ready");
                reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", why + "\n")
            }
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` completes,
/// within the bounds above.
pub async fn serve_admin(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let listener = Listener::new(listener, MAX_CONNECTIONS, "admin");
    serve_bounded(listener, shutdown, move |stream| {
        let gateway = gateway.clone();
        serve_http1(stream, move |req| answer(gateway.clone(), req))
    })
    .await
}

/// Accepts on `listener` (bounded) until `shutdown` completes, each
/// connection served by `connection` in a task of its own (also the public
/// listener's, [`crate::public`]).
pub(crate) async fn serve_bounded<F, Fut>(
    mut listener: Listener,
    shutdown: impl Future<Output = ()>,
    connection: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, _, slot) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let served = connection(stream);
        tokio::spawn(async move {
            served.await;
            drop(slot);
        });
    }
}

/// One HTTP/1.1 connection answered by `handler`, until the client closes
/// it, a header is late ([`HEADER_TIMEOUT`]) or its lifetime is over (also
/// the public listener's, [`crate::public`]).
pub(crate) async fn serve_http1<T, F, Fut>(stream: T, handler: F)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let service = hyper::service::service_fn(handler);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::debug!("HTTP connection dropped at the end of its lifetime");
                    return;
                }
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}
