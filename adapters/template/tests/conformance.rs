//! The conformance kit against this adapter, served over real mTLS with a
//! development PKI. Keep this test when you fill in the adapter: it is the
//! same kit `samverka adapter check` runs. Set `known_subject` to a person
//! your test register knows.

use samverka_adapter::conformance::{KitConfig, run_checks};
use samverka_adapter::{AdapterTls, serve_with_listener};
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};

#[tokio::test]
async fn the_adapter_passes_the_conformance_kit() {
    let ca = DevCa::generate("test CA").unwrap();
    let org = |s: &str| OrgNumber::parse(s).unwrap();
    let adapter = ca
        .issue(&CertRequest::new(
            org(samverka_adapter_template::AGENCY),
            Role::Adapter,
            "adapter",
        ))
        .unwrap();
    let gateway = ca
        .issue(&CertRequest::new(org("2021999012"), Role::Gateway, "gateway").as_client())
        .unwrap();
    let agency = ca
        .issue(&CertRequest::new(org("2021999020"), Role::Agency, "agency"))
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = AdapterTls::from_pem(&adapter.cert_pem, &adapter.key_pem, ca.cert_pem());
    tokio::spawn(serve_with_listener(
        samverka_adapter_template::Register,
        listener,
        tls,
        std::future::pending(),
    ));

    let results = run_checks(&KitConfig {
        address: address.to_string(),
        server_name: "localhost".into(),
        ca_pem: ca.cert_pem().to_owned(),
        gateway_cert_pem: gateway.cert_pem,
        gateway_key_pem: gateway.key_pem,
        other_identity: Some((agency.cert_pem, agency.key_pem)),
        known_subject: "199003142388".into(),
        unknown_subject: "197001010011".into(),
    })
    .await;
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
