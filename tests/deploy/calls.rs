//! Calls the deployment test makes: probes until they answer, and the
//! demo's registrar and reader through a gateway replica.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use samverka_certs::dev::DevPkiFiles;
use samverka_gateway::net::client::{AgencyTls, connect};

use super::pods;

/// Retries `f` for up to `within`.
pub(crate) fn eventually<T>(
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The probes of `pod`'s container, each until it succeeds (within 30 s,
/// the startup probe's budget and more).
pub(crate) fn probe_all(pod: &pods::Pod, listening: &HashMap<u16, SocketAddr>) -> usize {
    let mut ran = 0;
    for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let probe = &pod.container[kind];
        if probe.is_null() {
            continue;
        }
        let said = eventually(Duration::from_secs(30), kind, || {
            pods::probe(pod, listening, probe)
        });
        eprintln!("{}: {kind}: {said}", pod.name);
        ran += 1;
    }
    ran
}

fn agency(pki: &DevPkiFiles, name: &str) -> AgencyTls {
    let (_, cert, key) = pki.agencies.iter().find(|(n, _, _)| n == name).unwrap();
    AgencyTls::from_files(&pki.ca_cert, cert, key).unwrap()
}

/// Reads the demo person's records through `gateway` as the reader.
pub(crate) async fn read(gateway: SocketAddr, pki: &DevPkiFiles) -> Result<usize, tonic::Status> {
    use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
    let channel = connect(&gateway.to_string(), "localhost", &agency(pki, "reader"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let answer = RecordExchangeClient::new(channel)
        .get_records(super::support::demo_read())
        .await?
        .into_inner();
    Ok(answer.records.len())
}

/// Records, as the registrar, the reader's consent to the demo read.
pub(crate) async fn grant(gateway: SocketAddr, pki: &DevPkiFiles) {
    use samverka::cli::demo::{
        DEMO_PURPOSE, DEMO_RECORD_TYPES, DEMO_SUBJECT, DemoLogin, READER_AGENCY,
    };
    use samverka_proto::v1::consents_client::ConsentsClient;
    let channel = connect(&gateway.to_string(), "localhost", &agency(pki, "registrar"))
        .await
        .unwrap();
    let now = samverka_gateway::time::system_now_ms();
    let request = samverka_proto::v1::GrantConsentRequest {
        subject_id: DEMO_SUBJECT.into(),
        grantee_agency: READER_AGENCY.into(),
        record_types: DEMO_RECORD_TYPES.iter().map(|t| t.to_string()).collect(),
        purpose: DEMO_PURPOSE.into(),
        valid_until: Some(samverka_gateway::time::to_timestamp(now + 24 * 3600 * 1000)),
        request_id: "deploy-1".into(),
        ..Default::default()
    };
    let login = DemoLogin::new(
        pki,
        "registrar",
        DEMO_SUBJECT,
        samverka_gateway::Clock::system(),
    )
    .unwrap();
    ConsentsClient::new(channel)
        .grant(login.seal(request))
        .await
        .unwrap();
}
