//! Step 5 of a request: fan out to the adapters that hold the requested
//! record types, in parallel, within the caller's deadline.
//!
//! The routing table is the `[[adapters]]` section of the configuration:
//! each adapter serves one agency's register and some record types. The
//! gateway calls adapters over mutual TLS with its own client certificate
//! and checks each adapter's server certificate against the trust bundle.
//! Channels connect lazily and reconnect by themselves, so an adapter that
//! is down at start is used as soon as it comes up.
//!
//! One source failing never fails the request: each source gets a
//! `SourceOutcome` (`OK`, `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
//! `SOURCE_ERROR`, or `INVALID_RESPONSE` when it returned records of
//! another person, of a type not asked for, or whose payload is not its
//! record type's message ([`crate::pipeline::payload`]); those records, and
//! only those, are dropped: the source's other records still pass).
//! Every record that passes names the source agency from the routing table,
//! whatever the adapter wrote. A source that keeps failing is not called
//! for a while ([`crate::pipeline::breaker`]).

use std::time::Duration;

use samverka_proto::adapter::v1::{AttestFor, DescribeRequest, FetchRecordsRequest};
use samverka_proto::records::v1::Record;
use samverka_proto::v1::{Source, SourceOutcome, source_outcome};
use tokio::task::JoinSet;

use crate::pipeline::breaker::Breaker;
use tonic::{Code, Request};
use tracing::Instrument;

use crate::config::AdapterRoute;
use crate::credential::attestation;
use crate::pipeline::consent::ConsentPermit;
use crate::pipeline::payload;

mod channel;
mod directory;
use channel::AdapterChannel;
pub use directory::{REFRESH_EVERY, SourceDirectory};

/// The adapters, a channel to each, and each one's circuit breaker.
#[derive(Debug, Clone)]
pub struct Router {
    sources: Vec<(AdapterRoute, AdapterChannel)>,
    tls: std::sync::Arc<crate::net::tls::ServerTls>,
    breakers: std::sync::Arc<Vec<Breaker>>,
    /// Each source's name as its metrics' label, made once.
    labels: std::sync::Arc<Vec<std::sync::Arc<str>>>,
    metrics: crate::metrics::Metrics,
}

/// A deadline failure counts against a source's breaker only when the
/// source had at least this long: a caller's very short deadline says
/// nothing about the source (and must not pause it for everyone).
const BREAKER_MIN_BUDGET: Duration = Duration::from_secs(1);

/// What one source is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePlan {
    index: usize,
    record_types: Vec<String>,
}

/// The question put to every source of a plan.
#[derive(Debug, Clone)]
pub struct FetchQuery {
    /// The person.
    pub subject_id: String,
    /// The purpose of the read.
    pub purpose: String,
    /// The calling agency.
    pub requesting_agency: String,
    /// The audit entry of the read, for the register's own log.
    pub audit_ref: String,
    /// The request's W3C trace context; with telemetry off each adapter
    /// call continues it with a span id of its own.
    pub traceparent: String,
    /// For a passport: ask the sources to attest each record for this
    /// holder, and check what they send.
    pub attest: Option<Attest>,
}

/// What a passport read asks of its sources' attestations.
#[derive(Debug, Clone)]
pub struct Attest {
    /// The passport's holder id (`urn:uuid:`).
    pub holder_id: String,
    /// The passport's holder salt.
    pub holder_salt: String,
    /// Refuse records their source does not attest (else they pass,
    /// unattested).
    pub required: bool,
}

/// Every source's records and outcome.
#[derive(Debug, Default)]
pub struct FetchResult {
    /// The records that passed the checks.
    pub records: Vec<Record>,
    /// One outcome per source asked, in routing-table order.
    pub outcomes: Vec<SourceOutcome>,
    /// Per outcome: how long after the fan-out began the source answered
    /// (or was given up on).
    pub answered_after: Vec<Duration>,
    /// The attestations checked, by the unsalted digest of the record they
    /// attest ([`samverka_adapter::credential::record_digest`] with an empty
    /// salt; an internal key, never published): the VC-JWT and the
    /// attestation certificate (DER).
    pub attested: std::collections::HashMap<String, (String, Vec<u8>)>,
}

impl Router {
    /// Channels to every adapter in `routes`, made with `tls` (the gateway's
    /// client identity, the trust bundle and the CRLs) and made again when
    /// it is reloaded ([`AdapterChannel`]). Each source's breaker opens after `breaker_failures` failures in a
    /// row, for `breaker_pause`.
    pub fn new(
        routes: &[AdapterRoute],
        tls: std::sync::Arc<crate::net::tls::ServerTls>,
        metrics: crate::metrics::Metrics,
        breaker_failures: u32,
        breaker_pause: Duration,
    ) -> Result<Router, String> {
        let sources = routes
            .iter()
            .map(|route| Ok((route.clone(), AdapterChannel::new(route, tls.clone())?)))
            .collect::<Result<_, String>>()?;
        let breakers = routes
            .iter()
            .map(|_| Breaker::new(breaker_failures, breaker_pause))
            .collect();
        Ok(Router {
            sources,
            tls,
            breakers: std::sync::Arc::new(breakers),
            labels: std::sync::Arc::new(routes.iter().map(|r| r.name.as_str().into()).collect()),
            metrics,
        })
    }

    /// Whether some adapter serves `agency`.
    pub fn has_source(&self, agency: &str) -> bool {
        self.sources
            .iter()
            .any(|(r, _)| r.org_number.as_str() == agency)
    }

    /// The sources to ask: those holding any of `record_types`, narrowed to
    /// `requested` and to the consent's sources when either is non-empty.
    pub fn plan(
        &self,
        record_types: &[String],
        requested: &[String],
        permit: &ConsentPermit,
    ) -> Vec<SourcePlan> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, (route, _))| {
                let org = route.org_number.as_str();
                (requested.is_empty() || requested.iter().any(|s| s == org))
                    && (permit.source_agencies().is_empty()
                        || permit.source_agencies().iter().any(|s| s == org))
            })
            .filter_map(|(index, (route, _))| {
                let record_types: Vec<String> = record_types
                    .iter()
                    .filter(|t| route.record_types.contains(t))
                    .cloned()
                    .collect();
                (!record_types.is_empty()).then_some(SourcePlan {
                    index,
                    record_types,
                })
            })
            .collect()
    }

    /// The organisation numbers of the sources `plan` asks.
    pub fn asked<'a>(&'a self, plan: &'a [SourcePlan]) -> impl Iterator<Item = &'a str> + 'a {
        plan.iter()
            .map(|p| self.sources[p.index].0.org_number.as_str())
    }

    /// Asks every source of `plan` at once; each gets `deadline`.
    pub async fn fetch(
        &self,
        plan: Vec<SourcePlan>,
        query: &FetchQuery,
        permit: &ConsentPermit,
        deadline: Duration,
    ) -> FetchResult {
        // Polled together on this task rather than spawned: no hand-off to
        // another thread per source, and answers come back in plan order.
        let calls = plan.into_iter().map(
            |SourcePlan {
                 index,
                 record_types,
             }| {
                let (route, channel) = &self.sources[index];
                let mut client = channel.client();
                let mut request = Request::new(FetchRecordsRequest {
                    subject_id: query.subject_id.clone(),
                    record_types: record_types.clone(),
                    purpose: query.purpose.clone(),
                    consent_id: permit.consent_id().to_owned(),
                    requesting_agency: query.requesting_agency.clone(),
                    audit_ref: query.audit_ref.clone(),
                    attest: query.attest.as_ref().map(|a| AttestFor {
                        holder_id: a.holder_id.clone(),
                        holder_salt: a.holder_salt.clone(),
                    }),
                });
                request.set_timeout(deadline);
                let (span, traceparent) = crate::telemetry::adapter_call_span(
                    &route.name,
                    route.org_number.as_str(),
                    &record_types,
                    &query.traceparent,
                );
                if let Some(value) = samverka_proto::trace::unindexed(&traceparent) {
                    request
                        .metadata_mut()
                        .insert(samverka_proto::trace::TRACEPARENT, value);
                }
                let call_span = span.clone();
                let breaker = &self.breakers[index];
                let label = &self.labels[index];
                async move {
                    let started = std::time::Instant::now();
                    let Some(ticket) = breaker.admit(started) else {
                        call_span.record("samverka.outcome", "CIRCUIT_OPEN");
                        self.metrics
                            .source_call(label, "CIRCUIT_OPEN", Duration::ZERO);
                        let outcome = SourceOutcome {
                            source_agency: route.org_number.to_string(),
                            source_name: route.name.clone(),
                            status: source_outcome::Status::Unavailable as i32,
                            record_count: 0,
                            message: "the source failed repeatedly; calls to it are paused \
                                      for a short while"
                                .to_owned(),
                        };
                        return (Vec::new(), Default::default(), outcome, Duration::ZERO);
                    };
                    let answer =
                        tokio::time::timeout(deadline, client.fetch_records(request)).await;
                    let material = self.tls.adapter_material();
                    let chain = |der: &[u8]| material.check_attester(der);
                    let attest = query.attest.as_ref().map(|a| Attesting {
                        attest: a,
                        chain: &chain,
                    });
                    let (records, attested, outcome) =
                        judge(route, &query.subject_id, &record_types, answer, attest);
                    let status = source_outcome::Status::try_from(outcome.status)
                        .unwrap_or(source_outcome::Status::Unspecified);
                    let took = started.elapsed();
                    ticket.record(source_failed(status, deadline), std::time::Instant::now());
                    self.metrics.source_call(label, status.as_str_name(), took);
                    call_span.record("samverka.outcome", status.as_str_name());
                    call_span.record("samverka.record_count", i64::from(outcome.record_count));
                    if status != source_outcome::Status::Ok {
                        call_span.record("otel.status_code", "ERROR");
                    }
                    (records, attested, outcome, took)
                }
                .instrument(span)
            },
        );
        let mut result = FetchResult::default();
        for (records, attested, outcome, took) in futures_util::future::join_all(calls).await {
            result.records.extend(records);
            result.attested.extend(attested);
            result.outcomes.push(outcome);
            result.answered_after.push(took);
        }
        result
    }

    /// Every source, with what its adapter says about itself when it
    /// answers `Describe` within `timeout`. Only [`SourceDirectory`] calls
    /// it, in the background: `ListSources` answers from there.
    async fn describe_all(&self, timeout: Duration) -> Vec<Source> {
        let mut tasks = JoinSet::new();
        for (index, (route, channel)) in self.sources.iter().enumerate() {
            let mut client = channel.client();
            let route = route.clone();
            tasks.spawn(async move {
                let mut request = Request::new(DescribeRequest {});
                request.set_timeout(timeout);
                let answer = tokio::time::timeout(timeout, client.describe(request)).await;
                let description = match answer {
                    Ok(Ok(d)) => Some(d.into_inner()),
                    Ok(Err(status)) => {
                        tracing::warn!(source = %route.name, code = ?status.code(), "describe failed");
                        None
                    }
                    Err(_) => None,
                };
                let source = Source {
                    agency_id: route.org_number.to_string(),
                    name: route.name.clone(),
                    record_types: route.record_types.clone(),
                    reachable: description.is_some(),
                    description: description.map(|d| d.name).unwrap_or_default(),
                };
                (index, source)
            });
        }
        let mut sources: Vec<(usize, Source)> = tasks.join_all().await;
        sources.sort_by_key(|(i, _)| *i);
        sources.into_iter().map(|(_, s)| s).collect()
    }
}

/// Whether an outcome says the source is not there (unreachable, or too
/// slow though it had at least [`BREAKER_MIN_BUDGET`]): what counts against
/// its circuit breaker.
fn source_failed(status: source_outcome::Status, deadline: Duration) -> bool {
    use source_outcome::Status;
    match status {
        Status::Unavailable => true,
        Status::DeadlineExceeded => deadline >= BREAKER_MIN_BUDGET,
        Status::Ok | Status::SourceError | Status::InvalidResponse | Status::Unspecified => false,
    }
}

type Answer = Result<
    Result<tonic::Response<samverka_proto::adapter::v1::FetchRecordsResponse>, tonic::Status>,
    tokio::time::error::Elapsed,
>;

/// A passport read's attestation check for one source: what was asked,
/// and the check of an attestation certificate's path.
pub(crate) struct Attesting<'a> {
    attest: &'a Attest,
    chain: &'a dyn Fn(&[u8]) -> Result<(), String>,
}

/// The records passed on, the attestations checked (by record digest), and
/// the source's outcome.
type Judged = (
    Vec<Record>,
    std::collections::HashMap<String, (String, Vec<u8>)>,
    SourceOutcome,
);

/// Turns one source's answer into the records to pass on and its outcome;
/// with `attesting`, each record must come with a valid attestation (or,
/// if not required, with none at all).
fn judge(
    route: &AdapterRoute,
    subject: &str,
    asked: &[String],
    answer: Answer,
    attesting: Option<Attesting<'_>>,
) -> Judged {
    use source_outcome::Status;
    let outcome = |status: Status, count: usize, message: &str| SourceOutcome {
        source_agency: route.org_number.to_string(),
        source_name: route.name.clone(),
        status: status as i32,
        record_count: count as u32,
        message: message.to_owned(),
    };
    let failed = |status: Status, message: &str| {
        (Vec::new(), Default::default(), outcome(status, 0, message))
    };
    let response = match answer {
        Err(_) => {
            return failed(
                Status::DeadlineExceeded,
                "the source did not answer in time",
            );
        }
        Ok(Err(status)) => {
            tracing::warn!(source = %route.name, code = ?status.code(), message = %status.message(), "source failed");
            // A status made on this side from a transport error (the source
            // unreachable, or not speaking HTTP/2 and gRPC) carries that
            // error as its source; one the adapter sent does not.
            let transport_failed = std::error::Error::source(&status).is_some();
            let (s, m) = match status.code() {
                Code::DeadlineExceeded | Code::Cancelled => (
                    Status::DeadlineExceeded,
                    "the source did not answer in time",
                ),
                Code::Unavailable | Code::Unknown => {
                    (Status::Unavailable, "the source is unavailable")
                }
                _ if transport_failed => (Status::Unavailable, "the source is unavailable"),
                _ => (Status::SourceError, "the source reported an error"),
            };
            return failed(s, m);
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    // A bad record is dropped on its own, whatever its flaw: the source's
    // other records pass, and its outcome says that some were dropped.
    let total = response.records.len();
    // A source that attests at all must attest every record it sends.
    let source_attests = !response.attestations.is_empty();
    let mut attestations = response.attestations.into_iter();
    let certificate = response.attestation_certificate;
    let (mut unasked, mut mismatched, mut unattested) = (0, 0, 0);
    let mut attested = std::collections::HashMap::new();
    let mut records = Vec::new();
    for mut r in response.records {
        let attestation = attestations.next();
        if r.subject_id != subject || !asked.contains(&r.record_type) {
            unasked += 1;
            continue;
        }
        if let Err(problem) = payload::check(&r) {
            mismatched += 1;
            tracing::error!(source = %route.name, record_type = %r.record_type, %problem, "source returned a record whose payload is not its type's; dropped");
            continue;
        }
        if let Some(a) = &attesting {
            match attestation {
                Some(jws) => {
                    let expected = attestation::Expected {
                        subject_id: subject,
                        holder_id: &a.attest.holder_id,
                        holder_salt: &a.attest.holder_salt,
                    };
                    let checked = attestation::check_received(
                        &jws,
                        &certificate,
                        &r,
                        &route.org_number,
                        &expected,
                        a.chain,
                    );
                    if let Err(problem) = checked {
                        unattested += 1;
                        tracing::error!(source = %route.name, record_type = %r.record_type, %problem, "source's attestation of a record does not hold; dropped");
                        continue;
                    }
                    attested.insert(
                        samverka_adapter::credential::record_digest(&r, ""),
                        (jws, certificate.clone()),
                    );
                }
                None if a.attest.required || source_attests => {
                    unattested += 1;
                    tracing::error!(source = %route.name, record_type = %r.record_type, "source sent a record without an attestation (refused: unattested_records = \"refuse\", or the source attests its other records); dropped");
                    continue;
                }
                None => {}
            }
        }
        r.source_agency = route.org_number.to_string();
        records.push(r);
    }
    let n = records.len();
    if n == total {
        return (records, attested, outcome(Status::Ok, n, ""));
    }
    if unasked > 0 {
        tracing::error!(
            source = %route.name,
            dropped = unasked,
            "source returned records of another person or type; dropped"
        );
    }
    let reasons: Vec<&str> = [
        (unasked > 0, "records that were not asked for"),
        (
            mismatched > 0,
            "records whose payload does not match their record type",
        ),
        (
            unattested > 0,
            "records without a valid attestation by the source",
        ),
    ]
    .into_iter()
    .filter_map(|(found, what)| found.then_some(what))
    .collect();
    let message = format!(
        "the source returned {}; they were dropped",
        reasons.join(" and ")
    );
    (
        records,
        attested,
        outcome(Status::InvalidResponse, n, &message),
    )
}

#[cfg(test)]
mod tests;
