//! A samverka identity from any bytes offered as a certificate: read or
//! refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    let _ = samverka_certs::CertIdentity::from_der(der);
});
