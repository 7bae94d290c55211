//! Running `samverka audit` as a process, for the tests of the audit
//! trail and of the command itself.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// Runs `samverka audit ARGS` and waits for it.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).arg("audit").args(args).output().unwrap()
}

/// Asserts success and `audit trail intact: ENTRIES entries` in what it
/// printed; returns that.
pub fn assert_intact(out: &Output, entries: u64) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("audit trail intact: {entries} entries")),
        "{stdout}"
    );
    stdout
}
