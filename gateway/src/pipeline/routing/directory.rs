//! What `ListSources` answers: every source of the routing table, with
//! what its adapter says about itself (`Describe`). The adapters are asked
//! in the background, at start and then every [`REFRESH_EVERY`], never on
//! a caller's behalf: however often `ListSources` is called, each adapter
//! gets one `Describe` per refresh.
//!
//! A source is reachable when it answered at the last refresh and no read
//! has found it unreachable or too slow since (its circuit breaker,
//! [`crate::pipeline::breaker`], counts such failures until an answer).
//! A call that comes before the first refresh has finished waits for it,
//! at most [`FIRST_REFRESH_WAIT`]; if it is still not there, the answer is
//! the routing table with every source not (yet) known to be reachable.

use std::sync::Arc;
use std::time::Duration;

use samverka_proto::v1::Source;
use tokio::sync::watch;

use super::Router;

/// How often the adapters are asked to describe themselves.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// How long each adapter has to answer `Describe`.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a call waits for the first refresh.
const FIRST_REFRESH_WAIT: Duration = Duration::from_millis(2500);

/// The sources as last described, refreshed in the background.
#[derive(Debug)]
pub struct SourceDirectory {
    current: watch::Receiver<Option<Arc<Vec<Source>>>>,
    /// Each source's circuit breaker, in routing-table order.
    breakers: Arc<Vec<crate::pipeline::breaker::Breaker>>,
    /// The routing table alone, every source unreachable: the answer while
    /// no refresh has finished.
    unknown: Vec<Source>,
}

impl SourceDirectory {
    /// Starts refreshing from `router`'s adapters every `every`, the first
    /// time at once, on the current tokio runtime. The refreshing stops
    /// when the directory is dropped.
    pub fn spawn(router: Router, every: Duration) -> SourceDirectory {
        let unknown = router
            .sources
            .iter()
            .map(|(route, _)| Source {
                agency_id: route.org_number.to_string(),
                name: route.name.clone(),
                record_types: route.record_types.clone(),
                reachable: false,
                description: String::new(),
            })
            .collect();
        let (tx, current) = watch::channel(None);
        let breakers = router.breakers.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = ticks.tick() => {}
                }
                let sources = tokio::select! {
                    _ = tx.closed() => return,
                    sources = router.describe_all(DESCRIBE_TIMEOUT) => sources,
                };
                if tx.send(Some(Arc::new(sources))).is_err() {
                    return;
                }
            }
        });
        SourceDirectory {
            current,
            breakers,
            unknown,
        }
    }

    /// The sources as last described, those a read found failing since
    /// unreachable; before the first refresh, waits for it at most
    /// [`FIRST_REFRESH_WAIT`].
    pub async fn sources(&self) -> Vec<Source> {
        let mut current = self.current.clone();
        let described = tokio::time::timeout(FIRST_REFRESH_WAIT, async {
            current
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|s| s.clone())
        })
        .await
        .ok()
        .flatten();
        let mut sources = match described {
            Some(sources) => sources.as_ref().clone(),
            None => self.unknown.clone(),
        };
        for (source, breaker) in sources.iter_mut().zip(self.breakers.iter()) {
            source.reachable &= !breaker.is_failing();
        }
        sources
    }
}
