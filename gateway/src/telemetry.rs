//! Traces of the gateway's requests: one span per request with a child per
//! step of the flow (identity, access rule, consent check, each adapter
//! call, audit commit), exported over OTLP when telemetry is on (see
//! [`samverka_adapter::telemetry`], set up from `[telemetry]`).
//!
//! Span attributes are what an operator filters on: caller agency,
//! method, record types, purpose, decision, reason, source, outcome, and
//! the answer's gRPC status code (`rpc.grpc.status_code`, an integer, on
//! every request span). Counts (`samverka.record_count`) and codes are
//! recorded as integers: a `u32` or `usize` given to `Span::record` would
//! reach OpenTelemetry as a string (tracing-opentelemetry only maps `i64`,
//! `f64`, `bool` and `&str` to typed attributes), so convert to `i64`
//! first. The subject's personal identity number is never one.
//!
//! The request span continues the caller's W3C `traceparent` when it sent
//! one. Its trace id goes into the audit entry, into every adapter call's
//! `traceparent` and back to the caller in `x-samverka-trace-id`. With
//! telemetry off the same ids are still made and passed on (by
//! [`TraceContext`]), so that the audit trail and the adapters' logs name
//! the exchange either way.

use opentelemetry::trace::TraceContextExt;
use samverka_proto::trace::{TRACEPARENT, TraceContext};
use tonic::metadata::MetadataMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Random bytes for trace and span ids when telemetry is off.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let id = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&id.as_bytes()[..chunk.len()]);
    }
    out
}

/// The trace context of `span` if it has an OpenTelemetry one (telemetry
/// on), else `None`.
fn otel_context(span: &Span) -> Option<TraceContext> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceContext {
        trace_id: sc.trace_id().to_string(),
        parent_id: sc.span_id().to_string(),
        flags: if sc.is_sampled() { "01" } else { "00" }.to_owned(),
    })
}

/// The span of a request, at `target`.
macro_rules! request_span_at {
    ($target:expr, $service:expr, $method:expr) => {
        tracing::info_span!(
            target: $target,
            "request",
            otel.name = format!("{}/{}", $service, $method),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = $service,
            rpc.method = $method,
            rpc.grpc.status_code = tracing::field::Empty,
            samverka.caller = tracing::field::Empty,
            samverka.purpose = tracing::field::Empty,
            samverka.record_types = tracing::field::Empty,
            samverka.decision = tracing::field::Empty,
            samverka.reason = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        )
    };
}

/// The span of one gRPC request to `service`/`method`, continuing the
/// caller's trace, and the trace context the request goes on with.
///
/// When it is known beforehand that the trace will not be exported (the
/// caller did not sample it, or new traces are sampled at 0 %), the span
/// is made where the OpenTelemetry layer does not look, and the ids are
/// made here: an unsampled request costs no more than with telemetry off.
pub fn request_span(
    service: &'static str,
    method: &'static str,
    metadata: &MetadataMap,
) -> (Span, TraceContext) {
    use samverka_adapter::telemetry::{TraceSampling, UNEXPORTED_TARGET, trace_sampling};
    let caller = metadata
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let sampling = trace_sampling();
    let known_unsampled = match (&sampling, &caller) {
        (TraceSampling::Off, _) => true,
        (_, Some(c)) => c.flags == "00",
        (TraceSampling::Ratio(r), None) => *r <= 0.0,
        (TraceSampling::Sdk, None) => false,
    };
    let (span, trace) = if known_unsampled {
        let span = request_span_at!(UNEXPORTED_TARGET, service, method);
        // The caller's trace continued by a span id of our own, or a new
        // trace, marked sampled only when nothing exports it anyway.
        let trace = match caller {
            Some(c) => c.child(random_bytes()),
            None => {
                let mut t = TraceContext::new_root(random_bytes());
                if sampling != TraceSampling::Off {
                    t.flags = "00".to_owned();
                }
                t
            }
        };
        (span, trace)
    } else {
        let span = request_span_at!("samverka::telemetry", service, method);
        let _ = span.set_parent(samverka_adapter::telemetry::extract(metadata));
        let trace = otel_context(&span).unwrap_or_else(|| {
            caller
                .map(|c| c.child(random_bytes()))
                .unwrap_or_else(|| TraceContext::new_root(random_bytes()))
        });
        (span, trace)
    };
    span.record("trace_id", trace.trace_id.as_str());
    span.record("span_id", trace.parent_id.as_str());
    (span, trace)
}

/// Whether the current request's trace is exported (telemetry on and the
/// trace sampled). Spans of its steps are made only then, so that an
/// unsampled request, or telemetry off, costs one span and no more.
pub fn exported() -> bool {
    Span::current().context().span().span_context().is_sampled()
}

/// A span for one step of the current request (arguments as for
/// `tracing::info_span!`), or a disabled one when the trace is not
/// exported.
macro_rules! step_span {
    ($($arg:tt)*) => {
        if $crate::telemetry::exported() {
            tracing::info_span!($($arg)*)
        } else {
            tracing::Span::none()
        }
    };
}
pub(crate) use step_span;

/// Records the decision of a request on its span.
pub fn record_decision(span: &Span, decision: crate::audit::Decision, reason: &str) {
    span.record("samverka.decision", decision.as_str());
    if !reason.is_empty() {
        span.record("samverka.reason", reason);
        span.record("otel.status_code", "ERROR");
    }
}

/// Records the gRPC status code of a request's answer on its span, as
/// OpenTelemetry's semantic conventions say: `rpc.grpc.status_code`, the
/// code's number (0 for OK), an integer attribute.
pub fn record_status_code(span: &Span, code: tonic::Code) {
    span.record("rpc.grpc.status_code", i64::from(code as i32));
}

/// The span of one adapter call, a child of the current span, and the
/// `traceparent` to send with it: the span's own context when telemetry is
/// on, else `fallback` (the request's trace, continued by a new span id).
pub fn adapter_call_span(
    source: &str,
    source_agency: &str,
    record_types: &[String],
    fallback: &str,
) -> (Span, String) {
    let span = step_span!(
        "adapter_call",
        otel.name = format!("adapter_call {source}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = "samverka.adapter.v1.Adapter",
        rpc.method = "FetchRecords",
        samverka.source = source,
        samverka.source_agency = source_agency,
        samverka.record_types = record_types.join(",").as_str(),
        samverka.outcome = tracing::field::Empty,
        samverka.record_count = tracing::field::Empty,
    );
    let traceparent = match otel_context(&span) {
        Some(cx) => cx.header(),
        None => match TraceContext::parse(fallback) {
            Some(t) => t.child(random_bytes()).header(),
            None => fallback.to_owned(),
        },
    };
    (span, traceparent)
}
