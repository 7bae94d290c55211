//! `samverka certs`: the development PKI (a CA, its revocation list, and
//! certificates following the identity convention of `samverka-certs`).

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;

/// `samverka certs ...`.
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Write a CA, an empty revocation list (crl.pem), the demo's gateway,
    /// agency and adapter certificates as PEM files, the development
    /// identity provider's key (dev-idp.key, dev-idp.pub.pem) and each
    /// agency's person-assertion key (agency-NAME-assertion.key,
    /// .pub.pem).
    Init {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue one more certificate from the development CA in DIR.
    Issue {
        /// The development PKI (ca.pem, ca.key), as `certs init` wrote it.
        #[arg(long)]
        dir: PathBuf,
        /// File name stem: writes DIR/NAME.pem and DIR/NAME.key.
        #[arg(long)]
        name: String,
        /// The holder's organisation number.
        #[arg(long)]
        org: String,
        /// The holder's role.
        #[arg(long, value_enum)]
        role: CertRole,
        /// For a gateway: its client certificate towards adapters.
        #[arg(long)]
        client: bool,
    },
    /// Make a key and a certificate signing request, as an agency or an
    /// adapter joining: writes OUT/NAME.key (it stays here) and
    /// OUT/NAME.csr.pem, which the operator onboards (`samverka admin
    /// onboard --csr`).
    Request {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// File name stem, and the certificate's common name.
        #[arg(long)]
        name: String,
        /// The organisation number.
        #[arg(long)]
        org: String,
        /// `agency` (calls the gateway) or `adapter` (serves a register).
        #[arg(long, value_enum)]
        role: RequestRole,
        /// For an adapter: a DNS name or IP address its certificate is
        /// valid for (repeatable; default localhost and 127.0.0.1).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
    },
    /// Revoke a certificate: rewrite DIR/crl.pem with its serial number
    /// added, signed afresh (a gateway whose `gateway.crls` names that
    /// file, and an adapter whose `crls` does, refuse it from their next
    /// reload on, within seconds: they watch the file).
    Revoke {
        /// The development PKI (ca.pem, ca.key, crl.pem).
        #[arg(long)]
        dir: PathBuf,
        /// The certificate to revoke (PEM).
        cert: PathBuf,
    },
    /// Print a person's login for scripts and tests: an OpenID Connect ID
    /// token signed by the development identity provider (never trusted in
    /// production), in the shape of the Swedish OIDC profile.
    PersonToken {
        /// The development PKI holding dev-idp.key, as `certs init` wrote it.
        #[arg(long, required_unless_present = "demo", conflicts_with = "demo")]
        dir: Option<PathBuf>,
        /// Or: a demo.toml, whose [registrar] names the key (dev_idp_key)
        /// and the default audience (login_client).
        #[arg(long)]
        demo: Option<PathBuf>,
        /// The person's personal identity number (12 digits).
        #[arg(long)]
        subject: String,
        /// The client id the token is for: the registrar's e-service.
        #[arg(long, required_unless_present = "demo")]
        aud: Option<String>,
        /// The login's level of assurance.
        #[arg(long, default_value = samverka_gateway::person::issue::DEV_ACR)]
        acr: String,
        /// How long ago the person logged in, in seconds (to try a stale
        /// login).
        #[arg(long, default_value_t = 0)]
        login_age: u32,
    },
    /// Sign DIR/crl.pem afresh, revoking what it revoked: its nextUpdate
    /// moves to a week from now (a gateway reports a list past its
    /// nextUpdate as stale and, with `gateway.stale_crl = "refuse"`,
    /// refuses the certificates it covers). Writes an empty list if there
    /// is none.
    Crl {
        /// The development PKI (ca.pem, ca.key, crl.pem).
        #[arg(long)]
        dir: PathBuf,
    },
}

/// The role a certificate is issued for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CertRole {
    /// An agency system calling the gateway.
    Agency,
    /// An adapter serving a register to the gateway.
    Adapter,
    /// A gateway (server, or with `--client` its client certificate).
    Gateway,
    /// An operator changing the registry through the management API.
    Operator,
    /// An agency's attestation key, signing its records as credentials
    /// (not a TLS identity).
    Attester,
}

/// The roles an agency asks a certificate for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RequestRole {
    /// An agency system calling the gateway.
    Agency,
    /// An adapter serving a register to the gateway.
    Adapter,
}

/// Runs one `samverka certs` command and returns what to print.
pub fn run(command: CertsCommand) -> Result<String, CliError> {
    certs(command).map_err(CliError::Failed)
}

fn certs(command: CertsCommand) -> Result<String, String> {
    use samverka_certs::dev::{CertRequest, DevCa, refresh_crl, revoke, write_dev_pki};
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    match command {
        CertsCommand::Init { out } => {
            let files =
                write_dev_pki(&out, &crate::cli::demo::pki_spec()).map_err(|e| e.to_string())?;
            Ok(format!(
                "development PKI written to {}\n  trust anchor: {}\n  revocation list: {}\n",
                out.display(),
                files.ca_cert.display(),
                files.crl.display()
            ))
        }
        CertsCommand::Issue {
            dir,
            name,
            org,
            role,
            client,
        } => {
            let org = samverka_certs::OrgNumber::parse(&org).map_err(|e| format!("--org: {e}"))?;
            let ca = DevCa::from_pem(&read(&dir.join("ca.pem"))?, &read(&dir.join("ca.key"))?)
                .map_err(|e| e.to_string())?;
            let role = match role {
                CertRole::Agency => samverka_certs::Role::Agency,
                CertRole::Adapter => samverka_certs::Role::Adapter,
                CertRole::Gateway => samverka_certs::Role::Gateway,
                CertRole::Operator => samverka_certs::Role::Operator,
                CertRole::Attester => samverka_certs::Role::Attester,
            };
            let mut request = CertRequest::new(org.clone(), role, &name);
            if client {
                request = request.as_client();
            }
            let what = match request.server_names.as_slice() {
                [] => format!("{role} client certificate of {org}"),
                names => format!(
                    "{role} certificate of {org}, valid for {}",
                    names.join(", ")
                ),
            };
            let issued = ca.issue(&request).map_err(|e| e.to_string())?;
            let (cert, key) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&cert, &issued.cert_pem)
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            write_secret(&key, &issued.key_pem)?;
            Ok(format!(
                "issued {} ({what}) and {}\n",
                cert.display(),
                key.display()
            ))
        }
        CertsCommand::Request {
            out,
            name,
            org,
            role,
            server_names,
        } => {
            let org = samverka_certs::OrgNumber::parse(&org).map_err(|e| format!("--org: {e}"))?;
            let role = match role {
                RequestRole::Agency => samverka_certs::Role::Agency,
                RequestRole::Adapter => samverka_certs::Role::Adapter,
            };
            let mut request = CertRequest::new(org.clone(), role, &name);
            if role == samverka_certs::Role::Adapter && !server_names.is_empty() {
                request.server_names = server_names;
            }
            let made =
                samverka_certs::dev::request::make_request(&request).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let (csr, key) = (
                out.join(format!("{name}.csr.pem")),
                out.join(format!("{name}.key")),
            );
            write_secret(&key, &made.key_pem)?;
            std::fs::write(&csr, &made.csr_pem).map_err(|e| format!("{}: {e}", csr.display()))?;
            Ok(format!(
                "key {} (keep it here) and request {} for the {role} of {org}: send the request to the operator\n",
                key.display(),
                csr.display()
            ))
        }
        CertsCommand::Revoke { dir, cert } => {
            let revoked = revoke(&dir, &read(&cert)?).map_err(|e| e.to_string())?;
            Ok(format!(
                "{} revoked; {} now lists {revoked} revoked certificate(s)\n",
                cert.display(),
                dir.join("crl.pem").display()
            ))
        }
        CertsCommand::PersonToken {
            dir,
            demo,
            subject,
            aud,
            acr,
            login_age,
        } => person_token(dir, demo, subject, aud, acr, login_age),
        CertsCommand::Crl { dir } => {
            let revoked = refresh_crl(&dir).map_err(|e| e.to_string())?;
            Ok(format!(
                "{} signed afresh, valid for {} days; it lists {revoked} revoked certificate(s)\n",
                dir.join("crl.pem").display(),
                samverka_certs::dev::CRL_VALIDITY.whole_days()
            ))
        }
    }
}

/// `samverka certs person-token`.
fn person_token(
    dir: Option<PathBuf>,
    demo: Option<PathBuf>,
    subject: String,
    aud: Option<String>,
    acr: String,
    login_age: u32,
) -> Result<String, String> {
    use samverka_gateway::person::issue::{DevIdentityProvider, Login};
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let (key, default_aud) = match (dir, demo) {
        (Some(dir), _) => (dir.join("dev-idp.key"), None),
        (None, Some(file)) => {
            let table: toml::Table =
                toml::from_str(&read(&file)?).map_err(|e| format!("{}: {e}", file.display()))?;
            let get = |k: &str| {
                table
                    .get("registrar")
                    .and_then(|r| r.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{}: registrar.{k} missing", file.display()))
            };
            (
                PathBuf::from(get("dev_idp_key")?),
                Some(get("login_client")?),
            )
        }
        (None, None) => return Err("--dir or --demo is required".into()),
    };
    samverka_certs::SubjectId::parse(&subject).map_err(|e| format!("--subject: {e}"))?;
    let client_id = aud
        .or(default_aud)
        .ok_or("--aud is required without --demo")?;
    let idp = DevIdentityProvider::new(&read(&key)?).map_err(|e| e.to_string())?;
    let now = samverka_gateway::time::system_now_ms().div_euclid(1000);
    let login = Login {
        person: subject,
        client_id,
        acr,
        auth_time: now - i64::from(login_age),
    };
    let token = idp.id_token(&login, now).map_err(|e| e.to_string())?;
    Ok(format!(
        "{token}
"
    ))
}

/// Writes a private key readable by its owner only.
fn write_secret(path: &std::path::Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}
