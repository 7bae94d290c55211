//! A consent's terms beyond who, what and why, enforced around the fetch:
//! the period its records may cover, and how many reads it allows.
//!
//! - **Period**: a record is kept when its own date (examination, award,
//!   grade, issue or assessment date; an employment period when it
//!   overlaps) is within `records_from ..= records_until`. A record whose
//!   date is missing or unreadable is left out (it cannot be shown to be
//!   inside), and so is a record type without a date of its own. The
//!   answer says how many were left out.
//! - **Reads**: a counted consent (`max_reads` above 0; a one-time consent
//!   has 1) has a read reserved before the sources are asked, atomically
//!   in the store, so that replicas racing for the last read cannot both
//!   win ([`Reservation`]). A read that returns no records gives it back,
//!   and so does one whose caller goes away; the read that uses the last
//!   one makes the consent USED, with its audit entry and change event.

use samverka_proto::records::v1::Record;
use samverka_proto::records::v1::record::Payload;

use super::consent::ConsentPermit;
use super::routing::FetchResult;
use crate::Gateway;
use crate::audit::{self, Decision};
use crate::error::{GatewayError, Reason};
use crate::store::{ConsentState, Store, Transition};

/// The days a record covers (`YYYY-MM-DD`, inclusive), if it has a date.
fn record_days(r: &Record) -> Option<(String, String)> {
    let day = |d: &str| (d.len() == 10).then(|| (d.to_owned(), d.to_owned()));
    match r.payload.as_ref()? {
        Payload::CourseResult(p) => day(&p.examination_date),
        Payload::Degree(p) => day(&p.award_date),
        Payload::UpperSecondaryGrade(p) => day(&p.grade_date),
        Payload::VocationalDiploma(p) => day(&p.issue_date),
        Payload::ValidatedCompetence(p) => day(&p.assessment_date),
        Payload::NonFormalLearning(p) => day(&p.completion_date),
        Payload::EmploymentPeriod(p) => span(&p.start_date, &p.end_date),
        // Undated, it counts from the day it was declared.
        Payload::SelfDeclaredMerit(p) if p.start_date.is_empty() => {
            day(p.declared_at.get(..10).unwrap_or_default())
        }
        Payload::SelfDeclaredMerit(p) => span(&p.start_date, &p.end_date),
        Payload::Other(_) => None,
    }
}

/// The days from `start` to `end` (empty: ongoing), if both are dates.
fn span(start: &str, end: &str) -> Option<(String, String)> {
    let end = if end.is_empty() { "9999-12-31" } else { end };
    (start.len() == 10 && end.len() == 10).then(|| (start.to_owned(), end.to_owned()))
}

/// Keeps the records within the permit's period; returns how many were
/// left out. ISO dates compare as text.
pub fn keep_within_period(permit: &ConsentPermit, records: &mut Vec<Record>) -> u32 {
    let (from, until) = permit.period();
    if from.is_empty() && until.is_empty() {
        return 0;
    }
    let before = records.len();
    records.retain(|r| match record_days(r) {
        Some((start, end)) => {
            (from.is_empty() || end.as_str() >= from)
                && (until.is_empty() || start.as_str() <= until)
        }
        None => false,
    });
    u32::try_from(before - records.len()).unwrap_or(u32::MAX)
}

/// [`keep_within_period`] for a fan-out's whole result: each source's
/// `record_count` becomes what it gave within the period.
pub fn keep_result_within_period(permit: &ConsentPermit, result: &mut FetchResult) {
    if keep_within_period(permit, &mut result.records) == 0 {
        return;
    }
    for o in &mut result.outcomes {
        let kept = result
            .records
            .iter()
            .filter(|r| r.source_agency == o.source_agency)
            .count();
        o.record_count = u32::try_from(kept).unwrap_or(u32::MAX);
    }
}

/// A read reserved from a counted consent. Settle it with
/// [`Reservation::settle`]; dropped unsettled (the caller went away), it
/// is given back.
#[derive(Debug)]
pub struct Reservation {
    store: Store,
    consent_id: String,
    reads_used: u32,
    max_reads: u32,
    settled: bool,
}

/// Reserves a read if the permit's consent is counted; `Ok(None)` for an
/// uncounted one, `CONSENT_USED` when no read is left.
pub async fn reserve(
    gw: &Gateway,
    permit: &ConsentPermit,
) -> Result<Option<Reservation>, GatewayError> {
    if permit.max_reads() == 0 {
        return Ok(None);
    }
    let reserved = gw
        .store
        .reserve_read(permit.consent_id())
        .await
        .map_err(GatewayError::store)?;
    match reserved {
        Some(c) => Ok(Some(Reservation {
            store: gw.store.clone(),
            consent_id: c.consent_id,
            reads_used: c.reads_used,
            max_reads: c.max_reads,
            settled: false,
        })),
        None => Err(GatewayError::new(
            Reason::ConsentUsed,
            "the consent for this read allows no more reads",
        )),
    }
}

impl Reservation {
    /// Keeps the read if it returned records (and, if it was the last one,
    /// marks the consent USED, audited as `caller`'s read's consequence),
    /// else gives it back.
    pub async fn settle(mut self, gw: &Gateway, returned_records: bool, caller: &str) {
        self.settled = true;
        if !returned_records {
            if let Err(e) = self.store.release_read(&self.consent_id).await {
                tracing::error!(error = %e, consent_id = %self.consent_id, "a reserved read could not be given back");
            }
            return;
        }
        // Whether this read used the last one: the count now (another
        // read may have given one back since this one was reserved).
        let left = match gw.store.consent(&self.consent_id).await {
            Ok(Some(c)) => c.reads_used < c.max_reads,
            _ => self.reads_used < self.max_reads,
        };
        if left {
            return;
        }
        let now_ms = gw.clock.now_ms();
        let mut entry = audit::entry("Consents/Used", now_ms);
        entry.caller = caller.to_owned();
        entry.decision = Decision::Allowed.as_str().to_owned();
        entry.details.insert("consent_event".into(), "used".into());
        let t = Transition {
            consent_id: self.consent_id.clone(),
            to: ConsentState::Used,
            only_from: None,
            at_ms: now_ms,
            by: None,
            reason: None,
            approved: None,
            entry,
        };
        if let Err(e) = gw.store.transition(t).await {
            // The reads are used up in the store either way: no read can
            // reserve another; only the state and its event lag.
            tracing::error!(error = %e, consent_id = %self.consent_id, "a used-up consent could not be marked USED");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, id) = (self.store.clone(), self.consent_id.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.release_read(&id).await {
                    tracing::error!(error = %e, consent_id = %id, "a cancelled read's reservation could not be given back");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_proto::records::v1::{CourseResult, EmploymentPeriod};

    fn course(date: &str) -> Record {
        Record {
            payload: Some(Payload::CourseResult(CourseResult {
                examination_date: date.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn job(start: &str, end: &str) -> Record {
        Record {
            payload: Some(Payload::EmploymentPeriod(EmploymentPeriod {
                start_date: start.into(),
                end_date: end.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn records_outside_the_period_are_left_out_and_counted() {
        let store = crate::store::StoredConsent {
            records_from: "2015-01-01".into(),
            records_until: "2019-12-31".into(),
            state: ConsentState::Active,
            valid_until_ms: i64::MAX,
            purpose: "p".into(),
            record_types: vec!["t".into()],
            ..Default::default()
        };
        let permit = super::super::consent::decide(&[store], "p", &["t".into()], &[], 0).unwrap();
        let mut records = vec![
            course("2014-12-31"),
            course("2015-01-01"),
            course("2019-12-31"),
            course("2020-01-01"),
            course(""),
            job("2010-01-01", "2015-06-30"),
            job("2018-01-01", ""),
            job("2020-01-01", ""),
            Record::default(),
        ];
        assert_eq!(keep_within_period(&permit, &mut records), 5);
        assert_eq!(records.len(), 4);
    }
}
