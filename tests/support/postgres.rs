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

impl PgCluster {
    /// Starts a cluster, or explains on stderr why the test is skipped.
    pub fn start() -> Option<PgCluster> {
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
