//! The `samverka.v1.AccessLog` service: a person's view, through a
//! registrar, of every decision about their records.
//!
//! It reads the audit trail (the same entries `samverka audit verify`
//! checks), so it shows denied attempts as well as reads. Pages follow the
//! chain order, or its reverse; the page token is the position of the last
//! event returned.
//! Reading the log is itself audited, so the person also sees who looked
//! at their log. A registrar reads it only with a person assertion for
//! that person ([`crate::person`]): the person is present, for this call.

use std::sync::Arc;

use samverka_proto::v1::{
    AccessEvent, ListAccessEventsRequest, ListAccessEventsResponse, access_log_server,
};
use tonic::{Request, Response, Status};

use super::rpc::{Call, Method};
use crate::audit::AuditEntry;
use crate::error::{GatewayError, Reason};
use crate::pipeline::identity::{self, Caller};
use crate::pipeline::validate;
use crate::state::Gateway;
use crate::time::to_timestamp;

/// Events per page unless the caller asks for fewer.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most events per page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The `samverka.v1.AccessLog` service.
#[derive(Debug, Clone)]
pub struct AccessLogService {
    gateway: Arc<Gateway>,
}

impl AccessLogService {
    /// The service over the gateway's state.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        AccessLogService { gateway }
    }

    fn event(&self, registry: &crate::config::RegistryTables, e: AuditEntry) -> AccessEvent {
        let agency_name = samverka_certs::OrgNumber::parse(&e.caller)
            .ok()
            .and_then(|org| registry.agency(&org).map(|a| a.name.clone()))
            .unwrap_or_default();
        let purpose = registry.purpose(&e.purpose);
        let purpose_description = purpose.map(|p| p.description.clone()).unwrap_or_default();
        let purpose_description_sv = purpose
            .and_then(|p| p.description_sv.clone())
            .unwrap_or_default();
        AccessEvent {
            time: Some(to_timestamp(e.time_ms)),
            agency: e.caller,
            agency_name,
            method: e.method,
            purpose: e.purpose,
            purpose_description,
            record_types: e.record_types,
            outcome: e.decision,
            reason: e.reason,
            sources: e.sources,
            consent_id: e.consent_id,
            audit_id: e.audit_id,
            details: e.details.into_iter().collect(),
            purpose_description_sv,
        }
    }

    async fn list(
        &self,
        request: Request<ListAccessEventsRequest>,
        call: &Call<'_>,
    ) -> Result<ListAccessEventsResponse, GatewayError> {
        let gw = &self.gateway;
        let caller = call.admit(&request, &gw.rate)?;
        let req = request.into_inner();
        // The person sees that their log was read, or that someone tried,
        // and by whom; an allowed read is committed before the log is
        // read, so that the page shows it too.
        let mut entry = call.audit_entry(&caller, gw.clock.now_ms());
        entry.subject_id = validate::sanitize(&req.subject_id);
        let query = self.query(caller, &req, &mut entry).await;
        let query = gw.audit.commit_outcome(entry, query).await?;
        self.page(query).await
    }

    /// Who may read the log (a registrar, with the person's assertion),
    /// and what they asked for.
    async fn query(
        &self,
        caller: Result<Caller, GatewayError>,
        req: &ListAccessEventsRequest,
        entry: &mut crate::audit::AuditEntry,
    ) -> Result<Query, GatewayError> {
        let gw = &self.gateway;
        let registry = gw.registry.current();
        let (org, registrar) = identity::registrar(caller?, &registry)?;
        let proven = registry.person.verify(
            &org,
            &registrar,
            req,
            crate::person::Level::Read,
            gw.clock.now_ms(),
        )?;
        entry.details.extend(proven.evidence.details());
        let subject = validate::subject(&req.subject_id)?;
        let from_ms = validate::time("from", req.from.as_ref(), Reason::FieldMissing)?.unwrap_or(0);
        let to_ms =
            validate::time("to", req.to.as_ref(), Reason::FieldMissing)?.unwrap_or(i64::MAX);
        let start: i64 = if req.page_token.is_empty() {
            if req.newest_first { i64::MAX } else { 0 }
        } else {
            req.page_token
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    GatewayError::invalid(
                        Reason::PageTokenInvalid,
                        "page_token",
                        "page_token is not one this service gave",
                    )
                })?
        };
        let caller = if req.agency.is_empty() {
            None
        } else {
            let org = samverka_certs::OrgNumber::parse(&req.agency).map_err(|_| {
                GatewayError::invalid(
                    Reason::AgencyIdInvalid,
                    "agency",
                    "agency must be a 10-digit organisation number",
                )
            })?;
            Some(org.as_str().to_owned())
        };
        let size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        crate::person::spend(&gw.store, &org, &proven, gw.clock.now_ms()).await?;
        Ok(Query {
            subject: subject.as_str().to_owned(),
            from_ms,
            to_ms,
            start,
            newest_first: req.newest_first,
            caller,
            size,
        })
    }

    /// One page of the log.
    async fn page(&self, q: Query) -> Result<ListAccessEventsResponse, GatewayError> {
        let mut entries = self
            .gateway
            .store
            .access_log(crate::store::LogPage {
                subject_id: q.subject.clone(),
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                caller: q.caller.clone(),
                position: q.start,
                newest_first: q.newest_first,
                limit: i64::from(q.size) + 1,
            })
            .await
            .map_err(GatewayError::store)?;
        let next_page_token = if entries.len() > q.size as usize {
            entries.truncate(q.size as usize);
            entries
                .last()
                .map(|e| e.seq.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        // Agency names and purpose descriptions as the registry has them now.
        let registry = self.gateway.registry.current();
        Ok(ListAccessEventsResponse {
            events: entries
                .into_iter()
                .map(|e| self.event(&registry, e))
                .collect(),
            next_page_token,
        })
    }
}

/// A read of one person's log, as asked for.
struct Query {
    subject: String,
    from_ms: i64,
    to_ms: i64,
    /// The page token: the last position returned (0 or `i64::MAX` at the
    /// start).
    start: i64,
    newest_first: bool,
    caller: Option<String>,
    size: u32,
}

#[tonic::async_trait]
impl access_log_server::AccessLog for AccessLogService {
    async fn list(
        &self,
        request: Request<ListAccessEventsRequest>,
    ) -> Result<Response<ListAccessEventsResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::AccessLogList,
            request.metadata(),
        );
        call.run(Box::pin(Self::list(self, request, &call))).await
    }
}
