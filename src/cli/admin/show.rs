//! How `samverka admin` shows the registry's answers: for people, or as
//! JSON (`--json`).

use samverka_proto::admin::v1 as pb;
use serde_json::{Value, json};

use crate::cli::CliError;

fn kind_name(k: i32) -> &'static str {
    match pb::ItemKind::try_from(k) {
        Ok(pb::ItemKind::Agency) => "agencies",
        Ok(pb::ItemKind::Purpose) => "purposes",
        Ok(pb::ItemKind::AccessRule) => "access_rules",
        Ok(pb::ItemKind::AdapterRoute) => "adapters",
        Ok(pb::ItemKind::IdentityProvider) => "identity_providers",
        _ => "?",
    }
}

fn action_name(a: i32) -> &'static str {
    match pb::ChangeAction::try_from(a) {
        Ok(pb::ChangeAction::Added) => "added",
        Ok(pb::ChangeAction::Changed) => "changed",
        Ok(pb::ChangeAction::Removed) => "removed",
        _ => "?",
    }
}

/// What a change did, for people or as JSON.
pub(super) fn change_result(
    r: Option<pb::ChangeResult>,
    json_out: bool,
) -> Result<String, CliError> {
    let r = r.ok_or_else(|| CliError::Failed("the gateway sent no result".into()))?;
    let changes: Vec<(&str, &str, String)> = r
        .changes
        .iter()
        .map(|c| (action_name(c.action), kind_name(c.kind), c.key.clone()))
        .collect();
    if json_out {
        return Ok(json!({
            "dry_run": r.dry_run,
            "version_before": r.version_before,
            "version": r.version,
            "digest_before": r.digest_before,
            "digest": r.digest,
            "audit_id": r.audit_id,
            "changes": changes.iter().map(|(a, k, key)| json!({"action": a, "kind": k, "key": key})).collect::<Vec<Value>>(),
        })
        .to_string());
    }
    let mut out = String::new();
    for (action, kind, key) in &changes {
        let sign = match *action {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        out.push_str(&format!("{sign} {kind} {key}\n"));
    }
    out.push_str(&if changes.is_empty() {
        format!(
            "no change: the registry stays at version {}\n",
            r.version_before
        )
    } else if r.dry_run {
        format!(
            "dry run: would make version {} from {} (nothing written)\n",
            r.version, r.version_before
        )
    } else {
        format!(
            "version {} in force (was {}), audit entry {}\n",
            r.version, r.version_before, r.audit_id
        )
    });
    Ok(out)
}

pub(super) fn item_json(item: &pb::Item) -> Value {
    use pb::item::Item;
    match &item.item {
        Some(Item::Agency(a)) => json!({
            "kind": "agencies", "org_number": a.org_number, "name": a.name,
            "registrar": a.registrar.as_ref().map(|r| json!({
                "purposes": r.purposes, "self_grant": r.self_grant,
                "login_clients": r.login_clients.iter().map(|c| json!({"issuer": c.issuer, "client_id": c.client_id})).collect::<Vec<_>>(),
            })),
            "rate_per_second": a.rate_per_second, "burst": a.burst,
        }),
        Some(Item::Purpose(p)) => json!({
            "kind": "purposes", "code": p.code, "description": p.description,
            "description_sv": p.description_sv, "record_types": p.record_types,
        }),
        Some(Item::AccessRule(r)) => json!({
            "kind": "access_rules", "id": r.id, "agency": r.agency,
            "purposes": r.purposes, "record_types": r.record_types,
        }),
        Some(Item::AdapterRoute(a)) => json!({
            "kind": "adapters", "name": a.name, "address": a.address,
            "org_number": a.org_number, "record_types": a.record_types, "server_name": a.server_name,
        }),
        Some(Item::IdentityProvider(p)) => json!({
            "kind": "identity_providers", "issuer": p.issuer, "name": p.name,
        }),
        None => Value::Null,
    }
}

pub(super) fn item_text(item: &pb::Item) -> String {
    use pb::item::Item;
    match &item.item {
        Some(Item::Agency(a)) => format!(
            "agencies {}  {}{}",
            a.org_number,
            a.name,
            match &a.registrar {
                Some(r) => format!("  (registrar for {})", r.purposes.join(", ")),
                None => String::new(),
            }
        ),
        Some(Item::Purpose(p)) => format!(
            "purposes {}  {}  [{}]",
            p.code,
            p.description,
            p.record_types.join(", ")
        ),
        Some(Item::AccessRule(r)) => format!(
            "access_rules {}  agency {} for {}: {}",
            r.id,
            r.agency,
            r.purposes.join(", "),
            r.record_types.join(", ")
        ),
        Some(Item::AdapterRoute(a)) => format!(
            "adapters {}  {} ({}): {}",
            a.name,
            a.address,
            a.org_number,
            a.record_types.join(", ")
        ),
        Some(Item::IdentityProvider(p)) => format!("identity_providers {}  {}", p.issuer, p.name),
        None => String::new(),
    }
}
