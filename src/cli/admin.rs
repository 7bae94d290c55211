//! `samverka admin`: an operator reads and changes the registry (agencies,
//! purposes, access rules, adapter routes, identity providers) of running
//! gateways through `samverka.admin.v1.Registry`, with an operator
//! certificate (`samverka certs issue --role operator`). Every replica
//! puts a change in force within about a second; nothing restarts.
//!
//! ```text
//! samverka admin export --demo DIR/demo.toml > registry.toml
//! samverka admin apply registry.toml --demo DIR/demo.toml [--dry-run]
//! samverka admin allow --agency 2021999020 --purposes study_guidance \
//!     --record-types employment.period --demo DIR/demo.toml
//! samverka admin disallow 2021999020/study_guidance --demo DIR/demo.toml
//! samverka admin list [agencies|purposes|access-rules|adapters|identity-providers] ...
//! samverka admin delete KIND KEY ...
//! samverka admin history ...
//! samverka admin onboard --csr agency.csr.pem --ca-dir certs --allow study_guidance=employment.period ...
//! samverka admin offboard 2021999707 --ca-dir certs ...
//! ```
//!
//! The gateway, trust anchor and certificate come from `--gateway`,
//! `--ca`, `--cert` and `--key`, or from the `[operator]` table of a
//! `demo.toml` (`--demo`). Every change shows what it changes, item by
//! item; `--dry-run` shows it and writes nothing. A change is made on the
//! version read just before it: if another operator changed the registry
//! in between, it is refused (ABORTED REGISTRY_VERSION_MISMATCH) and
//! nothing is written: run it again. `--json` prints the answers as JSON.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use samverka_proto::admin::v1 as pb;
use samverka_proto::admin::v1::registry_client::RegistryClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::CliError;
use super::consent::{DemoFile, channel, status_text};

mod onboard;
mod show;
pub use onboard::{OffboardArgs, OnboardArgs};
use show::{change_result, item_json, item_text};

/// Subcommands of `samverka admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print the registry as a document (TOML), the latest version or
    /// `--version N`: what `apply` takes.
    Export {
        /// The version to print (default: the latest).
        #[arg(long)]
        version: Option<i64>,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
    /// Make the registry this document (TOML, as `export` prints), in one
    /// version: prints what changes.
    Apply {
        /// The document (`-`: standard input).
        file: PathBuf,
        /// The version the document was made from, to change only that
        /// version (default: the version `export` wrote in its first line;
        /// `latest`: whatever version is latest, overwriting changes made
        /// since).
        #[arg(long)]
        expected_version: Option<String>,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
    /// List the items of one kind, or of every kind.
    List {
        /// The kind (default: every kind).
        #[arg(value_enum)]
        kind: Option<ItemKind>,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
    /// Let an agency read record types for purposes: add (or replace) an
    /// access rule.
    Allow {
        /// The agency's organisation number.
        #[arg(long)]
        agency: String,
        /// Purpose codes, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        purposes: Vec<String>,
        /// Record types, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        record_types: Vec<String>,
        /// The rule's id (default: AGENCY/PURPOSE+PURPOSE...).
        #[arg(long)]
        id: Option<String>,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
    /// Remove an access rule, by its id.
    Disallow {
        /// The rule's id (`samverka admin list access-rules` shows them).
        id: String,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
    /// Remove any item, by its kind and key.
    Delete {
        /// The kind.
        #[arg(value_enum)]
        kind: ItemKind,
        /// Its key: organisation number, purpose code, rule id, adapter
        /// name or issuer.
        #[arg(value_name = "KEY")]
        item: String,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
    /// Let an agency (or adapter) in: check its certificate signing
    /// request, put it and what it may read into the registry in one
    /// version, and issue its certificate.
    Onboard(Box<OnboardArgs>),
    /// Let an agency out: remove it, its access rules and its adapter
    /// routes in one version, and revoke its certificates.
    Offboard(OffboardArgs),
    /// The registry's versions, newest first: who made each, and what
    /// changed.
    History {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// How to reach the gateway.
        #[command(flatten)]
        connection: OperatorConnection,
    },
}

/// A kind of registry item.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ItemKind {
    /// Agencies, by organisation number.
    Agencies,
    /// Purposes, by code.
    Purposes,
    /// Access rules, by id.
    AccessRules,
    /// Adapter routes, by name.
    Adapters,
    /// Identity providers, by issuer.
    IdentityProviders,
}

impl ItemKind {
    fn wire(self) -> pb::ItemKind {
        match self {
            ItemKind::Agencies => pb::ItemKind::Agency,
            ItemKind::Purposes => pb::ItemKind::Purpose,
            ItemKind::AccessRules => pb::ItemKind::AccessRule,
            ItemKind::Adapters => pb::ItemKind::AdapterRoute,
            ItemKind::IdentityProviders => pb::ItemKind::IdentityProvider,
        }
    }
}

/// How to reach the gateway as an operator.
#[derive(Debug, Args)]
pub struct OperatorConnection {
    /// Read the gateway address, CA and the [operator] certificate from a
    /// demo.toml.
    #[arg(long, conflicts_with_all = ["gateway", "ca", "cert", "key"])]
    demo: Option<PathBuf>,
    /// The gateway, host:port.
    #[arg(long, required_unless_present = "demo")]
    gateway: Option<String>,
    /// Trust anchor (PEM).
    #[arg(long, required_unless_present = "demo")]
    ca: Option<PathBuf>,
    /// The operator's certificate (PEM).
    #[arg(long, required_unless_present = "demo")]
    cert: Option<PathBuf>,
    /// The operator's key (PEM).
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

impl OperatorConnection {
    async fn client(&self) -> Result<RegistryClient<Channel>, CliError> {
        let (address, ca, cert, key) = match &self.demo {
            Some(file) => {
                let demo = DemoFile::read(file)?;
                (
                    demo.get("operator", "gateway")?,
                    PathBuf::from(demo.get("gateway", "ca_cert")?),
                    PathBuf::from(demo.get("operator", "cert")?),
                    PathBuf::from(demo.get("operator", "key")?),
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
        Ok(RegistryClient::new(channel))
    }
}

/// A refusal: its code, stable reason and message.
pub(super) fn refused(status: tonic::Status) -> CliError {
    CliError::Failed(format!("refused: {}", status_text(&status)))
}

/// Makes the registry `document` on `expected_version`; what changed.
pub(super) async fn apply(
    client: &mut RegistryClient<Channel>,
    document: String,
    expected_version: i64,
    dry_run: bool,
    json: bool,
) -> Result<String, CliError> {
    let answer = client
        .apply_document(pb::ApplyDocumentRequest {
            document,
            expected_version,
            dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    change_result(answer.result, json)
}

/// The latest version's number, to make a change on.
pub(super) async fn latest(client: &mut RegistryClient<Channel>) -> Result<i64, CliError> {
    let got = client
        .get_registry(pb::GetRegistryRequest { version: 0 })
        .await
        .map_err(refused)?
        .into_inner();
    Ok(got.version.map(|v| v.version).unwrap_or(0))
}

async fn put(
    connection: &OperatorConnection,
    item: pb::item::Item,
    dry_run: bool,
) -> Result<String, CliError> {
    let mut client = connection.client().await?;
    let expected_version = latest(&mut client).await?;
    let answer = client
        .put_item(pb::PutItemRequest {
            item: Some(pb::Item { item: Some(item) }),
            expected_version,
            dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    change_result(answer.result, connection.json)
}

async fn delete(
    connection: &OperatorConnection,
    kind: pb::ItemKind,
    key: String,
    dry_run: bool,
) -> Result<String, CliError> {
    let mut client = connection.client().await?;
    let expected_version = latest(&mut client).await?;
    let answer = client
        .delete_item(pb::DeleteItemRequest {
            kind: kind as i32,
            key,
            expected_version,
            dry_run,
        })
        .await
        .map_err(refused)?
        .into_inner();
    change_result(answer.result, connection.json)
}

/// The version `export` wrote in the document's first line.
fn exported_version(document: &str) -> Option<i64> {
    document
        .lines()
        .next()?
        .strip_prefix(EXPORT_HEADER)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How `export`'s first line begins; the version follows.
const EXPORT_HEADER: &str = "# samverka registry version ";

fn read_document(file: &Path) -> Result<String, CliError> {
    use std::io::Read;
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("-: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    }
    Ok(text)
}

/// Runs one `samverka admin` command and returns what to print.
pub async fn run(command: AdminCommand) -> Result<String, CliError> {
    match command {
        AdminCommand::Export {
            version,
            connection,
        } => export(version, connection).await,
        AdminCommand::Apply {
            file,
            expected_version,
            dry_run,
            connection,
        } => apply_document(file, expected_version, dry_run, connection).await,
        AdminCommand::List { kind, connection } => list(kind, connection).await,
        AdminCommand::Allow {
            agency,
            purposes,
            record_types,
            id,
            dry_run,
            connection,
        } => {
            let rule = pb::AccessRule {
                id: id.unwrap_or_default(),
                agency,
                purposes,
                record_types,
            };
            put(&connection, pb::item::Item::AccessRule(rule), dry_run).await
        }
        AdminCommand::Disallow {
            id,
            dry_run,
            connection,
        } => delete(&connection, pb::ItemKind::AccessRule, id, dry_run).await,
        AdminCommand::Delete {
            kind,
            item,
            dry_run,
            connection,
        } => delete(&connection, kind.wire(), item, dry_run).await,
        AdminCommand::Onboard(args) => onboard::onboard(*args).await,
        AdminCommand::Offboard(args) => onboard::offboard(args).await,
        AdminCommand::History { limit, connection } => history(limit, connection).await,
    }
}

/// `samverka admin export`: a version as a document, `export`'s first line naming it.
async fn export(version: Option<i64>, connection: OperatorConnection) -> Result<String, CliError> {
    let mut client = connection.client().await?;
    let got = client
        .get_registry(pb::GetRegistryRequest {
            version: version.unwrap_or(0),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let v = got.version.unwrap_or_default();
    if connection.json {
        return Ok(json!({
            "version": v.version, "digest": v.digest, "changed_by": v.changed_by,
            "document": got.document,
        })
        .to_string());
    }
    Ok(format!(
        "{EXPORT_HEADER}{} (sha256 {})\n{}",
        v.version, v.digest, got.document
    ))
}

/// `samverka admin apply`: the document on the version it was made from.
async fn apply_document(
    file: PathBuf,
    expected_version: Option<String>,
    dry_run: bool,
    connection: OperatorConnection,
) -> Result<String, CliError> {
    let document = read_document(&file)?;
    let mut client = connection.client().await?;
    let expected_version = match expected_version.as_deref() {
        Some("latest") => latest(&mut client).await?,
        Some(n) => n.parse().map_err(|_| {
            CliError::Usage(format!(
                "--expected-version {n:?}: a version number or latest"
            ))
        })?,
        None => exported_version(&document).ok_or_else(|| {
            CliError::Usage(
                "which version was this document made from? Keep the first line \
                 `samverka admin export` writes, or give --expected-version N \
                 (or latest, to overwrite whatever changed since)"
                    .into(),
            )
        })?,
    };
    apply(
        &mut client,
        document,
        expected_version,
        dry_run,
        connection.json,
    )
    .await
}

/// `samverka admin list`.
async fn list(kind: Option<ItemKind>, connection: OperatorConnection) -> Result<String, CliError> {
    let mut client = connection.client().await?;
    let answer = client
        .list_items(pb::ListItemsRequest {
            kind: kind.map_or(pb::ItemKind::Unspecified, ItemKind::wire) as i32,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if connection.json {
        return Ok(json!({
            "version": answer.version,
            "items": answer.items.iter().map(item_json).collect::<Vec<_>>(),
        })
        .to_string());
    }
    let mut out = format!("registry version {}\n", answer.version);
    for item in &answer.items {
        out.push_str(&item_text(item));
        out.push('\n');
    }
    Ok(out)
}

/// `samverka admin history`.
async fn history(limit: u32, connection: OperatorConnection) -> Result<String, CliError> {
    let mut client = connection.client().await?;
    let answer = client
        .list_versions(pb::ListVersionsRequest {
            before_version: 0,
            page_size: limit,
        })
        .await
        .map_err(refused)?
        .into_inner();
    if connection.json {
        let versions: Vec<Value> = answer
            .versions
            .iter()
            .map(|v| {
                json!({
                    "version": v.version, "digest": v.digest,
                    "changed_at": v.changed_at.map(|t| samverka_gateway::time::from_timestamp(&t).map(samverka_gateway::time::rfc3339).unwrap_or_default()),
                    "changed_by": v.changed_by, "changes": v.summary.lines().collect::<Vec<_>>(),
                })
            })
            .collect();
        return Ok(json!({ "versions": versions }).to_string());
    }
    let mut out = String::new();
    for v in &answer.versions {
        let at = v
            .changed_at
            .map(|t| {
                samverka_gateway::time::from_timestamp(&t)
                    .map(samverka_gateway::time::rfc3339)
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "version {}  {at}  by {}  sha256 {}\n",
            v.version, v.changed_by, v.digest
        ));
        for line in v.summary.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    Ok(out)
}
