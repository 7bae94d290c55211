//! `WatchConsents`: every change to the consents granted to, or requested
//! by, the calling agency, from a cursor, then as they happen.
//!
//! The changes are read from the audit trail, whose order is serialised
//! (one chain, one head) across replicas: an entry with a `consent_event`
//! detail is a change, and its `seq` is the cursor. A sequence that commits
//! out of order could let a reader skip a row; the chain cannot, as each
//! entry is linked after the one before it in the same lock. The stream
//! polls the trail twice a second, so a change on any replica reaches the
//! watchers of every replica within about a second. A change of state is
//! committed with its entry in one transaction, so none is missed; a grant
//! or a request is committed before its entry, and a retry after a failed
//! entry records it again (at least once).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use samverka_proto::v1::{ConsentEvent, WatchConsentsRequest};
use tonic::{Request, Status};

use super::{ConsentsService, to_proto};
use crate::Gateway;
use crate::audit::AuditEntry;
use crate::error::{GatewayError, Reason};
use crate::service::rpc::Call;

/// The stream of events a watcher gets.
pub(super) type EventStream = Pin<Box<dyn Stream<Item = Result<ConsentEvent, Status>> + Send>>;

/// How often the trail is looked at for new changes.
const POLL: Duration = Duration::from_millis(500);

/// Entries read from the trail at once.
const PAGE: i64 = 500;

/// The event `e` is for `agency`, if it records a change to a consent
/// granted to or requested by it.
fn event_for(e: &AuditEntry, agency: &str) -> Option<String> {
    if e.decision != "allowed" {
        return None;
    }
    let event = e.details.get("consent_event")?;
    let ours = e.details.get("grantee_agency").map(String::as_str) == Some(agency)
        || e.details.get("requested_by").map(String::as_str) == Some(agency);
    ours.then(|| event.clone())
}

struct Watch {
    gw: Arc<Gateway>,
    stopping: tokio::sync::watch::Receiver<bool>,
    agency: String,
    cursor: i64,
    ready: VecDeque<ConsentEvent>,
    failed: bool,
}

impl Watch {
    /// The next event, waiting for one if there is none yet.
    async fn next(&mut self) -> Option<Result<ConsentEvent, Status>> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(e) = self.ready.pop_front() {
                return Some(Ok(e));
            }
            let page = match self.gw.store.audit_range(self.cursor, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    self.failed = true;
                    tracing::warn!(error = %e, "consent watch ends: the store is unavailable");
                    return Some(Err(Status::unavailable(
                        "the consent and audit store is unavailable: resume from the last cursor",
                    )));
                }
            };
            let full = page.len() as i64 == PAGE;
            for e in page {
                self.cursor = e.seq;
                if let Some(event) = event_for(&e, &self.agency) {
                    let now_ms = self.gw.clock.now_ms();
                    let consent = match self.gw.store.consent(&e.consent_id).await {
                        Ok(c) => c.map(|c| to_proto(&c, now_ms, &self.gw.registry.current())),
                        Err(_) => None,
                    };
                    let status = e
                        .details
                        .get("state")
                        .map(|s| super::view::status_of(crate::store::ConsentState::parse(s)))
                        .unwrap_or_default();
                    self.ready.push_back(ConsentEvent {
                        status: status as i32,
                        cursor: e.seq.to_string(),
                        event,
                        time: Some(crate::time::to_timestamp(e.time_ms)),
                        consent,
                        audit_id: e.audit_id,
                    });
                }
            }
            if self.ready.is_empty() && !full {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = self.stopping.wait_for(|s| *s) => {}
                }
            }
            if *self.stopping.borrow() {
                self.failed = true;
                return Some(Err(Status::unavailable(format!(
                    "the gateway is stopping: resume from cursor {} (on another replica, or here once it is back)",
                    self.cursor
                ))));
            }
        }
    }
}

impl ConsentsService {
    pub(super) async fn watch(
        &self,
        request: Request<WatchConsentsRequest>,
        call: &Call<'_>,
    ) -> Result<EventStream, GatewayError> {
        let caller = call.admit(&request, &self.gateway.rate)?;
        let mut entry = call.audit_entry(&caller, self.gateway.clock.now_ms());
        let cursor = request.into_inner().cursor;
        entry.details.insert(
            "cursor".into(),
            crate::pipeline::validate::sanitize(&cursor),
        );
        let start = caller.and_then(|c| {
            let after = if cursor.is_empty() {
                0
            } else {
                cursor
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        GatewayError::invalid(
                            Reason::FieldInvalid,
                            "cursor",
                            "cursor is not one this service gave",
                        )
                    })?
            };
            Ok((c.agency.to_string(), after))
        });
        // Opening a watch shows the agency who may read what: audited.
        let (agency, cursor) = self.gateway.audit.commit_outcome(entry, start).await?;
        let watch = Watch {
            stopping: self.gateway.stopping.subscribe(),
            gw: self.gateway.clone(),
            agency,
            cursor,
            ready: VecDeque::new(),
            failed: false,
        };
        let stream = futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|item| (item, w))
        });
        Ok(Box::pin(stream))
    }
}
