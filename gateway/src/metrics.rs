//! The gateway's metrics, on the admin listener's `/metrics`: in the
//! Prometheus text format 0.0.4, or OpenMetrics 1.0.0 for a scraper that
//! asks for it in its `Accept` header (Prometheus does); see
//! [`Format`].
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `samverka_requests_total` | method, agency, decision, reason | every RPC, by method (`Service/Method`, e.g. `RecordExchange/GetRecords`, `Consents/Grant`), caller agency (from its certificate; empty when it has none) and outcome |
//! | `samverka_request_duration_seconds` | method | time from request to answer |
//! | `samverka_consent_checks_total` | result | consent decisions: `allowed` or the denial reason |
//! | `samverka_source_requests_total` | source, outcome | adapter calls by source and outcome (`OK`, `UNAVAILABLE`, ...) |
//! | `samverka_source_duration_seconds` | source | adapter call time |
//! | `samverka_audit_commit_seconds` | | time to commit one batch of audit entries (the sync included) |
//! | `samverka_audit_batch_entries` | | entries per committed batch (group commit at work) |
//! | `samverka_access_index_pending_entries` | | audit entries not yet in the access log's index by person (SQLite, where a thread fills it about once a second; always 0 on PostgreSQL) |
//! | `samverka_registry_version` | digest | the registry version in force on this replica, its document's digest as the label (one series): replicas with different digests decide with different registries |
//! | `samverka_ready` | | 1 while the gateway can answer reads (as `/readyz` says), 0 while not: its store does not answer, audit commits fail, or the audit writer has stopped |
//! | `samverka_open_connections` | | agency connections open on the gRPC port now |
//! | `samverka_connections_total` | | agency connections accepted (TCP, before the TLS handshake) |
//! | `samverka_tls_handshake_failures_total` | | handshakes refused (no or a bad client certificate, a revoked one, a protocol the policy does not allow) or not finished in time |
//! | `samverka_crl_next_update_timestamp_seconds` | issuer | per issuer of a CRL in `gateway.crls`: its list's `nextUpdate` (Unix time; the earliest when an issuer has several), when a newer list is due |
//! | `samverka_crl_stale` | issuer | 1 while that `nextUpdate` has passed (see `gateway.stale_crl`), else 0 |
//! | `samverka_otlp_export_failures_total` | | OTLP exports (a batch of spans, a round of metrics) that failed: the collector unreachable, refusing or too slow; their telemetry is lost |
//!
//! Label values are organisation numbers, method names, purposes' reasons
//! and outcomes, never a person's identity number.
//!
//! When telemetry exports over OTLP (see [`samverka_adapter::telemetry`]),
//! the same measurements also go out as OpenTelemetry metrics, named in the
//! OpenTelemetry style: `samverka.requests`, `samverka.request.duration`,
//! `samverka.consent_checks`, `samverka.source.requests`,
//! `samverka.source.duration`, `samverka.audit.commit.duration`,
//! `samverka.audit.batch.entries`, `samverka.access_index.pending`,
//! `samverka.registry.version`, `samverka.ready`,
//! `samverka.connections.open`, with the
//! labels above as attributes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::audit::Decision;
use crate::store::IndexProgress;

mod connection;
mod exposition;
pub use connection::CountedConnection;
pub use exposition::Format;

// Label values: `&'static str` for the fixed sets (methods, decisions,
// reasons, outcomes) and `Arc<str>` for agencies and sources, so that
// counting a request looks its series up without allocating.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    agency: Arc<str>,
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DigestLabels {
    digest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer: String,
}

/// Where the CRLs in use come from: (issuer, `nextUpdate` in Unix seconds)
/// per list.
type CrlSource = Arc<dyn Fn() -> Vec<(String, i64)> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOutcomeLabels {
    source: Arc<str>,
    outcome: &'static str,
}

/// 100 µs to about 6.5 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// 1 to 1024 entries, doubling.
fn batch_sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

/// The registry version in force and its document's digest, once known.
type RegistryInForce = Arc<std::sync::Mutex<Option<(i64, String)>>>;

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The gateway's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: LatencyFamily<MethodLabels>,
    consent_checks: Family<ResultLabels, Counter>,
    source_requests: Family<SourceOutcomeLabels, Counter>,
    source_durations: LatencyFamily<SourceLabels>,
    audit_commit: Histogram,
    audit_batch: Histogram,
    access_index: Arc<OnceLock<Arc<IndexProgress>>>,
    access_index_pending: Gauge,
    registry_version: Family<DigestLabels, Gauge>,
    /// The registry version in force and its digest, which both exporters
    /// read when they report: only the version in force is ever reported.
    registry_in_force: RegistryInForce,
    ready: Gauge,
    open_connections: Gauge,
    connections: Counter,
    handshake_failures: Counter,
    otlp_export_failures: Counter,
    crls: Arc<OnceLock<CrlSource>>,
    crl_next_update: Family<IssuerLabels, Gauge>,
    crl_stale: Family<IssuerLabels, Gauge>,
    otel: Option<Arc<OtelInstruments>>,
}

/// The OpenTelemetry twins of the Prometheus metrics.
struct OtelInstruments {
    requests: opentelemetry::metrics::Counter<u64>,
    durations: opentelemetry::metrics::Histogram<f64>,
    consent_checks: opentelemetry::metrics::Counter<u64>,
    source_requests: opentelemetry::metrics::Counter<u64>,
    source_durations: opentelemetry::metrics::Histogram<f64>,
    audit_commit: opentelemetry::metrics::Histogram<f64>,
    audit_batch: opentelemetry::metrics::Histogram<u64>,
    open_connections: opentelemetry::metrics::UpDownCounter<i64>,
    ready: opentelemetry::metrics::Gauge<i64>,
    _access_index_pending: opentelemetry::metrics::ObservableGauge<i64>,
    _registry_version: opentelemetry::metrics::ObservableGauge<i64>,
}

impl OtelInstruments {
    fn new(
        access_index: Arc<OnceLock<Arc<IndexProgress>>>,
        registry_in_force: RegistryInForce,
    ) -> Self {
        let meter = opentelemetry::global::meter("samverka");
        OtelInstruments {
            requests: meter
                .u64_counter("samverka.requests")
                .with_description("RPCs by method, caller agency, decision and reason")
                .build(),
            durations: meter
                .f64_histogram("samverka.request.duration")
                .with_unit("s")
                .with_description("Time from request to answer")
                .build(),
            consent_checks: meter
                .u64_counter("samverka.consent_checks")
                .with_description("Consent decisions by result")
                .build(),
            source_requests: meter
                .u64_counter("samverka.source.requests")
                .with_description("Adapter calls by source and outcome")
                .build(),
            source_durations: meter
                .f64_histogram("samverka.source.duration")
                .with_unit("s")
                .with_description("Adapter call time by source")
                .build(),
            audit_commit: meter
                .f64_histogram("samverka.audit.commit.duration")
                .with_unit("s")
                .with_description("Time to commit one batch of audit entries")
                .build(),
            audit_batch: meter
                .u64_histogram("samverka.audit.batch.entries")
                .with_description("Audit entries per committed batch")
                .build(),
            open_connections: meter
                .i64_up_down_counter("samverka.connections.open")
                .with_description("Agency connections open on the gRPC port")
                .build(),
            ready: meter
                .i64_gauge("samverka.ready")
                .with_description("1 while the gateway can answer reads, 0 while not")
                .build(),
            _access_index_pending: meter
                .i64_observable_gauge("samverka.access_index.pending")
                .with_unit("{entry}")
                .with_description("Audit entries not yet in the access log's index by person")
                .with_callback(move |gauge| {
                    if let Some(progress) = access_index.get() {
                        gauge.observe(progress.pending(), &[]);
                    }
                })
                .build(),
            // Observed, not recorded: a recorded gauge would go on
            // reporting a replaced version's digest beside the new one.
            _registry_version: meter
                .i64_observable_gauge("samverka.registry.version")
                .with_description("The registry version in force, by its document's digest")
                .with_callback(move |gauge| {
                    let in_force = registry_in_force.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((version, digest)) = &*in_force {
                        gauge.observe(*version, &[kv("digest", digest.clone())]);
                    }
                })
                .build(),
        }
    }
}

fn kv(key: &'static str, value: impl Into<opentelemetry::Value>) -> opentelemetry::KeyValue {
    opentelemetry::KeyValue::new(key, value)
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "samverka_requests",
            "RPCs by method, caller agency, decision and reason",
            requests.clone(),
        );
        let durations =
            LatencyFamily::<MethodLabels>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "samverka_request_duration_seconds",
            "Time from request to answer",
            durations.clone(),
        );
        let consent_checks = Family::<ResultLabels, Counter>::default();
        registry.register(
            "samverka_consent_checks",
            "Consent decisions by result",
            consent_checks.clone(),
        );
        let source_requests = Family::<SourceOutcomeLabels, Counter>::default();
        registry.register(
            "samverka_source_requests",
            "Adapter calls by source and outcome",
            source_requests.clone(),
        );
        let source_durations =
            LatencyFamily::<SourceLabels>::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "samverka_source_duration_seconds",
            "Adapter call time by source",
            source_durations.clone(),
        );
        let audit_commit = latency();
        registry.register(
            "samverka_audit_commit_seconds",
            "Time to commit one batch of audit entries",
            audit_commit.clone(),
        );
        let audit_batch = batch_sizes();
        registry.register(
            "samverka_audit_batch_entries",
            "Audit entries per committed batch",
            audit_batch.clone(),
        );
        let access_index_pending = Gauge::default();
        registry.register(
            "samverka_access_index_pending_entries",
            "Audit entries not yet in the access log's index by person",
            access_index_pending.clone(),
        );
        let access_index = Arc::new(OnceLock::new());
        let registry_in_force = RegistryInForce::default();
        let registry_version = Family::<DigestLabels, Gauge>::default();
        registry.register(
            "samverka_registry_version",
            "The registry version in force on this replica, its document's digest as the label",
            registry_version.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "samverka_ready",
            "1 while the gateway can answer reads (as /readyz says), 0 while not",
            ready.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "samverka_open_connections",
            "Agency connections open on the gRPC port",
            open_connections.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "samverka_connections",
            "Agency connections accepted on the gRPC port",
            connections.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "samverka_tls_handshake_failures",
            "TLS handshakes on the gRPC port refused or not finished in time",
            handshake_failures.clone(),
        );
        let otlp_export_failures = Counter::default();
        registry.register(
            "samverka_otlp_export_failures",
            "OTLP exports of spans or metrics that failed (collector unreachable, refusing or too slow); their telemetry is lost",
            otlp_export_failures.clone(),
        );
        let crl_next_update = Family::<IssuerLabels, Gauge>::default();
        registry.register(
            "samverka_crl_next_update_timestamp_seconds",
            "Per issuer of a certificate revocation list in gateway.crls: the list's nextUpdate (Unix time, the earliest if several), when a newer list is due",
            crl_next_update.clone(),
        );
        let crl_stale = Family::<IssuerLabels, Gauge>::default();
        registry.register(
            "samverka_crl_stale",
            "1 while the certificate revocation list of an issuer is past its nextUpdate (gateway.stale_crl says whether it is still used), 0 otherwise",
            crl_stale.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            open_connections,
            connections,
            handshake_failures,
            otlp_export_failures,
            crls: Arc::new(OnceLock::new()),
            crl_next_update,
            crl_stale,
            otel: samverka_adapter::telemetry::metrics_exported().then(|| {
                Arc::new(OtelInstruments::new(
                    access_index.clone(),
                    registry_in_force.clone(),
                ))
            }),
            requests,
            durations,
            consent_checks,
            source_requests,
            source_durations,
            audit_commit,
            audit_batch,
            access_index,
            access_index_pending,
            registry_version,
            registry_in_force,
            ready,
        }
    }

    /// The registry version in force now, under its document's digest
    /// (hex SHA-256): from the next report on, the only one reported.
    pub fn registry_version(&self, version: i64, digest: &str) {
        *self
            .registry_in_force
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((version, digest.to_owned()));
    }

    /// Whether the gateway can answer reads now (see
    /// [`crate::Gateway::ready`]).
    pub fn ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
        if let Some(otel) = &self.otel {
            otel.ready.record(i64::from(ready), &[]);
        }
    }

    /// Reports how far the store's access log index is behind (once; on
    /// PostgreSQL there is nothing to report).
    pub fn watch_access_index(&self, progress: Option<Arc<IndexProgress>>) {
        if let Some(progress) = progress {
            let _ = self.access_index.set(progress);
        }
    }

    /// Reports the CRLs `source` gives at each scrape (once: the first
    /// source given stays): (issuer, `nextUpdate` in Unix seconds) per
    /// list in use.
    pub fn watch_crls(&self, source: impl Fn() -> Vec<(String, i64)> + Send + Sync + 'static) {
        let _ = self.crls.set(Arc::new(source));
    }

    /// The CRL gauges from the lists in use now.
    fn refresh_crls(&self) {
        let Some(source) = self.crls.get() else {
            return;
        };
        let mut earliest = std::collections::BTreeMap::<String, i64>::new();
        for (issuer, next_update) in source() {
            let e = earliest.entry(issuer).or_insert(next_update);
            *e = (*e).min(next_update);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        // Issuers no longer configured disappear.
        self.crl_next_update.clear();
        self.crl_stale.clear();
        for (issuer, next_update) in earliest {
            let labels = IssuerLabels { issuer };
            self.crl_next_update.get_or_create(&labels).set(next_update);
            self.crl_stale
                .get_or_create(&labels)
                .set(i64::from(now >= next_update));
        }
    }

    /// One answered RPC; `agency` is empty when the caller has none.
    pub fn request(
        &self,
        method: &'static str,
        agency: &Arc<str>,
        decision: Decision,
        reason: &'static str,
        took: Duration,
    ) {
        let decision = decision.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                method,
                agency: agency.clone(),
                decision,
                reason,
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels { method })
            .observe(took.as_secs_f64());
        if let Some(otel) = &self.otel {
            otel.requests.add(
                1,
                &[
                    kv("method", method),
                    kv("agency", agency.clone()),
                    kv("decision", decision),
                    kv("reason", reason),
                ],
            );
            otel.durations
                .record(took.as_secs_f64(), &[kv("method", method)]);
        }
    }

    /// One consent decision: `allowed`, or the refusal's reason.
    pub fn consent_check<P>(&self, decision: &Result<P, crate::GatewayError>) {
        let result = match Decision::of(decision) {
            (Decision::Denied, reason) => reason,
            (d, _) => d.as_str(),
        };
        self.consent_checks
            .get_or_create(&ResultLabels { result })
            .inc();
        if let Some(otel) = &self.otel {
            otel.consent_checks.add(1, &[kv("result", result)]);
        }
    }

    /// One adapter call.
    pub fn source_call(&self, source: &Arc<str>, outcome: &'static str, took: Duration) {
        self.source_requests
            .get_or_create(&SourceOutcomeLabels {
                source: source.clone(),
                outcome,
            })
            .inc();
        self.source_durations
            .get_or_create(&SourceLabels {
                source: source.clone(),
            })
            .observe(took.as_secs_f64());
        if let Some(otel) = &self.otel {
            otel.source_requests
                .add(1, &[kv("source", source.clone()), kv("outcome", outcome)]);
            otel.source_durations
                .record(took.as_secs_f64(), &[kv("source", source.clone())]);
        }
    }

    /// One committed audit batch.
    pub fn audit_batch(&self, entries: usize, took: Duration) {
        self.audit_commit.observe(took.as_secs_f64());
        self.audit_batch.observe(entries as f64);
        if let Some(otel) = &self.otel {
            otel.audit_commit.record(took.as_secs_f64(), &[]);
            otel.audit_batch.record(entries as u64, &[]);
        }
    }

    /// One TLS handshake refused or timed out.
    pub fn handshake_failed(&self) {
        self.handshake_failures.inc();
    }

    /// Counts `io` as an open connection until it is dropped.
    pub fn connection<IO>(&self, io: IO) -> CountedConnection<IO> {
        self.connections.inc();
        self.open_connections.inc();
        let otel = self.otel.as_ref().map(|o| o.open_connections.clone());
        if let Some(otel) = &otel {
            otel.add(1, &[]);
        }
        CountedConnection {
            io,
            open: self.open_connections.clone(),
            otel,
        }
    }

    /// Everything, in `format`.
    pub fn render(&self, format: Format) -> String {
        if let Some(progress) = self.access_index.get() {
            self.access_index_pending.set(progress.pending());
        }
        self.refresh_crls();
        if let Some((version, digest)) = self
            .registry_in_force
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            self.registry_version.clear();
            self.registry_version
                .get_or_create(&DigestLabels { digest })
                .set(version);
        }
        // The SDK counts them; the counter follows (never goes back).
        self.otlp_export_failures.inner().fetch_max(
            samverka_adapter::telemetry::export_failures(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        match format {
            Format::OpenMetrics => out,
            Format::Text => exposition::to_text(&out),
        }
    }
}
