//! The samverka wire contract, generated from the `.proto` files in
//! `proto/proto/` at build time.
//!
//! # Layout
//! - [`v1`]: what agency systems call: `RecordExchange` (read records) and
//!   `Consents` (registrars record consents).
//! - [`adapter::v1`]: what the gateway calls on each adapter.
//! - [`admin::v1`]: what operators call: the `Registry`.
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

/// What operators call (`samverka.admin.v1`): the registry.
pub mod admin {
    /// Version 1 of the management API.
    #[allow(missing_docs, unreachable_pub)]
    pub mod v1 {
        tonic::include_proto!("samverka.admin.v1");
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

pub mod terms;

/// The encoded file descriptor set of every samverka proto, for gRPC server
/// reflection, with the files they import and the messages of error
/// details (`google/rpc/status.proto`, `google/rpc/error_details.proto`:
/// `google.rpc.ErrorInfo`, `BadRequest`, `RetryInfo`, ...), so that a
/// reflection client can decode a refusal's details.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/samverka_descriptor.bin"));

/// The source of every file [`FILE_DESCRIPTOR_SET`] describes, as
/// `(name, text)`, in its order (a file after the files it imports): the
/// name is the path it is imported by (`samverka/v1/exchange.proto`,
/// `google/rpc/status.proto`, `google/protobuf/timestamp.proto`) and the
/// text is the file in `proto/proto/` (the google ones vendored there
/// unchanged). Written into one directory, they compile with no other
/// include path (`samverka proto export`).
pub const PROTO_FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/proto_files.rs"));

/// Record types this version of the contract describes with a typed payload.
pub const KNOWN_RECORD_TYPES: &[&str] = &[
    "education.course_result",
    "education.degree",
    "education.upper_secondary_grade",
    "education.vocational_diploma",
    "employment.period",
    "competence.validated",
    "education.non_formal",
    "competence.self_declared",
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

/// `bytes` as lower-case hex digits, two a byte, in one allocation: trace
/// ids, digests and thumbprints across samverka.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// W3C trace context (`traceparent`), as samverka passes it along: from the
/// calling agency through the gateway into every adapter, so that one trace
/// id names one exchange everywhere (and in the audit entry).
pub mod trace {
    use super::hex;

    /// The metadata key of the W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// The response metadata key carrying the exchange's trace id back to
    /// the caller.
    pub const TRACE_ID_HEADER: &str = "x-samverka-trace-id";

    /// `value` (a trace context or id) as metadata that HTTP/2 sends
    /// never indexed: unique to one request, indexed it would take a place
    /// in the connection's header table (HPACK) and push out the headers
    /// that repeat on every request, which then go out in full again.
    /// (Its `Debug` shows `Sensitive`, not the value.)
    pub fn unindexed(
        value: &str,
    ) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
        let mut value: tonic::metadata::MetadataValue<_> = value.parse().ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// A trace context: a 32-hex-digit trace id, a 16-hex-digit parent
    /// span id and the flags.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TraceContext {
        /// The trace id (32 lower-case hex digits, not all zero).
        pub trace_id: String,
        /// The id of the span that made this call (16 hex digits).
        pub parent_id: String,
        /// Trace flags (`01`: sampled).
        pub flags: String,
    }

    fn is_hex(s: &str, len: usize) -> bool {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    }

    impl TraceContext {
        /// Parses a version-00 `traceparent`; `None` if it is not one.
        pub fn parse(value: &str) -> Option<TraceContext> {
            let mut parts = value.trim().split('-');
            let (version, trace_id, parent_id, flags) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some()
                || version != "00"
                || !is_hex(trace_id, 32)
                || !is_hex(parent_id, 16)
            {
                return None;
            }
            if flags.len() != 2 || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Some(TraceContext {
                trace_id: trace_id.to_owned(),
                parent_id: parent_id.to_owned(),
                flags: flags.to_owned(),
            })
        }

        /// A new trace, from 24 random bytes (16 for the trace id, 8 for
        /// the span id).
        pub fn new_root(random: [u8; 24]) -> TraceContext {
            let mut random = random;
            random[15] |= 1; // never all zero
            random[23] |= 1;
            TraceContext {
                trace_id: hex(&random[..16]),
                parent_id: hex(&random[16..]),
                flags: "01".to_owned(),
            }
        }

        /// The same trace, continued by a span with id `span_id` (8 bytes).
        pub fn child(&self, span_id: [u8; 8]) -> TraceContext {
            let mut span_id = span_id;
            span_id[7] |= 1;
            TraceContext {
                trace_id: self.trace_id.clone(),
                parent_id: hex(&span_id),
                flags: self.flags.clone(),
            }
        }

        /// The `traceparent` value (in one allocation, where `format!`
        /// made three).
        pub fn header(&self) -> String {
            [
                "00-",
                &self.trace_id,
                "-",
                &self.parent_id,
                "-",
                &self.flags,
            ]
            .concat()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_only_valid_version_00_contexts() {
            let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let c = TraceContext::parse(v).unwrap();
            assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(c.header(), v);
            for bad in [
                "",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            ] {
                assert_eq!(TraceContext::parse(bad), None, "{bad}");
            }
        }

        #[test]
        fn children_keep_the_trace_id() {
            let root = TraceContext::new_root([0; 24]);
            assert!(TraceContext::parse(&root.header()).is_some());
            let child = root.child([7; 8]);
            assert_eq!(child.trace_id, root.trace_id);
            assert_ne!(child.parent_id, root.parent_id);
            assert_eq!(child.parent_id, "0707070707070707");
        }

        #[test]
        fn trace_metadata_is_sent_never_indexed() {
            let root = TraceContext::new_root([5; 24]);
            let value = unindexed(&root.header()).unwrap();
            assert!(value.is_sensitive());
            assert_eq!(value.to_str().unwrap(), root.header());
            assert!(unindexed("not\nascii").is_none());
        }

        #[test]
        fn ids_are_lower_case_hex_of_the_random_bytes() {
            let mut random = [0u8; 24];
            random[..16].copy_from_slice(
                b"\x00\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\x10\x20\x30\x40\x50\x60",
            );
            random[16..].copy_from_slice(&[0xf0, 0x0f, 0, 0, 0, 0, 0, 0x02]);
            let root = TraceContext::new_root(random);
            assert_eq!(root.trace_id, "000123456789abcdeffe102030405061");
            assert_eq!(root.parent_id, "f00f000000000003");
        }
    }
}
