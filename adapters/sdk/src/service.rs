//! The gRPC `samverka.adapter.v1.Adapter` service around an [`Adapter`].
//!
//! Two checks sit here so that no adapter has to remember them:
//! - the caller must present a certificate with samverka's gateway role
//!   (the TLS layer has already verified its chain); anyone else gets
//!   PERMISSION_DENIED;
//! - what the adapter returns is filtered: only the requested person and
//!   record types leave, and each record names this adapter's agency.

use std::collections::HashSet;

use opentelemetry::trace::TraceContextExt;
use samverka_certs::{CertIdentity, OrgNumber, Role, SubjectId};
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse, adapter_server,
};
use tonic::{Request, Response, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Adapter, AdapterError, Description, FetchQuery, SDK_VERSION};

pub(crate) struct AdapterService<A> {
    adapter: A,
    agency: OrgNumber,
    description: Description,
}

impl<A: Adapter> AdapterService<A> {
    pub(crate) fn new(adapter: A, agency: OrgNumber, description: Description) -> Self {
        AdapterService {
            adapter,
            agency,
            description,
        }
    }
}

/// Only a samverka gateway may call an adapter.
fn require_gateway<T>(request: &Request<T>) -> Result<(), Status> {
    let certs = request.peer_certs();
    let leaf = certs.as_ref().and_then(|c| c.first());
    match leaf.map(|der| CertIdentity::from_peer_der(der)) {
        Some(Ok(id)) if id.role == Role::Gateway => Ok(()),
        Some(Ok(id)) => {
            tracing::warn!(agency = %id.agency, role = %id.role, "refused a caller that is not a gateway");
            Err(Status::permission_denied(
                "only a samverka gateway may call this adapter",
            ))
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "refused a caller without a samverka identity");
            Err(Status::permission_denied(
                "only a samverka gateway may call this adapter",
            ))
        }
        None => Err(Status::unauthenticated("a client certificate is required")),
    }
}

#[tonic::async_trait]
impl<A: Adapter> adapter_server::Adapter for AdapterService<A> {
    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<AdapterDescription>, Status> {
        require_gateway(&request)?;
        Ok(Response::new(AdapterDescription {
            agency_id: self.description.agency.clone(),
            name: self.description.name.clone(),
            record_types: self.description.record_types.clone(),
            sdk_version: SDK_VERSION.to_owned(),
        }))
    }

    async fn fetch_records(
        &self,
        request: Request<FetchRecordsRequest>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        // The gateway's trace continues here: this span is a child of the
        // gateway's adapter-call span (exported when telemetry is on).
        let span = tracing::info_span!(
            "Adapter/FetchRecords",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = "samverka.adapter.v1.Adapter",
            rpc.method = "FetchRecords",
            samverka.agency = %self.agency,
            samverka.record_types = tracing::field::Empty,
            samverka.purpose = tracing::field::Empty,
            samverka.requesting_agency = tracing::field::Empty,
            samverka.record_count = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let _ = span.set_parent(crate::telemetry::extract(request.metadata()));
        let span_context = span.context().span().span_context().clone();
        let trace_id = if span_context.is_valid() {
            Some(span_context.trace_id().to_string())
        } else {
            request
                .metadata()
                .get(samverka_proto::trace::TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .and_then(samverka_proto::trace::TraceContext::parse)
                .map(|t| t.trace_id)
        };
        if let Some(t) = &trace_id {
            span.record("trace_id", t.as_str());
        }
        let answer =
            tracing::Instrument::instrument(self.fetch(request, trace_id), span.clone()).await;
        match &answer {
            Ok(response) => {
                span.record("samverka.record_count", response.get_ref().records.len());
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        answer
    }
}

impl<A: Adapter> AdapterService<A> {
    async fn fetch(
        &self,
        request: Request<FetchRecordsRequest>,
        trace_id: Option<String>,
    ) -> Result<Response<FetchRecordsResponse>, Status> {
        require_gateway(&request)?;
        let req = request.into_inner();
        let span = tracing::Span::current();
        span.record("samverka.record_types", req.record_types.join(",").as_str());
        span.record("samverka.purpose", req.purpose.as_str());
        span.record("samverka.requesting_agency", req.requesting_agency.as_str());
        let subject = SubjectId::parse(&req.subject_id)
            .map_err(|e| Status::invalid_argument(format!("subject_id: {e}")))?;
        let offered: HashSet<&str> = self
            .description
            .record_types
            .iter()
            .map(String::as_str)
            .collect();
        if req.record_types.is_empty() {
            return Err(Status::invalid_argument(
                "record_types: at least one is required",
            ));
        }
        if let Some(t) = req
            .record_types
            .iter()
            .find(|t| !offered.contains(t.as_str()))
        {
            return Err(Status::invalid_argument(format!(
                "record_types: {t:?} is not offered by this adapter"
            )));
        }
        let wanted: HashSet<String> = req.record_types.iter().cloned().collect();
        let query = FetchQuery {
            subject: subject.clone(),
            record_types: req.record_types,
            purpose: req.purpose,
            consent_id: req.consent_id,
            requesting_agency: req.requesting_agency,
            trace_id,
        };
        let records = self
            .adapter
            .fetch_records(query)
            .await
            .map_err(|e| match e {
                AdapterError::Unavailable(m) => {
                    tracing::warn!(reason = %m, "register unavailable");
                    Status::unavailable("register unavailable")
                }
                AdapterError::Internal(m) => {
                    tracing::error!(reason = %m, "adapter failed");
                    Status::internal("adapter failed")
                }
            })?;
        let before = records.len();
        let records: Vec<_> = records
            .into_iter()
            .filter_map(|mut r| {
                if r.subject_id.is_empty() {
                    r.subject_id = subject.as_str().to_owned();
                }
                // Whatever the register wrote: only the person's own
                // records of the types asked, each with its type's payload
                // message (the rule the gateway and the kit apply too).
                let keep = r.subject_id == subject.as_str()
                    && wanted.contains(&r.record_type)
                    && crate::conformance::payload_mismatch(&r).is_none();
                r.source_agency = self.agency.as_str().to_owned();
                keep.then_some(r)
            })
            .collect();
        if records.len() != before {
            tracing::error!(
                dropped = before - records.len(),
                "adapter returned records of another person or type, or whose payload is not their type's; dropped"
            );
        }
        Ok(Response::new(FetchRecordsResponse { records }))
    }
}
