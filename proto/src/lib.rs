//! The samverka wire contract, generated from the `.proto` files in
//! `proto/proto/` at build time.
//!
//! # Layout
//! - [`v1`]: what agency systems call: `RecordExchange` (read records) and
//!   `Consents` (registrars record consents).
//! - [`adapter::v1`]: what the gateway calls on each adapter.
//! - [`records::v1`]: the record envelope and typed payloads shared by both.
//!
//! The `.proto` files are the reference for agency developers in any
//! language; their comments say what each field means.

/// Messages and services agency systems call (`samverka.v1`).
#[allow(missing_docs, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("samverka.v1");
}

/// The adapter contract (`samverka.adapter.v1`).
pub mod adapter {
    /// Version 1 of the adapter contract.
    #[allow(missing_docs, unreachable_pub)]
    pub mod v1 {
        tonic::include_proto!("samverka.adapter.v1");
    }
}

/// Records and their typed payloads (`samverka.records.v1`).
pub mod records {
    /// Version 1 of the record messages.
    #[allow(missing_docs, unreachable_pub)]
    pub mod v1 {
        tonic::include_proto!("samverka.records.v1");
    }
}

/// The encoded file descriptor set of every samverka proto, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/samverka_descriptor.bin"));

/// Record types this version of the contract describes with a typed payload.
pub const KNOWN_RECORD_TYPES: &[&str] = &[
    "education.course_result",
    "education.degree",
    "education.upper_secondary_grade",
    "education.vocational_diploma",
    "employment.period",
    "competence.validated",
];

/// Whether `s` has the shape of a record type: two or more dot-separated
/// lower-case words (letters, digits, `_`), e.g. `education.course_result`.
pub fn is_record_type_name(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        let mut bytes = part.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        if !first_ok || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return false;
        }
    }
    parts >= 2
}
