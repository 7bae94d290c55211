//! `samverka demo`: a whole samverka network on one machine.
//!
//! It makes a development PKI and a SQLite store in a directory, writes
//! `demo.toml` (a gateway configuration that also tells clients where
//! everything is), starts the two reference adapters and the gateway on
//! loopback ports chosen by the OS, and then acts out one exchange: the
//! registrar records a person's consent, the guidance agency reads the
//! person's records (allowed), asks for someone who never consented
//! (denied), and finally gets the person's competence passport, a
//! credential signed by the gateway.
//!
//! [`Network`] is the set-up without the script; the end-to-end tests
//! start it too, so that they test exactly what the demo runs.
//!
//! All people, agencies and records are synthetic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use samverka_adapter::{
    Adapter, AdapterError, AdapterTls, Description, FetchQuery, InMemoryRegister,
};
use samverka_certs::OrgNumber;
use samverka_certs::dev::{DevPkiFiles, DevPkiSpec, existing_dev_pki, write_dev_pki};
use samverka_proto::records::v1::{GradingScale, Record, record::Payload};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    GetCompetencePassportRequest, GetRecordsRequest, GrantConsentRequest, source_outcome,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::client::{AgencyTls, connect};
use crate::config::Config;
use crate::server::{Gateway, serve};
use crate::time::{Clock, to_timestamp};

/// The organisation operating the demo gateway.
pub const GATEWAY_AGENCY: &str = "2021999012";
/// The demo's ordinary agency: a study and career guidance service.
pub const READER_AGENCY: &str = "2021999020";
/// The demo's consent registrar: a citizen e-service.
pub const REGISTRAR_AGENCY: &str = "2021999038";
/// A known agency with no access rules at all.
pub const OUTSIDER_AGENCY: &str = "2021999061";
/// The demo person (synthetic), who has records in both registers.
pub const DEMO_SUBJECT: &str = "199003142388";
/// A second synthetic person, who never consents in the demo.
pub const OTHER_SUBJECT: &str = "198511224571";
/// The purpose of the demo read.
pub const DEMO_PURPOSE: &str = "study_guidance";
/// The record types of the demo read.
pub const DEMO_RECORD_TYPES: [&str; 2] = ["education.course_result", "employment.period"];

/// One of the demo's sources.
#[derive(Debug, Clone, Copy)]
pub struct DemoSource {
    /// The adapter's name, in the configuration and the PKI's file names.
    pub name: &'static str,
    /// The agency whose register it serves.
    pub agency: &'static str,
    /// The record types it answers for.
    pub record_types: &'static [&'static str],
    /// Loads its synthetic register (parses the fixture: call when the
    /// adapter starts, not to look something up).
    pub register: fn() -> InMemoryRegister,
}

/// The demo's sources, one per reference adapter.
pub const DEMO_SOURCES: [DemoSource; 3] = [
    DemoSource {
        name: "higher-education",
        agency: samverka_adapter_higher_education::DEMO_AGENCY,
        record_types: &samverka_adapter_higher_education::RECORD_TYPES,
        register: samverka_adapter_higher_education::demo,
    },
    DemoSource {
        name: "employment",
        agency: samverka_adapter_employment::DEMO_AGENCY,
        record_types: &samverka_adapter_employment::RECORD_TYPES,
        register: samverka_adapter_employment::demo,
    },
    DemoSource {
        name: "competence",
        agency: samverka_adapter_competence::DEMO_AGENCY,
        record_types: &samverka_adapter_competence::RECORD_TYPES,
        register: samverka_adapter_competence::demo,
    },
];

/// Why the demo failed.
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The agencies and adapters of the demo PKI.
pub fn pki_spec() -> DevPkiSpec {
    let org = |s: &str| OrgNumber::parse(s).expect("demo organisation numbers are valid");
    DevPkiSpec {
        gateway: org(GATEWAY_AGENCY),
        agencies: vec![
            ("reader".into(), org(READER_AGENCY)),
            ("registrar".into(), org(REGISTRAR_AGENCY)),
            ("outsider".into(), org(OUTSIDER_AGENCY)),
        ],
        adapters: DEMO_SOURCES
            .iter()
            .map(|source| (source.name.to_owned(), org(source.agency)))
            .collect(),
    }
}

/// A running demo network: the reference adapters and a gateway on loopback.
pub struct Network {
    /// Where the PKI, store and `demo.toml` are.
    pub dir: PathBuf,
    /// `DIR/demo.toml`.
    pub config_path: PathBuf,
    /// The certificate files.
    pub pki: DevPkiFiles,
    /// The gateway's state (store, clock, config).
    pub gateway: Arc<Gateway>,
    /// Where the gateway listens.
    pub gateway_address: SocketAddr,
    /// Where the operators' admin listener is (`/metrics`, `/healthz`,
    /// `/readyz`).
    pub admin_address: SocketAddr,
    /// Per adapter: name and address.
    pub adapters: Vec<(String, SocketAddr)>,
    fetch_calls: Arc<AtomicUsize>,
    last_trace: Arc<std::sync::Mutex<Option<String>>>,
    stops: Vec<(String, oneshot::Sender<()>, JoinHandle<()>)>,
}

/// A demo adapter that counts the records requests it serves, so that the
/// demo (and its tests) can tell whether a request reached any register.
struct Counted<A> {
    inner: A,
    calls: Arc<AtomicUsize>,
    last_trace: Arc<std::sync::Mutex<Option<String>>>,
}

impl<A> Counted<A> {
    fn new(
        inner: A,
        calls: &Arc<AtomicUsize>,
        last_trace: &Arc<std::sync::Mutex<Option<String>>>,
    ) -> Self {
        Counted {
            inner,
            calls: calls.clone(),
            last_trace: last_trace.clone(),
        }
    }
}

impl<A: Adapter> Adapter for Counted<A> {
    fn describe(&self) -> Description {
        self.inner.describe()
    }

    async fn fetch_records(&self, query: FetchQuery) -> Result<Vec<Record>, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut last) = self.last_trace.lock() {
            last.clone_from(&query.trace_id);
        }
        self.inner.fetch_records(query).await
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("dir", &self.dir)
            .field("gateway_address", &self.gateway_address)
            .field("adapters", &self.adapters)
            .finish_non_exhaustive()
    }
}

async fn loopback() -> Result<(TcpListener, SocketAddr), DemoError> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

fn spawn_adapter<A: Adapter>(
    adapter: A,
    listener: TcpListener,
    tls: AdapterTls,
    name: &str,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let name = name.to_owned();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        if let Err(e) = samverka_adapter::serve_with_listener(adapter, listener, tls, stop).await {
            tracing::error!(adapter = %name, error = %e, "adapter stopped");
        }
    });
    (tx, task)
}

impl Network {
    /// Sets up everything in `dir` and starts it. The gateway reads
    /// `DIR/demo.toml` exactly as `samverka serve --config` would.
    pub async fn start(dir: &Path, clock: Clock) -> Result<Network, DemoError> {
        let dir = std::path::absolute(dir)?;
        // A demo run again in the same directory keeps its PKI: the store's
        // signed checkpoints and receipts stay verifiable with its gateway
        // certificate.
        let pki = match existing_dev_pki(&dir.join("certs"), &pki_spec()) {
            Some(files) => files,
            None => write_dev_pki(&dir.join("certs"), &pki_spec())?,
        };
        let (gateway_listener, gateway_address) = loopback().await?;
        let (admin_listener, admin_address) = loopback().await?;
        let mut listeners = Vec::new();
        for source in &DEMO_SOURCES {
            let (listener, address) = loopback().await?;
            listeners.push((source.name.to_owned(), listener, address));
        }
        let adapters: Vec<(String, SocketAddr)> =
            listeners.iter().map(|(n, _, a)| (n.clone(), *a)).collect();

        let config_path = dir.join("demo.toml");
        std::fs::write(
            &config_path,
            demo_config(
                &pki,
                &gateway_address.to_string(),
                &admin_address.to_string(),
                &adapters,
                &dir.join("samverka.db").display().to_string(),
                DEMO_AUDIT,
            ),
        )?;
        let config = Config::load(&config_path)?;

        let fetch_calls = Arc::new(AtomicUsize::new(0));
        let last_trace = Arc::new(std::sync::Mutex::new(None));
        let mut stops = Vec::new();
        for (source, (_, listener, _)) in DEMO_SOURCES.iter().zip(listeners) {
            let name = source.name;
            let register = (source.register)();
            let (_, cert, key) = pki
                .adapters
                .iter()
                .find(|(n, _, _)| n == name)
                .ok_or("adapter missing from the PKI")?;
            let tls = AdapterTls::from_files(cert, key, &pki.ca_cert)?;
            let (tx, task) = spawn_adapter(
                Counted::new(register, &fetch_calls, &last_trace),
                listener,
                tls,
                name,
            );
            stops.push((name.to_owned(), tx, task));
        }

        let gateway = Gateway::new(config, clock).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let gw = gateway.clone();
        let task = tokio::spawn(async move {
            let (stop_admin, admin_stopped) = oneshot::channel::<()>();
            let admin = tokio::spawn(crate::admin::serve_admin(
                gw.clone(),
                admin_listener,
                async {
                    let _ = admin_stopped.await;
                },
            ));
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = serve(gw, gateway_listener, stop).await {
                tracing::error!(error = %e, "gateway stopped");
            }
            let _ = stop_admin.send(());
            let _ = admin.await;
        });
        stops.push(("gateway".to_owned(), tx, task));

        Ok(Network {
            dir: dir.clone(),
            config_path,
            pki,
            gateway,
            gateway_address,
            admin_address,
            adapters,
            fetch_calls,
            last_trace,
            stops,
        })
    }

    /// The trace id the demo adapters saw last (from the gateway's
    /// `traceparent`).
    pub fn last_adapter_trace_id(&self) -> Option<String> {
        self.last_trace.lock().ok().and_then(|t| t.clone())
    }

    /// How many records requests the demo adapters have served so far.
    pub fn fetch_calls(&self) -> usize {
        self.fetch_calls.load(Ordering::SeqCst)
    }

    /// The TLS material of a demo agency: `reader`, `registrar` or
    /// `outsider`.
    pub fn agency_tls(&self, name: &str) -> Result<AgencyTls, DemoError> {
        let (_, cert, key) = self
            .pki
            .agencies
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| format!("no demo agency named {name}"))?;
        Ok(AgencyTls::from_files(&self.pki.ca_cert, cert, key)?)
    }

    /// An mTLS channel to the gateway as the demo agency `name`.
    pub async fn channel(&self, name: &str) -> Result<Channel, DemoError> {
        Ok(connect(
            &self.gateway_address.to_string(),
            "localhost",
            &self.agency_tls(name)?,
        )
        .await?)
    }

    /// Stops one part (`gateway` or an adapter: `higher-education`,
    /// `employment`, `competence`) and
    /// waits until it has stopped: until its in-flight requests are done,
    /// or at most [`samverka_adapter::DRAIN_TIMEOUT`] if a client keeps a
    /// connection open.
    pub async fn stop(&mut self, name: &str) {
        if let Some(i) = self.stops.iter().position(|(n, _, _)| n == name) {
            let (_, tx, mut task) = self.stops.remove(i);
            let _ = tx.send(());
            if tokio::time::timeout(samverka_adapter::DRAIN_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(part = name, "did not drain in time; stopped");
                task.abort();
            }
        }
    }

    /// Stops everything, the gateway's audit writer last.
    pub async fn shutdown(mut self) {
        self.stop("gateway").await;
        while let Some((name, ..)) = self.stops.first() {
            let name = name.clone();
            self.stop(&name).await;
        }
        self.gateway.audit.close().await;
    }
}

/// The demo's `[audit]` section: checkpoints often enough that a short demo
/// has some.
pub const DEMO_AUDIT: &str = "[audit]\ncheckpoint_every = 10\ncheckpoint_interval_s = 5\n";

/// The demo's configuration: gateway at `gateway` and its admin listener
/// at `admin` (`host:port`; port 0 lets the OS choose), the demo sources named in `adapters` at their
/// addresses, `store` (a SQLite path or a PostgreSQL URL), and `extra` TOML
/// appended as is (further sections, such as [`DEMO_AUDIT`]).
pub fn demo_config(
    pki: &DevPkiFiles,
    gateway: &str,
    admin: &str,
    adapters: &[(String, SocketAddr)],
    store: &str,
    extra: &str,
) -> String {
    let p = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let agency = |name: &str| {
        pki.agencies
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, k)| (p(c), p(k)))
            .unwrap_or_default()
    };
    let (reader_cert, reader_key) = agency("reader");
    let (registrar_cert, registrar_key) = agency("registrar");
    let list = |t: &[&str]| format!("{t:?}");
    let mut adapter_tables = String::new();
    for (name, address) in adapters {
        if let Some(source) = DEMO_SOURCES.iter().find(|s| s.name == name) {
            adapter_tables.push_str(&format!(
                "[[adapters]]\nname = \"{name}\"\naddress = \"{address}\"\norg_number = \"{}\"\nrecord_types = {}\n\n",
                source.agency,
                list(source.record_types)
            ));
        }
    }
    format!(
        r#"# samverka demo configuration, written by `samverka demo`.
# The gateway reads it as its configuration (`samverka serve --config` takes
# it too); [agency], [registrar] and [subject] tell clients what to use.
# Every person and organisation in it is synthetic.

[gateway]
address = "{gateway}"
admin_address = "{admin}"
org_number = "{GATEWAY_AGENCY}"
ca_cert = {ca}
cert = {gw_cert}
key = {gw_key}
client_cert = {gwc_cert}
client_key = {gwc_key}
store = {store}

[agency]            # an ordinary agency that reads records
org_number = "{READER_AGENCY}"
cert = {reader_cert}
key = {reader_key}

[registrar]         # the consent registrar agency
org_number = "{REGISTRAR_AGENCY}"
cert = {registrar_cert}
key = {registrar_key}

[subject]           # the demo person; [agency] holds an active consent for them
id = "{DEMO_SUBJECT}"
purpose = "{DEMO_PURPOSE}"
record_types = {demo_types}

[[agencies]]         # the operator: issuer of competence passports
org_number = "{GATEWAY_AGENCY}"
name = "samverka demo operator (synthetic)"

[[agencies]]
org_number = "{READER_AGENCY}"
name = "Study and career guidance service (demo)"

[[agencies]]
org_number = "{REGISTRAR_AGENCY}"
name = "Citizen e-service (demo consent registrar)"
registrar = true

[[agencies]]
org_number = "{OUTSIDER_AGENCY}"
name = "Agency without access rules (demo)"

[[purposes]]
code = "study_guidance"
description = "Study and career guidance"
record_types = ["education.course_result", "education.degree", "employment.period", "competence.validated"]

[[purposes]]
code = "job_matching"
description = "Job matching by the public employment service"
record_types = ["employment.period", "competence.validated"]

[[purposes]]
code = "admission"
description = "Admission to education"
record_types = ["education.course_result", "education.degree", "education.upper_secondary_grade", "education.vocational_diploma"]

[[access_rules]]
agency = "{READER_AGENCY}"
purposes = ["study_guidance"]
record_types = ["education.course_result", "education.degree", "employment.period", "competence.validated"]

[[access_rules]]
agency = "{READER_AGENCY}"
purposes = ["job_matching"]
record_types = ["employment.period", "competence.validated"]

{adapter_tables}{extra}"#,
        ca = p(&pki.ca_cert),
        gw_cert = p(&pki.gateway.0),
        gw_key = p(&pki.gateway.1),
        gwc_cert = p(&pki.gateway_client.0),
        gwc_key = p(&pki.gateway_client.1),
        store = toml::Value::String(store.to_owned()),
        demo_types = list(&DEMO_RECORD_TYPES),
    )
}

/// One line about a record, for people.
pub fn describe_record(r: &Record) -> String {
    let what = match &r.payload {
        Some(Payload::CourseResult(c)) => {
            let scale =
                GradingScale::try_from(c.grading_scale).unwrap_or(GradingScale::Unspecified);
            let scale = match scale {
                GradingScale::UGVg => "U/G/VG",
                GradingScale::U345 => "U/3/4/5",
                GradingScale::Ects => "ECTS",
                GradingScale::AF => "A-F",
                GradingScale::Unspecified => "?",
            };
            format!(
                "{} {} ({}), {} hp, grade {} on {scale}, {}",
                c.course_code,
                c.course_name,
                c.course_name_en,
                c.credits,
                c.grade,
                c.examination_date
            )
        }
        Some(Payload::Degree(d)) => format!(
            "{}, {} hp, EQF {}, {}",
            d.title, d.credits, d.eqf_level, d.award_date
        ),
        Some(Payload::EmploymentPeriod(e)) => format!(
            "{} ({}), SSYK {} {}, {}%, {} to {}",
            e.employer_name,
            e.employer_org_number,
            e.ssyk_code,
            e.occupation_title,
            e.extent_percent,
            e.start_date,
            if e.end_date.is_empty() {
                "now"
            } else {
                &e.end_date
            }
        ),
        Some(Payload::ValidatedCompetence(c)) => format!(
            "{}, EQF {}, assessed by {} ({}), {}",
            c.competence_area, c.eqf_level, c.assessor_name, c.method, c.assessment_date
        ),
        Some(other) => format!("{other:?}"),
        None => "(no payload)".to_owned(),
    };
    format!("[source {}] {:<24} {what}", r.source_agency, r.record_type)
}

/// Options of `samverka demo`.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Keep running until Ctrl-C or SIGTERM.
    pub serve: bool,
    /// Where to set up; a temporary directory (removed at the end) if
    /// `None`.
    pub dir: Option<PathBuf>,
}

/// Runs the demo and prints what happens.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    let temp;
    let dir = match &options.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("samverka-demo-")
                .tempdir()?;
            temp.path().to_owned()
        }
    };
    let network = Network::start(&dir, Clock::system()).await?;
    println!(
        "samverka demo: development PKI, SQLite store and demo.toml in {}",
        network.dir.display()
    );
    println!(
        "  gateway           {} (gRPC, mutual TLS)",
        network.gateway_address
    );
    for (route, (_, addr)) in network
        .gateway
        .config
        .adapters
        .iter()
        .zip(&network.adapters)
    {
        println!(
            "  {:<17} {addr} (agency {}: {})",
            route.name,
            route.org_number,
            route.record_types.join(", ")
        );
    }
    let outcome = script(&network, options.dir.is_some()).await;
    if outcome.is_ok() && options.serve {
        println!();
        println!(
            "Serving until Ctrl-C or SIGTERM. Connection details: {}",
            network.config_path.display()
        );
        samverka_adapter::shutdown_signal().await;
    }
    network.shutdown().await;
    outcome
}

async fn script(network: &Network, dir_kept: bool) -> Result<(), DemoError> {
    let types: Vec<String> = DEMO_RECORD_TYPES.iter().map(|t| t.to_string()).collect();

    println!();
    println!("1. The registrar ({REGISTRAR_AGENCY}) records the person's consent:");
    let mut consents = ConsentsClient::new(network.channel("registrar").await?);
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let now = network.gateway.clock.now_ms();
    let valid_until = (now / DAY_MS + 366) * DAY_MS;
    let receipt = consents
        .grant(GrantConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: READER_AGENCY.into(),
            record_types: types.clone(),
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
            valid_from: None,
            valid_until: Some(to_timestamp(valid_until)),
            evidence_ref: "demo-e-service-session-1".into(),
            // The same request on every run of a day: a second `demo --dir`
            // run finds the consent it recorded before instead of adding
            // one (the request id names the day, the validity ends at its
            // midnight a year on).
            request_id: format!("demo-consent-{}", valid_until / DAY_MS),
        })
        .await?
        .into_inner();
    let consent = receipt.consent.ok_or("receipt without consent")?;
    println!(
        "   consent {}: agency {} may read {} for purpose {}, for a year",
        consent.consent_id,
        consent.grantee_agency,
        consent.record_types.join(", "),
        consent.purpose
    );

    println!();
    println!("2. The guidance agency ({READER_AGENCY}) reads the person's records:");
    let mut exchange = RecordExchangeClient::new(network.channel("reader").await?);
    let answer = exchange
        .get_records(GetRecordsRequest {
            subject_id: DEMO_SUBJECT.into(),
            record_types: types.clone(),
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
        })
        .await?
        .into_inner();
    for r in &answer.records {
        println!("   {}", describe_record(r));
    }
    for o in &answer.outcomes {
        let status = source_outcome::Status::try_from(o.status)
            .unwrap_or(source_outcome::Status::Unspecified);
        println!(
            "   source {} ({}): {}, {} records",
            o.source_name,
            o.source_agency,
            status.as_str_name(),
            o.record_count
        );
    }
    println!("   audit entry {}", answer.audit_id);

    println!();
    println!("3. The same agency asks for a person ({OTHER_SUBJECT}) who never consented:");
    let denied = exchange
        .get_records(GetRecordsRequest {
            subject_id: OTHER_SUBJECT.into(),
            record_types: types,
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
        })
        .await;
    match denied {
        Ok(_) => return Err("the read without consent was allowed".into()),
        Err(status) => {
            let info = status.get_details_error_info();
            println!(
                "   refused: {:?} {} \"{}\" (audit entry {})",
                status.code(),
                info.as_ref().map(|i| i.reason.as_str()).unwrap_or("?"),
                status.message(),
                info.as_ref()
                    .and_then(|i| i.metadata.get("audit_id").cloned())
                    .unwrap_or_default()
            );
        }
    }

    println!();
    println!("4. The person also consents to a competence passport for study guidance, and the");
    println!("   guidance agency asks for it:");
    let passport_types = network
        .gateway
        .config
        .purpose(DEMO_PURPOSE)
        .map(|p| p.record_types.clone())
        .unwrap_or_default();
    consents
        .grant(GrantConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: READER_AGENCY.into(),
            record_types: passport_types.clone(),
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
            valid_from: None,
            valid_until: Some(to_timestamp(valid_until)),
            evidence_ref: "demo-e-service-session-2".into(),
            request_id: format!("demo-passport-consent-{}", valid_until / DAY_MS),
        })
        .await?;
    println!(
        "   consent recorded for {} ({})",
        passport_types.join(", "),
        DEMO_PURPOSE
    );
    let passport = exchange
        .get_competence_passport(GetCompetencePassportRequest {
            subject_id: DEMO_SUBJECT.into(),
            purpose: DEMO_PURPOSE.into(),
        })
        .await?
        .into_inner();
    let gateway_cert = std::fs::read_to_string(&network.pki.gateway.0)?;
    let credential = crate::passport::verify(&passport.credential, &gateway_cert)?;
    let file = network.dir.join("passport.jws");
    std::fs::write(&file, &passport.credential)?;
    println!(
        "   signed credential ({} bytes) written to {}; it verifies against the gateway's",
        passport.credential.len(),
        file.display()
    );
    println!("   certificate and attests:");
    println!();
    for line in crate::passport::describe(&credential).lines() {
        println!("   {line}");
    }
    if dir_kept {
        println!();
        println!(
            "   Check it yourself: samverka passport verify {} --cert {}",
            file.display(),
            network.pki.gateway.0.display()
        );
    }
    Ok(())
}
