//! The demo's person's web view: the portal (an ordinary registrar agency
//! of its own) and the development identity provider it logs people in
//! with, on loopback ports. `samverka demo --serve` serves both and prints
//! the portal's URL; `DIR/portal.toml` is the portal's configuration, as
//! `samverka portal --config` reads it.

use std::net::SocketAddr;
use std::path::Path;

use samverka_certs::dev::DevPkiFiles;
use samverka_gateway::person::issue::DevIdentityProvider;
use samverka_portal::dev_idp::{DevClient, DevPerson};
use samverka_portal::{Portal, PortalConfig};
use tokio::sync::oneshot;

use super::{
    DEMO_SUBJECT, DemoError, Network, OTHER_SUBJECT, PORTAL_AGENCY, client_address, demo_audience,
};

/// The portal's client id at the development identity provider.
pub const PORTAL_CLIENT_ID: &str = "samverka-demo-portal";

/// The purpose under which the portal fetches a person's own passport.
pub const OWN_PASSPORT_PURPOSE: &str = "own_passport";

/// The record types of [`OWN_PASSPORT_PURPOSE`].
const PASSPORT_TYPES: [&str; 6] = [
    "education.course_result",
    "education.degree",
    "education.non_formal",
    "employment.period",
    "competence.validated",
    "competence.self_declared",
];

/// Where the portal and the identity provider are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAddresses {
    /// The portal's listening address.
    pub portal: SocketAddr,
    /// The identity provider's.
    pub idp: SocketAddr,
}

impl WebAddresses {
    pub(super) fn new(portal: SocketAddr, idp: SocketAddr) -> WebAddresses {
        WebAddresses { portal, idp }
    }

    /// The portal's URL (`http://localhost:PORT`: browsers treat localhost
    /// as a secure context, so its Secure cookies work without TLS).
    pub fn portal_url(&self) -> String {
        format!("http://localhost:{}", self.portal.port())
    }

    /// The identity provider's issuer (its URL).
    pub fn idp_issuer(&self) -> String {
        format!("http://localhost:{}", self.idp.port())
    }
}

/// The registry tables the portal needs: the served identity provider,
/// the portal agency (a registrar for every demo purpose that may record a
/// consent to itself, for its own-passport purpose only), that purpose
/// and its access rule.
pub(super) fn portal_tables(pki: &DevPkiFiles, web: &WebAddresses) -> String {
    let p = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let assertion = pki
        .assertion_keys
        .iter()
        .find(|(n, _, _)| n == "portal")
        .map(|(_, public, _)| p(public))
        .unwrap_or_default();
    let issuer = web.idp_issuer();
    format!(
        r#"[[identity_providers]]   # the development identity provider, served for the portal
issuer = "{issuer}"
name = "samverka development identity provider (web)"
keys = {idp_pub}

[[agencies]]
org_number = "{PORTAL_AGENCY}"
name = "My records: the person's e-service (demo)"
registrar = true
registrar_purposes = ["study_guidance", "job_matching", "admission", "{OWN_PASSPORT_PURPOSE}"]
registrar_self_grant = true   # its consents to itself are for {OWN_PASSPORT_PURPOSE} only (the access rule below)
assertion_keys = {assertion}
login_clients = [{{ issuer = "{issuer}", client_id = "{PORTAL_CLIENT_ID}" }}]

[[purposes]]
code = "{OWN_PASSPORT_PURPOSE}"
description = "The person's own competence passport, fetched at their request"
description_sv = "Personens eget kompetenspass, hämtat på personens begäran"
record_types = {types:?}

[[access_rules]]
agency = "{PORTAL_AGENCY}"
purposes = ["{OWN_PASSPORT_PURPOSE}"]
record_types = {types:?}
"#,
        idp_pub = p(&pki.dev_idp.0),
        types = PASSPORT_TYPES,
    )
}

/// The demo gateway's configuration `text` with its public listener on
/// `public` (verifiers fetch the key set and the passports' revocation
/// list there; the certificate names localhost), after the admin
/// listener's line.
pub(super) fn with_public_listener(text: &str, admin: SocketAddr, public: SocketAddr) -> String {
    let admin_line = format!("admin_address = \"{admin}\"\n");
    text.replacen(
        &admin_line,
        &format!(
            "{admin_line}public_address = \"{public}\"   # key set and revocation list, HTTPS\npublic_url = \"https://localhost:{}\"\n",
            public.port()
        ),
        1,
    )
}

/// Writes `DIR/portal.toml` and the portal's client secret.
pub(super) fn write_portal_config(
    dir: &Path,
    pki: &DevPkiFiles,
    web: &WebAddresses,
    gateway: SocketAddr,
    public: SocketAddr,
) -> Result<(), DemoError> {
    let p = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let (_, cert, key) = pki
        .agencies
        .iter()
        .find(|(n, _, _)| n == "portal")
        .ok_or("the demo PKI has no portal agency")?;
    let (_, _, assertion_key) = pki
        .assertion_keys
        .iter()
        .find(|(n, _, _)| n == "portal")
        .ok_or("the demo PKI has no portal assertion key")?;
    let secret_file = dir.join("certs").join("portal-client-secret.txt");
    if !secret_file.exists() {
        std::fs::write(&secret_file, samverka_portal::session::random_token())?;
    }
    let text = format!(
        r#"# The person's web view of the demo, written by `samverka demo`:
# samverka portal --config portal.toml (samverka demo --serve runs it).

[portal]
address = "{portal}"
public_url = "{public_url}"
session_idle_minutes = 15
passport_purpose = "{OWN_PASSPORT_PURPOSE}"
passport_record_types = {types:?}
gateway_cert = {gateway_cert}
gateway_keys = "https://localhost:{public_port}/keys"

[gateway]
address = "{gateway}"
ca_cert = {ca}
cert = {cert}
key = {key}
org_number = "{PORTAL_AGENCY}"
assertion_key = {assertion_key}
audience = "{audience}"
max_login_age_s = 300

[login]              # the development identity provider; in production the eID broker
issuer = "{issuer}"
client_id = "{PORTAL_CLIENT_ID}"
client_secret_file = {secret}
"#,
        portal = web.portal,
        public_url = web.portal_url(),
        types = PASSPORT_TYPES,
        gateway_cert = p(&pki.gateway.0),
        public_port = public.port(),
        gateway = client_address(gateway),
        ca = p(&pki.ca_cert),
        cert = p(cert),
        key = p(key),
        assertion_key = p(assertion_key),
        audience = demo_audience(),
        issuer = web.idp_issuer(),
        secret = p(&secret_file),
    );
    std::fs::write(dir.join("portal.toml"), text)?;
    Ok(())
}

impl Network {
    /// Serves the development identity provider and the portal (once;
    /// later calls do nothing); returns the portal's URL.
    pub async fn serve_portal(&mut self) -> Result<String, DemoError> {
        let Some((portal_listener, idp_listener)) = self.web_listeners.take() else {
            return Ok(self.web.portal_url());
        };
        let config = PortalConfig::load(&self.dir.join("portal.toml"))?;
        let idp_key = std::fs::read_to_string(&self.pki.dev_idp.1)?;
        let provider = DevIdentityProvider::with_issuer(&idp_key, &self.web.idp_issuer())
            .map_err(|e| e.to_string())?;
        let client = DevClient {
            client_id: PORTAL_CLIENT_ID.to_owned(),
            secret: config.login.client_secret.clone(),
            redirect_uris: vec![config.redirect_uri()],
        };
        let people = vec![
            DevPerson {
                id: DEMO_SUBJECT.to_owned(),
                name: "Demo person (synthetic)".to_owned(),
            },
            DevPerson {
                id: OTHER_SUBJECT.to_owned(),
                name: "Second demo person (synthetic)".to_owned(),
            },
        ];
        let idp = samverka_portal::dev_idp::router(provider, vec![client], people);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = samverka_portal::serve_router(idp_listener, idp, stop).await {
                tracing::error!(error = %e, "the development identity provider stopped");
            }
        });
        self.stops.push(("dev-idp".to_owned(), tx, task));
        let portal = Portal::new(config).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = portal.serve(portal_listener, stop).await {
                tracing::error!(error = %e, "the portal stopped");
            }
        });
        // The portal stops before the gateway it calls.
        self.stops.insert(0, ("portal".to_owned(), tx, task));
        Ok(self.web.portal_url())
    }
}
