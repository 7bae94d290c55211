//! `samverka admin onboard` and `offboard`: an agency or adapter in or out
//! of the network in one command each, with no restart.
//!
//! Onboarding takes the certificate signing request the agency made
//! (`samverka certs request`; its key never leaves it), checks it, puts
//! the agency (or adapter route) and what it may read into the registry in
//! one version, and issues its certificate with the CA key in `--ca-dir`
//! (a development PKI's `ca.pem` and `ca.key`), keeping a copy in
//! `CA_DIR/issued/` for offboarding. Without `--ca-dir` it prints the
//! request's checked contents, for an external CA to sign.
//!
//! Offboarding removes the agency, its access rules and its adapter routes
//! in one version, then revokes every certificate of it in
//! `CA_DIR/issued/` (the gateways read the rewritten `crl.pem` on change).

use std::path::{Path, PathBuf};

use clap::Args;
use samverka_certs::dev::request::{CheckedRequest, check_request};
use samverka_certs::dev::{DevCa, revoke};
use samverka_certs::{CertIdentity, OrgNumber, Role};
use samverka_proto::admin::v1 as pb;
use toml::{Table, Value};

use super::{OperatorConnection, latest, refused};
use crate::cli::CliError;

/// Arguments of `samverka admin onboard`.
#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// The certificate signing request (`samverka certs request` makes it).
    #[arg(long)]
    csr: PathBuf,
    /// The organisation number the request must name: the operator's word
    /// on who this is, not the request's.
    #[arg(long)]
    org: String,
    /// Replace an agency (or adapter route) already in the registry, with
    /// its registrar bounds and rate: by default that is refused.
    #[arg(long)]
    replace: bool,
    /// An adapter's certificate names: a DNS name or IP address,
    /// repeatable (default: the host of --address). Names the request asks
    /// for are not taken.
    #[arg(long = "cert-name")]
    server_names: Vec<String>,
    /// The issuing CA: a directory with ca.pem and ca.key. Without it, the
    /// request's checked contents are printed for an external CA.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// The name for people (default: the request's common name).
    #[arg(long)]
    name: Option<String>,
    /// What the agency may read: PURPOSE[+PURPOSE]=TYPE[,TYPE], repeatable.
    #[arg(long = "allow")]
    allow: Vec<String>,
    /// A registrar: the purposes it may record consents for
    /// (comma-separated).
    #[arg(long, value_delimiter = ',')]
    registrar_purposes: Vec<String>,
    /// A registrar's person-assertion public keys (a PEM or JWKS file).
    #[arg(long)]
    assertion_keys: Option<PathBuf>,
    /// A registrar's client id at an identity provider, ISSUER=CLIENT_ID,
    /// repeatable.
    #[arg(long = "login-client")]
    login_clients: Vec<String>,
    /// An adapter's address, host:port.
    #[arg(long)]
    address: Option<String>,
    /// An adapter's record types (comma-separated).
    #[arg(long, value_delimiter = ',')]
    record_types: Vec<String>,
    /// How many days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Show what would change; write and issue nothing.
    #[arg(long)]
    dry_run: bool,
    /// How to reach the gateway.
    #[command(flatten)]
    connection: OperatorConnection,
}

/// Arguments of `samverka admin offboard`.
#[derive(Debug, Args)]
pub struct OffboardArgs {
    /// The organisation number.
    org: String,
    /// The issuing CA (ca.pem, ca.key, crl.pem, issued/): its certificates
    /// there are revoked.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Show what would change; write and revoke nothing.
    #[arg(long)]
    dry_run: bool,
    /// How to reach the gateway.
    #[command(flatten)]
    connection: OperatorConnection,
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// The array of tables `key` of `doc`, created if missing.
fn tables<'d>(doc: &'d mut Table, key: &str) -> &'d mut Vec<Value> {
    let v = doc.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    v.as_array_mut().expect("made an array above")
}

fn field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// The registry document with the agency (or adapter route) of `req` and
/// what `args` lets it do.
fn onboarded(doc: &mut Table, req: &CheckedRequest, args: &OnboardArgs) -> Result<(), CliError> {
    let org = req.agency.to_string();
    let name = args.name.clone().unwrap_or_else(|| req.common_name.clone());
    if req.role == Role::Adapter {
        let address = args
            .address
            .clone()
            .ok_or_else(|| usage("an adapter needs --address host:port"))?;
        if args.record_types.is_empty() {
            return Err(usage("an adapter needs --record-types"));
        }
        let routes = tables(doc, "adapters");
        if !args.replace
            && routes
                .iter()
                .any(|r| field(r, "name") == Some(name.as_str()))
        {
            return Err(usage(format!(
                "the registry already routes to an adapter named {name:?}: --replace to replace it"
            )));
        }
        routes.retain(|r| field(r, "name") != Some(name.as_str()));
        let mut t = Table::new();
        t.insert("name".into(), Value::String(name));
        t.insert("address".into(), Value::String(address));
        t.insert("org_number".into(), Value::String(org));
        t.insert("record_types".into(), strings(&args.record_types));
        if let Some(server) = args.server_names.first() {
            t.insert("server_name".into(), Value::String(server.clone()));
        }
        routes.push(Value::Table(t));
        return Ok(());
    }
    let mut agency = Table::new();
    agency.insert("org_number".into(), Value::String(org.clone()));
    agency.insert("name".into(), Value::String(name));
    if !args.registrar_purposes.is_empty() {
        let keys = args
            .assertion_keys
            .as_ref()
            .ok_or_else(|| usage("a registrar needs --assertion-keys"))?;
        let keys =
            std::fs::read_to_string(keys).map_err(|e| usage(format!("{}: {e}", keys.display())))?;
        let mut clients = Vec::new();
        for c in &args.login_clients {
            let (issuer, id) = c
                .split_once('=')
                .ok_or_else(|| usage(format!("--login-client {c:?}: expected ISSUER=CLIENT_ID")))?;
            let mut t = Table::new();
            t.insert("issuer".into(), Value::String(issuer.into()));
            t.insert("client_id".into(), Value::String(id.into()));
            clients.push(Value::Table(t));
        }
        agency.insert("registrar".into(), Value::Boolean(true));
        agency.insert(
            "registrar_purposes".into(),
            strings(&args.registrar_purposes),
        );
        agency.insert("assertion_key_set".into(), Value::String(keys));
        agency.insert("login_clients".into(), Value::Array(clients));
    }
    let agencies = tables(doc, "agencies");
    if !args.replace
        && agencies
            .iter()
            .any(|a| field(a, "org_number") == Some(org.as_str()))
    {
        return Err(usage(format!(
            "agency {org} is already in the registry: --replace to replace it (its registrar \
             bounds, keys and rate with it)"
        )));
    }
    agencies.retain(|a| field(a, "org_number") != Some(org.as_str()));
    agencies.push(Value::Table(agency));
    for grant in &args.allow {
        let (purposes, types) = grant.split_once('=').ok_or_else(|| {
            usage(format!(
                "--allow {grant:?}: expected PURPOSE[+PURPOSE]=TYPE[,TYPE]"
            ))
        })?;
        let purposes: Vec<String> = purposes.split('+').map(str::to_owned).collect();
        let types: Vec<String> = types.split(',').map(str::to_owned).collect();
        let id = format!("{org}/{}", purposes.join("+"));
        let rules = tables(doc, "access_rules");
        rules.retain(|r| field(r, "id") != Some(id.as_str()));
        let mut t = Table::new();
        t.insert("id".into(), Value::String(id));
        t.insert("agency".into(), Value::String(org.clone()));
        t.insert("purposes".into(), strings(&purposes));
        t.insert("record_types".into(), strings(&types));
        rules.push(Value::Table(t));
    }
    Ok(())
}

/// Applies `edit` to the latest registry document in one version.
async fn apply_edit(
    connection: &OperatorConnection,
    dry_run: bool,
    edit: impl FnOnce(&mut Table) -> Result<(), CliError>,
) -> Result<String, CliError> {
    let mut client = connection.client().await?;
    let expected_version = latest(&mut client).await?;
    let got = client
        .get_registry(pb::GetRegistryRequest {
            version: expected_version,
        })
        .await
        .map_err(refused)?
        .into_inner();
    let mut doc: Table = toml::from_str(&got.document)
        .map_err(|e| CliError::Failed(format!("the registry document does not read: {e}")))?;
    edit(&mut doc)?;
    let document = toml::to_string(&doc).map_err(CliError::failed)?;
    super::apply(
        &mut client,
        document,
        expected_version,
        dry_run,
        connection.json,
    )
    .await
}

fn describe(req: &CheckedRequest) -> String {
    format!(
        "request checked: {} certificate of {}, \"{}\"{}\n",
        req.role,
        req.agency,
        req.common_name,
        if req.server_names.is_empty() {
            String::new()
        } else {
            format!(", server names {}", req.server_names.join(", "))
        }
    )
}

/// `samverka admin onboard`.
pub(super) async fn onboard(args: OnboardArgs) -> Result<String, CliError> {
    let pem = std::fs::read_to_string(&args.csr)
        .map_err(|e| usage(format!("{}: {e}", args.csr.display())))?;
    let mut req = check_request(&pem).map_err(|e| usage(format!("{}: {e}", args.csr.display())))?;
    if req.agency.as_str() != args.org {
        return Err(usage(format!(
            "the request names organisation {}, not --org {}: refused",
            req.agency, args.org
        )));
    }
    // What the operator says it is to be must fit what it asks to be.
    let for_adapter = args.address.is_some() || !args.record_types.is_empty();
    let for_agency = !args.allow.is_empty() || !args.registrar_purposes.is_empty();
    match req.role {
        Role::Agency if for_adapter => {
            return Err(usage(
                "the request is an agency's: --address and --record-types are for adapters",
            ));
        }
        Role::Adapter if for_agency => {
            return Err(usage(
                "the request is an adapter's: --allow and --registrar-purposes are for agencies",
            ));
        }
        _ => {}
    }
    // The certificate's name for people is the operator's when given.
    if let Some(name) = &args.name {
        req.common_name = name.chars().filter(|c| !c.is_control()).take(64).collect();
    }
    // An adapter's names are the operator's (or its address's host), never
    // the request's; an agency's certificate is a client's and names none.
    req.server_names = match (req.role, args.server_names.is_empty(), &args.address) {
        (Role::Adapter, false, _) => args.server_names.clone(),
        (Role::Adapter, true, Some(address)) => address
            .rsplit_once(':')
            .map(|(host, _)| vec![host.trim_matches(['[', ']']).to_owned()])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if let Some(name) = req
        .server_names
        .iter()
        .find(|n| n.contains('*') || n.is_empty())
    {
        return Err(usage(format!(
            "server name {name:?}: no wildcards, not blank"
        )));
    }
    let ca = match &args.ca_dir {
        Some(dir) => {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|e| usage(format!("{}: {e}", dir.join(name).display())))
            };
            Some(
                DevCa::from_pem(&read("ca.pem")?, &read("ca.key")?)
                    .map_err(|e| usage(e.to_string()))?,
            )
        }
        None => None,
    };
    let mut out = describe(&req);
    out.push_str(
        &apply_edit(&args.connection, args.dry_run, |doc| {
            onboarded(doc, &req, &args)
        })
        .await?,
    );
    if args.dry_run {
        return Ok(out);
    }
    match (&ca, &args.ca_dir) {
        (Some(ca), Some(dir)) => {
            let cert = ca
                .issue_requested(&req, args.days)
                .map_err(CliError::failed)?;
            let issued = dir.join("issued");
            std::fs::create_dir_all(&issued)
                .map_err(|e| CliError::failed(format!("{}: {e}", issued.display())))?;
            let stamp = samverka_gateway::time::system_now_ms();
            let file = issued.join(format!("{}-{}-{stamp}.pem", req.agency, req.role));
            std::fs::write(&file, cert)
                .map_err(|e| CliError::failed(format!("{}: {e}", file.display())))?;
            out.push_str(&format!(
                "certificate issued: {}\nhand back: that certificate and the trust anchor {}\n",
                file.display(),
                dir.join("ca.pem").display()
            ));
        }
        _ => out.push_str(
            "no --ca-dir: have the request signed by your CA (the certificate must carry \
             the request's URIs and organizationIdentifier), then hand it back\n",
        ),
    }
    Ok(out)
}

/// The certificates in `dir/issued` of `org`.
fn issued_to(dir: &Path, org: &OrgNumber) -> Result<Vec<String>, CliError> {
    let issued = dir.join("issued");
    let Ok(entries) = std::fs::read_dir(&issued) else {
        return Ok(Vec::new());
    };
    let mut certs = Vec::new();
    // Only what onboarding wrote there: regular files named after the
    // organisation, of a certificate's size (not a pipe, a device or a
    // link to one).
    let prefix = format!("{org}-");
    for entry in entries.flatten() {
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix));
        let regular = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|m| m.is_file() && m.len() <= 64 * 1024);
        if !named || !regular {
            continue;
        }
        let Ok(pem) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if CertIdentity::from_pem(&pem).is_ok_and(|id| &id.agency == org) {
            certs.push(pem);
        }
    }
    Ok(certs)
}

/// `samverka admin offboard`.
pub(super) async fn offboard(args: OffboardArgs) -> Result<String, CliError> {
    let org = OrgNumber::parse(&args.org).map_err(|e| usage(format!("{}: {e}", args.org)))?;
    let key = org.to_string();
    let mut out = apply_edit(&args.connection, args.dry_run, |doc| {
        tables(doc, "agencies").retain(|a| field(a, "org_number") != Some(key.as_str()));
        tables(doc, "access_rules").retain(|r| field(r, "agency") != Some(key.as_str()));
        tables(doc, "adapters").retain(|r| field(r, "org_number") != Some(key.as_str()));
        Ok(())
    })
    .await?;
    if args.dry_run {
        return Ok(out);
    }
    match &args.ca_dir {
        Some(dir) => {
            let certs = issued_to(dir, &org)?;
            for pem in &certs {
                revoke(dir, pem).map_err(CliError::failed)?;
            }
            out.push_str(&format!(
                "{} certificate(s) of {org} revoked in {}\n",
                certs.len(),
                dir.join("crl.pem").display()
            ));
        }
        None => out.push_str("no --ca-dir: revoke its certificates at your CA\n"),
    }
    Ok(out)
}
