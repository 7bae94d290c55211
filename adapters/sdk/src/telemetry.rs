//! Logs and OpenTelemetry traces for samverka processes: the gateway and
//! every adapter built with this SDK set up telemetry the same way.
//!
//! - **Logs** go to stderr, as text or, with [`TelemetryConfig::json_logs`]
//!   (or `SAMVERKA_LOG_FORMAT=json`), as one JSON object per line. Inside a
//!   request every line carries the request span's `trace_id` and
//!   `span_id`. `RUST_LOG` sets the filter.
//! - **Traces** are exported over OTLP/gRPC when an endpoint is set: in the
//!   configuration, or through the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), which wins. Without an
//!   endpoint no exporter and no OpenTelemetry layer is installed: tracing
//!   off costs nothing but the log filter.
//! - **Metrics** go to the same collector over OTLP too when asked
//!   ([`TelemetryConfig::otlp_metrics`] or `OTEL_METRICS_EXPORTER=otlp`;
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` may name another collector),
//!   every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (60 s by default).
//!   Off by default: the gateway's Prometheus `/metrics` has the same
//!   numbers, and recording them twice costs throughput
//!   (`docs/performance.md`).
//! - **Sampling** is parent-based: a request whose caller sampled (or did
//!   not sample) its trace is treated alike; a new trace is sampled with
//!   the configured ratio. `OTEL_TRACES_SAMPLER` and
//!   `OTEL_TRACES_SAMPLER_ARG`, when set, replace the configured sampler.
//! - **Resource**: `service.name` from the configuration, replaced by
//!   `OTEL_SERVICE_NAME` when set; resource attributes from the
//!   configuration, then `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`) on
//!   top.
//!
//! - **Export failures** (the collector unreachable, refusing, or too
//!   slow) are counted ([`export_failures`]; the gateway exports the count
//!   as `samverka_otlp_export_failures_total`) and logged as a warning, at
//!   most one per [`EXPORT_WARNING_INTERVAL`] with how many were not
//!   logged, and once more when an export succeeds again. OpenTelemetry's
//!   SDK reports them only through its own internal logs, which samverka
//!   does not build; without this a gateway whose collector is gone loses
//!   every span silently.
//!
//! Trace context travels between processes as W3C `traceparent` in gRPC
//! metadata: [`extract`] reads a caller's, [`inject`] writes one for a
//! call.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tonic::metadata::MetadataMap;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

mod reporting;
use reporting::Reporting;
pub use reporting::{EXPORT_WARNING_INTERVAL, export_failures};

/// How a process reports: its name, where traces go, how logs look.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `service.name` of its spans, e.g. `samverka-gateway`.
    pub service_name: String,
    /// The OTLP/gRPC endpoint of a collector, e.g. `http://127.0.0.1:4317`;
    /// `None`: no traces (unless the environment names one).
    pub otlp_endpoint: Option<String>,
    /// The share of new traces to sample, 0.0 to 1.0.
    pub sampling_ratio: f64,
    /// Further resource attributes, e.g. `deployment.environment`.
    pub resource_attributes: Vec<(String, String)>,
    /// Also export metrics over OTLP (`OTEL_METRICS_EXPORTER=otlp` does
    /// the same, `=none` prevents it).
    pub otlp_metrics: bool,
    /// Logs as JSON lines instead of text.
    pub json_logs: bool,
    /// The log filter when `RUST_LOG` is not set, e.g. `info`.
    pub default_log_filter: String,
}

impl TelemetryConfig {
    /// Defaults for `service_name`: no endpoint, sample everything, text
    /// logs at `info`.
    pub fn new(service_name: impl Into<String>) -> Self {
        TelemetryConfig {
            service_name: service_name.into(),
            otlp_endpoint: None,
            sampling_ratio: 1.0,
            resource_attributes: Vec::new(),
            otlp_metrics: false,
            json_logs: false,
            default_log_filter: "info".into(),
        }
    }

    /// The endpoint traces go to: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// else `OTEL_EXPORTER_OTLP_ENDPOINT`, else the configured one.
    pub fn effective_endpoint(&self, var: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", var)
    }

    /// The endpoint metrics go to: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
    /// else `OTEL_EXPORTER_OTLP_ENDPOINT`, else the configured one.
    pub fn metrics_endpoint(&self, var: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", var)
    }

    /// `signal_variable`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else the
    /// configured endpoint; blank values do not count.
    fn endpoint(
        &self,
        signal_variable: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        [signal_variable, "OTEL_EXPORTER_OTLP_ENDPOINT"]
            .iter()
            .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))
            .or_else(|| self.otlp_endpoint.clone())
    }

    /// The resource of this process's spans, with the environment looked
    /// up through `var`.
    pub fn resource(&self, var: impl Fn(&str) -> Option<String>) -> Resource {
        let service_name = var("OTEL_SERVICE_NAME")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| self.service_name.clone());
        let configured = self
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
        // `key=value` pairs separated by commas, as the specification
        // writes them.
        let from_env: Vec<KeyValue> = var("OTEL_RESOURCE_ATTRIBUTES")
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                let (k, v) = (k.trim(), v.trim());
                (!k.is_empty()).then(|| KeyValue::new(k.to_owned(), v.to_owned()))
            })
            .collect();
        // The environment's attributes on top of the configured ones, and
        // the service name on top of all.
        Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(configured)
            .with_attributes(from_env)
            .with_service_name(service_name)
            .build()
    }
}

/// The installed telemetry. Dropping it flushes spans and metrics not yet
/// exported.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

static METRICS_EXPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How new traces are sampled in this process, as far as samverka knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampling {
    /// No trace export.
    Off,
    /// Parent-based; a new trace is sampled with this ratio.
    Ratio(f64),
    /// `OTEL_TRACES_SAMPLER` chose the sampler: only the SDK knows.
    Sdk,
}

static TRACE_SAMPLING: std::sync::Mutex<TraceSampling> = std::sync::Mutex::new(TraceSampling::Off);

/// How this process samples traces (set by [`init`]).
pub fn trace_sampling() -> TraceSampling {
    *TRACE_SAMPLING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spans of this target are never exported: a request that is known not
/// to be sampled makes its span here, for the logs only, and costs the
/// OpenTelemetry layer nothing.
pub const UNEXPORTED_TARGET: &str = "samverka::unexported";

/// Whether this process exports metrics over OTLP: instruments made from
/// `opentelemetry::global::meter` are worth recording only then.
pub fn metrics_exported() -> bool {
    METRICS_EXPORTED.load(std::sync::atomic::Ordering::Relaxed)
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is pending and stops the exporters.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry: exporting the last spans failed: {e}");
        }
        if let Some(meters) = self.meters.take()
            && let Err(e) = meters.shutdown()
        {
            eprintln!("telemetry: exporting the last metrics failed: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Installs logging and, when an endpoint is set, trace export, as the
/// process's global subscriber. Call once, early, inside the Tokio runtime
/// (the OTLP exporter needs it). A second call in the same process keeps
/// the first subscriber and exports nothing itself.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, String> {
    init_with(config, |name| std::env::var(name).ok())
}

/// [`init`] with the environment looked up through `var`.
pub fn init_with(
    config: &TelemetryConfig,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Telemetry, String> {
    let filter = || {
        var("RUST_LOG")
            .and_then(|f| EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| EnvFilter::new(&config.default_log_filter))
    };
    let json = config.json_logs
        || var("SAMVERKA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    };

    let Some(endpoint) = config.effective_endpoint(&var) else {
        let _ = tracing_subscriber::registry().with(logs).try_init();
        return Ok(Telemetry {
            provider: None,
            meters: None,
        });
    };
    if !(0.0..=1.0).contains(&config.sampling_ratio) {
        return Err(format!(
            "sampling ratio {} is not between 0 and 1",
            config.sampling_ratio
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(Reporting::new(exporter, "spans", &endpoint))
        .with_resource(config.resource(&var));
    if var("OTEL_TRACES_SAMPLER").is_none() {
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))));
    }
    let provider = builder.build();
    let tracer = provider.tracer("samverka");
    // Spans at info and above (samverka's, and an adapter developer's
    // own), whatever the log filter says; not the transport libraries'.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_filter(EnvFilter::new(
            "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,rustls=off,\
             opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,\
             samverka::unexported=off",
        ));
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    if !installed {
        let _ = provider.shutdown();
        return Ok(Telemetry {
            provider: None,
            meters: None,
        });
    }
    *TRACE_SAMPLING.lock().unwrap_or_else(|p| p.into_inner()) =
        if var("OTEL_TRACES_SAMPLER").is_some() {
            TraceSampling::Sdk
        } else {
            TraceSampling::Ratio(config.sampling_ratio)
        };

    // Metrics too when asked, every OTEL_METRIC_EXPORT_INTERVAL (60 s by
    // default).
    let metrics = match var("OTEL_METRICS_EXPORTER").as_deref().map(str::trim) {
        Some("otlp") => true,
        Some(_) => false,
        None => config.otlp_metrics,
    };
    if !metrics {
        return Ok(Telemetry {
            provider: Some(provider),
            meters: None,
        });
    }
    let metrics_endpoint = config.metrics_endpoint(&var).unwrap_or(endpoint);
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(metrics_endpoint.clone())
        .build()
        .map_err(|e| format!("OTLP metrics exporter for {metrics_endpoint}: {e}"))?;
    let meters = SdkMeterProvider::builder()
        .with_periodic_exporter(Reporting::new(exporter, "metrics", &metrics_endpoint))
        .with_resource(config.resource(&var))
        .build();
    opentelemetry::global::set_meter_provider(meters.clone());
    METRICS_EXPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Telemetry {
        provider: Some(provider),
        meters: Some(meters),
    })
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The caller's W3C trace context from gRPC metadata (an empty context if
/// it sent none or a malformed one).
pub fn extract(metadata: &MetadataMap) -> Context {
    TraceContextPropagator::new().extract(&MetadataExtractor(metadata))
}

/// Writes `cx` as W3C `traceparent` (and `tracestate`) into `metadata`;
/// nothing if `cx` has no valid span.
pub fn inject(cx: &Context, metadata: &mut MetadataMap) {
    TraceContextPropagator::new().inject_context(cx, &mut MetadataInjector(metadata));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn attribute(resource: &Resource, key: &str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from(key.to_owned()))
            .map(|v| v.to_string())
    }

    #[test]
    fn the_environment_overrides_the_configuration() {
        let mut config = TelemetryConfig::new("samverka-gateway");
        config.otlp_endpoint = Some("http://collector:4317".into());
        config.resource_attributes = vec![
            ("deployment.environment".into(), "staging".into()),
            ("team".into(), "exchange".into()),
        ];

        // Nothing in the environment: the configuration.
        let none = env(&[]);
        assert_eq!(
            config.effective_endpoint(&none).as_deref(),
            Some("http://collector:4317")
        );
        let resource = config.resource(&none);
        assert_eq!(
            attribute(&resource, "service.name").as_deref(),
            Some("samverka-gateway")
        );
        assert_eq!(
            attribute(&resource, "deployment.environment").as_deref(),
            Some("staging")
        );

        // The standard variables win; a signal-specific endpoint over the
        // general one; blank values do not count.
        let vars = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_SERVICE_NAME", "gateway-blue"),
        ]);
        assert_eq!(
            config.effective_endpoint(&vars).as_deref(),
            Some("http://traces:4317")
        );
        assert_eq!(
            config
                .effective_endpoint(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]))
                .as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(
            attribute(&config.resource(&vars), "service.name").as_deref(),
            Some("gateway-blue")
        );

        // No endpoint anywhere: no traces.
        assert_eq!(TelemetryConfig::new("x").effective_endpoint(&none), None);
    }

    #[test]
    fn resource_attributes_from_the_environment_come_on_top() {
        let mut config = TelemetryConfig::new("samverka-gateway");
        config.resource_attributes = vec![
            ("deployment.environment".into(), "staging".into()),
            ("team".into(), "exchange".into()),
        ];
        let resource = config.resource(env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=production, region=north,broken",
        )]));
        assert_eq!(
            attribute(&resource, "deployment.environment").as_deref(),
            Some("production")
        );
        assert_eq!(attribute(&resource, "region").as_deref(), Some("north"));
        assert_eq!(attribute(&resource, "team").as_deref(), Some("exchange"));
        assert_eq!(
            attribute(&resource, "service.name").as_deref(),
            Some("samverka-gateway")
        );
        assert!(attribute(&resource, "telemetry.sdk.name").is_some());
    }
}
