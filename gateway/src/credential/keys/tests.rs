//! The key set: its JSON form, each key's validity, the CA check, and
//! the slot refusing a retired key.

use super::*;
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};

fn cert() -> String {
    let ca = DevCa::generate("test ca").unwrap();
    let org = OrgNumber::parse("2021999012").unwrap();
    ca.issue(&CertRequest::new(org, Role::Gateway, "gw"))
        .unwrap()
        .cert_pem
}

fn record(cert_pem: &str, from_ms: i64, retired: Option<(i64, &str)>) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: cert_thumbprint(cert_pem).unwrap(),
        cert_pem: cert_pem.to_owned(),
        in_use_from_ms: from_ms,
        retired_at_ms: retired.map(|r| r.0),
        retire_reason: retired.map(|r| r.1.to_owned()),
    }
}

#[test]
fn a_key_set_round_trips_and_says_when_each_key_was_valid() {
    let (a, b, c) = (cert(), cert(), cert());
    let set = KeySet::from_records(&[
        record(&a, 1_000_000, Some((2_000_000, "superseded"))),
        record(&b, 2_000_000, None),
        record(&c, 500_000, Some((3_000_000, "compromised"))),
    ])
    .unwrap();
    let text = set.to_json().to_string();
    let back = KeySet::parse(&text).unwrap();
    assert_eq!(back, set);
    let [old, new, leaked] = &back.keys[..] else {
        panic!("three keys")
    };
    assert_eq!(old.valid_at(1_500), Ok(()));
    assert!(
        old.valid_at(999)
            .unwrap_err()
            .contains("before the key was in use")
    );
    assert_eq!(old.valid_at(2_000), Ok(()), "the second it was retired in");
    assert!(
        old.valid_at(2_001)
            .unwrap_err()
            .contains("after the key was retired")
    );
    assert_eq!(new.valid_at(9_999_999), Ok(()));
    assert!(leaked.valid_at(1_000).unwrap_err().contains("compromised"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["keys"][0]["exp"], 2_001);
    assert_eq!(doc["keys"][1].get("exp"), None);
    assert_eq!(doc["keys"][2]["revoked"]["reason"], "keyCompromise");
}

#[test]
fn a_key_set_whose_key_is_not_its_certificates_is_refused() {
    let (a, b) = (cert(), cert());
    let set = KeySet::from_records(&[record(&a, 0, None)]).unwrap();
    let mut doc = set.to_json();
    let other = KeySet::from_records(&[record(&b, 0, None)])
        .unwrap()
        .to_json();
    // Another key under the certificate of the first.
    doc["keys"][0]["x"] = other["keys"][0]["x"].clone();
    assert!(KeySet::parse(&doc.to_string()).is_err());
    // The right key, but a kid that names another certificate.
    let mut doc = set.to_json();
    doc["keys"][0]["kid"] = other["keys"][0]["kid"].clone();
    assert!(KeySet::parse(&doc.to_string()).is_err());
    // No time it was in use from; a retirement that is not a number.
    let mut doc = set.to_json();
    doc["keys"][0].as_object_mut().unwrap().remove("nbf");
    assert!(KeySet::parse(&doc.to_string()).is_err());
    let mut doc = set.to_json();
    doc["keys"][0]["exp"] = json!("1000");
    assert!(KeySet::parse(&doc.to_string()).is_err());
    // The same key twice.
    let mut doc = set.to_json();
    let twice = doc["keys"][0].clone();
    doc["keys"].as_array_mut().unwrap().push(twice);
    assert!(KeySet::parse(&doc.to_string()).is_err());
}

#[test]
fn a_key_set_is_checked_against_the_ca_that_issued_its_certificates() {
    let ca = DevCa::generate("federation").unwrap();
    let other = DevCa::generate("elsewhere").unwrap();
    let org = OrgNumber::parse("2021999012").unwrap();
    let ours = ca
        .issue(&CertRequest::new(org.clone(), Role::Gateway, "gw"))
        .unwrap();
    let theirs = other
        .issue(&CertRequest::new(org, Role::Gateway, "gw"))
        .unwrap();
    let set = KeySet::from_records(&[record(&ours.cert_pem, 0, None)]).unwrap();
    assert_eq!(set.check_issued_by(ca.cert_pem()), Ok(()));
    assert!(set.check_issued_by(other.cert_pem()).is_err());
    let mixed = KeySet::from_records(&[
        record(&ours.cert_pem, 0, None),
        record(&theirs.cert_pem, 0, None),
    ])
    .unwrap();
    let e = mixed.check_issued_by(ca.cert_pem()).unwrap_err();
    assert!(e.0.contains("not issued by the given CA"), "{e}");
    // The federation's CA issued it, but to an agency, not a gateway.
    let agency = ca
        .issue(&CertRequest::new(
            OrgNumber::parse("2021999020").unwrap(),
            Role::Agency,
            "agency",
        ))
        .unwrap();
    let set = KeySet::from_records(&[record(&agency.cert_pem, 0, None)]).unwrap();
    let e = set.check_issued_by(ca.cert_pem()).unwrap_err();
    assert!(e.0.contains("not a samverka gateway's"), "{e}");
}

#[test]
fn a_reload_does_not_put_a_retired_key_in_use() {
    use crate::credential::signing::{JwsSigner, SignerSlot};
    let ca = DevCa::generate("test ca").unwrap();
    let org = OrgNumber::parse("2021999012").unwrap();
    let a = ca
        .issue(&CertRequest::new(org.clone(), Role::Gateway, "gw"))
        .unwrap();
    let b = ca
        .issue(&CertRequest::new(org, Role::Gateway, "gw"))
        .unwrap();
    let signer = |c: &samverka_certs::dev::IssuedCert| {
        JwsSigner::from_pem(&c.cert_pem, &c.key_pem, "2021999012").unwrap()
    };
    let slot = SignerSlot::new(signer(&a));
    slot.set_retired(vec![cert_thumbprint(&b.cert_pem).unwrap()]);
    let e = slot.replace(signer(&b)).unwrap_err();
    assert!(e.0.contains("was retired"), "{e}");
    assert_eq!(slot.current().kid(), cert_thumbprint(&a.cert_pem).unwrap());
    slot.set_retired(vec![]);
    slot.replace(signer(&b)).unwrap();
    assert_eq!(slot.current().kid(), cert_thumbprint(&b.cert_pem).unwrap());
    assert_eq!(slot.take_put_in_use().len(), 1, "queued for the recorder");
}

#[test]
fn a_key_compromised_under_one_certificate_is_invalid_under_all() {
    // One key, renewed into a second certificate: the first revoked as
    // compromised, the second never retired.
    let ca = DevCa::generate("test ca").unwrap();
    let org = OrgNumber::parse("2021999012").unwrap();
    let first = ca
        .issue(&CertRequest::new(org.clone(), Role::Gateway, "gw"))
        .unwrap();
    let renewed = ca
        .issue_for_key(&CertRequest::new(org, Role::Gateway, "gw"), &first.key_pem)
        .unwrap();
    let set = KeySet::from_records(&[
        record(&first.cert_pem, 0, Some((5_000, "compromised"))),
        record(&renewed.cert_pem, 0, None),
    ])
    .unwrap();
    let trust = Trust::Keys(set);
    let candidates = trust.by_jwk(&Jwk::of_cert(&renewed.cert_pem).unwrap());
    assert_eq!(candidates.len(), 2);
    let verdict = valid_at(&candidates, 1).unwrap();
    assert!(verdict.unwrap_err().contains("compromised"));
    // A time no calendar holds is reported, not a panic.
    let set =
        KeySet::from_records(&[record(&first.cert_pem, 0, Some((5_000, "superseded")))]).unwrap();
    assert!(
        set.keys[0]
            .valid_at(i64::MAX)
            .unwrap_err()
            .contains("Unix seconds")
    );
    assert!(set.keys[0].valid_at(i64::MIN).is_err());
}
