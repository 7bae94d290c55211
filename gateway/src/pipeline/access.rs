//! Step 3 of a request: may this agency read these record types for this
//! purpose? Answered by the `[[access_rules]]` of the configuration.
//!
//! Deny by default: every requested record type must be covered by a rule
//! for the calling agency that names the stated purpose. Rules only add
//! permissions; there are no deny rules to order.

use samverka_certs::OrgNumber;

use crate::config::AccessRule;
use crate::error::{GatewayError, Reason};

/// Proof that the access rules allow the read. Only [`check`] makes one.
#[derive(Debug)]
pub struct AccessPermit(());

/// Checks the access rules for one read.
pub fn check(
    rules: &[AccessRule],
    agency: &OrgNumber,
    purpose: &str,
    record_types: &[String],
) -> Result<AccessPermit, GatewayError> {
    for (i, record_type) in record_types.iter().enumerate() {
        let covered = rules.iter().any(|r| {
            &r.agency == agency
                && r.purposes.iter().any(|p| p == purpose)
                && r.record_types.iter().any(|t| t == record_type)
        });
        if !covered {
            return Err(GatewayError {
                field: Some(format!("record_types[{i}]")),
                detail: Some(format!(
                    "{agency} has no rule for {record_type} / {purpose}"
                )),
                ..GatewayError::new(
                    Reason::AccessRuleMissing,
                    format!(
                        "no access rule lets this agency read {record_type} for purpose {purpose}"
                    ),
                )
            });
        }
    }
    Ok(AccessPermit(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgNumber {
        OrgNumber::parse(s).unwrap()
    }

    fn types(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_type_needs_a_rule_for_the_agency_and_purpose() {
        let rules = vec![
            AccessRule {
                id: "a".into(),
                agency: org("2021999020"),
                purposes: vec!["study_guidance".into()],
                record_types: types(&["education.degree", "employment.period"]),
            },
            AccessRule {
                id: "b".into(),
                agency: org("2021999020"),
                purposes: vec!["job_matching".into()],
                record_types: types(&["employment.period"]),
            },
        ];
        let a = org("2021999020");
        assert!(
            check(
                &rules,
                &a,
                "study_guidance",
                &types(&["education.degree", "employment.period"])
            )
            .is_ok()
        );
        assert!(check(&rules, &a, "job_matching", &types(&["employment.period"])).is_ok());
        let e = check(
            &rules,
            &a,
            "job_matching",
            &types(&["employment.period", "education.degree"]),
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::AccessRuleMissing);
        assert_eq!(e.field.as_deref(), Some("record_types[1]"));
        let e = check(
            &rules,
            &org("2021999061"),
            "study_guidance",
            &types(&["education.degree"]),
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::AccessRuleMissing);
        assert!(check(&[], &a, "study_guidance", &types(&["education.degree"])).is_err());
    }
}
