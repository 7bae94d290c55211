//! The outside tools the deployment checks run, each found or skipped
//! with the reason printed: kubectl (for its kustomize), kubernetes-validate,
//! hadolint, docker-compose, systemd-analyze, promtool, and Python's YAML
//! reader, which turns what they print into JSON. `.ci/run` installs them
//! all.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The repository's root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `program` if it runs (`--version` or `args` answering at all), else
/// None with the reason printed.
pub(crate) fn tool(program: &str, probe: &[&str], install: &str) -> Option<PathBuf> {
    match Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Some(PathBuf::from(program)),
        Err(e) => {
            eprintln!("SKIPPED: {program} not found ({e}); {install} (.ci/run installs it)");
            None
        }
    }
}

/// Debian 12's kubectl (1.20, whose kustomize is v2.0.3: the oldest the
/// material must render with), which `.ci/run` unpacks into
/// `.ci/.tools/kubernetes-client`; else `SAMVERKA_KUBECTL`; else the
/// `kubectl` on the PATH.
pub(crate) fn kubectl() -> Option<PathBuf> {
    let pinned = root().join(".ci/.tools/kubernetes-client/usr/bin/kubectl");
    if pinned.exists() {
        return Some(pinned);
    }
    if let Some(path) = std::env::var_os("SAMVERKA_KUBECTL") {
        return Some(path.into());
    }
    tool(
        "kubectl",
        &["version", "--client"],
        "apt-get download kubernetes-client and unpack it into .ci/.tools/kubernetes-client",
    )
}

/// The client version kubectl reports, e.g. `v1.20.2`.
pub(crate) fn kubectl_version(kubectl: &Path) -> String {
    let out = run(Command::new(kubectl).args(["version", "--client"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split(['"', ' ', '\n'])
        .find(|w| w.starts_with("v1."))
        .unwrap_or("unknown")
        .to_owned()
}

/// Python 3 with PyYAML (kubernetes-validate needs it too).
pub(crate) fn python_yaml() -> Option<PathBuf> {
    let ok = Command::new("python3")
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Some("python3".into())
    } else {
        eprintln!(
            "SKIPPED: python3 with PyYAML not found (pip install kubernetes-validate brings it; \
             .ci/run installs it)"
        );
        None
    }
}

/// Runs `command`, panicking with its output unless it succeeds.
pub(crate) fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every document of a YAML stream, as JSON values (PyYAML's safe
/// loader: YAML 1.1, as Kubernetes reads it).
pub(crate) fn yaml_documents(yaml: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml\n\
             docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]\n\
             json.dump(docs, sys.stdout, default=str)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(yaml.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "YAML did not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("not a list of documents: {other}"),
    }
}

/// `kubectl kustomize DIR`, parsed.
pub(crate) fn render(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let out = run(Command::new(kubectl).arg("kustomize").arg(dir));
    yaml_documents(&String::from_utf8(out.stdout).unwrap())
}

/// The rendered object of `kind` named `name`.
pub(crate) fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// A string field, panicking with its path when missing.
pub(crate) fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// Copies the directory tree `from` into `to`.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
