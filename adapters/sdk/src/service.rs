//! The gRPC `samverka.adapter.v1.Adapter` service around an [`Adapter`].
//!
//! Two checks sit here so that no adapter has to remember them:
//! - the caller must present a certificate with samverka's gateway role
//!   (the TLS layer has already verified its chain); anyone else gets
//!   PERMISSION_DENIED;
//! - what the adapter returns is filtered: only the requested person and
//!   record types leave, each with its type's payload message, and each
//!   record names this adapter's agency. A dropped record is logged with
//!   the rule it broke, and the answer counts the drops per rule in the
//!   `x-samverka-dropped` header, which the conformance kit reads
//!   ([`crate::conformance::DropRule`]).

use std::collections::HashSet;

use opentelemetry::trace::TraceContextExt;
use samverka_certs::{CertIdentity, OrgNumber, Role, SubjectId};
use samverka_proto::adapter::v1::{
    AdapterDescription, DescribeRequest, FetchRecordsRequest, FetchRecordsResponse, adapter_server,
};
use samverka_proto::records::v1::Record;
use tonic::{Request, Response, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::conformance::{DROPPED_HEADER, Dropped, broken_rule};
use crate::{Adapter, AdapterError, Description, FetchQuery, SDK_VERSION};

/// At most this many dropped records of one answer are logged one by one;
/// the summary line counts them all.
const LOGGED_DROPS: u64 = 10;

pub(crate) struct AdapterService<A> {
    adapter: A,
    agency: OrgNumber,
    description: Description,
    attester: Option<std::sync::Arc<crate::credential::Attester>>,
}

impl<A: Adapter> AdapterService<A> {
    pub(crate) fn new(
        adapter: A,
        agency: OrgNumber,
        description: Description,
        attester: Option<std::sync::Arc<crate::credential::Attester>>,
    ) -> Self {
        AdapterService {
            adapter,
            agency,
            description,
            attester,
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
                let count = response.get_ref().records.len();
                span.record(
                    "samverka.record_count",
                    i64::try_from(count).unwrap_or(i64::MAX),
                );
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
        let asked = req.record_types.clone();
        let attest = req.attest;
        // A short or missing salt would put a guessable hash of the person's
        // number in the attestation.
        if let Some(a) = &attest
            && (a.holder_salt.len() < 32
                || !a.holder_salt.bytes().all(|b| b.is_ascii_hexdigit())
                || !a.holder_id.starts_with("urn:uuid:"))
        {
            return Err(Status::invalid_argument(
                "attest: holder_id must be a urn:uuid: and holder_salt at least 32 hexadecimal digits",
            ));
        }
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
        let (records, dropped) = release(
            records,
            subject.as_str(),
            &asked,
            &self.description.record_types,
            &self.agency,
        );
        let mut answer = FetchRecordsResponse {
            records,
            ..Default::default()
        };
        if let (Some(attest), Some(attester)) = (attest, &self.attester) {
            // Signed as the record leaves: over the bytes the gateway gets.
            for record in &answer.records {
                let attestation = attester
                    .attest(
                        record,
                        &self.description.name,
                        &attest.holder_id,
                        &attest.holder_salt,
                    )
                    .map_err(|e| {
                        tracing::error!(error = %e, "attesting a record failed");
                        Status::internal("attesting a record failed")
                    })?;
                answer.attestations.push(attestation);
            }
            answer.attestation_certificate = attester.certificate_der().to_vec();
        }
        let mut response = Response::new(answer);
        if !dropped.is_empty() {
            let value = dropped.header_value();
            tracing::error!(
                dropped = %value,
                "the adapter returned records that may not leave; they were dropped \
                 and the answer names them in {DROPPED_HEADER}"
            );
            if let Ok(v) = value.parse() {
                response.metadata_mut().insert(DROPPED_HEADER, v);
            }
        }
        Ok(response)
    }
}

/// What may leave of the records an adapter returned about `subject` for
/// the types `asked`, by an adapter that declares `declared` for
/// `agency`: only the person's own records of the types asked, each with
/// its type's payload message (the rules the gateway and the kit apply
/// too), each naming `agency`; an empty `subject_id` is the person's.
/// Each record dropped is logged with the rule it broke (the first
/// [`LOGGED_DROPS`] of them) and counted.
fn release(
    records: Vec<Record>,
    subject: &str,
    asked: &[String],
    declared: &[String],
    agency: &OrgNumber,
) -> (Vec<Record>, Dropped) {
    let mut dropped = Dropped::default();
    let released = records
        .into_iter()
        .filter_map(|mut r| {
            if r.subject_id.is_empty() {
                r.subject_id = subject.to_owned();
            }
            if let Some((rule, detail)) = broken_rule(&r, subject, asked, declared) {
                if dropped.total() < LOGGED_DROPS {
                    tracing::error!(
                        rule = rule.name(),
                        record_type = %r.record_type,
                        record_id = %r.record_id,
                        %detail,
                        "dropped a record the adapter returned: it is {} ({})",
                        rule.explain(),
                        rule.name()
                    );
                }
                dropped.add(rule);
                return None;
            }
            r.source_agency = agency.as_str().to_owned();
            Some(r)
        })
        .collect();
    (released, dropped)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use samverka_proto::records::v1::EmploymentPeriod;
    use samverka_proto::records::v1::record::Payload;

    use super::*;

    /// The log lines written while `f` runs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn a_dropped_record_is_logged_with_the_rule_it_broke() {
        let period = |subject: &str, id: &str| Record {
            record_type: "employment.period".into(),
            subject_id: subject.into(),
            record_id: id.into(),
            payload: Some(Payload::EmploymentPeriod(EmploymentPeriod::default())),
            ..Default::default()
        };
        let records = vec![
            period("", "own"),
            period("198511224571", "someone-else"),
            Record {
                record_type: "competence.validated".into(),
                ..period("199003142388", "undeclared")
            },
        ];
        let types = vec!["employment.period".to_owned()];
        let agency = OrgNumber::parse("2021999053").unwrap();
        let ((released, dropped), log) =
            logged(|| release(records, "199003142388", &types, &types, &agency));
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].subject_id, "199003142388");
        assert_eq!(released[0].source_agency, "2021999053");
        assert_eq!(dropped.header_value(), "1 other-person, 1 undeclared-type");
        let line = |id: &str| {
            log.lines()
                .find(|l| l.contains(&format!("record_id={id}")))
                .unwrap_or_else(|| panic!("{log}"))
                .to_owned()
        };
        assert!(
            line("someone-else").contains("about another person"),
            "{log}"
        );
        assert!(
            line("someone-else").contains("rule=\"other-person\""),
            "{log}"
        );
        assert!(line("undeclared").contains("does not declare"), "{log}");
        assert!(
            line("undeclared").contains("rule=\"undeclared-type\""),
            "{log}"
        );
        // Nobody's identity number in the log.
        assert!(!log.contains("198511224571"), "{log}");
    }
}
