//! Gateways as real `samverka serve` processes, with the reference
//! adapters served from the test process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use samverka_certs::dev::DevPkiFiles;

/// A gateway process, killed when dropped.
pub struct Replica {
    pub child: Child,
    pub address: SocketAddr,
    /// Its admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Every line it wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scheduling policy of each thread of process `pid` named `name`
/// (`/proc/PID/task/TID/stat`, field 41: 0 normal, 3 batch, 5 idle).
pub fn thread_policies(pid: u32, name: &str) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let read = |file: &str| std::fs::read_to_string(dir.join(file));
        // Either read fails once the thread has ended.
        let Ok(comm) = read("comm") else { continue };
        if comm.trim_end() != name {
            continue;
        }
        let Ok(stat) = read("stat") else { continue };
        // The name, field 2, is in parentheses and may hold spaces; the
        // fields after it start with field 3.
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        let policy = after_name.split_whitespace().nth(41 - 3).unwrap();
        policies.push(policy.parse().unwrap());
    }
    policies
}

/// Starts `samverka serve --config CONFIG` (the binary `bin`) and waits
/// for the log line that names its address.
pub fn start_replica(bin: &str, config: &Path) -> Replica {
    start_replica_env(bin, config, &[])
}

/// [`start_replica`] with further environment variables.
pub fn start_replica_env(bin: &str, config: &Path, env: &[(&str, &str)]) -> Replica {
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Text logs say `address=... admin_address=...`; JSON logs
            // have them in "fields".
            let field = |name: &str| match line.split(&format!(" {name}=")).nth(1) {
                Some(rest) => rest.split_whitespace().next().map(str::to_owned),
                None => serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"][name].as_str().map(str::to_owned)),
            };
            if let (Some(address), Some(admin)) = (field("address"), field("admin_address")) {
                let _ = tx.send((address, admin));
            }
            eprintln!("[gateway] {line}");
            lines.lock().unwrap().push(line);
        }
    });
    let (address, admin) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the gateway never said where it serves");
    Replica {
        child,
        address: address.parse().unwrap(),
        admin: admin.parse().unwrap(),
        log,
    }
}

/// Serves the demo's reference adapters on loopback until the test ends;
/// returns their names and addresses, for `demo_config`.
pub async fn spawn_adapters(pki: &DevPkiFiles) -> Vec<(String, SocketAddr)> {
    let mut addresses = Vec::new();
    for source in &samverka::cli::demo::DEMO_SOURCES {
        let (name, register) = (source.name, (source.register)());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push((name.to_owned(), listener.local_addr().unwrap()));
        let tls = samverka::cli::demo::adapter_tls(pki, name).unwrap();
        let stop = std::future::pending::<()>();
        tokio::spawn(samverka_adapter::serve_with_listener(
            register, listener, tls, stop,
        ));
    }
    addresses
}

/// The TLS material of the demo agency `name` in `pki`.
pub fn agency_tls(pki: &DevPkiFiles, name: &str) -> samverka_gateway::net::client::AgencyTls {
    let (_, cert, key) = pki.agencies.iter().find(|(n, _, _)| n == name).unwrap();
    samverka_gateway::net::client::AgencyTls::from_files(&pki.ca_cert, cert, key).unwrap()
}

/// A `samverka serve` process in `dir`: the demo's configuration for
/// `adapters` (SQLite store `dir/samverka.db`) with `extra` appended, and
/// `env` in its environment.
pub fn start_gateway(
    dir: &Path,
    pki: &DevPkiFiles,
    adapters: &[(String, SocketAddr)],
    extra: &str,
    env: &[(&str, &str)],
) -> Replica {
    start_edited_gateway(dir, pki, adapters, extra, env, |config| config)
}

/// Like [`start_gateway`], with the configuration as `edit` returns it.
pub fn start_edited_gateway(
    dir: &Path,
    pki: &DevPkiFiles,
    adapters: &[(String, SocketAddr)],
    extra: &str,
    env: &[(&str, &str)],
    edit: impl FnOnce(String) -> String,
) -> Replica {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        edit(samverka::cli::demo::demo_config(
            pki,
            "127.0.0.1:0",
            "127.0.0.1:0",
            adapters,
            &dir.join("samverka.db").display().to_string(),
            extra,
        )),
    )
    .unwrap();
    start_replica_env(env!("CARGO_BIN_EXE_samverka"), &config, env)
}

/// The SQLite store of a gateway started by [`start_gateway`] in `dir`.
pub async fn gateway_store(dir: &Path) -> samverka_gateway::store::Store {
    samverka_gateway::store::Store::open(&samverka_gateway::store::StoreLocation::parse(
        &dir.join("samverka.db").display().to_string(),
        dir,
    ))
    .await
    .unwrap()
}

/// The entry `audit_id` about `subject` in the audit trail of the gateway
/// started in `dir`; panics if there is none.
pub async fn audit_entry(
    dir: &Path,
    subject: &str,
    audit_id: &str,
) -> samverka_gateway::audit::AuditEntry {
    gateway_store(dir)
        .await
        .audit_entries(Some(subject))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.audit_id == audit_id)
        .unwrap_or_else(|| panic!("no audit entry {audit_id} about {subject}"))
}

impl Replica {
    /// An mTLS channel to this gateway as the demo agency `name`.
    pub async fn channel(&self, pki: &DevPkiFiles, name: &str) -> tonic::transport::Channel {
        samverka_gateway::net::client::connect(
            &self.address.to_string(),
            "localhost",
            &agency_tls(pki, name),
        )
        .await
        .unwrap()
    }

    /// Records, as the registrar, the reader's consent to read
    /// `record_types` of the demo person for the demo purpose, for a day.
    pub async fn grant(&self, pki: &DevPkiFiles, record_types: &[&str], request_id: &str) {
        let now = samverka_gateway::time::system_now_ms();
        samverka_proto::v1::consents_client::ConsentsClient::new(
            self.channel(pki, "registrar").await,
        )
        .grant(super::sealed_pki(
            pki,
            "registrar",
            samverka_proto::v1::GrantConsentRequest {
                subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
                grantee_agency: samverka::cli::demo::READER_AGENCY.into(),
                record_types: record_types.iter().map(|t| t.to_string()).collect(),
                purpose: samverka::cli::demo::DEMO_PURPOSE.into(),
                valid_until: Some(samverka_gateway::time::to_timestamp(now + 24 * 3600 * 1000)),
                request_id: request_id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    }

    /// A `RecordExchange` client as the reader agency.
    pub async fn reader(
        &self,
        pki: &DevPkiFiles,
    ) -> samverka_proto::v1::record_exchange_client::RecordExchangeClient<tonic::transport::Channel>
    {
        samverka_proto::v1::record_exchange_client::RecordExchangeClient::new(
            self.channel(pki, "reader").await,
        )
    }
}

/// Records, as the registrar, the reader's consent to read `types` of the
/// demo person for `purpose`.
pub async fn grant_on(gateway: &Replica, pki: &DevPkiFiles, purpose: &str, types: &[&str]) {
    let now = samverka_gateway::time::system_now_ms();
    samverka_proto::v1::consents_client::ConsentsClient::new(
        gateway.channel(pki, "registrar").await,
    )
    .grant(super::sealed_pki(
        pki,
        "registrar",
        samverka_proto::v1::GrantConsentRequest {
            subject_id: samverka::cli::demo::DEMO_SUBJECT.into(),
            grantee_agency: samverka::cli::demo::READER_AGENCY.into(),
            record_types: super::strings(types),
            purpose: purpose.into(),
            valid_until: Some(samverka_gateway::time::to_timestamp(now + super::DAY_MS)),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
}
