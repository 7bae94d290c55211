//! The `[telemetry]` section: OpenTelemetry traces (and optionally metrics)
//! over OTLP, and the log format.
//!
//! The standard `OTEL_*` environment variables override these settings
//! later, when telemetry starts; this only checks what the file says.

use std::collections::BTreeMap;

use samverka_adapter::telemetry::TelemetryConfig;
use serde::Deserialize;

use super::ConfigError;

/// The section as written; a missing key takes its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTelemetry {
    otlp_endpoint: Option<String>,
    otlp_metrics: bool,
    sampling_ratio: f64,
    service_name: String,
    log_format: String,
    resource_attributes: BTreeMap<String, String>,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            otlp_metrics: false,
            sampling_ratio: 1.0,
            service_name: "samverka-gateway".into(),
            log_format: "text".into(),
            resource_attributes: Default::default(),
        }
    }
}

/// An error about `telemetry.<key>`.
fn error(key: &str, reason: &str) -> ConfigError {
    ConfigError::for_key(format!("telemetry.{key}"), reason)
}

/// Checks the ratio, the log format, the endpoint's scheme and the
/// service name, in that order.
pub(super) fn parse(t: RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
    if !(0.0..=1.0).contains(&t.sampling_ratio) {
        return Err(error("sampling_ratio", "must be between 0.0 and 1.0"));
    }
    let json_logs = match t.log_format.as_str() {
        "text" => false,
        "json" => true,
        _ => return Err(error("log_format", "must be \"text\" or \"json\"")),
    };
    if let Some(e) = &t.otlp_endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(error(
            "otlp_endpoint",
            "must be an http:// or https:// URL, e.g. http://127.0.0.1:4317",
        ));
    }
    if t.service_name.trim().is_empty() {
        return Err(error("service_name", "must not be empty"));
    }
    Ok(TelemetryConfig {
        service_name: t.service_name,
        otlp_endpoint: t.otlp_endpoint,
        otlp_metrics: t.otlp_metrics,
        sampling_ratio: t.sampling_ratio,
        resource_attributes: t.resource_attributes.into_iter().collect(),
        json_logs,
        default_log_filter: "info".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<TelemetryConfig, ConfigError> {
        parse(toml::from_str(text).unwrap())
    }

    #[test]
    fn defaults() {
        let t = parse_text("").unwrap();
        assert_eq!(t.service_name, "samverka-gateway");
        assert_eq!(t.otlp_endpoint, None);
        assert!(!t.otlp_metrics);
        assert_eq!(t.sampling_ratio, 1.0);
        assert!(!t.json_logs);
        assert!(t.resource_attributes.is_empty());
        assert_eq!(t.default_log_filter, "info");
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        let cases = [
            ("sampling_ratio = 1.5", "telemetry.sampling_ratio"),
            ("log_format = \"xml\"", "telemetry.log_format"),
            (
                "otlp_endpoint = \"127.0.0.1:4317\"",
                "telemetry.otlp_endpoint",
            ),
            ("service_name = \" \"", "telemetry.service_name"),
        ];
        for (text, key) in cases {
            assert_eq!(parse_text(text).unwrap_err().key, key, "{text}");
        }
        let t = parse_text("log_format = \"json\"\notlp_endpoint = \"https://otel:4317\"").unwrap();
        assert!(t.json_logs);
    }
}
