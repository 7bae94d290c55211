//! A passport's status, as verifiers outside samverka check it: the
//! passport names the gateway's revocation list (1EdTech Revocation List),
//! the public listener serves that list and the key set over HTTPS to
//! anyone (no client certificate), `samverka passport revoke` (audited)
//! puts a passport on the list, and `samverka passport verify` (fetching
//! the list, or from a saved copy) and the independent Python verifier
//! then refuse it, while other passports stay valid.
//!
//! Each test runs on two worker threads: the gateway serves the public
//! listener while the test waits on a `samverka` process that fetches
//! from it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use samverka::cli::demo::DEMO_PURPOSE;
use samverka::cli::fetch::get_json;
use serde_json::{Value, json};
use support::independent::{claims_of, independent_with_status, python_ready};
use support::*;

fn samverka(args: &[&str]) -> Output {
    samverka_run(args)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A demo network with a passport of the demo person written to a file,
/// and where its public listener is.
struct Fixture {
    net: TestNet,
    /// The passport's VC-JWT, and its file.
    passport: String,
    file: PathBuf,
    /// `https://localhost:PORT` of the public listener.
    public: String,
}

impl Fixture {
    async fn start() -> Fixture {
        let net = start().await;
        grant(
            &net,
            DEMO_PURPOSE,
            &["education.degree", "employment.period"],
        )
        .await;
        let passport = demo_passport(&net).await.credential;
        let file = net.dir.path().join("passport.jws");
        std::fs::write(&file, &passport).unwrap();
        let public = format!("https://localhost:{}", net.public_address.port());
        Fixture {
            net,
            passport,
            file,
            public,
        }
    }

    fn list_url(&self) -> String {
        format!("{}/revocations", self.public)
    }

    fn keys_url(&self) -> String {
        format!("{}/keys", self.public)
    }

    fn ca(&self) -> &Path {
        &self.net.pki.ca_cert
    }

    /// `passport verify FILE` with the key set and the status both fetched
    /// from the public listener.
    fn verify_online(&self, file: &Path) -> Output {
        samverka(&[
            "passport",
            "verify",
            path(file),
            "--keys",
            &self.keys_url(),
            "--check-status",
            "--ca",
            path(self.ca()),
        ])
    }

    /// `passport verify FILE` with the gateway's certificate and a saved
    /// list.
    fn verify_offline(&self, file: &Path, list: &Path) -> Output {
        samverka(&[
            "passport",
            "verify",
            path(file),
            "--cert",
            path(&self.net.pki.gateway.0),
            "--status-list",
            path(list),
        ])
    }

    /// `value` written to `name` in the network's directory.
    fn save(&self, name: &str, value: &str) -> PathBuf {
        let file = self.net.dir.path().join(name);
        std::fs::write(&file, value).unwrap();
        file
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_listener_serves_the_key_set_and_the_list_to_anyone_and_nothing_else() {
    let f = Fixture::start().await;
    let claims = claims_of(&f.passport);
    assert_eq!(
        claims["credentialStatus"],
        json!({ "id": f.list_url(), "type": "1EdTechRevocationList" })
    );

    // No client certificate needed; the key set is the store's.
    let served_keys = get_json(&f.keys_url(), Some(f.ca())).await.unwrap();
    let out = samverka(&["keys", "export", "--config", path(&f.net.config_path)]);
    assert!(out.status.success(), "{}", printed(&out));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(served_keys, exported);
    let list = get_json(&f.list_url(), Some(f.ca())).await.unwrap();
    assert_eq!(list["issuer"], "urn:samverka:agency:2021999012");
    assert_eq!(list["revokedCredentials"], json!([]));
    let missing = get_json(&format!("{}/metrics", f.public), Some(f.ca())).await;
    assert!(format!("{missing:?}").contains("404"), "{missing:?}");
    // Only the CA that issued its certificate is trusted for it, not the
    // web PKI alone.
    let untrusted = format!("{:?}", get_json(&f.list_url(), None).await.unwrap_err());
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // A key set from the network needs the federation CA, and its
    // certificates must be that CA's.
    let out = samverka(&["passport", "verify", path(&f.file), "--keys", &f.keys_url()]);
    expect(&out, 64, "needs --ca");
    let out = samverka(&[
        "passport",
        "verify",
        path(&f.file),
        "--keys",
        path(&f.net.dir.path().join("no-such-set.json")),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    let stranger = f.save(
        "stranger-ca.pem",
        samverka_certs::dev::DevCa::generate("stranger")
            .unwrap()
            .cert_pem(),
    );
    let saved_keys = f.save("keys.json", &served_keys.to_string());
    let out = samverka(&[
        "passport",
        "verify",
        path(&f.file),
        "--keys",
        path(&saved_keys),
        "--ca",
        path(&stranger),
    ]);
    expect(&out, 1, "not issued by the given CA");

    // In force: every check passes, the status fetched from the list.
    expect(&f.verify_online(&f.file), 0, "  status     ok");
    expect(&f.verify_online(&f.file), 0, "  key        ok");
    // Not asked to check: said so.
    let out = samverka(&[
        "passport",
        "verify",
        path(&f.file),
        "--cert",
        path(&f.net.pki.gateway.0),
    ]);
    expect(&out, 0, "status     not checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_list_named_a_status_check_fails_and_a_revocation_is_refused() {
    let f = Fixture::start().await;
    // A passport that names no list (re-signed without it, with the
    // gateway's own key): a status check asked for cannot pass.
    let mut unlisted = claims_of(&f.passport);
    unlisted.as_object_mut().unwrap().remove("credentialStatus");
    let key = std::fs::read_to_string(&f.net.pki.gateway.1).unwrap();
    let cert = std::fs::read_to_string(&f.net.pki.gateway.0).unwrap();
    let signer =
        samverka_gateway::credential::signing::JwsSigner::from_pem(&cert, &key, "2021999012")
            .unwrap();
    let unlisted_file = f.save("unlisted.jws", &signer.sign_jwt(&unlisted).unwrap());
    expect(
        &f.verify_online(&unlisted_file),
        1,
        "status     FAILED: the passport names no status list",
    );

    // A gateway whose passports name no list: a revocation would reach no
    // verifier, so it is refused, and nothing is recorded.
    let without: String = std::fs::read_to_string(&f.net.config_path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("public_url") && !l.starts_with("public_address"))
        .map(|l| format!("{l}\n"))
        .collect();
    let unlisted_config = f.save("no-public-url.toml", &without);
    let id = claims_of(&f.passport)["id"].as_str().unwrap().to_owned();
    let out = samverka(&[
        "passport",
        "revoke",
        &id,
        "--config",
        path(&unlisted_config),
    ]);
    expect(&out, 64, "gateway.public_url is not set");
    assert!(
        f.net
            .gateway
            .store
            .revoked_credentials()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_passport_fails_its_status_check_for_every_verifier() {
    let f = Fixture::start().await;
    let config = path(&f.net.config_path);
    let kept = demo_passport(&f.net).await.credential;
    let kept_file = f.save("kept.jws", &kept);
    let id = claims_of(&f.passport)["id"].as_str().unwrap().to_owned();
    let list = get_json(&f.list_url(), Some(f.ca())).await.unwrap();
    let before = f.save("revocations-before.json", &list.to_string());

    // Revoked by the operator: audited, once; a malformed id is a usage
    // error.
    let out = samverka(&[
        "passport",
        "revoke",
        &id,
        "--config",
        config,
        "--reason",
        "issued in error",
    ]);
    assert!(out.status.success(), "{}", printed(&out));
    let out = samverka(&["passport", "revoke", &id, "--config", config]);
    expect(&out, 1, "already revoked");
    let out = samverka(&["passport", "revoke", "not-an-id", "--config", config]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    let entries = f.net.gateway.store.audit_range(0, 100_000).await.unwrap();
    let revocations: Vec<_> = entries
        .iter()
        .filter(|e| e.method == "samverka passport revoke")
        .collect();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].details["credential_id"], id);
    assert_eq!(revocations[0].details["reason"], "issued in error");

    // Every verifier now refuses it, and only it, once the listener's
    // copy is renewed (within seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while get_json(&f.list_url(), Some(f.ca())).await.unwrap()["revokedCredentials"] == json!([]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the list shows the revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    expect(
        &f.verify_online(&f.file),
        1,
        "status     FAILED: revoked by its issuer: issued in error",
    );
    assert!(f.verify_online(&kept_file).status.success());
    let list = get_json(&f.list_url(), Some(f.ca())).await.unwrap();
    let after = f.save("revocations-after.json", &list.to_string());
    expect(
        &f.verify_offline(&f.file, &after),
        1,
        "revoked by its issuer",
    );
    assert!(
        f.verify_offline(&f.file, &before).status.success(),
        "the list saved before"
    );
    assert!(f.verify_offline(&kept_file, &after).status.success());
    // A list that is not the issuer's, or not the one the passport names.
    let mut foreign = list.clone();
    foreign["issuer"] = json!("urn:samverka:agency:2021999020");
    foreign["revokedCredentials"] = json!([]);
    let foreign_file = f.save("revocations-foreign.json", &foreign.to_string());
    let out = f.verify_offline(&f.file, &foreign_file);
    expect(&out, 1, "status     FAILED: the list is");
    expect(&out, 1, "not the issuer's");
    let mut elsewhere = list.clone();
    elsewhere["id"] = json!("https://elsewhere.example/revocations");
    elsewhere["revokedCredentials"] = json!([]);
    let elsewhere_file = f.save("revocations-elsewhere.json", &elsewhere.to_string());
    expect(
        &f.verify_offline(&f.file, &elsewhere_file),
        1,
        "not the one the credential names",
    );

    if python_ready() {
        let cert = f.net.pki.gateway.0.clone();
        for (what, jws, list, valid) in [
            ("revoked, with the list after", &f.passport, &after, false),
            ("revoked, with the list before", &f.passport, &before, true),
            ("kept, with the list after", &kept, &after, true),
            ("another issuer's list", &f.passport, &foreign_file, false),
            ("another list", &f.passport, &elsewhere_file, false),
        ] {
            let (theirs, failed) =
                independent_with_status(jws, &cert, Some(list), f.net.dir.path());
            assert_eq!(theirs, valid, "{what}: {failed}");
        }
    } else {
        eprintln!(
            "independent half skipped: python3 lacks jwcrypto or jsonschema (pip install jwcrypto jsonschema; .ci/run does)"
        );
    }
}
