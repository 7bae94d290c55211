//! The published documents a passport is checked against, bundled so that
//! verification needs no network (`gateway/standards/`, see its
//! PROVENANCE.md): the JSON-LD contexts a passport names, and 1EdTech's
//! JSON Schemas for `ClrCredential` and `AchievementCredential`.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use super::{CLR_CONTEXT, OB_CONTEXT, VC_CONTEXT};

/// The bundled JSON-LD contexts, by the URL a credential names them with.
pub const CONTEXTS: [(&str, &str); 3] = [
    (
        VC_CONTEXT,
        include_str!("../../../standards/contexts/credentials-v2.jsonld"),
    ),
    (
        CLR_CONTEXT,
        include_str!("../../../standards/contexts/clr-v2p0-2.0.1.json"),
    ),
    (
        OB_CONTEXT,
        include_str!("../../../standards/contexts/ob-v3p0-3.0.3.json"),
    ),
];

/// 1EdTech's JSON Schema of a CLR 2.0 `ClrCredential`.
pub const CLR_SCHEMA: &str =
    include_str!("../../../standards/schemas/clr_v2p0_clrcredential_schema.json");
/// 1EdTech's JSON Schema of an Open Badges 3.0 `AchievementCredential`.
pub const OB_SCHEMA: &str =
    include_str!("../../../standards/schemas/ob_v3p0_achievementcredential_schema.json");

fn compiled(text: &'static str) -> Validator {
    let schema: Value = serde_json::from_str(text).expect("a bundled schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a bundled schema compiles")
}

fn clr() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| compiled(CLR_SCHEMA))
}

fn open_badge() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| compiled(OB_SCHEMA))
}

fn first_error(validator: &Validator, value: &Value, what: &str) -> Result<(), String> {
    match validator.iter_errors(value).next() {
        None => Ok(()),
        Some(e) => Err(format!(
            "{what} at {:?}: {e}",
            e.instance_path().to_string()
        )),
    }
}

/// The passport against the CLR schema, and each merit in it against the
/// Open Badges schema.
pub fn validate(credential: &Value) -> Result<(), String> {
    first_error(
        clr(),
        credential,
        "the passport does not match the CLR 2.0 schema",
    )?;
    for (i, merit) in credential["credentialSubject"]["verifiableCredential"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        first_error(
            open_badge(),
            merit,
            &format!("merit {i} does not match the Open Badges 3.0 schema"),
        )?;
    }
    Ok(())
}

/// One merit against the Open Badges schema.
pub fn validate_merit(merit: &Value) -> Result<(), String> {
    first_error(
        open_badge(),
        merit,
        "the merit does not match the Open Badges 3.0 schema",
    )
}

/// The passport and each merit name exactly the contexts their kind
/// needs, all of them bundled: a verifier resolves them without network,
/// and no context from elsewhere can redefine a term.
pub fn contexts_are_bundled(credential: &Value) -> Result<(), String> {
    if credential["@context"] != serde_json::json!([VC_CONTEXT, CLR_CONTEXT, OB_CONTEXT]) {
        return Err(format!(
            "the passport names other contexts: {}",
            credential["@context"]
        ));
    }
    for (i, merit) in credential["credentialSubject"]["verifiableCredential"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if merit["@context"] != serde_json::json!([VC_CONTEXT, OB_CONTEXT]) {
            return Err(format!(
                "merit {i} names other contexts: {}",
                merit["@context"]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_documents_are_json_and_the_schemas_compile() {
        for (url, text) in CONTEXTS {
            let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(doc.get("@context").is_some(), "{url}");
        }
        assert!(!clr().is_valid(&serde_json::json!({})));
        assert!(!open_badge().is_valid(&serde_json::json!({"type": ["VerifiableCredential"]})));
    }
}
