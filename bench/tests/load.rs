//! The load benchmark as a whole, in a short run: it starts its fleet
//! (three adapters, a gateway and the relay, each a process over mutual
//! TLS; nginx and haproxy when installed), measures each scenario asked
//! for, and prints its table, the targets it can read off the run and what
//! it reads against the relay. Figures are not checked,
//! only that every part is there and answered without errors.

use std::path::Path;
use std::process::Command;

const LOAD: &str = env!("CARGO_BIN_EXE_load");

/// The table's row for `scenario` at `concurrency`, if printed.
fn row<'a>(stdout: &'a str, scenario: &str, concurrency: &str) -> Option<Vec<&'a str>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.len() >= 9 && cols[0] == scenario && cols[1] == concurrency)
}

#[test]
fn a_short_run_prints_its_table_and_the_targets_it_can_read() {
    // `load` runs the `samverka` binary next to it, which `cargo test
    // --workspace` builds with it.
    let samverka = Path::new(LOAD).with_file_name("samverka");
    if !samverka.exists() {
        eprintln!(
            "skipped: {} is not built (cargo test --workspace builds it)",
            samverka.display()
        );
        return;
    }
    let proxies = ["/usr/sbin/nginx", "/usr/sbin/haproxy"]
        .iter()
        .all(|p| Path::new(p).exists());
    let only = if proxies {
        "direct,gateway,relay,nginx,haproxy"
    } else {
        eprintln!("nginx or haproxy is not installed: their rows and readings are not checked");
        "direct,gateway,relay"
    };
    let out = Command::new(LOAD)
        .args(["--duration", "1", "--warmup", "0", "--rounds", "1"])
        .args(["--concurrency", "1,64", "--connections", "2"])
        .args(["--no-fan-out", "--register-latency-ms", "0", "--only", only])
        .output()
        .expect("load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for scenario in only.split(',') {
        for concurrency in ["1", "64"] {
            let cols = row(&stdout, scenario, concurrency)
                .unwrap_or_else(|| panic!("no row for {scenario} at {concurrency}:\n{stdout}"));
            let rps: f64 = cols[2].parse().expect("requests/s");
            assert!(
                rps > 0.0,
                "{scenario} at {concurrency} answered nothing:\n{stdout}"
            );
            assert_eq!(cols.last(), Some(&"-"), "errors:\n{stdout}");
        }
    }
    assert!(stdout.contains("gateway peak RSS: "), "{stdout}");

    let targets = stdout
        .split("performance targets (docs/performance.md")
        .nth(1)
        .unwrap_or_else(|| panic!("no targets read:\n{stdout}"));
    let mut expected = vec!["gateway peak RSS at 64 in flight <= 64 MiB"];
    if proxies {
        expected.extend([
            "gateway >= 1.0x nginx at 64 in flight",
            "gateway >= 0.6x haproxy at 64 in flight",
            "added p50 at 1 in flight <= nginx's + 200 us",
            "p99 at 64 in flight <= nginx's",
        ]);
    }
    let read: Vec<&str> = targets
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    for target in &expected {
        let line = read
            .iter()
            .find(|l| l.trim_start().starts_with(target))
            .unwrap_or_else(|| panic!("no reading for {target}:\n{stdout}"));
        assert!(
            line.ends_with(" met") || line.ends_with(" not met"),
            "{line}"
        );
    }
    // Without the no-audit build or PostgreSQL, their targets are not read.
    assert_eq!(read.len(), expected.len(), "{stdout}");

    let bounds: Vec<&str> = stdout
        .split("against the relay, samverka's own stack")
        .nth(1)
        .unwrap_or_else(|| panic!("nothing read against the relay:\n{stdout}"))
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim_start)
        .collect();
    let expected: &[&str] = if proxies {
        &[
            "relay x nginx at 64 in flight",
            "gateway x relay at 64 in flight",
            "p50 at 1 in flight, relay - nginx",
            "p50 at 1 in flight, gateway - relay",
            "p99 at 64 in flight, relay against nginx",
        ]
    } else {
        &[
            "gateway x relay at 64 in flight",
            "p50 at 1 in flight, gateway - relay",
        ]
    };
    assert_eq!(bounds.len(), expected.len(), "{stdout}");
    for (line, what) in bounds.iter().zip(expected) {
        assert!(line.starts_with(what), "{line} is not {what}");
    }
}
