//! The floor of the gateway's own stack: a gRPC relay for the adapter
//! service built from the parts `samverka serve` is built from (its accept
//! path with TLS and write coalescing, tonic's server with the gateway's
//! default limits, tonic's channel to the adapter over mutual TLS, the
//! same allocator), that checks nothing but the client certificate and
//! passes each request and answer through without decoding the gRPC
//! messages (HTTP/2 is decoded and encoded again on each hop, as in the
//! gateway). What nginx and haproxy do, in the gateway's stack:
//! the `relay` scenario of `load` puts it beside them, so that the
//! distance from the gateway to nginx splits into what the stack costs
//! (relay against nginx) and what the gateway's work costs (gateway
//! against relay).
//!
//! ```text
//! relay --port PORT --upstream HOST:PORT --ca CA --cert CERT --key KEY \
//!     --client-cert CERT --client-key KEY
//! ```
//!
//! Not a product: no limits, no logging, no reload; a benchmark's peer.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use samverka_bench::BoxError;
use samverka_gateway::config::Limits;
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_gateway::net::tls::{TlsFiles, server_config};
use samverka_gateway::server::grpc_server;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(about = "A gRPC relay in samverka's stack that decodes nothing (a benchmark's peer)")]
struct Args {
    /// The loopback port to listen on.
    #[arg(long)]
    port: u16,
    /// The adapter relayed to, `host:port`; its certificate must be valid
    /// for "localhost".
    #[arg(long)]
    upstream: String,
    /// The CA that issued every certificate (clients', this relay's, the
    /// adapter's).
    #[arg(long)]
    ca: PathBuf,
    /// The relay's server certificate and key.
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// The certificate and key the relay presents to the adapter.
    #[arg(long)]
    client_cert: PathBuf,
    #[arg(long)]
    client_key: PathBuf,
}

/// Passes every call of the adapter service to the adapter as it is.
#[derive(Clone)]
struct Relay(Channel);

impl NamedService for Relay {
    const NAME: &'static str = "samverka.adapter.v1.Adapter";
}

impl Service<Request<Body>> for Relay {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // Each call reserves its own place in the channel's buffer.
        let mut channel = self.0.clone();
        Box::pin(async move {
            let answer = match std::future::poll_fn(|cx| channel.poll_ready(cx)).await {
                Ok(()) => channel.call(request).await,
                Err(e) => Err(e),
            };
            Ok(answer.unwrap_or_else(|e| {
                tonic::Status::unavailable(format!("adapter: {e}")).into_http()
            }))
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    samverka_adapter::install_crypto_provider();
    let files = TlsFiles {
        cert: args.cert,
        key: args.key,
        ca: args.ca.clone(),
        crls: Vec::new(),
        client_cert: args.client_cert.clone(),
        client_key: args.client_key.clone(),
        issuer: String::new(),
        stale_crl: Default::default(),
    };
    let config = Arc::new(server_config(&files)?);
    let upstream = connect(
        &args.upstream,
        "localhost",
        &AgencyTls::from_files(&args.ca, &args.client_cert, &args.client_key)?,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let incoming = samverka_adapter::accept::tls_handshakes(
        listener,
        move || config.clone(),
        |tcp| tcp,
        || {},
    );
    // The HTTP/2 settings `samverka serve` applies by default.
    grpc_server(&Limits::default())
        .add_service(Relay(upstream))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
