//! `samverka serve` and `samverka check-config`: the gateway itself, and
//! the check an operator runs before starting it.
//!
//! Both open every file the configuration names
//! ([`samverka_gateway::config::check`]): `check-config` prints every
//! problem as `FILE:LINE: KEY: REASON` (warnings with `warning: ` before
//! the reason) and exits 64 on any error; `serve` refuses to start on the
//! same errors, also with 64, which the systemd unit's
//! `RestartPreventExitStatus=64` does not restart.

use std::path::Path;

use samverka_gateway::StartError;
use samverka_gateway::config::check::{Problem, Report, check};

use super::{CliError, runtime};

/// Runs the gateway until Ctrl-C or SIGTERM. Logging is set up by the
/// server, from the configuration; the warnings of the check before it
/// go to stderr.
pub fn serve(config: &Path) -> Result<String, CliError> {
    let report = check(config);
    if report.has_errors() {
        return Err(refused(&report));
    }
    for warning in report.warnings() {
        eprintln!("samverka: {warning}");
    }
    runtime()?
        .block_on(samverka_gateway::server::run(config))
        .map(|()| String::new())
        .map_err(|e| match e {
            StartError::Config(e) => CliError::Usage(format!("bad configuration: {e}")),
            // A certificate, key or list that could not be used: restarting
            // will not help either.
            e @ StartError::Tls(_) => CliError::Usage(e.to_string()),
            // Two registries and no way to know which is meant, or one
            // that cannot be used: the configuration must change.
            e @ StartError::Registry(_) => CliError::Usage(e.to_string()),
            other => CliError::Failed(other.to_string()),
        })
}

/// Validates a configuration and the files it names, and summarises it.
pub fn check_config(config: &Path) -> Result<String, CliError> {
    let report = check(config);
    if report.has_errors() {
        return Err(refused(&report));
    }
    let warnings: Vec<&Problem> = report.warnings().collect();
    for warning in &warnings {
        eprintln!("{warning}");
    }
    let Some(c) = &report.config else {
        return Err(refused(&report));
    };
    Ok(format!(
        "{}: ok ({} agencies, {} purposes, {} access rules, {} adapters{})\n",
        config.display(),
        c.agencies.len(),
        c.purposes.len(),
        c.access_rules.len(),
        c.adapters.len(),
        match warnings.len() {
            0 => String::new(),
            1 => "; 1 warning".into(),
            n => format!("; {n} warnings"),
        }
    ))
}

/// Exit 64 with every problem, one a line, errors and warnings in the
/// order of the file.
fn refused(report: &Report) -> CliError {
    let errors = report.errors().count();
    let mut message = format!(
        "bad configuration ({errors} error{}):",
        if errors == 1 { "" } else { "s" }
    );
    for problem in &report.problems {
        message.push('\n');
        message.push_str(&problem.to_string());
    }
    CliError::Usage(message)
}
