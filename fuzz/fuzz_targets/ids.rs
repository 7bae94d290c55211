//! Identity and organisation numbers from any text: parse or refuse, never
//! panic; what parses is 12 (or 10) digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samverka_certs::{OrgNumber, SubjectId};

fuzz_target!(|text: &str| {
    if let Ok(id) = SubjectId::parse(text) {
        assert_eq!(id.as_str().len(), 12);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_digit()));
    }
    if let Ok(org) = OrgNumber::parse(text) {
        assert_eq!(org.as_str().len(), 10);
        assert!(org.as_str().bytes().all(|b| b.is_ascii_digit()));
    }
});
