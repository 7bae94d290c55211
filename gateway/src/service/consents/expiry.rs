//! Consents whose time is up become EXPIRED, with an audit entry and a
//! change event, within about a second of the instant: active or paused
//! ones at `valid_until`, requests at `decide_by`. Reads never depend on
//! this (they compare the times themselves); watchers do. Every replica
//! sweeps; the store's compare-and-set lets one of them make each change.

use std::time::Duration;

use crate::audit::{self, Decision};
use crate::store::{ConsentState, Store, Transition};
use crate::time::Clock;

/// How often the store is asked for consents whose time is up.
const EVERY: Duration = Duration::from_secs(1);

/// The most consents expired in one sweep (the next sweep takes the rest).
const BATCH: i64 = 200;

/// The sweeping task; stops when dropped.
#[derive(Debug)]
pub struct ExpiryTask(tokio::task::JoinHandle<()>);

impl Drop for ExpiryTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One sweep at `now_ms`: returns how many consents it expired.
pub async fn sweep(store: &Store, now_ms: i64) -> Result<usize, crate::store::StoreError> {
    let mut expired = 0;
    for c in store.due_to_expire(now_ms, BATCH).await? {
        let mut entry = audit::entry("Consents/Expired", now_ms);
        entry.caller = "samverka".into();
        entry.decision = Decision::Allowed.as_str().to_owned();
        entry
            .details
            .insert("consent_event".into(), "expired".into());
        let t = Transition {
            consent_id: c.consent_id.clone(),
            to: ConsentState::Expired,
            only_from: Some(c.state),
            at_ms: now_ms,
            by: None,
            reason: None,
            approved: None,
            entry,
        };
        if let crate::store::Transitioned::Done(..) = store.transition(t).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Starts sweeping `store` by `clock`.
pub fn spawn(store: Store, clock: Clock) -> ExpiryTask {
    ExpiryTask(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&store, clock.now_ms()).await {
                tracing::warn!(error = %e, "expiring consents failed; trying again");
            }
        }
    }))
}
