//! End to end: the `samverka` binary as a real process: the demo, the demo
//! left serving for other clients, config checking and the dev PKI.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_gateway::store::{Store, StoreLocation};
use samverka_proto::v1::GetRecordsRequest;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

#[test]
fn demo_runs_the_exchange_and_exits_0() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("source higher-education (2021999046): OK, 3 records"),
        "{stdout}"
    );
    assert!(
        stdout.contains("source employment (2021999053): OK, 2 records"),
        "{stdout}"
    );
    assert!(stdout.contains("Programmering grundkurs"), "{stdout}");
    assert!(
        stdout.contains("refused: PermissionDenied CONSENT_MISSING"),
        "{stdout}"
    );
    // It ends with the person's passport, from all three sources.
    let passport = stdout
        .split("Competence passport urn:uuid:")
        .nth(1)
        .unwrap_or_else(|| panic!("no passport printed:\n{stdout}"));
    for expected in [
        "person     sha256$",
        "The person's holder salt (not in the credential): ",
        "issued by  samverka demo operator (synthetic) (urn:samverka:agency:2021999012)",
        "education:",
        "Teknologie kandidatexamen",
        "employment:",
        "competence:",
        "competence (2021999087): OK, 2 records",
    ] {
        assert!(passport.contains(expected), "{expected}:\n{passport}");
    }
    assert!(!passport.contains("199003142388"), "the number is hashed");
}

fn string<'a>(t: &'a toml::Table, section: &str, key: &str) -> &'a str {
    t[section][key]
        .as_str()
        .unwrap_or_else(|| panic!("{section}.{key} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_keeps_running_for_other_clients_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--serve", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let serving = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("Serving until") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(serving, "the demo never said it was serving");

    // A client that knows nothing but demo.toml.
    let demo: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.path().join("demo.toml")).unwrap()).unwrap();
    for (section, key) in [
        ("gateway", "ca_cert"),
        ("gateway", "store"),
        ("gateway", "cert"),
        ("gateway", "client_cert"),
        ("gateway", "client_key"),
        ("agency", "cert"),
        ("agency", "key"),
        ("registrar", "cert"),
        ("registrar", "key"),
        ("registrar", "assertion_key"),
        ("registrar", "dev_idp_key"),
    ] {
        let p = Path::new(string(&demo, section, key));
        assert!(
            p.is_absolute() && p.exists(),
            "{section}.{key} = {}",
            p.display()
        );
    }
    assert_eq!(
        demo["adapters"].as_array().unwrap().len(),
        samverka::cli::demo::DEMO_SOURCES.len()
    );
    let tls = AgencyTls::from_files(
        Path::new(string(&demo, "gateway", "ca_cert")),
        Path::new(string(&demo, "agency", "cert")),
        Path::new(string(&demo, "agency", "key")),
    )
    .unwrap();
    let subject = &demo["subject"];
    let request = GetRecordsRequest {
        subject_id: subject["id"].as_str().unwrap().into(),
        record_types: subject["record_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        purpose: subject["purpose"].as_str().unwrap().into(),
        source_agencies: vec![],
        ..Default::default()
    };
    // The certificate is valid for 127.0.0.1 as well as localhost.
    let channel = connect(string(&demo, "gateway", "address"), "127.0.0.1", &tls)
        .await
        .unwrap();
    let mut client = RecordExchangeClient::new(channel);
    let answer = client.get_records(request).await.unwrap().into_inner();
    assert_eq!(answer.records.len(), 5);

    // SIGTERM while this client still holds its connection open: the demo
    // drains and exits 0 regardless.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    drop(client);

    // Before exiting, the gateway signed a checkpoint of its last entry
    // (the read above), so the whole trail is covered by a signature.
    let store = Store::open(&StoreLocation::Sqlite(
        string(&demo, "gateway", "store").into(),
    ))
    .await
    .unwrap();
    let head = store.audit_head().await.unwrap();
    let last = store.checkpoints().await.unwrap().pop().unwrap();
    assert!(head.seq > 0);
    assert_eq!((last.seq, last.hash), (head.seq, head.hash));
}

#[test]
fn a_demo_run_again_in_its_directory_keeps_a_verifiable_trail() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = Command::new(BIN)
            .args(["demo", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(dir.path().join("demo.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two runs, each with two grants, one allowed and one denied read, a
    // look at the person's own merits and a passport; the first seeded the
    // registry, put the signing key in the key set and declared the
    // person's merit, the second replaced the registry (its adapters
    // listen on new ports), kept the key and found the merit.
    assert!(
        stdout.contains("audit trail intact: 16 entries"),
        "{stdout}"
    );
}

#[test]
fn check_config_names_the_line_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[gateway]\naddress = \"127.0.0.1:8443\"\norg_number = \"2021999013\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:3:"), "{stderr}");
    assert!(stderr.contains("org_number"), "{stderr}");
    assert!(stderr.contains("check digit"), "{stderr}");

    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "serve refuses a bad config too"
    );
}

#[test]
fn certs_init_writes_a_dev_pki_that_follows_the_convention() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["certs", "init", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "gateway.pem",
        "gateway.key",
        "gateway-client.pem",
        "agency-reader.pem",
        "agency-registrar.pem",
        "adapter-employment.pem",
        "adapter-competence.pem",
        "adapter-higher-education.key",
        "dev-idp.pub.pem",
        "dev-idp.key",
        "agency-registrar-assertion.pub.pem",
        "agency-registrar-assertion.key",
        "agency-outsider-assertion.key",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let reader = std::fs::read_to_string(dir.path().join("agency-reader.pem")).unwrap();
    let id = samverka_certs::CertIdentity::from_pem(&reader).unwrap();
    assert_eq!(id.agency.as_str(), samverka::cli::demo::READER_AGENCY);
    assert_eq!(id.role, samverka_certs::Role::Agency);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [
            "gateway.key",
            "dev-idp.key",
            "agency-registrar-assertion.key",
        ] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "private keys are readable by the owner only: {key}"
            );
        }
    }
}

/// The addresses `samverka demo --serve` gives clients, printed and in
/// demo.toml, name `localhost` (which its certificates hold), while it
/// listens on 127.0.0.1: a TLS client sends the host it was given as SNI,
/// and an IP address there is no valid SNI (Node.js warns of it on every
/// connection, and the gateway logs "Illegal SNI extension"). The Rust
/// clients and the CLI still reach it by that name, and a client that
/// sends the host verbatim as SNI, as Node.js does, leaves no such line in
/// the demo's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_names_localhost_to_clients_and_logs_no_illegal_sni() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--serve", "--dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut printed = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("Serving until") => break,
            Ok(line) => printed.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the demo never said it was serving:\n{}",
                    printed.join("\n")
                );
            }
        }
    }

    // What it printed: the gateway and each adapter at localhost:PORT.
    for name in ["gateway", "higher-education", "employment", "competence"] {
        let line = printed
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line:\n{}", printed.join("\n")));
        let address = line.split_whitespace().nth(1).unwrap();
        assert!(address.starts_with("localhost:"), "{line}");
    }

    // demo.toml: clients call localhost:PORT, the gateway listens on
    // 127.0.0.1:PORT, the gateway calls its adapters at localhost:PORT.
    let demo: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.path().join("demo.toml")).unwrap()).unwrap();
    let listen: std::net::SocketAddr = string(&demo, "gateway", "address").parse().unwrap();
    assert_eq!(listen.ip().to_string(), "127.0.0.1");
    let call = string(&demo, "agency", "gateway");
    assert_eq!(call, format!("localhost:{}", listen.port()));
    assert_eq!(string(&demo, "registrar", "gateway"), call);
    for adapter in demo["adapters"].as_array().unwrap() {
        let address = adapter["address"].as_str().unwrap();
        assert!(address.starts_with("localhost:"), "{address}");
    }

    // A Rust client by that name.
    let tls = AgencyTls::from_files(
        Path::new(string(&demo, "gateway", "ca_cert")),
        Path::new(string(&demo, "agency", "cert")),
        Path::new(string(&demo, "agency", "key")),
    )
    .unwrap();
    let channel = connect(call, "localhost", &tls).await.unwrap();
    let answer = RecordExchangeClient::new(channel)
        .get_records(GetRecordsRequest {
            subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
            record_types: samverka::cli::demo::DEMO_RECORD_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            purpose: samverka::cli::demo::DEMO_PURPOSE.into(),
            source_agencies: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.records.len(), 5);

    // The CLI, from demo.toml.
    let cli = Command::new(BIN)
        .args(["records", "get", "--demo"])
        .arg(dir.path().join("demo.toml"))
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // A handshake that sends the host it was given as SNI, as Node.js (and
    // grpc-js on it) does.
    let node_handshake = Command::new("node")
        .arg("-e")
        .arg(
            "const tls = require('tls'), fs = require('fs');
             const [, address, ca, cert, key] = process.argv;
             const host = address.slice(0, address.lastIndexOf(':'));
             const port = Number(address.slice(address.lastIndexOf(':') + 1));
             const s = tls.connect({ host, port, servername: host, ALPNProtocols: ['h2'],
               ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key) },
               () => { console.log('handshake done'); s.end(); });
             s.on('error', (e) => { console.error(e.message); process.exit(1); });",
        )
        .arg(call)
        .arg(string(&demo, "gateway", "ca_cert"))
        .arg(string(&demo, "agency", "cert"))
        .arg(string(&demo, "agency", "key"))
        .output();
    match node_handshake {
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("done"),
                "node: {stderr}"
            );
            assert!(!stderr.contains("IP address"), "node: {stderr}");
        }
        Err(e) => eprintln!(
            "node is not installed ({e}): the handshake with the host as SNI is not tried"
        ),
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "exit {status:?}:\n{}", log.join("\n"));
    let illegal: Vec<_> = log.iter().filter(|l| l.contains("Illegal SNI")).collect();
    assert!(illegal.is_empty(), "{illegal:#?}");
}
