//! Registry items between the wire (`samverka.admin.v1`) and the
//! registry's own types. What the wire sends is checked here only as far
//! as the types need (organisation numbers); everything else is checked
//! with the whole registry, by the configuration's parsers.

use samverka_certs::OrgNumber;
use samverka_proto::admin::v1 as pb;

use crate::config::{
    AccessRule, AdapterRoute, Agency, IdentityProvider, KeySource, LoginClient, Purpose, Registrar,
};
use crate::error::{GatewayError, Reason};
use crate::registry::change::{Action, Change, Item, Kind};

fn org(field: &str, s: &str) -> Result<OrgNumber, GatewayError> {
    OrgNumber::parse(s)
        .map_err(|e| GatewayError::invalid(Reason::RegistryInvalid, field, format!("{field}: {e}")))
}

/// The kind a request names; `None` for unspecified.
pub(super) fn kind(k: i32) -> Result<Option<Kind>, GatewayError> {
    Ok(Some(match pb::ItemKind::try_from(k) {
        Ok(pb::ItemKind::Unspecified) => return Ok(None),
        Ok(pb::ItemKind::Agency) => Kind::Agency,
        Ok(pb::ItemKind::Purpose) => Kind::Purpose,
        Ok(pb::ItemKind::AccessRule) => Kind::AccessRule,
        Ok(pb::ItemKind::AdapterRoute) => Kind::Adapter,
        Ok(pb::ItemKind::IdentityProvider) => Kind::IdentityProvider,
        Err(_) => {
            return Err(GatewayError::invalid(
                Reason::FieldInvalid,
                "kind",
                "kind is not a known item kind",
            ));
        }
    }))
}

fn kind_to_wire(k: Kind) -> pb::ItemKind {
    match k {
        Kind::Agency => pb::ItemKind::Agency,
        Kind::Purpose => pb::ItemKind::Purpose,
        Kind::AccessRule => pb::ItemKind::AccessRule,
        Kind::Adapter => pb::ItemKind::AdapterRoute,
        Kind::IdentityProvider => pb::ItemKind::IdentityProvider,
    }
}

/// A change on the wire.
pub(super) fn change_to_wire(c: &Change) -> pb::Change {
    pb::Change {
        kind: kind_to_wire(c.kind) as i32,
        key: c.key.clone(),
        action: match c.action {
            Action::Added => pb::ChangeAction::Added,
            Action::Changed => pb::ChangeAction::Changed,
            Action::Removed => pb::ChangeAction::Removed,
        } as i32,
    }
}

/// The item a PutItem request carries.
pub(super) fn item_from_wire(item: Option<pb::Item>) -> Result<Item, GatewayError> {
    let missing = || GatewayError::invalid(Reason::FieldMissing, "item", "item is required");
    Ok(match item.and_then(|i| i.item).ok_or_else(missing)? {
        pb::item::Item::Agency(a) => Item::Agency(Agency {
            org_number: org("item.agency.org_number", &a.org_number)?,
            name: a.name,
            registrar: a.registrar.map(|r| Registrar {
                purposes: r.purposes,
                self_grant: r.self_grant,
                assertion_keys: KeySource::Inline(r.assertion_key_set),
                login_clients: r
                    .login_clients
                    .into_iter()
                    .map(|c| LoginClient {
                        issuer: c.issuer,
                        client_id: c.client_id,
                    })
                    .collect(),
            }),
            rate_per_second: a.rate_per_second,
            burst: a.burst,
        }),
        pb::item::Item::Purpose(p) => Item::Purpose(Purpose {
            code: p.code,
            description: p.description,
            description_sv: Some(p.description_sv).filter(|s| !s.is_empty()),
            record_types: p.record_types,
        }),
        pb::item::Item::AccessRule(r) => {
            let agency = org("item.access_rule.agency", &r.agency)?;
            let id = if r.id.is_empty() {
                format!("{agency}/{}", r.purposes.join("+"))
            } else {
                r.id
            };
            Item::AccessRule(AccessRule {
                id,
                agency,
                purposes: r.purposes,
                record_types: r.record_types,
            })
        }
        pb::item::Item::AdapterRoute(a) => Item::Adapter(AdapterRoute {
            org_number: org("item.adapter_route.org_number", &a.org_number)?,
            name: a.name,
            address: a.address,
            record_types: a.record_types,
            server_name: a.server_name,
        }),
        pb::item::Item::IdentityProvider(p) => Item::IdentityProvider(IdentityProvider {
            issuer: p.issuer,
            name: p.name,
            keys: KeySource::Inline(p.key_set),
        }),
    })
}

/// An item on the wire; key sets in files are read.
pub(super) fn item_to_wire(item: Item) -> pb::Item {
    let text = |k: &KeySource| k.text().unwrap_or_default();
    let item = match item {
        Item::Agency(a) => pb::item::Item::Agency(pb::Agency {
            org_number: a.org_number.to_string(),
            name: a.name,
            registrar: a.registrar.map(|r| pb::Registrar {
                purposes: r.purposes,
                self_grant: r.self_grant,
                assertion_key_set: text(&r.assertion_keys),
                login_clients: r
                    .login_clients
                    .into_iter()
                    .map(|c| pb::LoginClient {
                        issuer: c.issuer,
                        client_id: c.client_id,
                    })
                    .collect(),
            }),
            rate_per_second: a.rate_per_second,
            burst: a.burst,
        }),
        Item::Purpose(p) => pb::item::Item::Purpose(pb::Purpose {
            code: p.code,
            description: p.description,
            description_sv: p.description_sv.unwrap_or_default(),
            record_types: p.record_types,
        }),
        Item::AccessRule(r) => pb::item::Item::AccessRule(pb::AccessRule {
            id: r.id,
            agency: r.agency.to_string(),
            purposes: r.purposes,
            record_types: r.record_types,
        }),
        Item::Adapter(a) => pb::item::Item::AdapterRoute(pb::AdapterRoute {
            name: a.name,
            address: a.address,
            org_number: a.org_number.to_string(),
            record_types: a.record_types,
            server_name: a.server_name,
        }),
        Item::IdentityProvider(p) => pb::item::Item::IdentityProvider(pb::IdentityProvider {
            key_set: text(&p.keys),
            issuer: p.issuer,
            name: p.name,
        }),
    };
    pb::Item { item: Some(item) }
}

/// A version's facts on the wire.
pub(super) fn version_to_wire(v: &crate::store::registry::RegistryVersion) -> pb::RegistryVersion {
    pb::RegistryVersion {
        version: v.version,
        digest: v.digest.clone(),
        changed_at: Some(crate::time::to_timestamp(v.changed_at_ms)),
        changed_by: v.changed_by.clone(),
        summary: v.summary.clone(),
    }
}
