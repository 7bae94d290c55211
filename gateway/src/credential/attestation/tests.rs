//! Source attestations against a real development CA: what the gateway
//! accepts as it receives a record, and what a verifier accepts in a
//! passport, each flaw refused by the check that is for it.

use super::*;
use samverka_adapter::credential::Attester;
use samverka_certs::Role;
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_proto::records::v1::record::Payload;
use samverka_proto::records::v1::{CourseResult, GradingScale};

const PERSON: &str = "199003142388";
const AGENCY: &str = "2021999046";
const HOLDER: &str = "urn:uuid:7b0c3d1e-2f4a-4b5c-8d6e-9f0a1b2c3d4e";
const SALT: &str = "00112233445566778899aabbccddeeff";

fn org(s: &str) -> OrgNumber {
    OrgNumber::parse(s).unwrap()
}

fn record(grade: &str) -> Record {
    Record {
        record_type: "education.course_result".into(),
        subject_id: PERSON.into(),
        source_agency: AGENCY.into(),
        record_id: "hed-1001".into(),
        updated_at: None,
        payload: Some(Payload::CourseResult(CourseResult {
            course_code: "DA1001".into(),
            course_name: "Programmering grundkurs".into(),
            credits: 7.5,
            grade: grade.into(),
            grading_scale: GradingScale::U345 as i32,
            examination_date: "2010-01-15".into(),
            institution_org_number: AGENCY.into(),
            institution_name: "Demo University (synthetic)".into(),
            ..Default::default()
        })),
    }
}

struct Pki {
    ca: DevCa,
    attester: Attester,
    cert_der: Vec<u8>,
    /// The attestation key as a plain signer, to sign what the SDK would
    /// not.
    raw: crate::credential::signing::JwsSigner,
}

fn now() -> i64 {
    now_seconds() as i64
}

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn pki() -> Pki {
    let ca = DevCa::generate("test federation CA").unwrap();
    let issued = ca
        .issue(&CertRequest::new(
            org(AGENCY),
            Role::Attester,
            "attestations",
        ))
        .unwrap();
    let attester = Attester::from_pem(&issued.cert_pem, &issued.key_pem).unwrap();
    Pki {
        cert_der: der(&issued.cert_pem),
        raw: crate::credential::signing::JwsSigner::from_pem(
            &issued.cert_pem,
            &issued.key_pem,
            AGENCY,
        )
        .unwrap(),
        ca,
        attester,
    }
}

fn roots(ca: &DevCa) -> rustls::RootCertStore {
    samverka_adapter::root_store(ca.cert_pem().as_bytes()).unwrap()
}

fn expected() -> Expected<'static> {
    Expected {
        subject_id: PERSON,
        holder_id: HOLDER,
        holder_salt: SALT,
    }
}

fn received(pki: &Pki, jws: &str, cert_der: &[u8], record: &Record) -> Result<Value, String> {
    let roots = roots(&pki.ca);
    check_received(jws, cert_der, record, &org(AGENCY), &expected(), |d| {
        check_chain(d, &roots, &[], true, now_seconds())
    })
}

#[test]
fn an_attested_record_passes_on_arrival_and_in_the_passport() {
    let pki = pki();
    let r = record("5");
    let jws = pki
        .attester
        .attest(&r, "higher-education", HOLDER, SALT)
        .unwrap();
    let claims = received(&pki, &jws, &pki.cert_der, &r).unwrap();
    assert_eq!(claims["issuer"]["id"], "urn:samverka:agency:2021999046");
    assert_eq!(claims["credentialSubject"]["result"][0]["value"], "5");
    let merit = embed(claims, &jws, &pki.cert_der);
    let roots = roots(&pki.ca);
    assert_eq!(
        check_embedded(&merit, Some(&roots), now()).unwrap(),
        org(AGENCY)
    );
    assert_eq!(check_embedded(&merit, None, now()).unwrap(), org(AGENCY));
    let schema = crate::credential::passport::standards::validate_merit(&merit);
    assert_eq!(
        schema,
        Ok(()),
        "an attested merit is an AchievementCredential"
    );
}

#[test]
fn the_gateway_refuses_every_attestation_that_does_not_hold_for_the_record_received() {
    let pki = pki();
    let r = record("5");
    let jws = pki
        .attester
        .attest(&r, "higher-education", HOLDER, SALT)
        .unwrap();
    let refused = |why: &str, result: Result<Value, String>| {
        let e = result.expect_err(why);
        eprintln!("{why}: {e}");
    };
    // The record changed after it was signed.
    refused(
        "tampered record",
        received(&pki, &jws, &pki.cert_der, &record("3")),
    );
    // Another record's attestation (the signature is the source's own).
    let mut other = record("5");
    other.record_id = "hed-1002".into();
    let swapped = pki
        .attester
        .attest(&other, "higher-education", HOLDER, SALT)
        .unwrap();
    refused(
        "swapped attestation",
        received(&pki, &swapped, &pki.cert_der, &r),
    );
    // Made for another passport's holder.
    let elsewhere = pki
        .attester
        .attest(
            &r,
            "higher-education",
            "urn:uuid:00000000-0000-4000-8000-000000000000",
            SALT,
        )
        .unwrap();
    refused(
        "another holder id",
        received(&pki, &elsewhere, &pki.cert_der, &r),
    );
    let resalted = pki
        .attester
        .attest(
            &r,
            "higher-education",
            HOLDER,
            "ffeeddccbbaa99887766554433221100",
        )
        .unwrap();
    refused(
        "another holder salt",
        received(&pki, &resalted, &pki.cert_der, &r),
    );
    // The signature broken.
    let mut broken = jws.clone();
    broken.replace_range(broken.len() - 4.., "AAAA");
    refused(
        "broken signature",
        received(&pki, &broken, &pki.cert_der, &r),
    );

    // Another agency's attestation key, from the same CA.
    let other_agency = pki
        .ca
        .issue(&CertRequest::new(
            org("2021999053"),
            Role::Attester,
            "other",
        ))
        .unwrap();
    let theirs = Attester::from_pem(&other_agency.cert_pem, &other_agency.key_pem).unwrap();
    let mut claimed = r.clone();
    claimed.source_agency = "2021999053".into();
    let jws_other = theirs.attest(&claimed, "employment", HOLDER, SALT).unwrap();
    refused(
        "another agency's key",
        received(&pki, &jws_other, &der(&other_agency.cert_pem), &r),
    );
    // A key of the right agency from a CA the gateway does not trust.
    let rogue_ca = DevCa::generate("rogue CA").unwrap();
    let rogue = rogue_ca
        .issue(&CertRequest::new(org(AGENCY), Role::Attester, "rogue"))
        .unwrap();
    let rogue_attester = Attester::from_pem(&rogue.cert_pem, &rogue.key_pem).unwrap();
    let jws_rogue = rogue_attester
        .attest(&r, "higher-education", HOLDER, SALT)
        .unwrap();
    refused(
        "untrusted CA",
        received(&pki, &jws_rogue, &der(&rogue.cert_pem), &r),
    );
    // The adapter's TLS key (role adapter) signing what it sends.
    let tls = pki
        .ca
        .issue(&CertRequest::new(org(AGENCY), Role::Adapter, "adapter"))
        .unwrap();
    assert!(Attester::from_pem(&tls.cert_pem, &tls.key_pem).is_err());
    let claims = crate::credential::signing::payload(&jws).unwrap();
    let by_tls_key =
        crate::credential::signing::JwsSigner::from_pem(&tls.cert_pem, &tls.key_pem, AGENCY)
            .unwrap()
            .sign_jwt(&claims)
            .unwrap();
    refused(
        "TLS key",
        received(&pki, &by_tls_key, &der(&tls.cert_pem), &r),
    );
    // An attester certificate that is also a TLS client certificate.
    let mut request = CertRequest::new(org(AGENCY), Role::Attester, "both");
    request.document_signing = false;
    request.client_auth = true;
    let both = pki.ca.issue(&request).unwrap();
    let both_attester = Attester::from_pem(&both.cert_pem, &both.key_pem).unwrap();
    let jws_both = both_attester
        .attest(&r, "higher-education", HOLDER, SALT)
        .unwrap();
    refused(
        "not a signing-only certificate",
        received(&pki, &jws_both, &der(&both.cert_pem), &r),
    );
    // One that is for document signing and TLS client authentication.
    let mut request = CertRequest::new(org(AGENCY), Role::Attester, "also TLS");
    request.client_auth = true;
    let also_tls = pki.ca.issue(&request).unwrap();
    let also_tls_attester = Attester::from_pem(&also_tls.cert_pem, &also_tls.key_pem).unwrap();
    let jws_also = also_tls_attester
        .attest(&r, "higher-education", HOLDER, SALT)
        .unwrap();
    refused(
        "also a TLS certificate",
        received(&pki, &jws_also, &der(&also_tls.cert_pem), &r),
    );
    // Signed by the right key, with the right digest, saying another grade
    // than the record (what the passport would show).
    let valid_from = crate::credential::signing::payload(&jws).unwrap()["validFrom"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut claims = samverka_adapter::credential::attestation_claims(
        &r,
        "higher-education",
        HOLDER,
        SALT,
        &valid_from,
    );
    claims["credentialSubject"]["result"][0]["value"] = "VG".into();
    let lying = pki.raw.sign_jwt(&claims).unwrap();
    refused(
        "another grade than the record's",
        received(&pki, &lying, &pki.cert_der, &r),
    );
    let mut claims = samverka_adapter::credential::attestation_claims(
        &r,
        "higher-education",
        HOLDER,
        SALT,
        &valid_from,
    );
    claims["credentialSubject"]["identifier"][0]["plain"] = PERSON.into();
    let leaking = pki.raw.sign_jwt(&claims).unwrap();
    refused(
        "the person's number added",
        received(&pki, &leaking, &pki.cert_der, &r),
    );
    // Made long before it arrives (a replay).
    let old = time::OffsetDateTime::now_utc() - time::Duration::minutes(30);
    let old = old
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let stale = pki
        .raw
        .sign_jwt(&samverka_adapter::credential::attestation_claims(
            &r,
            "higher-education",
            HOLDER,
            SALT,
            &old,
        ))
        .unwrap();
    refused(
        "made 30 minutes ago",
        received(&pki, &stale, &pki.cert_der, &r),
    );
    // A revoked attestation certificate.
    let serial = x509_parser::parse_x509_certificate(&pki.cert_der)
        .unwrap()
        .1
        .raw_serial()
        .to_vec();
    let crl_pem = pki.ca.crl(&[serial], 2).unwrap();
    let crl = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).unwrap()
    };
    let roots = roots(&pki.ca);
    let revoked = check_received(&jws, &pki.cert_der, &r, &org(AGENCY), &expected(), |d| {
        check_chain(d, &roots, std::slice::from_ref(&crl), true, now_seconds())
    });
    refused("revoked certificate", revoked);
    // And the untouched attestation still passes.
    received(&pki, &jws, &pki.cert_der, &r).unwrap();
}

#[test]
fn a_verifier_refuses_a_merit_that_is_not_what_its_source_signed() {
    let pki = pki();
    let r = record("5");
    let jws = pki
        .attester
        .attest(&r, "higher-education", HOLDER, SALT)
        .unwrap();
    let claims = received(&pki, &jws, &pki.cert_der, &r).unwrap();
    let merit = embed(claims, &jws, &pki.cert_der);
    let roots = roots(&pki.ca);

    let mut regraded = merit.clone();
    regraded["credentialSubject"]["result"][0]["value"] = "3".into();
    assert!(check_embedded(&regraded, Some(&roots), now()).is_err());
    let mut renamed = merit.clone();
    renamed["issuer"]["name"] = "Another University".into();
    assert!(check_embedded(&renamed, Some(&roots), now()).is_err());
    let mut no_cert = merit.clone();
    no_cert[PROPERTY]["x5c"] = serde_json::json!([]);
    assert!(check_embedded(&no_cert, Some(&roots), now()).is_err());
    let other_ca = roots_of_new_ca();
    assert!(check_embedded(&merit, Some(&other_ca), now()).is_err());
    // In a passport issued an hour later (or earlier): not made during its
    // read.
    assert!(check_embedded(&merit, Some(&roots), now() + 3600).is_err());
    assert!(check_embedded(&merit, Some(&roots), now() - 3600).is_err());
    // Another merit's attestation under this merit.
    let mut other = record("4");
    other.record_id = "hed-1002".into();
    let other_jws = pki
        .attester
        .attest(&other, "higher-education", HOLDER, SALT)
        .unwrap();
    let mut swapped = merit.clone();
    swapped[PROPERTY]["jwt"] = other_jws.into();
    assert!(check_embedded(&swapped, Some(&roots), now()).is_err());
}

fn roots_of_new_ca() -> rustls::RootCertStore {
    roots(&DevCa::generate("another CA").unwrap())
}
