//! The `samverka.v1.SelfDeclaredMeritService` service: merits a person declares
//! about themselves, through a registrar, with the person's assertion.
//!
//! The gateway keeps them ([`crate::store::merits`]) and puts them in the
//! person's competence passport as self-declared, issued by the person and
//! attested by no one, where a consent covers `competence.self_declared`
//! (see [`crate::service::passport`]). Every call is audited in the
//! person's access log: a declaration and a withdrawal commit their entry
//! with the row, in one transaction; a refusal commits its own.

use std::sync::Arc;

use prost::Message;
use samverka_adapter::credential::merit::SELF_DECLARED;
use samverka_proto::records::v1::SelfDeclaredMerit;
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::{
    DeclareMeritRequest, DeclareMeritResponse, DeclaredMerit, ListMeritsRequest,
    ListMeritsResponse, WithdrawMeritRequest, WithdrawMeritResponse,
    self_declared_merit_service_server,
};
use tonic::{Request, Response, Status};

use super::rpc::{Call, Method};
use crate::audit::{AuditEntry, Decision};
use crate::error::{GatewayError, Reason};
use crate::person::{Level, Proven};
use crate::pipeline::identity::{self, Caller};
use crate::pipeline::validate::{self, sanitize};
use crate::state::Gateway;
use crate::store::merits::{Declared, DeclaredMeritRow, Withdrawn};
use crate::time::{rfc3339, to_timestamp};

/// The most merits in force one person may keep.
pub const MAX_MERITS: usize = 100;
/// Bounds of a merit's text fields, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// See [`MAX_TITLE_CHARS`].
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The most skill concepts on one merit.
pub const MAX_SKILLS: usize = 20;

const ESCO_SKILL: &str = "http://data.europa.eu/esco/skill/";

/// The `samverka.v1.SelfDeclaredMeritService` service.
#[derive(Debug, Clone)]
pub struct MeritsService {
    gateway: Arc<Gateway>,
}

/// Whether `s` is a skill concept a merit may name: an ESCO skill URI
/// (the base and a UUID) or a JobTech taxonomy concept id (4 to 32
/// letters, digits and `_`).
pub fn is_skill_concept(s: &str) -> bool {
    match s.strip_prefix(ESCO_SKILL) {
        Some(id) => is_uuid(id),
        None => {
            (4..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    }
}

/// Whether `s` is a UUID in its one canonical form (lower-case hex with
/// hyphens), as ESCO and the gateway write them.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// Characters that make text read otherwise than it is stored: bidi
/// overrides and isolates, zero-width characters, line and paragraph
/// separators, the byte-order mark.
fn disguising(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2028}' | '\u{2029}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A day (`YYYY-MM-DD`, exactly: no sign, no wider year), or empty.
fn day(field: &str, value: &str) -> Result<Option<time::Date>, GatewayError> {
    if value.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let shaped = value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    shaped
        .then(|| time::Date::parse(value, format).ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            GatewayError::invalid(
                Reason::FieldInvalid,
                field,
                format!("{field} must be a day, YYYY-MM-DD"),
            )
        })
}

/// The merit as the person may declare it: a title, text within bounds,
/// known skill concepts, and dates that are days, not in the future, in
/// order (an end only with a start). `today` is the latest date anywhere
/// now (the gateway's UTC date plus one), so that no one's today is
/// refused.
pub fn check(m: &SelfDeclaredMerit, today: time::Date) -> Result<(), GatewayError> {
    if m.title.trim().is_empty() {
        return Err(GatewayError::invalid(
            Reason::FieldMissing,
            "merit.title",
            "a merit needs a title",
        ));
    }
    validate::stored_text("merit.title", &m.title, MAX_TITLE_CHARS)?;
    validate::bounded("merit.description", &m.description, MAX_DESCRIPTION_CHARS)?;
    // A description may run over lines; no other control characters, and
    // in neither field characters that disguise the text.
    for (field, text) in [
        ("merit.title", &m.title),
        ("merit.description", &m.description),
    ] {
        if text.chars().any(disguising) {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                field,
                format!("{field} may not contain invisible or direction-changing characters"),
            ));
        }
    }
    if m.description
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "merit.description",
            "merit.description may not contain control characters",
        ));
    }
    if m.skill_concepts.len() > MAX_SKILLS {
        return Err(GatewayError::invalid(
            Reason::FieldTooLong,
            "merit.skill_concepts",
            format!("at most {MAX_SKILLS} skill concepts"),
        ));
    }
    if let Some(bad) = m.skill_concepts.iter().find(|s| !is_skill_concept(s)) {
        return Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "merit.skill_concepts",
            format!(
                "{:?} is neither an ESCO skill URI ({ESCO_SKILL}<uuid>) nor a JobTech concept id",
                sanitize(bad)
            ),
        ));
    }
    let start = day("merit.start_date", &m.start_date)?;
    let end = day("merit.end_date", &m.end_date)?;
    let future = |field: &str| {
        GatewayError::invalid(
            Reason::FieldInvalid,
            field,
            format!("{field} is in the future"),
        )
    };
    if start.is_some_and(|d| d > today) {
        return Err(future("merit.start_date"));
    }
    if end.is_some_and(|d| d > today) {
        return Err(future("merit.end_date"));
    }
    match (start, end) {
        (None, Some(_)) => Err(GatewayError::invalid(
            Reason::FieldMissing,
            "merit.start_date",
            "a merit with an end date needs a start date",
        )),
        (Some(s), Some(e)) if e < s => Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "merit.end_date",
            "merit.end_date is before merit.start_date",
        )),
        _ => Ok(()),
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

    async fn declare(
        &self,
        request: Request<DeclareMeritRequest>,
        call: &Call<'_>,
    ) -> Result<DeclaredMerit, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let req = request.into_inner();
        let mut entry = self.entry(call, &caller, &req.subject_id);
        entry
            .details
            .insert("merit_event".into(), "declared".into());
        // Run to its end even if the caller goes away: a merit stored is
        // never left without its entry, nor a refusal unrecorded.
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.record_declaration(caller, req, &mut entry).await;
            this.gateway.audit.commit_refusal(entry, result).await
        })
        .await
        .map_err(GatewayError::internal)?
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
        let mut committed = entry.clone();
        committed.decision = Decision::Allowed.as_str().to_owned();
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
        let caller = call.admit(&request, &self.gateway.rate)?;
        let req = request.into_inner();
        let mut entry = self.entry(call, &caller, &req.subject_id);
        entry
            .details
            .insert("merit_event".into(), "withdrawn".into());
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.record_withdrawal(caller, req, &mut entry).await;
            this.gateway.audit.commit_refusal(entry, result).await
        })
        .await
        .map_err(GatewayError::internal)?
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
        let mut committed = entry.clone();
        committed.decision = Decision::Allowed.as_str().to_owned();
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
        call.run(declared).await
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
        call.run(Self::list(self, request, &call)).await
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
        call.run(withdrawn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merit(title: &str, start: &str, end: &str, skills: &[&str]) -> SelfDeclaredMerit {
        SelfDeclaredMerit {
            title: title.into(),
            start_date: start.into(),
            end_date: end.into(),
            skill_concepts: skills.iter().map(|s| (*s).into()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn what_a_person_may_declare() {
        let today = time::macros::date!(2026 - 06 - 01);
        let esco = "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000d001";
        let ok = [
            merit("Föreningskassör", "2019-01-01", "2024-12-31", &[esco]),
            merit("Svenska som andraspråk", "", "", &["ShfR_Lfz_2kT"]),
            merit("Ongoing", "2026-06-01", "", &[]),
        ];
        for m in &ok {
            check(m, today).unwrap();
        }
        let reason = |m: SelfDeclaredMerit| check(&m, today).unwrap_err().reason;
        assert_eq!(reason(merit(" ", "", "", &[])), Reason::FieldMissing);
        assert_eq!(
            reason(merit(&"x".repeat(201), "", "", &[])),
            Reason::FieldTooLong
        );
        assert_eq!(reason(merit("a\u{7}b", "", "", &[])), Reason::FieldInvalid);
        assert_eq!(
            reason(merit("a", "2019-13-01", "", &[])),
            Reason::FieldInvalid
        );
        for bad in ["+2019-01-01", "-0001-01-01", "2019-1-01"] {
            assert_eq!(
                reason(merit("a", bad, "", &[])),
                Reason::FieldInvalid,
                "{bad}"
            );
        }
        for bad in ["\u{202E}gnidaeR", "a\u{200B}b", "a\u{2028}b"] {
            assert_eq!(
                reason(merit(bad, "", "", &[])),
                Reason::FieldInvalid,
                "{bad:?}"
            );
        }
        assert_eq!(
            reason(merit("a", "2026-06-02", "", &[])),
            Reason::FieldInvalid
        );
        assert_eq!(
            reason(merit("a", "2020-01-01", "2019-01-01", &[])),
            Reason::FieldInvalid
        );
        assert_eq!(
            reason(merit("a", "", "2019-01-01", &[])),
            Reason::FieldMissing
        );
        for bad in [
            "http://data.europa.eu/esco/skill/not-a-uuid",
            "http://data.europa.eu/esco/skill/urn:uuid:00000000-0000-4000-8000-00000000d001",
            "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000D001",
            "https://evil.example/skill",
            "ab",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                reason(merit("a", "", "", &[bad])),
                Reason::FieldInvalid,
                "{bad}"
            );
        }
        let many: Vec<&str> = std::iter::repeat_n(esco, MAX_SKILLS + 1).collect();
        assert_eq!(reason(merit("a", "", "", &many)), Reason::FieldTooLong);
        let mut long = merit("a", "", "", &[]);
        long.description = "ord ".repeat(600);
        assert_eq!(reason(long), Reason::FieldTooLong);
    }
}
