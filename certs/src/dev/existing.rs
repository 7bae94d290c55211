//! A development PKI already written: found again, so that a demo run
//! again in the same directory keeps its keys.

use std::path::Path;

use super::{DevPkiFiles, DevPkiSpec};

/// The files [`write_dev_pki`] would write into `dir` for `spec`, if they
/// are all there already: so that a demo run again in the same directory
/// keeps its CA and gateway key (and with them everything they signed).
pub fn existing_dev_pki(dir: &Path, spec: &DevPkiSpec) -> Option<DevPkiFiles> {
    let pair = |stem: &str| {
        (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        )
    };
    let files = DevPkiFiles {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        crl: dir.join("crl.pem"),
        gateway: pair("gateway"),
        gateway_client: pair("gateway-client"),
        operator: pair("operator"),
        agencies: spec
            .agencies
            .iter()
            .map(|(name, _)| {
                let (c, k) = pair(&format!("agency-{name}"));
                (name.clone(), c, k)
            })
            .collect(),
        adapters: spec
            .adapters
            .iter()
            .map(|(name, _)| {
                let (c, k) = pair(&format!("adapter-{name}"));
                (name.clone(), c, k)
            })
            .collect(),
        attesters: spec
            .adapters
            .iter()
            .map(|(name, _)| {
                let (c, k) = pair(&format!("adapter-{name}-attester"));
                (name.clone(), c, k)
            })
            .collect(),
        dev_idp: (dir.join("dev-idp.pub.pem"), dir.join("dev-idp.key")),
        assertion_keys: spec
            .agencies
            .iter()
            .map(|(name, _)| {
                let stem = format!("agency-{name}-assertion");
                (
                    name.clone(),
                    dir.join(format!("{stem}.pub.pem")),
                    dir.join(format!("{stem}.key")),
                )
            })
            .collect(),
    };
    let mut all = vec![
        &files.ca_cert,
        &files.ca_key,
        &files.gateway.0,
        &files.gateway.1,
    ];
    all.extend([&files.gateway_client.0, &files.gateway_client.1]);
    all.extend([&files.operator.0, &files.operator.1]);
    for (_, c, k) in files
        .agencies
        .iter()
        .chain(&files.adapters)
        .chain(&files.attesters)
        .chain(&files.assertion_keys)
    {
        all.extend([c, k]);
    }
    all.extend([&files.dev_idp.0, &files.dev_idp.1]);
    all.iter().all(|p| p.is_file()).then_some(files)
}
