//! The `samverka.v1.SelfDeclaredMeritService` service: merits a person declares
//! about themselves, through a registrar, with the person's assertion.
//!
//! The gateway keeps them ([`crate::store::merits`]) and puts them in the
//! person's competence passport as self-declared, issued by the person and
//! attested by no one, where a consent covers `competence.self_declared`
//! (see [`crate::service::passport`]). Every call is audited in the
//! person's access log: a declaration and a withdrawal commit their entry
//! with the row, in one transaction; a refusal commits its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use samverka_adapter::credential::merit::SELF_DECLARED;
use samverka_proto::records::v1::{Record, SelfDeclaredMerit, record::Payload};
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::{
    DeclareMeritRequest, DeclareMeritResponse, DeclaredMerit, ListMeritsRequest,
    ListMeritsResponse, SourceOutcome, WithdrawMeritRequest, WithdrawMeritResponse,
    self_declared_merit_service_server, source_outcome,
};
use tonic::{Request, Response, Status};

use super::rpc::{Call, Method};
use crate::audit::{AuditEntry, Decision};
use crate::error::{GatewayError, Reason};
use crate::person::{Level, Proven};
use crate::pipeline::identity::{self, Caller};
use crate::pipeline::routing::FetchResult;
use crate::pipeline::validate::{self, sanitize};
use crate::state::Gateway;
use crate::store::merits::{Declared, DeclaredMeritRow, Withdrawn};
use crate::time::{rfc3339, to_timestamp};

mod check;
pub use check::{
    MAX_DESCRIPTION_CHARS, MAX_SKILLS, MAX_TITLE_CHARS, check, is_skill_concept, is_uuid,
};

/// The most merits in force one person may keep.
pub const MAX_MERITS: usize = 100;

/// The `samverka.v1.SelfDeclaredMeritService` service.
#[derive(Debug, Clone)]
pub struct MeritsService {
    gateway: Arc<Gateway>,
}

/// `entry` as the change commits it with its row: allowed.
fn allowed(entry: &AuditEntry) -> AuditEntry {
    AuditEntry {
        decision: Decision::Allowed.as_str().to_owned(),
        ..entry.clone()
    }
}

/// A stored merit as the API answers it (`declared_at` filled in).
pub fn to_proto(row: &DeclaredMeritRow, audit_id: &str) -> DeclaredMerit {
    let mut merit = SelfDeclaredMerit::decode(row.merit.as_slice()).unwrap_or_default();
    merit.declared_at = rfc3339(row.declared_at_ms);
    DeclaredMerit {
        merit_id: row.merit_id.clone(),
        subject_id: row.subject_id.clone(),
        merit: Some(merit),
        declared_at: Some(to_timestamp(row.declared_at_ms)),
        withdrawn_at: row.withdrawn_at_ms.map(to_timestamp),
        registrar_agency: row.registrar_agency.clone(),
        audit_id: audit_id.to_owned(),
    }
}

/// Adds the person's self-declared merits in force to `result`, as records
/// of the gateway's own source; a store that fails is that source's
/// failure, as a register's would be.
pub(super) async fn as_source(
    gw: &Gateway,
    subject: &str,
    result: &mut FetchResult,
    started_ms: i64,
) {
    let keeper = gw.config.gateway.org_number.to_string();
    let mut outcome = SourceOutcome {
        source_agency: keeper.clone(),
        source_name: SELF_DECLARED_SOURCE.to_owned(),
        status: source_outcome::Status::Ok as i32,
        ..Default::default()
    };
    match gw.store.declared_merits(subject).await {
        Ok(rows) => {
            outcome.record_count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
            result.records.extend(rows.iter().map(|row| {
                let merit = to_proto(row, "");
                Record {
                    record_type: SELF_DECLARED.to_owned(),
                    subject_id: row.subject_id.clone(),
                    source_agency: keeper.clone(),
                    record_id: row.merit_id.clone(),
                    updated_at: Some(to_timestamp(row.declared_at_ms)),
                    payload: merit.merit.map(Payload::SelfDeclaredMerit),
                }
            }));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the person's self-declared merits");
            outcome.status = source_outcome::Status::Unavailable as i32;
            outcome.message = "the gateway's store did not answer".to_owned();
        }
    }
    result.outcomes.push(outcome);
    result.answered_after.push(Duration::from_millis(
        u64::try_from(gw.clock.now_ms() - started_ms).unwrap_or_default(),
    ));
}

/// The name of the self-declared merits' source in a passport.
pub const SELF_DECLARED_SOURCE: &str = "self-declared by the person";

impl MeritsService {
    /// The service over the gateway's state.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        MeritsService { gateway }
    }

    /// The registrar calling and what its person assertion for `req`
    /// proves; the evidence goes into `entry`.
    fn prove<R: PersonBound>(
        &self,
        caller: Result<Caller, GatewayError>,
        req: &R,
        level: Level,
        entry: &mut AuditEntry,
    ) -> Result<(samverka_certs::OrgNumber, Proven), GatewayError> {
        let registry = self.gateway.registry.current();
        let (org, registrar) = identity::registrar(caller?, &registry)?;
        let proven =
            registry
                .person
                .verify(&org, &registrar, req, level, self.gateway.clock.now_ms())?;
        entry.details.extend(proven.evidence.details());
        Ok((org, proven))
    }

    /// The entry every call starts from: about the person, the record type
    /// of self-declared merits.
    fn entry(
        &self,
        call: &Call<'_>,
        caller: &Result<Caller, GatewayError>,
        subject: &str,
    ) -> AuditEntry {
        let mut entry = call.audit_entry(caller, self.gateway.clock.now_ms());
        entry.subject_id = sanitize(subject);
        entry.record_types = vec![SELF_DECLARED.to_owned()];
        entry
    }

    /// A declaration or a withdrawal (`event`): admitted, then `change`
    /// run to its end in a task of its own even if the caller goes away,
    /// so that a merit changed is never left without its entry (`change`
    /// commits it with the row) nor a refusal unrecorded (committed here).
    async fn change<R, F, Fut>(
        &self,
        request: Request<R>,
        call: &Call<'_>,
        event: &str,
        change: F,
    ) -> Result<DeclaredMerit, GatewayError>
    where
        R: PersonBound,
        F: FnOnce(MeritsService, Result<Caller, GatewayError>, R, AuditEntry) -> Fut,
        Fut: Future<Output = (Result<DeclaredMerit, GatewayError>, AuditEntry)> + Send + 'static,
    {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let req = request.into_inner();
        let mut entry = self.entry(call, &caller, req.person().unwrap_or_default());
        entry.details.insert("merit_event".into(), event.into());
        let audit = self.gateway.audit.clone();
        let run = change(self.clone(), caller, req, entry);
        tokio::spawn(async move {
            let (result, entry) = run.await;
            audit.commit_refusal(entry, result).await
        })
        .await
        .map_err(GatewayError::internal)?
    }

    async fn declare(
        &self,
        request: Request<DeclareMeritRequest>,
        call: &Call<'_>,
    ) -> Result<DeclaredMerit, GatewayError> {
        self.change(
            request,
            call,
            "declared",
            |this, caller, req, mut entry| async move {
                (
                    this.record_declaration(caller, req, &mut entry).await,
                    entry,
                )
            },
        )
        .await
    }

    async fn record_declaration(
        &self,
        caller: Result<Caller, GatewayError>,
        req: DeclareMeritRequest,
        entry: &mut AuditEntry,
    ) -> Result<DeclaredMerit, GatewayError> {
        let (org, proven) = self.prove(caller, &req, Level::Grant, entry)?;
        let subject = validate::subject(&req.subject_id)?;
        let now_ms = self.gateway.clock.now_ms();
        let today = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000) + 86_400)
            .map_err(GatewayError::internal)?
            .date();
        let mut merit = req.merit.unwrap_or_default();
        check(&merit, today)?;
        merit.declared_at = String::new();
        crate::person::spend(&self.gateway.store, &org, &proven, now_ms).await?;
        let row = DeclaredMeritRow {
            merit_id: uuid::Uuid::new_v4().to_string(),
            subject_id: subject.as_str().to_owned(),
            registrar_agency: org.to_string(),
            merit: merit.encode_to_vec(),
            declared_at_ms: now_ms,
            withdrawn_at_ms: None,
        };
        entry
            .details
            .insert("merit_id".into(), row.merit_id.clone());
        let committed = allowed(entry);
        match self
            .gateway
            .store
            .declare_merit(row.clone(), MAX_MERITS, committed)
            .await
            .map_err(GatewayError::store)?
        {
            Declared::Done(e) => Ok(to_proto(&row, &e.audit_id)),
            Declared::Full => Err(GatewayError::new(
                Reason::MeritLimit,
                format!(
                    "a person keeps at most {MAX_MERITS} self-declared merits; withdraw one first"
                ),
            )),
        }
    }

    async fn withdraw(
        &self,
        request: Request<WithdrawMeritRequest>,
        call: &Call<'_>,
    ) -> Result<DeclaredMerit, GatewayError> {
        self.change(
            request,
            call,
            "withdrawn",
            |this, caller, req, mut entry| async move {
                (this.record_withdrawal(caller, req, &mut entry).await, entry)
            },
        )
        .await
    }

    async fn record_withdrawal(
        &self,
        caller: Result<Caller, GatewayError>,
        req: WithdrawMeritRequest,
        entry: &mut AuditEntry,
    ) -> Result<DeclaredMerit, GatewayError> {
        let (org, proven) = self.prove(caller, &req, Level::Revoke, entry)?;
        let subject = validate::subject(&req.subject_id)?;
        if !is_uuid(&req.merit_id) {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                "merit_id",
                "merit_id must be a merit's id, as Declare or List answered it",
            ));
        }
        // Only an id of the right form goes into the trail.
        entry
            .details
            .insert("merit_id".into(), req.merit_id.clone());
        let now_ms = self.gateway.clock.now_ms();
        crate::person::spend(&self.gateway.store, &org, &proven, now_ms).await?;
        let committed = allowed(entry);
        match self
            .gateway
            .store
            .withdraw_merit(subject.as_str(), &req.merit_id, now_ms, committed)
            .await
            .map_err(GatewayError::store)?
        {
            Withdrawn::Done(e, row) => Ok(to_proto(&row, &e.audit_id)),
            Withdrawn::NotFound => Err(GatewayError::new(
                Reason::MeritNotFound,
                "the person has no merit in force with that id",
            )),
        }
    }

    async fn list(
        &self,
        request: Request<ListMeritsRequest>,
        call: &Call<'_>,
    ) -> Result<ListMeritsResponse, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let req = request.into_inner();
        // Reading them is on the person's record too, as reading the
        // access log is: committed before the answer.
        let mut entry = self.entry(call, &caller, &req.subject_id);
        // The assertion is for this one call, as every person-bound call's.
        let subject = async {
            let (org, proven) = self.prove(caller, &req, Level::Read, &mut entry)?;
            let subject = validate::subject(&req.subject_id)?;
            let now_ms = self.gateway.clock.now_ms();
            crate::person::spend(&self.gateway.store, &org, &proven, now_ms).await?;
            Ok(subject)
        }
        .await;
        let subject = self
            .gateway
            .audit
            .commit_outcome(entry.clone(), subject)
            .await?;
        let rows = self
            .gateway
            .store
            .declared_merits(subject.as_str())
            .await
            .map_err(GatewayError::store)?;
        Ok(ListMeritsResponse {
            merits: rows.iter().map(|r| to_proto(r, &entry.audit_id)).collect(),
        })
    }
}

#[tonic::async_trait]
impl self_declared_merit_service_server::SelfDeclaredMeritService for MeritsService {
    async fn declare_merit(
        &self,
        request: Request<DeclareMeritRequest>,
    ) -> Result<Response<DeclareMeritResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::MeritsDeclare,
            request.metadata(),
        );
        let declared = async {
            let merit = Self::declare(self, request, &call).await?;
            Ok(DeclareMeritResponse { merit: Some(merit) })
        };
        call.run(Box::pin(declared)).await
    }

    async fn list_merits(
        &self,
        request: Request<ListMeritsRequest>,
    ) -> Result<Response<ListMeritsResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::MeritsList,
            request.metadata(),
        );
        call.run(Box::pin(Self::list(self, request, &call))).await
    }

    async fn withdraw_merit(
        &self,
        request: Request<WithdrawMeritRequest>,
    ) -> Result<Response<WithdrawMeritResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::MeritsWithdraw,
            request.metadata(),
        );
        let withdrawn = async {
            let merit = Self::withdraw(self, request, &call).await?;
            Ok(WithdrawMeritResponse { merit: Some(merit) })
        };
        call.run(Box::pin(withdrawn)).await
    }
}
