//! Rate limiting: a token bucket for each caller, so that no caller's burst
//! can starve the others, flood the audit trail or make the gateway call
//! its registers at will.
//!
//! Every RPC takes a token, through [`crate::service::rpc::Call::identify`],
//! right after the caller's certificate is read. The bucket is keyed by the
//! certificate's identity ([`RateKey`]): the agency's organisation number
//! when the certificate is an agency's (all its certificates share one
//! bucket), otherwise the certificate itself (its SHA-256 thumbprint): a
//! certificate of the adapter or gateway role, or one without a readable
//! samverka identity, is refused, but only at its own rate.
//!
//! Each agency listed under `[[agencies]]` has its rate there, or
//! `[limits]`'s, and its bucket is kept. Every other key takes `[limits]`'s
//! rate, and their table is bounded, since a certificate of the federation
//! chooses its key: a bucket idle long enough to be full again is forgotten
//! (a new one would be the same), and while [`MAX_UNLISTED`] buckets are
//! busy at once, further newcomers share one bucket.
//!
//! A refused request is RESOURCE_EXHAUSTED with reason `RATE_LIMITED` and a
//! `google.rpc.RetryInfo` saying when a token will be there. It is counted
//! in the metrics but not audited: it is refused before anything about a
//! person is looked at, and auditing a flood would let it fill the trail.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use samverka_certs::OrgNumber;

use crate::config::Config;
use crate::error::{GatewayError, Reason};
use crate::time::Clock;

/// The most buckets kept for keys that are not listed agencies; further
/// newcomers share one bucket while that many are busy.
pub const MAX_UNLISTED: usize = 10_000;

/// How often buckets that have filled up again are forgotten.
const SWEEP_EVERY_MS: i64 = 60_000;

/// How often, at most, a full table is swept to make room for a newcomer.
const FULL_SWEEP_EVERY_MS: i64 = 1_000;

/// A rate: `per_second` tokens are added per second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, on average.
    pub per_second: f64,
    /// Requests at once after a quiet spell.
    pub burst: f64,
}

/// Whose bucket a request takes its token from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// The agency a certificate of the agency role names.
    Agency(OrgNumber),
    /// Any other certificate, by its SHA-256 thumbprint.
    Certificate([u8; 32]),
}

impl RateKey {
    /// The key of a certificate that names no agency caller, from its DER.
    pub fn certificate(der: &[u8]) -> RateKey {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut thumbprint = [0u8; 32];
        thumbprint.copy_from_slice(digest.as_ref());
        RateKey::Certificate(thumbprint)
    }
}

impl std::fmt::Display for RateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateKey::Agency(org) => write!(f, "agency {org}"),
            RateKey::Certificate(thumbprint) => {
                write!(f, "certificate sha256:")?;
                thumbprint.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// Each listed agency's rate: its own where `[[agencies]]` gives one,
/// else `[limits]`'s.
pub fn listed(
    limits: &crate::config::Limits,
    agencies: &[crate::config::Agency],
) -> Vec<(OrgNumber, Rate)> {
    agencies
        .iter()
        .map(|a| {
            let rate = Rate {
                per_second: a.rate_per_second.unwrap_or(limits.rate_per_second),
                burst: a.burst.unwrap_or(limits.burst),
            };
            (a.org_number.clone(), rate)
        })
        .collect()
}

/// Token buckets by caller.
#[derive(Debug)]
pub struct RateLimiter {
    default: Rate,
    max_unlisted: usize,
    clock: Clock,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// The agencies with a rate of their own (the registry's, replaced
    /// when it changes: [`RateLimiter::set_listed`]).
    rates: HashMap<OrgNumber, Rate>,
    listed: HashMap<OrgNumber, Bucket>,
    unlisted: HashMap<RateKey, Bucket>,
    /// Shared by newcomers while `unlisted` is full.
    shared: Bucket,
    swept_ms: i64,
    warned_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    fn full(rate: Rate, now_ms: i64) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at_ms: now_ms,
        }
    }

    /// The tokens there at `now_ms`.
    fn tokens_at(&self, rate: Rate, now_ms: i64) -> f64 {
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        (self.tokens + elapsed * rate.per_second).min(rate.burst)
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now_ms: i64) -> Result<(), Duration> {
        self.tokens = self.tokens_at(rate, now_ms);
        self.at_ms = self.at_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.per_second,
            ))
        }
    }
}

impl RateLimiter {
    /// `default` for every caller but the agencies of `listed`, which have
    /// their own; "now" from `clock`.
    pub fn new(
        default: Rate,
        listed: impl IntoIterator<Item = (OrgNumber, Rate)>,
        clock: Clock,
    ) -> Self {
        RateLimiter::bounded(default, listed, clock, MAX_UNLISTED)
    }

    /// `[limits]`'s rate, and each agency's of `[[agencies]]`.
    pub fn from_config(config: &Config, clock: Clock) -> Self {
        let limits = &config.limits;
        let default = Rate {
            per_second: limits.rate_per_second,
            burst: limits.burst,
        };
        RateLimiter::new(default, listed(limits, &config.agencies), clock)
    }

    /// Gives the listed agencies these rates from now on (the registry
    /// changed); an agency no longer listed is limited as an unlisted
    /// caller.
    pub fn set_listed(&self, listed: impl IntoIterator<Item = (OrgNumber, Rate)>) {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        b.rates = listed.into_iter().collect();
        let Buckets { rates, listed, .. } = &mut *b;
        listed.retain(|org, _| rates.contains_key(org));
    }

    fn bounded(
        default: Rate,
        listed: impl IntoIterator<Item = (OrgNumber, Rate)>,
        clock: Clock,
        max_unlisted: usize,
    ) -> Self {
        let now_ms = clock.now_ms();
        RateLimiter {
            default,
            max_unlisted,
            clock,
            buckets: Mutex::new(Buckets {
                rates: listed.into_iter().collect(),
                listed: HashMap::new(),
                unlisted: HashMap::new(),
                shared: Bucket::full(default, now_ms),
                swept_ms: now_ms,
                warned_ms: None,
            }),
        }
    }

    /// The rate of `key`'s bucket.
    pub fn rate(&self, key: &RateKey) -> Rate {
        match key {
            RateKey::Agency(org) => {
                let b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
                b.rates.get(org).copied().unwrap_or(self.default)
            }
            RateKey::Certificate(_) => self.default,
        }
    }

    /// Takes a token for `key`, or refuses with `RATE_LIMITED` and when to
    /// retry.
    pub fn check(&self, key: &RateKey) -> Result<(), GatewayError> {
        self.take(key, self.clock.now_ms())
            .map_err(|wait| GatewayError {
                retry_after: Some(wait),
                detail: Some(format!("{key} is over its rate")),
                ..GatewayError::new(
                    Reason::RateLimited,
                    match key {
                        RateKey::Agency(_) => "too many requests from this agency; retry later",
                        RateKey::Certificate(_) => {
                            "too many requests with this certificate; retry later"
                        }
                    },
                )
            })
    }

    /// Takes a token for `key` at `now_ms`, or says how long until one is
    /// there.
    fn take(&self, key: &RateKey, now_ms: i64) -> Result<(), Duration> {
        let mut b = match self.buckets.lock() {
            Ok(b) => b,
            // A panic elsewhere while holding the lock: keep limiting with
            // what is there.
            Err(poisoned) => poisoned.into_inner(),
        };
        if let RateKey::Agency(org) = key
            && let Some(&rate) = b.rates.get(org)
        {
            return b
                .listed
                .entry(org.clone())
                .or_insert_with(|| Bucket::full(rate, now_ms))
                .take(rate, now_ms);
        }
        let rate = self.default;
        if now_ms.saturating_sub(b.swept_ms) >= SWEEP_EVERY_MS {
            b.sweep(rate, now_ms);
        }
        if let Some(bucket) = b.unlisted.get_mut(key) {
            return bucket.take(rate, now_ms);
        }
        if b.unlisted.len() >= self.max_unlisted
            && now_ms.saturating_sub(b.swept_ms) >= FULL_SWEEP_EVERY_MS
        {
            b.sweep(rate, now_ms);
        }
        if b.unlisted.len() < self.max_unlisted {
            let mut bucket = Bucket::full(rate, now_ms);
            let taken = bucket.take(rate, now_ms);
            b.unlisted.insert(key.clone(), bucket);
            return taken;
        }
        if b.warned_ms
            .is_none_or(|w| now_ms.saturating_sub(w) >= SWEEP_EVERY_MS)
        {
            b.warned_ms = Some(now_ms);
            tracing::warn!(
                buckets = b.unlisted.len(),
                "rate limiter: too many callers other than listed agencies at once; newcomers share one bucket"
            );
        }
        b.shared.take(rate, now_ms)
    }

    /// How many buckets are kept for keys other than listed agencies.
    pub fn unlisted_buckets(&self) -> usize {
        match self.buckets.lock() {
            Ok(b) => b.unlisted.len(),
            Err(poisoned) => poisoned.into_inner().unlisted.len(),
        }
    }
}

impl Buckets {
    /// Forgets the buckets that have filled up again: a new one would be
    /// the same.
    fn sweep(&mut self, rate: Rate, now_ms: i64) {
        self.unlisted
            .retain(|_, bucket| bucket.tokens_at(rate, now_ms) < rate.burst);
        self.swept_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgNumber {
        OrgNumber::parse(s).unwrap()
    }

    fn agency(s: &str) -> RateKey {
        RateKey::Agency(org(s))
    }

    const SLOW: Rate = Rate {
        per_second: 2.0,
        burst: 3.0,
    };

    fn limiter(listed: &[(&str, Rate)], max_unlisted: usize) -> RateLimiter {
        let listed = listed.iter().map(|(o, r)| (org(o), *r));
        RateLimiter::bounded(SLOW, listed, Clock::manual(0), max_unlisted)
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        for r in [
            limiter(&[], 10),
            limiter(&[("2021999020", SLOW), ("2021999038", SLOW)], 10),
        ] {
            let (a, b) = (agency("2021999020"), agency("2021999038"));
            for _ in 0..3 {
                assert!(r.take(&a, 0).is_ok());
            }
            let wait = r.take(&a, 0).unwrap_err();
            assert_eq!(wait, Duration::from_millis(500));
            // Another agency has its own bucket.
            assert!(r.take(&b, 0).is_ok());
            // Half a second later one token is back, and only one.
            assert!(r.take(&a, 500).is_ok());
            assert!(r.take(&a, 500).is_err());
            // Long idle: back to the burst, not beyond.
            for _ in 0..3 {
                assert!(r.take(&a, 60_000).is_ok());
            }
            assert!(r.take(&a, 60_000).is_err());
        }
    }

    #[test]
    fn a_listed_agency_has_its_own_rate() {
        let fast = Rate {
            per_second: 10.0,
            burst: 10.0,
        };
        let r = limiter(&[("2021999020", fast)], 10);
        let (listed, other) = (agency("2021999020"), agency("2021999038"));
        assert_eq!((r.rate(&listed), r.rate(&other)), (fast, SLOW));
        assert_eq!((0..20).filter(|_| r.take(&listed, 0).is_ok()).count(), 10);
        assert_eq!((0..20).filter(|_| r.take(&other, 0).is_ok()).count(), 3);
        assert_eq!(r.take(&listed, 0).unwrap_err(), Duration::from_millis(100));
    }

    #[test]
    fn each_certificate_has_its_own_bucket_and_the_refusal_says_so() {
        let r = limiter(&[], 10);
        let (one, two) = (RateKey::certificate(b"one"), RateKey::certificate(b"two"));
        assert_ne!(one, two);
        for _ in 0..3 {
            r.check(&one).unwrap();
        }
        let e = r.check(&one).unwrap_err();
        assert_eq!(e.reason, Reason::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_millis(500)));
        assert!(e.message.contains("certificate"), "{e:?}");
        assert!(
            e.detail.unwrap().starts_with("certificate sha256:"),
            "{one}"
        );
        r.check(&two).unwrap();
    }

    #[test]
    fn idle_buckets_are_forgotten_and_newcomers_share_one_when_full() {
        let r = limiter(&[("2021999020", SLOW)], 4);
        let cert = |i: u32| RateKey::certificate(&i.to_be_bytes());
        // Four callers each spend their burst: the table is full.
        for i in 0..4 {
            for _ in 0..3 {
                r.take(&cert(i), 0).unwrap();
            }
            assert!(r.take(&cert(i), 0).is_err());
        }
        assert_eq!(r.unlisted_buckets(), 4);
        // Newcomers share one bucket: many certificates get no more than
        // one would.
        let allowed = (100..200).filter(|i| r.take(&cert(*i), 0).is_ok()).count();
        assert_eq!(allowed, 3);
        assert_eq!(r.unlisted_buckets(), 4);
        // The callers already in keep their own, empty, buckets.
        assert!(r.take(&cert(0), 0).is_err());
        // A listed agency is never short of a bucket.
        assert!(r.take(&agency("2021999020"), 0).is_ok());

        // Once the buckets have filled up again they are forgotten, and a
        // newcomer gets a bucket of its own.
        for _ in 0..2 {
            r.take(&cert(1), 1_000).unwrap();
        }
        assert!(r.take(&cert(500), 1_500).is_ok());
        // Only the busy one and the newcomer are kept.
        assert_eq!(r.unlisted_buckets(), 2);
        // And the periodic sweep forgets the rest in time (an agency not
        // listed is one more unlisted key).
        r.take(&agency("2021999038"), 2 * SWEEP_EVERY_MS).unwrap();
        assert_eq!(r.unlisted_buckets(), 1);
    }
}
