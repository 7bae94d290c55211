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
//! The Python registrar example is tried in tests/python_registrar.rs.
//!
//! Skipped, with the reason printed, when python3 with grpcio,
//! grpcio-tools and jwcrypto, or node and npm, are not installed
//! (`.ci/run` installs them); `PYTHON=/path/to/python` picks another
//! Python (a venv's).

mod support;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use samverka::cli::demo::{DEMO_PURPOSE, OTHER_SUBJECT, client_address};
use support::clients::*;
use support::*;

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
    let python = match python_with(&["grpc", "grpc_tools"], "grpcio and grpcio-tools") {
        Ok(python) => python,
        Err(skipped) => {
            eprintln!("{skipped}");
            return;
        }
    };
    let stubs = python_stubs(&python).await;
    let net = start().await;
    grant_demo_consent(&net).await;
    let client = Client {
        name: "python",
        program: python,
        leading: vec![python_examples().join("get_records.py").into()],
        env: vec![("PYTHONPATH", stubs.path().into())],
    };
    exercise(&net, &client).await;
}

/// On a Python older than 3.11 (no `tomllib`) each script says which
/// release it needs instead of failing on an import.
#[test]
fn the_python_client_names_the_release_it_needs() {
    let python = python();
    if !runs(&python, &["-c", "pass"]) {
        eprintln!("SKIPPED: {} is not installed", python.to_string_lossy());
        return;
    }
    for name in ["get_records.py", "consents.py"] {
        let script = python_examples().join(name);
        let out = Command::new(&python)
            .arg("-c")
            .arg(format!(
                "import runpy, sys\nsys.version_info = (3, 10, 14, 'final', 0)\nsys.argv = [{name:?}]\nrunpy.run_path({:?}, run_name='__main__')",
                script.display().to_string()
            ))
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}\n{stderr}");
        assert!(
            stderr.starts_with(&format!("{name}: needs Python 3.11 or newer"))
                && stderr.contains("this is Python 3.10"),
            "{stderr}"
        );
        assert!(!stderr.contains("Traceback"), "{stderr}");
    }
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
