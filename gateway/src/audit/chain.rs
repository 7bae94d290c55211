//! The audit trail's hash chain and its verification.
//!
//! # The canonical encoding
//!
//! Each entry names its `format`, and its hash is the SHA-256 of the bytes
//! that format lays down. Format 2, in which every entry is written now:
//!
//! ```text
//! "samverka-audit-v2"              17 ASCII bytes, a domain separator
//! seq                              8 bytes, big-endian signed
//! prev_hash                        32 bytes (the previous entry's hash;
//!                                  32 zero bytes for entry 1)
//! audit_id, then time_ms (8 bytes, big-endian signed), then caller,
//! method, subject_id, record_types, purpose, consent_id, sources,
//! decision, reason, trace_id, details
//! ```
//!
//! where each text field is a 4-byte big-endian byte length followed by its
//! UTF-8 bytes, each list (record types, sources) is a 4-byte count
//! followed by its items as text fields, and `details` is a 4-byte count
//! followed by its (name, value) pairs as text fields, in name order.
//! Hashes are written as 64 lower-case hex digits. Because every entry
//! commits to the one before, an edited, deleted, inserted or reordered
//! entry breaks the chain at that point.
//!
//! Format 1 (entries written before format 2) is the same without
//! `details`, after the separator `"samverka-audit-v1"`; it stays
//! verifiable. Its entries were stored with their lists joined by commas,
//! so a list item that held a comma, or a list of one empty item, was read
//! back differently from how it was hashed; format 2 stores lists and
//! details as JSON, which gives back exactly what was hashed.
//!
//! New kinds of entries (consent actions, registry changes, ...) add named
//! `details`, not a new format: a new format is needed only if the layout
//! above changes.
//!
//! # Checkpoints
//!
//! Every so often a gateway signs the current head: a compact JWS of type
//! `samverka-audit-checkpoint+jwt` whose payload is
//! `{"iss","seq","hash","time"}` (see [`crate::credential::signing`]). A checkpoint
//! makes three more things detectable: a trail rewritten and re-chained
//! from some entry on (the hash at the checkpoint changes), entries removed
//! from the end (the trail ends before a checkpoint), and, after old entries
//! were archived, a forged start (the first remaining entry must follow a
//! checkpoint). Entries after the last checkpoint are protected by the
//! chain only.

use std::collections::BTreeMap;

use samverka_proto::hex;
use serde::{Deserialize, Serialize};

use crate::credential::signing::{self, JwsSigner, SignatureError};

/// One decision of the gateway, as the audit trail records it.
///
/// `seq`, `prev_hash` and `hash` link it into the hash chain (see
/// this module); the store sets them when it appends the entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Position in the trail: 1, 2, 3, ... without gaps.
    pub seq: i64,
    /// Hex SHA-256 of the entry before (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's canonical encoding.
    pub hash: String,
    /// Its id (a UUID), returned to the caller.
    pub audit_id: String,
    /// When the decision was made (Unix ms).
    pub time_ms: i64,
    /// The calling agency's organisation number; empty if unknown.
    pub caller: String,
    /// The gRPC method, e.g. `RecordExchange/GetRecords`.
    pub method: String,
    /// The person, as asked for (even if malformed).
    pub subject_id: String,
    /// The record types asked for.
    pub record_types: Vec<String>,
    /// The purpose stated.
    pub purpose: String,
    /// The consent that allowed the read, if any.
    pub consent_id: String,
    /// The sources asked and their outcomes, e.g. `2021999046=OK`.
    pub sources: Vec<String>,
    /// `allowed` or `denied`.
    pub decision: String,
    /// The denial reason (empty when allowed).
    pub reason: String,
    /// The trace id of the request, when traced.
    pub trace_id: String,
    /// Further named facts of the decision, by kind of entry (for
    /// example the action taken on a consent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// The canonical encoding the hash was made with (see this module):
    /// [`FORMAT`] for new entries; entries exported before formats were
    /// named are format 1.
    #[serde(default = "format_1")]
    pub format: u32,
}

/// The format every new entry is written in.
pub const FORMAT: u32 = 2;

fn format_1() -> u32 {
    1
}

/// A signed checkpoint of the audit trail: the hash of entry `seq`, signed
/// by a gateway, so that later edits, re-chaining and removal of the tail
/// are detectable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditCheckpoint {
    /// The entry it covers; everything up to it is fixed by `hash`.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When it was made (Unix ms).
    pub time_ms: i64,
    /// The compact JWS (type `samverka-audit-checkpoint+jwt`).
    pub jws: String,
}

/// The end of the audit trail: the last entry's position and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// The last entry's seq (0 before the first).
    pub seq: i64,
    /// The last entry's hash (64 zeros before the first).
    pub hash: String,
}

/// The JWS type of a checkpoint.
pub const CHECKPOINT_TYPE: &str = "samverka-audit-checkpoint+jwt";

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn list(out: &mut Vec<u8>, items: &[String]) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for item in items {
        text(out, item);
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The hash of `entry` at its `seq`, after `prev_hash` (hex), per the
/// canonical encoding of its format (see this module). `None` if
/// `prev_hash` is not 64 hex digits or the format is not one this
/// samverka knows.
pub fn entry_hash(entry: &AuditEntry, prev_hash: &str) -> Option<String> {
    let prev = unhex(prev_hash)?;
    let mut out = Vec::with_capacity(256);
    match entry.format {
        1 => out.extend_from_slice(b"samverka-audit-v1"),
        2 => out.extend_from_slice(b"samverka-audit-v2"),
        _ => return None,
    }
    out.extend_from_slice(&entry.seq.to_be_bytes());
    out.extend_from_slice(&prev);
    text(&mut out, &entry.audit_id);
    out.extend_from_slice(&entry.time_ms.to_be_bytes());
    text(&mut out, &entry.caller);
    text(&mut out, &entry.method);
    text(&mut out, &entry.subject_id);
    list(&mut out, &entry.record_types);
    text(&mut out, &entry.purpose);
    text(&mut out, &entry.consent_id);
    list(&mut out, &entry.sources);
    text(&mut out, &entry.decision);
    text(&mut out, &entry.reason);
    text(&mut out, &entry.trace_id);
    if entry.format >= 2 {
        out.extend_from_slice(&(entry.details.len() as u32).to_be_bytes());
        for (name, value) in &entry.details {
            text(&mut out, name);
            text(&mut out, value);
        }
    } else if !entry.details.is_empty() {
        // Format 1 has no details: any would go unprotected.
        return None;
    }
    Some(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &out,
    )
    .as_ref()))
}

/// Links `entry` after `head` (sets its seq, prev_hash and hash) and moves
/// the head to it. A NUL character in any field becomes U+FFFD first:
/// PostgreSQL cannot store it in text, and what is hashed must be what
/// every store keeps.
pub fn link(head: &mut AuditHead, entry: &mut AuditEntry) {
    scrub(entry);
    entry.seq = head.seq + 1;
    entry.prev_hash = head.hash.clone();
    // The head's hash was made by this function or is GENESIS: valid hex.
    entry.hash = entry_hash(entry, &entry.prev_hash).unwrap_or_default();
    head.seq = entry.seq;
    head.hash = entry.hash.clone();
}

fn scrub(e: &mut AuditEntry) {
    fn text(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }
    for s in [
        &mut e.audit_id,
        &mut e.caller,
        &mut e.method,
        &mut e.subject_id,
        &mut e.purpose,
        &mut e.consent_id,
        &mut e.decision,
        &mut e.reason,
        &mut e.trace_id,
    ] {
        text(s);
    }
    e.record_types
        .iter_mut()
        .chain(&mut e.sources)
        .for_each(text);
    if e.details
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        e.details = std::mem::take(&mut e.details)
            .into_iter()
            .map(|(mut k, mut v)| {
                text(&mut k);
                text(&mut v);
                (k, v)
            })
            .collect();
    }
}

/// What a checkpoint's signature attests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointClaims {
    /// Organisation number of the gateway's operator.
    pub iss: String,
    /// The entry covered.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// When the checkpoint was made, RFC 3339.
    pub time: String,
}

/// Signs a checkpoint of `head`.
pub fn checkpoint(
    signer: &JwsSigner,
    head: &AuditHead,
    time_ms: i64,
) -> Result<AuditCheckpoint, SignatureError> {
    let claims = CheckpointClaims {
        iss: signer.issuer().to_owned(),
        seq: head.seq,
        hash: head.hash.clone(),
        time: crate::time::rfc3339(time_ms),
    };
    Ok(AuditCheckpoint {
        seq: head.seq,
        hash: head.hash.clone(),
        time_ms,
        jws: signer.sign(CHECKPOINT_TYPE, &claims)?,
    })
}

/// Where and how the trail is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The first entry that fails (or the checkpoint's seq).
    pub seq: i64,
    /// Its audit id, when the entry exists.
    pub audit_id: Option<String>,
    /// What is wrong, for people.
    pub problem: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {}", self.seq)?;
        if let Some(id) = &self.audit_id {
            write!(f, " (audit id {id})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// First and last seq, when there are entries.
    pub range: Option<(i64, i64)>,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: usize,
    /// The last checkpoint's seq (0 if none).
    pub last_checkpoint: i64,
}

/// Checks a trail entry by entry, in order, so that a large trail can be
/// read in pages.
#[derive(Debug)]
pub struct ChainCheck {
    checkpoints: BTreeMap<i64, String>,
    expected: Option<(i64, String)>,
    report: Report,
}

/// Why the checkpoints do not let a check of the trail start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// A checkpoint is altered: its signature names one of the given
    /// certificates but does not hold, or it attests another entry.
    Broken(Broken),
    /// The checkpoint at this entry is signed with a certificate that was
    /// not given (by the thumbprint its signature names): without it the
    /// trail can be neither confirmed nor called altered.
    Unverified(i64),
}

impl ChainCheck {
    /// Starts a check with the trail's checkpoints, each of which must be
    /// signed by one of `gateway_certs` (PEM; more than one when the
    /// gateway's certificate was rotated). A checkpoint signed with a
    /// certificate not among them leaves the trail unverified, not broken:
    /// a verifier never reports tampering it cannot see.
    pub fn new(
        checkpoints: &[AuditCheckpoint],
        gateway_certs: &[String],
    ) -> Result<ChainCheck, CheckpointError> {
        let given: Vec<String> = gateway_certs
            .iter()
            .filter_map(|c| signing::cert_thumbprint(c).ok())
            .collect();
        let mut verified = BTreeMap::new();
        for cp in checkpoints {
            // A well-formed signature by a certificate not given; anything
            // else that does not verify is broken.
            if signing::named_signer(&cp.jws).is_some_and(|signer| !given.contains(&signer)) {
                return Err(CheckpointError::Unverified(cp.seq));
            }
            let claims: Option<CheckpointClaims> = gateway_certs
                .iter()
                .find_map(|cert| signing::verify(&cp.jws, CHECKPOINT_TYPE, cert).ok());
            let broken = |problem: &str| Broken {
                seq: cp.seq,
                audit_id: None,
                problem: problem.to_owned(),
            };
            let claims = claims.ok_or_else(|| {
                CheckpointError::Broken(broken(
                    "checkpoint signature does not verify with the given certificate(s)",
                ))
            })?;
            if claims.seq != cp.seq || claims.hash != cp.hash {
                return Err(CheckpointError::Broken(broken(
                    "checkpoint row does not match what its signature attests",
                )));
            }
            verified.insert(cp.seq, cp.hash.clone());
        }
        Ok(ChainCheck {
            report: Report {
                checkpoints: verified.len(),
                last_checkpoint: verified.keys().next_back().copied().unwrap_or(0),
                ..Report::default()
            },
            checkpoints: verified,
            expected: None,
        })
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), Broken> {
        let broken = |seq: i64, audit_id: Option<&str>, problem: String| Broken {
            seq,
            audit_id: audit_id.map(str::to_owned),
            problem,
        };
        let (expected_seq, expected_prev) = match self.expected.take() {
            Some(next) => next,
            None if e.seq == 1 => (1, GENESIS.to_owned()),
            None => match self.checkpoints.get(&(e.seq - 1)) {
                // Older entries were archived; a checkpoint anchors the rest.
                Some(hash) => (e.seq, hash.clone()),
                None => {
                    return Err(broken(
                        e.seq,
                        Some(&e.audit_id),
                        format!(
                            "the trail starts at entry {} but no signed checkpoint covers entry {}: entries before it were removed",
                            e.seq,
                            e.seq - 1
                        ),
                    ));
                }
            },
        };
        if e.seq != expected_seq {
            return Err(broken(
                expected_seq,
                None,
                format!(
                    "entry {expected_seq} is missing (the next entry is {}): deleted or reordered",
                    e.seq
                ),
            ));
        }
        if e.prev_hash != expected_prev {
            return Err(broken(
                e.seq,
                Some(&e.audit_id),
                "does not link to the entry before it: an entry was inserted, deleted or reordered here".into(),
            ));
        }
        if !(1..=FORMAT).contains(&e.format) {
            return Err(broken(
                e.seq,
                Some(&e.audit_id),
                format!(
                    "its format {} is not one this samverka knows (1 to {FORMAT}): the entry was edited, or written by a newer samverka",
                    e.format
                ),
            ));
        }
        if entry_hash(e, &e.prev_hash).as_deref() != Some(e.hash.as_str()) {
            return Err(broken(
                e.seq,
                Some(&e.audit_id),
                "its content does not match its hash: the entry was edited".into(),
            ));
        }
        if let Some(signed) = self.checkpoints.get(&e.seq)
            && signed != &e.hash
        {
            return Err(broken(
                e.seq,
                Some(&e.audit_id),
                "differs from the signed checkpoint: the trail was rewritten up to here".into(),
            ));
        }
        self.report.entries += 1;
        self.report.range = Some((self.report.range.map_or(e.seq, |(first, _)| first), e.seq));
        self.expected = Some((e.seq + 1, e.hash.clone()));
        Ok(())
    }

    /// Ends the check: the trail must reach the last checkpoint.
    pub fn finish(self) -> Result<Report, Broken> {
        let last = self.report.range.map_or(0, |(_, last)| last);
        if self.report.last_checkpoint > last {
            return Err(Broken {
                seq: last + 1,
                audit_id: None,
                problem: format!(
                    "the trail ends at entry {last} but a signed checkpoint covers entry {}: entries were removed from the end",
                    self.report.last_checkpoint
                ),
            });
        }
        Ok(self.report)
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
