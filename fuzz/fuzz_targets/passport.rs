//! `samverka passport verify` and `consent verify-receipt` on any text: a
//! verdict, never a panic (and nothing made up verifies).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use samverka_certs::dev::{CertRequest, DevCa};
use samverka_certs::{OrgNumber, Role};

fn gateway_cert() -> &'static str {
    static CERT: OnceLock<String> = OnceLock::new();
    CERT.get_or_init(|| {
        let ca = DevCa::generate("fuzz CA").unwrap();
        let org = OrgNumber::parse("2021999012").unwrap();
        ca.issue(&CertRequest::new(org, Role::Gateway, "gateway"))
            .unwrap()
            .cert_pem
    })
}

fuzz_target!(|text: &str| {
    assert!(samverka_gateway::credential::passport::verify(text, gateway_cert()).is_err());
    assert!(samverka_gateway::credential::receipt::verify(text, gateway_cert()).is_err());
});
