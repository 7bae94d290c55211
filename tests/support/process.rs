//! Gateways as real `samverka serve` processes, with the reference
//! adapters served from the test process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use samverka_adapter::AdapterTls;
use samverka_certs::dev::DevPkiFiles;

/// A gateway process, killed when dropped.
pub struct Replica {
    pub child: Child,
    pub address: SocketAddr,
    /// Every line it wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
            // Text logs say `address=...`; JSON logs have it in "fields".
            let address = match line.split("address=").nth(1) {
                Some(rest) => rest.split_whitespace().next().map(str::to_owned),
                None => serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["address"].as_str().map(str::to_owned)),
            };
            if let Some(address) = address {
                let _ = tx.send(address);
            }
            eprintln!("[gateway] {line}");
            lines.lock().unwrap().push(line);
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the gateway never said where it serves")
        .parse()
        .unwrap();
    Replica {
        child,
        address,
        log,
    }
}

/// Serves the demo's reference adapters on loopback until the test ends;
/// returns their names and addresses, for `demo_config`.
pub async fn spawn_adapters(pki: &DevPkiFiles) -> Vec<(String, SocketAddr)> {
    let mut addresses = Vec::new();
    for source in &samverka::demo::DEMO_SOURCES {
        let (name, register) = (source.name, (source.register)());
        let (_, cert, key) = pki.adapters.iter().find(|(n, _, _)| n == name).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push((name.to_owned(), listener.local_addr().unwrap()));
        let tls = AdapterTls::from_files(cert, key, &pki.ca_cert).unwrap();
        let stop = std::future::pending::<()>();
        tokio::spawn(samverka_adapter::serve_with_listener(
            register, listener, tls, stop,
        ));
    }
    addresses
}
