//! Tests of the development PKI.

use super::*;

fn revoked(dir: &Path) -> (Vec<Vec<u8>>, u64) {
    let text = fs::read_to_string(dir.join("crl.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).unwrap();
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&pem.contents).unwrap();
    (
        crl.iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect(),
        crl.crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap(),
    )
}

fn serial(cert_pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    pem.parse_x509()
        .unwrap()
        .tbs_certificate
        .raw_serial()
        .to_vec()
}

#[test]
fn revoking_adds_the_serial_to_a_new_signed_list() {
    let dir = tempfile::tempdir().unwrap();
    let org = |s: &str| OrgNumber::parse(s).unwrap();
    let spec = DevPkiSpec {
        gateway: org("2021999012"),
        agencies: vec![
            ("reader".into(), org("2021999020")),
            ("registrar".into(), org("2021999038")),
        ],
        adapters: vec![],
    };
    let files = write_dev_pki(dir.path(), &spec).unwrap();
    assert_eq!(revoked(dir.path()), (vec![], 1), "empty at first");

    let reader = fs::read_to_string(&files.agencies[0].1).unwrap();
    let registrar = fs::read_to_string(&files.agencies[1].1).unwrap();
    assert_eq!(revoke(dir.path(), &reader).unwrap(), 1);
    assert_eq!(revoke(dir.path(), &reader).unwrap(), 1, "no duplicate");
    assert_eq!(revoke(dir.path(), &registrar).unwrap(), 2);
    let (serials, number) = revoked(dir.path());
    assert_eq!(serials, vec![serial(&reader), serial(&registrar)]);
    assert_eq!(number, 4, "each list has a higher number");

    // Something that is not a certificate is refused, the list kept.
    assert!(revoke(dir.path(), "not a certificate").is_err());
    assert_eq!(revoked(dir.path()).0.len(), 2);

    // Refreshed: the same certificates revoked, a higher number, a
    // week's validity from now.
    assert_eq!(refresh_crl(dir.path()).unwrap(), 2);
    let (serials, number) = revoked(dir.path());
    assert_eq!(serials, vec![serial(&reader), serial(&registrar)]);
    assert_eq!(number, 5);
    let text = fs::read_to_string(dir.path().join("crl.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).unwrap();
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&pem.contents).unwrap();
    let left = crl.next_update().unwrap().timestamp() - OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (CRL_VALIDITY.whole_seconds() - 60..=CRL_VALIDITY.whole_seconds()).contains(&left),
        "{left}"
    );

    // With no list yet, an empty one.
    fs::remove_file(dir.path().join("crl.pem")).unwrap();
    assert_eq!(refresh_crl(dir.path()).unwrap(), 0);
    assert_eq!(revoked(dir.path()), (vec![], 2));
}

#[test]
fn a_crl_may_be_made_stale_but_not_backwards() {
    let ca = DevCa::generate("test CA").unwrap();
    let now = OffsetDateTime::now_utc();
    let stale = ca
        .crl_valid(&[], 1, now - Duration::days(8), now - Duration::days(1))
        .unwrap();
    assert!(stale.contains("BEGIN X509 CRL"));
    assert!(ca.crl_valid(&[], 1, now, now - Duration::days(1)).is_err());
}
