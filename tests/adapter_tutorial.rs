//! The adapter guide, `docs/writing-an-adapter.md`, followed as written:
//! its blocks fenced as `sh tutorial` run in order with bash, each of them
//! to success, those marked `sh tutorial background` started and left
//! running (until they log that they listen), so that the guide cannot
//! drift from the commands. The path ends in a first read through a real
//! gateway (`samverka records get`), whose `--json` answer is then read.
//!
//! What is substituted, and why:
//! - `cargo run -- ` is the built `samverka` binary (`CARGO_BIN_EXE_samverka`):
//!   the same command, without cargo inside a test;
//! - `cargo run -p samverka-adapter-my-register` is
//!   `samverka adapter run template`: after step 1 that crate is the
//!   template's code, which the built-in serves as shipped (its source is
//!   compiled into `samverka`), reading the same `SAMVERKA_ADAPTER_*`
//!   variables; building a crate inside a test would take minutes;
//! - `/tmp/samverka-tutorial` is a temporary directory, and the ports
//!   50070, 50051 and 9464 free ones;
//! - step 1 runs in a temporary directory holding copies of
//!   `adapters/template` and the root `Cargo.toml` (and its outcome is
//!   checked: no name of the template left where it would clash).
//!
//! Not run: step 4, `cargo test -p samverka-adapter-my-register` (a plain
//! `sh` block): that is the template's own conformance test, which `cargo
//! test --workspace` runs anyway.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// One `sh tutorial` block: its text, and whether it keeps running.
#[derive(Debug)]
struct Block {
    text: String,
    background: bool,
}

/// The `sh tutorial` blocks of `markdown`, in order.
fn tutorial_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for line in markdown.lines() {
        match &mut current {
            None => {
                let info: Vec<&str> = line
                    .strip_prefix("```")
                    .map(|i| i.split_whitespace().collect())
                    .unwrap_or_default();
                if info.len() >= 2 && info[0] == "sh" && info[1] == "tutorial" {
                    current = Some(Block {
                        text: String::new(),
                        background: info.get(2) == Some(&"background"),
                    });
                }
            }
            Some(block) if line.starts_with("```") => {
                blocks.push(std::mem::replace(
                    block,
                    Block {
                        text: String::new(),
                        background: false,
                    },
                ));
                current = None;
            }
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a tutorial block is not closed");
    blocks
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The guide's text of a block as the test runs it.
struct Substitutions {
    pairs: Vec<(String, String)>,
}

impl Substitutions {
    fn apply(&self, text: &str) -> String {
        self.pairs
            .iter()
            .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
    }
}

/// A bash process in its own process group, killed with the group.
struct Running {
    child: Child,
    what: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn bash(script: &str, cwd: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("SAMVERKA", BIN)
        // The start-up lines the test waits for are logged at info.
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    command
}

/// Runs a block to its end; panics, with its output, unless it succeeds.
fn run(script: &str, cwd: &Path) -> String {
    let child = bash(script, cwd).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            panic!("still running after 120 s:\n{script}");
        }
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "the guide's block failed ({}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

/// Starts a block that keeps running and waits until it says that it
/// listens: the SDK's `samverka adapter listening on` or the gateway's
/// `samverka gateway serving`.
fn start(script: &str, cwd: &Path) -> Running {
    let mut child = bash(script, cwd).spawn().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[background] {line}");
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let running = Running {
        child,
        what: script.to_owned(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line)
                if line.contains("samverka adapter listening on")
                    || line.contains("samverka gateway serving") =>
            {
                return running;
            }
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "never said that it listens:\n{}\n--- output\n{}",
                running.what,
                seen.join("\n")
            ),
        }
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_adapter_guide_leads_to_a_first_read() {
    let guide = std::fs::read_to_string(manifest_dir().join("docs/writing-an-adapter.md")).unwrap();
    let blocks = tutorial_blocks(&guide);
    // The path the guide promises: every step of it is a block run here.
    for step in [
        "cp -r adapters/template adapters/my-register",
        "certs init",
        "certs issue",
        "cargo run -p samverka-adapter-my-register",
        "adapter check",
        "check-config",
        "serve --config",
        "consent grant",
        "records get",
    ] {
        assert!(
            blocks.iter().any(|b| b.text.contains(step)),
            "no `sh tutorial` block runs {step:?}"
        );
    }

    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let files = temp.path().join("samverka-tutorial");
    std::fs::create_dir_all(repo.join("adapters")).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(manifest_dir().join("adapters/template"))
        .arg(repo.join("adapters/template"))
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::copy(manifest_dir().join("Cargo.toml"), repo.join("Cargo.toml")).unwrap();

    let substitutions = Substitutions {
        pairs: vec![
            (
                "cargo run -p samverka-adapter-my-register".into(),
                "\"$SAMVERKA\" adapter run template".into(),
            ),
            ("cargo run -- ".into(), "\"$SAMVERKA\" ".into()),
            ("/tmp/samverka-tutorial".into(), files.display().to_string()),
            ("50070".into(), free_port().to_string()),
            ("50051".into(), free_port().to_string()),
            ("9464".into(), free_port().to_string()),
        ],
    };

    let mut running = Vec::new();
    let mut outputs = Vec::new();
    for block in &blocks {
        let script = substitutions.apply(&block.text);
        assert!(
            !script.contains("cargo "),
            "a block the test cannot run as written:\n{script}"
        );
        if block.background {
            running.push(start(&script, &repo));
        } else {
            outputs.push((block.text.clone(), run(&script, &repo)));
        }
    }

    // Step 1 renamed everything that would clash with the template.
    let copy = repo.join("adapters/my-register");
    for file in ["Cargo.toml", "src/main.rs", "tests/conformance.rs"] {
        let text = std::fs::read_to_string(copy.join(file)).unwrap();
        assert!(
            !text.contains("template"),
            "{file} still names the template:\n{text}"
        );
    }
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\n    \"adapters/my-register\",\n"),
        "{manifest}"
    );

    let output_of = |command: &str| {
        outputs
            .iter()
            .find(|(text, _)| text.contains(command))
            .map(|(_, out)| out.as_str())
            .unwrap()
    };
    let check = output_of("adapter check");
    assert!(check.contains("11 of 11 checks passed"), "{check}");
    let read = output_of("records get");
    assert!(
        read.contains("education.vocational_diploma Automationstekniker"),
        "{read}"
    );
    assert!(
        read.contains("my-register (2021999095): OK, 1 record(s)"),
        "{read}"
    );

    // The same read as JSON.
    let read_block = blocks
        .iter()
        .find(|b| b.text.contains("records get"))
        .unwrap();
    let json = run(
        &format!(
            "{} --json",
            substitutions.apply(&read_block.text).trim_end()
        ),
        &repo,
    );
    let answer: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let records = answer["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{answer:#}");
    assert_eq!(records[0]["record_type"], "education.vocational_diploma");
    assert_eq!(records[0]["subject_id"], "199003142388");
    assert_eq!(records[0]["source_agency"], "2021999095");
    assert_eq!(
        records[0]["vocational_diploma"]["programme_name"],
        "Automationstekniker"
    );
    assert_eq!(answer["outcomes"][0]["source_name"], "my-register");
    assert_eq!(answer["outcomes"][0]["status"], "OK");
    assert!(
        !answer["audit_id"].as_str().unwrap_or_default().is_empty(),
        "{answer:#}"
    );
    // The gateway first, then the adapter.
    while running.pop().is_some() {}
}

#[test]
fn tutorial_blocks_are_found_with_their_kind() {
    let md = "text\n```sh tutorial\necho one\n```\n```sh\nnot run\n```\n\
              ```sh tutorial background\nsleep 1\n```\n";
    let blocks = tutorial_blocks(md);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!(blocks[0].text, "echo one\n");
    assert!(!blocks[0].background);
    assert!(blocks[1].background);
}
