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
//! Stops on Ctrl-C or SIGTERM after in-flight requests. Without
//! `--listen`, `--cert`, `--key` and `--ca` it reads them as an adapter's
//! `main` does ([`samverka_adapter::AdapterConfig::load`]:
//! `SAMVERKA_ADAPTER_CONFIG`, or `SAMVERKA_ADAPTER_LISTEN`, `_CERT`,
//! `_KEY`, `_CA`, `_CRLS`).
//!
//! `samverka adapter run template` serves the template adapter
//! (`adapters/template`, a dependency of this command) as shipped, so that
//! the adapter tutorial can be followed, and tested, without building a
//! crate of one's own first.
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

use samverka_adapter_template as template;

/// Which reference adapter.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReferenceAdapter {
    /// Course results and degrees (synthetic study records).
    HigherEducation,
    /// Employment periods (synthetic employment register).
    Employment,
    /// Validated competences (synthetic validation platform).
    Competence,
    /// Non-formal learning: employers' training, folk high school courses
    /// (synthetic course register).
    NonFormal,
    /// The template of docs/writing-an-adapter.md: one vocational diploma
    /// of the demo person, agency 2021999095.
    Template,
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
        /// A person the register holds records for (the default is the
        /// demo person, whom the reference adapters and the template know).
        #[arg(long, default_value = crate::cli::demo::DEMO_SUBJECT)]
        subject: String,
        /// A valid number the register does not know.
        #[arg(long, default_value = "197001010011")]
        unknown_subject: String,
    },
    /// Serve a reference adapter, or the adapter guide's template, over
    /// mTLS.
    Run {
        /// Which adapter.
        adapter: ReferenceAdapter,
        /// Where to listen (port 0: any free port). Without it (and
        /// --cert, --key, --ca), SAMVERKA_ADAPTER_CONFIG or
        /// SAMVERKA_ADAPTER_LISTEN, _CERT, _KEY, _CA, _CRLS say, as for an
        /// adapter built from the template.
        #[arg(long, requires_all = ["cert", "key", "ca"])]
        listen: Option<SocketAddr>,
        /// The adapter's server certificate (PEM).
        #[arg(long, requires = "listen")]
        cert: Option<PathBuf>,
        /// Its key (PEM).
        #[arg(long, requires = "listen")]
        key: Option<PathBuf>,
        /// The CA that issued the gateway's client certificate (PEM).
        #[arg(long, requires = "listen")]
        ca: Option<PathBuf>,
        /// Serve under this organisation number instead of the demo's (not
        /// for the template, which serves its own `AGENCY`).
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
        /// The agency's attestation certificate (PEM, role attester): the
        /// adapter then attests each record of a passport read. Also
        /// `attestation_cert` in the config file.
        #[arg(long, requires = "attestation_key")]
        attestation_cert: Option<PathBuf>,
        /// Its key (PEM).
        #[arg(long, requires = "attestation_cert")]
        attestation_key: Option<PathBuf>,
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
                    ReferenceAdapter::NonFormal => "non-formal",
                    ReferenceAdapter::Template => "template",
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
            attestation_cert,
            attestation_key,
        } => {
            let latency = std::time::Duration::from_millis(latency_ms);
            let (listen, tls) = match (listen, cert, key, ca) {
                (Some(listen), Some(cert), Some(key), Some(ca)) => (
                    listen,
                    AdapterTls::from_files(&cert, &key, &ca)?.with_crl_files(&crls)?,
                ),
                // clap makes these all or none.
                _ => {
                    let config = samverka_adapter::AdapterConfig::load()?;
                    let crls: Vec<_> = config.crls.iter().chain(&crls).collect();
                    let mut tls = AdapterTls::from_files(&config.cert, &config.key, &config.ca)?
                        .with_crl_files(&crls)?;
                    if let (Some(c), Some(k)) = (&config.attestation_cert, &config.attestation_key)
                    {
                        tls = tls.with_attester_files(c, k)?;
                    }
                    (config.listen, tls)
                }
            };
            let tls = match (attestation_cert, attestation_key) {
                (Some(c), Some(k)) => tls.with_attester_files(c, k)?,
                _ => tls,
            };
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
    let register = |demo: fn() -> InMemoryRegister, with_agency: fn(&str) -> InMemoryRegister| {
        agency.as_deref().map_or_else(demo, with_agency)
    };
    match adapter {
        ReferenceAdapter::HigherEducation => {
            let register = register(
                samverka_adapter_higher_education::demo,
                samverka_adapter_higher_education::with_agency,
            );
            run_late(register, "higher-education", listen, tls, latency).await
        }
        ReferenceAdapter::Employment => {
            let register = register(
                samverka_adapter_employment::demo,
                samverka_adapter_employment::with_agency,
            );
            run_late(register, "employment", listen, tls, latency).await
        }
        ReferenceAdapter::Competence => {
            let register = register(
                samverka_adapter_competence::demo,
                samverka_adapter_competence::with_agency,
            );
            run_late(register, "competence", listen, tls, latency).await
        }
        ReferenceAdapter::NonFormal => {
            let register = register(
                samverka_adapter_non_formal::demo,
                samverka_adapter_non_formal::with_agency,
            );
            run_late(register, "non-formal", listen, tls, latency).await
        }
        ReferenceAdapter::Template if agency.is_some() => Err(ServeError::Description(
            "the template serves its own AGENCY; --agency is for the reference adapters".into(),
        )),
        ReferenceAdapter::Template => {
            run_late(template::Register, "template", listen, tls, latency).await
        }
    }
}

/// [`run_one`], answering `latency` late if it is not zero.
async fn run_late<A: Adapter>(
    adapter: A,
    name: &str,
    listen: SocketAddr,
    tls: AdapterTls,
    latency: std::time::Duration,
) -> Result<(), ServeError> {
    if latency.is_zero() {
        run_one(adapter, name, listen, tls).await
    } else {
        let slow = Slow {
            inner: adapter,
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
