//! End to end: whether the gateway says it can serve. The gRPC health
//! service and server reflection answer on the mTLS port (and an SDK
//! adapter answers health checks too); a gateway whose audit commits fail
//! is not ready, by `/readyz` on the admin listener, by the gRPC health
//! service and by `samverka_ready`, while `/healthz` stays 200, until a
//! commit succeeds again.

mod support;

use support::*;
use tonic::Code;

#[tokio::test]
async fn health_and_reflection_answer_on_the_mtls_ports() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let net = start().await;
    let gateway = net.channel("reader").await.unwrap();
    let mut health = HealthClient::new(gateway.clone());
    for service in [
        "",
        "samverka.v1.RecordExchange",
        "samverka.v1.Consents",
        "samverka.v1.AccessLog",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "samverka.v1.Nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(gateway)
        .server_reflection_info(futures_util::stream::iter(vec![list]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(services)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let mut names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "samverka.v1.AccessLog",
            "samverka.v1.Consents",
            "samverka.v1.RecordExchange"
        ]
    );

    // An adapter built with the SDK answers health checks too (as the gateway).
    let (_, address) = net.adapters[1];
    let gateway_tls = samverka_gateway::net::client::AgencyTls::from_files(
        &net.pki.ca_cert,
        &net.pki.gateway_client.0,
        &net.pki.gateway_client.1,
    )
    .unwrap();
    let adapter =
        samverka_gateway::net::client::connect(&address.to_string(), "localhost", &gateway_tls)
            .await
            .unwrap();
    let status = HealthClient::new(adapter)
        .check(HealthCheckRequest {
            service: "samverka.adapter.v1.Adapter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}

/// The gRPC health service's status of RecordExchange once it is `want`,
/// within a few of the gateway's 1 s updates; the metric `samverka_ready`
/// then agrees.
async fn wait_for_health(
    net: &samverka::cli::demo::Network,
    want: tonic_health::pb::health_check_response::ServingStatus,
) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut health = HealthClient::new(net.channel("reader").await.unwrap());
    let mut status = None;
    for _ in 0..50 {
        status = Some(
            health
                .check(HealthCheckRequest {
                    service: "samverka.v1.RecordExchange".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status(),
        );
        if status == Some(want) {
            let (_, metrics) = admin_get(net.admin_address, "/metrics").await;
            let ready = f64::from(want == ServingStatus::Serving);
            assert_eq!(sample(&metrics, "samverka_ready", &[]), ready);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("gRPC health says {status:?}, not {want:?}");
}

/// A store that still answers reads but refuses the audit trail's writes
/// (here a trigger makes SQLite refuse every insert into the trail, as a
/// full disk makes every commit fail): every read is refused, so
/// `/readyz` and the gRPC health service say so, with the reason, and a
/// load balancer sends the reads to another replica. `/healthz` stays 200:
/// a restart would not help. The first commit that succeeds makes the
/// gateway ready again; without traffic it reports ready again 10 s after
/// the failure, so that reads come and find out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_audit_commits_fail_is_not_ready_until_one_succeeds() {
    use tonic_health::pb::health_check_response::ServingStatus;

    let clock = samverka_gateway::Clock::manual(samverka_gateway::time::system_now_ms());
    let net = start_with_clock(clock.clone()).await;
    grant_demo_consent(&net).await;
    let mut reader = exchange(&net, "reader").await;
    reader.get_records(demo_read()).await.unwrap();
    let ready = || admin_get(net.admin_address, "/readyz");
    assert_eq!(ready().await, (200, "ready\n".to_owned()));

    let store = rusqlite::Connection::open(net.dir.path().join("samverka.db")).unwrap();
    store
        .execute_batch(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries \
             BEGIN SELECT RAISE(ABORT, 'no space left (test)'); END",
        )
        .unwrap();
    let status = reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(reason(&status), "STORE_UNAVAILABLE");
    let (code, body) = ready().await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("audit trail unavailable: the last audit commit failed")
            && body.contains("no space left (test)"),
        "{body}"
    );
    assert_eq!(admin_get(net.admin_address, "/healthz").await.0, 200);
    wait_for_health(&net, ServingStatus::NotServing).await;

    // No traffic for 10 s: ready again, and the next read finds the store
    // still refusing.
    clock.set_ms(clock.now_ms() + 9_999);
    assert_eq!(ready().await.0, 503);
    clock.set_ms(clock.now_ms() + 1);
    assert_eq!(ready().await.0, 200);
    reader.get_records(demo_read()).await.unwrap_err();
    assert_eq!(ready().await.0, 503);

    // The store mended: the next read's commit succeeds, and the gateway
    // is ready at once.
    store.execute_batch("DROP TRIGGER refuse_audit").unwrap();
    reader.get_records(demo_read()).await.unwrap();
    assert_eq!(ready().await, (200, "ready\n".to_owned()));
    wait_for_health(&net, ServingStatus::Serving).await;
}
