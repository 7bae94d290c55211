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

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use samverka_adapter::{Adapter, AdapterTls, InMemoryRegister, ServeError};

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
    },
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

/// Runs one `samverka adapter` command.
pub async fn run(command: AdapterCommand) -> Result<(), ServeError> {
    let AdapterCommand::Run {
        adapter,
        listen,
        cert,
        key,
        ca,
        agency,
    } = command;
    let tls = AdapterTls::from_files(&cert, &key, &ca)?;
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
    run_one(register, name, listen, tls).await
}
