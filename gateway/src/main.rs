//! The `samverka` command: serve the gateway, check a configuration, make a
//! development PKI, or run the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a bad configuration or bad arguments (EX_USAGE).
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "samverka",
    version,
    about = "Consent-checked exchange of education and employment records between agencies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        #[command(subcommand)]
        command: Box<samverka::consent_cli::ConsentCommand>,
    },
    /// Verify, export and archive the audit trail.
    Audit {
        #[command(subcommand)]
        command: samverka::audit_cli::AuditCommand,
    },
    /// Check competence passports offline.
    Passport {
        #[command(subcommand)]
        command: PassportCommand,
    },
    /// Run a reference adapter as its own process.
    Adapter {
        #[command(subcommand)]
        command: samverka::adapter_cli::AdapterCommand,
    },
    /// Development PKI.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
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

#[derive(Subcommand)]
enum PassportCommand {
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

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a CA, an empty revocation list (crl.pem) and the demo's
    /// gateway, agency and adapter certificates as PEM files.
    Init {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue one more certificate from the development CA in DIR.
    Issue {
        /// The development PKI (ca.pem, ca.key), as `certs init` wrote it.
        #[arg(long)]
        dir: PathBuf,
        /// File name stem: writes DIR/NAME.pem and DIR/NAME.key.
        #[arg(long)]
        name: String,
        /// The holder's organisation number.
        #[arg(long)]
        org: String,
        /// The holder's role.
        #[arg(long, value_enum)]
        role: CertRole,
        /// For a gateway: its client certificate towards adapters.
        #[arg(long)]
        client: bool,
    },
    /// Revoke a certificate: rewrite DIR/crl.pem with its serial number
    /// added (a gateway whose `gateway.crls` names that file refuses it
    /// from its next reload on).
    Revoke {
        /// The development PKI (ca.pem, ca.key, crl.pem).
        #[arg(long)]
        dir: PathBuf,
        /// The certificate to revoke (PEM).
        cert: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CertRole {
    Agency,
    Adapter,
    Gateway,
}

/// `samverka certs ...`: what to print, or why it failed.
fn certs(command: CertsCommand) -> Result<String, String> {
    use samverka_certs::dev::{CertRequest, DevCa, revoke, write_dev_pki};
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    match command {
        CertsCommand::Init { out } => {
            let files =
                write_dev_pki(&out, &samverka::demo::pki_spec()).map_err(|e| e.to_string())?;
            Ok(format!(
                "development PKI written to {}\n  trust anchor: {}\n  revocation list: {}\n",
                out.display(),
                files.ca_cert.display(),
                files.crl.display()
            ))
        }
        CertsCommand::Issue {
            dir,
            name,
            org,
            role,
            client,
        } => {
            let org = samverka_certs::OrgNumber::parse(&org).map_err(|e| format!("--org: {e}"))?;
            let ca = DevCa::from_pem(&read(&dir.join("ca.pem"))?, &read(&dir.join("ca.key"))?)
                .map_err(|e| e.to_string())?;
            let role = match role {
                CertRole::Agency => samverka_certs::Role::Agency,
                CertRole::Adapter => samverka_certs::Role::Adapter,
                CertRole::Gateway => samverka_certs::Role::Gateway,
            };
            let mut request = CertRequest::new(org, role, &name);
            if client {
                request = request.as_client();
            }
            let issued = ca.issue(&request).map_err(|e| e.to_string())?;
            let (cert, key) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&cert, &issued.cert_pem)
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            write_secret(&key, &issued.key_pem)?;
            Ok(format!("issued {} and {}\n", cert.display(), key.display()))
        }
        CertsCommand::Revoke { dir, cert } => {
            let revoked = revoke(&dir, &read(&cert)?).map_err(|e| e.to_string())?;
            Ok(format!(
                "{} revoked; {} now lists {revoked} revoked certificate(s)\n",
                cert.display(),
                dir.join("crl.pem").display()
            ))
        }
    }
}

/// Writes a private key readable by its owner only.
fn write_secret(path: &std::path::Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            // Logging is set up by `run`, from the configuration.
            let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(samverka::server::run(&config))
                    .map_err(|e| match e {
                        samverka::StartError::Config(e) => format!("bad configuration: {e}"),
                        other => other.to_string(),
                    })
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.starts_with("bad configuration") => {
                    eprintln!("samverka: {e}");
                    ExitCode::from(EX_USAGE)
                }
                Err(e) => {
                    eprintln!("samverka: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config } => match samverka::Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} agencies, {} purposes, {} access rules, {} adapters)",
                    config.display(),
                    c.agencies.len(),
                    c.purposes.len(),
                    c.access_rules.len(),
                    c.adapters.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("samverka: bad configuration: {e}");
                ExitCode::from(EX_USAGE)
            }
        },
        Command::Certs { command } => match certs(command) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("samverka certs: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Consent { command } => {
            let result = runtime()
                .map_err(|e| samverka::consent_cli::CliError::Failed(e.to_string()))
                .and_then(|rt| rt.block_on(samverka::consent_cli::run(*command)));
            match result {
                Ok(out) => {
                    print!("{out}");
                    if !out.ends_with('\n') {
                        println!();
                    }
                    ExitCode::SUCCESS
                }
                Err(e @ samverka::consent_cli::CliError::Usage(_)) => {
                    eprintln!("samverka consent: {e}");
                    ExitCode::from(EX_USAGE)
                }
                Err(e) => {
                    eprintln!("samverka consent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit { command } => {
            use samverka::audit_cli::AuditCliError;
            let result = runtime()
                .map_err(|e| AuditCliError::Failed(e.to_string()))
                .and_then(|rt| rt.block_on(samverka::audit_cli::run(command)));
            match result {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e @ AuditCliError::Usage(_)) => {
                    eprintln!("samverka audit: {e}");
                    ExitCode::from(EX_USAGE)
                }
                Err(e) => {
                    eprintln!("samverka audit: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Passport {
            command: PassportCommand::Verify { file, cert, json },
        } => {
            use samverka::passport::{VerifyFileError, verify_file};
            match verify_file(&file, &cert, json) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(VerifyFileError::Usage(e)) => {
                    eprintln!("samverka passport: {e}");
                    ExitCode::from(EX_USAGE)
                }
                Err(VerifyFileError::Invalid(e)) => {
                    eprintln!("samverka passport: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Adapter { command } => {
            let service_name = command.service_name();
            let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(async {
                    let telemetry = samverka_adapter::telemetry::init(
                        &samverka_adapter::telemetry::TelemetryConfig::new(service_name),
                    )?;
                    let result = samverka::adapter_cli::run(command)
                        .await
                        .map_err(|e| e.to_string());
                    telemetry.shutdown();
                    result
                })
            });
            match result {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("samverka adapter: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { serve, dir } => {
            let options = samverka::demo::DemoOptions { serve, dir };
            match runtime().map_err(Into::into).and_then(|rt| {
                rt.block_on(async {
                    // One process: the gateway's and the adapters' spans
                    // all go to the OTEL_EXPORTER_OTLP_ENDPOINT, if set.
                    let mut config =
                        samverka_adapter::telemetry::TelemetryConfig::new("samverka-demo");
                    config.default_log_filter = "warn".into();
                    let telemetry = samverka_adapter::telemetry::init(&config)?;
                    let result = samverka::demo::run(options).await;
                    telemetry.shutdown();
                    result
                })
            }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("samverka demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Every request allocates and frees many small buffers on both runtime
/// threads, which mimalloc's per-thread heaps make cheaper than the system
/// allocator; with two other changes it took the gateway +12 % at 64
/// requests in flight, for a peak RSS of 47 MiB instead of 25
/// (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
