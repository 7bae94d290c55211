//! Versions of the registry (agencies, purposes, access rules, adapter
//! routes, identity providers) as documents: see `config/document.rs` for
//! their shape and `crate::registry` for how replicas follow them.
//!
//! Versions count up from 1 without gaps. A new version is written only on
//! top of the version its writer read (optimistic concurrency), together
//! with its audit entry, in one transaction: of two writers on the same
//! version exactly one wins, and no version exists without its entry.

use crate::audit::chain::AuditEntry;

/// One version of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryVersion {
    /// 1, 2, 3, ...
    pub version: i64,
    /// The canonical document (TOML).
    pub document: String,
    /// Hex SHA-256 of `document`.
    pub digest: String,
    /// When it was written (Unix ms).
    pub changed_at_ms: i64,
    /// Who wrote it: an operator certificate's identity, or `seed` for the
    /// configuration file's tables.
    pub changed_by: String,
    /// What changed, for people (`added access_rules 2021999020/x`, ...).
    pub summary: String,
}

/// The answer to [`super::Store::put_registry`].
#[derive(Debug)]
pub enum PutRegistry {
    /// Written, with its audit entry (linked into the chain).
    Written(Box<AuditEntry>),
    /// Another version was written since the one the writer read: this is
    /// the latest.
    Conflict(i64),
}
