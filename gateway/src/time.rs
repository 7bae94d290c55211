//! Time as the gateway sees it: a [`Clock`] that tests can set, and
//! conversions between Unix milliseconds and protobuf timestamps.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// Where the gateway reads the current time from. Consent validity is
/// judged against it, so tests can move it instead of sleeping.
#[derive(Clone)]
pub struct Clock(ClockSource);

#[derive(Clone)]
enum ClockSource {
    System,
    Manual(Arc<AtomicI64>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(ClockSource::System)
    }

    /// A clock that stands still at `now_ms` until [`Clock::set_ms`] moves
    /// it. Clones share the same time.
    pub fn manual(now_ms: i64) -> Self {
        Clock(ClockSource::Manual(Arc::new(AtomicI64::new(now_ms))))
    }

    /// Moves a manual clock; no effect on the system clock.
    pub fn set_ms(&self, now_ms: i64) {
        if let ClockSource::Manual(t) = &self.0 {
            t.store(now_ms, Ordering::SeqCst);
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            ClockSource::System => system_now_ms(),
            ClockSource::Manual(t) => t.load(Ordering::SeqCst),
        }
    }
}

/// The system time in Unix milliseconds.
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as a protobuf timestamp.
pub fn to_timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).unwrap_or_else(|_| ms.to_string())
}

/// A protobuf timestamp as Unix milliseconds; `None` if it is not a valid
/// timestamp (nanos out of range, or beyond the year 9999).
pub fn from_timestamp(ts: &Timestamp) -> Option<i64> {
    const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(0..1_000_000_000).contains(&ts.nanos) || !(0..=MAX_SECONDS).contains(&ts.seconds) {
        return None;
    }
    Some(ts.seconds * 1000 + i64::from(ts.nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for ms in [0, 1, 999, 1_000, 1_764_400_000_123] {
            assert_eq!(from_timestamp(&to_timestamp(ms)), Some(ms));
        }
        assert_eq!(
            from_timestamp(&Timestamp {
                seconds: 1,
                nanos: -1
            }),
            None
        );
        assert_eq!(
            from_timestamp(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }),
            None
        );
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_400_000_123), "2025-11-29T07:06:40.123Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(5);
        let shared = c.clone();
        shared.set_ms(9);
        assert_eq!(c.now_ms(), 9);
    }
}
