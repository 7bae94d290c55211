//! A consent asked for by the agency that needs it and decided by the
//! person: `samverka consent request` and `watch` as that agency (its own
//! certificate, no person assertion), `approve`, `reject`, `pause` and
//! `resume` as a registrar for the person (like `revoke`).
//!
//! ```text
//! samverka consent request --demo DIR/demo.toml --subject 199003142388 --purpose study_guidance \
//!     --record-types education.course_result --records-from 2015-01-01 --days 90 --max-reads 3 \
//!     --justification "To plan your studies with you"
//! samverka consent approve --demo DIR/demo.toml --person-token login.jwt CONSENT_ID \
//!     [--record-types education.course_result] [--valid-until 2027-01-01]
//! samverka consent reject  --demo DIR/demo.toml --person-token login.jwt CONSENT_ID --reason "not now"
//! samverka consent pause   --demo DIR/demo.toml --person-token login.jwt CONSENT_ID
//! samverka consent resume  --demo DIR/demo.toml --person-token login.jwt CONSENT_ID
//! samverka consent watch   --demo DIR/demo.toml [--cursor C] [--count N] [--json]
//! ```
//!
//! An agency command's connection is `--demo FILE` (its `[agency]` table
//! and `[gateway]` `ca_cert`) or `--gateway --ca --cert --key`. `watch`
//! prints a line per event as it comes (`--json`: a JSON object per line)
//! until Ctrl-C, or until `--count` events; if the stream fails it says
//! the last cursor received, to resume from with `--cursor`, and exits 1.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use samverka_gateway::credential::receipt::rfc3339;
use samverka_gateway::time::from_timestamp;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::{
    ApproveConsentRequest, ConsentEvent, PauseConsentRequest, RejectConsentRequest,
    RequestConsentRequest, ResumeConsentRequest, WatchConsentsRequest, consent,
};
use tonic::transport::Channel;

use super::view::{ConsentView, json, text};
use super::{Connection, DemoFile, channel, parse_time, refused, show_receipt, status_text};
use crate::cli::CliError;

/// A consent state, as `consent list --state` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum State {
    /// Asked for, waiting for the person.
    Pending,
    /// In force.
    Active,
    /// Paused by the person.
    Paused,
    /// Revoked.
    Revoked,
    /// Rejected by the person.
    Rejected,
    /// Its time is up, or the request was not decided in time.
    Expired,
    /// A one-time consent after its read, or all its reads used.
    Used,
}

impl State {
    /// The state in the wire contract.
    pub(super) fn status(self) -> i32 {
        use consent::Status as S;
        (match self {
            State::Pending => S::Pending,
            State::Active => S::Active,
            State::Paused => S::Paused,
            State::Revoked => S::Revoked,
            State::Rejected => S::Rejected,
            State::Expired => S::Expired,
            State::Used => S::Used,
        }) as i32
    }
}

/// How to reach the gateway as an ordinary agency.
#[derive(Debug, Args)]
pub struct AgencyConnection {
    /// Read the gateway address, CA and the [agency] certificate from a
    /// demo.toml.
    #[arg(long, conflicts_with_all = ["gateway", "ca", "cert", "key"])]
    demo: Option<PathBuf>,
    /// The gateway, host:port.
    #[arg(long, required_unless_present = "demo")]
    gateway: Option<String>,
    /// Trust anchor (PEM).
    #[arg(long, required_unless_present = "demo")]
    ca: Option<PathBuf>,
    /// The agency's certificate (PEM).
    #[arg(long, required_unless_present = "demo")]
    cert: Option<PathBuf>,
    /// The agency's key (PEM).
    #[arg(long, required_unless_present = "demo")]
    key: Option<PathBuf>,
    /// The name the gateway's certificate must be valid for (default: the
    /// host of --gateway).
    #[arg(long)]
    server_name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl AgencyConnection {
    async fn client(&self) -> Result<ConsentsClient<Channel>, CliError> {
        let (address, ca, cert, key) = match &self.demo {
            Some(file) => {
                let demo = DemoFile::read(file)?;
                (
                    demo.get("agency", "gateway")?,
                    PathBuf::from(demo.get("gateway", "ca_cert")?),
                    PathBuf::from(demo.get("agency", "cert")?),
                    PathBuf::from(demo.get("agency", "key")?),
                )
            }
            None => {
                let missing =
                    || CliError::Usage("--gateway, --ca, --cert and --key, or --demo".into());
                (
                    self.gateway.clone().ok_or_else(missing)?,
                    self.ca.clone().ok_or_else(missing)?,
                    self.cert.clone().ok_or_else(missing)?,
                    self.key.clone().ok_or_else(missing)?,
                )
            }
        };
        let channel = channel(&address, self.server_name.as_deref(), &ca, &cert, &key).await?;
        Ok(ConsentsClient::new(channel))
    }
}

/// Arguments of `samverka consent request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The person asked (12 digits).
    #[arg(long)]
    subject: String,
    /// Purpose code of the reads.
    #[arg(long)]
    purpose: String,
    /// Record types wanted, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    record_types: Vec<String>,
    /// Only these source agencies, comma-separated (default: any).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// Only records dated on or after this day, YYYY-MM-DD.
    #[arg(long)]
    records_from: Option<String>,
    /// Only records dated on or before this day, YYYY-MM-DD.
    #[arg(long)]
    records_until: Option<String>,
    /// How long the consent lasts once approved, in days.
    #[arg(long)]
    days: u32,
    /// One read only.
    #[arg(long, conflicts_with = "max_reads")]
    one_time: bool,
    /// At most this many reads (default: no limit).
    #[arg(long)]
    max_reads: Option<u32>,
    /// Why, in plain language the person reads before deciding.
    #[arg(long)]
    justification: String,
    /// Idempotency key; a retry with the same key asks nothing new
    /// (default: a fresh UUID).
    #[arg(long)]
    request_id: Option<String>,
    /// How to reach the gateway, as the asking agency.
    #[command(flatten)]
    connection: AgencyConnection,
}

/// Arguments of `samverka consent approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The pending consent.
    consent_id: String,
    /// Narrow to these of the requested record types, comma-separated.
    #[arg(long, value_delimiter = ',')]
    record_types: Vec<String>,
    /// Narrow to these sources, comma-separated.
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// End earlier than requested, as RFC 3339 or YYYY-MM-DD (UTC).
    #[arg(long)]
    valid_until: Option<String>,
    /// Write the signed receipt (compact JWS) to this file.
    #[arg(long)]
    receipt_out: Option<PathBuf>,
    /// How to reach the gateway.
    #[command(flatten)]
    connection: Connection,
}

/// Arguments of `samverka consent reject`, `pause` and `resume`.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// The consent.
    consent_id: String,
    /// Write the signed receipt (compact JWS) to this file.
    #[arg(long)]
    receipt_out: Option<PathBuf>,
    /// How to reach the gateway.
    #[command(flatten)]
    connection: Connection,
}

/// Arguments of `samverka consent reject`.
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// Why, e.g. "not now".
    #[arg(long, default_value = "")]
    pub(super) reason: String,
    /// The consent and the connection.
    #[command(flatten)]
    pub(super) change: ChangeArgs,
}

/// Arguments of `samverka consent watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Resume after this event's cursor (default: from the first change).
    #[arg(long)]
    cursor: Option<String>,
    /// Stop after this many events (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// How to reach the gateway, as the watching agency.
    #[command(flatten)]
    connection: AgencyConnection,
}

/// A calendar day, or a usage error naming `what`.
fn day(value: Option<String>, what: &str) -> Result<String, CliError> {
    let Some(value) = value else {
        return Ok(String::new());
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(&value, &format)
        .map(|_| value.clone())
        .map_err(|_| CliError::Usage(format!("{what}: expected YYYY-MM-DD, got {value:?}")))
}

/// `samverka consent request`: the pending consent.
pub(super) async fn request(a: RequestArgs) -> Result<String, CliError> {
    let request = RequestConsentRequest {
        subject_id: a.subject,
        purpose: a.purpose,
        record_types: a.record_types,
        source_agencies: a.sources,
        records_from: day(a.records_from, "--records-from")?,
        records_until: day(a.records_until, "--records-until")?,
        valid_for_days: a.days,
        one_time: a.one_time,
        max_reads: a.max_reads.unwrap_or(0),
        justification: a.justification,
        request_id: a
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    };
    let mut client = a.connection.client().await?;
    let consent = client
        .request_consent(request)
        .await
        .map_err(refused)?
        .into_inner();
    let view = ConsentView::from(&consent);
    if a.connection.json {
        json(&view)
    } else {
        Ok(format!("requested: {}", text(&view)))
    }
}

/// `samverka consent approve`, as asked or narrowed.
pub(super) async fn approve(a: ApproveArgs) -> Result<String, CliError> {
    let valid_until = a
        .valid_until
        .as_deref()
        .map(|s| parse_time(s, "--valid-until"))
        .transpose()?
        .map(samverka_gateway::time::to_timestamp);
    let mut session = a.connection.session().await?;
    let request = session.seal(ApproveConsentRequest {
        consent_id: a.consent_id,
        record_types: a.record_types,
        source_agencies: a.sources,
        valid_until,
        person_assertion: String::new(),
    })?;
    let receipt = session
        .client
        .approve_consent(request)
        .await
        .map_err(refused)?;
    show_receipt(
        receipt.into_inner(),
        a.receipt_out.as_deref(),
        a.connection.json,
    )
}

/// Which of the person's other decisions.
pub(super) enum Change {
    /// Reject a pending request, saying why.
    Reject(String),
    /// Pause an active consent.
    Pause,
    /// Resume a paused consent.
    Resume,
}

/// `samverka consent reject`, `pause` and `resume`.
pub(super) async fn change(what: Change, a: ChangeArgs) -> Result<String, CliError> {
    let mut session = a.connection.session().await?;
    let id = a.consent_id;
    let receipt = match what {
        Change::Reject(reason) => {
            let request = session.seal(RejectConsentRequest {
                consent_id: id,
                reason,
                person_assertion: String::new(),
            })?;
            session.client.reject_consent(request).await
        }
        Change::Pause => {
            let request = session.seal(PauseConsentRequest {
                consent_id: id,
                person_assertion: String::new(),
            })?;
            session.client.pause_consent(request).await
        }
        Change::Resume => {
            let request = session.seal(ResumeConsentRequest {
                consent_id: id,
                person_assertion: String::new(),
            })?;
            session.client.resume_consent(request).await
        }
    }
    .map_err(refused)?;
    show_receipt(
        receipt.into_inner(),
        a.receipt_out.as_deref(),
        a.connection.json,
    )
}

/// One event as a line: cursor, event, consent, its status right after
/// the change, when.
fn event_line(e: &ConsentEvent, as_json: bool) -> Result<String, CliError> {
    let after = e.status().as_str_name().to_ascii_lowercase();
    let time = e
        .time
        .as_ref()
        .and_then(from_timestamp)
        .map(rfc3339)
        .unwrap_or_default();
    let view = e.consent.as_ref().map(ConsentView::from);
    if as_json {
        let value = serde_json::json!({
            "cursor": e.cursor,
            "event": e.event,
            "time": time,
            "consent_id": view.as_ref().map(|v| v.base.consent_id.clone()),
            "status": after,
            "audit_id": e.audit_id,
            "consent": view,
        });
        serde_json::to_string(&value).map_err(CliError::failed)
    } else {
        let id = view
            .as_ref()
            .map(|v| v.base.consent_id.as_str())
            .unwrap_or("-");
        let status = after.as_str();
        Ok(format!(
            "{:>8}  {:<9} {id}  {status:<8}  {time}",
            e.cursor, e.event
        ))
    }
}

/// `samverka consent watch`: prints as the events come, so returns
/// nothing to print.
pub(super) async fn watch(a: WatchArgs) -> Result<String, CliError> {
    let mut last = a.cursor.clone().unwrap_or_default();
    if a.count == Some(0) {
        return Ok(String::new());
    }
    let mut client = a.connection.client().await?;
    let mut stream = client
        .watch_consents(WatchConsentsRequest {
            cursor: last.clone(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let resume = |last: &str, why: String| {
        CliError::Failed(if last.is_empty() {
            format!("{why}; no event was received: start again without --cursor")
        } else {
            format!("{why}; resume with --cursor {last}")
        })
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut seen = 0u64;
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            _ = &mut ctrl_c => return Ok(String::new()),
        };
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => return Err(resume(&last, "the gateway ended the stream".into())),
            Err(status) => {
                let why = format!("the stream failed: {}", status_text(&status));
                return Err(resume(&last, why));
            }
        };
        let line = event_line(&event, a.connection.json)?;
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            // Nobody reads any more (a closed pipe): nothing left to do.
            return Ok(String::new());
        }
        last = event.cursor;
        seen += 1;
        if a.count == Some(seen) {
            return Ok(String::new());
        }
    }
}
