//! Revocation and reload on a running `samverka serve` process: a
//! certificate revoked with `samverka certs revoke` is refused at the next
//! handshake once the gateway has reloaded its CRL, with no restart, while
//! established connections and other agencies go on; a broken CRL is
//! refused and the material in use kept; SIGHUP reloads; a rotated server
//! certificate is served to new connections.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::ListSourcesRequest;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use support::process::{Replica, spawn_adapters, start_gateway, start_replica};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

fn samverka(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "samverka {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The demo PKI made by `samverka certs init` in `DIR/certs`: its
/// directory, the same as an argument, and its files.
fn certs_init(dir: &Path) -> (std::path::PathBuf, String, samverka_certs::dev::DevPkiFiles) {
    let certs = dir.join("certs");
    let certs_arg = certs.display().to_string();
    samverka(&["certs", "init", "--out", &certs_arg]);
    let pki =
        samverka_certs::dev::existing_dev_pki(&certs, &samverka::cli::demo::pki_spec()).unwrap();
    (certs, certs_arg, pki)
}

/// Whether `cert` gets an answer from the gateway on a new connection.
async fn answered(gateway: &Replica, ca: &Path, cert: &Path, key: &Path) -> bool {
    let tls = AgencyTls::from_files(ca, cert, key).unwrap();
    let Ok(channel) = connect(&gateway.address.to_string(), "localhost", &tls).await else {
        return false;
    };
    RecordExchangeClient::new(channel)
        .list_sources(ListSourcesRequest {})
        .await
        .is_ok()
}

/// Waits (at most 15 s) until `cert` is answered or not, as `expected`.
async fn until_answered(gateway: &Replica, ca: &Path, cert: &Path, key: &Path, expected: bool) {
    for _ in 0..150 {
        if answered(gateway, ca, cert, key).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} was still {} after 15 s",
        cert.display(),
        if expected { "refused" } else { "answered" }
    );
}

/// Waits (at most 15 s) for a gateway log line containing all of `words`.
async fn until_logged(gateway: &Replica, words: &[&str]) -> String {
    for _ in 0..150 {
        if let Some(line) = gateway
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| words.iter().all(|w| l.contains(w)))
        {
            return line.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no log line with {words:?}");
}

/// The certificate the gateway presents to a new connection.
async fn served_certificate(gateway: &Replica, ca: &Path, cert: &Path, key: &Path) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        samverka_adapter::crypto_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(gateway.address)
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem_file: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem_file).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_after_a_reload_with_no_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, certs_arg, pki) = certs_init(dir.path());
    // A second certificate for the guidance agency, to revoke.
    let out = samverka(&[
        "certs",
        "issue",
        "--dir",
        &certs_arg,
        "--name",
        "agency-reader-2",
        "--org",
        samverka::cli::demo::READER_AGENCY,
        "--role",
        "agency",
    ]);
    assert!(out.contains("agency-reader-2.pem"), "{out}");
    let file = |name: &str| -> PathBuf { certs.join(name) };
    let ca = file("ca.pem");
    let (second, second_key) = (file("agency-reader-2.pem"), file("agency-reader-2.key"));
    let (reader, reader_key) = (file("agency-reader.pem"), file("agency-reader.key"));

    let adapters = spawn_adapters(&pki).await;
    let config = dir.path().join("gateway.toml");
    let text = samverka::cli::demo::demo_config(
        &pki,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &adapters,
        &dir.path().join("samverka.db").display().to_string(),
        "",
    )
    .replacen(
        "\nstore = ",
        &format!("\ncrls = [{:?}]\nstore = ", pki.crl.display().to_string()),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let gateway = start_replica(BIN, &config);

    assert!(answered(&gateway, &ca, &second, &second_key).await);
    // A connection made before the revocation, kept open.
    let established = connect(
        &gateway.address.to_string(),
        "localhost",
        &AgencyTls::from_files(&ca, &second, &second_key).unwrap(),
    )
    .await
    .unwrap();
    let mut established = RecordExchangeClient::new(established);
    established
        .list_sources(ListSourcesRequest {})
        .await
        .unwrap();

    // Revoked: refused on the next handshake once the CRL is reloaded.
    let out = samverka(&[
        "certs",
        "revoke",
        "--dir",
        &certs_arg,
        &second.display().to_string(),
    ]);
    assert!(out.contains("1 revoked certificate"), "{out}");
    until_answered(&gateway, &ca, &second, &second_key, false).await;
    let refused = until_logged(&gateway, &["TLS handshake refused"]).await;
    assert!(refused.to_lowercase().contains("revoked"), "{refused}");
    until_logged(&gateway, &["TLS material reloaded", "file changed"]).await;
    // No restart: the other certificate of the same agency is answered and
    // the open connection still served.
    assert!(answered(&gateway, &ca, &reader, &reader_key).await);
    established
        .list_sources(ListSourcesRequest {})
        .await
        .expect("an established connection goes on");

    // A broken CRL is refused, and the material in use kept.
    let good_crl = std::fs::read(&pki.crl).unwrap();
    std::fs::write(
        &pki.crl,
        "-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n",
    )
    .unwrap();
    until_logged(&gateway, &["NOT reloaded", "crl.pem"]).await;
    assert!(answered(&gateway, &ca, &reader, &reader_key).await);
    assert!(!answered(&gateway, &ca, &second, &second_key).await);

    // SIGHUP reloads (and says so), here with the broken file still there.
    let hup = Command::new("kill")
        .args(["-HUP", &gateway.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until_logged(&gateway, &["NOT reloaded", "SIGHUP"]).await;

    // A rotated server certificate reaches new connections.
    let before = served_certificate(&gateway, &ca, &reader, &reader_key).await;
    assert_eq!(before, der(&pki.gateway.0));
    let old_cert = std::fs::read_to_string(&pki.gateway.0).unwrap();
    std::fs::write(&pki.crl, &good_crl).unwrap();
    samverka(&[
        "certs",
        "issue",
        "--dir",
        &certs_arg,
        "--name",
        "gateway",
        "--org",
        samverka::cli::demo::GATEWAY_AGENCY,
        "--role",
        "gateway",
    ]);
    let rotated = der(&pki.gateway.0);
    assert_ne!(rotated, before);
    for _ in 0..150 {
        if served_certificate(&gateway, &ca, &reader, &reader_key).await == rotated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served_certificate(&gateway, &ca, &reader, &reader_key).await,
        rotated,
        "the new certificate is not served"
    );
    assert!(!answered(&gateway, &ca, &second, &second_key).await);

    // What the gateway signs from now on verifies with the new certificate.
    let (registrar, registrar_key) = (file("agency-registrar.pem"), file("agency-registrar.key"));
    let receipt = samverka_proto::v1::consents_client::ConsentsClient::new(
        connect(
            &gateway.address.to_string(),
            "localhost",
            &AgencyTls::from_files(&ca, &registrar, &registrar_key).unwrap(),
        )
        .await
        .unwrap(),
    )
    .grant(samverka_proto::v1::GrantConsentRequest {
        subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
        grantee_agency: samverka::cli::demo::READER_AGENCY.into(),
        record_types: vec!["employment.period".into()],
        purpose: samverka::cli::demo::DEMO_PURPOSE.into(),
        valid_until: Some(samverka_gateway::time::to_timestamp(
            samverka_gateway::time::system_now_ms() + 24 * 3600 * 1000,
        )),
        request_id: "after-rotation".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .jws;
    let new_cert = std::fs::read_to_string(&pki.gateway.0).unwrap();
    samverka_gateway::credential::receipt::verify(&receipt, &new_cert)
        .expect("signed with the new key");
    assert!(samverka_gateway::credential::receipt::verify(&receipt, &old_cert).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_identity_is_used_for_the_next_adapter_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_, certs_arg, pki) = certs_init(dir.path());
    let adapters = spawn_adapters(&pki).await;
    let gateway = start_gateway(dir.path(), &pki, &adapters, "", &[]);

    // Before any adapter was called, the gateway's client identity is
    // replaced, here by one without the gateway role, which adapters
    // refuse: if the new one is used, the sources say so.
    samverka(&[
        "certs",
        "issue",
        "--dir",
        &certs_arg,
        "--name",
        "gateway-client",
        "--org",
        samverka::cli::demo::GATEWAY_AGENCY,
        "--role",
        "agency",
    ]);
    until_logged(&gateway, &["TLS material reloaded"]).await;

    gateway
        .grant(
            &pki,
            &samverka::cli::demo::DEMO_RECORD_TYPES,
            "rotation-test",
        )
        .await;
    let answer = gateway
        .reader(&pki)
        .await
        .get_records(samverka_proto::v1::GetRecordsRequest {
            subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
            record_types: samverka::cli::demo::DEMO_RECORD_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            purpose: samverka::cli::demo::DEMO_PURPOSE.into(),
            source_agencies: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.records.is_empty(), "{:?}", answer.records);
    assert_eq!(answer.outcomes.len(), 2);
    for o in &answer.outcomes {
        assert_eq!(
            o.status,
            samverka_proto::v1::source_outcome::Status::SourceError as i32,
            "{o:?}"
        );
    }
}

#[test]
fn an_adapter_with_the_crl_refuses_a_revoked_gateway_certificate() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (certs, certs_arg, _) = certs_init(dir.path());
    let file = |name: &str| certs.join(name).display().to_string();
    // The gateway's client certificate is revoked; a second one is not.
    samverka(&[
        "certs",
        "revoke",
        "--dir",
        &certs_arg,
        &file("gateway-client.pem"),
    ]);
    samverka(&[
        "certs",
        "issue",
        "--dir",
        &certs_arg,
        "--name",
        "gateway-client-2",
        "--org",
        samverka::cli::demo::GATEWAY_AGENCY,
        "--role",
        "gateway",
        "--client",
    ]);

    let mut adapter = Command::new(BIN)
        .args(["adapter", "run", "employment", "--listen", "127.0.0.1:0"])
        .args(["--cert", &file("adapter-employment.pem")])
        .args(["--key", &file("adapter-employment.key")])
        .args(["--ca", &file("ca.pem"), "--crl", &file("crl.pem")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(adapter.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.split("serving on ").nth(1).unwrap().trim().to_owned();

    let check = |cert: &str, key: &str| {
        Command::new(BIN)
            .args(["adapter", "check", "--addr", &address])
            .args(["--ca", &file("ca.pem"), "--cert", cert, "--key", key])
            .args(["--other-cert", &file("agency-reader.pem")])
            .args(["--other-key", &file("agency-reader.key")])
            .output()
            .unwrap()
    };
    let refused = check(&file("gateway-client.pem"), &file("gateway-client.key"));
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL describe"), "{stdout}");
    let passed = check(&file("gateway-client-2.pem"), &file("gateway-client-2.key"));
    assert!(
        passed.status.success(),
        "{}",
        String::from_utf8_lossy(&passed.stdout)
    );
    let _ = adapter.kill();
    let _ = adapter.wait();
}
