//! The `[audit]` section: when the audit trail is checkpointed and how long
//! its entries are kept.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::audit::writer::CheckpointPolicy;

/// The `[audit]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// When to sign checkpoints of the audit trail.
    pub checkpoints: CheckpointPolicy,
    /// How long entries stay in the store before `samverka audit prune`
    /// archives them.
    pub retention: Duration,
}

/// The section as written; a missing key takes its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    checkpoint_every: u64,
    checkpoint_interval_s: u64,
    retention_days: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        RawAudit {
            checkpoint_every: 1000,
            checkpoint_interval_s: 60,
            retention_days: 3650,
        }
    }
}

/// Checks that every setting is at least 1.
pub(super) fn parse(a: RawAudit) -> Result<AuditSettings, ConfigError> {
    if a.checkpoint_every == 0 || a.checkpoint_interval_s == 0 || a.retention_days == 0 {
        return Err(ConfigError::for_key(
            "audit",
            "checkpoint_every, checkpoint_interval_s and retention_days must be at least 1",
        ));
    }
    Ok(AuditSettings {
        checkpoints: CheckpointPolicy {
            every: a.checkpoint_every,
            interval: Duration::from_secs(a.checkpoint_interval_s),
        },
        retention: Duration::from_secs(u64::from(a.retention_days) * 24 * 3600),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<AuditSettings, ConfigError> {
        parse(toml::from_str(text).unwrap())
    }

    #[test]
    fn defaults() {
        let a = parse_text("").unwrap();
        assert_eq!(
            a.checkpoints,
            CheckpointPolicy {
                every: 1000,
                interval: Duration::from_secs(60),
            }
        );
        assert_eq!(a.retention, Duration::from_secs(3650 * 24 * 3600));
    }

    #[test]
    fn a_zero_is_refused() {
        for key in [
            "checkpoint_every",
            "checkpoint_interval_s",
            "retention_days",
        ] {
            let e = parse_text(&format!("{key} = 0")).unwrap_err();
            assert_eq!(
                e.to_string(),
                " audit: checkpoint_every, checkpoint_interval_s and retention_days must be at least 1"
            );
        }
    }
}
