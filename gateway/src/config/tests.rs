//! Tests of the whole file through `Config::from_toml`: a good
//! configuration, errors naming their line or key, and properties over
//! arbitrary text. Each section's parser is also tested in its own file.

use std::time::Duration;

use super::*;
use crate::store::StoreLocation;

const GOOD: &str = r#"
[gateway]
address = "127.0.0.1:8443"
org_number = "2021999012"
ca_cert = "certs/ca.pem"
cert = "certs/gateway.pem"
key = "certs/gateway.key"
client_cert = "/etc/samverka/gateway-client.pem"
client_key = "/etc/samverka/gateway-client.key"
store = "samverka.db"

[[agencies]]
org_number = "2021999020"
name = "Guidance service"

[[purposes]]
code = "study_guidance"
description = "Study and career guidance"
record_types = ["education.course_result", "employment.period"]

[[access_rules]]
agency = "2021999020"
purposes = ["study_guidance"]
record_types = ["education.course_result"]

[[adapters]]
name = "employment"
address = "127.0.0.1:50062"
org_number = "2021999053"
record_types = ["employment.period"]
"#;

#[test]
fn parses_a_good_config_and_resolves_relative_paths() {
    let c = Config::from_toml(GOOD, Path::new("/srv/samverka")).unwrap();
    assert_eq!(
        c.gateway.store,
        StoreLocation::Sqlite("/srv/samverka/samverka.db".into())
    );
    assert_eq!(
        c.consents.max_lifetime,
        Duration::from_secs(730 * 24 * 3600)
    );
    assert_eq!(
        c.gateway.client_cert,
        Path::new("/etc/samverka/gateway-client.pem")
    );
    assert_eq!(c.gateway.default_deadline, Duration::from_secs(5));
    assert_eq!(c.adapters[0].server_name, "127.0.0.1");
    assert!(c.tables().knows_record_type("employment.period"));
    assert!(!c.tables().knows_record_type("education.degree"));
}

fn error_for(text: &str) -> ConfigError {
    Config::from_toml(text, Path::new("/")).unwrap_err()
}

#[test]
fn a_bad_organisation_number_names_its_line() {
    let e = error_for(&GOOD.replace("agency = \"2021999020\"", "agency = \"2021999021\""));
    assert_eq!(e.line, Some(22), "{e}");
    assert!(e.key.contains("agency"), "{e}");
    assert!(e.reason.contains("check digit"), "{e}");
}

#[test]
fn an_unknown_key_is_an_error() {
    let e = error_for(&GOOD.replace("store = ", "stor = \"x\"\nstore = "));
    assert!(e.reason.contains("unknown field"), "{e}");
    assert_eq!(e.line, Some(10), "{e}");
}

#[test]
fn an_undefined_purpose_in_a_rule_is_an_error() {
    let e = error_for(&GOOD.replace(
        "purposes = [\"study_guidance\"]",
        "purposes = [\"admission\"]",
    ));
    assert_eq!(e.key, "access_rules[0].purposes");
    assert!(e.reason.contains("admission"), "{e}");
    assert!(e.line.is_some());
}

#[test]
fn a_rule_for_an_unlisted_agency_is_an_error() {
    let e = error_for(&GOOD.replace("org_number = \"2021999020\"", "org_number = \"2021999038\""));
    assert_eq!(e.key, "access_rules[0].agency");
}

#[test]
fn an_agency_may_have_a_rate_of_its_own() {
    let own = GOOD.replace(
        "name = \"Guidance service\"",
        "name = \"Guidance service\"\nrate_per_second = 5\nburst = 10",
    ) + "\n[limits]\nrate_per_second = 100\n";
    let c = Config::from_toml(&own, Path::new("/")).unwrap();
    let tables = c.tables();
    let agency = tables
        .agency(&samverka_certs::OrgNumber::parse("2021999020").unwrap())
        .unwrap();
    assert_eq!(
        (agency.rate_per_second, agency.burst),
        (Some(5.0), Some(10.0))
    );
    assert_eq!((c.limits.rate_per_second, c.limits.burst), (100.0, 2000.0));
    // Refused at its agency's line.
    let e = error_for(&own.replace("burst = 10", "burst = 0"));
    assert_eq!((e.line, e.key.as_str()), (Some(12), "agencies[0]"), "{e}");
    // A rate can only be set on a listed agency: there is no other place
    // for one.
    let e = error_for(&format!(
        "{GOOD}\n[[limits.agency]]\norg_number = \"2021999038\"\nrate_per_second = 1\n"
    ));
    assert!(e.reason.contains("unknown field"), "{e}");
}

#[test]
fn malformed_record_types_and_addresses_are_errors() {
    let e = error_for(&GOOD.replace("[\"employment.period\"]", "[\"Employment Period\"]"));
    assert!(e.reason.contains("invalid record type"), "{e}");
    let e = error_for(&GOOD.replace("\"127.0.0.1:50062\"", "\"127.0.0.1\""));
    assert_eq!(e.key, "adapters[0].address");
    let e = error_for(&GOOD.replace("address = \"127.0.0.1:8443\"", "address = \"localhost\""));
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn record_type_names() {
    assert!(is_record_type_name("education.course_result"));
    assert!(is_record_type_name("competence.validated"));
    assert!(!is_record_type_name("education"));
    assert!(!is_record_type_name("education."));
    assert!(!is_record_type_name("Education.degree"));
    assert!(!is_record_type_name("education.degree; drop"));
}

#[test]
fn a_postgresql_url_selects_the_postgresql_store() {
    let c = Config::from_toml(
        &GOOD.replace(
            "store = \"samverka.db\"",
            "store = \"postgresql://samverka@db.internal/samverka\"",
        ),
        Path::new("/srv"),
    )
    .unwrap();
    assert_eq!(
        c.gateway.store,
        StoreLocation::Postgres("postgresql://samverka@db.internal/samverka".into())
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the file says, parsing answers: a configuration or an
        /// error naming a line of the file (or none).
        #[test]
        fn no_text_makes_parsing_panic(text in "\\PC{0,400}") {
            if let Err(e) = Config::from_toml(&text, Path::new("/etc/samverka"))
                && let Some(line) = e.line
            {
                prop_assert!(line >= 1 && line <= text.matches('\n').count() + 1);
            }
        }

        /// The good configuration with one line replaced by something else
        /// is accepted or refused, never a panic, and a refusal names the
        /// line or a key.
        #[test]
        fn a_changed_line_is_accepted_or_named(line in 0usize..40, replacement in "[ -~]{0,60}") {
            let mut lines: Vec<&str> = GOOD.lines().collect();
            let i = line % lines.len();
            lines[i] = &replacement;
            let text = lines.join("\n");
            if let Err(e) = Config::from_toml(&text, Path::new("/etc/samverka")) {
                prop_assert!(e.line.is_some() || !e.key.is_empty(), "{e}");
            }
        }
    }
}
