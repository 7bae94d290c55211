//! `GetCompetencePassport`: the checks of `GetRecords`, made for each record
//! type of the passport on its own, then one fan-out per consent used, then
//! the passport and its signed credential.
//!
//! The person's self-declared merits (`competence.self_declared`) are the
//! gateway's own source: no register is asked for them; where a consent
//! covers the type, they are read from the store with the fan-out of that
//! consent and listed among the sources as the gateway's (its
//! organisation number, named "self-declared by the person").

use std::time::Duration;

use samverka_proto::v1::{
    CompetencePassport, GetCompetencePassportRequest, PassportEntry, PassportSection,
    RecordTypeDecision, SourceOutcome, source_outcome,
};

use crate::audit::{self, AuditEntry, Decision};
use crate::config::UnattestedRecords;
use crate::credential::passport;
use crate::error::{GatewayError, Reason};
use crate::pipeline::consent::ConsentPermit;
use crate::pipeline::identity::Caller;
use crate::pipeline::routing::{Attest, FetchQuery, FetchResult};
use crate::pipeline::{access, consent, validate};
use crate::registry::Registry;
use crate::state::Gateway;
use crate::store::StoredConsent;
use crate::time::to_timestamp;
use samverka_adapter::credential::merit::SELF_DECLARED;

/// The record types a passport for `purpose` can hold: those the purpose
/// covers, of a passport kind, that some source serves (the gateway itself
/// keeps self-declared merits). Sorted.
fn candidate_types(registry: &Registry, purpose: &[String]) -> Vec<String> {
    let mut types: Vec<String> = purpose
        .iter()
        .filter(|t| passport::is_passport_type(t))
        .filter(|t| {
            *t == SELF_DECLARED || registry.adapters.iter().any(|a| a.record_types.contains(t))
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

/// The record types of a passport, each judged on its own: the allowed
/// ones grouped by the consent that allows them, the refused ones with why.
struct Judged {
    allowed: Vec<(ConsentPermit, Vec<String>)>,
    refused: Vec<(String, GatewayError)>,
}

/// Whether consent `c` lets some source that serves `record_type` be asked:
/// it restricts no sources, or names one of them (for self-declared
/// merits, the gateway `keeper`).
fn reaches_a_source(
    registry: &Registry,
    keeper: &str,
    c: &StoredConsent,
    record_type: &str,
) -> bool {
    if record_type == SELF_DECLARED {
        return c.source_agencies.is_empty() || c.source_agencies.iter().any(|s| s == keeper);
    }
    c.source_agencies.is_empty()
        || registry.adapters.iter().any(|a| {
            a.record_types.iter().any(|t| t == record_type)
                && c.source_agencies.iter().any(|s| s == a.org_number.as_str())
        })
}

/// The consent decision for one record type. A consent restricted to
/// sources none of which serves the type does not cover it: with it, no
/// source of the type would be asked, and the type would be reported as
/// included though nothing was read. Such a consent is set aside before
/// [`consent::decide`], so that another consent may still cover the type;
/// if none does, the type is refused `CONSENT_MISSING`, saying why.
fn decide_type(
    registry: &Registry,
    keeper: &str,
    consents: &[StoredConsent],
    purpose: &str,
    record_type: &str,
    now_ms: i64,
) -> Result<ConsentPermit, GatewayError> {
    let one = [record_type.to_owned()];
    let usable: Vec<StoredConsent> = consents
        .iter()
        .filter(|c| reaches_a_source(registry, keeper, c, record_type))
        .cloned()
        .collect();
    let permit = consent::decide(&usable, purpose, &one, &[], now_ms);
    match permit {
        Err(e) if e.reason == Reason::ConsentMissing && usable.len() < consents.len() => {
            // Say so when a consent in force would have covered the type
            // but for its sources.
            match consent::decide(consents, purpose, &one, &[], now_ms) {
                Ok(_) => Err(GatewayError::new(
                    Reason::ConsentMissing,
                    "the person's consent is limited to sources that do not hold this record type",
                )),
                Err(_) => Err(e),
            }
        }
        other => other,
    }
}

/// Judges every record type of `candidates` on its own: access rule, then
/// consent (limited to the consents that let a source of the type be
/// asked, see [`decide_type`]).
fn judge(
    gw: &Gateway,
    registry: &Registry,
    caller: &Caller,
    purpose: &str,
    candidates: &[String],
    consents: &[StoredConsent],
) -> Judged {
    let checks = crate::telemetry::step_span!(
        "access_and_consent",
        samverka.allowed = tracing::field::Empty,
        samverka.refused = tracing::field::Empty
    );
    let _entered = checks.enter();
    let now_ms = gw.clock.now_ms();
    let mut judged = Judged {
        allowed: Vec::new(),
        refused: Vec::new(),
    };
    for t in candidates {
        let one = std::slice::from_ref(t);
        let decision = access::check(&registry.access_rules, &caller.agency, purpose, one)
            .and_then(|_| {
                let keeper = gw.config.gateway.org_number.as_str();
                let permit = decide_type(registry, keeper, consents, purpose, t, now_ms);
                gw.metrics.consent_check(&permit);
                permit
            });
        match decision {
            Ok(permit) => match judged.allowed.iter_mut().find(|(p, _)| *p == permit) {
                Some((_, types)) => types.push(t.clone()),
                None => judged.allowed.push((permit, vec![t.clone()])),
            },
            Err(e) => judged.refused.push((t.clone(), e)),
        }
    }
    checks.record(
        "samverka.allowed",
        judged.allowed.iter().map(|(_, t)| t.len()).sum::<usize>(),
    );
    checks.record("samverka.refused", judged.refused.len());
    judged
}

/// One fan-out per allowed consent, all at once, each with its audit
/// entry (committed as cancelled if the caller cancels once sources are
/// asked). The person's own merits are read with the fan-out of the
/// consent that covers them; each result is kept to its consent's period,
/// counts included: a passport says nothing of records outside what the
/// person consented to, not even how many.
async fn fan_out(
    gw: &Gateway,
    registry: &Registry,
    allowed: &[(ConsentPermit, Vec<String>)],
    base: &AuditEntry,
    query: &FetchQuery,
    deadline: Duration,
    started_ms: i64,
) -> (Vec<FetchResult>, Vec<AuditEntry>) {
    let mut pending = Vec::new();
    let mut fetches = Vec::new();
    for (permit, types) in allowed {
        let entry = AuditEntry {
            audit_id: audit::new_id(),
            decision: Decision::Allowed.as_str().to_owned(),
            record_types: types.clone(),
            consent_id: permit.consent_id().to_owned(),
            ..base.clone()
        };
        let query = FetchQuery {
            audit_ref: entry.audit_id.clone(),
            ..query.clone()
        };
        let plan = registry.router.plan(types, &[], permit);
        let own = types.iter().any(|t| t == SELF_DECLARED);
        let keeper = own.then_some(gw.config.gateway.org_number.as_str());
        let mut entry = audit::PendingEntry::new(&gw.audit, entry);
        entry.arm(registry.router.asked(&plan).chain(keeper));
        pending.push(entry);
        let router = &registry.router;
        fetches.push(async move {
            let mut result = router.fetch(plan, &query, permit, deadline).await;
            if own {
                super::merits::as_source(gw, &query.subject_id, &mut result, started_ms).await;
            }
            crate::pipeline::terms::keep_result_within_period(permit, &mut result);
            result
        });
    }
    let results = futures_util::future::join_all(fetches).await;
    let entries = pending
        .into_iter()
        .map(audit::PendingEntry::finish)
        .collect();
    (results, entries)
}

/// One refused entry per reason, naming the types it kept out.
fn refused_entries(base: &AuditEntry, refused: &[(String, GatewayError)]) -> Vec<AuditEntry> {
    let mut reasons: Vec<Reason> = Vec::new();
    for (_, e) in refused {
        if !reasons.contains(&e.reason) {
            reasons.push(e.reason);
        }
    }
    reasons
        .into_iter()
        .map(|reason| {
            let mut entry = base.clone();
            entry.audit_id = audit::new_id();
            entry.decision = Decision::Denied.as_str().to_owned();
            entry.reason = reason.as_str().to_owned();
            entry.record_types = refused
                .iter()
                .filter(|(_, e)| e.reason == reason)
                .map(|(t, _)| t.clone())
                .collect();
            entry
        })
        .collect()
}

/// The passport's sections (one per kind that holds a record, in passport
/// order) and one outcome per source, from what each fan-out answered;
/// each allowed entry records the sources its fan-out asked.
fn collect(
    results: Vec<FetchResult>,
    allowed_entries: &mut [AuditEntry],
    fetch_started_ms: i64,
) -> (Vec<PassportSection>, Vec<SourceOutcome>) {
    let mut outcomes: Vec<SourceOutcome> = Vec::new();
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
                let (attestation, attestation_certificate) = result
                    .attested
                    .get(&samverka_adapter::credential::record_digest(&record, ""))
                    .cloned()
                    .unwrap_or_default();
                section.entries.push(PassportEntry {
                    record: Some(record),
                    source_name: name,
                    retrieved_at: Some(to_timestamp(retrieved_at)),
                    attestation,
                    attestation_certificate,
                });
            }
        }
        for o in result.outcomes {
            merge_outcome(&mut outcomes, o);
        }
    }
    sections.retain(|s| !s.entries.is_empty());
    (sections, outcomes)
}

/// What became of each candidate record type: included under a consent,
/// or left out and why.
fn type_decisions(candidates: &[String], judged: &Judged) -> Vec<RecordTypeDecision> {
    candidates
        .iter()
        .map(|t| {
            if let Some((permit, _)) = judged.allowed.iter().find(|(_, types)| types.contains(t)) {
                return RecordTypeDecision {
                    record_type: t.clone(),
                    included: true,
                    consent_id: permit.consent_id().to_owned(),
                    ..Default::default()
                };
            }
            let e = judged
                .refused
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
        })
        .collect()
}

/// Judges every record type, fetches the allowed ones, and assembles the
/// signed passport. Every decision made is pushed to `entries` (to be
/// committed by the caller), allowed or refused; on an error before any
/// record type was judged, `entries` stays empty.
#[allow(clippy::too_many_arguments)]
pub(super) async fn assemble(
    gw: &Gateway,
    caller: &Caller,
    req: &GetCompetencePassportRequest,
    base: &AuditEntry,
    entries: &mut Vec<AuditEntry>,
    deadline: Duration,
    traceparent: String,
    settle: &mut Vec<(crate::pipeline::terms::Reservation, bool)>,
) -> Result<CompetencePassport, GatewayError> {
    let subject = validate::subject(&req.subject_id)?;
    validate::case_fields(&req.case_reference, &req.official_id)?;
    // One registry for the whole passport, even if a new version comes.
    let registry = gw.registry.current();
    let purpose = validate::purpose(&registry, &req.purpose)?;
    let candidates = candidate_types(&registry, &purpose.record_types);
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

    let mut judged = judge(gw, &registry, caller, &req.purpose, &candidates, &consents);
    // A counted consent's read is reserved before any source is asked; one
    // with no read left keeps its types out.
    let mut reservations = Vec::new();
    let mut kept = Vec::new();
    for (permit, types) in std::mem::take(&mut judged.allowed) {
        match crate::pipeline::terms::reserve(gw, &permit).await {
            Ok(r) => {
                reservations.push(r);
                kept.push((permit, types));
            }
            Err(e) => judged
                .refused
                .extend(types.into_iter().map(|t| (t, e.clone()))),
        }
    }
    judged.allowed = kept;
    entries.extend(refused_entries(base, &judged.refused));
    if judged.allowed.is_empty() {
        return Err(judged
            .refused
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .unwrap_or_else(|| GatewayError::internal("no record type judged")));
    }

    // The sources attest their records for this passport's holder.
    let (holder_id, holder_salt) = (passport::new_holder_id(), passport::new_holder_salt());
    let query = FetchQuery {
        subject_id: subject.as_str().to_owned(),
        purpose: req.purpose.clone(),
        requesting_agency: caller.agency.to_string(),
        audit_ref: String::new(),
        traceparent,
        attest: Some(Attest {
            holder_id: holder_id.clone(),
            holder_salt: holder_salt.clone(),
            required: gw.config.gateway.unattested_records == UnattestedRecords::Refuse,
        }),
    };
    let fetch_started_ms = gw.clock.now_ms();
    let (results, mut allowed_entries) = fan_out(
        gw,
        &registry,
        &judged.allowed,
        base,
        &query,
        deadline,
        fetch_started_ms,
    )
    .await;
    // Settled by the caller, once the passport is known to go out.
    for (result, reservation) in results.iter().zip(reservations) {
        if let Some(r) = reservation {
            settle.push((r, !result.records.is_empty()));
        }
    }
    let (sections, outcomes) = collect(results, &mut allowed_entries, fetch_started_ms);
    let consent_ids: Vec<String> = allowed_entries
        .iter()
        .map(|e| e.consent_id.clone())
        .collect();
    // The allowed reads first: the answer's first audit id is the read.
    entries.splice(0..0, allowed_entries);

    let issuer = &gw.config.gateway.org_number;
    let issuer_name = registry
        .agency(issuer)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| format!("samverka gateway of {issuer}"));
    let signer = gw.signer.current();
    let mut answer = CompetencePassport {
        passport_id: uuid::Uuid::new_v4().to_string(),
        subject_id: subject.as_str().to_owned(),
        issuer_agency: issuer.to_string(),
        issued_at: Some(to_timestamp(gw.clock.now_ms())),
        sections,
        record_types: type_decisions(&candidates, &judged),
        outcomes,
        credential: String::new(),
        audit_ids: entries.iter().map(|e| e.audit_id.clone()).collect(),
        consent_ids,
        holder_salt,
        holder_id,
    };
    let status_list = gw
        .config
        .gateway
        .public_url
        .as_deref()
        .map(crate::credential::status::list_url);
    answer.credential = passport::sign(&signer, &answer, &issuer_name, status_list.as_deref())
        .map_err(GatewayError::internal)?
        .unwrap_or_default();
    Ok(answer)
}
