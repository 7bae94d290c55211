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
//! The Python registrar example (`consents.py`, with jwcrypto) grants,
//! lists and revokes the demo person's consent with a fresh person
//! assertion per call, while Rust checks that the reader may read in
//! between and is refused once it is revoked; an assertion sent with
//! other terms, or twice, is refused; and its terms text equals the
//! gateway's (serde_json's) for every control character and non-ASCII
//! text, as the grant's `evidence_ref` carries some end to end.
//!
//! Skipped, with the reason printed, when python3 with grpcio,
//! grpcio-tools and jwcrypto, or node and npm, are not installed
//! (`.ci/run` installs them); `PYTHON=/path/to/python` picks another
//! Python (a venv's).

mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use samverka::cli::demo::{
    DEMO_PURPOSE, DEMO_SUBJECT, OTHER_SUBJECT, READER_AGENCY, REGISTRAR_AGENCY, client_address,
};
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::{
    GetConsentRequest, GrantConsentRequest, ListConsentsRequest, RevokeConsentRequest, consent,
};
use support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> OsString {
    std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into())
}

/// How to get a Python the examples run with, for a skip message.
const PYTHON_INSTALL: &str = "python3 -m venv /tmp/samverka-venv && /tmp/samverka-venv/bin/pip install grpcio grpcio-tools jwcrypto, then PYTHON=/tmp/samverka-venv/bin/python";

/// The Python, if it imports `modules`; else why the test is skipped.
fn python_with(modules: &[&str], names: &str) -> Result<OsString, String> {
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
async fn python_stubs(python: &OsString) -> tempfile::TempDir {
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

fn python_examples() -> PathBuf {
    repo().join("docs/clients/python")
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

/// What Python sends with one assertion: for other terms than it was
/// signed for, then twice. Each outcome under a `== what` line.
const TAMPER: &str = r#"
import sys
demo, token, here, reader = sys.argv[1:5]
sys.path.insert(0, here)
import consents
import grpc
from samverka.v1 import consent_pb2, consent_pb2_grpc

s = consents.settings([demo, "list", "--person-token", token])
registrar = consents.registrar_of(s)
with consents.channel(s) as channel:
    stub = consent_pb2_grpc.ConsentsStub(channel)

    def send(what, request):
        print("== " + what)
        try:
            answer = stub.List(request, timeout=s.timeout)
            print("allowed %d" % len(answer.consents))
        except grpc.RpcError as error:
            consents.print_refusal(error)

    # Signed for the person's consents with one agency, sent for all.
    signed = consent_pb2.ListConsentsRequest(subject_id=s.person, grantee_agency=reader)
    registrar.seal(consents.LIST, signed, s.person, s.id_token)
    sent = consent_pb2.ListConsentsRequest(
        subject_id=s.person, person_assertion=signed.person_assertion
    )
    send("other terms", sent)
    # A sound assertion, sent twice.
    once = consent_pb2.ListConsentsRequest(subject_id=s.person)
    registrar.seal(consents.LIST, once, s.person, s.id_token)
    send("first", once)
    send("again", once)
"#;

/// The lines of `stdout` under `== what`, up to the next such line.
fn section<'a>(stdout: &'a str, what: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .skip_while(|l| *l != format!("== {what}"))
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// A registrar's e-service in Python (docs/clients/python/consents.py):
/// the person's login (a development ID token) wrapped in a fresh person
/// assertion made with jwcrypto for each call. Grant, list and revoke go
/// through Python; Rust checks what they did: the consent exists as
/// granted, the reader may read until it is revoked, and then is refused
/// CONSENT_REVOKED. An assertion sent with other terms than it was signed
/// for, or a second time, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_registrar_grants_lists_and_revokes_with_person_assertions() {
    let python = match python_with(
        &["grpc", "grpc_tools", "jwcrypto"],
        "grpcio, grpcio-tools and jwcrypto",
    ) {
        Ok(python) => python,
        Err(skipped) => {
            eprintln!("{skipped}");
            return;
        }
    };
    let stubs = python_stubs(&python).await;
    let net = start().await;
    // The person logs in at the registrar's e-service.
    let token = net.dir.path().join("person.jwt");
    std::fs::write(&token, net.login("registrar", DEMO_SUBJECT).id_token()).unwrap();
    let demo = net.config_path.clone().into_os_string();
    let env = vec![
        ("PYTHONPATH", stubs.path().into()),
        // Arguments and output in UTF-8 whatever the locale.
        ("PYTHONUTF8", "1".into()),
        // No __pycache__ in docs/ when consents.py is imported.
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
    ];
    let client = Client {
        name: "consents.py",
        program: python.clone(),
        leading: vec![python_examples().join("consents.py").into()],
        env: env.clone(),
    };
    // consents.py DEMO COMMAND ARGS --person-token FILE
    let run = |args: &[&str]| {
        let mut all = vec![demo.clone()];
        all.extend(args.iter().map(OsString::from));
        all.extend(["--person-token".into(), token.clone().into_os_string()]);
        let client = &client;
        async move { client.run(&all).await }
    };

    // Grant, as demo.toml says (the reader, study guidance, the demo's
    // record types), with an evidence reference that the terms text
    // carries as UTF-8 and a tab escaped: the gateway's text must match.
    let evidence = "Ärende ÅÄÖ é ✓\tflik";
    let (code, stdout, stderr) = run(&["grant", "--days", "7", "--evidence-ref", evidence]).await;
    assert_eq!(code, Some(0), "grant:\n{stdout}\n{stderr}");
    assert_eq!(after(&stdout, "event"), "granted", "{stdout}");
    let id = after(&stdout, "consent");
    assert!(after(&stdout, "receipt").starts_with("eyJ"), "{stdout}");

    // Rust sees it as Python granted it.
    let got = consents(&net, "registrar")
        .await
        .get(sealed(
            &net,
            "registrar",
            GetConsentRequest {
                consent_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.subject_id, DEMO_SUBJECT);
    assert_eq!(got.grantee_agency, READER_AGENCY);
    assert_eq!(got.purpose, DEMO_PURPOSE);
    assert_eq!(got.record_types, samverka::cli::demo::DEMO_RECORD_TYPES);
    assert_eq!(got.registrar_agency, REGISTRAR_AGENCY);
    assert_eq!(got.evidence_ref, evidence);
    assert_eq!(got.status, consent::Status::Active as i32);
    let lifetime = got.valid_until.unwrap().seconds - got.valid_from.unwrap().seconds;
    assert!(
        (7 * 86_400 - 5..=7 * 86_400 + 5).contains(&lifetime),
        "{lifetime}"
    );
    // And the reader may read.
    let mut reader = exchange(&net, "reader").await;
    let records = reader.get_records(demo_read()).await.unwrap().into_inner();
    assert!(!records.records.is_empty());

    // Listed through Python.
    let (code, stdout, stderr) = run(&["list"]).await;
    assert_eq!(code, Some(0), "list:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("1 consent(s) for {DEMO_SUBJECT}")),
        "{stdout}"
    );
    assert_eq!(after(&stdout, "consent"), id);
    assert_eq!(after(&stdout, "status"), "ACTIVE");
    assert_eq!(after(&stdout, "evidence_ref"), "\"Ärende ÅÄÖ é ✓\\tflik\"");

    // Revoked through Python: the reader is refused.
    let (code, stdout, stderr) = run(&["revoke", &id, "--reason", "withdrawn by the person"]).await;
    assert_eq!(code, Some(0), "revoke:\n{stdout}\n{stderr}");
    assert_eq!(after(&stdout, "event"), "revoked", "{stdout}");
    assert_eq!(after(&stdout, "status"), "REVOKED", "{stdout}");
    assert_eq!(after(&stdout, "revoked_by"), REGISTRAR_AGENCY, "{stdout}");
    let refused = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&refused), "CONSENT_REVOKED");

    // A refusal decoded: a registrar may not grant itself a read.
    let (code, stdout, _) = run(&["grant", "--grantee", REGISTRAR_AGENCY]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("refused: PERMISSION_DENIED"), "{stdout}");
    assert!(
        stdout.contains("reason SELF_GRANT (domain samverka)"),
        "{stdout}"
    );

    // Other terms than signed, then one assertion twice.
    let mut tamper = Command::new(&python);
    tamper
        .arg("-c")
        .arg(TAMPER)
        .arg(&net.config_path)
        .arg(&token)
        .arg(python_examples())
        .arg(READER_AGENCY)
        .envs(env.iter().map(|(k, v)| (*k, v)));
    let out = output(tamper).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let other = section(&stdout, "other terms");
    assert!(
        other.contains(&"  reason PERSON_ASSERTION_INVALID (domain samverka)"),
        "{stdout}"
    );
    assert!(
        other.iter().any(|l| l.contains("for other terms")),
        "{stdout}"
    );
    assert_eq!(section(&stdout, "first"), ["allowed 1"], "{stdout}");
    assert!(
        section(&stdout, "again").contains(&"  reason PERSON_ASSERTION_REUSED (domain samverka)"),
        "{stdout}"
    );
}

/// Requests whose strings hold every ASCII control character, DEL, the
/// Unicode line separators, a BOM, combining and astral characters and
/// JSON's specials, as Rust builds them.
fn awkward_requests() -> (String, Vec<(&'static str, String)>) {
    let awkward: String = (0u32..0x20).filter_map(char::from_u32).collect::<String>()
        + "\u{7f}\u{85}\u{a0}\u{2028}\u{2029}\u{feff}Ärende ÅÄÖ é ✓ e\u{301} 😀 \"\\/<>&'";
    let grant = GrantConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: awkward.clone(),
        record_types: vec!["b".into(), awkward.clone(), "a".into()],
        purpose: awkward.clone(),
        source_agencies: vec![awkward.clone()],
        valid_from: None,
        valid_until: Some(prost_types::Timestamp {
            seconds: 4_102_444_800,
            nanos: 999_999_999,
        }),
        evidence_ref: awkward.clone(),
        request_id: awkward.clone(),
        person_assertion: "not part of the terms".into(),
    };
    let revoke = RevokeConsentRequest {
        consent_id: awkward.clone(),
        reason: awkward.clone(),
        person_assertion: String::new(),
    };
    let get = GetConsentRequest {
        consent_id: awkward.clone(),
        person_assertion: String::new(),
    };
    let list = ListConsentsRequest {
        subject_id: awkward.clone(),
        grantee_agency: String::new(),
        person_assertion: String::new(),
    };
    (
        awkward,
        vec![
            ("grant", grant.terms_text()),
            ("revoke", revoke.terms_text()),
            ("get", get.terms_text()),
            ("list", list.terms_text()),
        ],
    )
}

/// The same requests built in Python by consents.py's `terms_text`:
/// `awkward` (as JSON on the command line, which takes no NUL), one
/// terms text per line as UTF-8.
const PYTHON_TERMS: &str = r#"
import json, sys
awkward, here = json.loads(sys.argv[1]), sys.argv[2]
sys.path.insert(0, here)
import consents
from google.protobuf import timestamp_pb2
from samverka.v1 import consent_pb2

grant = consent_pb2.GrantConsentRequest(
    subject_id="199003142388",
    grantee_agency=awkward,
    record_types=["b", awkward, "a"],
    purpose=awkward,
    source_agencies=[awkward],
    valid_until=timestamp_pb2.Timestamp(seconds=4102444800, nanos=999999999),
    evidence_ref=awkward,
    request_id=awkward,
    person_assertion="not part of the terms",
)
requests = [
    grant,
    consent_pb2.RevokeConsentRequest(consent_id=awkward, reason=awkward),
    consent_pb2.GetConsentRequest(consent_id=awkward),
    consent_pb2.ListConsentsRequest(subject_id=awkward),
]
for r in requests:
    sys.stdout.buffer.write(consents.terms_text(consents.terms(r)).encode("utf-8") + b"\n")
"#;

/// Python's terms text (json.dumps, sort_keys, compact separators,
/// ensure_ascii=False) is byte for byte the gateway's (serde_json's), for
/// every control character and non-ASCII text: what the docs promise any
/// other implementation.
#[tokio::test]
async fn python_and_the_gateway_agree_on_the_terms_text() {
    let python = match python_with(
        &["grpc", "grpc_tools", "jwcrypto"],
        "grpcio, grpcio-tools and jwcrypto",
    ) {
        Ok(python) => python,
        Err(skipped) => {
            eprintln!("{skipped}");
            return;
        }
    };
    let stubs = python_stubs(&python).await;
    let (awkward, expected) = awkward_requests();
    let mut command = Command::new(&python);
    command
        .arg("-c")
        .arg(PYTHON_TERMS)
        .arg(serde_json::to_string(&awkward).unwrap())
        .arg(python_examples())
        .env("PYTHONPATH", stubs.path())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = output(command).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let got: Vec<&str> = stdout.split('\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(got.len(), expected.len(), "{stdout}");
    for ((what, rust), python) in expected.iter().zip(got) {
        assert_eq!(python, rust, "{what}");
    }
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
