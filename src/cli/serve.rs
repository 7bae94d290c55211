//! `samverka serve` and `samverka check-config`: the gateway itself, and
//! the check an operator runs before starting it.

use std::path::Path;

use samverka_gateway::{Config, StartError};

use super::{CliError, runtime};

/// Runs the gateway until Ctrl-C or SIGTERM. Logging is set up by the
/// server, from the configuration.
pub fn serve(config: &Path) -> Result<String, CliError> {
    runtime()?
        .block_on(samverka_gateway::server::run(config))
        .map(|()| String::new())
        .map_err(|e| match e {
            StartError::Config(e) => CliError::Usage(format!("bad configuration: {e}")),
            other => CliError::Failed(other.to_string()),
        })
}

/// Validates a configuration and summarises it.
pub fn check_config(config: &Path) -> Result<String, CliError> {
    let c = Config::load(config).map_err(|e| CliError::Usage(format!("bad configuration: {e}")))?;
    Ok(format!(
        "{}: ok ({} agencies, {} purposes, {} access rules, {} adapters)\n",
        config.display(),
        c.agencies.len(),
        c.purposes.len(),
        c.access_rules.len(),
        c.adapters.len()
    ))
}
