//! Serves the template adapter as `SAMVERKA_ADAPTER_CONFIG` (a TOML file)
//! or `SAMVERKA_ADAPTER_LISTEN`, `_CERT`, `_KEY`, `_CA` say, until Ctrl-C or
//! SIGTERM.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let result = match samverka_adapter::AdapterConfig::load() {
        Ok(config) => {
            samverka_adapter::serve_configured(samverka_adapter_template::Register, config).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samverka-adapter-template: {e}");
            ExitCode::FAILURE
        }
    }
}
