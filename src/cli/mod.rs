//! The `samverka` command line: one module per command, each returning
//! what to print or a [`CliError`] that says how the process exits.
//!
//! # Layout
//! - [`serve`]: `serve` and `check-config`, the gateway itself;
//! - [`consent`]: `consent`, registrars' calls to the `Consents` service;
//! - [`audit`]: `audit verify|export|prune`, offline over the store;
//! - [`passport`]: `passport verify`, offline;
//! - [`adapter`]: `adapter run|check`, reference adapters and the
//!   conformance kit;
//! - [`certs`]: `certs init|issue|revoke`, the development PKI;
//! - [`demo`]: `demo`, everything on one machine (also the end-to-end
//!   tests' network).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod adapter;
pub mod audit;
pub mod certs;
pub mod consent;
pub mod demo;
pub mod passport;
pub mod serve;

/// Exit code for a bad configuration or bad arguments (EX_USAGE).
pub const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "samverka",
    version,
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
    /// Run the gateway.
    Serve {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (64 if it is bad).
    CheckConfig {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage consents as a registrar; verify signed receipts.
    Consent {
        /// What to do.
        #[command(subcommand)]
        command: Box<consent::ConsentCommand>,
    },
    /// Verify, export and archive the audit trail.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Check competence passports offline.
    Passport {
        /// What to do.
        #[command(subcommand)]
        command: passport::PassportCommand,
    },
    /// Run a reference adapter as its own process.
    Adapter {
        /// What to do.
        #[command(subcommand)]
        command: adapter::AdapterCommand,
    },
    /// Development PKI.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: certs::CertsCommand,
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
            Command::Serve { .. } | Command::CheckConfig { .. } => "samverka",
            Command::Consent { .. } => "samverka consent",
            Command::Audit { .. } => "samverka audit",
            Command::Passport { .. } => "samverka passport",
            Command::Adapter { .. } => "samverka adapter",
            Command::Certs { .. } => "samverka certs",
            Command::Demo { .. } => "samverka demo",
        }
    }

    /// Runs the command; `Ok` holds what to print.
    pub fn run(self) -> Result<String, CliError> {
        match self {
            Command::Serve { config } => serve::serve(&config),
            Command::CheckConfig { config } => serve::check_config(&config),
            Command::Consent { command } => {
                let mut out = runtime()?.block_on(consent::run(*command))?;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                Ok(out)
            }
            Command::Audit { command } => runtime()?.block_on(audit::run(command)),
            Command::Passport { command } => passport::run(command),
            Command::Adapter { command } => adapter::main(command),
            Command::Certs { command } => certs::run(command),
            Command::Demo { serve, dir } => demo::main(demo::DemoOptions { serve, dir }),
        }
    }
}

/// The multi-threaded runtime every networked command runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::failed)
}
