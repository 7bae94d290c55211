//! `samverka adapter run`: the reference adapters as processes of their
//! own, for operators trying samverka out and for benchmarks.
//!
//! ```text
//! samverka adapter run employment --listen 127.0.0.1:50062 \
//!     --cert adapter-employment.pem --key adapter-employment.key --ca ca.pem
//! ```
//!
//! With port 0 the OS picks a port; the first line on stdout says which:
//! `samverka adapter employment (agency 2021999053) serving on 127.0.0.1:PORT`.
//! Stops on Ctrl-C or SIGTERM after in-flight requests.
//!
//! `samverka adapter check` runs the conformance kit
//! ([`samverka_adapter::conformance`]) against any running adapter, in any
//! language, calling it with a gateway certificate:
//!
//! ```text
//! samverka adapter check --addr 127.0.0.1:50062 --ca ca.pem \
//!     --cert gateway-client.pem --key gateway-client.key \
//!     --other-cert agency-reader.pem --other-key agency-reader.key \
//!     --subject 199003142388
//! ```
//!
//! Each check prints PASS or FAIL with the reason; the exit code is 1 if
//! any failed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use samverka_adapter::{Adapter, AdapterTls, InMemoryRegister, ServeError};

use super::CliError;

/// Which reference adapter.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReferenceAdapter {
    /// Course results and degrees (synthetic study records).
    HigherEducation,
    /// Employment periods (synthetic employment register).
    Employment,
    /// Validated competences (synthetic validation platform).
    Competence,
}

/// Subcommands of `samverka adapter`.
#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Run the conformance kit against a running adapter.
    Check {
        /// The adapter, host:port.
        #[arg(long)]
        addr: String,
        /// The name its certificate must be valid for.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        /// Trust anchor (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// A certificate with the gateway role (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// A certificate of the same CA without the gateway role, for the
        /// refusal check.
        #[arg(long, requires = "other_key")]
        other_cert: Option<PathBuf>,
        /// Its key.
        #[arg(long)]
        other_key: Option<PathBuf>,
        /// A person the register holds records for.
        #[arg(long, default_value = crate::cli::demo::DEMO_SUBJECT)]
        subject: String,
        /// A valid number the register does not know.
        #[arg(long, default_value = "197001010011")]
        unknown_subject: String,
    },
    /// Serve a reference adapter over mTLS.
    Run {
        /// Which adapter.
        adapter: ReferenceAdapter,
        /// Where to listen (port 0: any free port).
        #[arg(long)]
        listen: SocketAddr,
        /// The adapter's server certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The CA that issued the gateway's client certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// Serve under this organisation number instead of the demo's.
        #[arg(long)]
        agency: Option<String>,
        /// Answer every records request this many milliseconds late, like
        /// a slow register: for trying deadlines and for benchmarks.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// A certificate revocation list (PEM) of the CA; a revoked gateway
        /// certificate is refused. Repeat for several.
        #[arg(long = "crl")]
        crls: Vec<PathBuf>,
    },
}

/// A register that answers `latency` late.
struct Slow<A> {
    inner: A,
    latency: std::time::Duration,
}

impl<A: Adapter> Adapter for Slow<A> {
    fn describe(&self) -> samverka_adapter::Description {
        self.inner.describe()
    }

    async fn fetch_records(
        &self,
        query: samverka_adapter::FetchQuery,
    ) -> Result<Vec<samverka_proto::records::v1::Record>, samverka_adapter::AdapterError> {
        tokio::time::sleep(self.latency).await;
        self.inner.fetch_records(query).await
    }
}

impl AdapterCommand {
    /// The OpenTelemetry `service.name` of this command's process.
    pub fn service_name(&self) -> String {
        match self {
            AdapterCommand::Check { .. } => "samverka-adapter-check".into(),
            AdapterCommand::Run { adapter, .. } => format!(
                "samverka-adapter-{}",
                match adapter {
                    ReferenceAdapter::HigherEducation => "higher-education",
                    ReferenceAdapter::Employment => "employment",
                    ReferenceAdapter::Competence => "competence",
                }
            ),
        }
    }
}

async fn run_one<A: Adapter>(
    adapter: A,
    name: &str,
    listen: SocketAddr,
    tls: AdapterTls,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {listen}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    println!(
        "samverka adapter {name} (agency {}) serving on {address}",
        adapter.describe().agency
    );
    let _ = std::io::stdout().flush();
    samverka_adapter::until_signal_then_drain(
        |stop| samverka_adapter::serve_with_listener(adapter, listener, tls, stop),
        samverka_adapter::DRAIN_TIMEOUT,
    )
    .await
    .unwrap_or(Ok(()))
}

/// Runs one `samverka adapter` command; `Ok(false)` when a conformance
/// check failed.
pub async fn run(command: AdapterCommand) -> Result<bool, ServeError> {
    match command {
        AdapterCommand::Check {
            addr,
            server_name,
            ca,
            cert,
            key,
            other_cert,
            other_key,
            subject,
            unknown_subject,
        } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p)
                    .map_err(|e| ServeError::Io(format!("{}: {e}", p.display())))
            };
            let other_identity = match (&other_cert, &other_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            };
            check(samverka_adapter::conformance::KitConfig {
                address: addr,
                server_name,
                ca_pem: read(&ca)?,
                gateway_cert_pem: read(&cert)?,
                gateway_key_pem: read(&key)?,
                other_identity,
                known_subject: subject,
                unknown_subject,
            })
            .await
        }
        AdapterCommand::Run {
            adapter,
            listen,
            cert,
            key,
            ca,
            agency,
            latency_ms,
            crls,
        } => {
            let latency = std::time::Duration::from_millis(latency_ms);
            let tls = AdapterTls::from_files(&cert, &key, &ca)?.with_crl_files(&crls)?;
            serve_reference(adapter, listen, tls, agency, latency)
                .await
                .map(|()| true)
        }
    }
}

/// Runs the conformance kit and prints each check; `false` if any failed.
async fn check(config: samverka_adapter::conformance::KitConfig) -> Result<bool, ServeError> {
    let results = samverka_adapter::conformance::run_checks(&config).await;
    let failed = results.iter().filter(|r| !r.passed).count();
    for r in &results {
        println!(
            "{} {:<30} {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.name,
            r.detail
        );
    }
    println!(
        "{}: {} of {} checks passed",
        config.address,
        results.len() - failed,
        results.len()
    );
    Ok(failed == 0)
}

async fn serve_reference(
    adapter: ReferenceAdapter,
    listen: SocketAddr,
    tls: AdapterTls,
    agency: Option<String>,
    latency: std::time::Duration,
) -> Result<(), ServeError> {
    let (name, register): (&str, InMemoryRegister) = match adapter {
        ReferenceAdapter::HigherEducation => (
            "higher-education",
            agency.map_or_else(samverka_adapter_higher_education::demo, |org| {
                samverka_adapter_higher_education::with_agency(&org)
            }),
        ),
        ReferenceAdapter::Employment => (
            "employment",
            agency.map_or_else(samverka_adapter_employment::demo, |org| {
                samverka_adapter_employment::with_agency(&org)
            }),
        ),
        ReferenceAdapter::Competence => (
            "competence",
            agency.map_or_else(samverka_adapter_competence::demo, |org| {
                samverka_adapter_competence::with_agency(&org)
            }),
        ),
    };
    if latency.is_zero() {
        run_one(register, name, listen, tls).await
    } else {
        let slow = Slow {
            inner: register,
            latency,
        };
        run_one(slow, name, listen, tls).await
    }
}

/// `samverka adapter ...` as a process: telemetry named after the adapter,
/// the command, then a flush of what telemetry holds.
pub fn main(command: AdapterCommand) -> Result<String, CliError> {
    let service_name = command.service_name();
    let passed = super::runtime()?.block_on(async {
        let telemetry = samverka_adapter::telemetry::init(
            &samverka_adapter::telemetry::TelemetryConfig::new(service_name),
        )
        .map_err(CliError::failed)?;
        let result = run(command).await.map_err(CliError::failed);
        telemetry.shutdown();
        result
    })?;
    // A failed conformance check has printed its own FAIL lines.
    if passed {
        Ok(String::new())
    } else {
        Err(CliError::Failed(String::new()))
    }
}
