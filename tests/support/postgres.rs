//! A throwaway PostgreSQL cluster for one test: `initdb` into a temporary
//! directory, `pg_ctl start` on a free loopback port, `pg_ctl stop` on drop.
//!
//! Needs PostgreSQL's server binaries (Debian: `apt-get install
//! postgresql`, which `.ci/run` does). Without them [`PgCluster::start`]
//! prints why and returns `None`, and the test returns early. As root (CI)
//! the cluster runs as the `postgres` user, as PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_root: bool,
}

fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A cluster's TLS: the server's certificate and key, and the CA its
/// clients' certificates must come from.
pub struct ServerTls<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    pub client_ca_pem: &'a str,
}

impl PgCluster {
    /// Starts a cluster, or explains on stderr why the test is skipped.
    pub fn start() -> Option<PgCluster> {
        Self::start_with(None)
    }

    /// Starts a cluster that takes TCP connections only over TLS and only
    /// with a client certificate from `tls.client_ca_pem` whose common
    /// name is the user (`hostssl ... cert`).
    pub fn start_with_tls(tls: &ServerTls<'_>) -> Option<PgCluster> {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&ServerTls<'_>>) -> Option<PgCluster> {
        let Some(bin) = find_bin() else {
            eprintln!(
                "SKIPPED: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin \
                 (apt-get install postgresql; .ci/run installs them)"
            );
            return None;
        };
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("samverka-pg-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PgCluster {
            dir,
            bin,
            port,
            as_root,
        };
        if as_root {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(cluster.dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot hand the cluster directory to the postgres user");
        }
        let data = cluster.data();
        cluster.run(&format!(
            "{} -D {} -U postgres --auth=trust --no-sync -E UTF8 >/dev/null",
            shell_quote(&cluster.bin.join("initdb").display().to_string()),
            shell_quote(&data),
        ));
        if let Some(tls) = tls {
            let data = Path::new(&data);
            let write = |name: &str, text: &str| {
                let path = data.join(name);
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
            };
            write("server.crt", tls.cert_pem);
            write("server.key", tls.key_pem);
            write("client-ca.crt", tls.client_ca_pem);
            let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
            conf.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'client-ca.crt'\n",
            );
            std::fs::write(data.join("postgresql.conf"), conf).unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 cert\nhost all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
            if cluster.as_root {
                let ok = Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(data)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "cannot hand the TLS files to the postgres user");
            }
        }
        cluster.pg_ctl("start -w -t 30");
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, command: &str) {
        let status = if self.as_root {
            Command::new("su")
                .args(["postgres", "-c", command])
                .status()
        } else {
            Command::new("sh").args(["-c", command]).status()
        };
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "failed: {command}"
        );
    }

    fn pg_ctl(&self, action: &str) {
        let socket_dir = self.dir.path().display().to_string();
        self.run(&format!(
            "{} -D {} -l {} -o {} {action} >/dev/null",
            shell_quote(&self.bin.join("pg_ctl").display().to_string()),
            shell_quote(&self.data()),
            shell_quote(&self.dir.path().join("log").display().to_string()),
            shell_quote(&format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {socket_dir}",
                self.port
            )),
        ));
    }

    /// A URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (e.g. to show that the gateway then fails closed).
    pub fn stop(&self) {
        self.pg_ctl("stop -m fast -w");
    }

    /// Where the server's log is.
    pub fn log(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let socket_dir = self.dir.path().display().to_string();
        let command = format!(
            "{} -D {} -o {} stop -m immediate >/dev/null 2>&1",
            shell_quote(&self.bin.join("pg_ctl").display().to_string()),
            shell_quote(&self.data()),
            shell_quote(&format!("-k {socket_dir}")),
        );
        let _ = if self.as_root {
            Command::new("su")
                .args(["postgres", "-c", &command])
                .status()
        } else {
            Command::new("sh").args(["-c", &command]).status()
        };
    }
}
