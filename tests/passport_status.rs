//! A passport's status, as verifiers outside samverka check it: the
//! passport names the gateway's revocation list (1EdTech Revocation List),
//! the public listener serves that list and the key set over HTTPS to
//! anyone (no client certificate), `samverka passport revoke` (audited)
//! puts a passport on the list, and `samverka passport verify` (fetching
//! the list, or from a saved copy) and the independent Python verifier
//! then refuse it, while other passports stay valid.

mod support;

use std::path::Path;
use std::process::Output;

use samverka::cli::demo::DEMO_PURPOSE;
use samverka::cli::fetch::get_json;
use serde_json::json;
use support::independent::{claims_of, independent_with_status, python_ready};
use support::*;

fn samverka(args: &[&str]) -> Output {
    samverka_run(args)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

// Two worker threads: the gateway serves the public listener while the
// test waits on a `samverka` process that fetches from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_passport_fails_its_status_check_for_every_verifier() {
    let net = start().await;
    let dir = net.dir.path();
    let ca = net.pki.ca_cert.clone();
    let config = net.config_path.clone();
    grant(
        &net,
        DEMO_PURPOSE,
        &["education.degree", "employment.period"],
    )
    .await;
    let revoked = demo_passport(&net).await;
    let kept = demo_passport(&net).await;
    let public = format!("https://localhost:{}", net.public_address.port());
    let list_url = format!("{public}/revocations");
    let claims = claims_of(&revoked.credential);
    assert_eq!(
        claims["credentialStatus"],
        json!({ "id": list_url, "type": "1EdTechRevocationList" })
    );
    let id = claims["id"].as_str().unwrap().to_owned();
    let file = dir.join("revoked.jws");
    std::fs::write(&file, &revoked.credential).unwrap();
    let kept_file = dir.join("kept.jws");
    std::fs::write(&kept_file, &kept.credential).unwrap();
    let keys_url = format!("{public}/keys");
    let verify_online = |file: &Path| {
        samverka(&[
            "passport",
            "verify",
            path(file),
            "--keys",
            &keys_url,
            "--check-status",
            "--ca",
            path(&ca),
        ])
    };

    // The public listener: no client certificate needed; the key set is
    // the store's; nothing else is served.
    let served_keys = get_json(&keys_url, Some(&ca)).await.unwrap();
    let out = samverka(&["keys", "export", "--config", path(&config)]);
    assert!(out.status.success(), "{}", printed(&out));
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(served_keys, exported);
    let list = get_json(&list_url, Some(&ca)).await.unwrap();
    assert_eq!(list["issuer"], "urn:samverka:agency:2021999012");
    assert_eq!(list["revokedCredentials"], json!([]));
    let missing = get_json(&format!("{public}/metrics"), Some(&ca)).await;
    assert!(format!("{missing:?}").contains("404"), "{missing:?}");
    // Only the CA that issued its certificate is trusted for it, not the
    // web PKI.
    let untrusted = format!("{:?}", get_json(&list_url, None).await.unwrap_err());
    assert!(untrusted.contains("certificate"), "{untrusted}");
    // A key set from the network needs the federation CA, and its
    // certificates must be that CA's.
    let out = samverka(&["passport", "verify", path(&file), "--keys", &keys_url]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    assert!(printed(&out).contains("needs --ca"), "{}", printed(&out));
    let stranger = dir.join("stranger-ca.pem");
    std::fs::write(
        &stranger,
        samverka_certs::dev::DevCa::generate("stranger")
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    let out = samverka(&[
        "passport",
        "verify",
        path(&file),
        "--keys",
        path(&dir.join("no-such-set.json")),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    let saved_keys = dir.join("keys.json");
    std::fs::write(&saved_keys, served_keys.to_string()).unwrap();
    let out = samverka(&[
        "passport",
        "verify",
        path(&file),
        "--keys",
        path(&saved_keys),
        "--ca",
        path(&stranger),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("not issued by the given CA"),
        "{}",
        printed(&out)
    );

    // In force: every check passes, the status fetched from the list.
    let out = verify_online(&file);
    assert!(out.status.success(), "{}", printed(&out));
    assert!(
        printed(&out).contains("  status     ok"),
        "{}",
        printed(&out)
    );
    assert!(
        printed(&out).contains("  key        ok"),
        "{}",
        printed(&out)
    );
    // Not asked to check: said so.
    let out = samverka(&[
        "passport",
        "verify",
        path(&file),
        "--cert",
        path(&net.pki.gateway.0),
    ]);
    assert!(out.status.success(), "{}", printed(&out));
    assert!(
        printed(&out).contains("status     not checked"),
        "{}",
        printed(&out)
    );
    let before = dir.join("revocations-before.json");
    std::fs::write(&before, list.to_string()).unwrap();

    // A passport that names no list (re-signed without it, with the
    // gateway's own key): a status check asked for cannot pass.
    let mut unlisted = claims.clone();
    unlisted.as_object_mut().unwrap().remove("credentialStatus");
    let key = std::fs::read_to_string(&net.pki.gateway.1).unwrap();
    let cert = std::fs::read_to_string(&net.pki.gateway.0).unwrap();
    let signer =
        samverka_gateway::credential::signing::JwsSigner::from_pem(&cert, &key, "2021999012")
            .unwrap();
    let unlisted_file = dir.join("unlisted.jws");
    std::fs::write(&unlisted_file, signer.sign_jwt(&unlisted).unwrap()).unwrap();
    let out = verify_online(&unlisted_file);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("status     FAILED: the passport names no status list"),
        "{}",
        printed(&out)
    );

    // Revoked by the operator: audited, once; a malformed id is a usage
    // error.
    let out = samverka(&[
        "passport",
        "revoke",
        &id,
        "--config",
        path(&config),
        "--reason",
        "issued in error",
    ]);
    assert!(out.status.success(), "{}", printed(&out));
    let out = samverka(&["passport", "revoke", &id, "--config", path(&config)]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("already revoked"),
        "{}",
        printed(&out)
    );
    let out = samverka(&["passport", "revoke", "not-an-id", "--config", path(&config)]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    // A gateway whose passports name no list: a revocation would reach no
    // verifier, so it is refused.
    let unlisted_config = dir.join("no-public-url.toml");
    let text_of_config = std::fs::read_to_string(&config).unwrap();
    let without: String = text_of_config
        .lines()
        .filter(|l| !l.starts_with("public_url") && !l.starts_with("public_address"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&unlisted_config, without).unwrap();
    let out = samverka(&[
        "passport",
        "revoke",
        &id,
        "--config",
        path(&unlisted_config),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", printed(&out));
    assert!(
        printed(&out).contains("gateway.public_url is not set"),
        "{}",
        printed(&out)
    );
    let entries = net.gateway.store.audit_range(0, 100_000).await.unwrap();
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
    while get_json(&list_url, Some(&ca)).await.unwrap()["revokedCredentials"] == json!([]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the list shows the revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let out = verify_online(&file);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("status     FAILED: revoked by its issuer: issued in error"),
        "{}",
        printed(&out)
    );
    let out = verify_online(&kept_file);
    assert!(out.status.success(), "{}", printed(&out));
    let after = dir.join("revocations-after.json");
    let list = get_json(&list_url, Some(&ca)).await.unwrap();
    std::fs::write(&after, list.to_string()).unwrap();
    let offline = |file: &Path, list: &Path| {
        samverka(&[
            "passport",
            "verify",
            path(file),
            "--cert",
            path(&net.pki.gateway.0),
            "--status-list",
            path(list),
        ])
    };
    let out = offline(&file, &after);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("revoked by its issuer"),
        "{}",
        printed(&out)
    );
    assert!(
        offline(&file, &before).status.success(),
        "the list saved before"
    );
    assert!(offline(&kept_file, &after).status.success());
    // A list that is not the issuer's, or not the one the passport names.
    let mut foreign = list.clone();
    foreign["issuer"] = json!("urn:samverka:agency:2021999020");
    foreign["revokedCredentials"] = json!([]);
    let foreign_file = dir.join("revocations-foreign.json");
    std::fs::write(&foreign_file, foreign.to_string()).unwrap();
    let out = offline(&file, &foreign_file);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("status     FAILED: the list is"),
        "{}",
        printed(&out)
    );
    assert!(
        printed(&out).contains("not the issuer's"),
        "{}",
        printed(&out)
    );
    let mut elsewhere = list.clone();
    elsewhere["id"] = json!("https://elsewhere.example/revocations");
    elsewhere["revokedCredentials"] = json!([]);
    let elsewhere_file = dir.join("revocations-elsewhere.json");
    std::fs::write(&elsewhere_file, elsewhere.to_string()).unwrap();
    let out = offline(&file, &elsewhere_file);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("not the one the credential names"),
        "{}",
        printed(&out)
    );

    if python_ready() {
        let cert = net.pki.gateway.0.clone();
        for (what, jws, list, valid) in [
            (
                "revoked, with the list after",
                &revoked.credential,
                &after,
                false,
            ),
            (
                "revoked, with the list before",
                &revoked.credential,
                &before,
                true,
            ),
            ("kept, with the list after", &kept.credential, &after, true),
            (
                "another issuer's list",
                &revoked.credential,
                &foreign_file,
                false,
            ),
            ("another list", &revoked.credential, &elsewhere_file, false),
        ] {
            let (theirs, failed) = independent_with_status(jws, &cert, Some(list), dir);
            assert_eq!(theirs, valid, "{what}: {failed}");
        }
    } else {
        eprintln!(
            "independent half skipped: python3 lacks jwcrypto or jsonschema (pip install jwcrypto jsonschema; .ci/run does)"
        );
    }
}
