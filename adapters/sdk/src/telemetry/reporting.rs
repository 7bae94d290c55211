//! Failed OTLP exports, counted and logged: the SDK's exporters report
//! their errors only through OpenTelemetry's internal logs, which samverka
//! does not build, so every exporter [`super::init_with`] installs is
//! wrapped in [`Reporting`].

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// OTLP exports, of spans or metrics, that have failed in this process.
static EXPORT_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many OTLP exports (a batch of spans, or one round of metrics) have
/// failed in this process since it started.
pub fn export_failures() -> u64 {
    EXPORT_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// At most one warning about failed exports per this interval; the next
/// one says how many were not logged.
pub const EXPORT_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// When failed exports were last logged, and how many failed since; `None`
/// while exports succeed.
static EXPORT_WARNED: std::sync::Mutex<Option<(std::time::Instant, u64)>> =
    std::sync::Mutex::new(None);

/// Counts and logs (sparingly) a failed export, and logs the first success
/// after failures.
fn exported(what: &'static str, endpoint: &str, result: &OTelSdkResult) {
    let mut warned = EXPORT_WARNED.lock().unwrap_or_else(|p| p.into_inner());
    match (result, warned.as_mut()) {
        (Ok(()), None) => {}
        (Ok(()), Some(_)) => {
            *warned = None;
            tracing::info!(what, endpoint, "OTLP export succeeded again");
        }
        (Err(error), last) => {
            EXPORT_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = std::time::Instant::now();
            match last {
                Some((at, not_logged)) if now.duration_since(*at) < EXPORT_WARNING_INTERVAL => {
                    *not_logged += 1;
                }
                _ => {
                    let not_logged = last.map_or(0, |(_, n)| *n);
                    tracing::warn!(
                        what,
                        endpoint,
                        %error,
                        not_logged,
                        "OTLP export failed: this telemetry is lost \
                         (samverka_otlp_export_failures_total counts every failure)"
                    );
                    *warned = Some((now, 0));
                }
            }
        }
    }
}

/// An exporter whose every export's outcome goes through [`exported`].
#[derive(Debug)]
pub(super) struct Reporting<E> {
    inner: E,
    what: &'static str,
    endpoint: String,
}

impl<E> Reporting<E> {
    /// `inner`, exporting `what` (`spans`, `metrics`) to `endpoint`.
    pub(super) fn new(inner: E, what: &'static str, endpoint: &str) -> Self {
        Reporting {
            inner,
            what,
            endpoint: endpoint.to_owned(),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        exported(self.what, &self.endpoint, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Reporting<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        exported(self.what, &self.endpoint, &result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
