//! End to end: the Python registrar example (`docs/clients/python/
//! consents.py`, with jwcrypto) grants, lists and revokes the demo
//! person's consent with a fresh person assertion per call, while Rust
//! checks that the reader may read in between and is refused once it is
//! revoked; an assertion sent with other terms, or twice, is refused; and
//! its terms text equals the gateway's (serde_json's) for every control
//! character and non-ASCII text, as the grant's `evidence_ref` carries
//! some end to end. Skipped, with the reason printed, when python3 with
//! grpcio, grpcio-tools and jwcrypto is not installed (`.ci/run` installs
//! them); `PYTHON=/path/to/python` picks another Python (a venv's).

mod support;

use std::ffi::OsString;
use std::process::Command;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, READER_AGENCY, REGISTRAR_AGENCY};
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::{
    GetConsentRequest, GrantConsentRequest, ListConsentsRequest, RevokeConsentRequest, consent,
};
use support::clients::*;
use support::*;

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
    // carries as UTF-8: the gateway's text must match. (Control characters
    // are refused in stored text, FIELD_INVALID; the terms text is
    // compared for them below.)
    let evidence = "Ärende ÅÄÖ é ✓ flik";
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
    assert_eq!(after(&stdout, "evidence_ref"), "\"Ärende ÅÄÖ é ✓ flik\"");

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
        states: vec![
            consent::Status::Pending as i32,
            consent::Status::Active as i32,
        ],
    };
    let approve = samverka_proto::v1::ApproveConsentRequest {
        consent_id: awkward.clone(),
        record_types: vec![awkward.clone()],
        valid_until: Some(prost_types::Timestamp {
            seconds: 4102444800,
            nanos: 5,
        }),
        ..Default::default()
    };
    let reject = samverka_proto::v1::RejectConsentRequest {
        consent_id: awkward.clone(),
        reason: awkward.clone(),
        ..Default::default()
    };
    (
        awkward,
        vec![
            ("grant", grant.terms_text()),
            ("revoke", revoke.terms_text()),
            ("get", get.terms_text()),
            ("list", list.terms_text()),
            ("approve", approve.terms_text()),
            ("reject", reject.terms_text()),
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
    consent_pb2.ListConsentsRequest(subject_id=awkward, states=[4, 1]),
    consent_pb2.ApproveConsentRequest(
        consent_id=awkward,
        record_types=[awkward],
        valid_until=timestamp_pb2.Timestamp(seconds=4102444800, nanos=5),
    ),
    consent_pb2.RejectConsentRequest(consent_id=awkward, reason=awkward),
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
