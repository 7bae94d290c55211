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
    tls: Option<ClientTls>,
}

/// What a client of a TLS cluster needs: the CA that signed the server's
/// certificate, and a client certificate for the user `postgres`.
pub struct ClientTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
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

/// Writes a CA of its own, a server certificate for 127.0.0.1 and a
/// client certificate for the user `postgres` into `dir` (mode 0600, as
/// the server wants its key), and returns the client's files.
fn tls_files(dir: &Path) -> ClientTls {
    use samverka_certs::dev::{CertRequest, DevCa};
    use samverka_certs::{OrgNumber, Role};
    let org = OrgNumber::parse(samverka::cli::demo::GATEWAY_AGENCY).unwrap();
    let ca = DevCa::generate("samverka test database CA").unwrap();
    // For localhost and 127.0.0.1.
    let server = ca
        .issue(&CertRequest::new(org.clone(), Role::Gateway, "database"))
        .unwrap();
    // The common name is the database user.
    let client = ca
        .issue(&CertRequest::new(org, Role::Agency, "postgres"))
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        path.display().to_string()
    };
    write("server.crt", &server.cert_pem);
    write("server.key", &server.key_pem);
    ClientTls {
        ca: write("client-ca.pem", ca.cert_pem()),
        cert: write("client.pem", &client.cert_pem),
        key: write("client.key", &client.key_pem),
    }
}

impl PgCluster {
    /// Starts a cluster, or explains on stderr why the test is skipped.
    pub fn start() -> Option<PgCluster> {
        Self::start_with(false)
    }

    /// Starts a cluster that takes TCP connections only over TLS and only
    /// with a client certificate whose common name is the user
    /// (`hostssl ... cert`), from a CA of its own; [`PgCluster::url`] then
    /// asks for TLS with that CA and a client certificate for `postgres`.
    pub fn start_tls() -> Option<PgCluster> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Option<PgCluster> {
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
            tls: tls.then(|| tls_files(dir.path())),
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
        if tls {
            let (dir, data) = (cluster.dir.path().display(), Path::new(&data));
            let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
            conf.push_str(&format!(
                "\nssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
                 ssl_ca_file = '{dir}/client-ca.pem'\n"
            ));
            std::fs::write(data.join("postgresql.conf"), conf).unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 cert\nhost all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
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
    /// (Over TLS, with the cluster's CA and client certificate, when it
    /// was started with [`PgCluster::start_tls`].)
    pub fn url(&self) -> String {
        match &self.tls {
            Some(tls) => self.url_with(&format!(
                "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                tls.ca, tls.cert, tls.key
            )),
            None => self.url_with(""),
        }
    }

    /// A URL for the `postgres` database with `query` as its parameters.
    pub fn url_with(&self, query: &str) -> String {
        let base = format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port);
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    }

    /// The client's TLS files, for a cluster started with
    /// [`PgCluster::start_tls`].
    pub fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
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
