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
    Probing { since: Instant },
}

/// One source's breaker.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    state: Mutex<State>,
}

/// A call the breaker let through. Its outcome is given with
/// [`Ticket::record`]; a ticket dropped without one (the read was
/// cancelled while the source was being asked) leaves no state behind: a
/// probe that was cancelled lets the next call probe at once, instead of
/// pausing the source for everyone.
#[derive(Debug)]
#[must_use = "a call's outcome is given to the breaker with record()"]
pub struct Ticket<'b> {
    breaker: &'b Breaker,
    admission: Admission,
    recorded: bool,
}

impl Ticket<'_> {
    /// Whether this call is the probe after a pause.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// The outcome of the call: `failed` when the source was unreachable
    /// or too slow.
    pub fn record(mut self, failed: bool, now: Instant) {
        self.recorded = true;
        self.breaker.record(failed, now);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.recorded || self.admission != Admission::Probe {
            return;
        }
        let mut state = self.breaker.state();
        if matches!(*state, State::Probing { .. }) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }
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

    /// Whether to call the source now: a ticket for the call, or `None`
    /// while calls are paused. A probe that has not reported within
    /// `open_for` is given up on, and the next call probes again.
    pub fn admit(&self, now: Instant) -> Option<Ticket<'_>> {
        let mut state = self.state();
        let admission = match *state {
            State::Closed { .. } => Admission::Call,
            State::Open { until } if now >= until => Admission::Probe,
            State::Probing { since } if now >= since + self.open_for => Admission::Probe,
            // One probe at a time; the others wait for its verdict.
            State::Open { .. } | State::Probing { .. } => return None,
        };
        if admission == Admission::Probe {
            *state = State::Probing { since: now };
        }
        Some(Ticket {
            breaker: self,
            admission,
            recorded: false,
        })
    }

    fn record(&self, failed: bool, now: Instant) {
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

    /// Whether the last call found the source unreachable or too slow, or
    /// calls are paused.
    pub fn is_failing(&self) -> bool {
        !matches!(*self.state(), State::Closed { failures: 0 })
    }

    /// Whether calls are paused now.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(b: &Breaker, now: Instant) -> Admission {
        b.admit(now).map_or(Admission::Paused, |t| {
            let a = t.admission();
            // Recorded as an answer only where the test says so below.
            std::mem::forget(t);
            a
        })
    }

    #[test]
    fn opens_after_failures_in_a_row_and_probes_back() {
        let t0 = Instant::now();
        let b = Breaker::new(3, Duration::from_secs(10));
        // Failures interrupted by a success do not add up.
        for failed in [true, true, false, true, true] {
            let ticket = b.admit(t0).unwrap();
            assert_eq!(ticket.admission(), Admission::Call);
            ticket.record(failed, t0);
        }
        assert!(!b.is_open());
        b.admit(t0).unwrap().record(true, t0);
        assert!(b.is_open());
        assert!(b.admit(t0 + Duration::from_secs(9)).is_none());

        // After the pause one probe goes through, the rest wait for it.
        let later = t0 + Duration::from_secs(10);
        let probe = b.admit(later).unwrap();
        assert_eq!(probe.admission(), Admission::Probe);
        assert!(b.admit(later).is_none());
        // A failed probe pauses again, from its own time.
        probe.record(true, later);
        assert!(b.admit(later + Duration::from_secs(9)).is_none());
        let again = later + Duration::from_secs(10);
        let probe = b.admit(again).unwrap();
        assert_eq!(probe.admission(), Admission::Probe);
        // An answered probe closes the circuit.
        probe.record(false, again);
        assert!(!b.is_open());
        assert_eq!(admission(&b, again), Admission::Call);
    }

    /// The class: a read may be cancelled at any point, and the breaker
    /// is left as if that call had never been let through.
    #[test]
    fn a_cancelled_call_leaves_no_state_behind() {
        let t0 = Instant::now();
        let b = Breaker::new(1, Duration::from_secs(10));
        // A cancelled ordinary call: nothing counted either way.
        drop(b.admit(t0).unwrap());
        assert!(!b.is_open());
        b.admit(t0).unwrap().record(true, t0);
        assert!(b.is_open());

        // A cancelled probe: the next call probes at once.
        let later = t0 + Duration::from_secs(10);
        let probe = b.admit(later).unwrap();
        assert!(b.admit(later).is_none(), "one probe at a time");
        drop(probe);
        let next = b.admit(later).expect("the source is not left paused");
        assert_eq!(next.admission(), Admission::Probe);
        next.record(false, later);
        assert!(!b.is_open());
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up_on() {
        let t0 = Instant::now();
        let b = Breaker::new(1, Duration::from_secs(10));
        b.admit(t0).unwrap().record(true, t0);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(admission(&b, later), Admission::Probe);
        assert!(b.admit(later + Duration::from_secs(9)).is_none());
        assert_eq!(
            admission(&b, later + Duration::from_secs(10)),
            Admission::Probe
        );
    }
}
