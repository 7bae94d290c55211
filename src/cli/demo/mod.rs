//! `samverka demo`: a whole samverka network on one machine.
//!
//! It makes a development PKI and a SQLite store in a directory, writes
//! `demo.toml` (a gateway configuration that also tells clients where
//! everything is), starts the three reference adapters and the gateway on
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

use std::path::PathBuf;

use samverka_proto::records::v1::{GradingScale, Record, record::Payload};
use samverka_proto::v1::consents_client::ConsentsClient;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use samverka_proto::v1::{
    GetCompetencePassportRequest, GetRecordsRequest, GrantConsentRequest, source_outcome,
};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use samverka_gateway::time::{Clock, to_timestamp};

use super::CliError;

mod network;
mod person;
mod portal;
mod sources;

/// The organisation operating the demo gateway.
pub const GATEWAY_AGENCY: &str = "2021999012";
/// The demo's ordinary agency: a study and career guidance service.
pub const READER_AGENCY: &str = "2021999020";
/// The demo's consent registrar: a citizen e-service.
pub const REGISTRAR_AGENCY: &str = "2021999038";
/// The person's web view (`samverka portal`): a registrar that may fetch
/// the person's own passport for them.
pub const PORTAL_AGENCY: &str = "2021999079";
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

pub use person::{
    DemoLogin, OUTSIDER_CLIENT_ID, REGISTRAR_CLIENT_ID, demo_audience, demo_registrar,
};

pub use portal::{OWN_PASSPORT_PURPOSE, PORTAL_CLIENT_ID, WebAddresses};

pub use network::{DEMO_AUDIT, DemoError, Network, client_address, demo_config, pki_spec};
pub use sources::{DEMO_SOURCES, DemoSource};

/// The TLS material of the demo adapter `name` in the PKI `pki`, with its
/// agency's attestation key: its records come into passports attested.
pub fn adapter_tls(
    pki: &samverka_certs::dev::DevPkiFiles,
    name: &str,
) -> Result<samverka_adapter::AdapterTls, samverka_adapter::ServeError> {
    let missing = || samverka_adapter::ServeError::Io(format!("{name}: not in the PKI"));
    let (_, cert, key) = pki
        .adapters
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(missing)?;
    let (_, a_cert, a_key) = pki
        .attesters
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(missing)?;
    samverka_adapter::AdapterTls::from_files(cert, key, &pki.ca_cert)?
        .with_attester_files(a_cert, a_key)
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
    let mut network = Network::start(&dir, Clock::system()).await?;
    println!(
        "samverka demo: development PKI, SQLite store and demo.toml in {}",
        network.dir.display()
    );
    println!(
        "  gateway           {} (gRPC, mutual TLS)",
        client_address(network.gateway_address)
    );
    for (route, (_, addr)) in network
        .gateway
        .config
        .adapters
        .iter()
        .zip(&network.adapters)
    {
        println!(
            "  {:<17} {} (agency {}: {})",
            route.name,
            client_address(*addr),
            route.org_number,
            route.record_types.join(", ")
        );
    }
    let outcome = script(&network, options.dir.is_some()).await;
    if outcome.is_ok() && options.serve {
        let url = network.serve_portal().await?;
        println!();
        println!("The person's web view: {url}");
        println!(
            "  log in as a synthetic person at the development identity provider ({});",
            network.web.idp_issuer()
        );
        println!(
            "  its configuration: {}",
            network.dir.join("portal.toml").display()
        );
        println!();
        println!(
            "Serving until Ctrl-C or SIGTERM. Connection details: {}",
            network.config_path.display()
        );
        println!(
            "To revoke a certificate: samverka certs revoke --dir {} CERT.pem (the gateway and the adapters read {} again within seconds; new connections are refused)",
            network.pki.crl.parent().unwrap_or(&network.dir).display(),
            network.pki.crl.display()
        );
        let public = format!("https://localhost:{}", network.public_address.port());
        println!(
            "For verifiers (HTTPS, no client certificate): {public}/keys and {public}/revocations;"
        );
        println!(
            "  samverka passport verify {} --keys {public}/keys --check-status --ca {}",
            network.dir.join("passport.jws").display(),
            network.pki.ca_cert.display()
        );
        samverka_adapter::shutdown_signal().await;
    }
    network.shutdown().await;
    outcome
}

/// The days the demo's consents are recorded by (see [`record_consent`]).
const DAY_MS: i64 = 24 * 3600 * 1000;

async fn script(network: &Network, dir_kept: bool) -> Result<(), DemoError> {
    let types: Vec<String> = DEMO_RECORD_TYPES.iter().map(|t| t.to_string()).collect();
    let mut consents = ConsentsClient::new(network.channel("registrar").await?);
    let mut exchange = RecordExchangeClient::new(network.channel("reader").await?);
    let now = network.gateway.clock.now_ms();
    let valid_until = (now / DAY_MS + 366) * DAY_MS;
    let person = network.login("registrar", DEMO_SUBJECT);
    record_consent(&mut consents, &person, &types, valid_until).await?;
    read_records(&mut exchange, &types).await?;
    read_refused(&mut exchange, &types).await?;
    passport(network, &mut consents, &mut exchange, valid_until, dir_kept).await
}

/// Step 1: the registrar records the person's consent.
async fn record_consent(
    consents: &mut ConsentsClient<Channel>,
    person: &DemoLogin,
    types: &[String],
    valid_until: i64,
) -> Result<(), DemoError> {
    println!();
    println!("1. The registrar ({REGISTRAR_AGENCY}) records the person's consent:");
    println!("   The person logs in at its e-service (development identity provider); the");
    println!("   e-service sends their login with a person assertion signed for this call.");
    let receipt = consents
        .grant(person.seal(GrantConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: READER_AGENCY.into(),
            record_types: types.to_vec(),
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
            person_assertion: String::new(),
        }))
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

    Ok(())
}

/// Step 2: the guidance agency reads, and each source's outcome is shown.
async fn read_records(
    exchange: &mut RecordExchangeClient<Channel>,
    types: &[String],
) -> Result<(), DemoError> {
    println!();
    println!("2. The guidance agency ({READER_AGENCY}) reads the person's records:");
    let answer = exchange
        .get_records(GetRecordsRequest {
            subject_id: DEMO_SUBJECT.into(),
            record_types: types.to_vec(),
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
            case_reference: "SG-2026-0412".into(),
            official_id: "guidance-officer-17".into(),
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

    Ok(())
}

/// Step 3: a read for a person who never consented is refused.
async fn read_refused(
    exchange: &mut RecordExchangeClient<Channel>,
    types: &[String],
) -> Result<(), DemoError> {
    println!();
    println!("3. The same agency asks for a person ({OTHER_SUBJECT}) who never consented:");
    let denied = exchange
        .get_records(GetRecordsRequest {
            subject_id: OTHER_SUBJECT.into(),
            record_types: types.to_vec(),
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
            case_reference: "SG-2026-0412".into(),
            official_id: "guidance-officer-17".into(),
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

    Ok(())
}

/// Step 4: a passport consent, the passport, and its credential verified
/// and written to the demo's directory.
async fn passport(
    network: &Network,
    consents: &mut ConsentsClient<Channel>,
    exchange: &mut RecordExchangeClient<Channel>,
    valid_until: i64,
    dir_kept: bool,
) -> Result<(), DemoError> {
    println!();
    println!("4. The person declares a merit of their own through the e-service, consents to a");
    println!("   competence passport for study guidance, and the guidance agency asks for it:");
    declare_own_merit(network).await?;
    let passport_types = network
        .gateway
        .registry
        .current()
        .purpose(DEMO_PURPOSE)
        .map(|p| p.record_types.clone())
        .unwrap_or_default();
    let person = network.login("registrar", DEMO_SUBJECT);
    consents
        .grant(person.seal(GrantConsentRequest {
            subject_id: DEMO_SUBJECT.into(),
            grantee_agency: READER_AGENCY.into(),
            record_types: passport_types.clone(),
            purpose: DEMO_PURPOSE.into(),
            source_agencies: vec![],
            valid_from: None,
            valid_until: Some(to_timestamp(valid_until)),
            evidence_ref: "demo-e-service-session-2".into(),
            request_id: format!("demo-passport-consent-{}", valid_until / DAY_MS),
            person_assertion: String::new(),
        }))
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
            case_reference: "SG-2026-0412".into(),
            official_id: "guidance-officer-17".into(),
        })
        .await?
        .into_inner();
    let gateway_cert = std::fs::read_to_string(&network.pki.gateway.0)?;
    let credential =
        samverka_gateway::credential::passport::verify(&passport.credential, &gateway_cert)?;
    let file = network.dir.join("passport.jws");
    std::fs::write(&file, &passport.credential)?;
    println!(
        "   signed credential ({} bytes) written to {}; it verifies against the gateway's",
        passport.credential.len(),
        file.display()
    );
    println!("   certificate and attests:");
    println!();
    for line in crate::cli::passport::describe(&credential).lines() {
        println!("   {line}");
    }
    println!();
    println!(
        "   The person's holder salt (not in the credential): {}",
        passport.holder_salt
    );
    if dir_kept {
        println!();
        println!(
            "   Check it yourself: samverka passport verify {} --cert {} --ca {} --person {DEMO_SUBJECT} --salt {}",
            file.display(),
            network.pki.gateway.0.display(),
            network.pki.ca_cert.display(),
            passport.holder_salt
        );
    }
    Ok(())
}

/// The demo person's own merit, declared through the registrar (once: a
/// demo run again in the same directory finds it).
async fn declare_own_merit(network: &Network) -> Result<(), DemoError> {
    use samverka_proto::records::v1::SelfDeclaredMerit;
    use samverka_proto::v1::self_declared_merit_service_client::SelfDeclaredMeritServiceClient;
    use samverka_proto::v1::{DeclareMeritRequest, ListMeritsRequest};
    const TITLE: &str = "Kassör i idrottsförening";
    let mut merits = SelfDeclaredMeritServiceClient::new(network.channel("registrar").await?);
    let person = network.login("registrar", DEMO_SUBJECT);
    let kept = merits
        .list_merits(person.seal(ListMeritsRequest {
            subject_id: DEMO_SUBJECT.into(),
            person_assertion: String::new(),
        }))
        .await?
        .into_inner()
        .merits;
    if !kept
        .iter()
        .any(|m| m.merit.as_ref().is_some_and(|m| m.title == TITLE))
    {
        let person = network.login("registrar", DEMO_SUBJECT);
        merits
            .declare_merit(person.seal(DeclareMeritRequest {
                subject_id: DEMO_SUBJECT.into(),
                merit: Some(SelfDeclaredMerit {
                    title: TITLE.into(),
                    description: "Kept the accounts of a sports club for five years.".into(),
                    skill_concepts: vec![
                        "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-00000000d001"
                            .into(),
                    ],
                    start_date: "2019-01-01".into(),
                    end_date: "2023-12-31".into(),
                    declared_at: String::new(),
                }),
                person_assertion: String::new(),
            }))
            .await?;
    }
    println!("   merit declared by the person: {TITLE} (self-declared, attested by no one)");
    Ok(())
}

/// `samverka demo` as a process: one telemetry set-up for the gateway and
/// the adapters alike (their spans all go to OTEL_EXPORTER_OTLP_ENDPOINT,
/// if set), then the demo.
pub fn main(options: DemoOptions) -> Result<String, CliError> {
    super::runtime()?.block_on(async {
        let mut config = samverka_adapter::telemetry::TelemetryConfig::new("samverka-demo");
        config.default_log_filter = "warn".into();
        let telemetry = samverka_adapter::telemetry::init(&config).map_err(CliError::failed)?;
        let result = run(options).await.map_err(CliError::failed);
        telemetry.shutdown();
        result.map(|()| String::new())
    })
}
