//! A samverka adapter, ready to be filled in: replace the example register
//! in [`Register`] with calls to yours. `docs/writing-an-adapter.md` walks
//! through it; `tests/conformance.rs` runs the conformance kit against it.
//!
//! # Layout
//! - [`Register`]: the [`Adapter`] implementation (the two methods to fill
//!   in).
//! - `main.rs`: serves it as `SAMVERKA_ADAPTER_*` or
//!   `SAMVERKA_ADAPTER_CONFIG` say.

use samverka_adapter::records::{Record, VocationalDiploma, record::Payload};
use samverka_adapter::{Adapter, AdapterError, Description, FetchQuery};

/// Your agency's organisation number (this one is synthetic).
pub const AGENCY: &str = "2021999095";
/// The record types your register can answer for.
pub const RECORD_TYPES: [&str; 1] = ["education.vocational_diploma"];

/// The register. Keep here whatever your queries need: a database pool, an
/// HTTP client for the register's API, credentials.
#[derive(Debug, Clone, Default)]
pub struct Register;

impl Adapter for Register {
    fn describe(&self) -> Description {
        Description::new(
            AGENCY,
            "Vocational diplomas (template example)",
            RECORD_TYPES,
        )
    }

    async fn fetch_records(&self, query: FetchQuery) -> Result<Vec<Record>, AdapterError> {
        // Replace with a query of your register. An unknown person is an
        // empty answer; a register that cannot be reached is
        // AdapterError::Unavailable.
        if query.subject.as_str() != "199003142388" {
            return Ok(Vec::new());
        }
        Ok(vec![Record {
            record_type: "education.vocational_diploma".into(),
            subject_id: query.subject.to_string(),
            record_id: "yh-1".into(),
            payload: Some(Payload::VocationalDiploma(VocationalDiploma {
                programme_name: "Automationstekniker".into(),
                yh_credits: 400,
                diploma_kind: "kvalificerad yrkeshogskoleexamen".into(),
                eqf_level: 5,
                sun_field: "523".into(),
                issue_date: "2015-06-05".into(),
                provider_org_number: AGENCY.into(),
                provider_name: "Demo yrkeshogskola (synthetic)".into(),
            })),
            ..Default::default()
        }])
    }
}
