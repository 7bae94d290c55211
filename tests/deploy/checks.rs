//! What must hold of the rendered Kubernetes material, beyond the API
//! schemas: the objects agree with each other (Services, probes, network
//! policy and ServiceMonitor name ports the pods have; the configuration
//! listens where the container ports say and reads files from where the
//! volumes are mounted), and the gateway runs as the issue asks (two
//! replicas or more, unprivileged, read-only, probes, resources, spread,
//! a disruption budget, the alert rules of deploy/prometheus).

use std::path::Path;

use samverka_gateway::config::Config;
use serde_json::Value;

use super::tools::{object, root, text, yaml_documents};

/// Kinds that come with an operator's CRDs: kubernetes-validate has no
/// schema for them, so they are checked here only.
pub(crate) const CUSTOM_KINDS: [&str; 3] = ["ServiceMonitor", "PrometheusRule", "Cluster"];

/// Whether `labels` has every pair of `selector`.
pub(crate) fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The gateway container of the rendered Deployment samverka-gateway.
pub(crate) fn gateway_container(objects: &[Value]) -> &Value {
    &object(objects, "Deployment", "samverka-gateway")["spec"]["template"]["spec"]["containers"][0]
}

/// The port number the container names `name`.
pub(crate) fn container_port(container: &Value, name: &str) -> u16 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}")) as u16
}

/// The gateway's configuration as rendered into its ConfigMap, parsed,
/// with its text.
pub(crate) fn gateway_config(objects: &[Value]) -> (Config, String) {
    let deployment = object(objects, "Deployment", "samverka-gateway");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let name = volumes
        .iter()
        .find(|v| v["name"] == "config")
        .map(|v| text(&v["configMap"]["name"], "the config volume's ConfigMap"))
        .unwrap();
    let text = text(
        &object(objects, "ConfigMap", name)["data"]["gateway.toml"],
        "gateway.toml",
    )
    .to_owned();
    let config = Config::from_toml(&text, Path::new("/etc/samverka/config"))
        .unwrap_or_else(|e| panic!("the rendered gateway.toml does not parse: {e}"));
    (config, text)
}

/// Checks one rendered overlay.
pub(crate) fn overlay(name: &str, objects: &[Value]) {
    let deployment = object(objects, "Deployment", "samverka-gateway");
    let spec = &deployment["spec"];
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    let c = gateway_container(objects);
    assert!(spec["replicas"].as_u64().unwrap() >= 2, "{name}: replicas");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert!(selects(&spec["selector"]["matchLabels"], labels));

    // Unprivileged and read-only, as the image's user.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "{name}: {kind}.{resource}"
            );
        }
    }
    let keys: Vec<&str> = pod["topologySpreadConstraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(selects(&t["labelSelector"]["matchLabels"], labels));
            text(&t["topologyKey"], "topologyKey")
        })
        .collect();
    assert!(
        keys.contains(&"kubernetes.io/hostname") && keys.contains(&"topology.kubernetes.io/zone")
    );

    // Probes on the admin port: ready on /readyz, alive and started on /healthz.
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{name}: {probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "admin", "{name}: {probe}");
    }

    // The configuration listens where the container ports are, the admin
    // listener on the pod's address; it reads files from mounted volumes.
    let (config, toml) = gateway_config(objects);
    let g = &config.gateway;
    assert_eq!(g.address.port(), container_port(c, "grpc"));
    assert_eq!(g.admin_address.port(), container_port(c, "admin"));
    assert!(
        g.admin_address.ip().is_unspecified(),
        "{name}: admin_address binds loopback"
    );
    assert!(config.limits.max_connection_age.as_secs() <= 3600);
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert!(
                m["subPath"].is_null(),
                "{name}: subPath mounts are never updated"
            );
            text(&m["mountPath"], "mountPath")
        })
        .collect();
    for path in toml
        .split(['"', '&', '=', '?'])
        .filter(|p| p.starts_with("/etc/"))
    {
        assert!(
            mounts.iter().any(|m| path.starts_with(&format!("{m}/"))),
            "{name}: gateway.toml names {path}, which no volume mounts"
        );
    }
    let config_env = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SAMVERKA_CONFIG")
        .map(|e| text(&e["value"], "SAMVERKA_CONFIG"))
        .expect("SAMVERKA_CONFIG");
    assert!(
        mounts
            .iter()
            .any(|m| config_env == format!("{m}/gateway.toml"))
    );

    services(name, objects);
    network_policy(name, objects, labels);
    monitoring(objects);

    let pdb = object(objects, "PodDisruptionBudget", "samverka-gateway");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], labels));
    assert!(
        objects.iter().all(|o| o["kind"] != "Ingress"),
        "TLS ends at the gateway"
    );
}

/// Every Service's target ports are ports of the pods it selects; the
/// gateway's gRPC Service does not expose the admin port.
fn services(name: &str, objects: &[Value]) {
    for service in objects.iter().filter(|o| o["kind"] == "Service") {
        let selector = &service["spec"]["selector"];
        let pods: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .filter(|d| selects(selector, &d["spec"]["template"]["metadata"]["labels"]))
            .collect();
        assert!(
            !pods.is_empty(),
            "{name}: Service {} selects nothing",
            service["metadata"]["name"]
        );
        for port in service["spec"]["ports"].as_array().unwrap() {
            let target = &port["targetPort"];
            for d in &pods {
                let containers = d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .unwrap();
                assert!(
                    containers.iter().any(|c| c["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| &p["name"] == target || &p["containerPort"] == target)),
                    "{name}: Service {} targets port {target}, which {} lacks",
                    service["metadata"]["name"],
                    d["metadata"]["name"]
                );
            }
        }
    }
    let grpc = object(objects, "Service", "samverka-gateway");
    let ports = grpc["spec"]["ports"].as_array().unwrap();
    assert!(
        ports.iter().all(|p| p["targetPort"] == "grpc"),
        "{name}: admin exposed"
    );
}

/// In: gRPC from anywhere listed, admin from Prometheus only. Out: only
/// DNS, adapters, PostgreSQL and the collector, each rule naming whom.
fn network_policy(name: &str, objects: &[Value], labels: &Value) {
    let policy = object(objects, "NetworkPolicy", "samverka-gateway");
    let spec = &policy["spec"];
    assert!(selects(&spec["podSelector"]["matchLabels"], labels));
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    for rule in spec["ingress"].as_array().unwrap() {
        let ports: Vec<&Value> = rule["ports"].as_array().unwrap().iter().collect();
        assert_eq!(ports.len(), 1, "{name}: one port per ingress rule");
        match ports[0]["port"].as_str() {
            Some("grpc") => {}
            Some("admin") => {
                for from in rule["from"].as_array().unwrap() {
                    assert!(from["ipBlock"].is_null(), "{name}: admin open to addresses");
                    assert_eq!(
                        from["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                        "prometheus"
                    );
                }
            }
            other => panic!("{name}: ingress to {other:?}"),
        }
    }
    let mut egress_ports = Vec::new();
    for rule in spec["egress"].as_array().unwrap() {
        assert!(
            !rule["to"].as_array().unwrap().is_empty(),
            "{name}: egress to anywhere"
        );
        for port in rule["ports"].as_array().unwrap() {
            egress_ports.push(port["port"].to_string());
        }
    }
    for port in ["53", "5432", "4317", "\"grpc\""] {
        assert!(
            egress_ports.iter().any(|p| p == port),
            "{name}: no egress to port {port}"
        );
    }
}

/// The ServiceMonitor scrapes the admin Service in the job the alert rules
/// name; the PrometheusRule holds exactly the rules of deploy/prometheus.
fn monitoring(objects: &[Value]) {
    let monitor = object(objects, "ServiceMonitor", "samverka-gateway");
    let admin = object(objects, "Service", "samverka-gateway-admin");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &admin["metadata"]["labels"]
    ));
    assert_eq!(admin["spec"]["clusterIP"], "None");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert!(
        admin["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == endpoint["port"])
    );
    assert!(
        endpoint["relabelings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| { r["targetLabel"] == "job" && r["replacement"] == "samverka-gateway" })
    );
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/samverka-alerts.yml")).unwrap();
    let rules = &yaml_documents(&rules)[0]["groups"];
    assert_eq!(
        &object(objects, "PrometheusRule", "samverka")["spec"]["groups"],
        rules,
        "monitoring/prometheusrule.yaml differs from deploy/prometheus/samverka-alerts.yml"
    );
}

/// The demo's CloudNativePG cluster: the configuration's store is its
/// read-write Service, as its owner and database, and the gateway's
/// network policy lets it reach the cluster's pods. Returns the part of
/// the store URL a cluster resolves (`user@host:port/database`).
pub(crate) fn demo_database(objects: &[Value]) -> String {
    let cluster = object(objects, "Cluster", "samverka-db");
    let initdb = &cluster["spec"]["bootstrap"]["initdb"];
    let (_, toml) = gateway_config(objects);
    let store = toml
        .lines()
        .find_map(|l| l.strip_prefix("store = \""))
        .and_then(|l| l.split('"').next())
        .expect("store");
    let authority = store
        .strip_prefix("postgresql://")
        .and_then(|s| s.split('?').next())
        .unwrap();
    assert_eq!(
        authority,
        format!(
            "{}@samverka-db-rw:5432/{}",
            text(&initdb["owner"], "owner"),
            text(&initdb["database"], "database")
        )
    );
    assert!(
        store.contains("sslmode=verify-full"),
        "the store is reached over TLS"
    );
    let policy = object(objects, "NetworkPolicy", "samverka-gateway");
    let pods = &cluster["spec"]["inheritedMetadata"]["labels"];
    assert!(
        policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|rule| {
                rule["ports"][0]["port"] == 5432
                    && rule["to"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|to| selects(&to["podSelector"]["matchLabels"], pods))
            })
    );
    authority.to_owned()
}

/// The rendered objects with the content hash of generated names and the
/// line breaks of Secret data taken out (kustomize releases differ there).
pub(crate) fn normalised(mut objects: Vec<Value>) -> Vec<Value> {
    let text = serde_json::to_string(&objects).unwrap();
    let hashed = regex_free_unhash(&text, "samverka-gateway-config-");
    objects = serde_json::from_str(&hashed).unwrap();
    for o in objects.iter_mut().filter(|o| o["kind"] == "Secret") {
        for v in o["data"].as_object_mut().unwrap().values_mut() {
            *v = Value::String(v.as_str().unwrap().replace('\n', ""));
        }
    }
    objects.sort_by_key(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]));
    objects
}

/// `text` with the ten characters after each `prefix` removed.
fn regex_free_unhash(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len() + 10..];
    }
    out.push_str(rest);
    out
}
