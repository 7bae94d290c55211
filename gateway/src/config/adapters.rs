//! The `[[adapters]]` table: the routing table from record types to the
//! adapters serving them.

use samverka_certs::OrgNumber;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::fields::{org_number, record_types};
use samverka_adapter::credential::merit::SELF_DECLARED;

/// One adapter in the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRoute {
    /// A short name, e.g. `higher-education`.
    pub name: String,
    /// `host:port` of the adapter's mTLS endpoint.
    pub address: String,
    /// The agency whose register it serves; records from it carry this.
    pub org_number: OrgNumber,
    /// The record types routed to it.
    pub record_types: Vec<String>,
    /// The name to expect in its server certificate (default: the host of
    /// `address`).
    pub server_name: String,
}

/// One `[[adapters]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdapter {
    name: String,
    address: String,
    #[serde(deserialize_with = "org_number")]
    org_number: OrgNumber,
    #[serde(deserialize_with = "record_types")]
    record_types: Vec<String>,
    server_name: Option<String>,
}

/// Checks that names are unique and addresses are `host:port`, and takes
/// the server name from the host (brackets of an IPv6 address removed)
/// when none is given. `text` is the whole file, to turn spans into lines.
pub(super) fn parse(
    text: &str,
    raw: Vec<Spanned<RawAdapter>>,
) -> Result<Vec<AdapterRoute>, ConfigError> {
    let mut adapters: Vec<AdapterRoute> = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let span = a.span();
        let a = a.into_inner();
        if adapters.iter().any(|b| b.name == a.name) {
            return Err(ConfigError::at(
                text,
                span,
                format!("adapters[{i}].name"),
                format!("{:?} is used twice", a.name),
            ));
        }
        if a.record_types.iter().any(|t| t == SELF_DECLARED) {
            return Err(ConfigError::at(
                text,
                span,
                format!("adapters[{i}].record_types"),
                format!(
                    "{SELF_DECLARED} is kept by the gateway (people declare it themselves); no register serves it"
                ),
            ));
        }
        let Some((host, port)) = a.address.rsplit_once(':') else {
            return Err(ConfigError::at(
                text,
                span,
                format!("adapters[{i}].address"),
                "expected host:port".into(),
            ));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(ConfigError::at(
                text,
                span,
                format!("adapters[{i}].address"),
                "expected host:port".into(),
            ));
        }
        let server_name = a.server_name.unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        adapters.push(AdapterRoute {
            name: a.name,
            address: a.address,
            org_number: a.org_number,
            record_types: a.record_types,
            server_name,
        });
    }
    Ok(adapters)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table alone, as `Config::from_toml` reads it.
    #[derive(Deserialize)]
    struct Table {
        adapters: Vec<Spanned<RawAdapter>>,
    }

    fn adapter(address: &str, extra: &str) -> String {
        format!(
            "[[adapters]]\nname = \"employment\"\naddress = \"{address}\"\n\
             org_number = \"2021999053\"\nrecord_types = [\"employment.period\"]\n{extra}"
        )
    }

    fn parse_text(text: &str) -> Result<Vec<AdapterRoute>, ConfigError> {
        parse(text, toml::from_str::<Table>(text).unwrap().adapters)
    }

    #[test]
    fn the_server_name_defaults_to_the_host() {
        let a = parse_text(&adapter("[::1]:50062", "")).unwrap();
        assert_eq!(a[0].server_name, "::1");
        assert_eq!(a[0].address, "[::1]:50062");
        let a = parse_text(&adapter("10.0.0.1:50062", "server_name = \"emp.internal\"")).unwrap();
        assert_eq!(a[0].server_name, "emp.internal");
    }

    #[test]
    fn no_register_may_serve_self_declared_merits() {
        let text = "[[adapters]]\nname = \"r\"\naddress = \"r:1\"\norg_number = \"2021999053\"\n\
                    record_types = [\"employment.period\", \"competence.self_declared\"]\n";
        let e = parse_text(text).unwrap_err();
        assert_eq!(e.key, "adapters[0].record_types");
        assert!(e.reason.contains("kept by the gateway"), "{e}");
    }

    #[test]
    fn bad_addresses_and_reused_names_are_refused() {
        for address in ["127.0.0.1", ":50062", "host:99999"] {
            let e = parse_text(&adapter(address, "")).unwrap_err();
            assert_eq!(e.to_string(), "1: adapters[0].address: expected host:port");
        }
        let twice = format!("{}\n{}", adapter("a:1", ""), adapter("b:2", ""));
        let e = parse_text(&twice).unwrap_err();
        assert_eq!(e.key, "adapters[1].name");
        assert_eq!(e.reason, "\"employment\" is used twice");
    }
}
