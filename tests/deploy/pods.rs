//! A rendered Deployment's container run as a process, the way the kubelet
//! would run it: the image's entrypoint (or the container's command) with
//! the container's arguments, only the environment the container names
//! (`$(VAR)` expanded, the downward API answered), and every mounted
//! ConfigMap and Secret written as the kubelet writes them (a timestamped
//! directory, a `..data` symlink to it, and one symlink per file through
//! `..data`), so that an update is the kubelet's atomic symlink swap.
//!
//! What a cluster would resolve is rewritten, and only that: each mount
//! path to the directory holding that volume here, and `rewrites` (the
//! listening addresses to free loopback ports, Service names to the
//! addresses of the processes behind them, PostgreSQL to the test's).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::tools::{object, text};

/// A container ready to start.
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// Container port numbers by name.
    pub(crate) ports: HashMap<String, u16>,
    /// Volume name to the directory it is mounted from here.
    pub(crate) volumes: HashMap<String, PathBuf>,
    /// The container's spec, for its probes.
    pub(crate) container: Value,
}

/// A started pod.
pub(crate) struct Running {
    pub(crate) child: Child,
    /// Every line it printed, stdout and stderr.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a
/// literal `$`, anything else stays as written.
pub(crate) fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(end) = rest.strip_prefix("$(").and_then(|r| r.find(')')) {
            let name = &rest[2..2 + end];
            match env.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[..3 + end]),
            }
            rest = &rest[3 + end..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Writes `files` into `dir` as the kubelet does, or swaps them in if
/// `dir` holds an earlier version: a new timestamped directory, a
/// `..data_tmp` symlink renamed over `..data`, the old directory removed.
pub(crate) fn write_volume(dir: &Path, files: &BTreeMap<String, Vec<u8>>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let version = dir.join(&stamp);
    for (path, bytes) in files {
        let file = version.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for path in files.keys() {
        let top = path.split('/').next().unwrap();
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), &link).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// The files a ConfigMap or Secret volume shows: every key, or the
/// `items` it names, as rendered or from `stand_ins` (Secrets that
/// something in the cluster makes, e.g. an operator).
fn volume_files(
    objects: &[Value],
    volume: &Value,
    stand_ins: &HashMap<String, BTreeMap<String, Vec<u8>>>,
) -> (BTreeMap<String, Vec<u8>>, u32, bool) {
    let (source, kind, name_key) = if volume["configMap"].is_object() {
        (&volume["configMap"], "ConfigMap", "name")
    } else if volume["secret"].is_object() {
        (&volume["secret"], "Secret", "secretName")
    } else {
        panic!(
            "volume {} is neither a ConfigMap nor a Secret",
            volume["name"]
        );
    };
    let name = text(&source[name_key], "a volume's object name");
    let data: BTreeMap<String, Vec<u8>> = match objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    {
        Some(o) if kind == "Secret" => o["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text(v, "Secret data").replace('\n', ""))
                    .unwrap();
                (k.clone(), bytes)
            })
            .collect(),
        Some(o) => o["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), text(v, "ConfigMap data").as_bytes().to_vec()))
            .collect(),
        None => stand_ins
            .get(name)
            .unwrap_or_else(|| panic!("{kind} {name} is neither rendered nor stood in for"))
            .clone(),
    };
    let files = match source["items"].as_array() {
        None => data,
        Some(items) => items
            .iter()
            .map(|item| {
                let key = text(&item["key"], "items[].key");
                let bytes = data
                    .get(key)
                    .unwrap_or_else(|| panic!("{kind} {name} has no key {key}"))
                    .clone();
                (text(&item["path"], "items[].path").to_owned(), bytes)
            })
            .collect(),
    };
    let mode = source["defaultMode"].as_u64().unwrap_or(0o644) as u32;
    (files, mode, kind == "ConfigMap")
}

/// The container `container` of Deployment `deployment` as pod `name`,
/// its volumes written under `root`. `programs` maps the image's paths to
/// this machine's (the entrypoint `image_entrypoint` when the container
/// names no command), `rewrites` what the cluster would resolve.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    objects: &[Value],
    deployment: &str,
    container: &str,
    name: &str,
    root: &Path,
    image_entrypoint: &[String],
    programs: &HashMap<String, PathBuf>,
    stand_ins: &HashMap<String, BTreeMap<String, Vec<u8>>>,
    rewrites: &[(String, String)],
) -> Pod {
    let spec = &object(objects, "Deployment", deployment)["spec"]["template"]["spec"];
    let c = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .unwrap_or_else(|| panic!("no container {container} in {deployment}"))
        .clone();
    let namespace = object(objects, "Deployment", deployment)["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();

    // Mounts first: every path that names a mounted file is rewritten.
    let mut volumes = HashMap::new();
    let mut mounts: Vec<(String, String)> = Vec::new();
    for mount in c["volumeMounts"].as_array().into_iter().flatten() {
        assert!(
            mount["subPath"].is_null(),
            "{deployment}: a subPath mount never sees the kubelet's updates"
        );
        let volume = text(&mount["name"], "volumeMounts[].name");
        let dir = root.join(name).join(volume);
        let path = text(&mount["mountPath"], "mountPath").trim_end_matches('/');
        mounts.push((path.to_owned(), dir.display().to_string()));
        volumes.insert(volume.to_owned(), dir);
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let rewrite = |value: &str| {
        let mut value = value.to_owned();
        for (from, to) in mounts.iter().chain(rewrites) {
            value = value.replace(from.as_str(), to);
        }
        value
    };
    for mount in c["volumeMounts"].as_array().into_iter().flatten() {
        let volume_name = text(&mount["name"], "volumeMounts[].name");
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == volume_name)
            .unwrap_or_else(|| panic!("{deployment}: no volume {volume_name}"));
        let (mut files, mode, config_map) = volume_files(objects, volume, stand_ins);
        if config_map {
            for bytes in files.values_mut() {
                if let Ok(text) = std::str::from_utf8(bytes) {
                    *bytes = rewrite(text).into_bytes();
                }
            }
        }
        write_volume(&volumes[volume_name], &files, mode);
    }

    let mut env: Vec<(String, String)> = Vec::new();
    for var in c["env"].as_array().into_iter().flatten() {
        let key = text(&var["name"], "env[].name").to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            expand(value, &env)
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => name.to_owned(),
                Some("metadata.namespace") => namespace.clone(),
                Some("status.podIP") => "127.0.0.1".to_owned(),
                other => panic!("{deployment}: env {key} from {other:?} is not emulated"),
            }
        };
        env.push((key, rewrite(&value)));
    }
    let command: Vec<String> = match c["command"].as_array() {
        Some(command) => command.iter().map(|a| text(a, "command").into()).collect(),
        None => image_entrypoint.to_vec(),
    };
    let program = programs
        .get(&command[0])
        .unwrap_or_else(|| panic!("{deployment}: the image has no {}", command[0]))
        .clone();
    let args = command[1..]
        .iter()
        .cloned()
        .chain(
            c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| text(a, "args").to_owned()),
        )
        .map(|a| rewrite(&expand(&a, &env)))
        .collect();
    let ports = c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_owned(),
                p["containerPort"].as_u64()? as u16,
            ))
        })
        .collect();
    Pod {
        name: name.to_owned(),
        program,
        args,
        env,
        ports,
        volumes,
        container: c,
    }
}

impl Pod {
    /// Starts it with only its own environment (and the image's PATH).
    pub(crate) fn start(&self) -> Running {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        spawn(&self.name, command)
    }
}

/// Starts `command`, its stdout and stderr kept (and echoed, prefixed
/// with `name`).
pub(crate) fn spawn(name: &str, mut command: Command) -> Running {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
    for stream in [out, err] {
        let (log, name) = (log.clone(), name.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
                log.lock().unwrap().push(line);
            }
        });
    }
    Running { child, log }
}

/// The addresses a gateway's log line "samverka gateway serving" names:
/// the gRPC listener's and the admin listener's (text or JSON logs).
pub(crate) fn gateway_serving(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if !line.contains("samverka gateway serving") {
        return None;
    }
    let field = |name: &str| match line.split(&format!(" {name}=")).nth(1) {
        Some(rest) => rest.split_whitespace().next().map(str::to_owned),
        None => serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v["fields"][name].as_str().map(str::to_owned)),
    };
    Some((
        field("address")?.parse().ok()?,
        field("admin_address")?.parse().ok()?,
    ))
}

impl Running {
    /// The first answer of `find` over its lines, waiting up to 30 s;
    /// panics, with the log, if it exits or never says.
    pub(crate) fn wait_for<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.log.lock().unwrap().iter().find_map(|l| find(l)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "exited ({status}) before {what}:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "never said {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs one probe of the container (`httpGet` or `tcpSocket`) against
/// `listening`, its container ports as bound here; Ok when the kubelet
/// would count it a success.
pub(crate) fn probe(
    pod: &Pod,
    listening: &HashMap<u16, SocketAddr>,
    probe: &Value,
) -> Result<String, String> {
    let action = if probe["httpGet"].is_object() {
        &probe["httpGet"]
    } else if probe["tcpSocket"].is_object() {
        &probe["tcpSocket"]
    } else {
        return Err(format!("unemulated probe {probe}"));
    };
    let port = match &action["port"] {
        Value::String(name) => *pod
            .ports
            .get(name)
            .ok_or_else(|| format!("the probe names port {name}, which the container lacks"))?,
        Value::Number(n) => n.as_u64().unwrap() as u16,
        other => return Err(format!("bad probe port {other}")),
    };
    let address = listening
        .get(&port)
        .ok_or_else(|| format!("nothing listens on container port {port}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(address, Duration::from_secs(2))
        .map_err(|e| format!("{address}: {e}"))?;
    let Some(path) = action["path"].as_str() else {
        return Ok(format!("tcp {address}"));
    };
    use std::io::{Read, Write};
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-probe/1.30\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status: u16 = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {response:?}"))?;
    if (200..400).contains(&status) {
        Ok(format!("GET {path} on {address}: {status}"))
    } else {
        Err(format!("GET {path} on {address}: {status} {response}"))
    }
}
