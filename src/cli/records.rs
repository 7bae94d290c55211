//! `samverka records get`: read one person's records through the gateway
//! as an agency (`RecordExchange.GetRecords`), from the command line, so
//! that a first read needs no client of one's own.
//!
//! ```text
//! samverka records get --config gateway.toml --agency reader \
//!     --subject 199003142388 --purpose vocational_guidance \
//!     --types education.vocational_diploma
//! samverka records get --demo DIR/demo.toml [--json]
//! samverka records get --gateway 127.0.0.1:8443 --ca ca.pem --cert agency.pem --key agency.key \
//!     --subject 199003142388 --purpose study_guidance --types employment.period
//! ```
//!
//! The gateway and its trust anchor come from `--gateway` and `--ca`, or
//! from the `[gateway]` `address` and `ca_cert` of a configuration
//! (`--config`; an unspecified address such as `0.0.0.0` is reached on
//! loopback). The agency's certificate is `--cert`/`--key`; or, with
//! `--agency NAME`, the development PKI's `agency-NAME.pem` and `.key`
//! beside that trust anchor (`samverka certs init` writes `reader`,
//! `registrar` and `outsider`); or the `[agency]` table of the file, as
//! `samverka demo` writes it. `--config` defaults to `SAMVERKA_CONFIG`.
//! `--demo FILE` reads a `demo.toml` so, in place of `--config`, and takes
//! its `[subject]` (person, purpose, record types) as the defaults.
//!
//! Prints the records and each source's outcome, or with `--json` the
//! answer as JSON (field names as in the `.proto` files; a payload under
//! its `oneof` field's name; `other` as its type URL and hex bytes). A
//! refusal prints its gRPC code, stable reason and message and exits 1; a
//! source that failed does not fail the read: its outcome says why.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{GradingScale, Record};
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{GetRecordsRequest, GetRecordsResponse, source_outcome};
use serde_json::{Value, json};
use tonic_types::StatusExt;

use samverka_gateway::net::client::{AgencyTls, connect};

use super::CliError;

/// Subcommands of `samverka records`.
#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Read one person's records as an agency (RecordExchange.GetRecords).
    Get(GetArgs),
}

/// Arguments of `samverka records get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// A gateway configuration: its [gateway] address and ca_cert, and its
    /// [agency] certificate if it has one and neither --agency nor --cert
    /// is given.
    #[arg(long, env = "SAMVERKA_CONFIG")]
    config: Option<PathBuf>,
    /// A demo.toml (`samverka demo --serve --dir DIR` writes it), in place
    /// of --config: the same, and its [subject] as the default person,
    /// purpose and record types.
    #[arg(long)]
    demo: Option<PathBuf>,
    /// Call as the development PKI's agency NAME: agency-NAME.pem and
    /// agency-NAME.key beside the trust anchor.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    agency: Option<String>,
    /// The gateway, host:port (instead of the configuration's).
    #[arg(long)]
    gateway: Option<String>,
    /// Trust anchor (PEM) (instead of the configuration's).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The agency's certificate (PEM).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The agency's key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The name the gateway's certificate must be valid for (default: the
    /// gateway's host).
    #[arg(long)]
    server_name: Option<String>,
    /// The person (12 digits).
    #[arg(long)]
    subject: Option<String>,
    /// The purpose the person consented to.
    #[arg(long)]
    purpose: Option<String>,
    /// Record types, comma-separated.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Only these source agencies, comma-separated (default: every source
    /// of the types).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// The agency's reference to the case this read is for (recorded in
    /// the audit trail and the person's access log).
    #[arg(long, default_value = "")]
    case_reference: String,
    /// An opaque id of the official handling the case (not a personal
    /// identity number), recorded with it.
    #[arg(long, default_value = "")]
    official_id: String,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs one `samverka records` command and returns what to print.
pub async fn run(command: RecordsCommand) -> Result<String, CliError> {
    match command {
        RecordsCommand::Get(args) => get(args).await,
    }
}

/// The configuration file, read as TOML, with the directory its relative
/// paths are relative to.
struct File {
    path: PathBuf,
    table: toml::Table,
}

impl File {
    fn read(path: &Path) -> Result<File, CliError> {
        let usage = |e: &dyn std::fmt::Display| CliError::Usage(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| usage(&e))?;
        let table = toml::from_str(&text).map_err(|e| usage(&e))?;
        Ok(File {
            path: path.to_owned(),
            table,
        })
    }

    fn get(&self, section: &str, key: &str) -> Option<&toml::Value> {
        self.table.get(section).and_then(|s| s.get(key))
    }

    fn string(&self, section: &str, key: &str) -> Option<String> {
        self.get(section, key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    fn path(&self, section: &str, key: &str) -> Option<PathBuf> {
        let p = PathBuf::from(self.string(section, key)?);
        let base = self.path.parent().unwrap_or(Path::new("."));
        Some(if p.is_relative() { base.join(p) } else { p })
    }

    fn missing(&self, what: &str) -> CliError {
        CliError::Usage(format!("{}: {what} missing", self.path.display()))
    }
}

/// Where the gateway is and who calls it.
struct Target {
    address: String,
    server_name: String,
    tls: AgencyTls,
}

fn target(a: &GetArgs, file: Option<&File>) -> Result<Target, CliError> {
    let usage = |m: &str| CliError::Usage(m.to_owned());
    let address = match (&a.gateway, file) {
        (Some(g), _) => g.clone(),
        (None, Some(f)) => {
            let configured = f
                .string("gateway", "address")
                .ok_or_else(|| f.missing("gateway.address"))?;
            loopback_if_unspecified(&configured)
        }
        (None, None) => return Err(usage("--config, --demo or --gateway is required")),
    };
    let ca = match (&a.ca, file) {
        (Some(ca), _) => ca.clone(),
        (None, Some(f)) => f
            .path("gateway", "ca_cert")
            .ok_or_else(|| f.missing("gateway.ca_cert"))?,
        (None, None) => return Err(usage("--ca is required with --gateway")),
    };
    let (cert, key) = match (&a.cert, &a.key, &a.agency, file) {
        (Some(c), Some(k), _, _) => (c.clone(), k.clone()),
        (_, _, Some(name), _) => {
            let dir = ca.parent().unwrap_or(Path::new("."));
            (
                dir.join(format!("agency-{name}.pem")),
                dir.join(format!("agency-{name}.key")),
            )
        }
        (_, _, None, Some(f)) => (
            f.path("agency", "cert").ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: no [agency] certificate; give --agency NAME or --cert and --key",
                    f.path.display()
                ))
            })?,
            f.path("agency", "key")
                .ok_or_else(|| f.missing("agency.key"))?,
        ),
        _ => return Err(usage("--agency NAME, or --cert and --key, is required")),
    };
    let tls = AgencyTls::from_files(&ca, &cert, &key).map_err(|e| {
        CliError::Usage(format!(
            "cannot read {}, {} or {}: {e}",
            ca.display(),
            cert.display(),
            key.display()
        ))
    })?;
    let host = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(h, _)| h);
    let server_name = a.server_name.clone().unwrap_or_else(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    });
    Ok(Target {
        address,
        server_name,
        tls,
    })
}

/// A listening address as a client reaches it: `0.0.0.0` and `[::]` on
/// loopback.
fn loopback_if_unspecified(address: &str) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let ip = if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(ip, a.port()).to_string()
        }
        _ => address.to_owned(),
    }
}

async fn get(a: GetArgs) -> Result<String, CliError> {
    let file = match a.demo.as_ref().or(a.config.as_ref()) {
        Some(p) => Some(File::read(p)?),
        None => None,
    };
    // With --demo, the [subject] fills in what is not given.
    let defaults = file.as_ref().filter(|_| a.demo.is_some());
    let default = |key: &str| defaults.and_then(|f| f.string("subject", key));
    let required = |v: Option<String>, flag: &str| {
        v.ok_or_else(|| CliError::Usage(format!("{flag} is required")))
    };
    let subject = required(a.subject.clone().or_else(|| default("id")), "--subject")?;
    let purpose = required(
        a.purpose.clone().or_else(|| default("purpose")),
        "--purpose",
    )?;
    let mut types = a.types.clone();
    if types.is_empty()
        && let Some(list) = defaults
            .and_then(|f| f.get("subject", "record_types"))
            .and_then(|v| v.as_array())
    {
        types = list
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
    }
    if types.is_empty() {
        return Err(CliError::Usage("--types is required".into()));
    }
    let target = target(&a, file.as_ref())?;
    let channel = connect(&target.address, &target.server_name, &target.tls)
        .await
        .map_err(|e| CliError::Failed(format!("cannot connect to {}: {e}", target.address)))?;
    let answer = RecordExchangeClient::new(channel)
        .get_records(GetRecordsRequest {
            subject_id: subject.clone(),
            record_types: types,
            purpose: purpose.clone(),
            source_agencies: a.sources.clone(),
            case_reference: a.case_reference.clone(),
            official_id: a.official_id.clone(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    if a.json {
        serde_json::to_string_pretty(&response_json(&answer))
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(CliError::failed)
    } else {
        Ok(text(&answer, &subject, &purpose))
    }
}

fn refused(status: tonic::Status) -> CliError {
    let info = status.get_details_error_info();
    let reason = info.as_ref().map_or("-", |i| i.reason.as_str());
    let audit = info
        .as_ref()
        .and_then(|i| i.metadata.get("audit_id"))
        .map(|id| format!(" (audit entry {id})"))
        .unwrap_or_default();
    let hint = match reason {
        "CONSENT_MISSING" | "CONSENT_REVOKED" | "CONSENT_EXPIRED" | "PURPOSE_MISMATCH" => {
            "\n  a registrar records the person's consent first: samverka consent grant ..."
        }
        "ACCESS_RULE_MISSING" => {
            "\n  the gateway's [[access_rules]] do not let this agency read that"
        }
        _ => "",
    };
    CliError::Failed(format!(
        "refused: {:?} {reason}: {}{audit}{hint}",
        status.code(),
        status.message()
    ))
}

fn status_name(status: i32) -> &'static str {
    source_outcome::Status::try_from(status)
        .unwrap_or(source_outcome::Status::Unspecified)
        .as_str_name()
}

/// The answer for people: the records, then each source's outcome.
fn text(answer: &GetRecordsResponse, subject: &str, purpose: &str) -> String {
    let mut out = format!(
        "{} record(s) of {subject} for {purpose} (consent {}, audit entry {})\n",
        answer.records.len(),
        answer.consent_id,
        answer.audit_id
    );
    for r in &answer.records {
        out.push_str(&format!("  {}\n", describe(r)));
    }
    out.push_str("sources:\n");
    for o in &answer.outcomes {
        let status = status_name(o.status);
        let hint = match status {
            "UNAVAILABLE" => {
                " (not reached, or its certificate refused: the gateway's log says which)"
            }
            "INVALID_RESPONSE" => " (records it sent were dropped: the gateway's log says why)",
            _ => "",
        };
        out.push_str(&format!(
            "  {} ({}): {status}, {} record(s){}{hint}\n",
            o.source_name,
            o.source_agency,
            o.record_count,
            if o.message.is_empty() {
                String::new()
            } else {
                format!(": {}", o.message)
            }
        ));
    }
    if answer.outcomes.is_empty() {
        out.push_str("  none holds these record types\n");
    }
    out
}

/// One line about a record: the demo's for the types it knows.
fn describe(r: &Record) -> String {
    let what = match &r.payload {
        Some(Payload::VocationalDiploma(d)) => format!(
            "{}, {} YH credits, EQF {}, {}, {}",
            d.programme_name, d.yh_credits, d.eqf_level, d.diploma_kind, d.issue_date
        ),
        Some(Payload::UpperSecondaryGrade(g)) => format!(
            "{} {}, {} points, grade {}, {}",
            g.course_code, g.course_name, g.points, g.grade, g.grade_date
        ),
        Some(Payload::Other(any)) => format!("{} ({} bytes)", any.type_url, any.value.len()),
        _ => return crate::cli::demo::describe_record(r),
    };
    format!("[source {}] {:<24} {what}", r.source_agency, r.record_type)
}

/// `{ "field": message.field, ... }` for the named fields.
macro_rules! fields {
    ($m:expr; $($f:ident),* $(,)?) => {{
        let mut object = serde_json::Map::new();
        $(object.insert(stringify!($f).to_owned(), json!($m.$f));)*
        Value::Object(object)
    }};
}

/// The answer as JSON, field names as in the `.proto` files.
pub fn response_json(answer: &GetRecordsResponse) -> Value {
    json!({
        "records": answer.records.iter().map(record_json).collect::<Vec<_>>(),
        "outcomes": answer.outcomes.iter().map(|o| json!({
            "source_agency": o.source_agency,
            "source_name": o.source_name,
            "status": status_name(o.status),
            "record_count": o.record_count,
            "message": o.message,
        })).collect::<Vec<_>>(),
        "audit_id": answer.audit_id,
        "consent_id": answer.consent_id,
    })
}

/// One record as JSON: its payload under its `oneof` field's name.
pub fn record_json(r: &Record) -> Value {
    let mut v = fields!(r; record_type, subject_id, source_agency, record_id);
    if let Some(t) = &r.updated_at {
        let at = time::OffsetDateTime::from_unix_timestamp(t.seconds)
            .ok()
            .and_then(|at| at.replace_nanosecond(t.nanos.try_into().unwrap_or(0)).ok())
            .and_then(|at| {
                at.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        v["updated_at"] = json!(at);
    }
    let (name, payload) = match &r.payload {
        None => return v,
        Some(Payload::CourseResult(c)) => {
            let mut p = fields!(c; course_code, course_name, course_name_en, credits, grade,
                examination_date, institution_org_number, institution_name, sun_field);
            let scale =
                GradingScale::try_from(c.grading_scale).unwrap_or(GradingScale::Unspecified);
            p["grading_scale"] = json!(scale.as_str_name());
            ("course_result", p)
        }
        Some(Payload::Degree(d)) => (
            "degree",
            fields!(d; title, title_en, sun_level, sun_field, main_field, eqf_level, credits,
                award_date, institution_org_number, institution_name),
        ),
        Some(Payload::UpperSecondaryGrade(g)) => (
            "upper_secondary_grade",
            fields!(g; course_code, course_name, points, grade, programme_code, grade_date,
                school_org_number, school_name),
        ),
        Some(Payload::VocationalDiploma(d)) => (
            "vocational_diploma",
            fields!(d; programme_name, yh_credits, diploma_kind, eqf_level, sun_field,
                issue_date, provider_org_number, provider_name),
        ),
        Some(Payload::EmploymentPeriod(e)) => (
            "employment_period",
            fields!(e; employer_org_number, employer_name, start_date, end_date,
                extent_percent, ssyk_code, occupation_title, isco_code),
        ),
        Some(Payload::ValidatedCompetence(c)) => (
            "validated_competence",
            fields!(c; competence_area, skill_concepts, eqf_level, assessor_org_number,
                assessor_name, method, assessment_date),
        ),
        Some(Payload::NonFormalLearning(n)) => (
            "non_formal_learning",
            fields!(n; title, description, provider_kind, provider_org_number, provider_name,
                hours, start_date, completion_date, skill_concepts, eqf_level),
        ),
        Some(Payload::SelfDeclaredMerit(m)) => (
            "self_declared_merit",
            fields!(m; title, description, skill_concepts, start_date, end_date, declared_at),
        ),
        Some(Payload::Other(any)) => (
            "other",
            json!({
                "type_url": any.type_url,
                "value_hex": samverka_proto::hex(&any.value),
            }),
        ),
    };
    v[name] = payload;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_proto::records::v1::VocationalDiploma;

    #[test]
    fn a_record_as_json() {
        let r = Record {
            record_type: "education.vocational_diploma".into(),
            subject_id: "199003142388".into(),
            record_id: "yh-1".into(),
            updated_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            payload: Some(Payload::VocationalDiploma(VocationalDiploma {
                programme_name: "Automationstekniker".into(),
                yh_credits: 400,
                ..Default::default()
            })),
            ..Default::default()
        };
        let v = record_json(&r);
        assert_eq!(v["record_id"], "yh-1");
        assert_eq!(v["updated_at"], "2023-11-14T22:13:20Z");
        assert_eq!(v["vocational_diploma"]["yh_credits"], 400);
        let other = Record {
            payload: Some(Payload::Other(prost_types::Any {
                type_url: "type.googleapis.com/se.example.Licence".into(),
                value: vec![0x0a, 0x01, 0x42],
            })),
            ..r
        };
        assert_eq!(record_json(&other)["other"]["value_hex"], "0a0142");
    }

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        assert_eq!(loopback_if_unspecified("0.0.0.0:8443"), "127.0.0.1:8443");
        assert_eq!(loopback_if_unspecified("[::]:8443"), "[::1]:8443");
        assert_eq!(
            loopback_if_unspecified("gw.example:8443"),
            "gw.example:8443"
        );
    }
}
