//! The one wrapper every RPC runs through: its request span (continuing
//! the caller's trace), the count and duration in the metrics by method,
//! caller agency, decision and reason, the decision on the span, and the
//! answer or the status (through [`crate::error::to_status`]), both naming
//! the trace in their metadata.
//!
//! ```ignore
//! let call = Call::new(&gateway.metrics, Method::GetRecords, request.metadata());
//! call.run(self.get_records(request, &call)).await
//! ```
//!
//! The `method` label of `samverka_requests_total` is `Service/Method`
//! (`RecordExchange/GetRecords`, `Consents/Grant`), as in audit entries.

use std::sync::OnceLock;
use std::time::Instant;

use samverka_proto::trace::{TRACE_ID_HEADER, TraceContext};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::{Instrument, Span};

use crate::audit::Decision;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::pipeline::identity::{self, Caller};
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
    /// `samverka.v1.AccessLog/List`.
    AccessLogList,
}

impl Method {
    /// The service's full name, the method's name in it, and
    /// `Service/Method` without the package.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        const EXCHANGE: &str = "samverka.v1.RecordExchange";
        const CONSENTS: &str = "samverka.v1.Consents";
        const ACCESS_LOG: &str = "samverka.v1.AccessLog";
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
            Method::AccessLogList => (ACCESS_LOG, "List", "AccessLog/List"),
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
    caller: OnceLock<String>,
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

    /// Step 2: the calling agency, read from the request's certificate
    /// in a step span of its own, and named on the request span and in the
    /// metrics.
    pub fn identify<T>(&self, request: &Request<T>) -> Result<Caller, GatewayError> {
        let caller = telemetry::step_span!("identity").in_scope(|| identity::caller(request))?;
        self.span.record("samverka.caller", caller.agency.as_str());
        let _ = self.caller.set(caller.agency.to_string());
        Ok(caller)
    }

    /// Runs `rpc` in the request span, counts its decision, and answers.
    pub async fn run<T>(
        &self,
        rpc: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<Response<T>, Status> {
        let result = rpc.instrument(self.span.clone()).await;
        self.finish(result)
    }

    /// Counts the decision, records it on the span, and turns the result
    /// into the answer or the status, inside the span so that the refusal's
    /// log line names the trace.
    fn finish<T>(&self, result: Result<T, GatewayError>) -> Result<Response<T>, Status> {
        let (decision, reason) = Decision::of(&result);
        let caller = self.caller.get().map(String::as_str).unwrap_or("");
        self.metrics.request(
            self.method.label(),
            caller,
            decision,
            reason,
            self.started.elapsed(),
        );
        telemetry::record_decision(&self.span, decision, reason);
        let trace_id: Option<MetadataValue<Ascii>> = self.trace.trace_id.parse().ok();
        self.span.in_scope(|| match result {
            Ok(answer) => {
                let mut response = Response::new(answer);
                if let Some(v) = trace_id {
                    response.metadata_mut().insert(TRACE_ID_HEADER, v);
                }
                Ok(response)
            }
            Err(e) => {
                let mut status = Status::from(e);
                if let Some(v) = trace_id {
                    status.metadata_mut().insert(TRACE_ID_HEADER, v);
                }
                Err(status)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn a_label_is_its_service_and_method() {
        for m in [
            Method::GetRecords,
            Method::GetCompetencePassport,
            Method::ListSources,
            Method::ConsentsGrant,
            Method::ConsentsRevoke,
            Method::ConsentsGet,
            Method::ConsentsList,
            Method::AccessLogList,
        ] {
            let service = m.service().trim_start_matches("samverka.v1.");
            assert_eq!(m.label(), format!("{service}/{}", m.name()));
        }
    }
}
