//! `samverka check-config` opens every file a configuration names and
//! reports every problem as `FILE:LINE: KEY: REASON`, exiting 64 on any
//! error and 0 with warnings only; `samverka serve` exits 64 on the same
//! errors, which the systemd unit does not restart.
//!
//! A corpus of broken configurations over one development PKI: each case
//! changes lines of a good configuration and names the lines and reasons
//! it expects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use samverka_certs::dev::{CertRequest, DevCa, DevPkiSpec, write_dev_pki};
use samverka_certs::{OrgNumber, Role};
use time::{Duration, OffsetDateTime};

const BIN: &str = env!("CARGO_BIN_EXE_samverka");

/// A good configuration; paths are relative to its directory. The line
/// numbers the cases expect are those of this text.
const GOOD: &str = r#"[gateway]
address = "127.0.0.1:0"
admin_address = "127.0.0.1:0"
org_number = "2021999012"
ca_cert = "certs/ca.pem"
cert = "certs/gateway.pem"
key = "certs/gateway.key"
client_cert = "certs/gateway-client.pem"
client_key = "certs/gateway-client.key"
crls = ["certs/crl.pem"]
store = "samverka.db"
"#;

/// A directory with a development PKI (`certs/`), a second, unrelated one
/// (`other/`), and certificates of chosen validity from the first CA.
struct Setup {
    dir: tempfile::TempDir,
}

fn gateway_org() -> OrgNumber {
    OrgNumber::parse("2021999012").unwrap()
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let spec = DevPkiSpec {
            gateway: gateway_org(),
            agencies: Vec::new(),
            adapters: Vec::new(),
        };
        write_dev_pki(&dir.path().join("certs"), &spec).unwrap();
        write_dev_pki(&dir.path().join("other"), &spec).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues `certs/NAME.pem` and `.key` from the first CA, a gateway
    /// server certificate valid from `not_before` to `not_after`.
    fn issue(&self, name: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) {
        let read = |f: &str| std::fs::read_to_string(self.path(f)).unwrap();
        let ca = DevCa::from_pem(&read("certs/ca.pem"), &read("certs/ca.key")).unwrap();
        let mut request = CertRequest::new(gateway_org(), Role::Gateway, "samverka gateway");
        request.not_before = not_before;
        request.not_after = not_after;
        let issued = ca.issue(&request).unwrap();
        std::fs::write(self.path(&format!("certs/{name}.pem")), issued.cert_pem).unwrap();
        std::fs::write(self.path(&format!("certs/{name}.key")), issued.key_pem).unwrap();
    }

    /// Writes GOOD with each `(from, to)` replaced once, as `NAME.toml`.
    fn config(&self, name: &str, changes: &[(&str, &str)]) -> PathBuf {
        let mut text = GOOD.to_owned();
        for (from, to) in changes {
            assert!(text.contains(from), "{from}");
            text = text.replacen(from, to, 1);
        }
        let path = self.path(&format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SAMVERKA_CONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of stderr that report a problem of `config`: `(line, rest)`.
fn problems(out: &Output, config: &Path) -> Vec<(usize, String)> {
    let prefix = format!("{}:", config.display());
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (line, rest) = rest.split_once(": ").unwrap();
            (line.parse().unwrap(), rest.to_owned())
        })
        .collect()
}

/// A broken configuration: its name, the changes to GOOD that make it, and
/// the problems expected (each a line and parts of what follows it).
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [Expected<'a>]);

/// A problem expected on a line: parts its key and reason must contain.
type Expected<'a> = (usize, &'a [&'a str]);

/// Checks that `check-config` exits `code` and reports exactly the
/// `expected` problems: each a line and the key and reason parts that line
/// must contain.
fn expect(out: &Output, config: &Path, code: i32, expected: &[Expected<'_>]) {
    let found = problems(out, config);
    let all = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{all}");
    assert_eq!(
        found.len(),
        expected.len(),
        "expected {expected:?}, got:\n{all}"
    );
    for ((line, rest), (want_line, parts)) in found.iter().zip(expected) {
        assert_eq!(line, want_line, "{all}");
        for part in *parts {
            assert!(rest.contains(part), "{part:?} not in {rest:?}\n{all}");
        }
    }
}

#[test]
fn a_good_configuration_is_ok() {
    let s = Setup::new();
    let config = s.config("good", &[]);
    let out = run(&["check-config"], &config);
    expect(&out, &config, 0, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": ok ("), "{stdout}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_corpus_of_broken_configurations() {
    let s = Setup::new();
    let now = OffsetDateTime::now_utc();
    s.issue(
        "expired",
        now - Duration::days(100),
        now - Duration::days(1),
    );
    s.issue("future", now + Duration::days(1), now + Duration::days(90));
    s.issue(
        "revoked",
        now - Duration::hours(1),
        now + Duration::days(90),
    );
    let revoked = std::fs::read_to_string(s.path("certs/revoked.pem")).unwrap();
    samverka_certs::dev::revoke(&s.path("certs"), &revoked).unwrap();
    std::fs::write(
        s.path("certs/broken.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB%%%% not base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        s.path("certs/garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(s.path("certs/empty.key"), "no key here\n").unwrap();
    std::fs::write(s.path("notadb.db"), "hello, not SQLite").unwrap();

    let cases: &[Case<'_>] = &[
        (
            "missing-ca",
            &[("certs/ca.pem", "certs/nope.pem")],
            &[(5, &["gateway.ca_cert: cannot read ", "nope.pem"])],
        ),
        (
            "missing-cert",
            &[("certs/gateway.pem", "certs/nope.pem")],
            &[(6, &["gateway.cert: cannot read ", "nope.pem"])],
        ),
        (
            "missing-key-and-crl",
            &[
                ("certs/gateway-client.key", "certs/nope.key"),
                ("certs/crl.pem", "certs/nope-crl.pem"),
            ],
            &[
                (9, &["gateway.client_key: cannot read ", "nope.key"]),
                (10, &["gateway.crls[0]: cannot read ", "nope-crl.pem"]),
            ],
        ),
        (
            "key-not-the-certs",
            &[("certs/gateway.key", "certs/gateway-client.key")],
            &[(
                7,
                &[
                    "gateway.key: ",
                    "gateway-client.key: does not belong to the certificate of gateway.cert",
                ],
            )],
        ),
        (
            "not-signed-by-the-ca",
            &[
                ("certs/gateway.pem", "other/gateway.pem"),
                ("certs/gateway.key", "other/gateway.key"),
            ],
            &[(
                6,
                &["gateway.cert: ", "not issued by a CA of gateway.ca_cert"],
            )],
        ),
        (
            "client-cert-as-server-cert",
            &[
                ("certs/gateway.pem", "certs/gateway-client.pem"),
                ("certs/gateway.key", "certs/gateway-client.key"),
            ],
            &[(
                6,
                &["gateway.cert: ", "not valid for TLS server authentication"],
            )],
        ),
        (
            "revoked",
            &[
                ("certs/gateway.pem", "certs/revoked.pem"),
                ("certs/gateway.key", "certs/revoked.key"),
            ],
            &[(6, &["gateway.cert: ", "revoked by a list of gateway.crls"])],
        ),
        (
            "expired",
            &[
                ("certs/gateway.pem", "certs/expired.pem"),
                ("certs/gateway.key", "certs/expired.key"),
            ],
            &[(
                6,
                &[
                    "gateway.cert: ",
                    "expired.pem: the certificate",
                    "expired on ",
                ],
            )],
        ),
        (
            "not-yet-valid",
            &[
                ("certs/gateway-client.pem", "certs/future.pem"),
                ("certs/gateway-client.key", "certs/future.key"),
            ],
            // A server certificate as client certificate, too.
            &[
                (8, &["gateway.client_cert: ", "is not valid before "]),
                (8, &["gateway.client_cert: ", "TLS client authentication"]),
            ],
        ),
        (
            "unparsable-pem",
            &[("certs/ca.pem", "certs/broken.pem")],
            &[(5, &["gateway.ca_cert: ", "broken.pem: not PEM"])],
        ),
        (
            "pem-of-no-certificate",
            &[("certs/gateway.pem", "certs/garbage.pem")],
            &[(
                6,
                &[
                    "gateway.cert: ",
                    "garbage.pem: the certificate does not parse",
                ],
            )],
        ),
        (
            "no-key-in-the-key-file",
            &[("certs/gateway.key", "certs/empty.key")],
            &[(7, &["gateway.key: ", "empty.key: no PEM private key in it"])],
        ),
        (
            "store-not-sqlite-and-no-directory",
            &[("samverka.db", "notadb.db")],
            &[(11, &["gateway.store: ", "notadb.db: not a SQLite database"])],
        ),
        (
            "store-directory-missing",
            &[("samverka.db", "no/such/dir/samverka.db")],
            &[(11, &["gateway.store: ", "its directory ", "does not exist"])],
        ),
        (
            "two-errors-at-once",
            &[
                ("certs/ca.pem", "certs/nope.pem"),
                ("certs/gateway-client.key", "certs/gateway.key"),
            ],
            &[
                (5, &["gateway.ca_cert: cannot read "]),
                (
                    9,
                    &["gateway.client_key: ", "does not belong to the certificate"],
                ),
            ],
        ),
        (
            "a-bad-value-and-a-missing-file",
            &[
                ("2021999012", "2021999013"),
                ("certs/gateway.pem", "certs/nope.pem"),
            ],
            &[(4, &["check digit"]), (6, &["gateway.cert: cannot read "])],
        ),
    ];
    for (name, changes, expected) in cases {
        let config = s.config(name, changes);
        let out = run(&["check-config"], &config);
        let errors = expected.len();
        let count = format!("({errors} error{}):", if errors == 1 { "" } else { "s" });
        assert!(stderr(&out).contains(&count), "{name}: {}", stderr(&out));
        expect(&out, &config, 64, expected);
        assert!(out.stdout.is_empty(), "{name}");
    }
}

#[test]
fn a_certificate_expiring_soon_or_a_stale_list_is_a_warning() {
    let s = Setup::new();
    let now = OffsetDateTime::now_utc();
    s.issue("soon", now - Duration::hours(1), now + Duration::days(10));
    let read = |f: &str| std::fs::read_to_string(s.path(f)).unwrap();
    let ca = DevCa::from_pem(&read("certs/ca.pem"), &read("certs/ca.key")).unwrap();
    let stale = ca
        .crl_valid(&[], 2, now - Duration::days(8), now - Duration::days(1))
        .unwrap();
    std::fs::write(s.path("certs/stale-crl.pem"), stale).unwrap();

    let config = s.config(
        "soon",
        &[
            ("certs/gateway.pem", "certs/soon.pem"),
            ("certs/gateway.key", "certs/soon.key"),
        ],
    );
    let out = run(&["check-config"], &config);
    expect(
        &out,
        &config,
        0,
        &[(
            6,
            &[
                "gateway.cert: warning: ",
                "soon.pem: ",
                "expires in 10 days",
            ],
        )],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": ok (") && stdout.contains("; 1 warning)"),
        "{stdout}"
    );

    let config = s.config("stale", &[("certs/crl.pem", "certs/stale-crl.pem")]);
    let out = run(&["check-config"], &config);
    expect(
        &out,
        &config,
        0,
        &[(
            10,
            &[
                "gateway.crls[0]: warning: ",
                "stale",
                "stale_crl = \"refuse\"",
            ],
        )],
    );

    // A warning does not hide an error, nor keep it from exiting 64.
    let config = s.config(
        "soon-and-missing",
        &[
            ("certs/gateway.pem", "certs/soon.pem"),
            ("certs/gateway.key", "certs/soon.key"),
            ("certs/gateway-client.pem", "certs/nope.pem"),
        ],
    );
    let out = run(&["check-config"], &config);
    expect(
        &out,
        &config,
        64,
        &[
            (6, &["gateway.cert: warning: ", "expires in 10 days"]),
            (8, &["gateway.client_cert: cannot read "]),
        ],
    );
    assert!(stderr(&out).contains("(1 error):"), "{}", stderr(&out));
}

#[test]
fn serve_exits_64_when_a_file_is_missing() {
    let s = Setup::new();
    for (name, changes, line) in [
        ("missing-ca", [("certs/ca.pem", "certs/nope.pem")], 5),
        ("missing-key", [("certs/gateway.key", "certs/nope.key")], 7),
    ] {
        let config = s.config(name, &changes);
        let out = run(&["serve"], &config);
        assert_eq!(out.status.code(), Some(64), "{name}: {}", stderr(&out));
        let found = problems(&out, &config);
        assert_eq!(found.len(), 1, "{}", stderr(&out));
        assert_eq!(found[0].0, line, "{}", stderr(&out));
        assert!(found[0].1.contains("cannot read "), "{}", stderr(&out));
    }
}

#[test]
fn the_config_may_come_from_samverka_config() {
    let s = Setup::new();
    let good = s.config("good", &[]);
    let out = Command::new(BIN)
        .arg("check-config")
        .env("SAMVERKA_CONFIG", &good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // --config wins over the environment.
    let bad = s.config("bad", &[("certs/ca.pem", "certs/nope.pem")]);
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .env("SAMVERKA_CONFIG", &good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert_eq!(problems(&out, &bad).len(), 1, "{}", stderr(&out));
    // Neither: clap's usage error.
    let out = Command::new(BIN)
        .arg("check-config")
        .env_remove("SAMVERKA_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}
