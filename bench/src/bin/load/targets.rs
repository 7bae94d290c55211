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

/// The figures of one run that the readings compare. A scenario that
/// answered no call has no rate or latency to compare: `None`.
struct Run<'a>(&'a Results);

impl Run<'_> {
    /// The median throughput of `name` at `c` in flight.
    fn rps(&self, c: usize, name: &str) -> Option<f64> {
        Some(median(&self.0.get(&(c, name.to_owned()))?.rps)).filter(|r| *r > 0.0)
    }

    /// The latency of `name` at `c` in flight at quantile `q`, in us.
    fn quantile(&self, c: usize, name: &str, q: f64) -> Option<i64> {
        let h = self.0.get(&(c, name.to_owned()))?.latency.as_ref()?;
        (!h.is_empty()).then(|| h.value_at_quantile(q) as i64)
    }

    /// The p50 of `name` less that of `than` at 1 in flight, in us.
    fn p50_over(&self, name: &str, than: &str) -> Option<i64> {
        Some(self.quantile(1, name, 0.5)? - self.quantile(1, than, 0.5)?)
    }

    /// What `name` adds to direct calls' p50 at 1 in flight, in us.
    fn added_p50(&self, name: &str) -> Option<i64> {
        self.p50_over(name, "direct")
    }

    /// The throughput of `of` against `to`'s at 64 in flight.
    fn ratio(&self, of: &str, to: &str) -> Option<f64> {
        Some(self.rps(64, of)? / self.rps(64, to)?)
    }
}

/// The targets whose scenarios answered in this run (the added p50 at 1
/// in flight, the others at 64), and the gateway's peak RSS
/// (`peak_rss_mib`, over the whole run) if 64 was the most it had in
/// flight.
pub(crate) fn read(results: &Results, peak_rss_mib: Option<f64>) -> Vec<Reading> {
    let run = Run(results);
    let ratio = |target: &'static str, of: &str, to: &str, at_least: f64| {
        let r = run.ratio(of, to)?;
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
        run.added_p50("gateway")
            .zip(run.added_p50("nginx"))
            .map(|(g, n)| Reading {
                target: "added p50 at 1 in flight <= nginx's + 200 us",
                measured: format!("{g} us, nginx {n} us"),
                met: g <= n + 200,
            }),
        run.quantile(64, "gateway", 0.99)
            .zip(run.quantile(64, "nginx", 0.99))
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

/// The section of docs/performance.md that [`bounds`] belongs to.
const BOUNDS_SECTION: &str = "What bounds the targets: the stack against the gateway's own work";

/// What bounds the targets against the proxies, read off the same run:
/// the relay (samverka's stack passing calls through without decoding
/// their messages) against nginx, and the gateway, with and without audit
/// writes, against the relay. Those whose scenarios answered, as (what,
/// measured); none if the relay did not answer.
pub(crate) fn bounds(results: &Results) -> Vec<(String, String)> {
    let run = Run(results);
    if !results
        .keys()
        .any(|(c, name)| name == "relay" && run.rps(*c, name).is_some())
    {
        return Vec::new();
    }
    let ratio = |of: &str, to: &str| {
        let measured = run.ratio(of, to).map(|r| format!("{r:.2}x"));
        (format!("{of} x {to} at 64 in flight"), measured)
    };
    let p50_over = |of: &str, than: &str| {
        let measured = run.p50_over(of, than).map(|us| format!("{us:+} us"));
        (format!("p50 at 1 in flight, {of} - {than}"), measured)
    };
    let p99 = run
        .quantile(64, "relay", 0.99)
        .zip(run.quantile(64, "nginx", 0.99))
        .map(|(relay, nginx)| format!("{relay} us, nginx {nginx} us"));
    [
        ratio("relay", "nginx"),
        ratio("gateway", "relay"),
        ratio("no-audit", "relay"),
        p50_over("relay", "nginx"),
        p50_over("no-audit", "relay"),
        p50_over("gateway", "relay"),
        ("p99 at 64 in flight, relay against nginx".to_owned(), p99),
    ]
    .into_iter()
    .filter_map(|(what, measured)| Some((what, measured?)))
    .collect()
}

/// Prints [`bounds`], if any.
pub(crate) fn print_bounds(results: &Results) {
    let bounds = bounds(results);
    if bounds.is_empty() {
        return;
    }
    println!();
    println!(
        "against the relay, samverka's own stack decoding no message (docs/performance.md, \"{BOUNDS_SECTION}\"), in this run:"
    );
    for (what, measured) in bounds {
        println!("  {what:<58} {measured}");
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

    #[test]
    fn the_bounds_are_read_against_the_relay() {
        let rows: [Row<'_>; 8] = [
            (1, "direct", &[5000.0], 150, 1_000),
            (1, "nginx", &[3000.0], 250, 1_000),
            (1, "relay", &[2000.0], 320, 1_000),
            (1, "no-audit", &[1500.0], 600, 1_000),
            (64, "relay", &[10_000.0, 12_000.0], 900, 9_000),
            (64, "nginx", &[10_000.0], 800, 12_000),
            (64, "gateway", &[5_500.0], 1_000, 15_000),
            (64, "no-audit", &[7_700.0], 900, 18_000),
        ];
        assert_eq!(
            bounds(&results(&rows)),
            [
                // The relay's median is the mean of its two rounds.
                (
                    "relay x nginx at 64 in flight".to_owned(),
                    "1.10x".to_owned()
                ),
                (
                    "gateway x relay at 64 in flight".to_owned(),
                    "0.50x".to_owned()
                ),
                (
                    "no-audit x relay at 64 in flight".to_owned(),
                    "0.70x".to_owned()
                ),
                (
                    "p50 at 1 in flight, relay - nginx".to_owned(),
                    "+70 us".to_owned()
                ),
                (
                    "p50 at 1 in flight, no-audit - relay".to_owned(),
                    "+280 us".to_owned()
                ),
                // (hdrhistogram keeps 9 000 and 12 000 as 9 007 and 12 007.)
                (
                    "p99 at 64 in flight, relay against nginx".to_owned(),
                    "9007 us, nginx 12007 us".to_owned()
                ),
            ]
        );
        // A negative difference keeps its sign.
        let mut faster = results(&rows);
        faster.insert((1, "gateway".to_owned()), outcome(&[3000.0], 300, 1_000));
        assert!(bounds(&faster).contains(&(
            "p50 at 1 in flight, gateway - relay".to_owned(),
            "-20 us".to_owned()
        )));
        // Without the relay, or with a relay that answered nothing, none.
        let without: Vec<Row<'_>> = rows.iter().filter(|r| r.1 != "relay").copied().collect();
        assert_eq!(bounds(&results(&without)), []);
        let mut silent = results(&without);
        silent.insert((64, "relay".to_owned()), outcome(&[0.0], 1, 1));
        assert_eq!(bounds(&silent), []);
        // Only those whose scenarios ran.
        let relay_only: Vec<Row<'_>> = rows
            .iter()
            .filter(|r| r.0 == 64 && (r.1 == "relay" || r.1 == "nginx"))
            .copied()
            .collect();
        assert_eq!(
            bounds(&results(&relay_only)),
            [
                (
                    "relay x nginx at 64 in flight".to_owned(),
                    "1.10x".to_owned()
                ),
                (
                    "p99 at 64 in flight, relay against nginx".to_owned(),
                    "9007 us, nginx 12007 us".to_owned()
                ),
            ]
        );
    }
}
