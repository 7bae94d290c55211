//! "What I can" in a real browser (headless Chromium through chromedriver,
//! skipped with a printed reason when it is not installed; .ci/run
//! installs it) against `samverka demo --serve`: the person declares a
//! merit, a bad one is refused in plain words, the passport shows it as
//! self-declared beside the kind of every other merit, and withdrawing it
//! takes it out of the next passport. A form without its CSRF token
//! changes nothing.

mod support;

use fantoccini::{Client, Locator};
use samverka::cli::demo::DEMO_SUBJECT;
use support::browser::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_declares_a_merit_sees_it_as_their_own_and_withdraws_it() {
    let Some(driver_bin) = chromedriver() else {
        eprintln!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver; .ci/run does)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_demo, portal, _log) = start_demo(dir.path());
    let (_driver, webdriver) = start_chromedriver(&driver_bin);
    let c = browser(&webdriver).await;
    let journey = tokio::spawn({
        let (c, portal) = (c.clone(), portal.clone());
        async move { journey(&c, &portal).await }
    })
    .await;
    let _ = c.close().await;
    journey.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

async fn fill(c: &Client, css: &str, value: &str) {
    find(c, css).await.send_keys(value).await.unwrap();
}

/// Sets a date field (typing into one depends on the browser's locale).
async fn set_date(c: &Client, id: &str, day: &str) {
    c.execute(
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![id.into(), day.into()],
    )
    .await
    .unwrap();
}

async fn passport_rows(c: &Client, portal: &str) -> Vec<String> {
    c.goto(&format!("{portal}/passport")).await.unwrap();
    submit(c, "#fetch-passport").await;
    let mut rows = Vec::new();
    for row in c
        .find_all(Locator::Css("table.merits tbody tr"))
        .await
        .unwrap()
    {
        rows.push(row.text().await.unwrap());
    }
    rows
}

async fn journey(c: &Client, portal: &str) {
    log_in(c, portal, DEMO_SUBJECT).await;
    let cookie = session_cookie(c).await;
    c.goto(&format!("{portal}/merits")).await.unwrap();
    assert_accessible(c).await;
    assert!(
        text(c, "#merits-unattested")
            .await
            .contains("never presents it as attested")
    );
    // The demo person declared one merit in the demo already.
    let before = text(c, "#declared-merits").await;
    assert!(before.contains("Kassör i idrottsförening"), "{before}");
    assert!(!before.contains("Föreningskassör"), "{before}");

    // A skill that is neither ESCO nor JobTech: refused, in plain words,
    // and nothing kept.
    fill(c, "#merit-title", "Föreningskassör").await;
    fill(c, "#merit-skills", "https://example.org/not-a-skill").await;
    submit(c, "#declare").await;
    let refused = text(c, "main").await;
    assert!(refused.contains("FIELD_INVALID"), "{refused}");
    assert!(refused.contains("ESCO skill URIs"), "{refused}");

    c.goto(&format!("{portal}/merits")).await.unwrap();
    assert!(
        !text(c, "#declared-merits")
            .await
            .contains("Föreningskassör")
    );
    fill(c, "#merit-title", "Föreningskassör").await;
    fill(
        c,
        "#merit-description",
        "Kept the accounts of a sports club.",
    )
    .await;
    set_date(c, "merit-start", "2019-01-01").await;
    set_date(c, "merit-end", "2023-12-31").await;
    fill(
        c,
        "#merit-skills",
        "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000d001",
    )
    .await;
    submit(c, "#declare").await;
    let listed = text(c, "#declared-merits").await;
    assert!(listed.contains("Föreningskassör"), "{listed}");
    assert!(listed.contains("2019-01-01 – 2023-12-31"), "{listed}");

    // Without the form's token: refused, nothing withdrawn.
    let mine = c
        .find(Locator::XPath(
            "//table[@id='declared-merits']//tr[contains(., 'Föreningskassör')]//form",
        ))
        .await
        .unwrap();
    let action = mine.attr("action").await.unwrap().unwrap();
    let (status, _) = raw("POST", &format!("{portal}{action}"), &cookie, "csrf=forged").await;
    assert_eq!(status, 403);

    // The passport: every merit with its kind; the declared one as the
    // person's, attested by no one; the folk high school course as
    // non-formal, signed by its register.
    let rows = passport_rows(c, portal).await;
    let own = rows
        .iter()
        .find(|r| r.contains("Föreningskassör"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(own.contains("Self-declared"), "{own}");
    assert!(own.contains("declared by you, attested by no one"), "{own}");
    let course = rows
        .iter()
        .find(|r| r.contains("Ledarskap i ideell förening"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(course.contains("Non-formal learning"), "{course}");
    assert!(course.contains("signed by the register"), "{course}");
    assert!(
        rows.iter().any(|r| r.contains("Formal education")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.contains("Work experience")),
        "{rows:?}"
    );

    // Withdrawn in the browser: gone from the list and the next passport.
    c.goto(&format!("{portal}/merits")).await.unwrap();
    let old = find(c, "html").await;
    c.find(Locator::XPath(
        "//table[@id='declared-merits']//tr[contains(., 'Föreningskassör')]//button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    for _ in 0..100 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = text(c, "#declared-merits").await;
    assert!(!after.contains("Föreningskassör"), "{after}");
    assert!(after.contains("Kassör i idrottsförening"), "{after}");
    let rows = passport_rows(c, portal).await;
    assert!(
        rows.iter().all(|r| !r.contains("Föreningskassör")),
        "{rows:?}"
    );

    // In Swedish too.
    c.goto(&format!("{portal}/merits?lang=sv")).await.unwrap();
    assert!(text(c, "h1").await.contains("Det jag kan"));
}
