//! The OTLP/gRPC receiver of tests/telemetry.rs: it keeps every span and
//! metrics export it gets, and helpers to read their attributes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::trace::v1::Span;

/// What the receiver got: per exported span, its service and the span;
/// and every metrics export.
#[derive(Clone, Default)]
pub(crate) struct Receiver(
    Arc<Mutex<Vec<(String, Span)>>>,
    Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
);

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.1.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// The latest value of the cumulative counter or gauge `name` for the
    /// data point whose attributes include `labels`, from service `service`.
    pub(crate) fn number(&self, service: &str, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let exports = self.1.lock().unwrap();
        exports
            .iter()
            .flat_map(|export| points(export, service, name))
            .rev()
            .find(|(attributes, _)| {
                labels
                    .iter()
                    .all(|(k, v)| text(attributes, k).as_deref() == Some(*v))
            })
            .map(|(_, n)| n)
    }

    /// Every data point of `name` from `service` in the latest export that
    /// has it: what the collector holds as current.
    pub(crate) fn latest_points(&self, service: &str, name: &str) -> Vec<(Vec<KeyValue>, i64)> {
        let exports = self.1.lock().unwrap();
        exports
            .iter()
            .rev()
            .map(|export| points(export, service, name))
            .find(|points| !points.is_empty())
            .unwrap_or_default()
    }
}

/// The integer data points (attributes, value) of counter or gauge `name`
/// from service `service` in one metrics export.
fn points(
    export: &ExportMetricsServiceRequest,
    service: &str,
    name: &str,
) -> Vec<(Vec<KeyValue>, i64)> {
    let mut out = Vec::new();
    for rm in &export.resource_metrics {
        let attrs = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
        if text(&attrs, "service.name").as_deref() != Some(service) {
            continue;
        }
        for m in rm
            .scope_metrics
            .iter()
            .flat_map(|sm| &sm.metrics)
            .filter(|m| m.name == name)
        {
            let data_points = match &m.data {
                Some(Data::Sum(sum)) => &sum.data_points,
                Some(Data::Gauge(gauge)) => &gauge.data_points,
                _ => continue,
            };
            for point in data_points {
                if let Some(NumberValue::AsInt(n)) = point.value {
                    out.push((point.attributes.clone(), n));
                }
            }
        }
    }
    out
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            let service = text(&resource, "service.name").unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((service.clone(), span));
                }
            }
            // Keep the resource too, as a pseudo-span per export.
            spans.push((
                format!("resource:{service}"),
                Span {
                    attributes: resource,
                    ..Default::default()
                },
            ));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    pub(crate) async fn start() -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = Receiver::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .add_service(MetricsServiceServer::new(receiver.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (receiver, address)
    }

    pub(crate) fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what arrived (at most 20 s).
    pub(crate) async fn wait_for(&self, what: &str, done: impl Fn(&[(String, Span)]) -> bool) {
        for _ in 0..200 {
            if done(&self.spans()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let names: Vec<String> = self
            .spans()
            .iter()
            .map(|(s, span)| format!("{s}: {}", span.name))
            .collect();
        panic!("{what} never arrived; got {names:#?}");
    }
}

pub(crate) fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            AnyValue::BoolValue(b) => Some(b.to_string()),
            AnyValue::DoubleValue(d) => Some(d.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

/// An attribute's value if it is an integer (not a string of digits).
pub(crate) fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

pub(crate) use samverka_proto::hex;
