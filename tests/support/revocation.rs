//! Helpers of `tests/revocation.rs`: the `samverka` command, the demo PKI
//! made by `samverka certs init`, whether a certificate is answered, the
//! gateway's log, adapters that restart on the same address, stale CRLs
//! and the CRL metrics.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{GetRecordsRequest, ListSourcesRequest, source_outcome};

use super::process::{Replica, start_replica};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

pub fn samverka(args: &[&str]) -> String {
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
pub fn certs_init(dir: &Path) -> (std::path::PathBuf, String, samverka_certs::dev::DevPkiFiles) {
    let certs = dir.join("certs");
    let certs_arg = certs.display().to_string();
    samverka(&["certs", "init", "--out", &certs_arg]);
    let pki =
        samverka_certs::dev::existing_dev_pki(&certs, &samverka::cli::demo::pki_spec()).unwrap();
    (certs, certs_arg, pki)
}

/// Whether `cert` gets an answer from the gateway on a new connection.
pub async fn answered(gateway: &Replica, ca: &Path, cert: &Path, key: &Path) -> bool {
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
pub async fn until_answered(gateway: &Replica, ca: &Path, cert: &Path, key: &Path, expected: bool) {
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
pub async fn until_logged(gateway: &Replica, words: &[&str]) -> String {
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

/// The demo's reference adapters served from this test, each stoppable
/// and restartable on the same address (so that the gateway makes a new
/// connection, with a new handshake, to it).
pub struct Sources {
    pki: samverka_certs::dev::DevPkiFiles,
    running: Vec<(
        String,
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Sources {
    pub async fn start(pki: &samverka_certs::dev::DevPkiFiles) -> Sources {
        let mut sources = Sources {
            pki: pki.clone(),
            running: Vec::new(),
        };
        for source in &samverka::cli::demo::DEMO_SOURCES {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sources.serve(source.name, listener);
        }
        sources
    }

    fn serve(&mut self, name: &str, listener: tokio::net::TcpListener) {
        let source = samverka::cli::demo::DEMO_SOURCES
            .iter()
            .find(|s| s.name == name)
            .unwrap();
        let (_, cert, key) = self
            .pki
            .adapters
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap();
        let tls = samverka_adapter::AdapterTls::from_files(cert, key, &self.pki.ca_cert).unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            samverka_adapter::serve_with_listener((source.register)(), listener, tls, stopped)
                .await
                .unwrap();
        });
        self.running.push((name.to_owned(), address, stop, task));
    }

    pub fn addresses(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.running
            .iter()
            .map(|(n, a, _, _)| (n.clone(), *a))
            .collect()
    }

    /// Stops the adapter `name` (its connections closed) and serves it
    /// again on the same address.
    pub async fn restart(&mut self, name: &str) {
        let i = self.running.iter().position(|(n, ..)| n == name).unwrap();
        let (_, address, stop, task) = self.running.remove(i);
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the adapter did not stop")
            .unwrap();
        for _ in 0..100 {
            if let Ok(listener) = tokio::net::TcpListener::bind(address).await {
                self.serve(name, listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{address} could not be bound again");
    }
}

/// Each source's outcome of the demo read by the reader, by source name,
/// and the records' source agencies.
pub async fn read_outcomes(
    gateway: &Replica,
    pki: &samverka_certs::dev::DevPkiFiles,
) -> (Vec<(String, source_outcome::Status)>, Vec<String>) {
    let answer = gateway
        .reader(pki)
        .await
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
    (
        answer
            .outcomes
            .iter()
            .map(|o| (o.source_name.clone(), o.status()))
            .collect(),
        answer
            .records
            .iter()
            .map(|r| r.source_agency.clone())
            .collect(),
    )
}

/// Reads until the employment source's outcome is `expected` (at most
/// 15 s); returns that read's outcomes and records' sources.
pub async fn until_employment(
    gateway: &Replica,
    pki: &samverka_certs::dev::DevPkiFiles,
    expected: source_outcome::Status,
) -> (Vec<(String, source_outcome::Status)>, Vec<String>) {
    let mut last = None;
    for _ in 0..60 {
        let (outcomes, records) = read_outcomes(gateway, pki).await;
        if outcomes.contains(&("employment".to_owned(), expected)) {
            return (outcomes, records);
        }
        last = Some(outcomes);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the employment source never answered {expected:?}: {last:?}");
}

/// A CRL signed by the PKI's CA in `certs` whose nextUpdate passed a day
/// ago, written over `crl.pem`.
pub fn write_stale_crl(certs: &Path) {
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).unwrap();
    let ca = samverka_certs::dev::DevCa::from_pem(&read("ca.pem"), &read("ca.key")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let crl = ca
        .crl_valid(
            &[],
            7,
            now - time::Duration::days(8),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(certs.join("crl.pem"), crl).unwrap();
}

/// A `samverka serve` process with the demo's configuration and
/// `stale_crl` as given (`None`: the key left out, the default).
pub fn start_with_stale_crl_policy(
    dir: &Path,
    pki: &samverka_certs::dev::DevPkiFiles,
    adapters: &[(String, std::net::SocketAddr)],
    policy: Option<&str>,
) -> Replica {
    let mut text = samverka::cli::demo::demo_config(
        pki,
        "127.0.0.1:0",
        "127.0.0.1:0",
        adapters,
        &dir.join("samverka.db").display().to_string(),
        "",
    );
    if let Some(policy) = policy {
        text = text.replacen(
            "\nstore = ",
            &format!("\nstale_crl = \"{policy}\"\nstore = "),
            1,
        );
    }
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    start_replica(BIN, &config)
}

/// The `samverka_crl_*` samples of the CA's list: next update, stale.
pub async fn crl_metrics(gateway: &Replica) -> (f64, f64) {
    let (code, text) = super::admin_get(gateway.admin, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        text.contains("# HELP samverka_crl_stale ")
            && text.contains("# HELP samverka_crl_next_update_timestamp_seconds "),
        "{text}"
    );
    let issuer = [(
        "issuer",
        "CN=samverka development CA, O=samverka development PKI",
    )];
    let next_update = super::sample(&text, "samverka_crl_next_update_timestamp_seconds", &issuer);
    assert!(next_update > 0.0, "no nextUpdate for {issuer:?} in\n{text}");
    (
        next_update,
        super::sample(&text, "samverka_crl_stale", &issuer),
    )
}
