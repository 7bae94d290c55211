//! [`InMemoryRegister`]: an adapter over records held in memory.

use std::collections::HashMap;

use crate::records::Record;
use crate::{Adapter, AdapterError, Description, FetchQuery};

/// An adapter whose register is a set of records in memory, keyed by
/// person. The reference adapters serve their synthetic fixtures with it;
/// it also makes a quick fake register for an adapter's own tests.
#[derive(Debug, Clone)]
pub struct InMemoryRegister {
    description: Description,
    records: HashMap<String, Vec<Record>>,
}

impl InMemoryRegister {
    /// An empty register.
    pub fn new(description: Description) -> Self {
        InMemoryRegister {
            description,
            records: HashMap::new(),
        }
    }

    /// Adds a record, filed under its `subject_id`.
    pub fn insert(&mut self, record: Record) {
        self.records
            .entry(record.subject_id.clone())
            .or_default()
            .push(record);
    }

    /// How many records the register holds.
    pub fn len(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }

    /// Whether it holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Extend<Record> for InMemoryRegister {
    fn extend<T: IntoIterator<Item = Record>>(&mut self, records: T) {
        for r in records {
            self.insert(r);
        }
    }
}

impl Adapter for InMemoryRegister {
    fn describe(&self) -> Description {
        self.description.clone()
    }

    async fn fetch_records(&self, query: FetchQuery) -> Result<Vec<Record>, AdapterError> {
        Ok(self
            .records
            .get(query.subject.as_str())
            .into_iter()
            .flatten()
            .filter(|r| query.record_types.contains(&r.record_type))
            .cloned()
            .collect())
    }
}
