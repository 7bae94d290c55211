//! Running the client examples in `docs/clients/` (tests/clients.rs and
//! tests/python_registrar.rs): finding Python and Node, generating Python
//! stubs, running a program and reading what it printed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> OsString {
    std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into())
}

/// How to get a Python the examples run with, for a skip message.
pub const PYTHON_INSTALL: &str = "python3 -m venv /tmp/samverka-venv && /tmp/samverka-venv/bin/pip install grpcio grpcio-tools jwcrypto, then PYTHON=/tmp/samverka-venv/bin/python";

/// The Python, if it imports `modules`; else why the test is skipped.
pub fn python_with(modules: &[&str], names: &str) -> Result<OsString, String> {
    let python = python();
    if runs(&python, &["-c", &format!("import {}", modules.join(", "))]) {
        Ok(python)
    } else {
        Err(format!(
            "SKIPPED: {} with {names} is not installed ({PYTHON_INSTALL})",
            python.to_string_lossy()
        ))
    }
}

/// The Python stubs of the examples, generated as their docstrings say.
pub async fn python_stubs(python: &OsString) -> tempfile::TempDir {
    let stubs = tempfile::tempdir().unwrap();
    let mut protoc = Command::new(python);
    protoc
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(repo().join("proto/proto"))
        .arg(format!("--python_out={}", stubs.path().display()))
        .arg(format!("--grpc_python_out={}", stubs.path().display()))
        .args([
            "samverka/v1/exchange.proto",
            "samverka/v1/consent.proto",
            "samverka/records/v1/records.proto",
            "google/rpc/status.proto",
            "google/rpc/error_details.proto",
        ]);
    let out = output(protoc).await;
    assert!(out.status.success(), "protoc: {:?}", text(&out));
    stubs
}

pub fn python_examples() -> PathBuf {
    repo().join("docs/clients/python")
}

/// Whether `program args` runs and exits 0.
pub fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Runs `command` off the async runtime (the gateway under test runs on
/// it) and returns its output.
pub async fn output(mut command: Command) -> Output {
    let what = format!("{command:?}");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One client example: a program and the arguments before its own.
pub struct Client {
    pub name: &'static str,
    pub program: OsString,
    pub leading: Vec<OsString>,
    pub env: Vec<(&'static str, OsString)>,
}

impl Client {
    pub async fn run(&self, args: &[OsString]) -> (Option<i32>, String, String) {
        let mut command = Command::new(&self.program);
        command
            .args(&self.leading)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v)));
        let out = output(command).await;
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    }
}

/// The value after `label ` on the first line of `stdout` that starts with
/// it (after indentation).
pub fn after(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
        .trim()
        .to_owned()
}
