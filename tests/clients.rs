//! End to end: the client examples in `docs/clients/` as the README runs
//! them, against a real demo network (real mTLS, the demo's `demo.toml`):
//! the Python one (grpcio, stubs generated with grpcio-tools) and the
//! Node.js one (@grpc/grpc-js and @grpc/proto-loader, installed with
//! `npm ci` from its package-lock.json into a temporary copy). Each reads
//! the demo person's records with what demo.toml says, is refused a read
//! without consent and prints the decoded reason with the audit entry
//! that recorded it (checked against the trail), and, given the files and
//! the gateway on the command line instead, prints a `BadRequest` field
//! violation decoded. Each names the language release it needs when run
//! by an older one.
//!
//! Skipped, with the reason printed, when python3 with grpcio and
//! grpcio-tools, or node and npm, are not installed (`.ci/run` installs
//! them); `PYTHON=/path/to/python` picks another Python (a venv's).

mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use samverka::cli::demo::{DEMO_PURPOSE, OTHER_SUBJECT, client_address};
use support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> OsString {
    std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into())
}

/// Whether `program args` runs and exits 0.
fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Runs `command` off the async runtime (the gateway under test runs on
/// it) and returns its output.
async fn output(mut command: Command) -> Output {
    let what = format!("{command:?}");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One client example: a program and the arguments before its own.
struct Client {
    name: &'static str,
    program: OsString,
    leading: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
}

impl Client {
    async fn run(&self, args: &[OsString]) -> (Option<i32>, String, String) {
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
fn after(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
        .trim()
        .to_owned()
}

/// The audit entry `id` of the trail, which must exist.
async fn entry(net: &TestNet, id: &str) -> samverka_gateway::audit::AuditEntry {
    read_entries(&net.gateway.store)
        .await
        .into_iter()
        .find(|e| e.audit_id == id)
        .unwrap_or_else(|| panic!("no audit entry {id}"))
}

/// What both examples must do against `net`, whose reader agency holds the
/// demo consent.
async fn exercise(net: &TestNet, client: &Client) {
    let name = client.name;
    let demo = net.config_path.clone().into_os_string();

    // What demo.toml says: the demo person's records from both sources.
    let (code, stdout, stderr) = client.run(std::slice::from_ref(&demo)).await;
    assert_eq!(code, Some(0), "{name}:\n{stdout}\n{stderr}");
    for expected in [
        "DA1001",
        "Programmering grundkurs",
        "Exempelbolaget AB",
        "higher-education OK 3",
        "employment OK 2",
    ] {
        assert!(stdout.contains(expected), "{name}: {expected}:\n{stdout}");
    }
    let allowed = entry(net, &after(&stdout, "audit entry")).await;
    assert_eq!(allowed.decision, "allowed", "{name}");
    // It called the gateway by a name its certificate holds, not by an IP
    // address (Node.js warns of that as SNI, per connection).
    assert!(!stderr.contains("IP address"), "{name}:\n{stderr}");

    // A person without consent: refused, the reason and the audit entry
    // decoded from the status details.
    let (code, stdout, stderr) = client
        .run(&[demo.clone(), "--subject".into(), OTHER_SUBJECT.into()])
        .await;
    assert_eq!(code, Some(1), "{name}:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("refused: PERMISSION_DENIED"),
        "{name}:\n{stdout}"
    );
    assert!(
        stdout.contains("reason CONSENT_MISSING (domain samverka)"),
        "{name}:\n{stdout}"
    );
    let denied = entry(net, &after(&stdout, "audit_id")).await;
    assert_eq!(
        (denied.decision.as_str(), denied.reason.as_str()),
        ("denied", "CONSENT_MISSING"),
        "{name}"
    );
    assert_eq!(denied.subject_id, OTHER_SUBJECT, "{name}");

    // Everything on the command line, no demo.toml: a malformed person is
    // refused with the field named.
    let (_, cert, key) = net
        .pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == "reader")
        .unwrap()
        .clone();
    let args: Vec<OsString> = vec![
        "--gateway".into(),
        client_address(net.gateway_address).into(),
        "--ca".into(),
        net.pki.ca_cert.clone().into(),
        "--cert".into(),
        cert.into(),
        "--key".into(),
        key.into(),
        "--subject".into(),
        "1985".into(),
        "--purpose".into(),
        DEMO_PURPOSE.into(),
        "--types".into(),
        "employment.period".into(),
    ];
    let (code, stdout, stderr) = client.run(&args).await;
    assert_eq!(code, Some(1), "{name}:\n{stdout}\n{stderr}");
    for expected in [
        "refused: INVALID_ARGUMENT",
        "reason SUBJECT_ID_INVALID (domain samverka)",
        "field subject_id: ",
    ] {
        assert!(stdout.contains(expected), "{name}: {expected}:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_reads_and_decodes_a_refusal() {
    let python = python();
    if !runs(&python, &["-c", "import grpc, grpc_tools"]) {
        eprintln!(
            "SKIPPED: {} with grpcio and grpcio-tools is not installed (python3 -m venv /tmp/samverka-venv && /tmp/samverka-venv/bin/pip install grpcio grpcio-tools, then PYTHON=/tmp/samverka-venv/bin/python)",
            python.to_string_lossy()
        );
        return;
    }
    // The stubs, generated as the README says.
    let stubs = tempfile::tempdir().unwrap();
    let mut protoc = Command::new(&python);
    protoc
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(repo().join("proto/proto"))
        .arg(format!("--python_out={}", stubs.path().display()))
        .arg(format!("--grpc_python_out={}", stubs.path().display()))
        .args([
            "samverka/v1/exchange.proto",
            "samverka/records/v1/records.proto",
            "google/rpc/status.proto",
            "google/rpc/error_details.proto",
        ]);
    let out = output(protoc).await;
    assert!(out.status.success(), "protoc: {:?}", text(&out));

    let net = start().await;
    grant_demo_consent(&net).await;
    let client = Client {
        name: "python",
        program: python,
        leading: vec![repo().join("docs/clients/python/get_records.py").into()],
        env: vec![("PYTHONPATH", stubs.path().into())],
    };
    exercise(&net, &client).await;
}

/// On a Python older than 3.11 (no `tomllib`) the script says which
/// release it needs instead of failing on an import.
#[test]
fn the_python_client_names_the_release_it_needs() {
    let python = python();
    if !runs(&python, &["-c", "pass"]) {
        eprintln!("SKIPPED: {} is not installed", python.to_string_lossy());
        return;
    }
    let script = repo().join("docs/clients/python/get_records.py");
    let out = Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import runpy, sys\nsys.version_info = (3, 10, 14, 'final', 0)\nsys.argv = ['get_records.py']\nrunpy.run_path({:?}, run_name='__main__')",
            script.display().to_string()
        ))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("needs Python 3.11 or newer") && stderr.contains("this is Python 3.10"),
        "{stderr}"
    );
    assert!(!stderr.contains("Traceback"), "{stderr}");
}

/// node and npm, or why not.
fn node() -> Result<(), String> {
    for tool in ["node", "npm"] {
        if !runs(tool, &["--version"]) {
            return Err(format!(
                "SKIPPED: {tool} is not installed (apt-get install nodejs npm)"
            ));
        }
    }
    Ok(())
}

fn node_example() -> PathBuf {
    repo().join("docs/clients/node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_client_reads_and_decodes_a_refusal() {
    if let Err(skipped) = node() {
        eprintln!("{skipped}");
        return;
    }
    // A copy of the example, its packages installed as the lock file
    // pins them.
    let copy = tempfile::tempdir().unwrap();
    for file in ["package.json", "package-lock.json", "get_records.js"] {
        std::fs::copy(node_example().join(file), copy.path().join(file)).unwrap();
    }
    let mut npm = Command::new("npm");
    npm.args([
        "ci",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        "--ignore-scripts",
    ])
    .current_dir(copy.path());
    let out = output(npm).await;
    assert!(out.status.success(), "npm ci: {:?}", text(&out));

    let net = start().await;
    grant_demo_consent(&net).await;
    let client = Client {
        name: "node",
        program: "node".into(),
        leading: vec![
            copy.path().join("get_records.js").into(),
            "--proto".into(),
            repo().join("proto/proto").into(),
        ],
        env: vec![],
    };
    exercise(&net, &client).await;
}

/// On a Node.js older than 18 the script says which release it needs
/// instead of failing on a missing API.
#[test]
fn the_node_client_names_the_release_it_needs() {
    if !runs("node", &["--version"]) {
        eprintln!("SKIPPED: node is not installed (apt-get install nodejs npm)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.js");
    std::fs::write(
        &old,
        "Object.defineProperty(process.versions, 'node', { value: '16.20.2' });\n",
    )
    .unwrap();
    let out = Command::new("node")
        .arg("--require")
        .arg(&old)
        .arg(node_example().join("get_records.js"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("needs Node.js 18 or newer; this is Node.js 16.20.2"),
        "{stderr}"
    );
}
