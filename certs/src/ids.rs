//! Swedish identifiers: organisation numbers for agencies and personal
//! identity (or coordination) numbers for the people records are about.
//!
//! Both end in a Luhn (mod 10) check digit. Parsing accepts only the
//! canonical all-digit form the API uses (10 digits for an organisation
//! number, 12 for a person), so that the same person or agency is always
//! written the same way in consents and audit entries.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// Not the required number of characters.
    Length {
        /// How many digits the identifier needs.
        expected: usize,
    },
    /// Something other than an ASCII digit.
    NotDigits,
    /// The check digit does not match.
    Checksum,
    /// The date part is not a real calendar date.
    Date,
    /// An organisation number whose third digit is below 2 (it would look
    /// like a date of birth).
    NotAnOrganisation,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Length { expected } => write!(f, "must be exactly {expected} digits"),
            IdError::NotDigits => f.write_str("must contain digits only"),
            IdError::Checksum => f.write_str("check digit does not match"),
            IdError::Date => f.write_str("date part is not a real date"),
            IdError::NotAnOrganisation => {
                f.write_str("third digit must be 2 or more for an organisation number")
            }
        }
    }
}

impl std::error::Error for IdError {}

/// The Luhn check digit over `digits` (ASCII digits, already checked).
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = u32::from(d - b'0') * if i % 2 == 0 { 2 } else { 1 };
            v / 10 + v % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn digits_of(s: &str, expected: usize) -> Result<&[u8], IdError> {
    let b = s.as_bytes();
    if !b.iter().all(u8::is_ascii_digit) {
        return Err(IdError::NotDigits);
    }
    if b.len() != expected {
        return Err(IdError::Length { expected });
    }
    Ok(b)
}

/// A Swedish organisation number (organisationsnummer), 10 digits with a
/// Luhn check digit. Identifies agencies, employers and institutions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgNumber(String);

impl OrgNumber {
    /// Parses the canonical 10-digit form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let b = digits_of(s, 10)?;
        if b[2] < b'2' {
            return Err(IdError::NotAnOrganisation);
        }
        if luhn_check_digit(&b[..9]) != b[9] - b'0' {
            return Err(IdError::Checksum);
        }
        Ok(OrgNumber(s.to_owned()))
    }

    /// The 10 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's personal identity number (personnummer) or coordination
/// number (samordningsnummer, day of birth + 60), in the canonical 12-digit
/// form `YYYYMMDDNNNC`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId(String);

impl SubjectId {
    /// Parses the canonical 12-digit form, checking the date and the check
    /// digit.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let b = digits_of(s, 12)?;
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let (year, month, mut day) = (num(0..4), num(4..6), num(6..8));
        if day > 60 {
            day -= 60; // coordination number
        }
        if !is_real_date(year, month, day) {
            return Err(IdError::Date);
        }
        if luhn_check_digit(&b[2..11]) != b[11] - b'0' {
            return Err(IdError::Checksum);
        }
        Ok(SubjectId(s.to_owned()))
    }

    /// The number whose first eleven digits (`YYYYMMDDNNN`) are `digits`,
    /// completed with its check digit: for synthetic people in test data
    /// and benchmarks. The date is checked as in [`SubjectId::parse`].
    pub fn with_check_digit(digits: &str) -> Result<Self, IdError> {
        let b = digits_of(digits, 11)?;
        Self::parse(&format!("{digits}{}", luhn_check_digit(&b[2..])))
    }

    /// Whether this is a coordination number rather than a personal
    /// identity number.
    pub fn is_coordination_number(&self) -> bool {
        self.0.as_bytes()[6] >= b'6'
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Only the birth date and a masked tail, so that a stray `{:?}` in a log
/// line does not write out a person's full number.
impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId({}-****)", &self.0[..8])
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_real_date(year: u32, month: u32, day: u32) -> bool {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_numbers() {
        assert!(OrgNumber::parse("2021999012").is_ok());
        assert!(OrgNumber::parse("5569990012").is_ok());
        assert_eq!(OrgNumber::parse("2021999013"), Err(IdError::Checksum));
        assert_eq!(
            OrgNumber::parse("202199901"),
            Err(IdError::Length { expected: 10 })
        );
        assert_eq!(OrgNumber::parse("202199901A"), Err(IdError::NotDigits));
        assert_eq!(OrgNumber::parse("202199-9012"), Err(IdError::NotDigits));
        // A personal identity number's tail has a month in third place.
        assert_eq!(
            OrgNumber::parse("9003142388"),
            Err(IdError::NotAnOrganisation)
        );
    }

    #[test]
    fn a_check_digit_completes_eleven_digits() {
        for id in ["199003142388", "199204638762"] {
            let made = SubjectId::with_check_digit(&id[..11]).unwrap();
            assert_eq!(made.as_str(), id);
        }
        assert_eq!(
            SubjectId::with_check_digit("19900230238"),
            Err(IdError::Date)
        );
        assert_eq!(
            SubjectId::with_check_digit("199003142388"),
            Err(IdError::Length { expected: 11 })
        );
    }

    #[test]
    fn subject_ids() {
        let p = SubjectId::parse("199003142388").unwrap();
        assert!(!p.is_coordination_number());
        let c = SubjectId::parse("199204638762").unwrap();
        assert!(c.is_coordination_number());
        assert_eq!(SubjectId::parse("199003142389"), Err(IdError::Checksum));
        assert_eq!(
            SubjectId::parse("9003142388"),
            Err(IdError::Length { expected: 12 })
        );
        assert_eq!(SubjectId::parse("19900314-2388"), Err(IdError::NotDigits));
        assert_eq!(SubjectId::parse("1990031423AB"), Err(IdError::NotDigits));
        // 30 February has a valid check digit but is no date.
        assert_eq!(SubjectId::parse("197802301239"), Err(IdError::Date));
        assert_eq!(SubjectId::parse(""), Err(IdError::Length { expected: 12 }));
    }

    #[test]
    fn debug_masks_the_number() {
        let p = SubjectId::parse("199003142388").unwrap();
        assert_eq!(format!("{p:?}"), "SubjectId(19900314-****)");
    }

    #[test]
    fn luhn_matches_every_single_digit_error() {
        let good = b"199003142388";
        // The century digits are outside the checksum by definition.
        for pos in 2..12 {
            for d in b'0'..=b'9' {
                if d == good[pos] {
                    continue;
                }
                let mut bad = *good;
                bad[pos] = d;
                let s = std::str::from_utf8(&bad).unwrap();
                assert!(SubjectId::parse(s).is_err(), "{s} accepted");
            }
        }
    }
}
