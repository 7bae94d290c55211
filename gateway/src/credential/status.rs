//! A passport's status: whether its issuer has revoked it, as the 1EdTech
//! Revocation List status method has it (the `credentialStatus` type
//! Open Badges 3.0 and CLR 2.0 verifiers know). The passport names the
//! list (`{"id": "<public URL>/revocations", "type":
//! "1EdTechRevocationList"}`); the gateway's public listener serves it:
//!
//! ```json
//! {"id": "https://gw.example.se/revocations",
//!  "issuer": "urn:samverka:agency:2021999012",
//!  "revokedCredentials": [{"id": "urn:uuid:...", "revocationReason": "..."}]}
//! ```
//!
//! 1EdTech's schema allows one `credentialStatus` object, so a W3C
//! Bitstring Status List entry cannot be carried beside it.

use serde_json::{Value, json};

use crate::store::status::RevokedCredential;

/// The `credentialStatus` type.
pub const STATUS_TYPE: &str = "1EdTechRevocationList";

/// The URL of the revocation list under a gateway's public URL.
pub fn list_url(public_url: &str) -> String {
    format!("{public_url}/revocations")
}

/// A passport's `credentialStatus`, naming the list at `list_url`.
pub fn credential_status(list_url: &str) -> Value {
    json!({ "id": list_url, "type": STATUS_TYPE })
}

/// The revocation list `list_url` of the issuer `issuer_id`.
pub fn revocation_list(list_url: &str, issuer_id: &str, revoked: &[RevokedCredential]) -> Value {
    json!({
        "id": list_url,
        "issuer": issuer_id,
        "revokedCredentials": revoked
            .iter()
            .map(|r| json!({ "id": r.credential_id, "revocationReason": r.reason }))
            .collect::<Vec<_>>(),
    })
}

/// The list a credential names as its status, if it names one; an error
/// for a status of another kind.
pub fn named_list(credential: &Value) -> Result<Option<&str>, String> {
    let status = &credential["credentialStatus"];
    if status.is_null() {
        return Ok(None);
    }
    if status["type"] != STATUS_TYPE {
        return Err(format!(
            "credentialStatus of type {} is not one this verifier knows",
            status["type"]
        ));
    }
    status["id"]
        .as_str()
        .map(Some)
        .ok_or_else(|| "credentialStatus without an id".to_owned())
}

/// Whether `list` says `credential` is in force: the list is the one the
/// credential names, of its issuer, and does not hold the credential.
pub fn check(credential: &Value, list: &Value) -> Result<(), String> {
    let named =
        named_list(credential)?.ok_or_else(|| "the credential names no status list".to_owned())?;
    if list["id"] != named {
        return Err(format!(
            "the list is {}, not the one the credential names ({named})",
            list["id"]
        ));
    }
    let issuer = match &credential["issuer"] {
        Value::String(id) => id.as_str(),
        issuer => issuer["id"].as_str().unwrap_or_default(),
    };
    if list["issuer"] != issuer {
        return Err(format!(
            "the list is {}'s, not the issuer's ({issuer})",
            list["issuer"]
        ));
    }
    let revoked = list["revokedCredentials"]
        .as_array()
        .filter(|entries| entries.iter().all(|r| r["id"].is_string()))
        .ok_or_else(|| {
            "not a revocation list (revokedCredentials must be objects with an id)".to_owned()
        })?;
    let id = credential["id"].as_str().unwrap_or_default();
    match revoked.iter().find(|r| r["id"] == id) {
        Some(r) => Err(format!(
            "revoked by its issuer{}",
            match r["revocationReason"].as_str() {
                Some(why) if !why.is_empty() => format!(": {why}"),
                _ => String::new(),
            }
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(id: &str) -> RevokedCredential {
        RevokedCredential {
            credential_id: id.into(),
            revoked_at_ms: 1,
            reason: "issued in error".into(),
            revoked_by: "operator:x".into(),
        }
    }

    #[test]
    fn a_list_judges_only_the_credentials_it_is_for() {
        let url = list_url("https://gw.example.se");
        let credential = json!({
            "id": "urn:uuid:a", "issuer": {"id": "urn:samverka:agency:2021999012"},
            "credentialStatus": credential_status(&url),
        });
        let list =
            |r: &[RevokedCredential]| revocation_list(&url, "urn:samverka:agency:2021999012", r);
        assert_eq!(check(&credential, &list(&[revoked("urn:uuid:b")])), Ok(()));
        let e = check(&credential, &list(&[revoked("urn:uuid:a")])).unwrap_err();
        assert!(e.contains("revoked by its issuer: issued in error"), "{e}");
        // Another list, another issuer's list, not a list.
        let other = revocation_list(
            "https://else/revocations",
            "urn:samverka:agency:2021999012",
            &[],
        );
        assert!(check(&credential, &other).is_err());
        let foreign = revocation_list(&url, "urn:samverka:agency:2021999020", &[]);
        assert!(check(&credential, &foreign).is_err());
        assert!(
            check(
                &credential,
                &json!({"id": url, "issuer": "urn:samverka:agency:2021999012"})
            )
            .is_err()
        );
        // Entries that are not objects with an id: not a list to trust.
        let mut bare = list(&[]);
        bare["revokedCredentials"] = json!(["urn:uuid:a"]);
        assert!(check(&credential, &bare).is_err());
        // A credential naming no list, or a status of another kind.
        assert!(check(&json!({"id": "urn:uuid:a"}), &list(&[])).is_err());
        let mut odd = credential.clone();
        odd["credentialStatus"]["type"] = json!("BitstringStatusListEntry");
        assert!(named_list(&odd).is_err());
    }
}
