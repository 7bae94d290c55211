//! `samverka portal`: the person's web view (the `samverka-portal` crate),
//! as a registrar e-service of its own in front of a gateway.

use std::path::Path;

use samverka_portal::{Portal, PortalConfig};

use super::{CliError, runtime};

/// Serves the portal until Ctrl-C or SIGTERM; exit 64 if its configuration
/// is unusable, 1 if the gateway or the identity provider cannot be
/// reached at start.
pub fn portal(config: &Path) -> Result<String, CliError> {
    let config = PortalConfig::load(config).map_err(CliError::Usage)?;
    runtime()?.block_on(async {
        let mut telemetry = samverka_adapter::telemetry::TelemetryConfig::new("samverka-portal");
        telemetry.default_log_filter = "info".into();
        let telemetry = samverka_adapter::telemetry::init(&telemetry).map_err(CliError::failed)?;
        samverka_adapter::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind(&config.address)
            .await
            .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", config.address)))?;
        let url = config.public_url.clone();
        let portal = Portal::new(config).await.map_err(CliError::Failed)?;
        eprintln!("samverka portal: serving {url} until Ctrl-C or SIGTERM");
        let served = portal
            .serve(listener, samverka_adapter::shutdown_signal())
            .await
            .map_err(|e| CliError::Failed(e.to_string()));
        telemetry.shutdown();
        served.map(|()| String::new())
    })
}
