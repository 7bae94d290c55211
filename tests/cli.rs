//! The command line around the commands: `--version` names the commit,
//! `completions` and `man` are made from the command's own definition,
//! and errors under `--json` are JSON.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

fn samverka(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SAMVERKA_CONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What git says in this checkout, or `None` without git or a checkout.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_owned())
}

#[test]
fn the_version_names_the_commit_and_its_date() {
    let out = samverka(&["--version"]);
    assert!(out.status.success());
    let version = text(&out.stdout);
    let rest = version
        .trim()
        .strip_prefix(&format!("samverka {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    if git(&["rev-parse", "--git-dir"]).is_none() {
        assert_eq!(rest, "unknown", "no git checkout here");
        return;
    }
    // The commit (HEAD when built; a commit made since would rebuild).
    let (hash, date) = rest.split_once(' ').unwrap_or_else(|| panic!("{version}"));
    assert!(
        hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{version}"
    );
    assert_eq!(
        git(&["log", "-1", "--format=%cs", hash]).as_deref(),
        Some(date),
        "{version}: the commit's date"
    );
}

#[test]
fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = samverka(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["samverka", "check-config", "completions", "verify-receipt"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    let bash = text(&samverka(&["completions", "bash"]).stdout);
    assert!(bash.contains("complete -F _samverka"), "{bash}");
    for command in [
        "serve", "consent", "audit", "passport", "certs", "man", "demo",
    ] {
        assert!(bash.contains(command), "{command}");
    }
    let out = samverka(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let out = samverka(&["man", man.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "samverka.1",
        "samverka-serve.1",
        "samverka-check-config.1",
        "samverka-completions.1",
        "samverka-man.1",
        "samverka-consent.1",
        "samverka-consent-grant.1",
        "samverka-audit-verify.1",
        "samverka-certs-issue.1",
        "samverka-demo.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} not in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
    assert!(
        text(&out.stdout).contains(&format!("{} manual pages", pages.len())),
        "{}",
        text(&out.stdout)
    );
    for page in &pages {
        let roff = std::fs::read_to_string(man.join(page)).unwrap();
        let name = page.strip_suffix(".1").unwrap();
        assert!(
            roff.lines()
                .any(|l| l.starts_with(&format!(".TH {name} 1 "))),
            "{page}: no .TH header"
        );
    }
    let serve = std::fs::read_to_string(man.join("samverka-serve.1")).unwrap();
    assert!(serve.contains("SAMVERKA_CONFIG"), "{serve}");
    read_with_man(&man.join("samverka.1"));
}

/// `man -l` renders the page, where man is installed.
fn read_with_man(page: &Path) {
    let Ok(out) = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
    else {
        eprintln!("no man here: only the roff headers were checked");
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("SYNOPSIS") || shown.contains("S\u{8}SY"),
        "{shown}"
    );
    assert!(shown.contains("check-config"), "{shown}");
}

#[test]
fn every_config_option_reads_samverka_config() {
    for args in [
        &["serve", "--help"][..],
        &["check-config", "--help"],
        &["audit", "prune", "--help"],
    ] {
        let help = text(&samverka(args).stdout);
        assert!(help.contains("[env: SAMVERKA_CONFIG"), "{args:?}: {help}");
    }
}

/// Checks that `out` failed with exit `code` and said so as one JSON
/// object on stderr, stdout empty, and returns its message.
fn json_error(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let error: serde_json::Value = serde_json::from_str(&stderr).unwrap();
    assert_eq!(error["exit_code"], code, "{stderr}");
    error["error"].as_str().unwrap().to_owned()
}

#[test]
fn errors_under_json_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jws");
    let missing = missing.to_str().unwrap();

    let out = samverka(&["passport", "verify", missing, "--cert", missing, "--json"]);
    let message = json_error(&out, 64);
    assert!(message.contains("missing.jws"), "{message}");
    // The same error without --json is text.
    let out = samverka(&["passport", "verify", missing, "--cert", missing]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).starts_with("samverka passport: "),
        "{}",
        text(&out.stderr)
    );

    // --json of a flattened group of options, one level further down.
    let demo = dir.path().join("demo.toml");
    let login = dir.path().join("login.jwt");
    let out = samverka(&[
        "consent",
        "get",
        "c-1",
        "--demo",
        demo.to_str().unwrap(),
        "--person-token",
        login.to_str().unwrap(),
        "--json",
    ]);
    let message = json_error(&out, 64);
    assert!(message.contains("demo.toml"), "{message}");

    // A verification that fails is exit 1, in JSON too.
    std::fs::write(dir.path().join("bad.jws"), "not.a.jws").unwrap();
    let certs = dir.path().join("certs");
    assert!(
        samverka(&["certs", "init", "--out", certs.to_str().unwrap()])
            .status
            .success()
    );
    let bad = dir.path().join("bad.jws");
    let cert = certs.join("gateway.pem");
    let out = samverka(&[
        "consent",
        "verify-receipt",
        bad.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--json",
    ]);
    json_error(&out, 1);
}

#[test]
fn audit_reads_samverka_config_only_without_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("from-env.toml");
    let store = dir.path().join("missing.db");
    let audit = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("SAMVERKA_CONFIG", &config)
            .output()
            .unwrap()
    };
    let out = audit(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("from-env.toml"),
        "{}",
        text(&out.stderr)
    );
    // An explicit --store is used, and does not conflict with the variable.
    let out = audit(&["audit", "verify", "--store", store.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("missing.db: no such store"), "{stderr}");
    assert!(!stderr.contains("from-env"), "{stderr}");
}
