//! The demo's sources: one per reference adapter, each an agency's
//! register of synthetic people.

use samverka_adapter::InMemoryRegister;

/// One of the demo's sources.
#[derive(Debug, Clone, Copy)]
pub struct DemoSource {
    /// The adapter's name, in the configuration and the PKI's file names.
    pub name: &'static str,
    /// The agency whose register it serves.
    pub agency: &'static str,
    /// The record types it answers for.
    pub record_types: &'static [&'static str],
    /// Loads its synthetic register (parses the fixture: call when the
    /// adapter starts, not to look something up).
    pub register: fn() -> InMemoryRegister,
}

/// The demo's sources, one per reference adapter.
pub const DEMO_SOURCES: [DemoSource; 4] = [
    DemoSource {
        name: "higher-education",
        agency: samverka_adapter_higher_education::DEMO_AGENCY,
        record_types: &samverka_adapter_higher_education::RECORD_TYPES,
        register: samverka_adapter_higher_education::demo,
    },
    DemoSource {
        name: "employment",
        agency: samverka_adapter_employment::DEMO_AGENCY,
        record_types: &samverka_adapter_employment::RECORD_TYPES,
        register: samverka_adapter_employment::demo,
    },
    DemoSource {
        name: "competence",
        agency: samverka_adapter_competence::DEMO_AGENCY,
        record_types: &samverka_adapter_competence::RECORD_TYPES,
        register: samverka_adapter_competence::demo,
    },
    DemoSource {
        name: "non-formal",
        agency: samverka_adapter_non_formal::DEMO_AGENCY,
        record_types: &samverka_adapter_non_formal::RECORD_TYPES,
        register: samverka_adapter_non_formal::demo,
    },
];
