//! `GetCompetencePassport`: the checks of `GetRecords`, made for each record
//! type of the passport on its own, then one fan-out per consent used, then
//! the passport and its signed credential.

use std::time::Duration;

use samverka_proto::v1::{
    CompetencePassport, GetCompetencePassportRequest, PassportEntry, PassportSection,
    RecordTypeDecision, SourceOutcome, source_outcome,
};

use crate::audit::AuditEntry;
use crate::audit::{self, Decision};
use crate::credential::passport;
use crate::error::{GatewayError, Reason};
use crate::pipeline::consent::ConsentPermit;
use crate::pipeline::identity::Caller;
use crate::pipeline::routing::{FetchQuery, FetchResult};
use crate::pipeline::{access, consent, validate};
use crate::state::Gateway;
use crate::time::to_timestamp;

/// The record types a passport for `purpose` can hold: those the purpose
/// covers, of a passport kind, that some source serves. Sorted.
fn candidate_types(gw: &Gateway, purpose: &[String]) -> Vec<String> {
    let mut types: Vec<String> = purpose
        .iter()
        .filter(|t| passport::is_passport_type(t))
        .filter(|t| {
            gw.config
                .adapters
                .iter()
                .any(|a| a.record_types.contains(t))
        })
        .cloned()
        .collect();
    types.sort();
    types.dedup();
    types
}

/// Folds `new` into the outcome of the same source, if there is one: the
/// counts add up and a failure outweighs success.
fn merge_outcome(outcomes: &mut Vec<SourceOutcome>, new: SourceOutcome) {
    match outcomes
        .iter_mut()
        .find(|o| o.source_agency == new.source_agency)
    {
        Some(o) => {
            o.record_count += new.record_count;
            if o.status == source_outcome::Status::Ok as i32 {
                o.status = new.status;
                o.message = new.message;
            }
        }
        None => outcomes.push(new),
    }
}

/// Judges every record type, fetches the allowed ones, and assembles the
/// signed passport. Every decision made is pushed to `entries` (to be
/// committed by the caller), allowed or refused; on an error before any
/// record type was judged, `entries` stays empty.
pub(super) async fn assemble(
    gw: &Gateway,
    caller: &Caller,
    req: &GetCompetencePassportRequest,
    base: &AuditEntry,
    entries: &mut Vec<AuditEntry>,
    deadline: Duration,
    traceparent: String,
) -> Result<CompetencePassport, GatewayError> {
    let subject = validate::subject(&req.subject_id)?;
    let purpose = validate::purpose(&gw.config, &req.purpose)?;
    let candidates = candidate_types(gw, &purpose.record_types);
    if candidates.is_empty() {
        return Err(GatewayError::invalid(
            Reason::RecordTypeNotCovered,
            "purpose",
            "the purpose covers no education, employment or competence record type that a source serves",
        ));
    }

    let consents = gw
        .store
        .consents_for(subject.as_str(), Some(caller.agency.as_str()))
        .await
        .map_err(GatewayError::store)?;
    let now_ms = gw.clock.now_ms();

    // Each type on its own: access rule, then consent.
    let checks = crate::telemetry::step_span!(
        "access_and_consent",
        samverka.allowed = tracing::field::Empty,
        samverka.refused = tracing::field::Empty
    );
    let _entered = checks.enter();
    let mut allowed: Vec<(ConsentPermit, Vec<String>)> = Vec::new();
    let mut refused: Vec<(String, GatewayError)> = Vec::new();
    for t in &candidates {
        let one = std::slice::from_ref(t);
        let judged = access::check(&gw.config.access_rules, &caller.agency, &req.purpose, one)
            .and_then(|_| {
                let permit = consent::decide(&consents, &req.purpose, one, &[], now_ms);
                gw.metrics.consent_check(&permit);
                permit
            });
        match judged {
            Ok(permit) => match allowed.iter_mut().find(|(p, _)| *p == permit) {
                Some((_, types)) => types.push(t.clone()),
                None => allowed.push((permit, vec![t.clone()])),
            },
            Err(e) => refused.push((t.clone(), e)),
        }
    }

    checks.record(
        "samverka.allowed",
        allowed.iter().map(|(_, t)| t.len()).sum::<usize>(),
    );
    checks.record("samverka.refused", refused.len());
    drop(_entered);

    // One refused entry per reason, naming the types it kept out.
    let mut reasons: Vec<Reason> = Vec::new();
    for (_, e) in &refused {
        if !reasons.contains(&e.reason) {
            reasons.push(e.reason);
        }
    }
    for reason in reasons {
        let mut entry = base.clone();
        entry.audit_id = audit::new_id();
        entry.decision = Decision::Denied.as_str().to_owned();
        entry.reason = reason.as_str().to_owned();
        entry.record_types = refused
            .iter()
            .filter(|(_, e)| e.reason == reason)
            .map(|(t, _)| t.clone())
            .collect();
        entries.push(entry);
    }
    if allowed.is_empty() {
        let (_, first) = refused.into_iter().next().expect("some type was judged");
        return Err(first);
    }

    // One fan-out per consent, all at once.
    let fetch_started_ms = gw.clock.now_ms();
    let mut allowed_entries = Vec::new();
    let mut queries = Vec::new();
    for (permit, types) in &allowed {
        let mut entry = base.clone();
        entry.audit_id = audit::new_id();
        entry.decision = Decision::Allowed.as_str().to_owned();
        entry.record_types = types.clone();
        entry.consent_id = permit.consent_id().to_owned();
        queries.push(FetchQuery {
            subject_id: subject.as_str().to_owned(),
            purpose: req.purpose.clone(),
            requesting_agency: caller.agency.to_string(),
            audit_ref: entry.audit_id.clone(),
            traceparent: traceparent.clone(),
        });
        allowed_entries.push(entry);
    }
    let fetches = allowed
        .iter()
        .zip(&queries)
        .map(|((permit, types), query)| {
            let plan = gw.router.plan(types, &[], permit);
            gw.router.fetch(plan, query, permit, deadline)
        });
    let results: Vec<FetchResult> = futures_util::future::join_all(fetches).await;

    let mut outcomes: Vec<SourceOutcome> = Vec::new();
    // One section per kind, in passport order; empty ones are dropped below.
    let mut sections: Vec<PassportSection> = passport::KINDS
        .iter()
        .map(|kind| PassportSection {
            kind: (*kind).to_owned(),
            entries: Vec::new(),
        })
        .collect();
    for (entry, result) in allowed_entries.iter_mut().zip(results) {
        entry.sources = audit::sources(&result.outcomes);
        for record in result.records {
            let (name, after) = result
                .outcomes
                .iter()
                .zip(&result.answered_after)
                .find(|(o, _)| o.source_agency == record.source_agency)
                .map(|(o, after)| (o.source_name.clone(), *after))
                .unwrap_or_default();
            let retrieved_at = fetch_started_ms + after.as_millis() as i64;
            // The router passed only types asked for, all of a passport kind.
            if let Some(section) = sections
                .iter_mut()
                .find(|s| s.kind == passport::kind_of(&record.record_type))
            {
                section.entries.push(PassportEntry {
                    record: Some(record),
                    source_name: name,
                    retrieved_at: Some(to_timestamp(retrieved_at)),
                });
            }
        }
        for o in result.outcomes {
            merge_outcome(&mut outcomes, o);
        }
    }
    let consent_ids: Vec<String> = allowed_entries
        .iter()
        .map(|e| e.consent_id.clone())
        .collect();
    // The allowed reads first: the answer's first audit id is the read.
    entries.splice(0..0, allowed_entries);

    sections.retain(|s| !s.entries.is_empty());
    let record_types = candidates
        .iter()
        .map(|t| {
            if let Some((permit, _)) = allowed.iter().find(|(_, types)| types.contains(t)) {
                RecordTypeDecision {
                    record_type: t.clone(),
                    included: true,
                    consent_id: permit.consent_id().to_owned(),
                    ..Default::default()
                }
            } else {
                let e = refused
                    .iter()
                    .find(|(r, _)| r == t)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_else(|| GatewayError::internal("record type not judged"));
                RecordTypeDecision {
                    record_type: t.clone(),
                    included: false,
                    reason: e.reason.as_str().to_owned(),
                    message: e.message,
                    consent_id: String::new(),
                }
            }
        })
        .collect();

    let issuer = &gw.config.gateway.org_number;
    let issuer_name = gw
        .config
        .agency(issuer)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| format!("samverka gateway of {issuer}"));
    let mut answer = CompetencePassport {
        passport_id: uuid::Uuid::new_v4().to_string(),
        subject_id: subject.as_str().to_owned(),
        issuer_agency: issuer.to_string(),
        issued_at: Some(to_timestamp(gw.clock.now_ms())),
        sections,
        record_types,
        outcomes,
        credential: String::new(),
        audit_ids: entries.iter().map(|e| e.audit_id.clone()).collect(),
        consent_ids,
    };
    answer.credential = passport::sign(&gw.signer.current(), &answer, &issuer_name)
        .map_err(GatewayError::internal)?;
    Ok(answer)
}
