//! Entries that are committed whatever the caller does: once a read has
//! asked a register about a person, the trail records it even if the
//! caller cancels (drops the request) before the answer.

use super::{AuditEntry, AuditWriter, Decision};

/// An audit entry held while a read is under way. Armed (once any source
/// is asked) and then dropped without [`PendingEntry::finish`], it is
/// committed in the background with decision `cancelled`.
#[derive(Debug)]
pub struct PendingEntry {
    writer: AuditWriter,
    entry: AuditEntry,
    armed: bool,
}

impl PendingEntry {
    /// Holds `entry`, to be committed by `writer`; not armed yet.
    pub fn new(writer: &AuditWriter, entry: AuditEntry) -> Self {
        PendingEntry {
            writer: writer.clone(),
            entry,
            armed: false,
        }
    }

    /// The entry, to complete as the read goes on.
    pub fn entry(&mut self) -> &mut AuditEntry {
        &mut self.entry
    }

    /// From now on a cancelled read is committed: `sources` (organisation
    /// numbers) are being asked, and are recorded as `ORG=CANCELLED`
    /// unless the read finishes.
    pub fn arm<'a>(&mut self, sources: impl IntoIterator<Item = &'a str>) {
        let entry = self.entry();
        entry.sources = sources
            .into_iter()
            .map(|org| format!("{org}=CANCELLED"))
            .collect();
        self.armed = true;
    }

    /// The read finished: the entry, for the caller to complete and commit.
    pub fn finish(mut self) -> AuditEntry {
        self.armed = false;
        std::mem::replace(&mut self.entry, super::entry("", 0))
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut entry = std::mem::replace(&mut self.entry, super::entry("", 0));
        entry.decision = Decision::Cancelled.as_str().to_owned();
        entry.reason.clear();
        let writer = self.writer.clone();
        let audit_id = entry.audit_id.clone();
        let commit = async move {
            let audit_id = entry.audit_id.clone();
            if let Err(e) = writer.commit(entry).await {
                tracing::error!(audit_id, error = %e, "a cancelled read could not be audited");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(commit)),
            // Dropped outside a runtime (a request is always within one).
            Err(_) => tracing::error!(
                audit_id,
                "a cancelled read could not be audited: no runtime"
            ),
        }
    }
}
