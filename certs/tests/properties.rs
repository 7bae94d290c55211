//! Properties of identifier parsing and identity extraction, over inputs
//! proptest makes up: no input panics, the check digit is the only one that
//! fits, any single wrong digit is caught, and what is issued under the
//! convention is read back as issued.

use proptest::prelude::*;
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{CertIdentity, OrgNumber, Role, SubjectId};

/// A date prefix YYYYMMDD that exists, optionally as a coordination
/// number (day + 60).
fn date() -> impl Strategy<Value = String> {
    (1900u32..2030, 1u32..=12, 1u32..=28, any::<bool>()).prop_map(|(y, m, d, coordination)| {
        format!("{y:04}{m:02}{:02}", if coordination { d + 60 } else { d })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_string_makes_the_parsers_panic(s in "\\PC{0,20}") {
        let _ = SubjectId::parse(&s);
        let _ = OrgNumber::parse(&s);
    }

    #[test]
    fn no_digit_string_makes_the_parsers_panic(s in "[0-9]{0,14}") {
        let _ = SubjectId::parse(&s);
        let _ = OrgNumber::parse(&s);
    }

    #[test]
    fn exactly_one_check_digit_fits_a_person(date in date(), serial in 0u32..1000) {
        let stem = format!("{date}{serial:03}");
        let fitting: Vec<String> = (0..10)
            .map(|c| format!("{stem}{c}"))
            .filter(|s| SubjectId::parse(s).is_ok())
            .collect();
        prop_assert_eq!(fitting.len(), 1);
        let id = SubjectId::parse(&fitting[0]).unwrap();
        prop_assert_eq!(id.as_str(), fitting[0].as_str());
        prop_assert_eq!(id.is_coordination_number(), date.as_bytes()[6] >= b'6');
    }

    #[test]
    fn a_single_wrong_digit_in_a_person_is_caught(
        date in date(),
        serial in 0u32..1000,
        position in 2usize..12,
        shift in 1u8..10,
    ) {
        let stem = format!("{date}{serial:03}");
        let valid = (0..10)
            .map(|c| format!("{stem}{c}"))
            .find(|s| SubjectId::parse(s).is_ok())
            .unwrap();
        let mut bytes = valid.into_bytes();
        bytes[position] = b'0' + (bytes[position] - b'0' + shift) % 10;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(SubjectId::parse(&changed).is_err(), "{changed} accepted");
    }

    #[test]
    fn exactly_one_check_digit_fits_an_organisation(stem in "[0-9]{2}[2-9][0-9]{6}") {
        let fitting = (0..10)
            .filter(|c| OrgNumber::parse(&format!("{stem}{c}")).is_ok())
            .count();
        prop_assert_eq!(fitting, 1);
    }

    #[test]
    fn no_organisation_looks_like_a_birth_date(stem in "[0-9]{2}[01][0-9]{6}") {
        let none = (0..10).all(|c| OrgNumber::parse(&format!("{stem}{c}")).is_err());
        prop_assert!(none);
    }

    #[test]
    fn no_bytes_make_identity_extraction_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = CertIdentity::from_der(&bytes);
    }
}

proptest! {
    // Issuing certificates is slow: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn what_is_issued_is_read_back(stem in "[0-9]{2}[2-9][0-9]{6}", role in 0usize..4) {
        let org = (0..10)
            .map(|c| format!("{stem}{c}"))
            .find_map(|s| OrgNumber::parse(&s).ok())
            .unwrap();
        let role = [
            Role::Agency,
            Role::Adapter,
            Role::Gateway,
            Role::Operator,
            Role::Attester,
        ][role];
        let ca = ca();
        let issued = ca.issue(&CertRequest::new(org.clone(), role, "x")).unwrap();
        let id = CertIdentity::from_pem(&issued.cert_pem).unwrap();
        prop_assert_eq!(id.agency, org);
        prop_assert_eq!(id.role, role);
    }

    #[test]
    fn a_flipped_byte_never_makes_extraction_panic(position in 0usize..2000, bit in 0u8..8) {
        let ca = ca();
        let org = OrgNumber::parse("2021999020").unwrap();
        let issued = ca.issue(&CertRequest::new(org, Role::Agency, "x")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let mut der = pem.contents.clone();
        let i = position % der.len();
        der[i] ^= 1 << bit;
        let _ = CertIdentity::from_der(&der);
    }
}

fn ca() -> &'static DevCa {
    static CA: std::sync::OnceLock<DevCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| DevCa::generate("properties CA").unwrap())
}
