//! Step 3 of a request: what the caller sent is checked before any store or
//! adapter is touched. Every service checks a person, a purpose, record
//! types and agencies with these functions, so that one input is refused
//! with the same reason and message whichever service it reaches.
//!
//! A malformed value is `INVALID_ARGUMENT` with a `BadRequest` field
//! violation naming the field (`subject_id`, `record_types[1]`). A required
//! value that is empty or blank (only whitespace) is `FIELD_MISSING`,
//! before it is parsed or looked up; free text and ids longer than their
//! bound are `FIELD_TOO_LONG`. Caller input that is echoed in a span or the
//! audit entry goes through [`sanitize`] first, and in a message through
//! [`echo`] (every status message is bounded again where it is made,
//! [`crate::error::to_status`]).

use samverka_certs::{OrgNumber, SubjectId};

use crate::config::{Purpose, RegistryTables};
use crate::error::{GatewayError, Reason};

/// The most record types one request may name.
pub const MAX_RECORD_TYPES: usize = 32;

/// The longest field kept of what a caller sent, in messages, spans and
/// audit entries.
const MAX_FIELD: usize = 64;

/// The longest id a caller may send: a grant's `request_id`, a
/// `consent_id` (the gateway's own are 36).
pub const MAX_ID_CHARS: usize = 128;

/// The longest `evidence_ref` a registrar may store with a grant.
pub const MAX_EVIDENCE_REF_CHARS: usize = 256;

/// The longest `reason` a registrar may store with a revocation.
pub const MAX_REVOCATION_REASON_CHARS: usize = 500;

/// The longest `case_reference` or `official_id` of a read.
pub const MAX_CASE_FIELD_CHARS: usize = 64;

/// A read's optional case reference and official id: at most
/// [`MAX_CASE_FIELD_CHARS`] characters of ASCII letters, digits and
/// `- _ . : / #`, so that they are safe in the audit trail and the access
/// log; an official id that is a personal identity or coordination number
/// is refused, as the person's view must not list officials by it.
pub fn case_fields(case_reference: &str, official_id: &str) -> Result<(), GatewayError> {
    for (field, value) in [
        ("case_reference", case_reference),
        ("official_id", official_id),
    ] {
        bounded(field, value, MAX_CASE_FIELD_CHARS)?;
        let ok = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/#".contains(&b));
        if !ok {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                field,
                format!("{field} may hold only letters, digits and - _ . : / #"),
            ));
        }
    }
    let digits: String = official_id.chars().filter(|c| *c != '-').collect();
    let person_number = match digits.len() {
        12 => SubjectId::parse(&digits).is_ok(),
        10 => ["19", "20"]
            .iter()
            .any(|c| SubjectId::parse(&format!("{c}{digits}")).is_ok()),
        _ => false,
    };
    if person_number {
        return Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "official_id",
            "official_id must be an opaque id, not a personal identity number",
        ));
    }
    Ok(())
}

/// The audit details of a read's case fields, those given (checked or
/// not: a refused read records what was sent, made safe).
pub fn case_details(case_reference: &str, official_id: &str) -> Vec<(String, String)> {
    [
        ("case_reference", case_reference),
        ("official_id", official_id),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), sanitize(v)))
    .collect()
}

/// What a caller sent, made safe to repeat: at most 64 characters, no
/// commas (the store's list separator), no control characters.
pub fn sanitize(s: &str) -> String {
    sanitized(s).into_owned()
}

/// [`sanitize`], borrowing `s` when it is safe as it is (the usual case:
/// no copy, and none made a character at a time).
pub fn sanitized(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c == ',' || c.is_control();
    // No more bytes than MAX_FIELD means no more characters either.
    if s.len() <= MAX_FIELD && !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(4 * MAX_FIELD));
    out.extend(
        s.chars()
            .take(MAX_FIELD)
            .map(|c| if unsafe_char(c) { '_' } else { c }),
    );
    std::borrow::Cow::Owned(out)
}

/// What a caller sent, to repeat in a message: [`sanitize`]d, with an
/// ellipsis where it was cut.
pub fn echo(s: &str) -> String {
    let mut shown = sanitize(s);
    if s.chars().nth(MAX_FIELD).is_some() {
        shown.push('…');
    }
    shown
}

/// A required value: neither empty nor blank. Nonsense such as `" "` is
/// refused here, as missing, rather than by the lookup it would fail.
pub fn required(field: impl std::fmt::Display, value: &str) -> Result<(), GatewayError> {
    if value.trim().is_empty() {
        return Err(GatewayError::invalid(
            Reason::FieldMissing,
            field.to_string(),
            format!("{field} is required and may not be blank"),
        ));
    }
    Ok(())
}

/// Optional free text or an id the caller sends: at most `max`
/// characters.
pub fn bounded(field: &str, value: &str, max: usize) -> Result<(), GatewayError> {
    if value.chars().nth(max).is_some() {
        return Err(GatewayError::invalid(
            Reason::FieldTooLong,
            field,
            format!("{field} may be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Text a registrar has the gateway store (a grant's `evidence_ref` and
/// `request_id`, a revocation's `reason`): [`bounded`], and no control
/// characters (`FIELD_INVALID`). A NUL cannot be stored by PostgreSQL at
/// all, and the others have no place in one line of a consent; refusing
/// them here keeps both stores alike and spends no person assertion.
pub fn stored_text(field: &str, value: &str, max: usize) -> Result<(), GatewayError> {
    bounded(field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(GatewayError::invalid(
            Reason::FieldInvalid,
            field,
            format!("{field} may not hold control characters"),
        ));
    }
    Ok(())
}

/// The request's person: a personal identity or coordination number.
pub fn subject(subject_id: &str) -> Result<SubjectId, GatewayError> {
    required("subject_id", subject_id)?;
    SubjectId::parse(subject_id).map_err(|e| {
        GatewayError::invalid(
            Reason::SubjectIdInvalid,
            "subject_id",
            format!("subject_id {e}"),
        )
    })
}

/// A purpose code this gateway knows.
pub fn purpose<'c>(config: &'c RegistryTables, code: &str) -> Result<&'c Purpose, GatewayError> {
    required("purpose", code)?;
    config.purpose(code).ok_or_else(|| {
        GatewayError::invalid(
            Reason::PurposeUnknown,
            "purpose",
            "purpose is not a known purpose code",
        )
    })
}

/// At least one and at most [`MAX_RECORD_TYPES`] record types, none blank,
/// each known to this gateway; returned sorted, without duplicates.
pub fn record_types(
    config: &RegistryTables,
    types: &[String],
) -> Result<Vec<String>, GatewayError> {
    if types.is_empty() {
        return Err(GatewayError::invalid(
            Reason::FieldMissing,
            "record_types",
            "at least one record type is required",
        ));
    }
    if types.len() > MAX_RECORD_TYPES {
        return Err(GatewayError::invalid(
            Reason::RecordTypeUnknown,
            "record_types",
            format!("at most {MAX_RECORD_TYPES} record types per request"),
        ));
    }
    for (i, t) in types.iter().enumerate() {
        let field = Element("record_types", i);
        required(field, t)?;
        if !config.knows_record_type(t) {
            return Err(GatewayError::invalid(
                Reason::RecordTypeUnknown,
                field.to_string(),
                format!("record type {:?} is not known to this gateway", echo(t)),
            ));
        }
    }
    let mut sorted = types.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

/// Every record type is one that `purpose` covers.
pub fn covered_by(purpose: &Purpose, types: &[String]) -> Result<(), GatewayError> {
    match types.iter().position(|t| !purpose.record_types.contains(t)) {
        None => Ok(()),
        Some(i) => Err(GatewayError::invalid(
            Reason::RecordTypeNotCovered,
            format!("record_types[{i}]"),
            format!(
                "purpose {} does not cover record type {}",
                purpose.code,
                echo(&types[i])
            ),
        )),
    }
}

/// An organisation number in `field` (`grantee_agency`,
/// `source_agencies[0]`); `what` names it in the message.
pub fn agency(
    field: impl std::fmt::Display,
    what: &str,
    org: &str,
) -> Result<OrgNumber, GatewayError> {
    OrgNumber::parse(org).map_err(|e| {
        GatewayError::invalid(
            Reason::AgencyIdInvalid,
            field.to_string(),
            format!("{what} {e}"),
        )
    })
}

/// An element of a repeated field, e.g. `record_types[2]`: named (and
/// its name made) only when a check of it fails.
#[derive(Debug, Clone, Copy)]
pub struct Element<'a>(pub &'a str, pub usize);

impl std::fmt::Display for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// A required agency known to this gateway (one it has an entry for).
pub fn known_agency(
    config: &RegistryTables,
    field: &str,
    org: &str,
) -> Result<OrgNumber, GatewayError> {
    required(field, org)?;
    let org = agency(field, field, org)?;
    if config.agency(&org).is_none() {
        return Err(GatewayError::invalid(
            Reason::AgencyUnknown,
            field,
            format!("{field} is not an agency known to this gateway"),
        ));
    }
    Ok(org)
}

/// Source agencies, none blank, each well-formed and, where `connected`
/// says which are, connected to this gateway; returned sorted, without
/// duplicates.
pub fn source_agencies(
    sources: &[String],
    connected: Option<&dyn Fn(&str) -> bool>,
) -> Result<Vec<String>, GatewayError> {
    for (i, s) in sources.iter().enumerate() {
        let field = Element("source_agencies", i);
        required(field, s)?;
        agency(field, "source agency", s)?;
        if let Some(connected) = connected
            && !connected(s)
        {
            return Err(GatewayError::invalid(
                Reason::AgencyUnknown,
                field.to_string(),
                "no source agency with that number is connected to this gateway",
            ));
        }
    }
    let mut sorted = sources.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

/// A time the caller sent, in Unix ms (`None` if it sent none); one out of
/// range is refused with `reason`.
pub fn time(
    field: &str,
    ts: Option<&prost_types::Timestamp>,
    reason: Reason,
) -> Result<Option<i64>, GatewayError> {
    ts.map(|ts| {
        crate::time::from_timestamp(ts).ok_or_else(|| {
            GatewayError::invalid(reason, field, format!("{field} is not a valid time"))
        })
    })
    .transpose()
}

/// A consent's validity: from `valid_from` (now if unset) until the
/// required `valid_until`, which must be later, in the future, and at most
/// `max_lifetime` after the start. Unix ms.
pub fn validity(
    valid_from: Option<&prost_types::Timestamp>,
    valid_until: Option<&prost_types::Timestamp>,
    now_ms: i64,
    max_lifetime: std::time::Duration,
) -> Result<(i64, i64), GatewayError> {
    let from_ms = time("valid_from", valid_from, Reason::ValidityInvalid)?.unwrap_or(now_ms);
    let until_ms = time("valid_until", valid_until, Reason::ValidityInvalid)?.ok_or_else(|| {
        GatewayError::invalid(
            Reason::FieldMissing,
            "valid_until",
            "valid_until is required",
        )
    })?;
    if until_ms <= from_ms || until_ms <= now_ms {
        return Err(GatewayError::invalid(
            Reason::ValidityInvalid,
            "valid_until",
            "valid_until must be after valid_from and in the future",
        ));
    }
    let max_ms = max_lifetime.as_millis() as i64;
    if until_ms - from_ms > max_ms {
        return Err(GatewayError::invalid(
            Reason::ValidityInvalid,
            "valid_until",
            format!(
                "a consent may last at most {} days",
                max_ms / (24 * 3600 * 1000)
            ),
        ));
    }
    Ok((from_ms, until_ms))
}

/// A caller's idempotency key: present, not blank, at most
/// [`MAX_ID_CHARS`] characters.
pub fn request_id(id: &str) -> Result<(), GatewayError> {
    required("request_id", id)?;
    stored_text("request_id", id, MAX_ID_CHARS)
}

/// The consent a request names: present, not blank, at most
/// [`MAX_ID_CHARS`] characters (longer ones are none the gateway gave).
pub fn consent_id(id: &str) -> Result<(), GatewayError> {
    required("consent_id", id)?;
    bounded("consent_id", id, MAX_ID_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_bounds_and_cleans() {
        assert_eq!(sanitize("a,b\nc"), "a_b_c");
        assert_eq!(sanitize(&"x".repeat(1000)).len(), 64);
        // Cut by characters, not bytes: 64 two-byte characters stay whole.
        assert_eq!(sanitize(&"å".repeat(64)), "å".repeat(64));
        assert_eq!(sanitize(&"å".repeat(65)), "å".repeat(64));
        assert_eq!(
            sanitize(&format!("{},", "x".repeat(63))),
            format!("{}_", "x".repeat(63))
        );
        assert_eq!(sanitize("\u{7f}\u{85}"), "__");
        // What is already safe is borrowed, not copied.
        assert!(matches!(
            sanitized("19900101-1234"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(sanitized("a,b"), std::borrow::Cow::Owned(_)));
        assert!(matches!(
            sanitized(&"x".repeat(65)),
            std::borrow::Cow::Owned(_)
        ));
        assert_eq!(echo("a\tb"), "a_b");
        assert_eq!(echo(&"x".repeat(64)), "x".repeat(64));
        assert_eq!(echo(&"x".repeat(65)), format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn empty_and_blank_values_are_missing() {
        for blank in ["", " ", "\t\r\n", "\u{3000}\u{a0}"] {
            let field = |r: Result<(), GatewayError>| {
                let e = r.unwrap_err();
                assert_eq!(e.reason, Reason::FieldMissing, "{blank:?}");
                e.field.unwrap_or_default()
            };
            assert_eq!(field(subject(blank).map(drop)), "subject_id");
            assert_eq!(field(request_id(blank)), "request_id");
            assert_eq!(field(consent_id(blank)), "consent_id");
            assert_eq!(
                field(source_agencies(&["2021999020".into(), blank.into()], None).map(drop)),
                "source_agencies[1]"
            );
        }
        assert_eq!(required("purpose", " x "), Ok(()));
    }

    #[test]
    fn ids_and_free_text_are_bounded() {
        let id = "i".repeat(MAX_ID_CHARS);
        assert_eq!(request_id(&id), Ok(()));
        assert_eq!(consent_id(&id), Ok(()));
        let too_long = format!("{id}i");
        for e in [request_id(&too_long), consent_id(&too_long)] {
            assert_eq!(e.unwrap_err().reason, Reason::FieldTooLong);
        }
        // Characters, not bytes: ä is two bytes.
        assert_eq!(bounded("reason", &"ä".repeat(10), 10), Ok(()));
        let e = bounded("reason", &"ä".repeat(11), 10).unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_deref()),
            (Reason::FieldTooLong, Some("reason"))
        );
    }

    #[test]
    fn a_validity_is_ordered_in_the_future_and_bounded() {
        let ts = |s: i64| prost_types::Timestamp {
            seconds: s,
            nanos: 0,
        };
        let day = std::time::Duration::from_secs(24 * 3600);
        let now = 1_000_000;
        assert_eq!(
            validity(None, Some(&ts(2_000)), now, day),
            Ok((now, 2_000_000))
        );
        let field = |r: Result<(i64, i64), GatewayError>| {
            let e = r.unwrap_err();
            (e.reason, e.field.unwrap_or_default())
        };
        assert_eq!(
            field(validity(None, None, now, day)),
            (Reason::FieldMissing, "valid_until".into())
        );
        assert_eq!(
            field(validity(Some(&ts(3_000)), Some(&ts(2_000)), now, day)),
            (Reason::ValidityInvalid, "valid_until".into())
        );
        assert_eq!(
            field(validity(None, Some(&ts(500)), now, day)),
            (Reason::ValidityInvalid, "valid_until".into())
        );
        assert_eq!(
            field(validity(None, Some(&ts(1_000 + 2 * 86_400)), now, day)),
            (Reason::ValidityInvalid, "valid_until".into())
        );
        assert_eq!(
            field(validity(Some(&ts(i64::MAX)), Some(&ts(2_000)), now, day)),
            (Reason::ValidityInvalid, "valid_from".into())
        );
    }

    #[test]
    fn a_bad_subject_names_the_field() {
        let e = subject("199003142389").unwrap_err();
        assert_eq!(e.reason, Reason::SubjectIdInvalid);
        assert_eq!(e.field.as_deref(), Some("subject_id"));
    }

    #[test]
    fn a_bad_source_names_its_index() {
        let e = source_agencies(&["2021999020".into(), "12".into()], None).unwrap_err();
        assert_eq!(e.reason, Reason::AgencyIdInvalid);
        assert_eq!(e.field.as_deref(), Some("source_agencies[1]"));
        let e = source_agencies(&["2021999020".into()], Some(&|_| false)).unwrap_err();
        assert_eq!(e.reason, Reason::AgencyUnknown);
        assert_eq!(
            source_agencies(
                &[
                    "2021999038".into(),
                    "2021999020".into(),
                    "2021999020".into()
                ],
                None
            )
            .unwrap(),
            vec!["2021999020".to_owned(), "2021999038".to_owned()]
        );
    }
}
