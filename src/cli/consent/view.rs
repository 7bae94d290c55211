//! How `samverka consent` shows a consent: the fields a signed receipt
//! attests ([`ReceiptConsent`]) and, when set, those of a requested
//! consent and its terms (who asked and why, the period the records may
//! cover, the reads allowed and used, the decision's deadline and time),
//! as text or as JSON.

use samverka_gateway::credential::receipt::{ReceiptConsent, rfc3339};
use samverka_gateway::time::from_timestamp;
use samverka_proto::v1::Consent;
use serde::Serialize;

use crate::cli::CliError;

/// A consent as the command prints it. In JSON, the receipt's fields and
/// then those of the rest that are set.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ConsentView {
    /// What a receipt attests.
    #[serde(flatten)]
    pub(super) base: ReceiptConsent,
    /// The agency that asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<String>,
    /// Why it asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<String>,
    /// Only records dated on or after this day.
    #[serde(skip_serializing_if = "Option::is_none")]
    records_from: Option<String>,
    /// Only records dated on or before this day.
    #[serde(skip_serializing_if = "Option::is_none")]
    records_until: Option<String>,
    /// One read only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    one_time: bool,
    /// At most this many reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_reads: Option<u32>,
    /// Reads used so far (shown when the reads are limited or some were
    /// counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    reads_used: Option<u32>,
    /// When a pending request expires undecided, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    decide_by: Option<String>,
    /// When the person approved or rejected it, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_at: Option<String>,
}

fn set(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn time(ts: &Option<prost_types::Timestamp>) -> Option<String> {
    ts.as_ref().and_then(from_timestamp).map(rfc3339)
}

impl From<&Consent> for ConsentView {
    fn from(c: &Consent) -> Self {
        let limited = c.one_time || c.max_reads > 0 || c.reads_used > 0;
        ConsentView {
            base: ReceiptConsent::from(c),
            requested_by: set(&c.requested_by),
            justification: set(&c.justification),
            records_from: set(&c.records_from),
            records_until: set(&c.records_until),
            one_time: c.one_time,
            max_reads: (c.max_reads > 0).then_some(c.max_reads),
            reads_used: limited.then_some(c.reads_used),
            decide_by: time(&c.decide_by),
            decided_at: time(&c.decided_at),
        }
    }
}

impl From<ReceiptConsent> for ConsentView {
    /// What a receipt attests, without the rest.
    fn from(base: ReceiptConsent) -> Self {
        ConsentView {
            base,
            requested_by: None,
            justification: None,
            records_from: None,
            records_until: None,
            one_time: false,
            max_reads: None,
            reads_used: None,
            decide_by: None,
            decided_at: None,
        }
    }
}

/// `c` for people, one field a line.
pub(super) fn text(v: &ConsentView) -> String {
    let c = &v.base;
    let valid = if c.valid_until.is_empty() {
        "from its approval".to_owned()
    } else {
        format!("{} until {}", c.valid_from, c.valid_until)
    };
    let mut out = format!(
        "consent {} ({})\n  person        {}\n  grantee       {}\n  record types  {}\n  purpose       {}\n  sources       {}\n  valid         {valid}\n  registrar     {} (evidence {:?})\n  granted       {}\n",
        c.consent_id,
        c.status,
        c.subject_id,
        c.grantee_agency,
        c.record_types.join(", "),
        c.purpose,
        if c.source_agencies.is_empty() {
            "any".to_owned()
        } else {
            c.source_agencies.join(", ")
        },
        c.registrar_agency,
        c.evidence_ref,
        c.granted_at,
    );
    let mut line = |label: &str, value: &str| out.push_str(&format!("  {label:<13} {value}\n"));
    if let Some(by) = &v.requested_by {
        line("requested by", by);
    }
    if let Some(why) = &v.justification {
        line("justification", &format!("{why:?}"));
    }
    if v.records_from.is_some() || v.records_until.is_some() {
        let day = |d: &Option<String>| d.clone().unwrap_or_else(|| "any day".into());
        line(
            "records dated",
            &format!("{} to {}", day(&v.records_from), day(&v.records_until)),
        );
    }
    let used = v.reads_used.unwrap_or(0);
    match (v.one_time, v.max_reads) {
        (true, _) => line("reads", &format!("one time ({used} used)")),
        (false, Some(max)) => line("reads", &format!("at most {max} ({used} used)")),
        (false, None) if used > 0 => line("reads", &format!("{used} used")),
        _ => {}
    }
    if let Some(at) = &v.decide_by {
        line("decide by", at);
    }
    if let Some(at) = &v.decided_at {
        line("decided", at);
    }
    if c.revoked_at.is_none()
        && let Some(why) = &c.revocation_reason
    {
        line("reason", why);
    }
    if let Some(at) = &c.revoked_at {
        line(
            "revoked",
            &format!(
                "{at}{} ({})",
                c.revoked_by
                    .as_deref()
                    .map(|by| format!(" through {by}"))
                    .unwrap_or_default(),
                c.revocation_reason.as_deref().unwrap_or("no reason given")
            ),
        );
    }
    out
}

/// `value` as pretty JSON.
pub(super) fn json(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))
}
