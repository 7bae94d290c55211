//! What a person may declare: the checks of a merit before the gateway
//! keeps it, each refusal with its stable reason.

use samverka_proto::records::v1::SelfDeclaredMerit;

use crate::error::{GatewayError, Reason};
use crate::pipeline::validate::{self, sanitize};

/// Bounds of a merit's text fields, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// See [`MAX_TITLE_CHARS`].
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The most skill concepts on one merit.
pub const MAX_SKILLS: usize = 20;

const ESCO_SKILL: &str = "http://data.europa.eu/esco/skill/";

/// Whether `s` is a skill concept a merit may name: an ESCO skill URI
/// (the base and a UUID) or a JobTech taxonomy concept id (4 to 32
/// letters, digits and `_`).
pub fn is_skill_concept(s: &str) -> bool {
    match s.strip_prefix(ESCO_SKILL) {
        Some(id) => is_uuid(id),
        None => {
            (4..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    }
}

/// Whether `s` is a UUID in its one canonical form (lower-case hex with
/// hyphens), as ESCO and the gateway write them.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// Characters that make text read otherwise than it is stored: bidi
/// overrides and isolates, zero-width characters, line and paragraph
/// separators, the byte-order mark.
fn disguising(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2028}' | '\u{2029}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A day (`YYYY-MM-DD`, exactly: no sign, no wider year), or empty.
fn day(field: &str, value: &str) -> Result<Option<time::Date>, GatewayError> {
    if value.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let shaped = value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    shaped
        .then(|| time::Date::parse(value, format).ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            GatewayError::invalid(
                Reason::FieldInvalid,
                field,
                format!("{field} must be a day, YYYY-MM-DD"),
            )
        })
}

/// The merit as the person may declare it: a title, text within bounds,
/// known skill concepts, and dates that are days, not in the future, in
/// order (an end only with a start). `today` is the latest date anywhere
/// now (the gateway's UTC date plus one), so that no one's today is
/// refused.
pub fn check(m: &SelfDeclaredMerit, today: time::Date) -> Result<(), GatewayError> {
    if m.title.trim().is_empty() {
        return Err(GatewayError::invalid(
            Reason::FieldMissing,
            "merit.title",
            "a merit needs a title",
        ));
    }
    validate::stored_text("merit.title", &m.title, MAX_TITLE_CHARS)?;
    validate::bounded("merit.description", &m.description, MAX_DESCRIPTION_CHARS)?;
    // A description may run over lines; no other control characters, and
    // in neither field characters that disguise the text.
    for (field, text) in [
        ("merit.title", &m.title),
        ("merit.description", &m.description),
    ] {
        if text.chars().any(disguising) {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                field,
                format!("{field} may not contain invisible or direction-changing characters"),
            ));
        }
    }
    if m.description
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "merit.description",
            "merit.description may not contain control characters",
        ));
    }
    if m.skill_concepts.len() > MAX_SKILLS {
        return Err(GatewayError::invalid(
            Reason::FieldTooLong,
            "merit.skill_concepts",
            format!("at most {MAX_SKILLS} skill concepts"),
        ));
    }
    if let Some(bad) = m.skill_concepts.iter().find(|s| !is_skill_concept(s)) {
        return Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "merit.skill_concepts",
            format!(
                "{:?} is neither an ESCO skill URI ({ESCO_SKILL}<uuid>) nor a JobTech concept id",
                sanitize(bad)
            ),
        ));
    }
    let start = day("merit.start_date", &m.start_date)?;
    let end = day("merit.end_date", &m.end_date)?;
    let future = |field: &str| {
        GatewayError::invalid(
            Reason::FieldInvalid,
            field,
            format!("{field} is in the future"),
        )
    };
    if start.is_some_and(|d| d > today) {
        return Err(future("merit.start_date"));
    }
    if end.is_some_and(|d| d > today) {
        return Err(future("merit.end_date"));
    }
    match (start, end) {
        (None, Some(_)) => Err(GatewayError::invalid(
            Reason::FieldMissing,
            "merit.start_date",
            "a merit with an end date needs a start date",
        )),
        (Some(s), Some(e)) if e < s => Err(GatewayError::invalid(
            Reason::FieldInvalid,
            "merit.end_date",
            "merit.end_date is before merit.start_date",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merit(title: &str, start: &str, end: &str, skills: &[&str]) -> SelfDeclaredMerit {
        SelfDeclaredMerit {
            title: title.into(),
            start_date: start.into(),
            end_date: end.into(),
            skill_concepts: skills.iter().map(|s| (*s).into()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn what_a_person_may_declare() {
        let today = time::macros::date!(2026 - 06 - 01);
        let esco = "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000d001";
        let ok = [
            merit("Föreningskassör", "2019-01-01", "2024-12-31", &[esco]),
            merit("Svenska som andraspråk", "", "", &["ShfR_Lfz_2kT"]),
            merit("Ongoing", "2026-06-01", "", &[]),
        ];
        for m in &ok {
            check(m, today).unwrap();
        }
        let reason = |m: SelfDeclaredMerit| check(&m, today).unwrap_err().reason;
        assert_eq!(reason(merit(" ", "", "", &[])), Reason::FieldMissing);
        assert_eq!(
            reason(merit(&"x".repeat(201), "", "", &[])),
            Reason::FieldTooLong
        );
        assert_eq!(reason(merit("a\u{7}b", "", "", &[])), Reason::FieldInvalid);
        assert_eq!(
            reason(merit("a", "2019-13-01", "", &[])),
            Reason::FieldInvalid
        );
        for bad in ["+2019-01-01", "-0001-01-01", "2019-1-01"] {
            assert_eq!(
                reason(merit("a", bad, "", &[])),
                Reason::FieldInvalid,
                "{bad}"
            );
        }
        for bad in ["\u{202E}gnidaeR", "a\u{200B}b", "a\u{2028}b"] {
            assert_eq!(
                reason(merit(bad, "", "", &[])),
                Reason::FieldInvalid,
                "{bad:?}"
            );
        }
        assert_eq!(
            reason(merit("a", "2026-06-02", "", &[])),
            Reason::FieldInvalid
        );
        assert_eq!(
            reason(merit("a", "2020-01-01", "2019-01-01", &[])),
            Reason::FieldInvalid
        );
        assert_eq!(
            reason(merit("a", "", "2019-01-01", &[])),
            Reason::FieldMissing
        );
        for bad in [
            "http://data.europa.eu/esco/skill/not-a-uuid",
            "http://data.europa.eu/esco/skill/urn:uuid:00000000-0000-4000-8000-00000000d001",
            "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000D001",
            "https://evil.example/skill",
            "ab",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                reason(merit("a", "", "", &[bad])),
                Reason::FieldInvalid,
                "{bad}"
            );
        }
        let many: Vec<&str> = std::iter::repeat_n(esco, MAX_SKILLS + 1).collect();
        assert_eq!(reason(merit("a", "", "", &many)), Reason::FieldTooLong);
        let mut long = merit("a", "", "", &[]);
        long.description = "ord ".repeat(600);
        assert_eq!(reason(long), Reason::FieldTooLong);
    }
}
