//! deploy/compose (validated by docker-compose, its configurations checked
//! against a development PKI as its job `certs` writes one, its Prometheus
//! configuration by promtool) and deploy/systemd (`systemd-analyze verify`
//! and `security`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::tools::{python_yaml, root, run, text, tool, yaml_documents};

/// The exposure `systemd-analyze security` may rate the unit at most.
const MAX_EXPOSURE: f64 = 3.0;

pub(crate) fn check(bin: &Path) {
    let Some(compose) = tool(
        "docker-compose",
        &["version"],
        "apt-get install docker-compose",
    ) else {
        return;
    };
    let Some(_) = python_yaml() else {
        return;
    };
    let dir = root().join("deploy/compose");
    let file = dir.join("compose.yaml");
    let out = run(Command::new(&compose).arg("-f").arg(&file).arg("config"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = yaml_documents(&String::from_utf8(out.stdout).unwrap()).remove(0);
    let services = config["services"].as_object().unwrap();
    for name in [
        "certs",
        "postgres",
        "gateway-1",
        "gateway-2",
        "adapter-higher-education",
        "adapter-employment",
        "adapter-competence",
        "otel-collector",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    assert!(
        text(&services["certs"]["build"]["dockerfile"], "dockerfile").ends_with("Containerfile")
    );

    // The certs job's command, run here, writes what the others read.
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let command = strings(&services["certs"]["command"]);
    assert_eq!(command[..3], ["certs", "init", "--out"]);
    let out_dir = command[3].clone();
    run(Command::new(bin).args(&command[..3]).arg(&certs));
    let local = |path: &str| path.replace(&out_dir, &certs.display().to_string());

    for (name, service) in services {
        let ours = service["image"] == "localhost/samverka:dev";
        if !ours {
            continue;
        }
        assert_eq!(service["read_only"], true, "{name}");
        assert_eq!(service["user"], "65532:65532", "{name}");
        assert_eq!(service["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        for port in service["ports"].as_array().into_iter().flatten() {
            let published = port
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| port["host_ip"].as_str().unwrap_or("").to_owned());
            assert!(
                published.starts_with("127.0.0.1"),
                "{name} publishes {port} beyond the host"
            );
        }
        for (key, value) in service["environment"].as_object().into_iter().flatten() {
            if key.starts_with("SAMVERKA_ADAPTER_") && key != "SAMVERKA_ADAPTER_LISTEN" {
                let path = local(text(value, key));
                assert!(
                    Path::new(&path).exists(),
                    "{name}: {key} names {path}, never written"
                );
            }
        }
        // Every bind-mounted file is in the repository.
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume
                .as_str()
                .map(|v| v.split(':').next().unwrap().to_owned());
            if let Some(source) = source.filter(|s| s.starts_with('/')) {
                assert!(
                    Path::new(&source).exists(),
                    "{name} mounts {source}, missing"
                );
            }
        }
    }

    // The gateways' configuration checks, with the PKI where the job
    // writes it and nothing else changed.
    for gateway in ["gateway-1", "gateway-2"] {
        let command = strings(&services[gateway]["command"]);
        assert_eq!(command, ["serve", "--config", "/etc/samverka/gateway.toml"]);
    }
    let toml = std::fs::read_to_string(dir.join("gateway.toml")).unwrap();
    assert!(
        toml.contains("@postgres:5432/"),
        "the store is the compose service postgres"
    );
    let checked = tmp.path().join("gateway.toml");
    std::fs::write(&checked, local(&toml)).unwrap();
    let out = run(Command::new(bin)
        .arg("check-config")
        .arg("--config")
        .arg(&checked));
    eprintln!(
        "compose gateway.toml: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );

    // Prometheus' configuration, with the alert rules beside it as mounted.
    if let Some(promtool) = tool("promtool", &["--version"], "apt-get install prometheus") {
        let prometheus = tmp.path().join("prometheus");
        std::fs::create_dir_all(&prometheus).unwrap();
        std::fs::copy(
            dir.join("prometheus.yml"),
            prometheus.join("prometheus.yml"),
        )
        .unwrap();
        std::fs::copy(
            root().join("deploy/prometheus/samverka-alerts.yml"),
            prometheus.join("samverka-alerts.yml"),
        )
        .unwrap();
        run(Command::new(promtool)
            .args(["check", "config"])
            .arg(prometheus.join("prometheus.yml")));
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| text(v, "a list item").to_owned())
        .collect()
}

pub(crate) fn systemd(bin: &Path) {
    let Some(analyze) = tool("systemd-analyze", &["--version"], "apt-get install systemd") else {
        return;
    };
    let dir = root().join("deploy/systemd");
    let unit = std::fs::read_to_string(dir.join("samverka.service")).unwrap();
    let line = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
    };
    assert_eq!(line("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(line("LimitNOFILE"), "65536");
    assert_eq!(line("RestartPreventExitStatus"), "64");
    let user = line("User");
    let sysusers = std::fs::read_to_string(dir.join("samverka.sysusers")).unwrap();
    assert!(
        sysusers
            .lines()
            .any(|l| l.starts_with(&format!("u {user} "))),
        "samverka.sysusers does not create user {user}"
    );

    // verify checks that ExecStart's program exists: the unit as
    // installed, with the binary at the path it names.
    let tmp = tempfile::tempdir().unwrap();
    let installed = tmp.path().join("samverka.service");
    let program = line("ExecStart").split(' ').next().unwrap();
    std::fs::write(
        &installed,
        unit.replace(program, &bin.display().to_string()),
    )
    .unwrap();
    let out = run(Command::new(&analyze).arg("verify").arg(&installed));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");

    let out = run(Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&installed));
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for samverka.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}
