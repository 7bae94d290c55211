//! The demo's network: a development PKI, a SQLite store, `demo.toml`,
//! the reference adapters and the gateway, on loopback ports chosen by the
//! OS. The end-to-end tests start it too, so that they test exactly what
//! the demo runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use samverka_adapter::{Adapter, AdapterError, AdapterTls, Description, FetchQuery};
use samverka_certs::OrgNumber;
use samverka_certs::dev::{DevPkiFiles, DevPkiSpec, existing_dev_pki, refresh_crl, write_dev_pki};
use samverka_proto::records::v1::Record;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use samverka_gateway::Gateway;
use samverka_gateway::config::Config;
use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_gateway::server::serve;
use samverka_gateway::time::Clock;

use super::{
    DEMO_PURPOSE, DEMO_RECORD_TYPES, DEMO_SOURCES, DEMO_SUBJECT, DemoLogin, GATEWAY_AGENCY,
    OUTSIDER_AGENCY, OUTSIDER_CLIENT_ID, READER_AGENCY, REGISTRAR_AGENCY, REGISTRAR_CLIENT_ID,
};

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
            ("portal".into(), org(super::PORTAL_AGENCY)),
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
    /// Where the gateway listens (127.0.0.1; clients call
    /// [`client_address`] of it, `localhost:PORT`).
    pub gateway_address: SocketAddr,
    /// Where the operators' admin listener is (`/metrics`, `/healthz`,
    /// `/readyz`).
    pub admin_address: SocketAddr,
    /// The public listener (key set, revocation list; HTTPS without a
    /// client certificate).
    pub public_address: SocketAddr,
    /// Per adapter: name and where it listens (`demo.toml` names it by
    /// [`client_address`]).
    pub adapters: Vec<(String, SocketAddr)>,
    /// Where the person's web view and the development identity provider
    /// listen once served ([`Network::serve_portal`]).
    pub web: super::portal::WebAddresses,
    pub(super) web_listeners: Option<(TcpListener, TcpListener)>,
    fetch_calls: Arc<AtomicUsize>,
    last_trace: Arc<std::sync::Mutex<Option<String>>>,
    pub(super) stops: Vec<(String, oneshot::Sender<()>, JoinHandle<()>)>,
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

/// The address to call a demo listener at: `localhost:PORT` for one on
/// 127.0.0.1, the name the demo's certificates hold, so that a TLS client
/// sends it as SNI (an IP address is no valid SNI: some clients send it
/// anyway, with a warning, and the gateway logs "Illegal SNI extension");
/// any other address as it is.
pub fn client_address(address: SocketAddr) -> String {
    if address.ip() == Ipv4Addr::LOCALHOST {
        format!("localhost:{}", address.port())
    } else {
        address.to_string()
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
        let store = std::path::absolute(dir)?.join("samverka.db");
        Self::start_with_store(dir, clock, &store.display().to_string()).await
    }

    /// [`Network::start`] on another store: a SQLite path or a
    /// `postgresql://` URL (several networks on one database are replicas).
    pub async fn start_with_store(
        dir: &Path,
        clock: Clock,
        store: &str,
    ) -> Result<Network, DemoError> {
        let dir = std::path::absolute(dir)?;
        // A demo run again in the same directory keeps its PKI: the store's
        // signed checkpoints and receipts stay verifiable with its gateway
        // certificate. Its revocation list is signed afresh (keeping what
        // it revokes), as its CA would publish it, so that it is not stale.
        let pki = match existing_dev_pki(&dir.join("certs"), &pki_spec()) {
            Some(files) => {
                refresh_crl(&dir.join("certs"))?;
                files
            }
            None => write_dev_pki(&dir.join("certs"), &pki_spec())?,
        };
        let (gateway_listener, gateway_address) = loopback().await?;
        let (admin_listener, admin_address) = loopback().await?;
        let (public_listener, public_address) = loopback().await?;
        let mut listeners = Vec::new();
        for source in &DEMO_SOURCES {
            let (listener, address) = loopback().await?;
            listeners.push((source.name.to_owned(), listener, address));
        }
        let adapters: Vec<(String, SocketAddr)> =
            listeners.iter().map(|(n, _, a)| (n.clone(), *a)).collect();
        let (portal_listener, portal_address) = loopback().await?;
        let (idp_listener, idp_address) = loopback().await?;
        let web = super::portal::WebAddresses::new(portal_address, idp_address);

        let config_path = dir.join("demo.toml");
        let text = demo_config(
            &pki,
            &gateway_address.to_string(),
            &admin_address.to_string(),
            &adapters,
            store,
            &format!("{DEMO_AUDIT}\n{}", super::portal::portal_tables(&pki, &web)),
        );
        let text = super::portal::with_public_listener(&text, admin_address, public_address);
        std::fs::write(&config_path, text)?;
        super::portal::write_portal_config(&dir, &pki, &web, gateway_address, public_address)?;
        let config = Config::load(&config_path)?;

        let fetch_calls = Arc::new(AtomicUsize::new(0));
        let last_trace = Arc::new(std::sync::Mutex::new(None));
        let mut stops = Vec::new();
        for (source, (_, listener, _)) in DEMO_SOURCES.iter().zip(listeners) {
            let name = source.name;
            let register = (source.register)();
            let tls = super::adapter_tls(&pki, name)?.with_crl_files(&[&pki.crl])?;
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
            // The admin and public listeners stop when the gateway has.
            let (stop_listeners, stopped) = tokio::sync::watch::channel(());
            let until = |mut rx: tokio::sync::watch::Receiver<()>| async move {
                let _ = rx.changed().await;
            };
            let public = tokio::spawn(samverka_gateway::public::serve_public(
                gw.clone(),
                public_listener,
                until(stopped.clone()),
            ));
            let admin = tokio::spawn(samverka_gateway::admin::serve_admin(
                gw.clone(),
                admin_listener,
                until(stopped),
            ));
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = serve(gw, gateway_listener, stop).await {
                tracing::error!(error = %e, "gateway stopped");
            }
            let _ = stop_listeners.send(());
            let _ = tokio::join!(admin, public);
        });
        stops.push(("gateway".to_owned(), tx, task));

        Ok(Network {
            dir: dir.clone(),
            config_path,
            pki,
            gateway,
            gateway_address,
            admin_address,
            public_address,
            adapters,
            web,
            web_listeners: Some((portal_listener, idp_listener)),
            fetch_calls,
            last_trace,
            stops,
        })
    }

    /// `person` logs in now at demo registrar `registrar` (`registrar`,
    /// or `outsider`, the second one): seals requests with fresh person
    /// assertions.
    pub fn login(&self, registrar: &str, person: &str) -> DemoLogin {
        DemoLogin::new(&self.pki, registrar, person, self.gateway.clock.clone())
            .expect("the demo PKI has the dev identity provider's and registrars' keys")
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
            &client_address(self.gateway_address),
            "localhost",
            &self.agency_tls(name)?,
        )
        .await?)
    }

    /// An mTLS channel to the gateway as its operator (the management API).
    pub async fn operator_channel(&self) -> Result<Channel, DemoError> {
        let (cert, key) = &self.pki.operator;
        let tls = AgencyTls::from_files(&self.pki.ca_cert, cert, key)?;
        Ok(connect(&client_address(self.gateway_address), "localhost", &tls).await?)
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
        self.stop("portal").await;
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

/// The demo's `[registry]`: on its own SQLite file, the store's registry,
/// seeded from the tables of `demo.toml` and replaced by them when a run
/// again in the same directory moved its adapters to new ports. Networks
/// sharing one PostgreSQL database have a PKI and adapters each, which the
/// others cannot reach: each keeps its registry in its own file.
fn demo_registry(store: &str) -> &'static str {
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        "[registry]          # each demo network on a shared database routes to its\n\
         source = \"file\"     # own adapters: its registry is this file"
    } else {
        "[registry]          # the tables below seed the store's registry; the demo's\n\
         source = \"store\"    # adapters get new ports at each start, so its tables\n\
         apply_file = true   # replace the store's registry when they differ"
    }
}

/// The demo's configuration: gateway at `gateway` and its admin listener
/// at `admin` (`host:port`; port 0 lets the OS choose), the demo sources named in `adapters` at their
/// addresses (named by [`client_address`]: `localhost:PORT`), `store` (a SQLite path or a PostgreSQL URL), and `extra` TOML
/// appended as is (further sections, such as [`DEMO_AUDIT`]). The gateway
/// checks both hops against the PKI's revocation list (`gateway.crls`),
/// so that `samverka certs revoke` revokes in the demo.
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
    let assertion = |name: &str| {
        pki.assertion_keys
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, public, key)| (p(public), p(key)))
            .unwrap_or_default()
    };
    let (registrar_assertion_pub, registrar_assertion_key) = assertion("registrar");
    let (outsider_assertion_pub, _) = assertion("outsider");
    let idp = samverka_gateway::person::issue::DEV_IDP_ISSUER;
    let list = |t: &[&str]| format!("{t:?}");
    // `[gateway] address` is where the gateway binds (an IP address);
    // clients call it by the name its certificate holds.
    let call = gateway
        .parse::<SocketAddr>()
        .map_or_else(|_| gateway.to_owned(), client_address);
    let mut adapter_tables = String::new();
    for (name, address) in adapters {
        if let Some(source) = DEMO_SOURCES.iter().find(|s| s.name == name) {
            adapter_tables.push_str(&format!(
                "[[adapters]]\nname = \"{name}\"\naddress = \"{}\"\norg_number = \"{}\"\nrecord_types = {}\n\n",
                client_address(*address),
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
address = "{gateway}"   # where it listens; clients call [agency] gateway
admin_address = "{admin}"
org_number = "{GATEWAY_AGENCY}"
ca_cert = {ca}
cert = {gw_cert}
key = {gw_key}
client_cert = {gwc_cert}
client_key = {gwc_key}
crls = [{crl}]      # `samverka certs revoke` adds to it; reloaded when it changes
store = {store}

[agency]            # an ordinary agency that reads records
gateway = "{call}"   # the address to call, by the name in the gateway's certificate
org_number = "{READER_AGENCY}"
cert = {reader_cert}
key = {reader_key}

[registrar]         # the consent registrar agency
gateway = "{call}"
org_number = "{REGISTRAR_AGENCY}"
cert = {registrar_cert}
key = {registrar_key}
assertion_key = {registrar_assertion_key}   # signs its person assertions
audience = "samverka:{GATEWAY_AGENCY}"      # the gateway's person_assertion.audience
login_client = "{REGISTRAR_CLIENT_ID}"      # its client id at the dev identity provider
dev_idp_key = {idp_key}   # `samverka certs person-token` signs synthetic logins with it

[subject]           # the demo person; [agency] holds an active consent for them
id = "{DEMO_SUBJECT}"
purpose = "{DEMO_PURPOSE}"
record_types = {demo_types}

[operator]          # changes the registry: samverka admin ... --demo demo.toml
gateway = "{call}"
cert = {op_cert}
key = {op_key}

{registry}

[[agencies]]         # the operator: issuer of competence passports
org_number = "{GATEWAY_AGENCY}"
name = "samverka demo operator (synthetic)"

[[agencies]]
org_number = "{READER_AGENCY}"
name = "Study and career guidance service (demo)"

[[identity_providers]]   # synthetic logins for the demo; never in production
issuer = "{idp}"
name = "samverka development identity provider"
keys = {idp_pub}

[[agencies]]
org_number = "{REGISTRAR_AGENCY}"
name = "Citizen e-service (demo consent registrar)"
registrar = true
registrar_purposes = ["study_guidance", "job_matching", "admission"]
assertion_keys = {registrar_assertion_pub}
login_clients = [{{ issuer = "{idp}", client_id = "{REGISTRAR_CLIENT_ID}" }}]

[[agencies]]
org_number = "{OUTSIDER_AGENCY}"
name = "Municipal e-service without access rules (demo second registrar, job matching only)"
registrar = true
registrar_purposes = ["job_matching"]
assertion_keys = {outsider_assertion_pub}
login_clients = [{{ issuer = "{idp}", client_id = "{OUTSIDER_CLIENT_ID}" }}]

[[purposes]]
code = "study_guidance"
description = "Study and career guidance"
description_sv = "Studie- och yrkesvägledning"
record_types = ["education.course_result", "education.degree", "education.non_formal", "employment.period", "competence.validated", "competence.self_declared"]

[[purposes]]
code = "job_matching"
description = "Job matching by the public employment service"
description_sv = "Matchning till arbete hos den offentliga arbetsförmedlingen"
record_types = ["education.non_formal", "employment.period", "competence.validated"]

[[purposes]]
code = "admission"
description = "Admission to education"
description_sv = "Antagning till utbildning"
record_types = ["education.course_result", "education.degree", "education.upper_secondary_grade", "education.vocational_diploma"]

[[access_rules]]
agency = "{READER_AGENCY}"
purposes = ["study_guidance"]
record_types = ["education.course_result", "education.degree", "education.non_formal", "employment.period", "competence.validated", "competence.self_declared"]

[[access_rules]]
agency = "{READER_AGENCY}"
purposes = ["job_matching"]
record_types = ["education.non_formal", "employment.period", "competence.validated"]

{adapter_tables}{extra}"#,
        ca = p(&pki.ca_cert),
        gw_cert = p(&pki.gateway.0),
        gw_key = p(&pki.gateway.1),
        gwc_cert = p(&pki.gateway_client.0),
        gwc_key = p(&pki.gateway_client.1),
        crl = p(&pki.crl),
        idp_pub = p(&pki.dev_idp.0),
        idp_key = p(&pki.dev_idp.1),
        registry = demo_registry(store),
        op_cert = p(&pki.operator.0),
        op_key = p(&pki.operator.1),
        store = toml::Value::String(store.to_owned()),
        demo_types = list(&DEMO_RECORD_TYPES),
    )
}
