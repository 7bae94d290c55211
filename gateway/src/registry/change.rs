//! Changes to the registry: one item put or deleted, or a whole document
//! applied, and what changed between two versions, item by item.
//!
//! Every kind of item has a key: an agency its organisation number, a
//! purpose its code, an access rule its id, an adapter route its name, an
//! identity provider its issuer. Putting an item replaces the one with its
//! key, or adds it at the end.

use crate::config::{AccessRule, AdapterRoute, Agency, IdentityProvider, Purpose, RegistryTables};

/// The kinds of items, named as the document's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `agencies`
    Agency,
    /// `purposes`
    Purpose,
    /// `access_rules`
    AccessRule,
    /// `adapters`
    Adapter,
    /// `identity_providers`
    IdentityProvider,
}

impl Kind {
    /// Every kind, in the document's order.
    pub const ALL: [Kind; 5] = [
        Kind::Agency,
        Kind::Purpose,
        Kind::AccessRule,
        Kind::Adapter,
        Kind::IdentityProvider,
    ];

    /// The document's table name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agency => "agencies",
            Kind::Purpose => "purposes",
            Kind::AccessRule => "access_rules",
            Kind::Adapter => "adapters",
            Kind::IdentityProvider => "identity_providers",
        }
    }
}

/// One item of the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An agency.
    Agency(Agency),
    /// A purpose.
    Purpose(Purpose),
    /// An access rule.
    AccessRule(AccessRule),
    /// An adapter route.
    Adapter(AdapterRoute),
    /// An identity provider.
    IdentityProvider(IdentityProvider),
}

impl Item {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Item::Agency(_) => Kind::Agency,
            Item::Purpose(_) => Kind::Purpose,
            Item::AccessRule(_) => Kind::AccessRule,
            Item::Adapter(_) => Kind::Adapter,
            Item::IdentityProvider(_) => Kind::IdentityProvider,
        }
    }

    /// Its key within its kind.
    pub fn key(&self) -> String {
        match self {
            Item::Agency(a) => a.org_number.to_string(),
            Item::Purpose(p) => p.code.clone(),
            Item::AccessRule(r) => r.id.clone(),
            Item::Adapter(a) => a.name.clone(),
            Item::IdentityProvider(p) => p.issuer.clone(),
        }
    }
}

/// Every item of `tables` of `kind`.
pub fn items(tables: &RegistryTables, kind: Kind) -> Vec<Item> {
    match kind {
        Kind::Agency => tables.agencies.iter().cloned().map(Item::Agency).collect(),
        Kind::Purpose => tables.purposes.iter().cloned().map(Item::Purpose).collect(),
        Kind::AccessRule => tables
            .access_rules
            .iter()
            .cloned()
            .map(Item::AccessRule)
            .collect(),
        Kind::Adapter => tables.adapters.iter().cloned().map(Item::Adapter).collect(),
        Kind::IdentityProvider => tables
            .identity_providers
            .iter()
            .cloned()
            .map(Item::IdentityProvider)
            .collect(),
    }
}

/// Replaces the item with `item`'s key, or adds it at the end.
fn upsert<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
    match list.iter_mut().find(|x| same(x)) {
        Some(x) => *x = item,
        None => list.push(item),
    }
}

/// Puts `item` into `tables` (see the module). The result is not checked:
/// the caller checks the whole document.
pub fn put(tables: &mut RegistryTables, item: Item) {
    let key = item.key();
    match item {
        Item::Agency(a) => upsert(&mut tables.agencies, a, |x| x.org_number.as_str() == key),
        Item::Purpose(p) => upsert(&mut tables.purposes, p, |x| x.code == key),
        Item::AccessRule(r) => upsert(&mut tables.access_rules, r, |x| x.id == key),
        Item::Adapter(a) => upsert(&mut tables.adapters, a, |x| x.name == key),
        Item::IdentityProvider(p) => upsert(&mut tables.identity_providers, p, |x| x.issuer == key),
    }
}

/// Deletes the item of `kind` with `key`; `false` when there is none.
pub fn delete(tables: &mut RegistryTables, kind: Kind, key: &str) -> bool {
    fn remove<T>(list: &mut Vec<T>, same: impl Fn(&T) -> bool) -> bool {
        let before = list.len();
        list.retain(|x| !same(x));
        list.len() != before
    }
    match kind {
        Kind::Agency => remove(&mut tables.agencies, |x| x.org_number.as_str() == key),
        Kind::Purpose => remove(&mut tables.purposes, |x| x.code == key),
        Kind::AccessRule => remove(&mut tables.access_rules, |x| x.id == key),
        Kind::Adapter => remove(&mut tables.adapters, |x| x.name == key),
        Kind::IdentityProvider => remove(&mut tables.identity_providers, |x| x.issuer == key),
    }
}

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// It is new.
    Added,
    /// It is there before and after, different.
    Changed,
    /// It is gone.
    Removed,
}

impl Action {
    /// `added`, `changed` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Changed => "changed",
            Action::Removed => "removed",
        }
    }
}

/// One item's change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Its kind.
    pub kind: Kind,
    /// Its key.
    pub key: String,
    /// What happened to it.
    pub action: Action,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.action.as_str(),
            self.kind.as_str(),
            self.key
        )
    }
}

/// Item by item, what changed from `before` to `after`, by kind, in each
/// kind in the order of `after` (then what was removed).
pub fn diff(before: &RegistryTables, after: &RegistryTables) -> Vec<Change> {
    let mut changes = Vec::new();
    for kind in Kind::ALL {
        let old = items(before, kind);
        let new = items(after, kind);
        for item in &new {
            let key = item.key();
            let action = match old.iter().find(|o| o.key() == key) {
                None => Action::Added,
                Some(o) if o != item => Action::Changed,
                Some(_) => continue,
            };
            changes.push(Change { kind, key, action });
        }
        for o in old {
            let key = o.key();
            if !new.iter().any(|n| n.key() == key) {
                changes.push(Change {
                    kind,
                    key,
                    action: Action::Removed,
                });
            }
        }
    }
    changes
}

/// The changes for people, one per line; `no change` when there is none.
pub fn summary(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no change".into();
    }
    changes
        .iter()
        .map(Change::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use samverka_certs::OrgNumber;

    fn rule(id: &str, purpose: &str) -> AccessRule {
        AccessRule {
            id: id.into(),
            agency: OrgNumber::parse("2021999020").unwrap(),
            purposes: vec![purpose.into()],
            record_types: vec!["employment.period".into()],
        }
    }

    #[test]
    fn put_replaces_by_key_delete_removes_and_diff_names_each() {
        let before = RegistryTables {
            access_rules: vec![rule("a", "p"), rule("b", "p")],
            ..Default::default()
        };
        let mut after = before.clone();
        put(&mut after, Item::AccessRule(rule("a", "q")));
        put(&mut after, Item::AccessRule(rule("c", "p")));
        assert!(delete(&mut after, Kind::AccessRule, "b"));
        assert!(!delete(&mut after, Kind::AccessRule, "b"), "gone already");
        assert_eq!(after.access_rules.len(), 2);
        let changes = diff(&before, &after);
        assert_eq!(
            summary(&changes),
            "changed access_rules a\nadded access_rules c\nremoved access_rules b"
        );
        assert!(diff(&after, &after).is_empty());
        assert_eq!(summary(&[]), "no change");
    }
}
