//! Merits people declare themselves (`samverka.v1.SelfDeclaredMeritService`):
//! kept until the person withdraws them, each declaration and withdrawal
//! written together with its audit entry, in one transaction. A withdrawn
//! merit's content is erased with the withdrawal; its row stays (id,
//! person, when), so that the trail's entries keep naming something.

use crate::audit::chain::AuditEntry;

/// One declared merit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredMeritRow {
    /// Its id (a UUID).
    pub merit_id: String,
    /// The person.
    pub subject_id: String,
    /// The registrar it was declared through.
    pub registrar_agency: String,
    /// The `SelfDeclaredMerit` message, protobuf-encoded.
    pub merit: Vec<u8>,
    /// When (Unix ms).
    pub declared_at_ms: i64,
    /// When withdrawn (Unix ms), if it was.
    pub withdrawn_at_ms: Option<i64>,
}

/// The answer to [`super::Store::declare_merit`].
#[derive(Debug)]
pub enum Declared {
    /// Stored, with its audit entry (linked into the chain).
    Done(Box<AuditEntry>),
    /// The person already keeps `limit` merits; nothing was stored.
    Full,
}

/// The answer to [`super::Store::withdraw_merit`].
#[derive(Debug)]
pub enum Withdrawn {
    /// Withdrawn now, with its audit entry; the row as it is now.
    Done(Box<AuditEntry>, DeclaredMeritRow),
    /// No merit in force with that id for that person; nothing changed.
    NotFound,
}

pub(super) const COLUMNS: &str =
    "merit_id, subject_id, registrar_agency, merit, declared_at_ms, withdrawn_at_ms";

impl super::Store {
    /// The person's merits in force, oldest first.
    pub async fn declared_merits(
        &self,
        subject_id: &str,
    ) -> Result<Vec<DeclaredMeritRow>, super::StoreError> {
        delegate!(self.declared_merits(subject_id))
    }

    /// Stores a merit with `entry`, unless the person already keeps
    /// `limit` merits in force.
    pub async fn declare_merit(
        &self,
        row: DeclaredMeritRow,
        limit: usize,
        entry: AuditEntry,
    ) -> Result<Declared, super::StoreError> {
        delegate!(self.declare_merit(row, limit, entry))
    }

    /// Withdraws the person's merit `merit_id` at `at_ms`, with `entry`.
    pub async fn withdraw_merit(
        &self,
        subject_id: &str,
        merit_id: &str,
        at_ms: i64,
        entry: AuditEntry,
    ) -> Result<Withdrawn, super::StoreError> {
        delegate!(self.withdraw_merit(subject_id, merit_id, at_ms, entry))
    }
}
