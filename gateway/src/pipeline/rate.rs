//! Per-agency rate limiting: a token bucket for each calling agency, so
//! that one agency's burst cannot starve the others or flood the audit
//! trail.
//!
//! A refused request is RESOURCE_EXHAUSTED with reason `RATE_LIMITED` and a
//! `google.rpc.RetryInfo` saying when a token will be there. It is counted
//! in the metrics but not audited: it is refused before anything about a
//! person is looked at, and auditing a flood would let it fill the trail.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use samverka_certs::OrgNumber;

use crate::error::{GatewayError, Reason};

/// Token buckets by agency.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl RateLimiter {
    /// `per_second` tokens are added per second, up to `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `agency` at `now_ms`, or refuses with
    /// `RATE_LIMITED` and when to retry.
    pub fn check(&self, agency: &OrgNumber, now_ms: i64) -> Result<(), GatewayError> {
        self.take(agency.as_str(), now_ms)
            .map_err(|wait| GatewayError {
                retry_after: Some(wait),
                detail: Some(format!("{agency} is over its rate")),
                ..GatewayError::new(
                    Reason::RateLimited,
                    "too many requests from this agency; retry later",
                )
            })
    }

    /// Takes a token for `agency` at `now_ms`, or says how long until one
    /// is there.
    pub fn take(&self, agency: &str, now_ms: i64) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            // A panic elsewhere while holding the lock: keep limiting with
            // what is there.
            Err(poisoned) => poisoned.into_inner(),
        };
        let bucket = buckets.entry(agency.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - bucket.at_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Duration::from_secs_f64(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let r = RateLimiter::new(2.0, 3.0);
        for _ in 0..3 {
            assert!(r.take("a", 0).is_ok());
        }
        let wait = r.take("a", 0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another agency has its own bucket.
        assert!(r.take("b", 0).is_ok());
        // Half a second later one token is back, and only one.
        assert!(r.take("a", 500).is_ok());
        assert!(r.take("a", 500).is_err());
        // Long idle: back to the burst, not beyond.
        for _ in 0..3 {
            assert!(r.take("a", 60_000).is_ok());
        }
        assert!(r.take("a", 60_000).is_err());
    }
}
