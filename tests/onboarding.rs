//! End to end, with the `samverka` command as operators and agencies run
//! it, against a running demo network and no restart: an agency makes its
//! key and request, the operator onboards it (registry and certificate in
//! one command), it reads; the operator offboards it, and it is refused,
//! on its open connection by the registry and on a new one by the
//! revocation list. `samverka admin` export, apply (dry run first),
//! allow, disallow, list and history, and a refusal's exit status.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::{consents, read_request, reason, sealed, start, strings};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");
const NEW_AGENCY: &str = "2021999707";

/// Runs `samverka ARGS`: its exit code, stdout and stderr.
async fn run(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN).args(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(a: &[&str], demo: &Path) -> Vec<String> {
    let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
    v.extend(["--demo".into(), demo.display().to_string()]);
    v
}

async fn ok(a: Vec<String>) -> String {
    let (code, out, err) = run(a.clone()).await;
    assert_eq!(code, 0, "samverka {a:?}: {out}{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_onboarded_from_its_request_reads_and_offboarded_is_refused() {
    let net = start().await;
    let demo = net.config_path.clone();
    let certs = net.net.dir.join("certs").display().to_string();
    let agency_dir = tempfile::tempdir().unwrap();
    let out_dir = agency_dir.path().display().to_string();

    // The agency: its key and request.
    let plain = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ok(plain(&[
        "certs",
        "request",
        "--out",
        &out_dir,
        "--name",
        "newagency",
        "--org",
        NEW_AGENCY,
        "--role",
        "agency",
    ]))
    .await;
    let csr = agency_dir.path().join("newagency.csr.pem");
    let key = agency_dir.path().join("newagency.key");
    assert!(csr.is_file() && key.is_file());

    // Unknown to the gateway until onboarded.
    let mut registrar = consents(&net, "registrar").await;
    let mut grant =
        support::grant_request(&net, "study_guidance", &["employment.period"], "onboard-1");
    grant.grantee_agency = NEW_AGENCY.into();
    let refused = registrar
        .grant(sealed(&net, "registrar", grant.clone()))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "AGENCY_UNKNOWN");

    // A dry run changes and issues nothing.
    let csr_arg = csr.display().to_string();
    let onboard = |dry: bool| {
        let mut a = vec![
            "admin",
            "onboard",
            "--csr",
            &csr_arg,
            "--org",
            NEW_AGENCY,
            "--ca-dir",
            &certs,
            "--name",
            "New agency",
            "--allow",
            "study_guidance=employment.period",
        ];
        if dry {
            a.push("--dry-run");
        }
        args(&a, &demo)
    };
    // The operator's word on who it is must match the request's, and an
    // agency already in the registry is not replaced unasked.
    let (code, _, err) = run(args(
        &[
            "admin",
            "onboard",
            "--csr",
            &csr_arg,
            "--org",
            "2021999038",
            "--ca-dir",
            &certs,
        ],
        &demo,
    ))
    .await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not --org 2021999038"), "{err}");
    let registrar_csr = agency_dir.path().join("registrar.csr.pem");
    ok(plain(&[
        "certs",
        "request",
        "--out",
        &out_dir,
        "--name",
        "registrar",
        "--org",
        samverka::cli::demo::REGISTRAR_AGENCY,
        "--role",
        "agency",
    ]))
    .await;
    let (code, _, err) = run(args(
        &[
            "admin",
            "onboard",
            "--csr",
            &registrar_csr.display().to_string(),
            "--org",
            samverka::cli::demo::REGISTRAR_AGENCY,
            "--ca-dir",
            &certs,
        ],
        &demo,
    ))
    .await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("already in the registry"), "{err}");
    // An agency's request onboarded as if it were an adapter's.
    let (code, _, err) = run(args(
        &[
            "admin",
            "onboard",
            "--csr",
            &csr_arg,
            "--org",
            NEW_AGENCY,
            "--address",
            "localhost:1",
            "--record-types",
            "employment.period",
        ],
        &demo,
    ))
    .await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("for adapters"), "{err}");
    assert!(
        !net.net.dir.join("certs/issued").exists(),
        "no certificate issued"
    );
    let dry = ok(onboard(true)).await;
    assert!(
        dry.contains(&format!(
            "request checked: agency certificate of {NEW_AGENCY}"
        )),
        "{dry}"
    );
    assert!(dry.contains(&format!("+ agencies {NEW_AGENCY}")), "{dry}");
    assert!(
        dry.contains(&format!("+ access_rules {NEW_AGENCY}/study_guidance")),
        "{dry}"
    );
    assert!(dry.contains("dry run"), "{dry}");
    assert!(!net.net.dir.join("certs/issued").exists());
    let done = ok(onboard(false)).await;
    let cert = done
        .lines()
        .find_map(|l| l.strip_prefix("certificate issued: "))
        .unwrap_or_else(|| panic!("{done}"))
        .to_owned();

    // It reads, with the key that never left it.
    registrar
        .grant(sealed(&net, "registrar", grant))
        .await
        .unwrap();
    let tls = AgencyTls::from_files(&net.pki.ca_cert, Path::new(&cert), &key).unwrap();
    let address = samverka::cli::demo::client_address(net.gateway_address);
    let mut reader = RecordExchangeClient::new(connect(&address, "localhost", &tls).await.unwrap());
    let read = || {
        read_request(
            samverka::cli::demo::DEMO_SUBJECT,
            &["employment.period"],
            "study_guidance",
        )
    };
    let answer = reader.get_records(read()).await.unwrap().into_inner();
    assert!(!answer.records.is_empty());

    // Offboarded: refused on its open connection at once, and a new
    // connection is refused once the gateway has read the new CRL.
    let gone = ok(args(
        &["admin", "offboard", NEW_AGENCY, "--ca-dir", &certs],
        &demo,
    ))
    .await;
    assert!(gone.contains(&format!("- agencies {NEW_AGENCY}")), "{gone}");
    assert!(gone.contains("1 certificate(s)"), "{gone}");
    let status = reader.get_records(read()).await.unwrap_err();
    assert_eq!(reason(&status), "ACCESS_RULE_MISSING");
    let mut refused_anew = false;
    for _ in 0..100 {
        let answered = match connect(&address, "localhost", &tls).await {
            Ok(channel) => RecordExchangeClient::new(channel)
                .get_records(read())
                .await
                .map_err(|s| s.code()),
            Err(_) => Err(Code::Unavailable),
        };
        if matches!(answered, Err(Code::Unavailable | Code::Unknown)) {
            refused_anew = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused_anew,
        "a new connection with the revoked certificate got in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_commands_export_apply_allow_disallow_list_and_history() {
    let net = start().await;
    let demo = net.config_path.clone();
    let exported = ok(args(&["admin", "export"], &demo)).await;
    assert!(
        exported.starts_with("# samverka registry version 1 "),
        "{exported}"
    );

    // Declaratively: the document without the job matching rule.
    let rule = "2021999020/job_matching";
    let doc: toml::Table = toml::from_str(&exported).unwrap();
    let mut doc = doc;
    doc.get_mut("access_rules")
        .and_then(toml::Value::as_array_mut)
        .unwrap()
        .retain(|r| r.get("id").and_then(toml::Value::as_str) != Some(rule));
    let file = net.net.dir.join("registry.toml");
    std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
    let file_arg = file.display().to_string();
    // Which version it was made from: export's first line, kept or not.
    let (code, _, err) = run(args(&["admin", "apply", &file_arg, "--dry-run"], &demo)).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--expected-version"), "{err}");
    std::fs::write(
        &file,
        format!(
            "{}\n{}",
            exported.lines().next().unwrap(),
            toml::to_string(&doc).unwrap()
        ),
    )
    .unwrap();
    let dry = ok(args(&["admin", "apply", &file_arg, "--dry-run"], &demo)).await;
    assert_eq!(
        dry,
        format!("- access_rules {rule}\ndry run: would make version 2 from 1 (nothing written)\n")
    );
    let applied = ok(args(&["admin", "apply", &file_arg, "--json"], &demo)).await;
    let applied: serde_json::Value = serde_json::from_str(&applied).unwrap();
    assert_eq!(applied["version"], 2);
    assert_eq!(applied["changes"][0]["action"], "removed");
    // Made from version 1, which is no longer the latest: refused.
    let (code, _, err) = run(args(&["admin", "apply", &file_arg], &demo)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("REGISTRY_VERSION_MISMATCH"), "{err}");
    let again = ok(args(
        &["admin", "apply", &file_arg, "--expected-version", "latest"],
        &demo,
    ))
    .await;
    assert!(again.contains("no change"), "{again}");

    // One change at a time.
    let allowed = ok(args(
        &[
            "admin",
            "allow",
            "--agency",
            "2021999020",
            "--purposes",
            "job_matching",
            "--record-types",
            "employment.period",
        ],
        &demo,
    ))
    .await;
    assert!(
        allowed.contains(&format!("+ access_rules {rule}")),
        "{allowed}"
    );
    let listed = ok(args(&["admin", "list", "access-rules", "--json"], &demo)).await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["version"], 3);
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&rule), "{ids:?}");
    ok(args(&["admin", "disallow", rule], &demo)).await;

    // A refusal: its reason, exit 1, nothing changed.
    let (code, out, err) = run(args(&["admin", "disallow", rule], &demo)).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("REGISTRY_ITEM_NOT_FOUND"), "{err}");
    let (code, _, err) = run(args(
        &[
            "admin",
            "allow",
            "--agency",
            "2021999020",
            "--purposes",
            "nope",
            "--record-types",
            "employment.period",
        ],
        &demo,
    ))
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("REGISTRY_INVALID"), "{err}");

    let history = ok(args(&["admin", "history", "--json"], &demo)).await;
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let versions: Vec<i64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3, 2, 1]);
    assert_eq!(history["versions"][3]["changed_by"], "seed");
    let _ = strings(&[]);
}
