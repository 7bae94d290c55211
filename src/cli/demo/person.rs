//! A person logged in at one of the demo's registrar e-services: the
//! development identity provider signs their login (an ID token), and the
//! registrar wraps it in a fresh person assertion for each call, as a real
//! e-service does with the login its eID broker gave it.

use samverka_certs::dev::DevPkiFiles;
use samverka_gateway::person::issue::{
    AssertionSigner, DEV_ACR, DevIdentityProvider, IssueError, Login,
};
use samverka_gateway::time::Clock;
use samverka_proto::terms::PersonBound;

use super::{GATEWAY_AGENCY, OUTSIDER_AGENCY, REGISTRAR_AGENCY};

/// The demo registrar's client id at the development identity provider.
pub const REGISTRAR_CLIENT_ID: &str = "samverka-demo-eservice";
/// The second demo registrar's (the municipal e-service's) client id.
pub const OUTSIDER_CLIENT_ID: &str = "samverka-demo-municipal";
/// The audience the demo gateway's person assertions name.
pub fn demo_audience() -> String {
    format!("samverka:{GATEWAY_AGENCY}")
}

/// The organisation number and client id of a demo registrar by its PKI
/// name (`registrar`, or `outsider`, the second registrar).
pub fn demo_registrar(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "registrar" => Some((REGISTRAR_AGENCY, REGISTRAR_CLIENT_ID)),
        "outsider" => Some((OUTSIDER_AGENCY, OUTSIDER_CLIENT_ID)),
        _ => None,
    }
}

/// A person's login at a demo registrar.
pub struct DemoLogin {
    signer: AssertionSigner,
    idp: DevIdentityProvider,
    /// The login: person, client id, level of assurance, when.
    pub login: Login,
    clock: Clock,
}

impl std::fmt::Debug for DemoLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoLogin")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path) -> Result<String, IssueError> {
    std::fs::read_to_string(path).map_err(|e| IssueError(format!("{}: {e}", path.display())))
}

impl DemoLogin {
    /// `person` logs in now at demo registrar `registrar` (its PKI name).
    pub fn new(
        pki: &DevPkiFiles,
        registrar: &str,
        person: &str,
        clock: Clock,
    ) -> Result<Self, IssueError> {
        let (org, client_id) = demo_registrar(registrar)
            .ok_or_else(|| IssueError(format!("{registrar} is not a demo registrar")))?;
        let (_, _, key) = pki
            .assertion_keys
            .iter()
            .find(|(n, _, _)| n == registrar)
            .ok_or_else(|| IssueError(format!("no assertion key for {registrar}")))?;
        let signer = AssertionSigner::new(&read(key)?, org, &demo_audience())?;
        let idp = DevIdentityProvider::new(&read(&pki.dev_idp.1)?)?;
        Ok(DemoLogin {
            signer,
            idp,
            login: Login {
                person: person.to_owned(),
                client_id: client_id.to_owned(),
                acr: DEV_ACR.to_owned(),
                auth_time: clock.now_ms().div_euclid(1000),
            },
            clock,
        })
    }

    /// The login's ID token, as the e-service received it.
    pub fn id_token(&self) -> String {
        let now = self.clock.now_ms().div_euclid(1000);
        self.idp
            .id_token(&self.login, now)
            .expect("the dev identity provider's key signs")
    }

    /// The signer of this registrar's assertions.
    pub fn signer(&self) -> &AssertionSigner {
        &self.signer
    }

    /// `req` with a fresh assertion for this person.
    pub fn seal<R: PersonBound>(&self, mut req: R) -> R {
        let now = self.clock.now_ms().div_euclid(1000);
        self.signer
            .seal(&mut req, &self.login.person, &self.id_token(), now)
            .expect("the demo assertion key signs");
        req
    }
}
