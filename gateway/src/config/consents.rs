//! The `[consents]` section: the longest consent a registrar may grant,
//! and how long a request waits for the person's decision.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The `[consents]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentSettings {
    /// The longest time from `valid_from` to `valid_until` a grant may ask
    /// for.
    pub max_lifetime: Duration,
    /// How long a requested consent waits for the person's decision before
    /// it expires.
    pub request_expiry: Duration,
}

/// The section as written (absent: all defaults).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsents {
    #[serde(default = "max_lifetime_days")]
    max_lifetime_days: u32,
    #[serde(default = "request_expiry_days")]
    request_expiry_days: u32,
}

impl Default for RawConsents {
    fn default() -> Self {
        RawConsents {
            max_lifetime_days: max_lifetime_days(),
            request_expiry_days: request_expiry_days(),
        }
    }
}

fn request_expiry_days() -> u32 {
    7
}

fn max_lifetime_days() -> u32 {
    730
}

/// Checks the lifetime: at least a day, at most a hundred years.
pub(super) fn parse(c: RawConsents) -> Result<ConsentSettings, ConfigError> {
    if c.max_lifetime_days == 0 || c.max_lifetime_days > 36_500 {
        return Err(ConfigError::for_key(
            "consents.max_lifetime_days",
            "must be between 1 and 36500",
        ));
    }
    if c.request_expiry_days == 0 || c.request_expiry_days > 365 {
        return Err(ConfigError::for_key(
            "consents.request_expiry_days",
            "must be between 1 and 365",
        ));
    }
    Ok(ConsentSettings {
        request_expiry: Duration::from_secs(u64::from(c.request_expiry_days) * 24 * 3600),
        max_lifetime: Duration::from_secs(u64::from(c.max_lifetime_days) * 24 * 3600),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<ConsentSettings, ConfigError> {
        parse(toml::from_str(text).unwrap())
    }

    #[test]
    fn the_default_is_two_years() {
        let c = parse(RawConsents::default()).unwrap();
        assert_eq!(c.max_lifetime, Duration::from_secs(730 * 24 * 3600));
        assert_eq!(parse_text("").unwrap(), c);
    }

    #[test]
    fn a_lifetime_out_of_range_is_refused() {
        for days in ["0", "36501"] {
            let e = parse_text(&format!("max_lifetime_days = {days}")).unwrap_err();
            assert_eq!(
                e.to_string(),
                " consents.max_lifetime_days: must be between 1 and 36500"
            );
        }
        assert!(parse_text("max_lifetime_days = 36500").is_ok());
    }
}
