//! `samverka passport verify`: checks a competence passport credential
//! offline against the certificate of the gateway that signed it.

use std::path::PathBuf;

use clap::Subcommand;

use samverka_gateway::credential::passport::{KINDS, describe_achievement, kind_of, verify};
use serde_json::Value;

use super::CliError;

/// `samverka passport ...`.
#[derive(Subcommand)]
pub enum PassportCommand {
    /// Verify a passport credential against the gateway's certificate and
    /// print what it attests (exit 1 if it does not verify).
    Verify {
        /// The credential: a file holding the compact JWS, or a JSON
        /// document with it in "credential".
        file: PathBuf,
        /// The certificate of the gateway that issued it (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Print the verified credential as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `samverka passport verify`.
pub fn run(command: PassportCommand) -> Result<String, CliError> {
    let PassportCommand::Verify { file, cert, json } = command;
    verify_file(&file, &cert, json)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// What a passport credential attests, for people: each record under its
/// kind (what, by whom, its classification codes, where it came from),
/// then the sources and what was left out.
pub fn describe(credential: &Value) -> String {
    let subject = &credential["credentialSubject"];
    let person = subject["identifier"][0]["identityHash"]
        .as_str()
        .unwrap_or("?");
    let mut out = format!(
        "Competence passport {}\n  person     {person}\n  issued by  {} ({})\n  issued at  {}\n",
        str_of(credential, "id"),
        str_of(&credential["issuer"], "name"),
        str_of(&credential["issuer"], "id"),
        str_of(credential, "validFrom"),
    );
    let empty = Vec::new();
    let achievements = subject["achievement"].as_array().unwrap_or(&empty);
    for kind in KINDS {
        let of_kind: Vec<&Value> = achievements
            .iter()
            .filter(|a| kind_of(str_of(a, "recordType")) == kind)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        out.push_str(&format!("  {kind}:\n"));
        for a in of_kind {
            out.push_str(&format!("    - {}\n", describe_achievement(a)));
        }
    }
    out.push_str("  sources:\n");
    for s in subject["sources"].as_array().unwrap_or(&empty) {
        out.push_str(&format!(
            "    {} ({}): {}, {} records{}\n",
            str_of(s, "name"),
            str_of(s, "agency"),
            str_of(s, "status"),
            s["recordCount"].as_u64().unwrap_or(0),
            match str_of(s, "message") {
                "" => String::new(),
                m => format!(": {m}"),
            }
        ));
    }
    let omitted = subject["omitted"].as_array().unwrap_or(&empty);
    if !omitted.is_empty() {
        out.push_str("  not included:\n");
        for o in omitted {
            out.push_str(&format!(
                "    {}: {} ({})\n",
                str_of(o, "recordType"),
                str_of(o, "reason"),
                str_of(o, "message")
            ));
        }
    }
    out
}

/// `samverka passport verify FILE --cert GATEWAY_CERT`: reads a credential
/// (the compact JWS, or a JSON document with it in `credential`), verifies
/// it and returns what it attests, as text or as the credential's JSON.
pub fn verify_file(
    file: &std::path::Path,
    cert: &std::path::Path,
    as_json: bool,
) -> Result<String, CliError> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
    };
    let text = read(file)?;
    let cert = read(cert)?;
    let jws = if text.trim_start().starts_with('{') {
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
        doc["credential"]
            .as_str()
            .ok_or_else(|| {
                CliError::Failed(format!(
                    "{}: a JSON document without a \"credential\" string",
                    file.display()
                ))
            })?
            .to_owned()
    } else {
        text
    };
    let credential =
        verify(&jws, &cert).map_err(|e| CliError::Failed(format!("invalid passport: {e}")))?;
    Ok(if as_json {
        let mut out = serde_json::to_string_pretty(&credential).unwrap_or_default();
        out.push('\n');
        out
    } else {
        format!(
            "valid passport, signed by the gateway of {}\n{}",
            str_of(&credential["issuer"], "id").trim_start_matches("urn:samverka:agency:"),
            describe(&credential)
        )
    })
}
