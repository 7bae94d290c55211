//! The report of the scenarios measured in turn: the table of throughput
//! and latencies against direct calls, and what telemetry and the durable
//! audit cost.

use std::collections::BTreeMap;

use crate::Args;
use crate::client::{Outcome, Target};

/// The outcomes by concurrency and scenario.
pub(crate) type Results = BTreeMap<(usize, String), Outcome>;

/// The median of `v` (of an even number, the mean of the middle two), or
/// 0 if it is empty.
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The peak resident set size of process `pid`, in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints the table: each of `targets` at each concurrency, against
/// "direct".
pub(crate) fn table(args: &Args, targets: &[(String, Target)], results: &Results) {
    println!();
    println!(
        "{:<10} {:>5} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}  errors",
        "scenario", "conc", "req/s", "x direct", "p50 us", "p99 us", "p99.9 us", "+p50 us"
    );
    for &c in &args.concurrency {
        let direct = results
            .get(&(c, "direct".into()))
            .map(|o| median(&o.rps))
            .unwrap_or(0.0);
        let direct_p50 = results
            .get(&(c, "direct".into()))
            .and_then(|o| o.latency.as_ref())
            .map_or(0, |h| h.value_at_quantile(0.5));
        for (name, _) in targets {
            let Some(o) = results.get(&(c, name.clone())) else {
                continue;
            };
            let Some(h) = &o.latency else {
                println!("{name:<10} {c:>5} no answers  {}", o.errors_text());
                continue;
            };
            let rps = median(&o.rps);
            println!(
                "{:<10} {:>5} {:>9.0} {:>8} {:>8} {:>8} {:>9} {:>9}  {}",
                name,
                c,
                rps,
                if direct > 0.0 {
                    format!("{:.2}", rps / direct)
                } else {
                    "-".to_owned()
                },
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.value_at_quantile(0.5) as i64 - direct_p50 as i64,
                o.errors_text()
            );
        }
    }
}

/// Prints the throughput of the gateway with telemetry on ("otel-0",
/// "otel-100") against "gateway", telemetry off.
pub(crate) fn telemetry(args: &Args, results: &Results) {
    println!();
    println!("telemetry on, throughput against the same gateway with telemetry off:");
    for &c in &args.concurrency {
        let rps = |name: &str| results.get(&(c, name.to_owned())).map(|o| median(&o.rps));
        if let (Some(off), Some(none), Some(all)) = (rps("gateway"), rps("otel-0"), rps("otel-100"))
        {
            println!(
                "  concurrency {c}: sampling 0 %: {:.2}x, sampling 100 %: {:.2}x",
                none / off,
                all / off
            );
        }
    }
}

/// Prints what the durable audit costs: the throughput of the gateways
/// with it ("gateway", "slow-audit") against those without ("no-audit",
/// "slow-none").
pub(crate) fn audit(args: &Args, results: &Results) {
    println!();
    println!("durable audit, throughput against the same gateway without audit writes:");
    for &c in &args.concurrency {
        let rounds = |name: &str| results.get(&(c, name.to_owned())).map(|o| &o.rps);
        // The ratio of the medians, and the range of the ratios within
        // one round (the two ran one after the other): how much of a
        // difference this machine's noise can make.
        let ratio = |audited: &str, none: &str| {
            let (a, n) = rounds(audited).zip(rounds(none))?;
            let per_round: Vec<f64> = a.iter().zip(n).map(|(a, n)| a / n).collect();
            let (low, high) = per_round
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
            Some(format!(
                "{:.2}x (rounds {low:.2}-{high:.2})",
                median(a) / median(n)
            ))
        };
        let slow = ratio("slow-audit", "slow-none").map_or(String::new(), |r| {
            format!(", sources answering in {} ms {r}", args.register_latency_ms)
        });
        println!(
            "  concurrency {c}: sources answering at once {}{slow}",
            ratio("gateway", "no-audit").as_deref().unwrap_or("-"),
        );
    }
    // Throughput as capacity: each build at the load where it does
    // best, which a fixed number in flight need not be.
    let peak = |name: &str| {
        args.concurrency
            .iter()
            .filter_map(|&c| Some((median(&results.get(&(c, name.to_owned()))?.rps), c)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    if args.concurrency.len() > 1
        && let (Some((a, ca)), Some((n, cn))) = (peak("gateway"), peak("no-audit"))
    {
        println!(
            "  highest of these: {a:.0} req/s (at {ca}) against {n:.0} req/s (at {cn}), sources answering at once {:.2}x",
            a / n
        );
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[9.0, 1.0, 4.0]), 4.0);
        // Two rounds: their mean, not the faster one.
        assert_eq!(median(&[6000.0, 4000.0]), 5000.0);
        assert_eq!(median(&[1.0, 8.0, 2.0, 4.0]), 3.0);
    }
}
