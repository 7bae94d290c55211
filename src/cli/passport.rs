//! `samverka passport verify`: checks a competence passport credential
//! against the certificate or key set of the gateway that signed it, and
//! its status against the revocation list it names; `samverka passport
//! revoke`: the operator revokes one.

use std::path::{Path, PathBuf};

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
        /// Check its status against a saved revocation list (JSON).
        #[arg(long, conflicts_with = "check_status")]
        status_list: Option<PathBuf>,
        /// Check its status against the revocation list it names, fetched
        /// over HTTPS.
        #[arg(long)]
        check_status: bool,
        /// The federation CA: it must have issued every certificate of the
        /// key set and every source's attestation certificate, and is
        /// trusted for fetching (a key set URL needs it; the revocation
        /// list is fetched under the web PKI without it).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Print the verified credential as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a passport, as the operator of the gateway that issued it:
    /// its id joins the revocation list the public listener serves
    /// (audited).
    Revoke {
        /// The passport's id (`urn:uuid:...`, or the uuid).
        id: String,
        /// The gateway's configuration (for its store).
        #[arg(long)]
        config: PathBuf,
        /// Why, as verifiers will read it (at most 200 characters).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Verify a passport and print it in the European Learning Model
    /// (ELM 3) as a European Digital Credential, marked unsealed.
    Elm {
        /// The credential, as for `verify`.
        file: PathBuf,
        /// The gateway's certificate or key set.
        #[command(flatten)]
        trust: TrustArgs,
        /// The federation CA, as for `verify`.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
}

/// Runs `samverka passport ...`.
pub async fn run(command: PassportCommand) -> Result<String, CliError> {
    match command {
        PassportCommand::Verify {
            file,
            trust,
            person,
            salt,
            status_list,
            check_status,
            ca,
            json,
        } => {
            let status = match (status_list, check_status) {
                (Some(file), _) => Status::File(file),
                (None, true) => Status::Fetch,
                (None, false) => Status::NotChecked,
            };
            let trust = trust.load(ca.as_deref()).await?;
            let (jws, document_salt) = read_credential(&file)?;
            let holder = holder(person.as_deref(), salt.or(document_salt))?;
            let federation = match &ca {
                Some(path) => Some(
                    passport::Federation::from_pem(&read(path)?)
                        .map_err(|e| CliError::Failed(e.0))?,
                ),
                None => None,
            };
            let mut report =
                passport::verify_report_from(&jws, &trust, holder.as_ref(), federation.as_ref());
            let verdict = status_check(&report, &status, ca.as_deref()).await?;
            let saved_list = match &status {
                Status::File(path) => Some(path.as_path()),
                _ => None,
            };
            verify_file(
                &mut report,
                &trust,
                holder.is_some(),
                saved_list,
                verdict,
                json,
            )
        }
        PassportCommand::Revoke { id, config, reason } => revoke(&id, &config, reason).await,
        PassportCommand::Elm { file, trust, ca } => {
            let (jws, _) = read_credential(&file)?;
            let report =
                passport::verify_report_with(&jws, &trust.load(ca.as_deref()).await?, None);
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

/// Where `passport verify` takes a passport's status from.
enum Status {
    /// Nowhere: said so.
    NotChecked,
    /// A saved revocation list.
    File(PathBuf),
    /// The list the passport names, over HTTPS.
    Fetch,
}

/// Who the verifier believes the passport is about (`--person` and the
/// salt, from `--salt` or the document).
fn holder(person: Option<&str>, salt: Option<String>) -> Result<Option<Holder>, CliError> {
    match (person, salt) {
        (Some(p), Some(s)) => Ok(Some(Holder {
            subject_id: p.trim().to_owned(),
            salt: s.trim().to_owned(),
        })),
        (Some(_), None) => Err(CliError::Usage(
            "--person needs the holder salt: --salt, or a document with \"holder_salt\"".into(),
        )),
        (None, _) => Ok(None),
    }
}

/// The status check of a verified credential: `Ok` with its verdict when
/// it was made, `Err` with why not when it was not.
async fn status_check(
    report: &passport::Report,
    status: &Status,
    ca: Option<&Path>,
) -> Result<Result<passport::Check, String>, CliError> {
    use samverka_gateway::credential::status;
    let Some(credential) = &report.credential else {
        return Ok(Err("not checked: the signature does not hold".into()));
    };
    let asked = !matches!(status, Status::NotChecked);
    let failed = |why: String| {
        Ok(Ok(passport::Check {
            name: "status",
            failure: Some(why),
            note: None,
        }))
    };
    let url = match status::named_list(credential) {
        Ok(Some(url)) => url,
        // Asked for and impossible: not a pass.
        Ok(None) if asked => {
            return Ok(Ok(passport::Check {
                name: "status",
                note: None,
                failure: Some(
                    "the passport names no status list, so whether it was revoked cannot be told"
                        .into(),
                ),
            }));
        }
        Ok(None) => return Ok(Err("not checked: the passport names no status list".into())),
        Err(e) if asked => return failed(e),
        Err(e) => return Ok(Err(format!("not checked: {e}"))),
    };
    let list = match status {
        Status::NotChecked => {
            return Ok(Err(
                "not checked: give --check-status (fetches the list it names) or --status-list FILE".into(),
            ));
        }
        Status::File(path) => serde_json::from_str(&read(path)?)
            .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", path.display())))?,
        Status::Fetch => match super::fetch::get_json(url, ca).await {
            Ok(list) => list,
            // The list the credential names cannot be had: the status is
            // unknown, so the check fails (with the others reported).
            Err(e) => {
                return failed(format!(
                    "cannot fetch the list: {}",
                    printable(&e.to_string())
                ));
            }
        },
    };
    Ok(Ok(passport::Check {
        name: "status",
        note: None,
        failure: status::check(credential, &list)
            .err()
            .map(|e| printable(&e)),
    }))
}

/// `text` with control and bidirectional formatting characters replaced,
/// for a terminal (a revocation reason comes from the network).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(
                c,
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            );
            if c.is_control() || bidi {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// `samverka passport revoke ID --config FILE [--reason R]`.
async fn revoke(id: &str, config: &Path, reason: String) -> Result<String, CliError> {
    use samverka_gateway::store::status::{RevokeCredential, RevokedCredential};
    let settings = samverka_gateway::config::Config::load(config)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if settings.gateway.public_url.is_none() {
        return Err(CliError::Usage(
            "gateway.public_url is not set: this gateway's passports name no revocation list, so a revocation would reach no verifier".into(),
        ));
    }
    let uuid = uuid::Uuid::parse_str(id.trim().trim_start_matches("urn:uuid:"))
        .map_err(|_| CliError::Usage(format!("{id:?} is not a passport id (urn:uuid:...)")))?;
    let credential_id = format!("urn:uuid:{uuid}");
    if reason.chars().count() > 200 || printable(&reason) != reason {
        return Err(CliError::Usage(
            "--reason: at most 200 characters, no control or bidirectional formatting characters (it is published)".into(),
        ));
    }
    let now = samverka_gateway::time::system_now_ms();
    let entry = super::audit::operator_entry(
        "samverka passport revoke",
        now,
        &[
            ("credential_id", credential_id.clone()),
            ("reason", reason.clone()),
        ],
    );
    let revoked = RevokedCredential {
        credential_id: credential_id.clone(),
        revoked_at_ms: now,
        reason,
        revoked_by: super::audit::operator(),
    };
    match super::keys::store(config)
        .await?
        .revoke_credential(revoked, entry)
        .await
        .map_err(CliError::failed)?
    {
        RevokeCredential::Done(entry) => Ok(format!(
            "passport {credential_id} revoked; recorded in the trail as {}\n",
            entry.audit_id
        )),
        RevokeCredential::Already(at) => Err(CliError::Failed(format!(
            "passport {credential_id} was already revoked at {}",
            samverka_gateway::time::rfc3339(at)
        ))),
    }
}

/// `samverka passport verify FILE (--cert GATEWAY_CERT | --keys KEYS)
/// [--person N --salt S] [--status-list FILE | --check-status]`: the
/// report of a credential, check by check, and what it attests, or the
/// credential's JSON.
fn verify_file(
    report: &mut passport::Report,
    trust: &passport::Trust,
    holder_given: bool,
    saved_list: Option<&Path>,
    status: Result<passport::Check, String>,
    as_json: bool,
) -> Result<String, CliError> {
    let status_note = match status {
        Ok(check) => {
            report.checks.push(check);
            None
        }
        Err(why) => Some(why),
    };
    let mut checks = String::new();
    for c in &report.checks {
        let note = c
            .note
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        match &c.failure {
            None => checks.push_str(&format!("  {:<10} ok{note}\n", c.name)),
            Some(why) => checks.push_str(&format!("  {:<10} FAILED: {why}{note}\n", c.name)),
        }
    }
    if matches!(trust, passport::Trust::Cert(_)) {
        checks.push_str(
            "  key        not checked: give the key set (--keys) to check the key was valid when it was issued\n",
        );
    }
    if !holder_given {
        checks.push_str("  holder     not checked (give --person and the holder salt)\n");
    }
    if let Some(why) = status_note {
        checks.push_str(&format!("  status     {why}\n"));
    } else if let Some(list) = saved_list {
        checks.push_str(&format!(
            "             (by the saved list {}: unsigned and undated, as current as the copy)\n",
            list.display()
        ));
    }
    if let Some(e) = report.failure() {
        return Err(CliError::Failed(format!("invalid passport: {e}\n{checks}")));
    }
    let credential = report.credential.clone().unwrap_or_default();
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
