//! The rules a record an adapter returns must keep to leave the adapter,
//! and how an SDK tells the caller what its adapter's code returned that
//! broke them: the response header [`DROPPED_HEADER`].
//!
//! The SDK drops a record that breaks a rule before the answer leaves (a
//! bug in an adapter cannot leak someone else's data), and logs which rule
//! it broke. It then names, per rule, how many records it dropped in the
//! header, e.g. `x-samverka-dropped: 2 other-person, 1 undeclared-type`:
//! counts and rule names only, nothing about anyone. The gateway ignores
//! the header; the conformance kit reads it, so that it fails an adapter
//! for what its own code returned, not only for what left. An SDK in
//! another language does the same with the same names; an adapter without
//! an SDK sends no header, and the kit judges what it returns as it is.

use samverka_proto::records::v1::Record;

/// The response header (gRPC initial metadata) of a `FetchRecords` answer
/// that names the records the SDK dropped, by rule.
pub const DROPPED_HEADER: &str = "x-samverka-dropped";

/// A rule a returned record broke, in the order the SDK checks them (a
/// record is counted under the first it breaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropRule {
    /// `other-person`: the record is about someone else than the person
    /// asked about.
    OtherPerson,
    /// `undeclared-type`: its record type is not among those the adapter
    /// declares in `describe`.
    UndeclaredType,
    /// `type-not-asked`: a type the adapter declares, but not one of those
    /// asked for in this request.
    TypeNotAsked,
    /// `payload-mismatch`: its payload is not its record type's message
    /// ([`super::payload_mismatch`]).
    PayloadMismatch,
}

impl DropRule {
    /// Every rule, in the order they are checked.
    pub const ALL: [DropRule; 4] = [
        DropRule::OtherPerson,
        DropRule::UndeclaredType,
        DropRule::TypeNotAsked,
        DropRule::PayloadMismatch,
    ];

    /// Its name in [`DROPPED_HEADER`] and in the SDK's log.
    pub fn name(self) -> &'static str {
        match self {
            DropRule::OtherPerson => "other-person",
            DropRule::UndeclaredType => "undeclared-type",
            DropRule::TypeNotAsked => "type-not-asked",
            DropRule::PayloadMismatch => "payload-mismatch",
        }
    }

    /// The rule by its name.
    pub fn from_name(name: &str) -> Option<DropRule> {
        DropRule::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What a record that broke it is, for people ("records ... ").
    pub fn explain(self) -> &'static str {
        match self {
            DropRule::OtherPerson => "about another person than the one asked about",
            DropRule::UndeclaredType => {
                "of a record type the adapter does not declare in describe()"
            }
            DropRule::TypeNotAsked => "of a record type not asked for in this request",
            DropRule::PayloadMismatch => "whose payload is not their record type's message",
        }
    }
}

/// The rule `record` breaks, with the details for the log, or `None` when
/// it may leave: asked about `subject`, for the types `asked`, by an
/// adapter that declares `declared`. The SDK fills in an empty
/// `subject_id` before it asks.
pub fn broken_rule(
    record: &Record,
    subject: &str,
    asked: &[String],
    declared: &[String],
) -> Option<(DropRule, String)> {
    let t = &record.record_type;
    if record.subject_id != subject {
        Some((DropRule::OtherPerson, format!("a {t} record")))
    } else if !declared.iter().any(|d| d == t) {
        Some((
            DropRule::UndeclaredType,
            format!(
                "a {t:?} record; describe() declares {}",
                declared.join(", ")
            ),
        ))
    } else if !asked.iter().any(|a| a == t) {
        Some((
            DropRule::TypeNotAsked,
            format!("a {t} record; asked for {}", asked.join(", ")),
        ))
    } else {
        super::payload_mismatch(record).map(|p| (DropRule::PayloadMismatch, p))
    }
}

/// How many records were dropped, per rule: what [`DROPPED_HEADER`]
/// carries. Rules an SDK may name that this one does not know are kept by
/// name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped(Vec<(String, u64)>);

impl Dropped {
    /// Counts one more record dropped under `rule`.
    pub fn add(&mut self, rule: DropRule) {
        self.add_named(rule.name(), 1);
    }

    fn add_named(&mut self, name: &str, n: u64) {
        match self.0.iter_mut().find(|(r, _)| r == name) {
            Some((_, count)) => *count += n,
            None => self.0.push((name.to_owned(), n)),
        }
    }

    /// Nothing dropped.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, n)| *n == 0)
    }

    /// How many records in all.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// How many under `rule`.
    pub fn count(&self, rule: DropRule) -> u64 {
        self.0
            .iter()
            .filter(|(r, _)| r == rule.name())
            .map(|(_, n)| n)
            .sum()
    }

    /// The counts other than under `except`, for people: "2 records about
    /// another person than the one asked about (other-person), ...".
    pub fn explain_except(&self, except: &[DropRule]) -> Option<String> {
        let parts: Vec<String> = self
            .0
            .iter()
            .filter(|(name, n)| {
                *n > 0 && !DropRule::from_name(name).is_some_and(|r| except.contains(&r))
            })
            .map(|(name, n)| {
                let what = DropRule::from_name(name).map_or("", DropRule::explain);
                let records = if *n == 1 { "record" } else { "records" };
                if what.is_empty() {
                    format!("{n} {records} ({name})")
                } else {
                    format!("{n} {records} {what} ({name})")
                }
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// The header value: `2 other-person, 1 undeclared-type`.
    pub fn header_value(&self) -> String {
        self.0
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{n} {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads a header value; parts that do not read as `COUNT NAME` are
    /// skipped.
    pub fn parse(value: &str) -> Dropped {
        let mut dropped = Dropped::default();
        for part in value.split(',') {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(name), None) = (words.next(), words.next(), words.next())
                && let Ok(n) = n.parse()
            {
                dropped.add_named(name, n);
            }
        }
        dropped
    }

    /// What the header of a gRPC answer says; empty without one.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Dropped {
        metadata
            .get(DROPPED_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(Dropped::parse)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_proto::records::v1::record::Payload;
    use samverka_proto::records::v1::{Degree, EmploymentPeriod};

    fn record(subject: &str, record_type: &str, payload: Payload) -> Record {
        Record {
            record_type: record_type.into(),
            subject_id: subject.into(),
            record_id: "r-1".into(),
            payload: Some(payload),
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_in_order() {
        let period = || Payload::EmploymentPeriod(EmploymentPeriod::default());
        let declared = vec![
            "employment.period".to_owned(),
            "education.degree".to_owned(),
        ];
        let asked = vec!["employment.period".to_owned()];
        let rule = |r: &Record| broken_rule(r, "199003142388", &asked, &declared).map(|b| b.0);
        let own = record("199003142388", "employment.period", period());
        assert_eq!(rule(&own), None);
        // Another person and an undeclared type: counted as another person.
        let other = record("198511224571", "competence.validated", period());
        assert_eq!(rule(&other), Some(DropRule::OtherPerson));
        let undeclared = record("199003142388", "competence.validated", period());
        assert_eq!(rule(&undeclared), Some(DropRule::UndeclaredType));
        let degree = Payload::Degree(Degree::default());
        let not_asked = record("199003142388", "education.degree", degree.clone());
        assert_eq!(rule(&not_asked), Some(DropRule::TypeNotAsked));
        let mismatch = record("199003142388", "employment.period", degree);
        assert_eq!(rule(&mismatch), Some(DropRule::PayloadMismatch));
    }

    #[test]
    fn the_header_reads_back() {
        let mut d = Dropped::default();
        assert!(d.is_empty());
        d.add(DropRule::OtherPerson);
        d.add(DropRule::OtherPerson);
        d.add(DropRule::UndeclaredType);
        assert_eq!(d.header_value(), "2 other-person, 1 undeclared-type");
        let back = Dropped::parse(&d.header_value());
        assert_eq!(back, d);
        assert_eq!(back.count(DropRule::OtherPerson), 2);
        assert_eq!(back.total(), 3);
        // An SDK's rule this kit does not know is still reported.
        let future = Dropped::parse("1 too-old, x y, 2");
        assert_eq!(future.total(), 1);
        assert_eq!(
            future.explain_except(&[]).as_deref(),
            Some("1 record (too-old)")
        );
        assert_eq!(
            back.explain_except(&[DropRule::OtherPerson]).as_deref(),
            Some(
                "1 record of a record type the adapter does not declare in describe() (undeclared-type)"
            )
        );
    }
}
