//! The portal's calls to the gateway: as its registrar agency, over mutual
//! TLS, each call sealed with a fresh person assertion that carries the
//! person's ID token. The portal has no other way in.

use samverka_gateway::net::client::{AgencyTls, connect};
use samverka_gateway::person::issue::AssertionSigner;
use samverka_proto::records::v1::SelfDeclaredMerit;
use samverka_proto::terms::PersonBound;
use samverka_proto::v1::access_log_client::AccessLogClient;
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::self_declared_merit_service_client::SelfDeclaredMeritServiceClient;
use samverka_proto::v1::{
    ApproveConsentRequest, CompetencePassport, Consent, ConsentReceipt, DeclareMeritRequest,
    DeclaredMerit, GetCompetencePassportRequest, GetConsentRequest, GrantConsentRequest,
    ListAccessEventsRequest, ListAccessEventsResponse, ListConsentsRequest, ListMeritsRequest,
    PauseConsentRequest, RejectConsentRequest, ResumeConsentRequest, RevokeConsentRequest,
    WithdrawMeritRequest,
};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::config::GatewaySettings;
use crate::session::Login;

/// The gateway's answer when it refused or failed.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The gRPC code.
    pub code: tonic::Code,
    /// The stable reason (`PERSON_MISMATCH`, ...), if the gateway gave one.
    pub reason: String,
    /// The gateway's message.
    pub message: String,
}

impl From<tonic::Status> for Refusal {
    fn from(status: tonic::Status) -> Refusal {
        Refusal {
            code: status.code(),
            reason: status
                .get_details_error_info()
                .map(|i| i.reason)
                .unwrap_or_default(),
            message: status.message().to_owned(),
        }
    }
}

impl Refusal {
    fn local(message: impl Into<String>) -> Refusal {
        Refusal {
            code: tonic::Code::Internal,
            reason: String::new(),
            message: message.into(),
        }
    }
}

/// What the portal asks of the gateway.
pub struct Gateway {
    channel: Channel,
    signer: AssertionSigner,
    org_number: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("org_number", &self.org_number)
            .finish_non_exhaustive()
    }
}

/// How an approval is narrowed.
#[derive(Debug, Clone, Default)]
pub struct Narrowing {
    /// Only these record types (empty: as asked).
    pub record_types: Vec<String>,
    /// Only these sources (empty: as asked).
    pub source_agencies: Vec<String>,
    /// An earlier end (Unix ms).
    pub valid_until_ms: Option<i64>,
}

impl Gateway {
    /// Reads the registrar's files and connects (lazily: the gateway may
    /// start later).
    pub async fn connect(settings: &GatewaySettings) -> Result<Gateway, String> {
        let tls = AgencyTls::from_files(&settings.ca_cert, &settings.cert, &settings.key)
            .map_err(|e| format!("cannot read the registrar's certificate files: {e}"))?;
        let host = settings
            .address
            .rsplit_once(':')
            .map_or(settings.address.as_str(), |(h, _)| h);
        let channel = connect(&settings.address, host, &tls)
            .await
            .map_err(|e| format!("cannot connect to the gateway at {}: {e}", settings.address))?;
        let key = std::fs::read_to_string(&settings.assertion_key).map_err(|e| {
            format!(
                "cannot read the assertion key {}: {e}",
                settings.assertion_key.display()
            )
        })?;
        let signer = AssertionSigner::new(&key, &settings.org_number, &settings.audience)
            .map_err(|e| format!("{}: {e}", settings.assertion_key.display()))?;
        Ok(Gateway {
            channel,
            signer,
            org_number: settings.org_number.clone(),
        })
    }

    /// The registrar's organisation number.
    pub fn org_number(&self) -> &str {
        &self.org_number
    }

    fn seal<R: PersonBound>(&self, mut req: R, login: &Login) -> Result<R, Refusal> {
        let now = samverka_gateway::time::system_now_ms().div_euclid(1000);
        self.signer
            .seal(&mut req, &login.person, &login.id_token, now)
            .map_err(|e| Refusal::local(e.to_string()))?;
        Ok(req)
    }

    fn merits(&self) -> SelfDeclaredMeritServiceClient<Channel> {
        SelfDeclaredMeritServiceClient::new(self.channel.clone())
    }

    /// The merits the person declared and has not withdrawn, oldest first.
    pub async fn list_merits(&self, login: &Login) -> Result<Vec<DeclaredMerit>, Refusal> {
        let req = self.seal(
            ListMeritsRequest {
                subject_id: login.person.clone(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.merits().list_merits(req).await?.into_inner().merits)
    }

    /// Records a merit the person declares.
    pub async fn declare_merit(
        &self,
        login: &Login,
        merit: SelfDeclaredMerit,
    ) -> Result<DeclaredMerit, Refusal> {
        let req = self.seal(
            DeclareMeritRequest {
                subject_id: login.person.clone(),
                merit: Some(merit),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self
            .merits()
            .declare_merit(req)
            .await?
            .into_inner()
            .merit
            .unwrap_or_default())
    }

    /// Withdraws one of the person's merits.
    pub async fn withdraw_merit(&self, login: &Login, id: &str) -> Result<DeclaredMerit, Refusal> {
        let req = self.seal(
            WithdrawMeritRequest {
                subject_id: login.person.clone(),
                merit_id: id.to_owned(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self
            .merits()
            .withdraw_merit(req)
            .await?
            .into_inner()
            .merit
            .unwrap_or_default())
    }

    fn consents(&self) -> ConsentsClient<Channel> {
        ConsentsClient::new(self.channel.clone())
    }

    /// The person's consents, newest first.
    pub async fn list_consents(&self, login: &Login) -> Result<Vec<Consent>, Refusal> {
        let req = self.seal(
            ListConsentsRequest {
                subject_id: login.person.clone(),
                ..Default::default()
            },
            login,
        )?;
        Ok(self.consents().list(req).await?.into_inner().consents)
    }

    /// One consent (the gateway refuses another person's).
    pub async fn consent(&self, login: &Login, id: &str) -> Result<Consent, Refusal> {
        let req = self.seal(
            GetConsentRequest {
                consent_id: id.to_owned(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.consents().get(req).await?.into_inner())
    }

    /// Approves a pending request, narrowed as given.
    pub async fn approve(
        &self,
        login: &Login,
        id: &str,
        narrowing: Narrowing,
    ) -> Result<ConsentReceipt, Refusal> {
        let req = self.seal(
            ApproveConsentRequest {
                consent_id: id.to_owned(),
                record_types: narrowing.record_types,
                source_agencies: narrowing.source_agencies,
                valid_until: narrowing
                    .valid_until_ms
                    .map(samverka_gateway::time::to_timestamp),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.consents().approve_consent(req).await?.into_inner())
    }

    /// Rejects a pending request.
    pub async fn reject(
        &self,
        login: &Login,
        id: &str,
        reason: &str,
    ) -> Result<ConsentReceipt, Refusal> {
        let req = self.seal(
            RejectConsentRequest {
                consent_id: id.to_owned(),
                reason: reason.to_owned(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.consents().reject_consent(req).await?.into_inner())
    }

    /// Pauses an active consent.
    pub async fn pause(&self, login: &Login, id: &str) -> Result<ConsentReceipt, Refusal> {
        let req = self.seal(
            PauseConsentRequest {
                consent_id: id.to_owned(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.consents().pause_consent(req).await?.into_inner())
    }

    /// Resumes a paused consent.
    pub async fn resume(&self, login: &Login, id: &str) -> Result<ConsentReceipt, Refusal> {
        let req = self.seal(
            ResumeConsentRequest {
                consent_id: id.to_owned(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.consents().resume_consent(req).await?.into_inner())
    }

    /// Revokes a consent.
    pub async fn revoke(
        &self,
        login: &Login,
        id: &str,
        reason: &str,
    ) -> Result<ConsentReceipt, Refusal> {
        let req = self.seal(
            RevokeConsentRequest {
                consent_id: id.to_owned(),
                reason: reason.to_owned(),
                person_assertion: String::new(),
            },
            login,
        )?;
        Ok(self.consents().revoke(req).await?.into_inner())
    }

    /// One page of the person's access log, newest first (only `agency`'s
    /// events, if given).
    pub async fn access_log(
        &self,
        login: &Login,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        agency: Option<&str>,
        page_token: &str,
        page_size: u32,
    ) -> Result<ListAccessEventsResponse, Refusal> {
        let req = self.seal(
            ListAccessEventsRequest {
                subject_id: login.person.clone(),
                from: from_ms.map(samverka_gateway::time::to_timestamp),
                to: to_ms.map(samverka_gateway::time::to_timestamp),
                page_size,
                page_token: page_token.to_owned(),
                person_assertion: String::new(),
                newest_first: true,
                agency: agency.unwrap_or_default().to_owned(),
            },
            login,
        )?;
        Ok(AccessLogClient::new(self.channel.clone())
            .list(req)
            .await?
            .into_inner())
    }

    /// The person's own competence passport: a short consent of the person
    /// to this registrar for `purpose` and the purpose's `record_types`,
    /// the read, and the consent revoked again (whatever the read's
    /// outcome). All three are in the person's access log.
    pub async fn own_passport(
        &self,
        login: &Login,
        purpose: &str,
        record_types: Vec<String>,
    ) -> Result<CompetencePassport, Refusal> {
        let now_ms = samverka_gateway::time::system_now_ms();
        let grant = self.seal(
            GrantConsentRequest {
                subject_id: login.person.clone(),
                grantee_agency: self.org_number.clone(),
                record_types,
                purpose: purpose.to_owned(),
                source_agencies: vec![],
                valid_from: None,
                // Long enough for the read; revoked right after it anyway.
                valid_until: Some(samverka_gateway::time::to_timestamp(now_ms + 2 * 60_000)),
                evidence_ref: "portal: the person asked for their passport".into(),
                request_id: uuid::Uuid::new_v4().to_string(),
                person_assertion: String::new(),
            },
            login,
        )?;
        let receipt = self.consents().grant(grant).await?.into_inner();
        let consent_id = receipt.consent.map(|c| c.consent_id).unwrap_or_default();
        let read = RecordExchangeClient::new(self.channel.clone())
            .get_competence_passport(GetCompetencePassportRequest {
                subject_id: login.person.clone(),
                purpose: purpose.to_owned(),
                case_reference: String::new(),
                official_id: String::new(),
            })
            .await;
        let revoked = self
            .revoke(login, &consent_id, "passport fetched: the consent ends")
            .await;
        if let Err(e) = &revoked {
            // It ends by itself within two minutes; say so meanwhile.
            tracing::warn!(consent_id = %consent_id, reason = %e.reason, "the passport consent was not revoked");
        }
        let passport = read?.into_inner();
        revoked?;
        Ok(passport)
    }
}
