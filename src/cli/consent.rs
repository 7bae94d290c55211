//! `samverka consent`: registrars and operators manage consents from the
//! command line, over gRPC with a registrar certificate, and anyone checks
//! a signed receipt offline.
//!
//! ```text
//! samverka certs person-token --demo DIR/demo.toml --subject 199003142388 > login.jwt
//! samverka consent grant  --demo DIR/demo.toml --person-token login.jwt --subject 199003142388 \
//!     --grantee 2021999020 --record-types employment.period --purpose study_guidance \
//!     --days 365 --evidence e-service-4711 --request-id r-4711 --receipt-out receipt.jws
//! samverka consent list   --demo DIR/demo.toml --person-token login.jwt --subject 199003142388
//! samverka consent get    --demo DIR/demo.toml --person-token login.jwt CONSENT_ID
//! samverka consent revoke --demo DIR/demo.toml --person-token login.jwt CONSENT_ID --reason "withdrawn"
//! samverka consent verify-receipt receipt.jws --cert DIR/certs/gateway.pem
//! ```
//!
//! A consent the agency that needs it asks for, and the person's decisions
//! on it (`request`, `approve`, `reject`, `pause`, `resume`, `watch`), are
//! in [`lifecycle`].
//!
//! The connection is given either with `--gateway HOST:PORT --ca --cert
//! --key --assertion-key --audience` or with `--demo FILE`, which reads
//! them from a `demo.toml`'s `[gateway]` and `[registrar]` tables. Every
//! registrar call acts for the person whose login `--person-token` holds (an OpenID
//! Connect ID token, from a file or `-` for standard input): the command
//! wraps it in a fresh person assertion, signed with the registrar's
//! assertion key, for each call. `--json` prints machine-readable output.
//! A refusal prints its gRPC code, stable reason and message and exits 1.

pub mod lifecycle;
mod view;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::{
    ConsentReceipt, GetConsentRequest, GrantConsentRequest, ListConsentsRequest,
    RevokeConsentRequest,
};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use samverka_gateway::credential::receipt::verify_with;
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_gateway::person::issue::AssertionSigner;
use samverka_gateway::time::{system_now_ms, to_timestamp};
use samverka_proto::terms::PersonBound;
use view::{ConsentView, json, text};

use super::CliError;

/// Subcommands of `samverka consent`.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record a consent on behalf of a person.
    Grant(GrantArgs),
    /// Revoke a consent (repeating a revocation is harmless).
    Revoke {
        /// The consent to revoke.
        consent_id: String,
        /// Why, e.g. "withdrawn by the person".
        #[arg(long, default_value = "")]
        reason: String,
        /// Write the signed receipt (compact JWS) to this file.
        #[arg(long)]
        receipt_out: Option<PathBuf>,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: Connection,
    },
    /// Show one consent.
    Get {
        /// The consent's id.
        consent_id: String,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: Connection,
    },
    /// List a person's consents, newest first.
    List {
        /// The person (12 digits).
        #[arg(long)]
        subject: String,
        /// Only consents for this agency.
        #[arg(long)]
        grantee: Option<String>,
        /// Only consents in these states (comma-separated or repeated).
        #[arg(long = "state", value_delimiter = ',', value_enum)]
        states: Vec<lifecycle::State>,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: Connection,
    },
    /// Check a signed receipt offline against the gateway's certificate or
    /// key set.
    VerifyReceipt {
        /// File holding the compact JWS.
        file: PathBuf,
        /// The gateway's certificate or key set.
        #[command(flatten)]
        trust: super::keys::TrustArgs,
        /// The federation CA: it must have issued every certificate of the
        /// key set, and is trusted for fetching it (needed with a URL).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Print the attested claims as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a person for a consent, as the agency that needs it (its own
    /// certificate); it is pending until the person decides.
    Request(lifecycle::RequestArgs),
    /// Approve a pending request for the person, as asked or narrowed.
    Approve(lifecycle::ApproveArgs),
    /// Reject a pending request for the person.
    Reject(lifecycle::RejectArgs),
    /// Pause an active consent for the person: reads are refused until it
    /// is resumed.
    Pause(lifecycle::ChangeArgs),
    /// Resume a paused consent for the person.
    Resume(lifecycle::ChangeArgs),
    /// Follow the changes to the consents granted to or requested by an
    /// agency, as that agency: a line per event until Ctrl-C.
    Watch(lifecycle::WatchArgs),
}

/// Arguments of `samverka consent grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The person giving consent (12 digits).
    #[arg(long)]
    subject: String,
    /// Organisation number of the agency allowed to read.
    #[arg(long)]
    grantee: String,
    /// Record types, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    record_types: Vec<String>,
    /// Purpose code.
    #[arg(long)]
    purpose: String,
    /// Only these source agencies, comma-separated (default: any).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// Start, as RFC 3339 or YYYY-MM-DD (UTC); default now.
    #[arg(long)]
    valid_from: Option<String>,
    /// End (exclusive), as RFC 3339 or YYYY-MM-DD (UTC).
    #[arg(long, conflicts_with = "days", required_unless_present = "days")]
    valid_until: Option<String>,
    /// Or: valid for this many days from now.
    #[arg(long)]
    days: Option<u32>,
    /// The registrar's reference to its evidence of consent.
    #[arg(long, default_value = "")]
    evidence: String,
    /// Idempotency key; a retry with the same key records nothing new.
    #[arg(long)]
    request_id: String,
    /// Write the signed receipt (compact JWS) to this file.
    #[arg(long)]
    receipt_out: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

/// How to reach the gateway as a registrar.
#[derive(Debug, Args)]
pub struct Connection {
    /// Read gateway address, CA and the [registrar] certificate from a
    /// demo.toml.
    #[arg(long, conflicts_with_all = ["gateway", "ca", "cert", "key"])]
    demo: Option<PathBuf>,
    /// The gateway, host:port.
    #[arg(long, required_unless_present = "demo")]
    gateway: Option<String>,
    /// Trust anchor (PEM).
    #[arg(long, required_unless_present = "demo")]
    ca: Option<PathBuf>,
    /// The registrar's certificate (PEM).
    #[arg(long, required_unless_present = "demo")]
    cert: Option<PathBuf>,
    /// The registrar's key (PEM).
    #[arg(long, required_unless_present = "demo")]
    key: Option<PathBuf>,
    /// The registrar's person-assertion key (PKCS#8 P-256 PEM; not its TLS
    /// key). With --demo: [registrar] assertion_key.
    #[arg(long, required_unless_present = "demo")]
    assertion_key: Option<PathBuf>,
    /// The audience the gateway's person assertions must name (its
    /// person_assertion.audience). With --demo: [registrar] audience.
    #[arg(long, required_unless_present = "demo")]
    audience: Option<String>,
    /// The person's login: their OpenID Connect ID token, as the
    /// registrar's e-service received it, in FILE or `-` for standard input
    /// (for the demo: `samverka certs person-token --demo FILE`). Required.
    #[arg(long, value_name = "FILE|-")]
    person_token: Option<PathBuf>,
    /// The name the gateway's certificate must be valid for (default: the
    /// host of --gateway).
    #[arg(long)]
    server_name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A status as `CODE REASON: MESSAGE` (`-` for no stable reason).
pub(super) fn status_text(status: &tonic::Status) -> String {
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| "-".into());
    format!("{:?} {reason}: {}", status.code(), status.message())
}

fn refused(status: tonic::Status) -> CliError {
    CliError::Failed(format!("refused: {}", status_text(&status)))
}

/// A connection to the gateway as a registrar, acting for the person of
/// one login.
struct Session {
    client: ConsentsClient<Channel>,
    signer: AssertionSigner,
    person: String,
    id_token: String,
}

impl Session {
    /// `req` with a fresh person assertion.
    fn seal<R: PersonBound>(&self, mut req: R) -> Result<R, CliError> {
        let now = system_now_ms().div_euclid(1000);
        self.signer
            .seal(&mut req, &self.person, &self.id_token, now)
            .map_err(|e| CliError::Failed(format!("cannot sign the person assertion: {e}")))?;
        Ok(req)
    }
}

/// The ID token in `path` (`-`: standard input) and the person it names.
fn person_token(path: &Path) -> Result<(String, String), CliError> {
    use std::io::Read;
    let usage = |m: String| CliError::Usage(m);
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("--person-token -: {e}")))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--person-token {}: {e}", path.display())))?;
    }
    let token = text.trim().to_owned();
    // The registrar reads whom its login names; the gateway checks the
    // signature.
    let person = samverka_gateway::person::named_person(&token).ok_or_else(|| {
        usage("--person-token: not an ID token naming a personal identity number".into())
    })?;
    Ok((token, person))
}

/// A demo.toml, read.
pub(super) struct DemoFile<'a> {
    path: &'a Path,
    table: toml::Table,
}

impl<'a> DemoFile<'a> {
    pub(super) fn read(path: &'a Path) -> Result<Self, CliError> {
        let usage = |e: &dyn std::fmt::Display| CliError::Usage(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| usage(&e))?;
        let table = toml::from_str(&text).map_err(|e| usage(&e))?;
        Ok(DemoFile { path, table })
    }

    /// `[section] key`, a string.
    pub(super) fn get(&self, section: &str, key: &str) -> Result<String, CliError> {
        self.table
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                CliError::Usage(format!("{}: {section}.{key} missing", self.path.display()))
            })
    }
}

/// An mTLS channel to the gateway at `address` with the certificate in
/// `cert` and `key`, trusting `ca`.
pub(super) async fn channel(
    address: &str,
    server_name: Option<&str>,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Channel, CliError> {
    let tls = AgencyTls::from_files(ca, cert, key)
        .map_err(|e| CliError::Usage(format!("cannot read certificate files: {e}")))?;
    let host = address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address);
    let server_name = server_name.unwrap_or(host);
    connect(address, server_name, &tls)
        .await
        .map_err(|e| CliError::Failed(format!("cannot connect to {address}: {e}")))
}

impl Connection {
    async fn session(&self) -> Result<Session, CliError> {
        let usage = |m: String| CliError::Usage(m);
        let token = self.person_token.as_deref().ok_or_else(|| {
            usage(
                "--person-token FILE|- is required: the person's login, an ID token \
                 (for the demo: samverka certs person-token --demo FILE --subject ID > FILE)"
                    .into(),
            )
        })?;
        let (address, ca, cert, key, assertion_key, audience) = match &self.demo {
            Some(file) => {
                let demo = DemoFile::read(file)?;
                (
                    demo.get("registrar", "gateway")?,
                    PathBuf::from(demo.get("gateway", "ca_cert")?),
                    PathBuf::from(demo.get("registrar", "cert")?),
                    PathBuf::from(demo.get("registrar", "key")?),
                    PathBuf::from(demo.get("registrar", "assertion_key")?),
                    demo.get("registrar", "audience")?,
                )
            }
            None => {
                let missing = || {
                    usage(
                        "--gateway, --ca, --cert, --key, --assertion-key and --audience, or --demo"
                            .into(),
                    )
                };
                (
                    self.gateway.clone().ok_or_else(missing)?,
                    self.ca.clone().ok_or_else(missing)?,
                    self.cert.clone().ok_or_else(missing)?,
                    self.key.clone().ok_or_else(missing)?,
                    self.assertion_key.clone().ok_or_else(missing)?,
                    self.audience.clone().ok_or_else(missing)?,
                )
            }
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| usage(format!("{}: {e}", p.display())))
        };
        let registrar = samverka_certs::CertIdentity::from_pem(&read(&cert)?)
            .map_err(|e| usage(format!("{}: {e}", cert.display())))?
            .agency;
        let signer = AssertionSigner::new(&read(&assertion_key)?, registrar.as_str(), &audience)
            .map_err(|e| usage(format!("{}: {e}", assertion_key.display())))?;
        let (id_token, person) = person_token(token)?;
        let channel = channel(&address, self.server_name.as_deref(), &ca, &cert, &key).await?;
        Ok(Session {
            client: ConsentsClient::new(channel),
            signer,
            person,
            id_token,
        })
    }
}

fn parse_time(s: &str, what: &str) -> Result<i64, CliError> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).or_else(|_| {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(s, &format).map(|d| d.midnight().assume_utc())
    });
    t.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            CliError::Usage(format!(
                "{what}: expected RFC 3339 or YYYY-MM-DD, got {s:?}"
            ))
        })
}

fn show_receipt(
    receipt: ConsentReceipt,
    out: Option<&Path>,
    as_json: bool,
) -> Result<String, CliError> {
    let consent = receipt
        .consent
        .as_ref()
        .map(ConsentView::from)
        .ok_or_else(|| CliError::Failed("the gateway sent a receipt without a consent".into()))?;
    if let Some(path) = out {
        std::fs::write(path, format!("{}\n", receipt.jws))
            .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
    }
    if as_json {
        json(&serde_json::json!({ "event": receipt.event, "consent": consent, "jws": receipt.jws }))
    } else {
        let mut s = format!("{}: ", receipt.event);
        s.push_str(&text(&consent));
        match out {
            Some(path) => s.push_str(&format!("signed receipt written to {}\n", path.display())),
            None => s.push_str(&format!("signed receipt: {}\n", receipt.jws)),
        }
        Ok(s)
    }
}

/// Runs one `samverka consent` command and returns what to print.
pub async fn run(command: ConsentCommand) -> Result<String, CliError> {
    match command {
        ConsentCommand::Grant(a) => grant(a).await,
        ConsentCommand::Revoke {
            consent_id,
            reason,
            receipt_out,
            connection,
        } => {
            let mut session = connection.session().await?;
            let request = session.seal(RevokeConsentRequest {
                consent_id,
                reason,
                person_assertion: String::new(),
            })?;
            let receipt = session.client.revoke(request).await.map_err(refused)?;
            show_receipt(
                receipt.into_inner(),
                receipt_out.as_deref(),
                connection.json,
            )
        }
        ConsentCommand::Get {
            consent_id,
            connection,
        } => {
            let mut session = connection.session().await?;
            let request = session.seal(GetConsentRequest {
                consent_id,
                person_assertion: String::new(),
            })?;
            let c = session
                .client
                .get(request)
                .await
                .map_err(refused)?
                .into_inner();
            let view = ConsentView::from(&c);
            if connection.json {
                json(&view)
            } else {
                Ok(text(&view))
            }
        }
        ConsentCommand::List {
            subject,
            grantee,
            states,
            connection,
        } => {
            let mut session = connection.session().await?;
            let request = session.seal(ListConsentsRequest {
                subject_id: subject.clone(),
                grantee_agency: grantee.unwrap_or_default(),
                states: states.into_iter().map(lifecycle::State::status).collect(),
                person_assertion: String::new(),
            })?;
            let consents = session
                .client
                .list(request)
                .await
                .map_err(refused)?
                .into_inner()
                .consents;
            let views: Vec<ConsentView> = consents.iter().map(ConsentView::from).collect();
            if connection.json {
                json(&views)
            } else if views.is_empty() {
                Ok(format!("no consents for {subject}\n"))
            } else {
                Ok(views.iter().map(text).collect::<Vec<_>>().join("\n"))
            }
        }
        ConsentCommand::VerifyReceipt {
            file,
            trust,
            ca,
            json: as_json,
        } => {
            let trust = trust.load(ca.as_deref()).await?;
            verify_receipt(&file, &trust, as_json)
        }
        ConsentCommand::Request(a) => lifecycle::request(a).await,
        ConsentCommand::Approve(a) => lifecycle::approve(a).await,
        ConsentCommand::Reject(a) => {
            lifecycle::change(lifecycle::Change::Reject(a.reason), a.change).await
        }
        ConsentCommand::Pause(a) => lifecycle::change(lifecycle::Change::Pause, a).await,
        ConsentCommand::Resume(a) => lifecycle::change(lifecycle::Change::Resume, a).await,
        ConsentCommand::Watch(a) => lifecycle::watch(a).await,
    }
}

/// `samverka consent grant`: the validity from `--valid-from` and
/// `--valid-until` or `--days`, then the call and its receipt.
async fn grant(a: GrantArgs) -> Result<String, CliError> {
    let now = system_now_ms();
    let valid_from = a
        .valid_from
        .as_deref()
        .map(|s| parse_time(s, "--valid-from"))
        .transpose()?;
    let valid_until = match (&a.valid_until, a.days) {
        (Some(s), _) => parse_time(s, "--valid-until")?,
        (None, Some(days)) => valid_from.unwrap_or(now) + i64::from(days) * 24 * 3600 * 1000,
        (None, None) => {
            return Err(CliError::Usage(
                "--valid-until or --days is required".into(),
            ));
        }
    };
    let request = GrantConsentRequest {
        subject_id: a.subject,
        grantee_agency: a.grantee,
        record_types: a.record_types,
        purpose: a.purpose,
        source_agencies: a.sources,
        valid_from: valid_from.map(to_timestamp),
        valid_until: Some(to_timestamp(valid_until)),
        evidence_ref: a.evidence,
        request_id: a.request_id,
        person_assertion: String::new(),
    };
    let mut session = a.connection.session().await?;
    let request = session.seal(request)?;
    let receipt = session.client.grant(request).await.map_err(refused)?;
    show_receipt(
        receipt.into_inner(),
        a.receipt_out.as_deref(),
        a.connection.json,
    )
}

/// `samverka consent verify-receipt`: offline, against the gateway's
/// certificate or key set.
fn verify_receipt(
    file: &Path,
    trust: &samverka_gateway::credential::keys::Trust,
    as_json: bool,
) -> Result<String, CliError> {
    let jws = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let claims =
        verify_with(&jws, trust).map_err(|e| CliError::Failed(format!("invalid receipt: {e}")))?;
    if as_json {
        json(&claims)
    } else {
        Ok(format!(
            "valid receipt, signed by the gateway of {}\nevent {} recorded at {}\n{}",
            claims.iss,
            claims.event,
            claims.recorded_at,
            text(&ConsentView::from(claims.consent))
        ))
    }
}
