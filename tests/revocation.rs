//! Revocation and reload on a running `samverka serve` process: a
//! certificate revoked with `samverka certs revoke` is refused at the next
//! handshake once the gateway has reloaded its CRL, with no restart, while
//! established connections and other agencies go on; a broken CRL is
//! refused and the material in use kept; SIGHUP reloads; a rotated server
//! certificate is served to new connections. The same CRL reaches the
//! adapter hop: a revoked adapter is refused by the gateway on its next
//! connection, a revoked gateway certificate by an adapter that watches
//! the list. A stale CRL (past its nextUpdate) is reported, and used or
//! not as `gateway.stale_crl` says. The demo names its CRL.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{ListSourcesRequest, source_outcome};
use support::process::{Replica, spawn_adapters, start_gateway};
use support::revocation::{
    Sources, answered, certs_init, crl_metrics, read_outcomes, samverka,
    start_with_stale_crl_policy, until_answered, until_employment, until_logged, write_stale_crl,
};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

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
    // The demo's configuration names the PKI's CRL.
    let gateway = start_gateway(dir.path(), &pki, &adapters, "", &[]);

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
    .grant(support::sealed_pki(
        &pki,
        "registrar",
        samverka_proto::v1::GrantConsentRequest {
            subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
            grantee_agency: samverka::cli::demo::READER_AGENCY.into(),
            record_types: vec!["employment.period".into()],
            purpose: samverka::cli::demo::DEMO_PURPOSE.into(),
            valid_until: Some(samverka_gateway::time::to_timestamp(
                samverka_gateway::time::system_now_ms() + 24 * 3600 * 1000,
            )),
            request_id: "after-rotation".into(),
            ..Default::default()
        },
    ))
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
    let mut sources = Sources::start(&pki).await;
    let gateway = start_gateway(dir.path(), &pki, &sources.addresses(), "", &[]);

    // The gateway's client identity is replaced, here by one without the
    // gateway role, which adapters refuse: if the new one is used, the
    // sources say so.
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
    // The connections the gateway made before (it asks every adapter to
    // describe itself from the start) go on with the old identity; the
    // adapters restart, so that the next read makes new ones.
    sources.restart("higher-education").await;
    sources.restart("employment").await;

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
            ..Default::default()
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
    // A second client certificate for the gateway, not to be revoked.
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

    /// The adapter process, killed when the test ends, failed or not.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut adapter = Killed(
        Command::new(BIN)
            .args(["adapter", "run", "employment", "--listen", "127.0.0.1:0"])
            .args(["--cert", &file("adapter-employment.pem")])
            .args(["--key", &file("adapter-employment.key")])
            .args(["--ca", &file("ca.pem"), "--crl", &file("crl.pem")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(adapter.0.stdout.take().unwrap())
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
    // Before the revocation the gateway's certificate is accepted.
    let before = check(&file("gateway-client.pem"), &file("gateway-client.key"));
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stdout)
    );
    // Revoked while the adapter runs: it reads the list again by itself.
    samverka(&[
        "certs",
        "revoke",
        "--dir",
        &certs_arg,
        &file("gateway-client.pem"),
    ]);
    let mut refused = None;
    for _ in 0..30 {
        let out = check(&file("gateway-client.pem"), &file("gateway-client.key"));
        if !out.status.success() {
            refused = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let refused = refused.expect("the revoked gateway certificate was still accepted after 15 s");
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL describe"), "{stdout}");
    let passed = check(&file("gateway-client-2.pem"), &file("gateway-client-2.key"));
    assert!(
        passed.status.success(),
        "{}",
        String::from_utf8_lossy(&passed.stdout)
    );
    drop(adapter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_adapter_is_refused_on_the_next_connection_while_the_others_answer() {
    use source_outcome::Status;
    let dir = tempfile::tempdir().unwrap();
    let (certs, certs_arg, pki) = certs_init(dir.path());
    let mut sources = Sources::start(&pki).await;
    let gateway = start_gateway(dir.path(), &pki, &sources.addresses(), "", &[]);
    gateway
        .grant(
            &pki,
            &samverka::cli::demo::DEMO_RECORD_TYPES,
            "adapter-revocation",
        )
        .await;
    let employment = samverka_adapter_employment::DEMO_AGENCY.to_owned();
    let higher_education = samverka_adapter_higher_education::DEMO_AGENCY.to_owned();

    // Before: both sources answer, also over a new connection to the
    // employment adapter after it restarted.
    let (outcomes, records) = read_outcomes(&gateway, &pki).await;
    assert!(
        outcomes.contains(&("employment".into(), Status::Ok)),
        "{outcomes:?}"
    );
    assert!(records.contains(&employment), "{records:?}");
    sources.restart("employment").await;
    let (outcomes, records) = until_employment(&gateway, &pki, Status::Ok).await;
    assert!(
        outcomes.contains(&("higher-education".into(), Status::Ok)),
        "{outcomes:?}"
    );
    assert!(records.contains(&employment), "{records:?}");

    // The employment adapter's certificate is revoked in the CRL the
    // gateway uses; the gateway reloads it by itself.
    samverka(&[
        "certs",
        "revoke",
        "--dir",
        &certs_arg,
        &certs.join("adapter-employment.pem").display().to_string(),
    ]);
    until_logged(&gateway, &["TLS material reloaded", "file changed"]).await;
    // The connection open from before is not kept: the next read connects
    // again, under the new CRL, and is refused: UNAVAILABLE, with no
    // records from it, while the other source answers.
    let (outcomes, records) = read_outcomes(&gateway, &pki).await;
    assert!(
        outcomes.contains(&("employment".into(), Status::Unavailable)),
        "the first read after the reload still used the old connection: {outcomes:?}"
    );
    assert!(
        outcomes.contains(&("higher-education".into(), Status::Ok)),
        "{outcomes:?}"
    );
    assert!(records.contains(&higher_education), "{records:?}");
    assert!(!records.contains(&employment), "{records:?}");
    let refused = until_logged(&gateway, &["adapter certificate refused"]).await;
    assert!(refused.contains("Revoked"), "{refused}");
    assert!(refused.contains(&employment), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_crl_is_reported_and_with_warn_still_used() {
    use source_outcome::Status;
    let dir = tempfile::tempdir().unwrap();
    let (certs, _, pki) = certs_init(dir.path());
    write_stale_crl(&certs);
    let adapters = spawn_adapters(&pki).await;
    let gateway = start_with_stale_crl_policy(dir.path(), &pki, &adapters, Some("warn"));

    let (next_update, stale) = crl_metrics(&gateway).await;
    assert_eq!(stale, 1.0);
    let day_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 24 * 3600;
    assert!(
        (next_update - day_ago as f64).abs() < 120.0,
        "{next_update} vs {day_ago}"
    );
    let warned = until_logged(&gateway, &["certificate revocation list is stale"]).await;
    assert!(
        warned.contains("still used") && warned.contains("crl.pem"),
        "{warned}"
    );
    assert_eq!(support::admin_get(gateway.admin, "/readyz").await.0, 200);

    // Reads work, on both hops.
    gateway
        .grant(&pki, &samverka::cli::demo::DEMO_RECORD_TYPES, "stale-warn")
        .await;
    let (outcomes, records) = read_outcomes(&gateway, &pki).await;
    assert_eq!(
        outcomes,
        vec![
            ("higher-education".into(), Status::Ok),
            ("employment".into(), Status::Ok)
        ],
    );
    assert!(!records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_crl_by_default_refuses_and_makes_the_gateway_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (certs, certs_arg, pki) = certs_init(dir.path());
    write_stale_crl(&certs);
    let adapters = spawn_adapters(&pki).await;
    // No stale_crl key: the default is to refuse.
    let gateway = start_with_stale_crl_policy(dir.path(), &pki, &adapters, None);
    let (reader, reader_key) = (
        certs.join("agency-reader.pem"),
        certs.join("agency-reader.key"),
    );
    let ca = certs.join("ca.pem");

    let (code, why) = support::admin_get(gateway.admin, "/readyz").await;
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("crl.pem") && why.contains("stale"), "{why}");
    assert_eq!(crl_metrics(&gateway).await.1, 1.0);
    // Fail closed: agencies are refused at the handshake.
    assert!(!answered(&gateway, &ca, &reader, &reader_key).await);
    let refused = until_logged(&gateway, &["TLS handshake refused"]).await;
    assert!(refused.to_lowercase().contains("expired"), "{refused}");
    until_logged(
        &gateway,
        &["certificate revocation list is stale", "refused"],
    )
    .await;

    // A fresh list, reloaded: ready again and answering, with no restart.
    samverka(&["certs", "crl", "--dir", &certs_arg]);
    until_answered(&gateway, &ca, &reader, &reader_key, true).await;
    assert_eq!(support::admin_get(gateway.admin, "/readyz").await.0, 200);
    assert_eq!(crl_metrics(&gateway).await.1, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_checks_its_crl_so_revoking_there_refuses() {
    let net = support::start().await;
    // demo.toml names the PKI's list.
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(&net.config_path).unwrap()).unwrap();
    assert_eq!(
        config["gateway"]["crls"],
        toml::Value::Array(vec![net.pki.crl.display().to_string().into()]),
    );
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&net.config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let reads = |name: &'static str| {
        let tls = net.agency_tls(name).unwrap();
        let address = net.gateway_address.to_string();
        async move {
            let Ok(channel) = connect(&address, "localhost", &tls).await else {
                return false;
            };
            RecordExchangeClient::new(channel)
                .list_sources(ListSourcesRequest {})
                .await
                .is_ok()
        }
    };
    assert!(reads("reader").await);
    let (_, reader, _) = net
        .pki
        .agencies
        .iter()
        .find(|(n, ..)| n == "reader")
        .unwrap();
    let out = samverka(&[
        "certs",
        "revoke",
        "--dir",
        &net.pki.crl.parent().unwrap().display().to_string(),
        &reader.display().to_string(),
    ]);
    assert!(out.contains("1 revoked certificate"), "{out}");
    let mut refused = false;
    for _ in 0..150 {
        if !reads("reader").await {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the revoked reader was still answered after 15 s");
    assert!(reads("registrar").await);
    net.net.shutdown().await;
}
