//! Group commit for the audit trail, and periodic signed checkpoints.
//!
//! Every request hands its entry to one writer task per gateway and waits
//! until the entry is durable. The writer takes every entry that is waiting,
//! links them into the chain and commits them in one transaction (one
//! sync), then answers each request. While one batch commits the next one
//! gathers, so under load many entries share one sync and no entry is
//! answered before it is on stable storage.
//!
//! After a batch, and on a timer, the writer signs a checkpoint of the head
//! when `checkpoint_every` entries or `checkpoint_interval` have passed
//! since the last one.
//!
//! The writer has an OS thread of its own, and on SQLite it commits right
//! there instead of handing each batch to the blocking pool: on the request
//! path every hand-off between threads costs a wake-up, and the commit's
//! sync may block this thread as long as it likes.
//!
//! On Linux that thread runs under `SCHED_BATCH` (`run_as_batch_work`):
//! when a commit's sync returns while the CPU is busy with requests, the
//! writer does not preempt them but waits for its turn, and the entries
//! that arrive meanwhile join the next batch. On an idle CPU it runs at
//! once. So a saturated gateway makes fewer, larger commits
//! (fewer syncs per request) without a delay that would slow a quiet one.
//!
//! [`AuditWriter::close`] stops it before the process exits: entries
//! already handed in are committed, a last checkpoint is signed, and later
//! commits are refused.
//!
//! Every read needs its entry committed, so the writer's state is the
//! gateway's readiness ([`AuditWriter::ready`]): a replica whose commits
//! fail (a full disk, a store that refuses writes but still answers reads)
//! or whose writer has stopped refuses every read, and says so on
//! `/readyz` and in the gRPC health service, so that a load balancer sends
//! the reads elsewhere. A writer that ended without being asked to
//! ([`AuditWriter::alive`]) will not come back, and `/healthz` says so, so
//! that the process is restarted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::chain;
use crate::audit::chain::AuditEntry;
use crate::credential::signing::{JwsSigner, SignerSlot};
use crate::store::{Store, StoreError};
use crate::time::Clock;

/// The most entries committed in one transaction.
const MAX_BATCH: usize = 1024;

type Job = (AuditEntry, oneshot::Sender<Result<AuditEntry, StoreError>>);

/// When to sign checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many entries.
    pub every: u64,
    /// Or after this much time, if any entry was added.
    pub interval: Duration,
}

/// How long [`AuditWriter::close`] waits for the writer to finish.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the gateway reports itself not ready after a failed commit,
/// unless a later commit succeeds first. After that, a load balancer that
/// took the replica out sends it requests again, and their commits tell
/// whether the store has recovered.
pub const UNREADY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// The last failed commit, by the gateway's clock, while no later one has
/// succeeded.
type LastFailure = Arc<Mutex<Option<(i64, String)>>>;

/// Hands entries to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    jobs: mpsc::Sender<Job>,
    /// Set to ask the writer to finish.
    close: watch::Sender<bool>,
    /// Becomes true when the writer has finished.
    finished: watch::Receiver<bool>,
    failure: LastFailure,
    clock: Clock,
}

impl AuditWriter {
    /// Starts the writer task on the current runtime. It ends when every
    /// `AuditWriter` is dropped, after committing what it holds.
    pub fn spawn(
        store: Store,
        signer: Arc<SignerSlot>,
        clock: Clock,
        policy: CheckpointPolicy,
        metrics: crate::metrics::Metrics,
    ) -> AuditWriter {
        let (jobs, rx) = mpsc::channel(8 * MAX_BATCH);
        let (close, close_rx) = watch::channel(false);
        let (finish, finished) = watch::channel(false);
        let failure = LastFailure::default();
        let (run_failure, run_clock) = (failure.clone(), clock.clone());
        let thread = std::thread::Builder::new()
            .name("samverka-audit".into())
            .spawn(move || {
                if let Err(e) = run_as_batch_work() {
                    tracing::warn!(error = %e, "the audit writer runs under the default scheduling policy");
                }
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(run(
                        rx,
                        close_rx,
                        Context {
                            store,
                            signer,
                            clock: run_clock,
                            policy,
                            metrics,
                            failure: run_failure,
                        },
                    )),
                    // Without a writer every request is refused (fail closed).
                    Err(e) => tracing::error!(error = %e, "cannot start the audit writer"),
                }
                finish.send_replace(true);
            });
        if let Err(e) = thread {
            tracing::error!(error = %e, "cannot start the audit writer thread");
        }
        AuditWriter {
            jobs,
            close,
            finished,
            failure,
            clock,
        }
    }

    /// Whether reads can be answered now, as far as the audit trail goes:
    /// the writer runs, and no commit has failed in the last
    /// [`UNREADY_AFTER_FAILURE`] without a later one succeeding. The error
    /// says why not, for an operator.
    pub fn ready(&self) -> Result<(), String> {
        if self.jobs.is_closed() {
            return Err("the audit writer has stopped".into());
        }
        let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        // A clock set back counts as the pause over: a replica out of its
        // load balancer gets no reads that could make it ready again.
        let pause = 0..UNREADY_AFTER_FAILURE.as_millis() as i64;
        match &*failure {
            Some((at_ms, error)) if pause.contains(&(self.clock.now_ms() - at_ms)) => {
                Err(format!("the last audit commit failed: {error}"))
            }
            _ => Ok(()),
        }
    }

    /// False when the writer has ended without [`AuditWriter::close`]
    /// (it could not start, or it panicked): no read will be answered
    /// again until the process restarts.
    pub fn alive(&self) -> bool {
        !self.jobs.is_closed() || *self.close.borrow()
    }

    /// Stops the writer: commits what was handed in, signs a checkpoint of
    /// the head, and refuses later commits. Returns when it has finished
    /// (or after 10 s, with an error logged); call it before the process
    /// exits, so that no checkpoint is cut off halfway.
    pub async fn close(&self) {
        self.close.send_replace(true);
        let mut finished = self.finished.clone();
        match tokio::time::timeout(CLOSE_TIMEOUT, finished.wait_for(|done| *done)).await {
            Ok(_) => {}
            Err(_) => tracing::error!("the audit writer did not finish in time"),
        }
    }

    /// [`AuditWriter::close`] for a caller that cannot await (a `Drop`):
    /// blocks this thread until the writer has finished, at most 10 s.
    /// The process must not exit while the writer still signs: the crypto
    /// library's exit handler wipes the random generator under a thread
    /// that still uses it, and the process aborts.
    pub fn close_blocking(&self) {
        self.close.send_replace(true);
        let deadline = std::time::Instant::now() + CLOSE_TIMEOUT;
        // An error: the writer's thread is gone (or never started).
        while !*self.finished.borrow() && self.finished.has_changed().is_ok() {
            if std::time::Instant::now() >= deadline {
                tracing::error!("the audit writer did not finish in time");
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Records `result` in `entry` (its decision, and the reason of a
    /// refusal), commits it, and gives `result` back once the entry is
    /// durable, a refusal naming the entry's audit id. The answer never
    /// leaves before its entry: if the commit fails, so does the call.
    ///
    /// A refusal because the store failed gets an audit id of its own: the
    /// failed store call may have been a transaction that committed this
    /// very entry after all (its answer lost), and a second entry with the
    /// same id would fail the whole batch it is committed in, other
    /// callers' entries with it.
    pub async fn commit_outcome<T>(
        &self,
        mut entry: AuditEntry,
        result: Result<T, crate::GatewayError>,
    ) -> Result<T, crate::GatewayError> {
        let (decision, reason) = super::Decision::of(&result);
        entry.decision = decision.as_str().to_owned();
        entry.reason = reason.to_owned();
        if matches!(&result, Err(e) if e.reason == crate::Reason::StoreUnavailable) {
            entry.audit_id = super::new_id();
        }
        let audit_id = entry.audit_id.clone();
        self.commit(entry)
            .await
            .map_err(crate::GatewayError::store)?;
        result.map_err(|e| e.with_audit_id(audit_id))
    }

    /// [`AuditWriter::commit_outcome`] for a call whose success is
    /// committed with an entry of its own, in the store's transaction (a
    /// consent's change of state): only a refusal is committed here.
    pub async fn commit_refusal<T>(
        &self,
        entry: AuditEntry,
        result: Result<T, crate::GatewayError>,
    ) -> Result<T, crate::GatewayError> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => self.commit_outcome(entry, Err(e)).await,
        }
    }

    /// Commits `entry` to the chain and returns it as stored, once it is
    /// durable.
    pub async fn commit(&self, entry: AuditEntry) -> Result<AuditEntry, StoreError> {
        #[cfg(feature = "unaudited-benchmark")]
        return Ok(entry);
        #[cfg(not(feature = "unaudited-benchmark"))]
        self.commit_durably(entry).await
    }

    #[cfg_attr(feature = "unaudited-benchmark", allow(dead_code))]
    async fn commit_durably(&self, entry: AuditEntry) -> Result<AuditEntry, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((entry, tx))
            .await
            .map_err(|_| StoreError("the audit writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError("the audit writer dropped the entry".into()))?
    }
}

/// Puts the calling thread under the `SCHED_BATCH` policy, at the same
/// nice value: it is scheduled like any thread, except that waking up
/// does not let it preempt a running one. Any process may choose it (no
/// capability needed); `docs/performance.md` has its effect.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn run_as_batch_work() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that lives through the call,
    // which only reads it; pid 0 is the calling thread.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Elsewhere the writer keeps the default policy.
#[cfg(not(target_os = "linux"))]
fn run_as_batch_work() -> std::io::Result<()> {
    Ok(())
}

/// What the writer works with.
struct Context {
    store: Store,
    signer: Arc<SignerSlot>,
    clock: Clock,
    policy: CheckpointPolicy,
    metrics: crate::metrics::Metrics,
    failure: LastFailure,
}

async fn run(mut rx: mpsc::Receiver<Job>, mut close: watch::Receiver<bool>, cx: Context) {
    let Context {
        store,
        signer,
        clock,
        policy,
        metrics,
        failure,
    } = cx;
    let mut last_checkpoint = match store.checkpoints().await {
        Ok(cps) => cps.last().map_or(0, |c| c.seq),
        Err(_) => 0,
    };
    let mut since_checkpoint_entries = false;
    let mut ticker = tokio::time::interval(policy.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
            }
            // Refuse new entries; the ones queued are still received, and
            // `recv_many` returns 0 after the last.
            _ = close.wait_for(|c| *c), if !rx.is_closed() => {
                rx.close();
                continue;
            }
            _ = ticker.tick() => {
                if since_checkpoint_entries {
                    since_checkpoint_entries = false;
                    sign_head(&store, &signer.current(), &clock, &mut last_checkpoint).await;
                }
                continue;
            }
        }
        let (entries, waiters): (Vec<AuditEntry>, Vec<_>) = batch.drain(..).unzip();
        let count = entries.len();
        let started = std::time::Instant::now();
        let appended = store.append_audit_batch_on_this_thread(entries).await;
        metrics.audit_batch(count, started.elapsed());
        *failure.lock().unwrap_or_else(|p| p.into_inner()) = match &appended {
            Ok(_) => None,
            Err(e) => Some((clock.now_ms(), e.to_string())),
        };
        match appended {
            Ok(chained) => {
                let head_seq = chained.last().map_or(0, |e| e.seq);
                for (entry, waiter) in chained.into_iter().zip(waiters) {
                    let _ = waiter.send(Ok(entry));
                }
                since_checkpoint_entries = true;
                if (head_seq - last_checkpoint) as u64 >= policy.every {
                    since_checkpoint_entries = false;
                    sign_head(&store, &signer.current(), &clock, &mut last_checkpoint).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit batch failed; its requests are refused");
                for waiter in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
        }
    }
    // Leave a checkpoint of everything written, for a clean shutdown.
    if since_checkpoint_entries {
        sign_head(&store, &signer.current(), &clock, &mut last_checkpoint).await;
    }
}

async fn sign_head(store: &Store, signer: &JwsSigner, clock: &Clock, last_checkpoint: &mut i64) {
    let result = async {
        let head = store.audit_head().await?;
        if head.seq == 0 || head.seq == *last_checkpoint {
            return Ok(());
        }
        let cp = chain::checkpoint(signer, &head, clock.now_ms())
            .map_err(|e| StoreError(e.to_string()))?;
        store.add_checkpoint(cp).await?;
        *last_checkpoint = head.seq;
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not sign an audit checkpoint; will try again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer handle whose jobs go to the returned receiver, as the
    /// writer thread's would.
    fn handle(clock: &Clock) -> (AuditWriter, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(1);
        let (close, _) = watch::channel(false);
        let (_, finished) = watch::channel(false);
        let writer = AuditWriter {
            jobs,
            close,
            finished,
            failure: LastFailure::default(),
            clock: clock.clone(),
        };
        (writer, rx)
    }

    #[test]
    fn a_failed_commit_makes_it_unready_until_a_later_one_or_the_pause_ends() {
        let clock = Clock::manual(1_000_000);
        let (writer, _rx) = handle(&clock);
        assert_eq!(writer.ready(), Ok(()));
        *writer.failure.lock().unwrap() = Some((clock.now_ms(), "disk I/O error".into()));
        let why = writer.ready().unwrap_err();
        assert!(why.contains("disk I/O error"), "{why}");
        clock.set_ms(1_000_000 + UNREADY_AFTER_FAILURE.as_millis() as i64 - 1);
        assert!(writer.ready().is_err());
        clock.set_ms(1_000_000 + UNREADY_AFTER_FAILURE.as_millis() as i64);
        assert_eq!(writer.ready(), Ok(()));
        clock.set_ms(999_999);
        assert_eq!(writer.ready(), Ok(()), "the clock set back");
        assert!(writer.alive());
    }

    #[tokio::test]
    async fn a_refusal_for_a_failed_store_call_is_committed_under_an_id_of_its_own() {
        let clock = Clock::manual(1_000_000);
        let (writer, mut rx) = handle(&clock);
        let answer = tokio::spawn(async move {
            while let Some((entry, done)) = rx.recv().await {
                let _ = done.send(Ok(entry));
            }
        });
        let entry = super::super::entry("Consents/Revoke", clock.now_ms());
        let first = entry.audit_id.clone();
        let failed: Result<(), _> = Err(crate::GatewayError::store("commit answer lost"));
        let e = writer
            .commit_outcome(entry.clone(), failed)
            .await
            .unwrap_err();
        let id = e.audit_id.expect("the refusal names its entry");
        assert_ne!(id, first, "maybe committed under the first id already");
        let refused: Result<(), _> =
            Err(crate::GatewayError::new(crate::Reason::RoleRequired, "no"));
        let e = writer.commit_outcome(entry, refused).await.unwrap_err();
        assert_eq!(
            e.audit_id.as_deref(),
            Some(first.as_str()),
            "other refusals keep it"
        );
        drop(writer);
        answer.await.unwrap();
    }

    #[test]
    fn a_writer_that_ended_unasked_is_dead_and_one_asked_to_close_is_not() {
        let clock = Clock::manual(1_000_000);
        let (writer, rx) = handle(&clock);
        drop(rx);
        assert_eq!(
            writer.ready(),
            Err("the audit writer has stopped".to_owned())
        );
        assert!(!writer.alive());

        let (writer, mut rx) = handle(&clock);
        writer.close.send_replace(true);
        rx.close();
        assert!(writer.ready().is_err(), "a closing gateway takes no reads");
        assert!(writer.alive());
    }
}
