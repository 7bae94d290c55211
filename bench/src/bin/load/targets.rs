//! The second performance step's targets, read off one run: each ratio or
//! latency within the run, and whether it meets its target. Reported, not
//! pass or fail: on a shared machine they move from run to run, so a
//! verdict comes from several runs (docs/performance.md).

use crate::report::{Results, median};

/// One target as this run measured it.
#[derive(Debug, PartialEq)]
pub(crate) struct Reading {
    /// What the target asks.
    pub(crate) target: &'static str,
    /// What this run measured.
    pub(crate) measured: String,
    pub(crate) met: bool,
}

/// The targets whose scenarios ran (at 1 and 64 in flight), and the
/// gateway's peak RSS if known.
pub(crate) fn read(results: &Results, peak_rss_mib: Option<f64>) -> Vec<Reading> {
    let rps = |c: usize, name: &str| {
        results
            .get(&(c, name.to_owned()))
            .filter(|o| !o.rps.is_empty())
            .map(|o| median(&o.rps))
    };
    let quantile = |c: usize, name: &str, q: f64| {
        let h = results.get(&(c, name.to_owned()))?.latency.as_ref()?;
        Some(h.value_at_quantile(q) as i64)
    };
    let added_p50 = |name: &str| Some(quantile(1, name, 0.5)? - quantile(1, "direct", 0.5)?);
    let ratio = |target: &'static str, of: &str, to: &str, at_least: f64| {
        let r = rps(64, of)? / rps(64, to)?;
        Some(Reading {
            target,
            measured: format!("{r:.2}x"),
            met: r >= at_least,
        })
    };

    let mut readings = vec![
        ratio(
            "gateway >= 1.0x nginx at 64 in flight",
            "gateway",
            "nginx",
            1.0,
        ),
        ratio(
            "gateway >= 0.6x haproxy at 64 in flight",
            "gateway",
            "haproxy",
            0.6,
        ),
        added_p50("gateway")
            .zip(added_p50("nginx"))
            .map(|(g, n)| Reading {
                target: "added p50 at 1 in flight <= nginx's + 200 us",
                measured: format!("{g} us, nginx {n} us"),
                met: g <= n + 200,
            }),
        quantile(64, "gateway", 0.99)
            .zip(quantile(64, "nginx", 0.99))
            .map(|(g, n)| Reading {
                target: "p99 at 64 in flight <= nginx's",
                measured: format!("{g} us, nginx {n} us"),
                met: g <= n,
            }),
        ratio(
            "gateway on PostgreSQL >= 0.8x on SQLite at 64 in flight",
            "gateway-pg",
            "gateway",
            0.8,
        ),
        ratio(
            "durable audit >= 0.9x no audit writes at 64 in flight",
            "gateway",
            "no-audit",
            0.9,
        ),
    ];
    readings.push(peak_rss_mib.map(|rss| Reading {
        target: "gateway peak RSS <= 64 MiB",
        measured: format!("{rss:.1} MiB"),
        met: rss <= 64.0,
    }));
    readings.into_iter().flatten().collect()
}

/// Prints [`read`]'s readings, if any.
pub(crate) fn print(results: &Results, peak_rss_mib: Option<f64>) {
    let readings = read(results, peak_rss_mib);
    if readings.is_empty() {
        return;
    }
    println!();
    println!("the second performance step's targets, in this run (reported, not pass/fail):");
    for r in readings {
        println!(
            "  {:<58} {:<26} {}",
            r.target,
            r.measured,
            if r.met { "met" } else { "not met" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Outcome;
    use hdrhistogram::Histogram;

    /// An outcome of `rps` per round, every call taking `latency_us`.
    fn outcome(rps: &[f64], latency_us: u64) -> Outcome {
        let mut h = Histogram::new(3).expect("histogram");
        h.record_n(latency_us, 100).expect("recorded");
        Outcome {
            rps: rps.to_vec(),
            latency: Some(h),
            errors: Default::default(),
        }
    }

    fn results(rows: &[(usize, &str, &[f64], u64)]) -> Results {
        rows.iter()
            .map(|&(c, name, rps, us)| ((c, name.to_owned()), outcome(rps, us)))
            .collect()
    }

    fn reading(readings: &[Reading], target: &str) -> (String, bool) {
        let r = readings
            .iter()
            .find(|r| r.target.starts_with(target))
            .unwrap_or_else(|| panic!("no reading for {target}: {readings:?}"));
        (r.measured.clone(), r.met)
    }

    #[test]
    fn every_target_is_read_off_its_scenarios() {
        let results = results(&[
            (1, "direct", &[5000.0], 150),
            (1, "gateway", &[900.0], 500),
            (1, "nginx", &[3000.0], 300),
            (64, "gateway", &[7000.0, 6000.0, 4000.0], 20_000),
            (64, "nginx", &[10_000.0], 15_000),
            (64, "haproxy", &[9_000.0], 9_000),
            (64, "gateway-pg", &[4_800.0], 30_000),
            (64, "no-audit", &[6_500.0], 18_000),
        ]);
        let readings = read(&results, Some(70.5));
        assert_eq!(readings.len(), 7, "{readings:?}");
        // The median of the rounds, not their mean or last.
        assert_eq!(reading(&readings, "gateway >= 1.0x nginx").0, "0.60x");
        assert!(!reading(&readings, "gateway >= 1.0x nginx").1);
        assert_eq!(
            reading(&readings, "gateway >= 0.6x haproxy"),
            ("0.67x".into(), true)
        );
        // Added against direct calls: 350 against 150, within 200 us.
        let (added, met) = reading(&readings, "added p50");
        assert!(
            added.starts_with("35") && added.contains("nginx 15"),
            "{added}"
        );
        assert!(met);
        let (p99, met) = reading(&readings, "p99 at 64");
        assert!(p99.starts_with("20") && p99.contains("nginx 15"), "{p99}");
        assert!(!met);
        assert_eq!(
            reading(&readings, "gateway on PostgreSQL"),
            ("0.80x".into(), true)
        );
        assert_eq!(reading(&readings, "durable audit"), ("0.92x".into(), true));
        assert_eq!(
            reading(&readings, "gateway peak RSS"),
            ("70.5 MiB".into(), false)
        );
    }

    #[test]
    fn a_target_whose_scenarios_did_not_run_is_left_out() {
        let results = results(&[
            (64, "gateway", &[5000.0], 20_000),
            (64, "nginx", &[10_000.0], 15_000),
            // At 1 in flight without direct calls: no added latency.
            (1, "gateway", &[900.0], 500),
            (1, "nginx", &[3000.0], 300),
        ]);
        let readings = read(&results, None);
        let targets: Vec<&str> = readings.iter().map(|r| r.target).collect();
        assert_eq!(
            targets,
            [
                "gateway >= 1.0x nginx at 64 in flight",
                "p99 at 64 in flight <= nginx's"
            ]
        );
        assert!(read(&Results::new(), None).is_empty());
    }
}
