use super::*;

fn consent(id: &str, purpose: &str, types: &[&str]) -> StoredConsent {
    StoredConsent {
        consent_id: id.into(),
        subject_id: "199003142388".into(),
        grantee_agency: "2021999020".into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: purpose.into(),
        source_agencies: vec![],
        valid_from_ms: 1_000,
        valid_until_ms: 2_000,
        registrar_agency: "2021999038".into(),
        evidence_ref: String::new(),
        request_id: id.into(),
        granted_at_ms: 1_000,
        revoked_at_ms: None,
        revocation_reason: None,
        revoked_by: None,
        ..Default::default()
    }
}

fn types(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

fn reason(r: Result<ConsentPermit, GatewayError>) -> Reason {
    r.unwrap_err().reason
}

#[test]
fn a_consent_in_force_covering_everything_allows() {
    let c = [consent(
        "c1",
        "study_guidance",
        &["education.degree", "employment.period"],
    )];
    let p = decide(
        &c,
        "study_guidance",
        &types(&["employment.period"]),
        &[],
        1_500,
    )
    .unwrap();
    assert_eq!(p.consent_id(), "c1");
}

#[test]
fn validity_is_half_open() {
    let c = [consent("c1", "study_guidance", &["employment.period"])];
    let t = types(&["employment.period"]);
    assert!(decide(&c, "study_guidance", &t, &[], 1_000).is_ok());
    assert_eq!(
        reason(decide(&c, "study_guidance", &t, &[], 999)),
        Reason::ConsentExpired
    );
    assert_eq!(
        reason(decide(&c, "study_guidance", &t, &[], 2_000)),
        Reason::ConsentExpired
    );
}

#[test]
fn refusals_say_why() {
    let t = types(&["employment.period"]);
    assert_eq!(
        reason(decide(&[], "study_guidance", &t, &[], 1_500)),
        Reason::ConsentMissing
    );

    let mut revoked = consent("c1", "study_guidance", &["employment.period"]);
    revoked.revoked_at_ms = Some(1_200);
    assert_eq!(
        reason(decide(&[revoked.clone()], "study_guidance", &t, &[], 1_500)),
        Reason::ConsentRevoked
    );

    let other = consent("c2", "job_matching", &["employment.period"]);
    assert_eq!(
        reason(decide(
            std::slice::from_ref(&other),
            "study_guidance",
            &t,
            &[],
            1_500
        )),
        Reason::PurposeMismatch
    );

    // Too few record types is a missing consent, not a mismatch.
    let narrow = consent("c3", "study_guidance", &["education.degree"]);
    let both = types(&["education.degree", "employment.period"]);
    assert_eq!(
        reason(decide(&[narrow], "study_guidance", &both, &[], 1_500)),
        Reason::ConsentMissing
    );

    // A newer consent in force wins over an older revoked one.
    let newer = consent("c4", "study_guidance", &["employment.period"]);
    assert_eq!(
        decide(&[newer, revoked], "study_guidance", &t, &[], 1_500)
            .unwrap()
            .consent_id(),
        "c4"
    );
}

#[test]
fn source_restrictions_are_respected() {
    let mut c = consent("c1", "study_guidance", &["employment.period"]);
    c.source_agencies = vec!["2021999053".into()];
    let t = types(&["employment.period"]);
    let p = decide(&[c.clone()], "study_guidance", &t, &[], 1_500).unwrap();
    assert_eq!(p.source_agencies(), ["2021999053".to_string()]);
    assert!(
        decide(
            &[c.clone()],
            "study_guidance",
            &t,
            &["2021999053".into()],
            1_500
        )
        .is_ok()
    );
    assert_eq!(
        reason(decide(
            &[c],
            "study_guidance",
            &t,
            &["2021999046".into()],
            1_500
        )),
        Reason::ConsentMissing
    );
}
