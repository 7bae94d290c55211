//! The `samverka` command line: one module per command, each returning
//! what to print or a [`CliError`] that says how the process exits.
//!
//! # Layout
//! - [`serve`]: `serve` and `check-config`, the gateway itself;
//! - [`admin`]: `admin`, the registry (who may read what) of running
//!   gateways, for operators;
//! - [`consent`]: `consent`, the `Consents` service: registrars' calls
//!   for a person, and an agency's requests and watch of its consents;
//! - [`audit`]: `audit verify|export|prune`, offline over the store;
//! - [`passport`]: `passport verify`, offline;
//! - [`portal`]: `portal`, the person's web view;
//! - [`adapter`]: `adapter run|check`, reference adapters and the
//!   conformance kit;
//! - [`records`]: `records get`, an agency's read through the gateway;
//! - [`certs`]: `certs init|issue|revoke`, the development PKI;
//! - [`generate`]: `completions` and `man`, made from this definition;
//! - [`proto`]: `proto export`, the wire contract as files;
//! - [`demo`]: `demo`, everything on one machine (also the end-to-end
//!   tests' network).
//!
//! Every `--config` defaults to the `SAMVERKA_CONFIG` environment
//! variable. Under `--json`, an error is printed as JSON too,
//! `{"error": "...", "exit_code": N}`, on stderr like every error, so that
//! stdout holds only results ([`CliError::report`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod adapter;
pub mod admin;
pub mod audit;
pub mod certs;
pub mod consent;
pub mod demo;
pub mod fetch;
pub mod generate;
pub mod keys;
pub mod passport;
pub mod portal;
pub mod proto;
pub mod records;
pub mod serve;

/// Exit code for a bad configuration or bad arguments (EX_USAGE).
pub const EX_USAGE: u8 = 64;

/// The commit this was built from, `<short hash> <commit date>`, or
/// `unknown` (see build.rs).
pub const COMMIT: &str = env!("SAMVERKA_COMMIT");

/// What `samverka --version` says after the name:
/// `0.1.0 (1a2b3c4 2026-11-30)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SAMVERKA_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "samverka",
    version = VERSION,
    about = "Consent-checked exchange of education and employment records between agencies"
)]
/// `samverka` and its arguments.
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway (exit 64 at once if its configuration, or a file
    /// it names, is unusable).
    Serve {
        /// The configuration file.
        #[arg(long, env = "SAMVERKA_CONFIG")]
        config: PathBuf,
    },
    /// Serve the person's web view: a registrar e-service where people
    /// log in, see and decide on consents, see who read their records and
    /// fetch their competence passport (exit 64 on a bad configuration).
    Portal {
        /// The portal's configuration file (see `samverka demo`'s
        /// portal.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration and open every file it names; print each
    /// problem as FILE:LINE: KEY: REASON and exit 64 on any error
    /// (warnings, such as a certificate expiring within 30 days, exit 0).
    CheckConfig {
        /// The configuration file.
        #[arg(long, env = "SAMVERKA_CONFIG")]
        config: PathBuf,
    },
    /// Manage consents: ask for them and follow them as an agency, record
    /// and decide them for a person as a registrar; verify signed receipts.
    Consent {
        /// What to do.
        #[command(subcommand)]
        command: Box<consent::ConsentCommand>,
    },
    /// Read and change the registry of running gateways (agencies,
    /// purposes, access rules, adapter routes, identity providers), as an
    /// operator: no restart.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Verify, export and archive the audit trail.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The gateway's signing keys, kept after rotation: list them, export
    /// the key set verifiers use, retire one.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Check competence passports offline.
    Passport {
        /// What to do.
        #[command(subcommand)]
        command: passport::PassportCommand,
    },
    /// Run a reference adapter (or the template) as its own process; check
    /// any adapter with the conformance kit.
    Adapter {
        /// What to do.
        #[command(subcommand)]
        command: adapter::AdapterCommand,
    },
    /// Read a person's records through the gateway, as an agency.
    Records {
        /// What to do.
        #[command(subcommand)]
        command: records::RecordsCommand,
    },
    /// Development PKI.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// The wire contract: write its .proto files and descriptor set.
    Proto {
        /// What to do.
        #[command(subcommand)]
        command: proto::ProtoCommand,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write manual pages for samverka and every subcommand into DIR.
    Man {
        /// Where to write them (created if missing).
        dir: PathBuf,
    },
    /// Everything on one machine: dev PKI, store, adapters, gateway, and a
    /// sample exchange.
    Demo {
        /// Keep running after the sample exchange until Ctrl-C or SIGTERM.
        #[arg(long)]
        serve: bool,
        /// Set up in this directory (kept) instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Why a command failed, and so how the process exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Bad arguments, configuration or files: exit 64 (EX_USAGE), which
    /// the systemd unit does not restart.
    Usage(String),
    /// The command ran and failed (a refusal, a broken trail, a store
    /// that does not answer): exit 1. An empty message means the command
    /// has already said why.
    Failed(String),
}

impl CliError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(EX_USAGE),
            CliError::Failed(_) => ExitCode::FAILURE,
        }
    }

    /// What to tell the user.
    pub fn message(&self) -> &str {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => m,
        }
    }

    /// A failure from anything displayable.
    pub fn failed(e: impl std::fmt::Display) -> Self {
        CliError::Failed(e.to_string())
    }

    /// What to print on stderr: `LABEL: MESSAGE` and a newline, or under
    /// `--json` one line `{"error": MESSAGE, "exit_code": N}`; nothing when
    /// the message is empty (the command has said why).
    pub fn report(&self, label: &str, json: bool) -> String {
        if self.message().is_empty() {
            String::new()
        } else if json {
            let code = match self {
                CliError::Usage(_) => EX_USAGE,
                CliError::Failed(_) => 1,
            };
            format!(
                "{}\n",
                serde_json::json!({ "error": self.message(), "exit_code": code })
            )
        } else {
            format!("{label}: {self}\n")
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CliError {}

impl Command {
    /// What error messages of this command begin with.
    pub fn label(&self) -> &'static str {
        match self {
            Command::Serve { .. }
            | Command::Portal { .. }
            | Command::CheckConfig { .. }
            | Command::Completions { .. }
            | Command::Man { .. } => "samverka",
            Command::Consent { .. } => "samverka consent",
            Command::Admin { .. } => "samverka admin",
            Command::Audit { .. } => "samverka audit",
            Command::Keys { .. } => "samverka keys",
            Command::Passport { .. } => "samverka passport",
            Command::Adapter { .. } => "samverka adapter",
            Command::Records { .. } => "samverka records",
            Command::Certs { .. } => "samverka certs",
            Command::Proto { .. } => "samverka proto",
            Command::Demo { .. } => "samverka demo",
        }
    }

    /// Runs the command; `Ok` holds what to print.
    pub fn run(self) -> Result<String, CliError> {
        match self {
            Command::Serve { config } => serve::serve(&config),
            Command::CheckConfig { config } => serve::check_config(&config),
            Command::Portal { config } => portal::portal(&config),
            Command::Consent { command } => {
                let mut out = runtime()?.block_on(consent::run(*command))?;
                // Empty: the command printed as it went (`consent watch`).
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                Ok(out)
            }
            Command::Admin { command } => {
                let mut out = runtime()?.block_on(admin::run(command))?;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                Ok(out)
            }
            Command::Audit { command } => runtime()?.block_on(audit::run(command)),
            Command::Keys { command } => runtime()?.block_on(keys::run(command)),
            Command::Passport { command } => runtime()?.block_on(passport::run(command)),
            Command::Adapter { command } => adapter::main(command),
            Command::Records { command } => runtime()?.block_on(records::run(command)),
            Command::Certs { command } => certs::run(command),
            Command::Proto { command } => proto::run(command),
            Command::Completions { shell } => generate::completions(shell),
            Command::Man { dir } => generate::man(&dir),
            Command::Demo { serve, dir } => demo::main(demo::DemoOptions { serve, dir }),
        }
    }
}

/// Parses the command line (exiting as clap does on a bad one) into the
/// command and whether it asked for `--json`, at any level.
pub fn parse() -> (Command, bool) {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut json = false;
    let mut level = Some(&matches);
    while let Some(m) = level {
        json |= matches!(m.try_get_one::<bool>("json"), Ok(Some(true)));
        level = m.subcommand().map(|(_, sub)| sub);
    }
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => (cli.command, json),
        Err(e) => e.exit(),
    }
}

/// The multi-threaded runtime every networked command runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::failed)
}
