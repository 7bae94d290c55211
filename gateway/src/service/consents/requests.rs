//! Consents asked for by the agency that needs them and decided by the
//! person: `RequestConsent`, `ApproveConsent`, `RejectConsent`,
//! `PauseConsent` and `ResumeConsent`. Each change of state is made by the
//! store in one transaction with its audit entry
//! ([`crate::store::lifecycle`]); a refused call is audited like any
//! other.

use samverka_certs::OrgNumber;
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::{
    ApproveConsentRequest, Consent, ConsentReceipt, PauseConsentRequest, RejectConsentRequest,
    RequestConsentRequest, ResumeConsentRequest,
};
use tonic::Request;

use super::{ConsentsService, to_proto};
use crate::audit::{AuditEntry, Decision};
use crate::error::{GatewayError, Reason};
use crate::person::{Level, Proven};
use crate::pipeline::access;
use crate::pipeline::identity::Caller;
use crate::pipeline::validate::{self, sanitize};
use crate::service::rpc::Call;
use crate::store::{Approved, ConsentState, StoredConsent, Transition, Transitioned};

/// The longest justification an agency may give, in characters.
pub(super) const MAX_JUSTIFICATION_CHARS: usize = 500;

/// A calendar day, `YYYY-MM-DD`, or empty.
fn day(field: &str, value: &str) -> Result<(), GatewayError> {
    if value.is_empty() {
        return Ok(());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &format).map(drop).map_err(|_| {
        GatewayError::invalid(
            Reason::FieldInvalid,
            field,
            format!("{field} must be a date, YYYY-MM-DD"),
        )
    })
}

pub(super) fn state_invalid(c: &StoredConsent, wanted: &str) -> GatewayError {
    GatewayError {
        detail: Some(format!("consent {} is {}", c.consent_id, c.state.as_str())),
        ..GatewayError::new(
            Reason::ConsentStateInvalid,
            format!("the consent is {}: it cannot be {wanted}", c.state.as_str()),
        )
    }
}

impl ConsentsService {
    pub(super) async fn request_consent(
        &self,
        request: Request<RequestConsentRequest>,
        call: &Call<'_>,
    ) -> Result<Consent, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let mut entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let req = request.into_inner();
        entry.subject_id = sanitize(&req.subject_id);
        entry.purpose = sanitize(&req.purpose);
        entry.record_types = req
            .record_types
            .iter()
            .take(validate::MAX_RECORD_TYPES)
            .map(|t| sanitize(t))
            .collect();
        entry
            .details
            .insert("request_id".into(), sanitize(&req.request_id));
        // Run to its end even if the caller goes away: a request stored is
        // never left without its entry.
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.record_request(caller, req).await;
            if let Ok(c) = &result {
                entry.consent_id = c.consent_id.clone();
                entry
                    .details
                    .insert("grantee_agency".into(), c.grantee_agency.clone());
                entry
                    .details
                    .insert("requested_by".into(), c.grantee_agency.clone());
                entry.details.insert(
                    "state".into(),
                    c.status().as_str_name().to_ascii_lowercase(),
                );
                entry
                    .details
                    .insert("consent_event".into(), "requested".into());
            }
            this.gateway.audit.commit_outcome(entry, result).await
        })
        .await
        .map_err(GatewayError::internal)?
    }

    async fn record_request(
        &self,
        caller: Result<Caller, GatewayError>,
        req: RequestConsentRequest,
    ) -> Result<Consent, GatewayError> {
        let caller = caller?;
        let config = &self.gateway.config;
        let registry = self.gateway.registry.current();
        let now_ms = self.gateway.clock.now_ms();
        let subject = validate::subject(&req.subject_id)?;
        let purpose = validate::purpose(&registry, &req.purpose)?;
        let record_types = validate::record_types(&registry, &req.record_types)?;
        validate::covered_by(purpose, &req.record_types)?;
        access::check(
            &registry.access_rules,
            &caller.agency,
            &purpose.code,
            &record_types,
        )?;
        let source_agencies = validate::source_agencies(&req.source_agencies, None)?;
        day("records_from", &req.records_from)?;
        day("records_until", &req.records_until)?;
        if !req.records_from.is_empty()
            && !req.records_until.is_empty()
            && req.records_from > req.records_until
        {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                "records_until",
                "records_until is before records_from",
            ));
        }
        let max_days = config.consents.max_lifetime.as_secs() / (24 * 3600);
        if req.valid_for_days == 0 || u64::from(req.valid_for_days) > max_days {
            return Err(GatewayError::invalid(
                Reason::ValidityInvalid,
                "valid_for_days",
                format!("valid_for_days must be between 1 and {max_days}"),
            ));
        }
        if req.one_time && req.max_reads > 1 {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                "max_reads",
                "a one-time consent allows one read",
            ));
        }
        validate::required("justification", &req.justification)?;
        validate::stored_text("justification", &req.justification, MAX_JUSTIFICATION_CHARS)?;
        validate::request_id(&req.request_id)?;

        let stored = StoredConsent {
            consent_id: uuid::Uuid::new_v4().to_string(),
            subject_id: subject.as_str().to_owned(),
            grantee_agency: caller.agency.to_string(),
            record_types,
            purpose: purpose.code.clone(),
            source_agencies,
            registrar_agency: caller.agency.to_string(),
            request_id: req.request_id,
            granted_at_ms: now_ms,
            state: ConsentState::Pending,
            requested_by: caller.agency.to_string(),
            justification: req.justification,
            records_from: req.records_from,
            records_until: req.records_until,
            one_time: req.one_time,
            max_reads: if req.one_time { 1 } else { req.max_reads },
            decide_by_ms: Some(now_ms + config.consents.request_expiry.as_millis() as i64),
            valid_for_days: req.valid_for_days,
            ..Default::default()
        };
        let requested = stored.clone();
        let (stored, inserted) = self
            .gateway
            .store
            .insert_consent(stored)
            .await
            .map_err(GatewayError::store)?;
        let same = stored.subject_id == requested.subject_id
            && stored.record_types == requested.record_types
            && stored.purpose == requested.purpose
            && stored.source_agencies == requested.source_agencies
            && stored.records_from == requested.records_from
            && stored.records_until == requested.records_until
            && stored.max_reads == requested.max_reads
            && stored.one_time == requested.one_time
            && stored.valid_for_days == requested.valid_for_days
            && stored.justification == requested.justification;
        if !inserted && !same {
            return Err(GatewayError::new(
                Reason::RequestIdReused,
                "request_id was already used for a different request",
            ));
        }
        Ok(to_proto(
            &stored,
            self.gateway.clock.now_ms(),
            &self.gateway.registry.current(),
        ))
    }

    /// One change of state by the person, through a registrar: the
    /// registrar's assertion for the consent's person, `check` on the
    /// consent as it is, the assertion spent, then the change with its
    /// entry. `event` names the change in the receipt and the events.
    #[allow(clippy::too_many_arguments)]
    async fn change<R: PersonBound>(
        &self,
        registry: &crate::registry::Registry,
        caller: Result<Caller, GatewayError>,
        req: &R,
        consent_id: &str,
        level: Level,
        entry: &mut AuditEntry,
        event: &str,
        make: impl FnOnce(
            &StoredConsent,
            &OrgNumber,
            &crate::config::Registrar,
        ) -> Result<Transition, GatewayError>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let (org, bounds, proven): (OrgNumber, crate::config::Registrar, Proven) =
            self.prove(registry, caller, req, level, entry)?;
        validate::consent_id(consent_id)?;
        let current = self.of_person(consent_id, &proven, entry).await?;
        let mut t = make(&current, &org, &bounds)?;
        self.spend(&org, &proven).await?;
        t.entry = entry.clone();
        t.entry.decision = Decision::Allowed.as_str().to_owned();
        t.entry.details.insert("consent_event".into(), event.into());
        t.by = Some(org.to_string());
        match self
            .gateway
            .store
            .transition(t)
            .await
            .map_err(GatewayError::store)?
        {
            Transitioned::Done(c, committed) => {
                tracing::info!(consent_id = %c.consent_id, registrar = %org, event, "consent changed");
                let mut receipt =
                    self.receipt(&c, (event, committed.time_ms), &org, &proven.evidence)?;
                receipt.event = event.to_owned();
                Ok(receipt)
            }
            Transitioned::Refused(c) => Err(state_invalid(&c, event)),
            Transitioned::NotFound => Err(GatewayError::new(
                Reason::ConsentNotFound,
                "no consent has that id",
            )),
        }
    }

    /// Runs `change` for a call and audits a refusal (a change that was
    /// made committed its own entry).
    async fn audited(
        &self,
        mut entry: AuditEntry,
        consent_id: &str,
        result: impl std::future::Future<Output = (AuditEntry, Result<ConsentReceipt, GatewayError>)>,
    ) -> Result<ConsentReceipt, GatewayError> {
        entry.consent_id = sanitize(consent_id);
        let (mut entry, result) = result.await;
        self.attribute(&mut entry, consent_id).await;
        self.gateway.audit.commit_refusal(entry, result).await
    }

    pub(super) async fn approve(
        &self,
        request: Request<ApproveConsentRequest>,
        call: &Call<'_>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let req = request.into_inner();
        let now_ms = self.gateway.clock.now_ms();
        let registry = self.gateway.registry.current();
        let id = req.consent_id.clone();
        self.audited(entry.clone(), &id, async {
            let mut entry = entry;
            let r = self
                .change(
                    &registry,
                    caller,
                    &req,
                    &req.consent_id,
                    Level::Grant,
                    &mut entry,
                    "approved",
                    |c, org, bounds| {
                        if c.state != ConsentState::Pending {
                            return Err(state_invalid(c, "approved"));
                        }
                        if c.decide_by_ms.is_some_and(|d| now_ms >= d) {
                            return Err(GatewayError::new(
                                Reason::ConsentStateInvalid,
                                "the request has expired undecided",
                            ));
                        }
                        within_bounds(c, org, bounds)?;
                        let approved = narrowed(c, &req, now_ms, &registry)?;
                        Ok(Transition {
                            consent_id: c.consent_id.clone(),
                            to: ConsentState::Active,
                            only_from: Some(ConsentState::Pending),
                            at_ms: now_ms,
                            by: None,
                            reason: None,
                            approved: Some(approved),
                            entry: crate::audit::entry("", 0),
                        })
                    },
                )
                .await;
            (entry, r)
        })
        .await
    }

    pub(super) async fn reject(
        &self,
        request: Request<RejectConsentRequest>,
        call: &Call<'_>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let req = request.get_ref().clone();
        self.simple(
            request.map(|_| ()),
            call,
            req.clone(),
            req.consent_id.clone(),
            Level::Revoke,
            ConsentState::Rejected,
            "rejected",
            Some(req.reason),
        )
        .await
    }

    pub(super) async fn pause(
        &self,
        request: Request<PauseConsentRequest>,
        call: &Call<'_>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let req = request.get_ref().clone();
        self.simple(
            request.map(|_| ()),
            call,
            req.clone(),
            req.consent_id,
            Level::Revoke,
            ConsentState::Paused,
            "paused",
            None,
        )
        .await
    }

    pub(super) async fn resume(
        &self,
        request: Request<ResumeConsentRequest>,
        call: &Call<'_>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let req = request.get_ref().clone();
        self.simple(
            request.map(|_| ()),
            call,
            req.clone(),
            req.consent_id,
            Level::Grant,
            ConsentState::Active,
            "resumed",
            None,
        )
        .await
    }

    /// Reject, pause and resume: a change to `to` from the one state it
    /// may come from by the person's hand.
    #[allow(clippy::too_many_arguments)]
    async fn simple<R: PersonBound + Send + Sync>(
        &self,
        request: Request<()>,
        call: &Call<'_>,
        req: R,
        consent_id: String,
        level: Level,
        to: ConsentState,
        event: &'static str,
        reason: Option<String>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let now_ms = self.gateway.clock.now_ms();
        let from = match to {
            ConsentState::Rejected => ConsentState::Pending,
            ConsentState::Paused => ConsentState::Active,
            _ => ConsentState::Paused,
        };
        self.audited(entry.clone(), &consent_id, async {
            let mut entry = entry;
            if let Some(r) = &reason
                && let Err(e) =
                    validate::stored_text("reason", r, validate::MAX_REVOCATION_REASON_CHARS)
            {
                return (entry, Err(e));
            }
            let r = self
                .change(
                    &self.gateway.registry.current(),
                    caller,
                    &req,
                    &consent_id,
                    level,
                    &mut entry,
                    event,
                    |c, org, bounds| {
                        if c.state != from {
                            return Err(state_invalid(c, event));
                        }
                        // Resuming lets reads go on: the registrar's bounds
                        // apply as to a grant.
                        if to == ConsentState::Active {
                            within_bounds(c, org, bounds)?;
                        }
                        Ok(Transition {
                            consent_id: c.consent_id.clone(),
                            to,
                            only_from: Some(from),
                            at_ms: now_ms,
                            by: None,
                            reason: reason.clone(),
                            approved: None,
                            entry: crate::audit::entry("", 0),
                        })
                    },
                )
                .await;
            (entry, r)
        })
        .await
    }
}

/// A registrar lets a consent be read only within its bounds: its
/// purposes, and never for itself unless configured to.
fn within_bounds(
    c: &StoredConsent,
    org: &OrgNumber,
    bounds: &crate::config::Registrar,
) -> Result<(), GatewayError> {
    if !bounds.purposes.contains(&c.purpose) {
        return Err(GatewayError::new(
            Reason::PurposeNotRegistrable,
            format!(
                "this registrar may not record consents for purpose {}",
                c.purpose
            ),
        ));
    }
    if c.grantee_agency == org.as_str() && !bounds.self_grant {
        return Err(GatewayError::new(
            Reason::SelfGrant,
            "a registrar may not let itself read",
        ));
    }
    Ok(())
}

/// The terms the person approves: the request's, or narrower. Anything
/// wider is `APPROVAL_WIDENS`.
fn narrowed(
    c: &StoredConsent,
    req: &ApproveConsentRequest,
    now_ms: i64,
    registry: &crate::config::RegistryTables,
) -> Result<Approved, GatewayError> {
    let widens = |field: &str, what: &str| {
        GatewayError::invalid(
            Reason::ApprovalWidens,
            field,
            format!("an approval may narrow the request, not widen it: {what}"),
        )
    };
    let record_types = if req.record_types.is_empty() {
        c.record_types.clone()
    } else {
        let types = validate::record_types(registry, &req.record_types)?;
        if let Some(t) = types.iter().find(|t| !c.record_types.contains(t)) {
            return Err(widens("record_types", &format!("{t} was not requested")));
        }
        types
    };
    let source_agencies = if req.source_agencies.is_empty() {
        c.source_agencies.clone()
    } else {
        let sources = validate::source_agencies(&req.source_agencies, None)?;
        if !c.source_agencies.is_empty()
            && let Some(s) = sources.iter().find(|s| !c.source_agencies.contains(s))
        {
            return Err(widens("source_agencies", &format!("{s} was not requested")));
        }
        sources
    };
    let requested_until = now_ms + i64::from(c.valid_for_days) * 24 * 3600 * 1000;
    let valid_until_ms = match &req.valid_until {
        None => requested_until,
        Some(t) => {
            let until = crate::time::from_timestamp(t).ok_or_else(|| {
                GatewayError::invalid(
                    Reason::ValidityInvalid,
                    "valid_until",
                    "valid_until is not a valid time",
                )
            })?;
            if until <= now_ms {
                return Err(GatewayError::invalid(
                    Reason::ValidityInvalid,
                    "valid_until",
                    "valid_until is in the past",
                ));
            }
            if until > requested_until {
                return Err(widens("valid_until", "it ends later than requested"));
            }
            until
        }
    };
    Ok(Approved {
        record_types,
        source_agencies,
        valid_from_ms: now_ms,
        valid_until_ms,
    })
}
