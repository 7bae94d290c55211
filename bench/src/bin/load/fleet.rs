//! The processes a run measures besides the general-purpose proxies: the
//! three sources, the gateway under test, and the variants the arguments
//! ask for (behind slow sources, without audit writes, on PostgreSQL,
//! with telemetry on). Dropping the fleet stops them, gateways first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use samverka_bench::{BoxError, Proc, start_adapter, start_demo_gateway};
use samverka_certs::dev::DevPkiFiles;

use crate::Args;

/// The adapters: (name in the config, kind, organisation number).
const SOURCES: [(&str, &str, &str); 3] = [
    ("higher-education", "higher-education", "2021999046"),
    ("employment", "employment", "2021999053"),
    ("employment-b", "employment", "2021999079"),
];

/// The sources' addresses, by name.
type Sources = BTreeMap<&'static str, SocketAddr>;

/// Starts the three sources, each its own process answering after
/// `latency_ms`.
fn start_sources(
    bin: &Path,
    pki: &DevPkiFiles,
    latency_ms: u64,
) -> Result<(Vec<Proc>, Sources), BoxError> {
    let mut procs = Vec::new();
    let mut addresses = BTreeMap::new();
    for (name, kind, agency) in SOURCES {
        let (proc, address) = start_adapter(bin, pki, name, kind, agency, latency_ms)?;
        addresses.insert(name, address);
        procs.push(proc);
    }
    Ok((procs, addresses))
}

/// A gateway's routes to `sources`: the demo's two adapters, and the
/// configuration to append, with the third source (for the fan-out) and no
/// rate limit in the way of the load.
fn routes(sources: &Sources) -> (Vec<(String, SocketAddr)>, String) {
    let adapters = ["higher-education", "employment"]
        .iter()
        .map(|n| (n.to_string(), sources[n]))
        .collect();
    let extra = format!(
        "[limits]\nrate_per_second = 1000000000\nburst = 1000000000\n\n[[adapters]]\nname = \"employment-b\"\naddress = \"{}\"\norg_number = \"2021999079\"\nrecord_types = [\"employment.period\"]\n",
        sources["employment-b"]
    );
    (adapters, extra)
}

/// A gateway process and its gRPC address.
pub(crate) type Gateway = (Proc, SocketAddr);

/// Everything [`start`] started; fields drop in this order.
pub(crate) struct Fleet {
    /// With telemetry on: `otel-0` and `otel-100`.
    pub(crate) traced: Vec<(&'static str, Gateway)>,
    /// Without audit writes: `no-audit`, and `slow-none` behind slow
    /// sources.
    pub(crate) unaudited: Vec<(&'static str, Gateway)>,
    /// The gateway on PostgreSQL, if a URL was given.
    pub(crate) on_postgres: Option<Gateway>,
    /// The gateway in front of the slow sources.
    pub(crate) registers: Option<Gateway>,
    /// The gateway under test.
    pub(crate) gateway: Gateway,
    /// The sources' processes, held so that they stop with the fleet.
    _sources: Vec<Proc>,
    /// The (fast) sources' addresses.
    pub(crate) addresses: Sources,
}

/// Starts the sources and every gateway the arguments ask for, in `dir`;
/// traced gateways export to the OTLP receiver at `otlp`.
pub(crate) fn start(
    args: &Args,
    bin: &Path,
    dir: &Path,
    pki: &DevPkiFiles,
    otlp: SocketAddr,
) -> Result<Fleet, BoxError> {
    // The adapters, each its own process, and the gateway's routes to them.
    let (mut procs, addresses) = start_sources(bin, pki, 0)?;
    let (demo_adapters, extra) = routes(&addresses);
    let gateway = start_demo_gateway(bin, dir, "gateway", pki, &demo_adapters, &extra)?;
    // For the fan-out with register latency, and the audit's cost behind
    // such sources: the three sources again, each answering after
    // `register_latency_ms`, behind a gateway of their own (and one without
    // audit writes).
    let slow_sources = if args.register_latency_ms > 0
        && (!args.no_fan_out || args.unaudited_samverka.is_some())
    {
        let (slow_procs, slow) = start_sources(bin, pki, args.register_latency_ms)?;
        procs.extend(slow_procs);
        Some(routes(&slow))
    } else {
        None
    };
    let registers = match &slow_sources {
        Some((adapters, extra)) => Some(start_demo_gateway(
            bin,
            dir,
            "gateway-registers",
            pki,
            adapters,
            extra,
        )?),
        None => None,
    };
    // The same gateways without audit writes, each on its own store.
    let mut unaudited = Vec::new();
    if let Some(path) = &args.unaudited_samverka {
        unaudited.push((
            "no-audit",
            start_demo_gateway(path, dir, "unaudited", pki, &demo_adapters, &extra)?,
        ));
        if let Some((adapters, extra)) = &slow_sources {
            unaudited.push((
                "slow-none",
                start_demo_gateway(path, dir, "unaudited-registers", pki, adapters, extra)?,
            ));
        }
    }

    // The same gateway on PostgreSQL.
    let on_postgres = match &args.postgres_url {
        Some(url) => Some(samverka_bench::start_demo_gateway_on(
            bin,
            dir,
            "gateway-pg",
            pki,
            &demo_adapters,
            url,
            &extra,
        )?),
        None => None,
    };

    // The same gateway with telemetry on, sampling none and all traces.
    let mut traced = Vec::new();
    if args.telemetry {
        for (name, ratio) in [("otel-0", 0.0), ("otel-100", 1.0)] {
            let extra = format!(
                "{extra}\n[telemetry]\notlp_endpoint = \"http://{otlp}\"\nsampling_ratio = {ratio:.1}\n"
            );
            traced.push((
                name,
                start_demo_gateway(bin, dir, name, pki, &demo_adapters, &extra)?,
            ));
        }
    }

    Ok(Fleet {
        traced,
        unaudited,
        on_postgres,
        registers,
        gateway,
        _sources: procs,
        addresses,
    })
}
