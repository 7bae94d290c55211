//! The gateway's performance targets (docs/performance.md, "Against the
//! targets"; the fan-out's has its own report), read off one run: each
//! ratio or latency within the run, and whether it meets its target.
//! Reported, not pass or fail: on a shared machine they move from run to
//! run, so a verdict comes from several runs.

use crate::report::{Results, median};

/// One target as this run measured it.
#[derive(Debug, PartialEq)]
pub(crate) struct Reading {
    /// What the target asks.
    pub(crate) target: &'static str,
    /// What this run measured.
    pub(crate) measured: String,
    /// Whether what was measured meets the target.
    pub(crate) met: bool,
}

/// The targets whose scenarios answered in this run (the added p50 at 1
/// in flight, the others at 64), and the gateway's peak RSS
/// (`peak_rss_mib`, over the whole run) if 64 was the most it had in
/// flight.
pub(crate) fn read(results: &Results, peak_rss_mib: Option<f64>) -> Vec<Reading> {
    // A scenario that answered no call has no rate or latency to compare.
    let rps = |c: usize, name: &str| {
        Some(median(&results.get(&(c, name.to_owned()))?.rps)).filter(|r| *r > 0.0)
    };
    let quantile = |c: usize, name: &str, q: f64| {
        let h = results.get(&(c, name.to_owned()))?.latency.as_ref()?;
        (!h.is_empty()).then(|| h.value_at_quantile(q) as i64)
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
    let most_in_flight = results
        .keys()
        .filter(|(_, name)| name == "gateway")
        .map(|(c, _)| *c)
        .max();
    readings.push(
        peak_rss_mib
            .filter(|_| most_in_flight == Some(64))
            .map(|rss| Reading {
                target: "gateway peak RSS at 64 in flight <= 64 MiB",
                measured: format!("{rss:.1} MiB"),
                met: rss <= 64.0,
            }),
    );
    readings.into_iter().flatten().collect()
}

/// Prints [`read`]'s readings, if any.
pub(crate) fn print(results: &Results, peak_rss_mib: Option<f64>) {
    let readings = read(results, peak_rss_mib);
    if readings.is_empty() {
        return;
    }
    println!();
    println!(
        "performance targets (docs/performance.md, \"Against the targets\"), in this run (reported, not pass/fail):"
    );
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

    /// An outcome of `rps` per round whose calls took `p50_us` (98 of
    /// them) and `p99_us` (2 of them), so that each quantile is its own.
    fn outcome(rps: &[f64], p50_us: u64, p99_us: u64) -> Outcome {
        let mut h = Histogram::new(3).expect("histogram");
        h.record_n(p50_us, 98).expect("recorded");
        h.record_n(p99_us, 2).expect("recorded");
        Outcome {
            rps: rps.to_vec(),
            latency: Some(h),
            errors: Default::default(),
        }
    }

    type Row<'a> = (usize, &'a str, &'a [f64], u64, u64);

    fn results(rows: &[Row<'_>]) -> Results {
        rows.iter()
            .map(|&(c, name, rps, p50, p99)| ((c, name.to_owned()), outcome(rps, p50, p99)))
            .collect()
    }

    fn reading(readings: &[Reading], target: &str) -> (String, bool) {
        let r = readings
            .iter()
            .find(|r| r.target.starts_with(target))
            .unwrap_or_else(|| panic!("no reading for {target}: {readings:?}"));
        (r.measured.clone(), r.met)
    }

    fn targets(readings: &[Reading]) -> Vec<&str> {
        readings.iter().map(|r| r.target).collect()
    }

    #[test]
    fn every_target_is_read_off_its_scenarios() {
        let results = results(&[
            (1, "direct", &[5000.0], 150, 1_000),
            (1, "gateway", &[900.0], 500, 1_900),
            (1, "nginx", &[3000.0], 300, 1_200),
            (64, "gateway", &[7000.0, 6000.0, 4000.0], 1_000, 15_000),
            (64, "nginx", &[10_000.0], 800, 12_000),
            (64, "haproxy", &[9_000.0], 700, 9_000),
            (64, "gateway-pg", &[4_800.0], 1_500, 30_000),
            (64, "no-audit", &[6_500.0], 900, 18_000),
        ]);
        let readings = read(&results, Some(64.0));
        let expected = [
            // The median of the rounds, not their mean, first or last.
            ("gateway >= 1.0x nginx", "0.60x", false),
            ("gateway >= 0.6x haproxy", "0.67x", true),
            // p50s against direct calls at 1 in flight: 350 against 150,
            // at the 200 us allowance.
            ("added p50", "350 us, nginx 150 us", true),
            // p99s at 64 in flight (hdrhistogram's 3 digits: 15 000 and
            // 12 000 are kept as 15 007 and 12 007).
            ("p99 at 64", "15007 us, nginx 12007 us", false),
            ("gateway on PostgreSQL", "0.80x", true),
            ("durable audit", "0.92x", true),
            ("gateway peak RSS", "64.0 MiB", true),
        ];
        assert_eq!(readings.len(), expected.len(), "{readings:?}");
        for (target, measured, met) in expected {
            assert_eq!(
                reading(&readings, target),
                (measured.to_owned(), met),
                "{target}"
            );
        }
        assert!(
            !read(&results, Some(64.1))
                .iter()
                .any(|r| r.target.starts_with("gateway peak RSS") && r.met)
        );
    }

    #[test]
    fn a_target_whose_scenarios_did_not_run_is_left_out() {
        let results = results(&[
            (64, "gateway", &[5000.0], 1_000, 20_000),
            (64, "nginx", &[10_000.0], 800, 15_000),
            // At 1 in flight without direct calls: no added latency.
            (1, "gateway", &[900.0], 500, 900),
            (1, "nginx", &[3000.0], 300, 400),
        ]);
        let readings = read(&results, None);
        assert_eq!(
            targets(&readings),
            [
                "gateway >= 1.0x nginx at 64 in flight",
                "p99 at 64 in flight <= nginx's"
            ]
        );
        assert!(read(&Results::new(), Some(50.0)).is_empty());
    }

    /// A scenario that answered nothing reads as missing, not as an
    /// infinite ratio or a latency of 0 that would meet its target; the
    /// peak RSS is judged only where 64 was the most in flight.
    #[test]
    fn nothing_answered_meets_no_target() {
        let mut results = results(&[
            (1, "direct", &[5000.0], 150, 1_000),
            (64, "gateway", &[5000.0], 1_000, 20_000),
            (256, "gateway", &[6000.0], 4_000, 40_000),
        ]);
        let silent = || Outcome {
            rps: vec![0.0, 0.0],
            latency: Some(Histogram::new(3).expect("histogram")),
            errors: [("Unavailable".to_owned(), 10)].into(),
        };
        for (c, name) in [
            (64, "nginx"),
            (64, "no-audit"),
            (64, "haproxy"),
            (1, "gateway"),
            (1, "nginx"),
        ] {
            results.insert((c, name.to_owned()), silent());
        }
        assert!(
            read(&results, Some(40.0)).is_empty(),
            "{:?}",
            read(&results, Some(40.0))
        );
    }
}
