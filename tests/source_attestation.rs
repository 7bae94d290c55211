//! Each merit of a passport attested by its source, end to end: SDK
//! adapters over mutual TLS, a `samverka serve` process, and the passport
//! it signs. A source whose attestation key is not the federation's has
//! its records dropped (`INVALID_RESPONSE`); a source without one is
//! relayed by the gateway, or refused under `unattested_records =
//! "refuse"`; the adapter refuses a holder salt too short to hide the
//! person's number.

mod support;

use std::net::SocketAddr;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SOURCES, DEMO_SUBJECT, pki_spec};
use samverka_adapter::AdapterTls;
use samverka_adapter::credential::Attester;
use samverka_certs::dev::{CertRequest, DevCa, DevPkiFiles};
use samverka_certs::{OrgNumber, Role};
use samverka_gateway::credential::passport;
use samverka_proto::adapter::v1::{AttestFor, FetchRecordsRequest};
use samverka_proto::v1::CompetencePassport;
use samverka_proto::v1::source_outcome::Status as Outcome;
use support::process::{grant_on, start_edited_gateway};

const TYPES: [&str; 4] = [
    "education.course_result",
    "education.degree",
    "employment.period",
    "competence.validated",
];

/// How each demo source attests in these tests.
#[derive(Clone, Copy)]
enum Key {
    Federation,
    Rogue,
    None,
}

/// The demo source `name` behind the SDK, attesting with `key`.
async fn serve(pki: &DevPkiFiles, name: &str, key: Key) -> SocketAddr {
    let source = DEMO_SOURCES.iter().find(|s| s.name == name).unwrap();
    let (_, cert, tls_key) = pki.adapters.iter().find(|(n, _, _)| n == name).unwrap();
    let tls = AdapterTls::from_files(cert, tls_key, &pki.ca_cert).unwrap();
    let tls = match key {
        Key::Federation => samverka::cli::demo::adapter_tls(pki, name).unwrap(),
        // The right agency and role, from a CA the federation does not
        // know.
        Key::Rogue => {
            let agency = samverka_adapter::Adapter::describe(&(source.register)()).agency;
            let rogue = DevCa::generate("rogue CA")
                .unwrap()
                .issue(&CertRequest::new(
                    OrgNumber::parse(&agency).unwrap(),
                    Role::Attester,
                    "rogue",
                ))
                .unwrap();
            tls.with_attester(Attester::from_pem(&rogue.cert_pem, &rogue.key_pem).unwrap())
        }
        Key::None => tls,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(samverka_adapter::serve_with_listener(
        (source.register)(),
        listener,
        tls,
        std::future::pending(),
    ));
    address
}

/// A gateway over the three demo sources attesting with `keys`, with
/// `unattested_records` set to `policy` when given; the demo person's
/// passport from it.
async fn passport_with(
    keys: [(&str, Key); 3],
    policy: Option<&str>,
) -> (CompetencePassport, DevPkiFiles, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_owned();
    let pki = samverka_certs::dev::write_dev_pki(&dir.join("certs"), &pki_spec()).unwrap();
    let mut adapters = Vec::new();
    for (name, key) in keys {
        adapters.push((name.to_owned(), serve(&pki, name, key).await));
    }
    let gateway = start_edited_gateway(&dir, &pki, &adapters, "", &[], |config| match policy {
        Some(p) => config.replacen(
            "[gateway]\n",
            &format!("[gateway]\nunattested_records = \"{p}\"\n"),
            1,
        ),
        None => config,
    });
    grant_on(&gateway, &pki, DEMO_PURPOSE, &TYPES).await;
    let p = gateway
        .reader(&pki)
        .await
        .get_competence_passport(samverka_proto::v1::GetCompetencePassportRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (p, pki, temp)
}

fn outcome(p: &CompetencePassport, name: &str) -> (Outcome, u32, String) {
    let o = p.outcomes.iter().find(|o| o.source_name == name).unwrap();
    (
        Outcome::try_from(o.status).unwrap(),
        o.record_count,
        o.message.clone(),
    )
}

fn attested_by(p: &CompetencePassport) -> Vec<(String, bool)> {
    p.sections
        .iter()
        .flat_map(|s| &s.entries)
        .map(|e| (e.source_name.clone(), !e.attestation.is_empty()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_takes_a_record_as_attested_only_under_the_federations_key() {
    samverka_adapter::install_crypto_provider();
    let keys = [
        ("higher-education", Key::Rogue),
        ("employment", Key::None),
        ("competence", Key::Federation),
    ];
    let (p, pki, _dir) = passport_with(keys, None).await;
    // The rogue key's records are dropped; the source without a key is
    // relayed; the attested ones carry their attestation.
    let (status, count, message) = outcome(&p, "higher-education");
    assert_eq!((status, count), (Outcome::InvalidResponse, 0), "{message}");
    assert!(message.contains("attestation"), "{message}");
    assert_eq!(outcome(&p, "employment").0, Outcome::Ok);
    assert_eq!(outcome(&p, "competence").0, Outcome::Ok);
    let entries = attested_by(&p);
    assert!(entries.iter().any(|(n, a)| n == "employment" && !a));
    assert!(entries.iter().any(|(n, a)| n == "competence" && *a));
    assert!(
        entries.iter().all(|(n, a)| *a == (n == "competence")),
        "{entries:?}"
    );

    // The passport shows which merits their sources signed, and verifies
    // against the federation CA.
    let ca = std::fs::read_to_string(&pki.ca_cert).unwrap();
    let cert = std::fs::read_to_string(&pki.gateway.0).unwrap();
    let federation = passport::Federation::from_pem(&ca).unwrap();
    let report = passport::verify_report_from(
        &p.credential,
        &passport::Trust::Cert(cert),
        None,
        Some(&federation),
    );
    assert_eq!(report.failure(), None, "{:?}", report.checks);
    let attested = entries.iter().filter(|(_, a)| *a).count();
    let sources = report.checks.iter().find(|c| c.name == "sources").unwrap();
    assert_eq!(
        sources.note.as_deref(),
        Some(
            format!(
                "{attested} of {} merits attested by their source",
                entries.len()
            )
            .as_str()
        )
    );
    let merits = passport::merits(&report.credential.unwrap());
    for m in &merits {
        // An attested merit names its source as the source names itself.
        let competence = samverka_adapter_competence::DEMO_AGENCY;
        assert_eq!(m.source_attested, m.source_agency == competence, "{m:?}");
    }

    // Refused by configuration, the unattested source's records are
    // dropped too.
    let (p, _, _dir) = passport_with(keys, Some("refuse")).await;
    let (status, count, message) = outcome(&p, "employment");
    assert_eq!((status, count), (Outcome::InvalidResponse, 0), "{message}");
    assert_eq!(outcome(&p, "competence").0, Outcome::Ok);
    assert!(attested_by(&p).iter().all(|(_, a)| *a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_attests_only_for_a_salt_that_hides_the_number() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let address = serve(&pki, "competence", Key::Federation).await;
    let tls = samverka_gateway::net::client::AgencyTls::from_files(
        &pki.ca_cert,
        &pki.gateway_client.0,
        &pki.gateway_client.1,
    )
    .unwrap();
    let channel = samverka_gateway::net::client::connect(&address.to_string(), "localhost", &tls)
        .await
        .unwrap();
    let mut client = samverka_proto::adapter::v1::adapter_client::AdapterClient::new(channel);
    let ask = |holder_id: &str, holder_salt: &str| FetchRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: vec!["competence.validated".into()],
        purpose: DEMO_PURPOSE.into(),
        attest: Some(AttestFor {
            holder_id: holder_id.into(),
            holder_salt: holder_salt.into(),
        }),
        ..Default::default()
    };
    let holder = "urn:uuid:8c1a5b7e-0d2f-4e6a-9b3c-1d2e3f4a5b6c";
    let answer = client
        .fetch_records(ask(holder, &"ab".repeat(16)))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.records.is_empty());
    assert_eq!(answer.attestations.len(), answer.records.len());
    assert!(!answer.attestation_certificate.is_empty());
    for (bad_id, bad_salt) in [
        (holder, ""),
        (holder, "abcd"),
        (holder, &"zz".repeat(16)[..]),
        ("not-a-uuid", &"ab".repeat(16)[..]),
    ] {
        let refused = client
            .fetch_records(ask(bad_id, bad_salt))
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{bad_id} {bad_salt}"
        );
    }
    // Without `attest`, nothing is signed.
    let plain = client
        .fetch_records(FetchRecordsRequest {
            attest: None,
            ..ask(holder, "")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plain.attestations.is_empty() && plain.attestation_certificate.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_checks_what_an_adapter_attests() {
    samverka_adapter::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let kit = |address: SocketAddr| samverka_adapter::conformance::KitConfig {
        address: address.to_string(),
        server_name: "localhost".into(),
        ca_pem: read(&pki.ca_cert),
        gateway_cert_pem: read(&pki.gateway_client.0),
        gateway_key_pem: read(&pki.gateway_client.1),
        other_identity: None,
        known_subject: DEMO_SUBJECT.into(),
        unknown_subject: "197001010011".into(),
    };
    for (key, passes, says) in [
        (Key::Federation, true, "attested by agency"),
        (Key::None, true, "no attestations"),
        (Key::Rogue, false, "federation CA"),
    ] {
        let address = serve(&pki, "employment", key).await;
        let results = samverka_adapter::conformance::run_checks(&kit(address)).await;
        let attests = results.iter().find(|r| r.name == "attests").unwrap();
        assert_eq!(attests.passed, passes, "{attests:?}");
        assert!(attests.detail.contains(says), "{attests:?}");
    }
}
