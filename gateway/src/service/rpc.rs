//! The one wrapper every RPC runs through: its request span (continuing
//! the caller's trace), the count and duration in the metrics by method,
//! caller agency, decision and reason, the decision on the span, and the
//! answer or the status (through [`crate::error::to_status`]), both naming
//! the trace in their metadata.
//!
//! ```ignore
//! let call = Call::new(&gateway.metrics, Method::GetRecords, request.metadata());
//! call.run(Box::pin(self.get_records(request, &call))).await
//! ```
//!
//! The handler's future comes boxed, so that what moves is a pointer: a
//! read's state machine is about 15 KiB, and moved by value through
//! `run` and its span into tonic's own box it was copied on every
//! request.
//!
//! Every handler first reads its caller with [`Call::identify`] (or
//! [`Call::admit`]), which also takes a token of the caller's rate
//! ([`crate::pipeline::rate`]): the one place every RPC is rate-limited.
//!
//! The `method` label of `samverka_requests_total` is `Service/Method`
//! (`RecordExchange/GetRecords`, `Consents/Grant`), as in audit entries.
//!
//! [`RequestLimit`] wraps each of the gateway's services: a request larger
//! than `limits.max_request_bytes` is refused by the same wrapper, with
//! `MESSAGE_TOO_LARGE`, before tonic reads it and before its handler runs.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::StreamExt;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use samverka_proto::trace::{TRACE_ID_HEADER, TraceContext};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Bytes, Service, http};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tracing::{Instrument, Span};

use crate::audit::Decision;
use crate::error::{GatewayError, Reason};
use crate::metrics::Metrics;
use crate::pipeline::identity::{self, Caller};
use crate::pipeline::rate::{RateKey, RateLimiter};
use crate::telemetry;

/// Every RPC the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `samverka.v1.RecordExchange/GetRecords`.
    GetRecords,
    /// `samverka.v1.RecordExchange/GetCompetencePassport`.
    GetCompetencePassport,
    /// `samverka.v1.RecordExchange/ListSources`.
    ListSources,
    /// `samverka.v1.Consents/Grant`.
    ConsentsGrant,
    /// `samverka.v1.Consents/Revoke`.
    ConsentsRevoke,
    /// `samverka.v1.Consents/Get`.
    ConsentsGet,
    /// `samverka.v1.Consents/List`.
    ConsentsList,
    /// `samverka.v1.Consents/RequestConsent`.
    ConsentsRequest,
    /// `samverka.v1.Consents/ApproveConsent`.
    ConsentsApprove,
    /// `samverka.v1.Consents/RejectConsent`.
    ConsentsReject,
    /// `samverka.v1.Consents/PauseConsent`.
    ConsentsPause,
    /// `samverka.v1.Consents/ResumeConsent`.
    ConsentsResume,
    /// `samverka.v1.Consents/WatchConsents`.
    ConsentsWatch,
    /// `samverka.v1.AccessLog/List`.
    AccessLogList,
    /// `samverka.v1.SelfDeclaredMeritService/DeclareMerit`.
    MeritsDeclare,
    /// `samverka.v1.SelfDeclaredMeritService/ListMerits`.
    MeritsList,
    /// `samverka.v1.SelfDeclaredMeritService/WithdrawMerit`.
    MeritsWithdraw,
    /// `samverka.admin.v1.Registry/GetRegistry`.
    RegistryGet,
    /// `samverka.admin.v1.Registry/ListItems`.
    RegistryList,
    /// `samverka.admin.v1.Registry/PutItem`.
    RegistryPut,
    /// `samverka.admin.v1.Registry/DeleteItem`.
    RegistryDelete,
    /// `samverka.admin.v1.Registry/ApplyDocument`.
    RegistryApply,
    /// `samverka.admin.v1.Registry/ListVersions`.
    RegistryHistory,
}

impl Method {
    /// Every method the gateway serves.
    pub const ALL: [Method; 23] = [
        Method::GetRecords,
        Method::GetCompetencePassport,
        Method::ListSources,
        Method::ConsentsGrant,
        Method::ConsentsRevoke,
        Method::ConsentsGet,
        Method::ConsentsList,
        Method::ConsentsRequest,
        Method::ConsentsApprove,
        Method::ConsentsReject,
        Method::ConsentsPause,
        Method::ConsentsResume,
        Method::ConsentsWatch,
        Method::AccessLogList,
        Method::MeritsDeclare,
        Method::MeritsList,
        Method::MeritsWithdraw,
        Method::RegistryGet,
        Method::RegistryList,
        Method::RegistryPut,
        Method::RegistryDelete,
        Method::RegistryApply,
        Method::RegistryHistory,
    ];

    /// The method an HTTP/2 request's path names
    /// (`/samverka.v1.Consents/Grant`), if the gateway serves it.
    pub fn from_path(path: &str) -> Option<Method> {
        let (service, name) = path.strip_prefix('/')?.split_once('/')?;
        Method::ALL
            .into_iter()
            .find(|m| m.service() == service && m.name() == name)
    }

    /// The service's full name, the method's name in it, and
    /// `Service/Method` without the package.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        const EXCHANGE: &str = "samverka.v1.RecordExchange";
        const CONSENTS: &str = "samverka.v1.Consents";
        const ACCESS_LOG: &str = "samverka.v1.AccessLog";
        const REGISTRY: &str = "samverka.admin.v1.Registry";
        const MERITS: &str = "samverka.v1.SelfDeclaredMeritService";
        match self {
            Method::GetRecords => (EXCHANGE, "GetRecords", "RecordExchange/GetRecords"),
            Method::GetCompetencePassport => (
                EXCHANGE,
                "GetCompetencePassport",
                "RecordExchange/GetCompetencePassport",
            ),
            Method::ListSources => (EXCHANGE, "ListSources", "RecordExchange/ListSources"),
            Method::ConsentsGrant => (CONSENTS, "Grant", "Consents/Grant"),
            Method::ConsentsRevoke => (CONSENTS, "Revoke", "Consents/Revoke"),
            Method::ConsentsGet => (CONSENTS, "Get", "Consents/Get"),
            Method::ConsentsList => (CONSENTS, "List", "Consents/List"),
            Method::ConsentsRequest => (CONSENTS, "RequestConsent", "Consents/RequestConsent"),
            Method::ConsentsApprove => (CONSENTS, "ApproveConsent", "Consents/ApproveConsent"),
            Method::ConsentsReject => (CONSENTS, "RejectConsent", "Consents/RejectConsent"),
            Method::ConsentsPause => (CONSENTS, "PauseConsent", "Consents/PauseConsent"),
            Method::ConsentsResume => (CONSENTS, "ResumeConsent", "Consents/ResumeConsent"),
            Method::ConsentsWatch => (CONSENTS, "WatchConsents", "Consents/WatchConsents"),
            Method::AccessLogList => (ACCESS_LOG, "List", "AccessLog/List"),
            Method::MeritsDeclare => (
                MERITS,
                "DeclareMerit",
                "SelfDeclaredMeritService/DeclareMerit",
            ),
            Method::MeritsList => (MERITS, "ListMerits", "SelfDeclaredMeritService/ListMerits"),
            Method::MeritsWithdraw => (
                MERITS,
                "WithdrawMerit",
                "SelfDeclaredMeritService/WithdrawMerit",
            ),
            Method::RegistryGet => (REGISTRY, "GetRegistry", "Registry/GetRegistry"),
            Method::RegistryList => (REGISTRY, "ListItems", "Registry/ListItems"),
            Method::RegistryPut => (REGISTRY, "PutItem", "Registry/PutItem"),
            Method::RegistryDelete => (REGISTRY, "DeleteItem", "Registry/DeleteItem"),
            Method::RegistryApply => (REGISTRY, "ApplyDocument", "Registry/ApplyDocument"),
            Method::RegistryHistory => (REGISTRY, "ListVersions", "Registry/ListVersions"),
        }
    }

    /// The service's full name, as in the span's `rpc.service`.
    pub fn service(self) -> &'static str {
        self.names().0
    }

    /// The method's name within its service, as in the span's
    /// `rpc.method`.
    pub fn name(self) -> &'static str {
        self.names().1
    }

    /// `Service/Method`, without the package: the `method` of metrics and
    /// audit entries.
    pub fn label(self) -> &'static str {
        self.names().2
    }
}

/// One RPC in progress.
#[derive(Debug)]
pub struct Call<'g> {
    method: Method,
    span: Span,
    trace: TraceContext,
    started: Instant,
    metrics: &'g Metrics,
    /// The calling agency, once identity has read it (empty in the metrics
    /// while unknown).
    caller: OnceLock<std::sync::Arc<str>>,
}

impl<'g> Call<'g> {
    /// Starts the RPC: its span, continuing the caller's trace if it sent
    /// one.
    pub fn new(metrics: &'g Metrics, method: Method, metadata: &MetadataMap) -> Self {
        let (span, trace) = telemetry::request_span(method.service(), method.name(), metadata);
        Call {
            method,
            span,
            trace,
            started: Instant::now(),
            metrics,
            caller: OnceLock::new(),
        }
    }

    /// The RPC being served.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The request's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The request's trace.
    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// Step 2: the calling agency, read from the request's certificate,
    /// and a token of its rate. Every RPC calls this (or [`Call::admit`])
    /// before it does anything else, so that no caller, refused or not,
    /// writes an audit entry or reaches an adapter beyond its rate.
    pub fn identify<T>(
        &self,
        request: &Request<T>,
        rate: &RateLimiter,
    ) -> Result<Caller, GatewayError> {
        self.admit(request, rate)?
    }

    /// This call's audit entry, made at `now_ms`: its method, its trace,
    /// and its caller when the certificate names one (a refused identity is
    /// audited with an empty caller).
    pub fn audit_entry(
        &self,
        caller: &Result<Caller, GatewayError>,
        now_ms: i64,
    ) -> crate::audit::AuditEntry {
        let mut entry = crate::audit::entry(self.method.label(), now_ms);
        entry.trace_id = self.trace.trace_id.clone();
        if let Ok(c) = caller {
            entry.caller = c.agency.to_string();
        }
        entry
    }

    /// [`Call::identify`] keeping the two refusals apart: the outer error
    /// is the rate's (`RATE_LIMITED`, never audited: a flood must not fill
    /// the trail), the inner one the identity's (which a read audits).
    ///
    /// The rate is the agency's when the certificate names an agency
    /// caller; any other certificate (another role, no samverka identity)
    /// is refused at its own rate, keyed by its thumbprint.
    pub fn admit<T>(
        &self,
        request: &Request<T>,
        rate: &RateLimiter,
    ) -> Result<Result<Caller, GatewayError>, GatewayError> {
        let caller = self.read_caller(request);
        let key = match &caller {
            Ok(c) => RateKey::Agency(c.agency.clone()),
            Err(_) => {
                let certs = request.peer_certs();
                let leaf = certs.as_ref().and_then(|c| c.first());
                RateKey::certificate(leaf.map(|c| c.as_ref()).unwrap_or_default())
            }
        };
        rate.check(&key)?;
        Ok(caller)
    }

    /// The calling agency, read from the request's certificate in a step
    /// span of its own, and named on the request span and in the metrics.
    fn read_caller<T>(&self, request: &Request<T>) -> Result<Caller, GatewayError> {
        let caller = telemetry::step_span!("identity").in_scope(|| identity::caller(request))?;
        self.span.record("samverka.caller", caller.agency.as_str());
        let _ = self.caller.set(caller.agency.as_str().into());
        Ok(caller)
    }

    /// Runs `rpc` in the request span, counts its decision, and answers.
    pub async fn run<T>(
        &self,
        rpc: futures_util::future::BoxFuture<'_, Result<T, GatewayError>>,
    ) -> Result<Response<T>, Status> {
        let result = rpc.instrument(self.span.clone()).await;
        self.finish(result)
    }

    /// Refuses the RPC without running it: counted, recorded and answered
    /// as a refusal of its handler would be.
    pub fn refuse(&self, err: GatewayError) -> Status {
        self.count(Decision::Denied, err.reason.as_str());
        self.span.in_scope(|| self.status(err))
    }

    /// Counts the decision, records it on the span, and turns the result
    /// into the answer or the status, inside the span so that the refusal's
    /// log line names the trace.
    fn finish<T>(&self, result: Result<T, GatewayError>) -> Result<Response<T>, Status> {
        let (decision, reason) = Decision::of(&result);
        self.count(decision, reason);
        self.span.in_scope(|| match result {
            Ok(answer) => {
                telemetry::record_status_code(&self.span, tonic::Code::Ok);
                let mut response = Response::new(answer);
                if let Some(v) = self.trace_id() {
                    response.metadata_mut().insert(TRACE_ID_HEADER, v);
                }
                Ok(response)
            }
            Err(e) => Err(self.status(e)),
        })
    }

    /// Counts the decision in the metrics and records it on the span.
    fn count(&self, decision: Decision, reason: &'static str) {
        static NONE: std::sync::LazyLock<std::sync::Arc<str>> =
            std::sync::LazyLock::new(|| "".into());
        let caller = self.caller.get().unwrap_or(&NONE);
        self.metrics.request(
            self.method.label(),
            caller,
            decision,
            reason,
            self.started.elapsed(),
        );
        telemetry::record_decision(&self.span, decision, reason);
    }

    /// The trace id, as the answer's or the status's metadata names it.
    fn trace_id(&self) -> Option<MetadataValue<Ascii>> {
        samverka_proto::trace::unindexed(&self.trace.trace_id)
    }

    /// The refusal as a status naming the trace, its code recorded on the
    /// span.
    fn status(&self, err: GatewayError) -> Status {
        let mut status = Status::from(err);
        telemetry::record_status_code(&self.span, status.code());
        if let Some(v) = self.trace_id() {
            status.metadata_mut().insert(TRACE_ID_HEADER, v);
        }
        status
    }
}

/// The length prefix of a gRPC message on the wire: a compression flag
/// byte, then the message's length in four bytes, big-endian.
const FRAME_PREFIX: usize = 5;

/// The request body's frames read so far, to be handed on unchanged.
type ReadFrames = Vec<Result<Frame<Bytes>, Status>>;

/// One of the gateway's gRPC services with `limits.max_request_bytes`
/// checked on the length prefix of the request's message, before tonic
/// decodes it: a larger request is refused with `MESSAGE_TOO_LARGE`
/// (RESOURCE_EXHAUSTED) through [`Call::refuse`], so it is counted in the
/// metrics with its method and caller and answered with the request's
/// trace id, as a handler's refusal is. Its body is not read further, and
/// it is not audited: it names no person that could be read, and a flood
/// of them must not fill the trail.
///
/// Left to itself, tonic refuses such a request with a bare OUT_OF_RANGE
/// before any handler runs; its limit stays set on the inner service as a
/// backstop for a second message in a unary call.
#[derive(Debug, Clone)]
pub struct RequestLimit<S> {
    inner: S,
    metrics: Metrics,
    max_bytes: usize,
}

impl<S> RequestLimit<S> {
    /// `inner` with requests of at most `max_bytes` bytes.
    pub fn new(inner: S, metrics: Metrics, max_bytes: usize) -> Self {
        RequestLimit {
            inner,
            metrics,
            max_bytes,
        }
    }
}

impl<S: NamedService> NamedService for RequestLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for RequestLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The service made ready serves this request; a clone takes its
        // place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(method) = Method::from_path(request.uri().path()) else {
            // Not a method of the gateway's: tonic answers UNIMPLEMENTED.
            return Box::pin(inner.call(request));
        };
        let metrics = self.metrics.clone();
        let max_bytes = self.max_bytes;
        Box::pin(async move {
            let (parts, mut body) = request.into_parts();
            let (read, message_len, ended) = read_prefix(&mut body).await;
            if let Some(len) = message_len.filter(|len| *len > max_bytes) {
                let request = Request::from_http(http::Request::from_parts(parts, ()));
                let call = Call::new(&metrics, method, request.metadata());
                // The caller is named in the metrics and the span where its
                // certificate says who it is; the size is refused either way.
                // No rate token is taken: the request is refused anyway.
                let _ = call.read_caller(&request);
                let status = call.refuse(GatewayError {
                    detail: Some(format!("request of {len} bytes, limit {max_bytes}")),
                    ..GatewayError::new(
                        Reason::MessageTooLarge,
                        format!(
                            "the request is too large: this gateway takes at most {max_bytes} bytes"
                        ),
                    )
                });
                return Ok(status.into_http());
            }
            let rest = if ended { Body::empty() } else { body };
            let body = futures_util::stream::iter(read).chain(BodyStream::new(rest));
            let request = http::Request::from_parts(parts, Body::new(StreamBody::new(body)));
            inner.call(request).await
        })
    }
}

/// Reads `body` until the first message's length prefix has come: the
/// frames read, the message's length if the prefix was complete, and
/// whether the body has ended.
async fn read_prefix(body: &mut Body) -> (ReadFrames, Option<usize>, bool) {
    let mut read = Vec::new();
    let mut prefix = [0u8; FRAME_PREFIX];
    let mut have = 0;
    while have < FRAME_PREFIX {
        let Some(frame) = body.frame().await else {
            return (read, None, true);
        };
        let data = frame.as_ref().ok().and_then(Frame::data_ref);
        let Some(data) = data else {
            // Trailers or an error before the prefix: tonic answers it.
            read.push(frame);
            return (read, None, false);
        };
        let n = data.len().min(FRAME_PREFIX - have);
        prefix[have..have + n].copy_from_slice(&data[..n]);
        have += n;
        read.push(frame);
    }
    let [_compressed, len @ ..] = prefix;
    (read, Some(u32::from_be_bytes(len) as usize), false)
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn a_label_is_its_service_and_method() {
        for m in Method::ALL {
            let service = m
                .service()
                .trim_start_matches("samverka.v1.")
                .trim_start_matches("samverka.admin.v1.");
            assert_eq!(m.label(), format!("{service}/{}", m.name()));
        }
    }

    #[test]
    fn a_path_names_its_method() {
        for m in Method::ALL {
            let path = format!("/{}/{}", m.service(), m.name());
            assert_eq!(Method::from_path(&path), Some(m), "{path}");
        }
        for other in [
            "/samverka.v1.Consents/Delete",
            "/grpc.health.v1.Health/Check",
            "/samverka.v1.Consents",
            "samverka.v1.Consents/Grant",
            "",
        ] {
            assert_eq!(Method::from_path(other), None, "{other}");
        }
    }
}
