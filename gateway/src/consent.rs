//! Step 4 of a request: does the person hold an active consent for this
//! agency, these record types and this purpose, right now? And the
//! `Consents` service through which registrars record consents.
//!
//! A consent covers a read when it is for the calling agency, names the
//! stated purpose, lists every requested record type and, if it restricts
//! sources, every requested source. It is in force from `valid_from` until
//! (not including) `valid_until`, unless revoked. Revocation and expiry are
//! checked on every read against the store, so they take effect on the next
//! request.
//!
//! When no consent is in force the refusal says why, judged by the newest
//! consent that would have covered the read: `CONSENT_REVOKED`,
//! `CONSENT_EXPIRED` (also for a consent whose `valid_from` is still ahead),
//! otherwise `PURPOSE_MISMATCH` if a consent in force covers the record types
//! for another purpose, otherwise `CONSENT_MISSING`.

use std::sync::Arc;

use samverka_certs::OrgNumber;
use samverka_proto::v1::{
    Consent, ConsentReceipt, GetConsentRequest, GrantConsentRequest, ListConsentsRequest,
    ListConsentsResponse, RevokeConsentRequest, consent, consents_server,
};
use tonic::{Request, Response, Status};

use crate::error::{GatewayError, Reason};
use crate::receipt::{ReceiptClaims, ReceiptConsent, rfc3339};
use crate::store::{Revocation, StoredConsent};
use crate::{Gateway, identity, time};

/// Proof that a consent allows the read. Only [`decide`] makes one, and
/// fan-out to adapters needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPermit {
    consent_id: String,
    source_agencies: Vec<String>,
}

impl ConsentPermit {
    /// The consent that allows the read.
    pub fn consent_id(&self) -> &str {
        &self.consent_id
    }

    /// The sources the consent restricts the read to; empty means any.
    pub fn source_agencies(&self) -> &[String] {
        &self.source_agencies
    }
}

/// Decides one read against the person's consents for the calling agency
/// (newest first, as [`crate::store::Store::consents_for`] returns them).
pub fn decide(
    consents: &[StoredConsent],
    purpose: &str,
    record_types: &[String],
    requested_sources: &[String],
    now_ms: i64,
) -> Result<ConsentPermit, GatewayError> {
    let covers_types = |c: &StoredConsent| record_types.iter().all(|t| c.record_types.contains(t));
    let covers_sources = |c: &StoredConsent| {
        c.source_agencies.is_empty()
            || requested_sources
                .iter()
                .all(|s| c.source_agencies.contains(s))
    };
    let in_force = |c: &StoredConsent| {
        c.revoked_at_ms.is_none() && c.valid_from_ms <= now_ms && now_ms < c.valid_until_ms
    };
    let covering =
        |c: &&StoredConsent| c.purpose == purpose && covers_types(c) && covers_sources(c);

    if let Some(c) = consents.iter().filter(covering).find(|c| in_force(c)) {
        return Ok(ConsentPermit {
            consent_id: c.consent_id.clone(),
            source_agencies: c.source_agencies.clone(),
        });
    }
    if let Some(c) = consents.iter().find(covering) {
        return Err(if c.revoked_at_ms.is_some() {
            GatewayError::new(
                Reason::ConsentRevoked,
                "the person has revoked the consent for this read",
            )
        } else {
            GatewayError::new(
                Reason::ConsentExpired,
                "the consent for this read is not in force",
            )
        });
    }
    if consents
        .iter()
        .any(|c| c.purpose != purpose && covers_types(c) && in_force(c))
    {
        return Err(GatewayError::new(
            Reason::PurposeMismatch,
            format!("the person has not consented to this read for purpose {purpose}"),
        ));
    }
    Err(GatewayError::new(
        Reason::ConsentMissing,
        "the person holds no consent covering this read",
    ))
}

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

/// The consent's status at `now_ms`.
pub fn status_at(c: &StoredConsent, now_ms: i64) -> consent::Status {
    if c.revoked_at_ms.is_some() {
        consent::Status::Revoked
    } else if now_ms >= c.valid_until_ms {
        consent::Status::Expired
    } else {
        consent::Status::Active
    }
}

fn to_proto(c: &StoredConsent, now_ms: i64) -> Consent {
    Consent {
        consent_id: c.consent_id.clone(),
        subject_id: c.subject_id.clone(),
        grantee_agency: c.grantee_agency.clone(),
        record_types: c.record_types.clone(),
        purpose: c.purpose.clone(),
        source_agencies: c.source_agencies.clone(),
        valid_from: Some(time::to_timestamp(c.valid_from_ms)),
        valid_until: Some(time::to_timestamp(c.valid_until_ms)),
        status: status_at(c, now_ms) as i32,
        registrar_agency: c.registrar_agency.clone(),
        evidence_ref: c.evidence_ref.clone(),
        granted_at: Some(time::to_timestamp(c.granted_at_ms)),
        revoked_at: c.revoked_at_ms.map(time::to_timestamp),
        revocation_reason: c.revocation_reason.clone().unwrap_or_default(),
    }
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

    /// Only agencies with the registrar permission may use this service.
    fn registrar<T>(&self, request: &Request<T>) -> Result<OrgNumber, GatewayError> {
        identity::registrar(request, &self.gateway.config)
    }

    async fn grant(
        &self,
        request: Request<GrantConsentRequest>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let registrar = self.registrar(&request)?;
        let req = request.into_inner();
        let config = &self.gateway.config;
        let now_ms = self.gateway.clock.now_ms();

        let subject = GatewayError::parse_subject(&req.subject_id)?;
        let grantee = OrgNumber::parse(&req.grantee_agency).map_err(|e| {
            GatewayError::invalid(
                Reason::AgencyIdInvalid,
                "grantee_agency",
                format!("grantee_agency {e}"),
            )
        })?;
        if config.agency(&grantee).is_none() {
            return Err(GatewayError::invalid(
                Reason::AgencyUnknown,
                "grantee_agency",
                "grantee_agency is not an agency known to this gateway",
            ));
        }
        let purpose = config.purpose(&req.purpose).ok_or_else(|| {
            GatewayError::invalid(
                Reason::PurposeUnknown,
                "purpose",
                "purpose is not a known purpose code",
            )
        })?;
        if req.record_types.is_empty() {
            return Err(GatewayError::invalid(
                Reason::FieldMissing,
                "record_types",
                "at least one record type is required",
            ));
        }
        for (i, t) in req.record_types.iter().enumerate() {
            if !config.knows_record_type(t) {
                return Err(GatewayError::invalid(
                    Reason::RecordTypeUnknown,
                    format!("record_types[{i}]"),
                    format!("record type {t:?} is not known to this gateway"),
                ));
            }
            if !purpose.record_types.contains(t) {
                return Err(GatewayError::invalid(
                    Reason::RecordTypeNotCovered,
                    format!("record_types[{i}]"),
                    format!("purpose {} does not cover record type {t}", purpose.code),
                ));
            }
        }
        for (i, s) in req.source_agencies.iter().enumerate() {
            OrgNumber::parse(s).map_err(|e| {
                GatewayError::invalid(
                    Reason::AgencyIdInvalid,
                    format!("source_agencies[{i}]"),
                    format!("source agency {e}"),
                )
            })?;
        }
        let valid_from_ms = match &req.valid_from {
            Some(ts) => time::from_timestamp(ts).ok_or_else(|| {
                GatewayError::invalid(
                    Reason::ValidityInvalid,
                    "valid_from",
                    "valid_from is out of range",
                )
            })?,
            None => now_ms,
        };
        let valid_until_ms = req
            .valid_until
            .as_ref()
            .ok_or_else(|| {
                GatewayError::invalid(
                    Reason::FieldMissing,
                    "valid_until",
                    "valid_until is required",
                )
            })
            .and_then(|ts| {
                time::from_timestamp(ts).ok_or_else(|| {
                    GatewayError::invalid(
                        Reason::ValidityInvalid,
                        "valid_until",
                        "valid_until is out of range",
                    )
                })
            })?;
        if valid_until_ms <= valid_from_ms || valid_until_ms <= now_ms {
            return Err(GatewayError::invalid(
                Reason::ValidityInvalid,
                "valid_until",
                "valid_until must be after valid_from and in the future",
            ));
        }
        let max_lifetime_ms = config.consents.max_lifetime.as_millis() as i64;
        if valid_until_ms - valid_from_ms > max_lifetime_ms {
            return Err(GatewayError::invalid(
                Reason::ValidityInvalid,
                "valid_until",
                format!(
                    "a consent may last at most {} days",
                    max_lifetime_ms / (24 * 3600 * 1000)
                ),
            ));
        }
        if req.request_id.is_empty() || req.request_id.len() > 128 {
            return Err(GatewayError::invalid(
                Reason::FieldMissing,
                "request_id",
                "request_id is required (at most 128 characters)",
            ));
        }

        let mut record_types = req.record_types;
        record_types.sort();
        record_types.dedup();
        let mut source_agencies = req.source_agencies;
        source_agencies.sort();
        source_agencies.dedup();
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
        self.receipt(&stored, "granted", stored.granted_at_ms)
    }

    /// The receipt of an event, with its signed JWS form.
    fn receipt(
        &self,
        c: &StoredConsent,
        event: &str,
        recorded_at_ms: i64,
    ) -> Result<ConsentReceipt, GatewayError> {
        let now_ms = self.gateway.clock.now_ms();
        let status = match status_at(c, now_ms) {
            consent::Status::Revoked => "revoked",
            consent::Status::Expired => "expired",
            _ => "active",
        };
        let claims = ReceiptClaims {
            iss: self.gateway.signer.current().issuer().to_owned(),
            iat: now_ms.div_euclid(1000),
            event: event.to_owned(),
            recorded_at: rfc3339(recorded_at_ms),
            consent: ReceiptConsent {
                consent_id: c.consent_id.clone(),
                subject_id: c.subject_id.clone(),
                grantee_agency: c.grantee_agency.clone(),
                record_types: c.record_types.clone(),
                purpose: c.purpose.clone(),
                source_agencies: c.source_agencies.clone(),
                valid_from: rfc3339(c.valid_from_ms),
                valid_until: rfc3339(c.valid_until_ms),
                status: status.to_owned(),
                registrar_agency: c.registrar_agency.clone(),
                evidence_ref: c.evidence_ref.clone(),
                granted_at: rfc3339(c.granted_at_ms),
                revoked_at: c.revoked_at_ms.map(rfc3339),
                revocation_reason: c.revocation_reason.clone(),
            },
        };
        let jws = crate::receipt::sign(&self.gateway.signer.current(), &claims)
            .map_err(GatewayError::internal)?;
        Ok(ConsentReceipt {
            consent: Some(to_proto(c, now_ms)),
            event: event.to_owned(),
            recorded_at: Some(time::to_timestamp(recorded_at_ms)),
            jws,
        })
    }

    async fn revoke(
        &self,
        request: Request<RevokeConsentRequest>,
    ) -> Result<ConsentReceipt, GatewayError> {
        let registrar = self.registrar(&request)?;
        let req = request.into_inner();
        if req.consent_id.is_empty() {
            return Err(GatewayError::invalid(
                Reason::FieldMissing,
                "consent_id",
                "consent_id is required",
            ));
        }
        let now_ms = self.gateway.clock.now_ms();
        let revocation = self
            .gateway
            .store
            .revoke_consent(&req.consent_id, now_ms, &req.reason)
            .await
            .map_err(GatewayError::store)?;
        // Revoking twice is not an error: a registrar that retries after a
        // lost answer gets the receipt of the revocation that took effect.
        let stored = match revocation {
            Revocation::Revoked(c) => {
                tracing::info!(consent_id = %c.consent_id, registrar = %registrar, "consent revoked");
                c
            }
            Revocation::AlreadyRevoked(c) => c,
            Revocation::NotFound => {
                return Err(GatewayError::new(
                    Reason::ConsentNotFound,
                    "no consent has that id",
                ));
            }
        };
        let revoked_at_ms = stored.revoked_at_ms.unwrap_or(now_ms);
        self.receipt(&stored, "revoked", revoked_at_ms)
    }

    async fn get(&self, request: Request<GetConsentRequest>) -> Result<Consent, GatewayError> {
        self.registrar(&request)?;
        let id = request.into_inner().consent_id;
        let stored = self
            .gateway
            .store
            .consent(&id)
            .await
            .map_err(GatewayError::store)?
            .ok_or_else(|| GatewayError::new(Reason::ConsentNotFound, "no consent has that id"))?;
        Ok(to_proto(&stored, self.gateway.clock.now_ms()))
    }

    async fn list(
        &self,
        request: Request<ListConsentsRequest>,
    ) -> Result<ListConsentsResponse, GatewayError> {
        self.registrar(&request)?;
        let req = request.into_inner();
        let subject = GatewayError::parse_subject(&req.subject_id)?;
        let grantee = if req.grantee_agency.is_empty() {
            None
        } else {
            Some(
                OrgNumber::parse(&req.grantee_agency)
                    .map_err(|e| {
                        GatewayError::invalid(
                            Reason::AgencyIdInvalid,
                            "grantee_agency",
                            format!("grantee_agency {e}"),
                        )
                    })?
                    .to_string(),
            )
        };
        let now_ms = self.gateway.clock.now_ms();
        let consents = self
            .gateway
            .store
            .consents_for(subject.as_str(), grantee.as_deref())
            .await
            .map_err(GatewayError::store)?;
        Ok(ListConsentsResponse {
            consents: consents.iter().map(|c| to_proto(c, now_ms)).collect(),
        })
    }
}

#[tonic::async_trait]
impl consents_server::Consents for ConsentsService {
    async fn grant(
        &self,
        request: Request<GrantConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        self.gateway
            .metrics
            .answer(
                "Consents/Grant",
                crate::telemetry::request_span("samverka.v1.Consents", "Grant", request.metadata())
                    .0,
                ConsentsService::grant(self, request),
            )
            .await
    }

    async fn revoke(
        &self,
        request: Request<RevokeConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        self.gateway
            .metrics
            .answer(
                "Consents/Revoke",
                crate::telemetry::request_span(
                    "samverka.v1.Consents",
                    "Revoke",
                    request.metadata(),
                )
                .0,
                ConsentsService::revoke(self, request),
            )
            .await
    }

    async fn get(&self, request: Request<GetConsentRequest>) -> Result<Response<Consent>, Status> {
        self.gateway
            .metrics
            .answer(
                "Consents/Get",
                crate::telemetry::request_span("samverka.v1.Consents", "Get", request.metadata()).0,
                ConsentsService::get(self, request),
            )
            .await
    }

    async fn list(
        &self,
        request: Request<ListConsentsRequest>,
    ) -> Result<Response<ListConsentsResponse>, Status> {
        self.gateway
            .metrics
            .answer(
                "Consents/List",
                crate::telemetry::request_span("samverka.v1.Consents", "List", request.metadata())
                    .0,
                ConsentsService::list(self, request),
            )
            .await
    }
}

#[cfg(test)]
mod tests;
