//! End to end: who may talk to whom. Every rejection is tested with an RPC,
//! not with connect: with TLS 1.3 the handshake completes on the client
//! side before the server has judged the client certificate. The other
//! way round, the gateway believes an adapter only if its certificate
//! names the agency the routing table expects there.

mod support;

use samverka::cli::demo::{DEMO_PURPOSE, DEMO_SUBJECT, OUTSIDER_AGENCY, READER_AGENCY};
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::adapter::v1::adapter_client::AdapterClient;
use samverka_proto::adapter::v1::{DescribeRequest, FetchRecordsRequest};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::source_outcome::Status as SourceStatus;
use support::*;
use tonic::Code;

fn org(s: &str) -> OrgNumber {
    OrgNumber::parse(s).unwrap()
}

/// The demo CA, loaded back from the files the network wrote.
fn demo_ca(net: &TestNet) -> DevCa {
    DevCa::from_pem(
        &std::fs::read_to_string(&net.pki.ca_cert).unwrap(),
        &std::fs::read_to_string(&net.pki.ca_key).unwrap(),
    )
    .unwrap()
}

async fn read_with(
    net: &TestNet,
    tls: AgencyTls,
) -> Result<tonic::Response<samverka_proto::v1::GetRecordsResponse>, tonic::Status> {
    let channel = connect(&net.gateway_address.to_string(), "localhost", &tls)
        .await
        .unwrap();
    RecordExchangeClient::new(channel)
        .get_records(demo_read())
        .await
}

/// A refused handshake: no records, no decision audited, no adapter called.
async fn assert_refused_at_handshake(net: &TestNet, tls: AgencyTls, what: &str) {
    let err = read_with(net, tls).await.expect_err(what);
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ),
        "{what}: {err:?}"
    );
    assert!(read_entries(&net.gateway.store).await.is_empty(), "{what}");
    assert_eq!(net.fetch_calls(), 0, "{what}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let net = start().await;
    grant_demo_consent(&net).await;
    // Same organisation number and role as the real reader, wrong issuer.
    let other_ca = DevCa::generate("untrusted CA").unwrap();
    let forged = other_ca
        .issue(&CertRequest::new(
            org(READER_AGENCY),
            Role::Agency,
            "forged reader",
        ))
        .unwrap();
    let mut tls = net.agency_tls("reader").unwrap();
    tls.cert_pem = forged.cert_pem;
    tls.key_pem = forged.key_pem;
    assert_refused_at_handshake(&net, tls, "untrusted CA").await;
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let net = start().await;
    let mut tls = net.agency_tls("reader").unwrap();
    tls.cert_pem.clear();
    tls.key_pem.clear();
    assert_refused_at_handshake(&net, tls, "no client certificate").await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let net = start().await;
    let mut req = CertRequest::new(org(READER_AGENCY), Role::Agency, "expired reader");
    req.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    req.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired = demo_ca(&net).issue(&req).unwrap();
    let mut tls = net.agency_tls("reader").unwrap();
    tls.cert_pem = expired.cert_pem;
    tls.key_pem = expired.key_pem;
    assert_refused_at_handshake(&net, tls, "expired certificate").await;
}

#[tokio::test]
async fn a_trusted_certificate_without_a_samverka_identity_is_unauthenticated() {
    let net = start().await;
    let mut req = CertRequest::new(org(READER_AGENCY), Role::Agency, "no identity");
    req.uris.clear();
    let anonymous = demo_ca(&net).issue(&req).unwrap();
    let mut tls = net.agency_tls("reader").unwrap();
    tls.cert_pem = anonymous.cert_pem;
    tls.key_pem = anonymous.key_pem;
    let status = read_with(&net, tls).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "IDENTITY_MISSING");
    let audit = read_entries(&net.gateway.store).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].caller, "");
    assert_eq!(audit[0].reason, "IDENTITY_MISSING");
}

#[tokio::test]
async fn a_gateway_certificate_cannot_read_as_an_agency() {
    let net = start().await;
    let tls = AgencyTls::from_files(
        &net.pki.ca_cert,
        &net.pki.gateway_client.0,
        &net.pki.gateway_client.1,
    )
    .unwrap();
    let status = read_with(&net, tls).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ROLE_REQUIRED");
}

#[tokio::test]
async fn an_agency_cannot_act_as_another_by_what_it_sends() {
    let net = start().await;
    grant_demo_consent(&net).await;
    // The outsider claims to be the reader in every header it can think
    // of; the gateway only believes the certificate.
    let mut request = tonic::Request::new(demo_read());
    for header in [
        "x-samverka-agency",
        "x-agency-id",
        "x-forwarded-client-cert",
        "x-ssl-client-s-dn",
    ] {
        request
            .metadata_mut()
            .insert(header, READER_AGENCY.parse().unwrap());
    }
    let status = exchange(&net, "outsider")
        .await
        .get_records(request)
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ACCESS_RULE_MISSING");
    let audit: Vec<_> = read_entries(&net.gateway.store)
        .await
        .into_iter()
        .filter(|e| e.subject_id == DEMO_SUBJECT)
        .collect();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].caller, OUTSIDER_AGENCY);
    assert_eq!(net.fetch_calls(), 0);
}

#[tokio::test]
async fn an_adapter_answers_only_the_gateway() {
    let net = start().await;
    let (_, address) = net
        .adapters
        .iter()
        .find(|(n, _)| n == "employment")
        .unwrap();
    let adapter = |tls: AgencyTls| {
        let address = address.to_string();
        async move { AdapterClient::new(connect(&address, "localhost", &tls).await.unwrap()) }
    };
    let fetch = || FetchRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: strings(&["employment.period"]),
        purpose: DEMO_PURPOSE.into(),
        ..Default::default()
    };

    // An agency going around the gateway is refused, for every method.
    let mut as_agency = adapter(net.agency_tls("reader").unwrap()).await;
    let status = as_agency.fetch_records(fetch()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = as_agency.describe(DescribeRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(net.fetch_calls(), 0);

    // The gateway's client certificate is accepted.
    let gateway_tls = AgencyTls::from_files(
        &net.pki.ca_cert,
        &net.pki.gateway_client.0,
        &net.pki.gateway_client.1,
    )
    .unwrap();
    let mut as_gateway = adapter(gateway_tls).await;
    let records = as_gateway
        .fetch_records(fetch())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 2);
    assert_eq!(net.fetch_calls(), 1);
    // And the adapter validates the subject id too.
    let mut bad = fetch();
    bad.subject_id = "199003142389".into();
    assert_eq!(
        as_gateway.fetch_records(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_with_another_agencys_certificate_is_not_believed() {
    let net = start().await;
    // A gateway whose routing table sends the employment agency's record
    // types to the higher-education adapter's address: the certificate
    // there names another agency, so the handshake is refused.
    let address = |name: &str| {
        let port = net
            .adapters
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .port();
        format!(":{port}\"")
    };
    let demo = std::fs::read_to_string(&net.config_path).unwrap();
    let text = demo
        .replace(&address("employment"), &address("higher-education"))
        .replace("samverka.db", "impersonation.db");
    assert_eq!(
        text.matches(&address("higher-education")).count(),
        2,
        "the routing table was not changed: {text}"
    );
    let config = samverka_gateway::Config::from_toml(&text, net.dir.path()).unwrap();
    let gateway = samverka_gateway::Gateway::new(config, samverka_gateway::Clock::system())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_address = listener.local_addr().unwrap().to_string();
    tokio::spawn(samverka_gateway::server::serve(
        gateway,
        listener,
        std::future::pending(),
    ));

    let registrar_tls = net.agency_tls("registrar").unwrap();
    let registrar =
        samverka_gateway::net::client::connect(&gateway_address, "localhost", &registrar_tls)
            .await
            .unwrap();
    let request = grant_request(
        &net,
        DEMO_PURPOSE,
        &["education.course_result", "employment.period"],
        "impersonation",
    );
    ConsentsClient::new(registrar)
        .grant(sealed(&net, "registrar", request))
        .await
        .unwrap();
    let reader = samverka_gateway::net::client::connect(
        &gateway_address,
        "localhost",
        &net.agency_tls("reader").unwrap(),
    )
    .await
    .unwrap();
    let answer = RecordExchangeClient::new(reader)
        .get_records(demo_read())
        .await
        .unwrap()
        .into_inner();
    let outcome = |agency: &str| {
        answer
            .outcomes
            .iter()
            .find(|o| o.source_agency == agency)
            .unwrap()
            .status()
    };
    assert_eq!(outcome(EMP), SourceStatus::Unavailable);
    assert_eq!(outcome(HE), SourceStatus::Ok);
    assert!(
        answer
            .records
            .iter()
            .all(|r| r.record_type == "education.course_result")
    );
}
