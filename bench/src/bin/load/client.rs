//! The load client: the requests of each scenario over its connections,
//! and the loops that keep a number of them in flight and time them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use samverka::cli::demo::DEMO_SUBJECT;
use samverka_bench::BoxError;
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_proto::adapter::v1::FetchRecordsRequest;
use samverka_proto::adapter::v1::adapter_client::AdapterClient;
use samverka_proto::v1::GetRecordsRequest;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use tonic::transport::Channel;

use crate::Args;

/// One kind of request, with its connections.
#[derive(Clone)]
pub(crate) enum Target {
    Adapter(Vec<AdapterClient<Channel>>, FetchRecordsRequest),
    /// Reads `request` about the people named, spread over them.
    Gateway(
        Vec<RecordExchangeClient<Channel>>,
        GetRecordsRequest,
        Arc<[String]>,
    ),
}

/// Counts gateway reads, to spread them over the people.
static NEXT_SUBJECT: AtomicUsize = AtomicUsize::new(0);

impl Target {
    /// Makes one request, over connection `i` (modulo their number).
    pub(crate) async fn call(&self, i: usize) -> Result<(), tonic::Code> {
        match self {
            Target::Adapter(clients, req) => {
                let mut c = clients[i % clients.len()].clone();
                c.fetch_records(req.clone())
                    .await
                    .map(drop)
                    .map_err(|s| s.code())
            }
            Target::Gateway(clients, req, subjects) => {
                let mut c = clients[i % clients.len()].clone();
                // Scattered, as readers' people are: consecutive reads are
                // not about neighbours in the index.
                let n = NEXT_SUBJECT.fetch_add(1, Ordering::Relaxed);
                let req = GetRecordsRequest {
                    subject_id: subjects[n.wrapping_mul(2_654_435_761) % subjects.len()].clone(),
                    ..req.clone()
                };
                c.get_records(req).await.map(drop).map_err(|s| s.code())
            }
        }
    }
}

/// What the measurements of one scenario found, over the rounds.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Requests per second, one per round.
    pub(crate) rps: Vec<f64>,
    /// Latencies in microseconds, of all rounds.
    pub(crate) latency: Option<Histogram<u64>>,
    /// Failed calls by status code.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Outcome {
    /// The failed calls by status code, or "-".
    pub(crate) fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "-".to_owned();
        }
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        errors.join(" ")
    }
}

/// Runs `concurrency` loops against `target` for warm-up + duration.
pub(crate) async fn run(target: &Target, concurrency: usize, args: &Args, outcome: &mut Outcome) {
    let start = Instant::now() + Duration::from_secs(args.warmup);
    let end = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let result = target.call(i).await;
                if t0 >= start {
                    match result {
                        Ok(()) => {
                            let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        Err(code) => *errors.entry(format!("{code:?}")).or_default() += 1,
                    }
                }
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for t in tasks {
        if let Ok((h, e)) = t.await {
            let _ = hist.add(&h);
            for (k, v) in e {
                *outcome.errors.entry(k).or_default() += v;
            }
        }
    }
    outcome.rps.push(hist.len() as f64 / args.duration as f64);
    match &mut outcome.latency {
        Some(all) => {
            let _ = all.add(&hist);
        }
        None => outcome.latency = Some(hist),
    }
}

/// `n` connections to `address` with `tls`.
pub(crate) async fn channels(
    address: SocketAddr,
    tls: &AgencyTls,
    n: usize,
) -> Result<Vec<Channel>, BoxError> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(connect(&address.to_string(), "localhost", tls).await?);
    }
    Ok(v)
}

/// A read of the demo person's records of `types` from `sources` (all
/// that hold such records if none), for study guidance.
pub(crate) fn read(types: &[&str], sources: &[&str]) -> GetRecordsRequest {
    GetRecordsRequest {
        subject_id: DEMO_SUBJECT.into(),
        record_types: types.iter().map(|t| t.to_string()).collect(),
        purpose: "study_guidance".into(),
        source_agencies: sources.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}
