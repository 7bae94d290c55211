//! The `[limits]` section: message sizes, per-caller rates (an agency may
//! have its own, on its `[[agencies]]` entry), HTTP/2 connection limits and
//! the circuit breaker on sources.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The `[limits]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The largest request message accepted, in bytes; a larger one is
    /// RESOURCE_EXHAUSTED with `MESSAGE_TOO_LARGE`, before it is decoded.
    pub max_request_bytes: usize,
    /// The largest answer sent, in bytes; a larger one is
    /// RESOURCE_EXHAUSTED (ask for fewer record types or sources).
    pub max_response_bytes: usize,
    /// Requests per second each caller may make, on average: each agency
    /// (unless its `[[agencies]]` entry sets its own), and each certificate
    /// that names no agency caller.
    pub rate_per_second: f64,
    /// How many requests a caller may make at once after a quiet spell
    /// (again unless its `[[agencies]]` entry sets its own).
    pub burst: f64,
    /// Requests in flight on one connection (HTTP/2 streams).
    pub max_concurrent_streams: u32,
    /// The largest set of request headers (metadata) accepted, in bytes.
    pub max_header_list_bytes: u32,
    /// How often an idle connection is pinged (HTTP/2 keepalive) ...
    pub keepalive_interval: Duration,
    /// ... and how long an answer to the ping may take before the
    /// connection is closed.
    pub keepalive_timeout: Duration,
    /// After this long a connection is closed gracefully (GOAWAY, requests
    /// in flight finish) and the client reconnects: with a fresh handshake,
    /// so that a revoked certificate's connection ends too.
    pub max_connection_age: Duration,
    /// A source failing this many calls in a row (unreachable, or too slow
    /// with at least a second to answer) ...
    pub breaker_failures: u32,
    /// ... is not called for this long, then probed with one call.
    pub breaker_pause: Duration,
}

/// The section as written; a missing key takes its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    max_request_bytes: usize,
    max_response_bytes: usize,
    rate_per_second: f64,
    burst: f64,
    max_concurrent_streams: u32,
    max_header_list_bytes: u32,
    keepalive_interval_s: u64,
    keepalive_timeout_s: u64,
    max_connection_age_s: u64,
    breaker_failures: u32,
    breaker_pause_s: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_request_bytes: 64 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            rate_per_second: 1000.0,
            burst: 2000.0,
            max_concurrent_streams: 256,
            max_header_list_bytes: 16 * 1024,
            keepalive_interval_s: 30,
            keepalive_timeout_s: 10,
            max_connection_age_s: 3600,
            breaker_failures: 5,
            breaker_pause_s: 10,
        }
    }
}

/// The limits of a configuration without a `[limits]` section.
impl Default for Limits {
    fn default() -> Self {
        parse(RawLimits::default()).expect("the defaults are within bounds")
    }
}

/// Checks the lower bounds: the sizes and rates first, then the
/// connection and breaker settings, each group with one message.
pub(super) fn parse(l: RawLimits) -> Result<Limits, ConfigError> {
    // Finite and at least `min`: refuses NaN and infinities too.
    let sane = |v: f64, min: f64| v.is_finite() && v >= min;
    if l.max_request_bytes < 1024
        || l.max_response_bytes < 1024
        || !sane(l.rate_per_second, f64::MIN_POSITIVE)
        || !sane(l.burst, 1.0)
    {
        return Err(ConfigError::for_key(
            "limits",
            "max_request_bytes and max_response_bytes must be at least 1024, rate_per_second above 0 and burst at least 1",
        ));
    }
    if l.max_concurrent_streams == 0
        || l.max_header_list_bytes < 1024
        || l.keepalive_interval_s == 0
        || l.keepalive_timeout_s == 0
        || l.max_connection_age_s == 0
        || l.breaker_failures == 0
        || l.breaker_pause_s == 0
    {
        return Err(ConfigError::for_key(
            "limits",
            "max_concurrent_streams, keepalive_interval_s, keepalive_timeout_s, max_connection_age_s, breaker_failures and breaker_pause_s must be at least 1, max_header_list_bytes at least 1024",
        ));
    }
    Ok(Limits {
        max_request_bytes: l.max_request_bytes,
        max_response_bytes: l.max_response_bytes,
        rate_per_second: l.rate_per_second,
        burst: l.burst,
        max_concurrent_streams: l.max_concurrent_streams,
        max_header_list_bytes: l.max_header_list_bytes,
        keepalive_interval: Duration::from_secs(l.keepalive_interval_s),
        keepalive_timeout: Duration::from_secs(l.keepalive_timeout_s),
        max_connection_age: Duration::from_secs(l.max_connection_age_s),
        breaker_failures: l.breaker_failures,
        breaker_pause: Duration::from_secs(l.breaker_pause_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Limits, ConfigError> {
        parse(toml::from_str(text).unwrap())
    }

    #[test]
    fn defaults() {
        let l = parse_text("").unwrap();
        assert_eq!(l.max_request_bytes, 65536);
        assert_eq!(l.max_response_bytes, 4194304);
        assert_eq!((l.rate_per_second, l.burst), (1000.0, 2000.0));
        assert_eq!(l.max_concurrent_streams, 256);
        assert_eq!(l.max_header_list_bytes, 16384);
        assert_eq!(l.keepalive_interval, Duration::from_secs(30));
        assert_eq!(l.keepalive_timeout, Duration::from_secs(10));
        assert_eq!(l.max_connection_age, Duration::from_secs(3600));
        assert_eq!(l.breaker_failures, 5);
        assert_eq!(l.breaker_pause, Duration::from_secs(10));
        assert_eq!(Limits::default(), l);
    }

    #[test]
    fn values_below_their_bounds_are_refused() {
        for bad in [
            "max_request_bytes = 1023",
            "rate_per_second = 0.0",
            "burst = nan",
        ] {
            let e = parse_text(bad).unwrap_err();
            assert_eq!(e.key, "limits");
            assert!(e.reason.starts_with("max_request_bytes and"), "{bad}: {e}");
        }
        for bad in ["max_concurrent_streams = 0", "max_header_list_bytes = 1023"] {
            let e = parse_text(bad).unwrap_err();
            assert_eq!(e.key, "limits");
            assert!(
                e.reason.starts_with("max_concurrent_streams,"),
                "{bad}: {e}"
            );
        }
    }
}
