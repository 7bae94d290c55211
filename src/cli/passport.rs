//! `samverka passport verify`: checks a competence passport credential
//! offline against the certificate of the gateway that signed it.

use std::path::PathBuf;

use clap::Subcommand;

use samverka_gateway::credential::passport::{self, Holder, KINDS, kind_of};
use serde_json::Value;

use super::CliError;
use super::keys::TrustArgs;

/// `samverka passport ...`.
#[derive(Subcommand)]
pub enum PassportCommand {
    /// Verify a passport credential against the gateway's certificate,
    /// say which checks passed and print what it attests (exit 1 if any
    /// check fails).
    Verify {
        /// The credential: a file holding the VC-JWT, or a JSON document
        /// with it in "credential" (and perhaps "holder_salt").
        file: PathBuf,
        /// The gateway's certificate or key set.
        #[command(flatten)]
        trust: TrustArgs,
        /// Also check that it is about this person (personal identity or
        /// coordination number, 12 digits); needs the holder salt.
        #[arg(long)]
        person: Option<String>,
        /// The holder salt the person gave with the passport (when the
        /// file is not a document that holds it).
        #[arg(long)]
        salt: Option<String>,
        /// Print the verified credential as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a passport and print it in the European Learning Model
    /// (ELM 3) as a European Digital Credential, marked unsealed.
    Elm {
        /// The credential, as for `verify`.
        file: PathBuf,
        /// The gateway's certificate or key set.
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// Runs `samverka passport ...`.
pub fn run(command: PassportCommand) -> Result<String, CliError> {
    match command {
        PassportCommand::Verify {
            file,
            trust,
            person,
            salt,
            json,
        } => verify_file(
            &file,
            &trust.load()?,
            person.as_deref(),
            salt.as_deref(),
            json,
        ),
        PassportCommand::Elm { file, trust } => {
            let (jws, _) = read_credential(&file)?;
            let report = passport::verify_report_with(&jws, &trust.load()?, None);
            if let Some(e) = report.failure() {
                return Err(CliError::Failed(format!("invalid passport: {e}")));
            }
            let credential = report.credential.unwrap_or_default();
            let elm = samverka_gateway::credential::elm::from_passport(&credential);
            let mut out = serde_json::to_string_pretty(&elm).unwrap_or_default();
            out.push('\n');
            Ok(out)
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// What a passport credential attests, for people: each merit under its
/// kind (what, by whom, its classification codes, where it came from),
/// then the sources and what was left out.
pub fn describe(credential: &Value) -> String {
    let subject = &credential["credentialSubject"];
    let mut out = format!(
        "Competence passport {}\n  person     {} (hashed with the holder salt)\n  issued by  {} ({})\n  issued at  {}\n",
        str_of(credential, "id"),
        str_of(&subject["identifier"][0], "identityHash"),
        str_of(&credential["issuer"], "name"),
        str_of(&credential["issuer"], "id"),
        str_of(credential, "validFrom"),
    );
    let merits = passport::merits(credential);
    for kind in KINDS {
        let of_kind: Vec<&passport::Merit> = merits
            .iter()
            .filter(|m| kind_of(&m.record_type) == kind)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        out.push_str(&format!("  {kind}:\n"));
        for m in of_kind {
            out.push_str(&format!("    - {}\n", m.describe()));
        }
    }
    let empty = Vec::new();
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

fn read(p: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
}

/// The credential of a file (the VC-JWT itself, or a JSON document with it
/// in `credential`), and the document's `holder_salt` if it has one.
fn read_credential(file: &std::path::Path) -> Result<(String, Option<String>), CliError> {
    let text = read(file)?;
    if !text.trim_start().starts_with('{') {
        return Ok((text, None));
    }
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
    let jws = doc["credential"].as_str().ok_or_else(|| {
        CliError::Failed(format!(
            "{}: a JSON document without a \"credential\" string",
            file.display()
        ))
    })?;
    let salt = doc["holder_salt"]
        .as_str()
        .or(doc["holderSalt"].as_str())
        .map(str::to_owned);
    Ok((jws.to_owned(), salt))
}

/// `samverka passport verify FILE (--cert GATEWAY_CERT | --keys KEYS)
/// [--person N --salt S]`: verifies a credential, check by check, and returns which checks
/// passed and what it attests, or the credential's JSON.
pub fn verify_file(
    file: &std::path::Path,
    trust: &passport::Trust,
    person: Option<&str>,
    salt: Option<&str>,
    as_json: bool,
) -> Result<String, CliError> {
    let (jws, document_salt) = read_credential(file)?;
    let holder = match (person, salt.map(str::to_owned).or(document_salt)) {
        (Some(p), Some(s)) => Some(Holder {
            subject_id: p.trim().to_owned(),
            salt: s.trim().to_owned(),
        }),
        (Some(_), None) => {
            return Err(CliError::Usage(
                "--person needs the holder salt: --salt, or a document with \"holder_salt\"".into(),
            ));
        }
        (None, _) => None,
    };
    let report = passport::verify_report_with(&jws, trust, holder.as_ref());
    let mut checks = String::new();
    for c in &report.checks {
        match &c.failure {
            None => checks.push_str(&format!("  {:<10} ok\n", c.name)),
            Some(why) => checks.push_str(&format!("  {:<10} FAILED: {why}\n", c.name)),
        }
    }
    if matches!(trust, passport::Trust::Cert(_)) {
        checks.push_str(
            "  key        not checked: give the key set (--keys) to check the key was valid when it was issued\n",
        );
    }
    if holder.is_none() {
        checks.push_str("  holder     not checked (give --person and the holder salt)\n");
    }
    checks.push_str("  status     not checked: the passport carries no credentialStatus\n");
    checks
        .push_str("  sources    each merit is attested by the gateway; sources do not sign yet\n");
    if let Some(e) = report.failure() {
        return Err(CliError::Failed(format!("invalid passport: {e}\n{checks}")));
    }
    let credential = report.credential.unwrap_or_default();
    Ok(if as_json {
        let mut out = serde_json::to_string_pretty(&credential).unwrap_or_default();
        out.push('\n');
        out
    } else {
        format!(
            "valid passport, signed by the gateway of {}\n{checks}{}",
            str_of(&credential["issuer"], "id").trim_start_matches("urn:samverka:agency:"),
            describe(&credential)
        )
    })
}
