//! `samverka records get` as a process against the demo network: with
//! `--demo` it reads the demo person with the demo's agency, purpose and
//! record types; `--json` is the answer as JSON; a read without consent is
//! refused with its reason and exit code 1.

mod support;

use std::process::Command;

use samverka::cli::demo::{DEMO_SUBJECT, OTHER_SUBJECT};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

async fn records_get(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["records", "get"])
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_get_reads_the_demo_person() {
    let net = start().await;
    grant_demo_consent(&net).await;
    let demo = net.config_path.display().to_string();

    let out = records_get(vec!["--demo".into(), demo.clone(), "--json".into()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let records = answer["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{answer:#}");
    for r in records {
        assert_eq!(r["subject_id"], DEMO_SUBJECT, "{r:#}");
    }
    assert!(
        records
            .iter()
            .any(|r| r["record_type"] == "employment.period"
                && r["employment_period"]["employer_org_number"].is_string()),
        "{answer:#}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["record_type"] == "education.course_result"
                && r["course_result"]["grading_scale"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("GRADING_SCALE_"))),
        "{answer:#}"
    );
    let outcomes = answer["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2, "{answer:#}");
    assert!(outcomes.iter().all(|o| o["status"] == "OK"), "{answer:#}");
    assert!(answer["audit_id"].as_str().is_some_and(|a| !a.is_empty()));

    // The same with the configuration and the PKI's agency name, as text.
    let out = records_get(vec![
        "--config".into(),
        demo.clone(),
        "--agency".into(),
        "reader".into(),
        "--subject".into(),
        DEMO_SUBJECT.into(),
        "--purpose".into(),
        "study_guidance".into(),
        "--types".into(),
        "employment.period".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("employment (2021999053): OK"), "{stdout}");
    assert!(stdout.contains("employment.period"), "{stdout}");

    // Without consent: refused, with the reason, exit 1.
    let out = records_get(vec![
        "--demo".into(),
        demo,
        "--subject".into(),
        OTHER_SUBJECT.into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CONSENT_MISSING"), "{stderr}");
    assert!(out.stdout.is_empty());
}
