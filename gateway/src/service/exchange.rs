//! The `samverka.v1.RecordExchange` service: the steps of the other
//! modules, in the order written in the crate docs, for one read.
//!
//! Deadlines: the caller's `grpc-timeout` (or the configured default when it
//! sets none), cut to the configured maximum. Adapters get that budget less
//! a reserve for the audit commit and the answer, so that a slow source
//! yields its own `DEADLINE_EXCEEDED` outcome while the others' records
//! still reach the caller in time.

use std::sync::Arc;
use std::time::Duration;

use samverka_proto::v1::{
    CompetencePassport, GetCompetencePassportRequest, GetRecordsRequest, GetRecordsResponse,
    ListSourcesRequest, ListSourcesResponse, record_exchange_server,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::rpc::{Call, Method};
use crate::audit::{self, Decision};
use crate::error::{GatewayError, Reason};
use crate::pipeline::identity::Caller;
use crate::pipeline::routing::FetchQuery;
use crate::pipeline::{access, consent, validate};
use crate::{Gateway, telemetry};
use samverka_adapter::credential::merit::SELF_DECLARED;
use tracing::Instrument;

/// The `samverka.v1.RecordExchange` service.
#[derive(Debug, Clone)]
pub struct RecordExchangeService {
    gateway: Arc<Gateway>,
}

/// Refuses an answer larger than the gateway sends.
fn check_size(answer: &impl prost::Message, limit: usize) -> Result<(), GatewayError> {
    let size = answer.encoded_len();
    if size > limit {
        return Err(GatewayError {
            detail: Some(format!("answer of {size} bytes, limit {limit}")),
            ..GatewayError::new(
                Reason::MessageTooLarge,
                "the answer is larger than this gateway sends; ask for fewer record types or sources",
            )
        });
    }
    Ok(())
}

/// Commits an audit entry, in a span of its own.
async fn commit(gw: &Gateway, entry: crate::audit::AuditEntry) -> Result<(), GatewayError> {
    gw.audit
        .commit(entry)
        .instrument(telemetry::step_span!("audit_commit"))
        .await
        .map(drop)
        .map_err(GatewayError::store)
}

/// The caller's deadline from the `grpc-timeout` header, if it set one.
pub fn caller_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.is_empty() || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The time adapters get out of a request's whole budget: a tenth is kept
/// back (between 5 and 200 ms) for the audit commit and the answer.
pub fn adapter_deadline(budget: Duration) -> Duration {
    let reserve = (budget / 10).clamp(Duration::from_millis(5), Duration::from_millis(200));
    budget.saturating_sub(reserve)
}

/// What [`RecordExchangeService::begin`] found out about a read.
struct Begun {
    /// The caller's deadline, or the default, cut to the maximum.
    budget: Duration,
    /// Who called; an error is kept, to be audited with the refusal.
    caller: Result<Caller, GatewayError>,
    /// The audit entry, with what is known so far.
    entry: crate::audit::AuditEntry,
}

/// A read that passed every check, with what the sources answered.
struct Allowed {
    consent_id: String,
    result: crate::pipeline::routing::FetchResult,
    outside_period: u32,
    /// A counted consent's read, settled once the answer is known to go.
    reservation: Option<crate::pipeline::terms::Reservation>,
}

impl RecordExchangeService {
    /// The service over the gateway's state.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        RecordExchangeService { gateway }
    }

    async fn get_records(
        &self,
        request: Request<GetRecordsRequest>,
        call: &Call<'_>,
    ) -> Result<GetRecordsResponse, GatewayError> {
        let gw = &self.gateway;
        let Begun {
            budget,
            caller,
            mut entry,
        } = self.begin(&request, call)?;
        let req = request.into_inner();
        let span = call.span();
        let purpose = validate::sanitized(&req.purpose);
        span.record("samverka.purpose", purpose.as_ref());
        span.record(
            "samverka.record_types",
            validate::sanitized(&req.record_types.join(";")).as_ref(),
        );
        entry.subject_id = validate::sanitize(&req.subject_id);
        entry.purpose = purpose.into_owned();
        entry.record_types = req
            .record_types
            .iter()
            .take(validate::MAX_RECORD_TYPES)
            .map(|t| validate::sanitize(t))
            .collect();
        entry.details.extend(validate::case_details(
            &req.case_reference,
            &req.official_id,
        ));

        let audit_id = entry.audit_id.clone();
        // Committed even if the caller cancels once a register is asked.
        let mut pending = audit::PendingEntry::new(&gw.audit, entry);
        let decision = match caller {
            Ok(caller) => {
                // Boxed: its state (the consent check, the reservation, the
                // fan-out) would otherwise be copied with this one's.
                Box::pin(self.check_and_fetch(
                    &caller,
                    &req,
                    &mut pending,
                    budget,
                    call.trace().header(),
                ))
                .await
            }
            Err(e) => Err(e),
        };
        let mut entry = pending.finish();
        let (decision, reservation) = match decision {
            Ok(mut allowed) => {
                let r = allowed.reservation.take();
                (Ok(allowed), r)
            }
            Err(e) => (Err(e), None),
        };
        // An answer too large to send is refused, and audited as refused.
        let decision = decision.and_then(|allowed| {
            let answer = GetRecordsResponse {
                records: allowed.result.records,
                outcomes: allowed.result.outcomes,
                audit_id: audit_id.clone(),
                consent_id: allowed.consent_id,
                records_outside_period: allowed.outside_period,
            };
            check_size(&answer, gw.config.limits.max_response_bytes)?;
            Ok(answer)
        });
        // A counted consent's read is used only by an answer that goes out
        // with records; a refused one gives it back.
        if let Some(r) = reservation {
            let used = matches!(&decision, Ok(a) if !a.records.is_empty());
            r.settle(gw, used, &entry.caller).await;
        }
        match decision {
            Ok(answer) => {
                entry.decision = Decision::Allowed.as_str().to_owned();
                entry.consent_id = answer.consent_id.clone();
                entry.sources = audit::sources(&answer.outcomes);
                commit(gw, entry).await?;
                Ok(answer)
            }
            Err(denial) => {
                entry.reason = denial.reason.as_str().to_owned();
                commit(gw, entry).await?;
                Err(denial.with_audit_id(audit_id))
            }
        }
    }

    /// The start of every read: its time budget, its caller, the rate
    /// check, and the audit entry with what is known so far.
    fn begin<T>(&self, request: &Request<T>, call: &Call<'_>) -> Result<Begun, GatewayError> {
        let gw = &self.gateway;
        let budget = caller_timeout(request.metadata())
            .unwrap_or(gw.config.gateway.default_deadline)
            .min(gw.config.gateway.max_deadline);
        // Over its rate: refused, and not audited (a flood must not fill
        // the trail); a refused identity is audited, within its own rate.
        let caller = call.admit(request, &gw.rate)?;
        let entry = call.audit_entry(&caller, gw.clock.now_ms());
        Ok(Begun {
            budget,
            caller,
            entry,
        })
    }

    async fn get_competence_passport(
        &self,
        request: Request<GetCompetencePassportRequest>,
        call: &Call<'_>,
    ) -> Result<CompetencePassport, GatewayError> {
        let gw = &self.gateway;
        let Begun {
            budget,
            caller,
            entry: mut base,
        } = self.begin(&request, call)?;
        let req = request.into_inner();
        let purpose = validate::sanitized(&req.purpose);
        call.span().record("samverka.purpose", purpose.as_ref());
        base.subject_id = validate::sanitize(&req.subject_id);
        base.purpose = purpose.into_owned();
        base.details.extend(validate::case_details(
            &req.case_reference,
            &req.official_id,
        ));

        let mut entries = Vec::new();
        let mut reservations = Vec::new();
        let assembled = match caller {
            Ok(caller) => {
                super::passport::assemble(
                    gw,
                    &caller,
                    &req,
                    &base,
                    &mut entries,
                    adapter_deadline(budget),
                    call.trace().header(),
                    &mut reservations,
                )
                .await
            }
            Err(e) => Err(e),
        };
        // A passport too large to send is refused, and every read of it
        // audited as refused.
        let result = assembled.and_then(|passport| {
            check_size(&passport, gw.config.limits.max_response_bytes).inspect_err(|e| {
                let allowed = Decision::Allowed.as_str();
                for entry in entries.iter_mut().filter(|e| e.decision == allowed) {
                    entry.decision = Decision::Denied.as_str().to_owned();
                    entry.reason = e.reason.as_str().to_owned();
                }
            })?;
            Ok(passport)
        });
        // Counted consents' reads are used only if the passport goes out.
        for (r, returned_records) in reservations {
            r.settle(gw, returned_records && result.is_ok(), &base.caller)
                .await;
        }
        if entries.is_empty() {
            // Refused before any record type was judged: one entry says why.
            let mut entry = base;
            if let Err(e) = &result {
                entry.reason = e.reason.as_str().to_owned();
            }
            entries.push(entry);
        }
        let first_audit_id = entries[0].audit_id.clone();
        // Committed together: the group-commit writer makes them one
        // transaction when they arrive at once.
        for committed in
            futures_util::future::join_all(entries.into_iter().map(|e| commit(gw, e))).await
        {
            committed?;
        }
        result.map_err(|e| e.with_audit_id(first_audit_id))
    }

    /// Validation, access rule, consent, fan-out.
    async fn check_and_fetch(
        &self,
        caller: &Caller,
        req: &GetRecordsRequest,
        pending: &mut audit::PendingEntry,
        budget: Duration,
        traceparent: String,
    ) -> Result<Allowed, GatewayError> {
        let gw = &self.gateway;
        // One registry for the whole read, even if a new version comes.
        let registry = gw.registry.current();
        let subject = validate::subject(&req.subject_id)?;
        validate::case_fields(&req.case_reference, &req.official_id)?;
        let record_types = validate::record_types(&registry, &req.record_types)?;
        // No register serves them; they leave only in a passport, as the
        // person's own, never as a bare record.
        if record_types.iter().any(|t| t == SELF_DECLARED) {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                "record_types",
                "competence.self_declared is read only as part of a competence passport (GetCompetencePassport)",
            ));
        }
        validate::purpose(&registry, &req.purpose)?;
        validate::source_agencies(
            &req.source_agencies,
            Some(&|s| registry.router.has_source(s)),
        )?;

        let _access = telemetry::step_span!("access_rule").in_scope(|| {
            access::check(
                &registry.access_rules,
                &caller.agency,
                &req.purpose,
                &record_types,
            )
        })?;

        let consent_span = telemetry::step_span!(
            "consent_check",
            samverka.decision = tracing::field::Empty,
            samverka.reason = tracing::field::Empty
        );
        let consents = gw
            .store
            .consents_for(subject.as_str(), Some(caller.agency.as_str()))
            .instrument(consent_span.clone())
            .await
            .map_err(GatewayError::store)?;
        let permit = consent::decide(
            &consents,
            &req.purpose,
            &record_types,
            &req.source_agencies,
            gw.clock.now_ms(),
        );
        let (decision, reason) = Decision::of(&permit);
        telemetry::record_decision(&consent_span, decision, reason);
        gw.metrics.consent_check(&permit);
        let permit = permit?;
        // A counted consent's read is reserved before any source is asked.
        let reservation = crate::pipeline::terms::reserve(gw, &permit).await?;

        let plan = registry
            .router
            .plan(&record_types, &req.source_agencies, &permit);
        let query = FetchQuery {
            subject_id: subject.as_str().to_owned(),
            purpose: req.purpose.clone(),
            requesting_agency: caller.agency.to_string(),
            audit_ref: pending.entry().audit_id.clone(),
            traceparent,
            attest: None,
        };
        pending.arm(registry.router.asked(&plan));
        let mut result = registry
            .router
            .fetch(plan, &query, &permit, adapter_deadline(budget))
            .await;
        let outside_period =
            crate::pipeline::terms::keep_within_period(&permit, &mut result.records);
        Ok(Allowed {
            consent_id: permit.consent_id().to_owned(),
            result,
            outside_period,
            reservation,
        })
    }
}

#[tonic::async_trait]
impl record_exchange_server::RecordExchange for RecordExchangeService {
    async fn get_records(
        &self,
        request: Request<GetRecordsRequest>,
    ) -> Result<Response<GetRecordsResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::GetRecords,
            request.metadata(),
        );
        call.run(Box::pin(RecordExchangeService::get_records(
            self, request, &call,
        )))
        .await
    }

    async fn get_competence_passport(
        &self,
        request: Request<GetCompetencePassportRequest>,
    ) -> Result<Response<CompetencePassport>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::GetCompetencePassport,
            request.metadata(),
        );
        call.run(Box::pin(RecordExchangeService::get_competence_passport(
            self, request, &call,
        )))
        .await
    }

    async fn list_sources(
        &self,
        request: Request<ListSourcesRequest>,
    ) -> Result<Response<ListSourcesResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ListSources,
            request.metadata(),
        );
        call.run(Box::pin(async {
            call.identify(&request, &self.gateway.rate)?;
            // From the directory refreshed in the background: a caller
            // never makes the gateway call the adapters.
            let sources = self.gateway.registry.current().sources.sources().await;
            Ok(ListSourcesResponse { sources })
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_is_understood() {
        let mut md = MetadataMap::new();
        assert_eq!(caller_timeout(&md), None);
        for (v, d) in [
            ("250m", Duration::from_millis(250)),
            ("3S", Duration::from_secs(3)),
            ("2M", Duration::from_secs(120)),
            ("1H", Duration::from_secs(3600)),
            ("1500u", Duration::from_micros(1500)),
            ("99n", Duration::from_nanos(99)),
        ] {
            md.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(caller_timeout(&md), Some(d), "{v}");
        }
        for bad in ["", "m", "12", "1x", "1234567890S", "-1S"] {
            md.insert("grpc-timeout", bad.parse().unwrap());
            assert_eq!(caller_timeout(&md), None, "{bad}");
        }
    }

    #[test]
    fn adapters_get_most_of_the_budget() {
        assert_eq!(
            adapter_deadline(Duration::from_secs(5)),
            Duration::from_millis(4800)
        );
        assert_eq!(
            adapter_deadline(Duration::from_millis(500)),
            Duration::from_millis(450)
        );
        assert_eq!(
            adapter_deadline(Duration::from_millis(20)),
            Duration::from_millis(15)
        );
        assert_eq!(adapter_deadline(Duration::from_millis(3)), Duration::ZERO);
    }
}
