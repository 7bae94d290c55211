//! End to end: whether the gateway says it can serve. The gRPC health
//! service and server reflection answer on the mTLS port (and an SDK
//! adapter answers both too); reflection lists every service on the port
//! and resolves the descriptors a client needs to call them and to decode
//! a refusal's error details; a gateway whose audit commits fail
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

    let net = start().await;
    let gateway = net.channel("reader").await.unwrap();
    let mut health = HealthClient::new(gateway.clone());
    for service in [
        "",
        "samverka.v1.RecordExchange",
        "samverka.v1.Consents",
        "samverka.v1.AccessLog",
        "samverka.admin.v1.Registry",
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

    // Reflection lists every service on the port, and resolves what a
    // client needs to call them and to decode a refusal's details.
    let expected = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "samverka.admin.v1.Registry",
        "samverka.v1.AccessLog",
        "samverka.v1.Consents",
        "samverka.v1.RecordExchange",
        "samverka.v1.SelfDeclaredMeritService",
    ];
    assert_eq!(reflection::list_v1(gateway.clone()).await, expected);
    assert_eq!(reflection::list_v1alpha(gateway.clone()).await, expected);
    for symbol in [
        "google.rpc.ErrorInfo",
        "google.rpc.RetryInfo",
        "google.rpc.BadRequest",
        "google.rpc.Status",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "samverka.v1.RecordExchange",
        "samverka.v1.Consents",
        "samverka.v1.AccessLog",
        "samverka.admin.v1.Registry",
    ] {
        reflection::resolves(gateway.clone(), symbol).await;
    }

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
    let status = HealthClient::new(adapter.clone())
        .check(HealthCheckRequest {
            service: "samverka.adapter.v1.Adapter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    // ... and lists its services by reflection, the health service too.
    assert_eq!(
        reflection::list_v1(adapter.clone()).await,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "samverka.adapter.v1.Adapter",
        ]
    );
    reflection::resolves(adapter, "grpc.health.v1.Health").await;
}

/// A reflection client, as grpcurl is one: v1, and v1alpha (which grpcurl
/// before 1.8.8 speaks).
mod reflection {
    use tonic::transport::Channel;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
    use tonic_reflection::pb::v1alpha;

    async fn ask(channel: Channel, request: MessageRequest) -> MessageResponse {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let answer: ServerReflectionResponse = ServerReflectionClient::new(channel)
            .server_reflection_info(futures_util::stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .unwrap();
        answer.message_response.unwrap()
    }

    /// The services listed over v1, sorted.
    pub(crate) async fn list_v1(channel: Channel) -> Vec<String> {
        let MessageResponse::ListServicesResponse(list) =
            ask(channel, MessageRequest::ListServices(String::new())).await
        else {
            panic!("no service list");
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }

    /// The services listed over v1alpha, sorted.
    pub(crate) async fn list_v1alpha(channel: Channel) -> Vec<String> {
        use v1alpha::server_reflection_client::ServerReflectionClient;
        use v1alpha::server_reflection_request::MessageRequest;
        use v1alpha::server_reflection_response::MessageResponse;
        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let answer = ServerReflectionClient::new(channel)
            .server_reflection_info(futures_util::stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("no service list over v1alpha");
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }

    /// What the test reads of a `google.protobuf.FileDescriptorProto`.
    #[derive(Debug, Default)]
    struct File {
        name: String,
        package: String,
        dependency: Vec<String>,
        /// Its top-level messages' and services' names.
        defines: Vec<String>,
    }

    /// The fields of a protobuf message: (number, bytes of a
    /// length-delimited field); other wire types are skipped.
    fn fields(mut bytes: &[u8]) -> Vec<(u64, &[u8])> {
        fn varint(bytes: &mut &[u8]) -> u64 {
            let mut value = 0;
            for shift in (0..64).step_by(7) {
                let (b, rest) = bytes.split_first().expect("truncated varint");
                *bytes = rest;
                value |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
            }
            value
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes);
            match key & 7 {
                0 => {
                    varint(&mut bytes);
                }
                1 => bytes = &bytes[8..],
                5 => bytes = &bytes[4..],
                2 => {
                    let len = usize::try_from(varint(&mut bytes)).unwrap();
                    out.push((key >> 3, &bytes[..len]));
                    bytes = &bytes[len..];
                }
                other => panic!("wire type {other}"),
            }
        }
        out
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn decode(bytes: &[u8]) -> File {
        let mut file = File::default();
        for (number, value) in fields(bytes) {
            match number {
                1 => file.name = text(value),
                2 => file.package = text(value),
                3 => file.dependency.push(text(value)),
                // message_type and service: their name is field 1.
                4 | 6 => file.defines.extend(
                    fields(value)
                        .into_iter()
                        .filter(|(n, _)| *n == 1)
                        .map(|(_, v)| text(v)),
                ),
                _ => {}
            }
        }
        file
    }

    fn files(answer: MessageResponse, what: &str) -> Vec<File> {
        match answer {
            MessageResponse::FileDescriptorResponse(files) => files
                .file_descriptor_proto
                .iter()
                .map(|f| decode(f))
                .collect(),
            other => panic!("{what}: {other:?}"),
        }
    }

    /// `symbol` is resolved (`FileContainingSymbol`) to a file that
    /// defines it, and every file that file imports, transitively, is
    /// there too (`FileByFilename`), as a client needs to decode it.
    pub(crate) async fn resolves(channel: Channel, symbol: &str) {
        let answer = ask(
            channel.clone(),
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await;
        let found = files(answer, symbol);
        let (package, name) = symbol.rsplit_once('.').unwrap();
        let file = found
            .iter()
            .find(|f| f.package == package && f.defines.iter().any(|d| d == name))
            .unwrap_or_else(|| panic!("{symbol}: not defined in {found:?}"));
        let mut wanted: Vec<String> = file.dependency.clone();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(dependency) = wanted.pop() {
            if !seen.insert(dependency.clone()) {
                continue;
            }
            let answer = ask(
                channel.clone(),
                MessageRequest::FileByFilename(dependency.clone()),
            )
            .await;
            let got = files(answer, &dependency);
            let file = got
                .iter()
                .find(|f| f.name == dependency)
                .unwrap_or_else(|| panic!("{symbol}: its import {dependency} is not served"));
            wanted.extend(file.dependency.iter().cloned());
        }
    }
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
