//! Serves the adapter as `SAMVERKA_ADAPTER_CONFIG` (a TOML file) or
//! `SAMVERKA_ADAPTER_LISTEN`, `_CERT`, `_KEY`, `_CA` say, until Ctrl-C or
//! SIGTERM, with logs and (when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)
//! traces as every samverka process. Its name, in the logs and as the
//! OpenTelemetry service name, is the package's (`Cargo.toml`).

use std::process::ExitCode;

/// The package's name: what the logs and traces call this process.
const NAME: &str = env!("CARGO_PKG_NAME");

#[tokio::main]
async fn main() -> ExitCode {
    // Logs on stderr; traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is
    // set (the gateway's trace continues in this adapter's spans). The SDK
    // logs one line when it listens: `samverka adapter listening on ...`.
    let telemetry = match samverka_adapter::telemetry::init(
        &samverka_adapter::telemetry::TelemetryConfig::new(NAME),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{NAME}: telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match samverka_adapter::AdapterConfig::load() {
        Ok(config) => {
            samverka_adapter::serve_configured(samverka_adapter_template::Register, config).await
        }
        Err(e) => Err(e),
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            ExitCode::FAILURE
        }
    }
}
