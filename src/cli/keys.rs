//! `samverka keys`: the gateway's signing keys, kept after rotation, as a
//! key set verifiers check old receipts and passports against.
//!
//! ```text
//! samverka keys list   --config gateway.toml
//! samverka keys export --config gateway.toml --out keys.json
//! samverka keys retire KID --config gateway.toml [--compromised]
//! ```
//!
//! Every gateway records the key it signs with when it starts and when a
//! reload puts a new certificate in; `export` writes them all as a JWKS
//! (`credential/keys/`). Once every replica signs with the new key,
//! `retire` ends the old one: what it signed before stays valid, what it
//! would sign after does not. `--compromised` says its private key may be
//! known: nothing it ever signed is valid. Retiring is audited.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use samverka_gateway::config::Config;
use samverka_gateway::credential::keys::KeySet;
use samverka_gateway::store::Store;
use samverka_gateway::store::keys::{Retire, RetireReason};
use samverka_gateway::time::{rfc3339, system_now_ms};

use super::CliError;

/// `samverka keys ...`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: in use from, retired at and why.
    List {
        /// The gateway's configuration (for its store).
        #[arg(long)]
        config: PathBuf,
    },
    /// Write the key set (JWKS, with each key's validity) for verifiers.
    Export {
        /// The gateway's configuration (for its store).
        #[arg(long)]
        config: PathBuf,
        /// Where to write it (standard output without).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Retire a signing key (named by its kid, as `list` shows it), once no
    /// replica signs with it any more; audited.
    Retire {
        /// The key's id (the `x5t#S256` thumbprint of its certificate; it
        /// may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// The gateway's configuration (for its store).
        #[arg(long)]
        config: PathBuf,
        /// Its private key may be known to others: nothing it ever signed
        /// is to be trusted.
        #[arg(long)]
        compromised: bool,
    },
}

/// The store of the gateway `config` configures.
pub(crate) async fn store(config: &Path) -> Result<Store, CliError> {
    let config = Config::load(config).map_err(|e| CliError::Usage(e.to_string()))?;
    Store::open(&config.gateway.store)
        .await
        .map_err(CliError::failed)
}

/// Runs `samverka keys ...`.
pub async fn run(command: KeysCommand) -> Result<String, CliError> {
    match command {
        KeysCommand::List { config } => {
            let keys = store(&config)
                .await?
                .signing_keys()
                .await
                .map_err(CliError::failed)?;
            let mut out = String::new();
            for k in &keys {
                let subject = samverka_certs::CertIdentity::from_pem(&k.cert_pem)
                    .map(|i| format!("{} ({:?})", i.agency, i.role))
                    .unwrap_or_default();
                let state = match (k.retired_at_ms, &k.retire_reason) {
                    (Some(at), Some(why)) => format!("retired {} ({why})", rfc3339(at)),
                    (Some(at), None) => format!("retired {}", rfc3339(at)),
                    _ => "in use".to_owned(),
                };
                out.push_str(&format!(
                    "{}  from {}  {state}  {subject}\n",
                    k.kid,
                    rfc3339(k.in_use_from_ms)
                ));
            }
            if out.is_empty() {
                out = "no signing keys recorded (the gateway records its key when it starts)\n"
                    .into();
            }
            Ok(out)
        }
        KeysCommand::Export { config, out } => {
            let records = store(&config)
                .await?
                .signing_keys()
                .await
                .map_err(CliError::failed)?;
            let set = KeySet::from_records(&records).map_err(CliError::failed)?;
            let mut text = serde_json::to_string_pretty(&set.to_json()).unwrap_or_default();
            text.push('\n');
            match out {
                None => Ok(text),
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
                    Ok(format!(
                        "{} signing keys written to {}\n",
                        set.keys.len(),
                        path.display()
                    ))
                }
            }
        }
        KeysCommand::Retire {
            kid,
            config,
            compromised,
        } => retire(&config, kid, compromised).await,
    }
}

/// `samverka keys retire`: the change and its audit entry, in one
/// transaction.
async fn retire(config: &Path, kid: String, compromised: bool) -> Result<String, CliError> {
    let reason = if compromised {
        RetireReason::Compromised
    } else {
        RetireReason::Superseded
    };
    let now = system_now_ms();
    let entry = super::audit::operator_entry(
        "samverka keys retire",
        now,
        &[("kid", kid.clone()), ("reason", reason.as_str().to_owned())],
    );
    let store = store(config).await?;
    match store
        .retire_signing_key(kid.clone(), now, reason, entry)
        .await
        .map_err(CliError::failed)?
    {
        Retire::Done(entry) => Ok(format!(
            "key {kid} retired at {} ({}); recorded in the trail as {}\n",
            rfc3339(now),
            reason.as_str(),
            entry.audit_id
        )),
        Retire::Unknown => Err(CliError::Usage(format!(
            "no signing key {kid:?} (see samverka keys list)"
        ))),
        Retire::Already(at) => Err(CliError::Failed(format!(
            "key {kid} was already retired at {}",
            rfc3339(at)
        ))),
    }
}

/// What a verifying command trusts: the gateway's certificate, or its key
/// set (which also checks that the signing key was valid at issuance).
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TrustArgs {
    /// The certificate of the gateway that signed (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The gateway's key set: a JWKS file from `samverka keys export`, or
    /// the https:// URL of a gateway's public listener (`.../keys`; needs
    /// --ca). Old documents verify after a rotation, and a retired key's
    /// do not.
    #[arg(long)]
    pub keys: Option<String>,
}

impl TrustArgs {
    /// The certificate or key set, read or fetched. With `ca` (the
    /// federation CA) every certificate of the key set must be issued by
    /// it, and a fetch trusts it; a key set fetched from a URL needs it,
    /// since whoever answers at that URL would otherwise choose the keys.
    pub async fn load(
        &self,
        ca: Option<&Path>,
    ) -> Result<samverka_gateway::credential::keys::Trust, CliError> {
        use samverka_gateway::credential::keys::Trust;
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
        };
        match (&self.cert, &self.keys) {
            (Some(cert), _) => {
                let pem = read(cert)?;
                if let Some(ca) = ca {
                    samverka_gateway::credential::keys::check_gateway_cert(&pem, &read(ca)?)
                        .map_err(|e| CliError::Failed(format!("{}: {e}", cert.display())))?;
                }
                Ok(Trust::Cert(pem))
            }
            (None, Some(keys)) => {
                let text = if super::fetch::is_url(keys) {
                    if ca.is_none() {
                        return Err(CliError::Usage(format!(
                            "{keys}: a key set fetched over the network needs --ca, the CA that issued the gateway's certificates"
                        )));
                    }
                    super::fetch::get_json(keys, ca).await?.to_string()
                } else {
                    read(Path::new(keys))?
                };
                let set =
                    KeySet::parse(&text).map_err(|e| CliError::Usage(format!("{keys}: {e}")))?;
                if let Some(ca) = ca {
                    set.check_issued_by(&read(ca)?)
                        .map_err(|e| CliError::Failed(format!("{keys}: {e}")))?;
                }
                Ok(Trust::Keys(set))
            }
            (None, None) => Err(CliError::Usage("give --cert or --keys".into())),
        }
    }
}
