//! The kit's `attests` check: an adapter with its agency's attestation key
//! attests every record of a passport read, in a form the gateway accepts.

use tonic::Code;

use super::clients::fetch;
use super::{CheckResult, KitConfig, fail, pass};

/// The `attests` check (see the table above).
pub(super) async fn check(
    gw: &mut samverka_proto::adapter::v1::adapter_client::AdapterClient<tonic::transport::Channel>,
    cfg: &KitConfig,
    offered: &[String],
    agency: &str,
) -> CheckResult {
    const NAME: &str = "attests";
    const HOLDER: &str = "urn:uuid:00000000-0000-4000-8000-00000000c0de";
    const SALT: &str = "5a175a175a175a175a175a175a175a17";
    let asked = |salt: &str| {
        let mut request = fetch(&cfg.known_subject, offered);
        request.get_mut().attest = Some(samverka_proto::adapter::v1::AttestFor {
            holder_id: HOLDER.into(),
            holder_salt: salt.into(),
        });
        request
    };
    let answer = match gw.fetch_records(asked(SALT)).await {
        Ok(a) => a.into_inner(),
        Err(s) => return fail(NAME, format!("{:?} {}", s.code(), s.message())),
    };
    if answer.attestations.is_empty() && answer.attestation_certificate.is_empty() {
        return pass(
            NAME,
            "no attestations (no attestation key): its records reach passports as relayed by \
             the gateway, and not at all where gateway.unattested_records = \"refuse\"",
        );
    }
    if answer.attestations.len() != answer.records.len() {
        return fail(
            NAME,
            format!(
                "{} attestation(s) for {} record(s)",
                answer.attestations.len(),
                answer.records.len()
            ),
        );
    }
    let cert = &answer.attestation_certificate;
    if let Err(e) = crate::credential::verify::attester_of(cert).and_then(|a| {
        (a.as_str() == agency).then_some(()).ok_or(format!(
            "the attestation certificate names {a}, the adapter {agency}"
        ))
    }) {
        return fail(NAME, e);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let chained = crate::root_store(cfg.ca_pem.as_bytes())
        .and_then(|roots| crate::credential::verify::check_chain(cert, &roots, &[], false, now));
    if let Err(e) = chained {
        return fail(NAME, e);
    }
    for (record, jws) in answer.records.iter().zip(&answer.attestations) {
        match crate::credential::verify::verify_attestation(jws, cert, record, HOLDER, SALT) {
            Err(e) => return fail(NAME, format!("record {:?}: {e}", record.record_id)),
            // The gateway still takes an older SDK's rendering without the
            // merit's kind; an adapter built now must say it.
            Ok(claims) if claims.get("meritKind").is_none() => {
                return fail(
                    NAME,
                    format!(
                        "record {:?}: the attestation does not say the merit's kind (meritKind); rebuild with this SDK",
                        record.record_id
                    ),
                );
            }
            Ok(_) => {}
        }
    }
    match gw.fetch_records(asked("abcd")).await {
        Err(s) if s.code() == Code::InvalidArgument => pass(
            NAME,
            format!(
                "{} record(s) attested by agency {agency}; a short salt refused",
                answer.records.len()
            ),
        ),
        Err(s) => fail(
            NAME,
            format!("a short holder salt: {:?} {}", s.code(), s.message()),
        ),
        Ok(_) => fail(
            NAME,
            "a holder salt of 4 digits was accepted: the attestation would reveal the person's number",
        ),
    }
}
