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
//! [`AuditWriter::close`] stops it before the process exits: entries
//! already handed in are committed, a last checkpoint is signed, and later
//! commits are refused.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::chain;
use crate::signing::{JwsSigner, SignerSlot};
use crate::store::{AuditEntry, Store, StoreError};
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

/// Hands entries to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    jobs: mpsc::Sender<Job>,
    /// Set to ask the writer to finish.
    close: watch::Sender<bool>,
    /// Becomes true when the writer has finished.
    finished: watch::Receiver<bool>,
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
        let thread = std::thread::Builder::new()
            .name("samverka-audit".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(run(rx, close_rx, store, signer, clock, policy, metrics)),
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
        }
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

async fn run(
    mut rx: mpsc::Receiver<Job>,
    mut close: watch::Receiver<bool>,
    store: Store,
    signer: Arc<SignerSlot>,
    clock: Clock,
    policy: CheckpointPolicy,
    metrics: crate::metrics::Metrics,
) {
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
