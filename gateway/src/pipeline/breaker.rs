//! A circuit breaker per source: after `failures` calls in a row that
//! found the source unreachable or too slow, the gateway stops calling it
//! for `open_for` (each read gets the source's `UNAVAILABLE` outcome at
//! once, saying that calls are paused), then lets one call through as a
//! probe: an answer closes the circuit, another failure opens it again.
//!
//! Only failures that say "the source is not there" count: unreachable,
//! not speaking gRPC, deadline exceeded. A source that answers, even with
//! an error of its own or records it should not have sent, is there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker says about the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call the source.
    Call,
    /// Call it as the probe after a pause.
    Probe,
    /// Do not call: the circuit is open.
    Paused,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    Probing,
}

/// One source's breaker.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `failures` failures in a row, for `open_for`.
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Breaker {
            failures: failures.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether to call the source now.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Admission::Call,
            State::Open { until } if now >= until => {
                *state = State::Probing;
                Admission::Probe
            }
            // One probe at a time; the others wait for its verdict.
            State::Open { .. } | State::Probing => Admission::Paused,
        }
    }

    /// The outcome of a call that was made: `failed` when the source was
    /// unreachable or too slow.
    pub fn record(&self, failed: bool, now: Instant) {
        let mut state = self.state();
        *state = match (&*state, failed) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 < self.failures => State::Closed {
                failures: failures + 1,
            },
            (_, true) => {
                tracing::warn!(open_for = ?self.open_for, "source failing: calls paused");
                State::Open {
                    until: now + self.open_for,
                }
            }
        };
    }

    /// Whether calls are paused now.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_and_probes_back() {
        let t0 = Instant::now();
        let b = Breaker::new(3, Duration::from_secs(10));
        // Failures interrupted by a success do not add up.
        for failed in [true, true, false, true, true] {
            assert_eq!(b.admit(t0), Admission::Call);
            b.record(failed, t0);
        }
        assert!(!b.is_open());
        b.record(true, t0);
        assert!(b.is_open());
        assert_eq!(b.admit(t0 + Duration::from_secs(9)), Admission::Paused);

        // After the pause one probe goes through, the rest wait for it.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(later), Admission::Probe);
        assert_eq!(b.admit(later), Admission::Paused);
        // A failed probe pauses again, from its own time.
        b.record(true, later);
        assert_eq!(b.admit(later + Duration::from_secs(9)), Admission::Paused);
        let again = later + Duration::from_secs(10);
        assert_eq!(b.admit(again), Admission::Probe);
        // An answered probe closes the circuit.
        b.record(false, again);
        assert!(!b.is_open());
        assert_eq!(b.admit(again), Admission::Call);
    }
}
