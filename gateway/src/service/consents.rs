//! The `samverka.v1.Consents` service, for registrar agencies: grant,
//! revoke, get and list a person's consents. Grants and revocations answer
//! with a receipt signed by the gateway. Besides the ids and codes that
//! validation parses, what a registrar stores (a grant's `evidence_ref`, a
//! revocation's `reason`) is bounded in length (`FIELD_TOO_LONG`).
//!
//! Every call needs a person assertion for the person it concerns
//! ([`crate::person`]): the registrar proves the person is present, for
//! this call. A registrar grants only for the purposes it is configured
//! for, and not to itself unless configured to; any registrar holding the
//! person's assertion may revoke (withdrawing is as easy as giving), and
//! the consent then names who revoked it.
//!
//! Every call, allowed or refused, is an audit entry about the person it
//! concerns (for Get and Revoke, the person of the consent found), in the
//! same chain as the reads and in that person's access log, committed
//! before the answer leaves. A change is committed to the store before
//! its entry: if the entry then cannot be committed, the caller gets
//! `STORE_UNAVAILABLE` and its retry (grants and revocations are
//! idempotent) answers with the same receipt and is audited.

mod api;
pub mod expiry;
mod requests;
mod view;
mod watch;

use view::about;
pub use view::{status_at, to_proto};

use std::sync::Arc;

use samverka_certs::OrgNumber;
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::{
    Consent, ConsentReceipt, GetConsentRequest, GrantConsentRequest, ListConsentsRequest,
    ListConsentsResponse, RevokeConsentRequest,
};
use tonic::Request;

use super::rpc::Call;
use crate::audit::AuditEntry;
use crate::config::Registrar;
use crate::credential::receipt::{ReceiptClaims, ReceiptConsent, rfc3339};
use crate::error::{GatewayError, Reason};
use crate::person::{Level, PersonEvidence, Proven};
use crate::pipeline::identity::{self, Caller};
use crate::pipeline::validate::{self, sanitize};
use crate::store::StoredConsent;
use crate::{Gateway, time};

/// Whether a repeated grant (same registrar and request id) asks for the
/// consent that was recorded the first time. `valid_from` is not compared:
/// a request that left it unset means "now", which moves between retries.
fn same_grant(stored: &StoredConsent, requested: &StoredConsent) -> bool {
    stored.subject_id == requested.subject_id
        && stored.grantee_agency == requested.grantee_agency
        && stored.record_types == requested.record_types
        && stored.purpose == requested.purpose
        && stored.source_agencies == requested.source_agencies
        && stored.valid_until_ms == requested.valid_until_ms
        && stored.evidence_ref == requested.evidence_ref
}

/// The `samverka.v1.Consents` service.
#[derive(Debug, Clone)]
pub struct ConsentsService {
    gateway: Arc<Gateway>,
}

impl ConsentsService {
    /// The service over the gateway's state.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        ConsentsService { gateway }
    }

    /// The registrar calling and what its person assertion for `req`
    /// proves, judged with `registry` (the call's one snapshot); the
    /// evidence goes into `entry` either way it ends.
    fn prove<R: PersonBound>(
        &self,
        registry: &crate::registry::Registry,
        caller: Result<Caller, GatewayError>,
        req: &R,
        level: Level,
        entry: &mut AuditEntry,
    ) -> Result<(OrgNumber, Registrar, Proven), GatewayError> {
        let (org, registrar) = identity::registrar(caller?, registry)?;
        let now_ms = self.gateway.clock.now_ms();
        let proven = registry
            .person
            .verify(&org, &registrar, req, level, now_ms)?;
        entry.details.extend(proven.evidence.details());
        Ok((org, registrar, proven))
    }

    /// Marks the assertion used (single use, across replicas): the last
    /// step before the call takes effect.
    async fn spend(&self, org: &OrgNumber, proven: &Proven) -> Result<(), GatewayError> {
        crate::person::spend(
            &self.gateway.store,
            org,
            proven,
            self.gateway.clock.now_ms(),
        )
        .await
    }

    /// Makes the entry of a refused call about consent `id` about its
    /// person, if it exists, so that the person sees who tried.
    async fn attribute(&self, entry: &mut AuditEntry, id: &str) {
        if !entry.subject_id.is_empty() || validate::consent_id(id).is_err() {
            return;
        }
        if let Ok(Some(c)) = self.gateway.store.consent(id).await {
            about(entry, &c);
        }
    }

    async fn grant(
        &self,
        request: Request<GrantConsentRequest>,
        call: &Call<'_>,
    ) -> Result<ConsentReceipt, GatewayError> {
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
        entry.details = [
            ("grantee_agency", sanitize(&req.grantee_agency)),
            ("request_id", sanitize(&req.request_id)),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into();
        // Run to its end even if the caller goes away: a consent stored is
        // never left without its entry.
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.record_grant(caller, req, &mut entry).await;
            if let Ok(receipt) = &result {
                entry.consent_id = receipt
                    .consent
                    .as_ref()
                    .map(|c| c.consent_id.clone())
                    .unwrap_or_default();
                // A change event for the grantee (again on a retry, whose first
                // entry may not have been committed: at least once).
                entry
                    .details
                    .insert("consent_event".into(), "granted".into());
                entry.details.insert(
                    "state".into(),
                    receipt
                        .consent
                        .as_ref()
                        .map(|c| c.status().as_str_name().to_ascii_lowercase())
                        .unwrap_or_default(),
                );
            }
            this.gateway.audit.commit_outcome(entry, result).await
        })
        .await
        .map_err(GatewayError::internal)?
    }

    async fn record_grant(
        &self,
        caller: Result<Caller, GatewayError>,
        req: GrantConsentRequest,
        entry: &mut AuditEntry,
    ) -> Result<ConsentReceipt, GatewayError> {
        // One registry for the whole call: the registrar's bounds and the
        // grant's terms are judged with the same version.
        let registry = self.gateway.registry.current();
        let (org, bounds, proven) = self.prove(&registry, caller, &req, Level::Grant, entry)?;
        let registrar = &org;
        let config = &self.gateway.config;
        let now_ms = self.gateway.clock.now_ms();

        let subject = validate::subject(&req.subject_id)?;
        let grantee = validate::known_agency(&registry, "grantee_agency", &req.grantee_agency)?;
        let purpose = validate::purpose(&registry, &req.purpose)?;
        let record_types = validate::record_types(&registry, &req.record_types)?;
        validate::covered_by(purpose, &req.record_types)?;
        let source_agencies = validate::source_agencies(&req.source_agencies, None)?;
        let (valid_from_ms, valid_until_ms) = validate::validity(
            req.valid_from.as_ref(),
            req.valid_until.as_ref(),
            now_ms,
            config.consents.max_lifetime,
        )?;
        validate::request_id(&req.request_id)?;
        validate::stored_text(
            "evidence_ref",
            &req.evidence_ref,
            validate::MAX_EVIDENCE_REF_CHARS,
        )?;
        if !bounds.purposes.contains(&purpose.code) {
            return Err(GatewayError::new(
                Reason::PurposeNotRegistrable,
                format!(
                    "this registrar may not record consents for purpose {}",
                    purpose.code
                ),
            ));
        }
        if grantee == org && !bounds.self_grant {
            return Err(GatewayError::new(
                Reason::SelfGrant,
                "a registrar may not record a consent that lets itself read",
            ));
        }
        self.spend(&org, &proven).await?;

        let stored = StoredConsent {
            consent_id: uuid::Uuid::new_v4().to_string(),
            subject_id: subject.as_str().to_owned(),
            grantee_agency: grantee.as_str().to_owned(),
            record_types,
            purpose: purpose.code.clone(),
            source_agencies,
            valid_from_ms,
            valid_until_ms,
            registrar_agency: registrar.as_str().to_owned(),
            evidence_ref: req.evidence_ref,
            request_id: req.request_id,
            granted_at_ms: now_ms,
            revoked_at_ms: None,
            revocation_reason: None,
            revoked_by: None,
            ..Default::default()
        };
        let requested = stored.clone();
        let (stored, inserted) = self
            .gateway
            .store
            .insert_consent(stored)
            .await
            .map_err(GatewayError::store)?;
        if inserted {
            tracing::info!(consent_id = %stored.consent_id, registrar = %registrar, grantee = %stored.grantee_agency, purpose = %stored.purpose, "consent granted");
        } else if !same_grant(&stored, &requested) {
            return Err(GatewayError::new(
                Reason::RequestIdReused,
                "request_id was already used for a different consent",
            ));
        }
        self.receipt(
            &stored,
            ("granted", stored.granted_at_ms),
            &org,
            &proven.evidence,
        )
    }

    /// The receipt of an event (name, when) made by `registrar` for the
    /// person `evidence` proved present, with its signed JWS form.
    fn receipt(
        &self,
        c: &StoredConsent,
        (event, recorded_at_ms): (&str, i64),
        registrar: &OrgNumber,
        evidence: &PersonEvidence,
    ) -> Result<ConsentReceipt, GatewayError> {
        let signer = self.gateway.signer.current();
        let now_ms = self.gateway.clock.now_ms();
        let consent = to_proto(c, now_ms, &self.gateway.registry.current());
        let claims = ReceiptClaims {
            iss: signer.issuer().to_owned(),
            iat: now_ms.div_euclid(1000),
            event: event.to_owned(),
            recorded_at: rfc3339(recorded_at_ms),
            registrar: registrar.to_string(),
            consent: ReceiptConsent::from(&consent),
            person: Some(evidence.clone()),
        };
        let jws =
            crate::credential::receipt::sign(&signer, &claims).map_err(GatewayError::internal)?;
        Ok(ConsentReceipt {
            consent: Some(consent),
            event: event.to_owned(),
            recorded_at: Some(time::to_timestamp(recorded_at_ms)),
            jws,
        })
    }

    async fn revoke(
        &self,
        request: Request<RevokeConsentRequest>,
        call: &Call<'_>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let mut entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let req = request.into_inner();
        entry.consent_id = sanitize(&req.consent_id);
        let id = req.consent_id.clone();
        let result = self.record_revocation(caller, req, &mut entry).await;
        self.attribute(&mut entry, &id).await;
        match result {
            // The revocation committed its own entry with it.
            Ok((receipt, true)) => Ok(receipt),
            other => {
                let result = other.map(|(receipt, _)| receipt);
                self.gateway.audit.commit_outcome(entry, result).await
            }
        }
    }

    async fn record_revocation(
        &self,
        caller: Result<Caller, GatewayError>,
        req: RevokeConsentRequest,
        entry: &mut AuditEntry,
    ) -> Result<(ConsentReceipt, bool), GatewayError> {
        let registry = self.gateway.registry.current();
        let (org, _, proven) = self.prove(&registry, caller, &req, Level::Revoke, entry)?;
        let registrar = &org;
        validate::consent_id(&req.consent_id)?;
        validate::stored_text("reason", &req.reason, validate::MAX_REVOCATION_REASON_CHARS)?;
        self.of_person(&req.consent_id, &proven, entry).await?;
        self.spend(&org, &proven).await?;
        let now_ms = self.gateway.clock.now_ms();
        let mut committed = entry.clone();
        committed.decision = crate::audit::Decision::Allowed.as_str().to_owned();
        committed.details.insert("event".into(), "revoked".into());
        committed
            .details
            .insert("consent_event".into(), "revoked".into());
        let t = crate::store::Transition {
            consent_id: req.consent_id.clone(),
            to: crate::store::ConsentState::Revoked,
            only_from: None,
            at_ms: now_ms,
            by: Some(org.to_string()),
            reason: Some(req.reason.clone()),
            approved: None,
            entry: committed,
        };
        let transitioned = self
            .gateway
            .store
            .transition(t)
            .await
            .map_err(GatewayError::store)?;
        // Revoking twice is not an error: a registrar that retries after a
        // lost answer gets the receipt of the revocation that took effect.
        let (stored, done) = match transitioned {
            crate::store::Transitioned::Done(c, _) => {
                tracing::info!(consent_id = %c.consent_id, registrar = %registrar, "consent revoked");
                (c, true)
            }
            crate::store::Transitioned::Refused(c)
                if c.state == crate::store::ConsentState::Revoked =>
            {
                entry
                    .details
                    .insert("event".into(), "already_revoked".into());
                (c, false)
            }
            crate::store::Transitioned::Refused(c) => {
                return Err(requests::state_invalid(&c, "revoked"));
            }
            crate::store::Transitioned::NotFound => {
                return Err(GatewayError::new(
                    Reason::ConsentNotFound,
                    "no consent has that id",
                ));
            }
        };
        about(entry, &stored);
        let revoked_at_ms = stored.revoked_at_ms.unwrap_or(now_ms);
        // The receipt names the registrar through which the consent was
        // revoked, also when this call only found it revoked.
        let by = stored
            .revoked_by
            .as_deref()
            .and_then(|b| OrgNumber::parse(b).ok())
            .unwrap_or_else(|| org.clone());
        let receipt = self.receipt(&stored, ("revoked", revoked_at_ms), &by, &proven.evidence)?;
        Ok((receipt, done))
    }

    /// The consent `id`, which must be the proven person's.
    async fn of_person(
        &self,
        id: &str,
        proven: &Proven,
        entry: &mut AuditEntry,
    ) -> Result<StoredConsent, GatewayError> {
        let stored = self
            .gateway
            .store
            .consent(id)
            .await
            .map_err(GatewayError::store)?
            .ok_or_else(|| GatewayError::new(Reason::ConsentNotFound, "no consent has that id"))?;
        about(entry, &stored);
        if stored.subject_id != proven.person {
            return Err(GatewayError::new(
                Reason::PersonMismatch,
                "the consent is another person's",
            ));
        }
        Ok(stored)
    }

    async fn get(
        &self,
        request: Request<GetConsentRequest>,
        call: &Call<'_>,
    ) -> Result<Consent, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let mut entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let req = request.into_inner();
        let id = req.consent_id.clone();
        entry.consent_id = sanitize(&id);
        let result = self.find(caller, &req, &mut entry).await;
        self.attribute(&mut entry, &id).await;
        self.gateway.audit.commit_outcome(entry, result).await
    }

    async fn find(
        &self,
        caller: Result<Caller, GatewayError>,
        req: &GetConsentRequest,
        entry: &mut AuditEntry,
    ) -> Result<Consent, GatewayError> {
        let registry = self.gateway.registry.current();
        let (org, _, proven) = self.prove(&registry, caller, req, Level::Read, entry)?;
        validate::consent_id(&req.consent_id)?;
        let stored = self.of_person(&req.consent_id, &proven, entry).await?;
        self.spend(&org, &proven).await?;
        Ok(to_proto(&stored, self.gateway.clock.now_ms(), &registry))
    }

    async fn list(
        &self,
        request: Request<ListConsentsRequest>,
        call: &Call<'_>,
    ) -> Result<ListConsentsResponse, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let mut entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let req = request.into_inner();
        entry.subject_id = sanitize(&req.subject_id);
        if !req.grantee_agency.is_empty() {
            entry
                .details
                .insert("grantee_agency".into(), sanitize(&req.grantee_agency));
        }
        let result = self.list_for(caller, req, &mut entry).await;
        if let Ok(answer) = &result {
            entry
                .details
                .insert("consents".into(), answer.consents.len().to_string());
        }
        self.gateway.audit.commit_outcome(entry, result).await
    }

    async fn list_for(
        &self,
        caller: Result<Caller, GatewayError>,
        req: ListConsentsRequest,
        entry: &mut AuditEntry,
    ) -> Result<ListConsentsResponse, GatewayError> {
        let registry = self.gateway.registry.current();
        let (org, _, proven) = self.prove(&registry, caller, &req, Level::Read, entry)?;
        let subject = validate::subject(&req.subject_id)?;
        let grantee = if req.grantee_agency.is_empty() {
            None
        } else {
            Some(
                validate::agency("grantee_agency", "grantee_agency", &req.grantee_agency)?
                    .to_string(),
            )
        };
        self.spend(&org, &proven).await?;
        let now_ms = self.gateway.clock.now_ms();
        let consents = self
            .gateway
            .store
            .consents_for(subject.as_str(), grantee.as_deref())
            .await
            .map_err(GatewayError::store)?;
        let wanted: Vec<i32> = req.states.clone();
        let registry = self.gateway.registry.current();
        Ok(ListConsentsResponse {
            consents: consents
                .iter()
                .map(|c| to_proto(c, now_ms, &registry))
                .filter(|c| wanted.is_empty() || wanted.contains(&c.status))
                .collect(),
        })
    }
}
