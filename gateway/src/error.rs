//! Every way a request can fail, and the one function that turns a failure
//! into a gRPC status.
//!
//! Each failure has a stable, machine-readable [`Reason`] that agency
//! systems and auditors key on; it travels in a `google.rpc.ErrorInfo`
//! detail with domain `samverka`. The status message is short and never
//! carries internal details (file paths, SQL, adapter errors): those go to
//! the log. [`to_status`] also bounds every message it sends (at most
//! [`MAX_MESSAGE_CHARS`] characters, no control characters), whatever a
//! message repeats of what the caller sent, so that no request can make a
//! status too large for the caller's metadata limits or garble its logs.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every samverka error.
pub const ERROR_DOMAIN: &str = "samverka";

/// The longest status message the gateway sends, in characters (it
/// travels percent-encoded in the `grpc-message` header).
pub const MAX_MESSAGE_CHARS: usize = 200;

/// A stable reason for a refusal. The string forms are part of the public
/// contract: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No usable samverka identity in the client certificate.
    IdentityMissing,
    /// The caller's role or permission does not allow this method.
    RoleRequired,
    /// No access rule lets the caller read these record types for this
    /// purpose.
    AccessRuleMissing,
    /// The person holds no consent covering this read.
    ConsentMissing,
    /// The consent that would cover this read was revoked.
    ConsentRevoked,
    /// The consent that would cover this read has expired (or has not
    /// started yet).
    ConsentExpired,
    /// The person consented, but for another purpose.
    PurposeMismatch,
    /// The subject id is not a valid personal identity or coordination
    /// number.
    SubjectIdInvalid,
    /// A record type is not known to this gateway.
    RecordTypeUnknown,
    /// A purpose code is not known to this gateway.
    PurposeUnknown,
    /// An organisation number is malformed.
    AgencyIdInvalid,
    /// An organisation number is valid but not known to this gateway.
    AgencyUnknown,
    /// A record type is outside what the consent's purpose may cover.
    RecordTypeNotCovered,
    /// A consent's validity period is impossible.
    ValidityInvalid,
    /// A required field is empty or blank.
    FieldMissing,
    /// A field is longer than the gateway takes (free text a registrar
    /// stores, ids).
    FieldTooLong,
    /// No consent has that id.
    ConsentNotFound,
    /// A grant reused a request id for a different consent.
    RequestIdReused,
    /// A page token that this gateway did not give out.
    PageTokenInvalid,
    /// The calling agency sends more requests than its rate allows.
    RateLimited,
    /// The request is larger than the gateway takes
    /// (`limits.max_request_bytes`), or the answer would be larger than it
    /// sends (`limits.max_response_bytes`).
    MessageTooLarge,
    /// The consent that would cover this read is paused by the person.
    ConsentPaused,
    /// The consent that would cover this read has no reads left.
    ConsentUsed,
    /// The consent that would cover this read is a request the person has
    /// not decided on.
    ConsentPending,
    /// The person rejected the request for the consent.
    ConsentRejected,
    /// A change of a consent's state that its current state does not allow.
    ConsentStateInvalid,
    /// An approval asks for more than the request did.
    ApprovalWidens,
    /// A registrar acted for a person without a person assertion.
    PersonAssertionMissing,
    /// The person assertion or its evidence does not verify: signature,
    /// key, audience, lifetime, action, terms, issuer, or an ID token sent
    /// in its place.
    PersonAssertionInvalid,
    /// The person assertion was used before (on any replica).
    PersonAssertionReused,
    /// The person proven is not the person of the request.
    PersonMismatch,
    /// The person's login is older than the gateway takes.
    PersonLoginStale,
    /// The login's level of assurance is missing or too low for the action.
    AssuranceTooLow,
    /// The registrar may not record consents for this purpose.
    PurposeNotRegistrable,
    /// A registrar asked for a consent that lets itself read.
    SelfGrant,
    /// A field has a form the gateway does not take (characters, shape).
    FieldInvalid,
    /// A registry change would leave the registry inconsistent (an access
    /// rule naming an unknown purpose, ...): the field names the item, the
    /// message says why, as `samverka check-config` would.
    RegistryInvalid,
    /// A registry change was made on top of a version that is no longer the
    /// latest: read the registry again and retry.
    RegistryVersionMismatch,
    /// The registry item to change or delete does not exist.
    RegistryItemNotFound,
    /// This gateway's registry is its configuration file
    /// (`[registry] source = "file"`): change the file and send SIGHUP.
    RegistryReadOnly,
    /// The person already keeps the most self-declared merits a person
    /// may keep: withdraw one first.
    MeritLimit,
    /// No self-declared merit in force has that id for that person.
    MeritNotFound,
    /// The consent or audit store cannot be reached: fail closed.
    StoreUnavailable,
    /// A defect inside the gateway.
    Internal,
}

impl Reason {
    /// The stable string clients key on.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IdentityMissing => "IDENTITY_MISSING",
            Reason::RoleRequired => "ROLE_REQUIRED",
            Reason::AccessRuleMissing => "ACCESS_RULE_MISSING",
            Reason::ConsentMissing => "CONSENT_MISSING",
            Reason::ConsentRevoked => "CONSENT_REVOKED",
            Reason::ConsentExpired => "CONSENT_EXPIRED",
            Reason::PurposeMismatch => "PURPOSE_MISMATCH",
            Reason::SubjectIdInvalid => "SUBJECT_ID_INVALID",
            Reason::RecordTypeUnknown => "RECORD_TYPE_UNKNOWN",
            Reason::PurposeUnknown => "PURPOSE_UNKNOWN",
            Reason::AgencyIdInvalid => "AGENCY_ID_INVALID",
            Reason::AgencyUnknown => "AGENCY_UNKNOWN",
            Reason::RecordTypeNotCovered => "RECORD_TYPE_NOT_COVERED",
            Reason::ValidityInvalid => "VALIDITY_INVALID",
            Reason::FieldMissing => "FIELD_MISSING",
            Reason::FieldTooLong => "FIELD_TOO_LONG",
            Reason::ConsentNotFound => "CONSENT_NOT_FOUND",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::PageTokenInvalid => "PAGE_TOKEN_INVALID",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Reason::ConsentPaused => "CONSENT_PAUSED",
            Reason::ConsentUsed => "CONSENT_USED",
            Reason::ConsentPending => "CONSENT_PENDING",
            Reason::ConsentRejected => "CONSENT_REJECTED",
            Reason::ConsentStateInvalid => "CONSENT_STATE_INVALID",
            Reason::ApprovalWidens => "APPROVAL_WIDENS",
            Reason::PersonAssertionMissing => "PERSON_ASSERTION_MISSING",
            Reason::PersonAssertionInvalid => "PERSON_ASSERTION_INVALID",
            Reason::PersonAssertionReused => "PERSON_ASSERTION_REUSED",
            Reason::PersonMismatch => "PERSON_MISMATCH",
            Reason::PersonLoginStale => "PERSON_LOGIN_STALE",
            Reason::AssuranceTooLow => "ASSURANCE_TOO_LOW",
            Reason::PurposeNotRegistrable => "PURPOSE_NOT_REGISTRABLE",
            Reason::SelfGrant => "SELF_GRANT",
            Reason::FieldInvalid => "FIELD_INVALID",
            Reason::RegistryInvalid => "REGISTRY_INVALID",
            Reason::RegistryVersionMismatch => "REGISTRY_VERSION_MISMATCH",
            Reason::RegistryItemNotFound => "REGISTRY_ITEM_NOT_FOUND",
            Reason::RegistryReadOnly => "REGISTRY_READ_ONLY",
            Reason::MeritLimit => "MERIT_LIMIT",
            Reason::MeritNotFound => "MERIT_NOT_FOUND",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The gRPC code this reason is answered with.
    pub fn code(self) -> Code {
        match self {
            Reason::IdentityMissing
            | Reason::PersonAssertionMissing
            | Reason::PersonAssertionInvalid
            | Reason::PersonAssertionReused
            | Reason::PersonLoginStale => Code::Unauthenticated,
            Reason::PersonMismatch
            | Reason::AssuranceTooLow
            | Reason::PurposeNotRegistrable
            | Reason::SelfGrant => Code::PermissionDenied,
            Reason::RoleRequired
            | Reason::AccessRuleMissing
            | Reason::ConsentMissing
            | Reason::ConsentRevoked
            | Reason::ConsentExpired
            | Reason::ConsentPaused
            | Reason::ConsentUsed
            | Reason::ConsentPending
            | Reason::ConsentRejected
            | Reason::PurposeMismatch => Code::PermissionDenied,
            Reason::ConsentStateInvalid | Reason::RegistryReadOnly | Reason::MeritLimit => {
                Code::FailedPrecondition
            }
            Reason::RegistryVersionMismatch => Code::Aborted,
            Reason::RegistryItemNotFound | Reason::MeritNotFound => Code::NotFound,
            Reason::RegistryInvalid => Code::InvalidArgument,
            Reason::ApprovalWidens => Code::InvalidArgument,
            Reason::SubjectIdInvalid
            | Reason::RecordTypeUnknown
            | Reason::PurposeUnknown
            | Reason::AgencyIdInvalid
            | Reason::AgencyUnknown
            | Reason::RecordTypeNotCovered
            | Reason::ValidityInvalid
            | Reason::FieldMissing
            | Reason::FieldTooLong
            | Reason::FieldInvalid
            | Reason::PageTokenInvalid => Code::InvalidArgument,
            Reason::ConsentNotFound => Code::NotFound,
            Reason::RequestIdReused => Code::AlreadyExists,
            Reason::RateLimited | Reason::MessageTooLarge => Code::ResourceExhausted,
            Reason::StoreUnavailable => Code::Unavailable,
            Reason::Internal => Code::Internal,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// The stable reason.
    pub reason: Reason,
    /// What the caller is told: short, no internals.
    pub message: String,
    /// For INVALID_ARGUMENT: the offending field, as a path into the
    /// request (`subject_id`, `record_types[1]`).
    pub field: Option<String>,
    /// What only the log gets.
    pub detail: Option<String>,
    /// The audit entry that recorded this refusal, if any.
    pub audit_id: Option<String>,
    /// When to try again (a `google.rpc.RetryInfo` detail), if known.
    pub retry_after: Option<std::time::Duration>,
}

impl GatewayError {
    /// A refusal with a message for the caller.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        GatewayError {
            reason,
            message: message.into(),
            field: None,
            detail: None,
            audit_id: None,
            retry_after: None,
        }
    }

    /// An invalid field of the request.
    pub fn invalid(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError {
            field: Some(field.into()),
            ..Self::new(reason, message)
        }
    }

    /// The store failed; `detail` goes to the log only.
    pub fn store(detail: impl std::fmt::Display) -> Self {
        GatewayError {
            detail: Some(detail.to_string()),
            ..Self::new(
                Reason::StoreUnavailable,
                "the consent and audit store is unavailable",
            )
        }
    }

    /// A defect; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        GatewayError {
            detail: Some(detail.to_string()),
            ..Self::new(Reason::Internal, "internal error")
        }
    }

    /// The same error, naming the audit entry that recorded it.
    pub fn with_audit_id(mut self, audit_id: String) -> Self {
        self.audit_id = Some(audit_id);
        self
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GatewayError {}

/// `message` as a caller is shown it: control characters replaced, and at
/// most [`MAX_MESSAGE_CHARS`] characters, the last an ellipsis where it was
/// cut.
fn bounded(message: &str) -> String {
    let clean = |c: char| if c.is_control() { '_' } else { c };
    if message.chars().nth(MAX_MESSAGE_CHARS).is_none() {
        return message.chars().map(clean).collect();
    }
    let mut cut: String = message
        .chars()
        .take(MAX_MESSAGE_CHARS - 1)
        .map(clean)
        .collect();
    cut.push('…');
    cut
}

/// The one place an error becomes a gRPC status.
pub fn to_status(err: &GatewayError) -> Status {
    if let Some(detail) = &err.detail {
        match err.reason {
            Reason::Internal | Reason::StoreUnavailable => {
                tracing::error!(reason = %err.reason, %detail, "request failed")
            }
            _ => tracing::info!(reason = %err.reason, %detail, "request refused"),
        }
    }
    let mut metadata = HashMap::new();
    if let Some(id) = &err.audit_id {
        metadata.insert("audit_id".to_owned(), id.clone());
    }
    let message = bounded(&err.message);
    let mut details = ErrorDetails::new();
    details.set_error_info(err.reason.as_str(), ERROR_DOMAIN, metadata);
    if let Some(field) = &err.field {
        details.add_bad_request_violation(bounded(field), message.clone());
    }
    if let Some(after) = err.retry_after {
        details.set_retry_info(Some(after));
    }
    Status::with_error_details(err.reason.code(), message, details)
}

impl From<GatewayError> for Status {
    fn from(err: GatewayError) -> Status {
        to_status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_reason_domain_and_field() {
        let err = GatewayError::invalid(Reason::SubjectIdInvalid, "subject_id", "bad check digit")
            .with_audit_id("a-1".into());
        let status = to_status(&err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "bad check digit");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "SUBJECT_ID_INVALID");
        assert_eq!(info.domain, "samverka");
        assert_eq!(
            info.metadata.get("audit_id").map(String::as_str),
            Some("a-1")
        );
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "subject_id");
    }

    #[test]
    fn every_message_is_bounded_and_clean() {
        // As if a message repeated 10 KB of what a caller sent, with line
        // breaks and an escape sequence in it.
        let echoed = format!("record type {} unknown\r\n\u{1b}[2J", "x".repeat(10_000));
        let status = to_status(&GatewayError::invalid(
            Reason::RecordTypeUnknown,
            "record_types[0]",
            echoed,
        ));
        let message = status.message();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.starts_with("record type xxx"), "{message}");
        assert!(message.ends_with('…'), "{message}");
        assert!(!message.chars().any(char::is_control), "{message}");
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].description, message);

        // A message at the bound is sent whole; control characters are
        // replaced in short ones too.
        let whole = "y".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(
            to_status(&GatewayError::new(Reason::FieldMissing, whole.clone())).message(),
            whole
        );
        assert_eq!(
            to_status(&GatewayError::new(Reason::FieldMissing, "a\nb\u{0}c")).message(),
            "a_b_c"
        );
    }

    #[test]
    fn internals_stay_out_of_the_message() {
        let status = to_status(&GatewayError::store(
            "disk I/O error at /var/lib/samverka.db",
        ));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("/var/lib"));
    }
}
