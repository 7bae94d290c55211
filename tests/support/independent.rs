//! Checks of signed credentials as verifiers outside samverka make them:
//! an independent verifier in Python (`jwcrypto` for the VC-JWT,
//! `jsonschema` for 1EdTech's schemas,
//! `tests/independent/verify_passport.py`), and small helpers to take a
//! VC-JWT apart.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

/// The claims of a VC-JWT, unverified.
pub fn claims_of(jws: &str) -> Value {
    serde_json::from_slice(&B64.decode(jws.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// `jws` with its payload replaced, under the original header and
/// signature.
pub fn with_payload(jws: &str, claims: &Value) -> String {
    let parts: Vec<&str> = jws.split('.').collect();
    let payload = B64.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// Whether python3 has what the independent verifier needs.
pub fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import jwcrypto, jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The independent verifier's verdict on `jws` against a gateway
/// certificate or key set (`trusted`): valid or not, and the
/// checks it found failing.
pub fn independent(jws: &str, trusted: &std::path::Path, dir: &std::path::Path) -> (bool, Value) {
    independent_with_status(jws, trusted, None, dir)
}

/// [`independent`], with the status checked against a saved revocation
/// list when one is given.
pub fn independent_with_status(
    jws: &str,
    trusted: &std::path::Path,
    revocations: Option<&std::path::Path>,
    dir: &std::path::Path,
) -> (bool, Value) {
    independent_checked(jws, trusted, revocations, None, dir)
}

/// [`independent_with_status`], with the sources' attestation
/// certificates checked against the federation CA `ca` when one is given.
pub fn independent_checked(
    jws: &str,
    trusted: &std::path::Path,
    revocations: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
    dir: &std::path::Path,
) -> (bool, Value) {
    let file = dir.join("candidate.jwt");
    std::fs::write(&file, jws).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/independent/verify_passport.py"
        ))
        .arg(&file)
        .arg(trusted)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway/standards"))
        .args(revocations)
        .args(
            ca.map(|ca| [std::path::Path::new("--ca"), ca])
                .into_iter()
                .flatten(),
        )
        .output()
        .unwrap();
    let verdict: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        out.status.success(),
        verdict["valid"] == true,
        "exit status and verdict agree"
    );
    (verdict["valid"] == true, verdict["failed"].clone())
}
