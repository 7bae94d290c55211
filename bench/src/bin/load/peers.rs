//! The proxies the gateway is compared with: nginx and haproxy, and the
//! relay (`src/bin/relay.rs`, samverka's stack decoding nothing); their
//! configurations, and their processes, each in a process group of its own
//! that is stopped as a whole (nginx's workers too).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use samverka_bench::BoxError;
use samverka_certs::dev::DevPkiFiles;

/// A proxy process and its port, or why it is not running.
pub(crate) type Started = Result<(Peer, u16), BoxError>;

/// The process groups of the peers running, for [`stop_on_interrupt`].
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A peer process, started in a process group of its own (the group's id
/// is the process's); dropping it stops the whole group: SIGTERM to the
/// group, and SIGKILL to what is left of it after at most 5 s. Killing
/// only the process would leave nginx's workers running.
pub(crate) struct Peer(Child);

impl Peer {
    /// Starts `cmd` in a process group of its own.
    fn spawn(cmd: &mut Command) -> Result<Peer, BoxError> {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).spawn()?;
        lock_running().insert(child.id());
        Ok(Peer(child))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let group = self.0.id();
        if signal_group(group, "TERM") {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever did not stop, in the group or (if `kill` could not be
        // run) the process itself.
        signal_group(group, "KILL");
        let _ = self.0.kill();
        let _ = self.0.wait();
        lock_running().remove(&group);
    }
}

fn lock_running() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `signal` (a name, e.g. "TERM") to every process of the process
/// group `group`, through kill(1): the system call would need unsafe code.
/// Whether any process got it.
fn signal_group(group: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{group}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// On Ctrl-C, which no longer reaches the peers (they are not in the
/// terminal's foreground process group), stops their groups and exits as
/// the interrupt would have.
pub(crate) fn stop_on_interrupt() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            for group in lock_running().iter() {
                signal_group(*group, "TERM");
            }
            std::process::exit(130);
        }
    });
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits, for up to 5 s, until something listens on `port`.
pub(crate) async fn wait_for(port: u16) -> Result<(), BoxError> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing listens on port {port}").into())
}

fn pem_pair(cert: &Path, key: &Path, out: &Path) -> Result<PathBuf, BoxError> {
    std::fs::write(
        out,
        format!(
            "{}{}",
            std::fs::read_to_string(cert)?,
            std::fs::read_to_string(key)?
        ),
    )?;
    Ok(out.to_owned())
}

/// Starts nginx, with its files in `dir`, as a gRPC proxy to `backend`
/// with mutual TLS on both sides; returns it with its port.
pub(crate) fn start_nginx(
    dir: &Path,
    pki: &DevPkiFiles,
    backend: SocketAddr,
) -> Result<(Peer, u16), BoxError> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("nginx is not installed (apt-get install nginx)")?;
    let port = free_port()?;
    let d = dir.display();
    let (server_cert, server_key) = (pki.gateway.0.display(), pki.gateway.1.display());
    let (proxy_cert, proxy_key) = (
        pki.gateway_client.0.display(),
        pki.gateway_client.1.display(),
    );
    let ca = pki.ca_cert.display();
    let conf = format!(
        "worker_processes 2; daemon off; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_concurrent_streams 256;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate {server_cert}; ssl_certificate_key {server_key};
  ssl_client_certificate {ca}; ssl_verify_client on;
  client_body_temp_path {d}/nginx-body; proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fcgi; uwsgi_temp_path {d}/nginx-uwsgi; scgi_temp_path {d}/nginx-scgi;
  upstream backend {{ server {backend}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{port} ssl http2;
    location / {{ grpc_pass grpcs://backend;
      grpc_ssl_certificate {proxy_cert}; grpc_ssl_certificate_key {proxy_key};
      grpc_ssl_trusted_certificate {ca}; grpc_ssl_verify on;
      grpc_ssl_name localhost; grpc_ssl_session_reuse on; }} }} }}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let peer = Peer::spawn(
        Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok((peer, port))
}

/// Starts the relay built next to this program (`src/bin/relay.rs`) in
/// front of `backend`, with mutual TLS on both sides and the certificates
/// the gateway has; returns it with its port.
pub(crate) fn start_relay(pki: &DevPkiFiles, backend: SocketAddr) -> Result<(Peer, u16), BoxError> {
    let relay = std::env::current_exe()?.with_file_name("relay");
    if !relay.exists() {
        return Err(format!(
            "{} is not built (cargo build --release -p samverka-bench)",
            relay.display()
        )
        .into());
    }
    let port = free_port()?;
    let peer = Peer::spawn(
        Command::new(relay)
            .arg("--port")
            .arg(port.to_string())
            .arg("--upstream")
            .arg(backend.to_string())
            .arg("--ca")
            .arg(&pki.ca_cert)
            .arg("--cert")
            .arg(&pki.gateway.0)
            .arg("--key")
            .arg(&pki.gateway.1)
            .arg("--client-cert")
            .arg(&pki.gateway_client.0)
            .arg("--client-key")
            .arg(&pki.gateway_client.1)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )?;
    Ok((peer, port))
}

/// Starts haproxy, with its files in `dir`, as a gRPC proxy to `backend`
/// with mutual TLS on both sides; returns it with its port.
pub(crate) fn start_haproxy(
    dir: &Path,
    pki: &DevPkiFiles,
    backend: SocketAddr,
) -> Result<(Peer, u16), BoxError> {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("haproxy is not installed (apt-get install haproxy)")?;
    let port = free_port()?;
    let server = pem_pair(
        &pki.gateway.0,
        &pki.gateway.1,
        &dir.join("haproxy-server.pem"),
    )?;
    let client = pem_pair(
        &pki.gateway_client.0,
        &pki.gateway_client.1,
        &dir.join("haproxy-client.pem"),
    )?;
    let ca = pki.ca_cert.display();
    let conf = format!(
        "global
  nbthread 2
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:{port} ssl crt {server} ca-file {ca} verify required alpn h2
  default_backend be
backend be
  http-reuse always
  server b1 {backend} ssl verify required verifyhost localhost sni str(localhost) ca-file {ca} crt {client} alpn h2
",
        server = server.display(),
        client = client.display(),
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let peer = Peer::spawn(
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok((peer, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The processes of process group `group` that have not ended (zombies,
    /// which nobody may reap here, are not counted).
    fn live_members(group: u32) -> Vec<u32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...; comm may hold spaces.
            let Some((pid, rest)) = stat.split_once(" (") else {
                continue;
            };
            let Some((_, fields)) = rest.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = fields.split_whitespace().collect();
            if fields.get(2) == Some(&group.to_string().as_str())
                && fields[0] != "Z"
                && let Ok(pid) = pid.parse()
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Like nginx: a process with workers of its own, which killing the
    /// process alone would leave running.
    #[test]
    fn dropping_a_peer_stops_its_whole_process_group() {
        let peer = Peer::spawn(Command::new("sh").args(["-c", "sleep 60 & sleep 60 & wait"]))
            .expect("sh starts");
        let group = peer.0.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while live_members(group).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(live_members(group).len(), 3, "sh and its two workers");
        drop(peer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_members(group).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(live_members(group), Vec::<u32>::new());
        assert!(!lock_running().contains(&group));
    }
}
