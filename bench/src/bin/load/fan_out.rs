//! The fan-out comparison: one read answered by three sources through the
//! gateway, against each of those sources asked alone, measured and
//! printed.

use std::sync::Arc;

use samverka_proto::v1::GetRecordsRequest;
use samverka_proto::v1::record_exchange_client::RecordExchangeClient;
use tonic::transport::Channel;

use crate::Args;
use crate::client::{Outcome, Target, read, run};
use crate::report::median;

/// Measures and prints the fan-out through each of `setups` (a
/// description, and connections to a gateway), reading about
/// `demo_person`.
pub(crate) async fn fan_out(
    args: &Args,
    setups: &[(String, Vec<RecordExchangeClient<Channel>>)],
    demo_person: &Arc<[String]>,
) {
    let cases: Vec<(&str, GetRecordsRequest)> = vec![
        (
            "fan-out (3 sources)",
            read(&["education.course_result", "employment.period"], &[]),
        ),
        (
            "higher-education alone",
            read(&["education.course_result"], &[]),
        ),
        (
            "employment alone",
            read(&["employment.period"], &["2021999053"]),
        ),
        (
            "employment-b alone",
            read(&["employment.period"], &["2021999079"]),
        ),
    ];
    // Per setup, per concurrency, per case.
    let mut fan: Vec<Vec<Vec<Outcome>>> = setups
        .iter()
        .map(|_| {
            args.concurrency
                .iter()
                .map(|_| cases.iter().map(|_| Outcome::default()).collect())
                .collect()
        })
        .collect();
    for round in 1..=args.rounds {
        for (s, (setup, clients)) in setups.iter().enumerate() {
            for (c, &concurrency) in args.concurrency.iter().enumerate() {
                eprintln!("round {round} concurrency {concurrency}: fan-out, {setup}");
                for (i, (_, req)) in cases.iter().enumerate() {
                    run(
                        &Target::Gateway(clients.clone(), req.clone(), demo_person.clone()),
                        concurrency,
                        args,
                        &mut fan[s][c][i],
                    )
                    .await;
                }
            }
        }
    }
    let p50 = |o: &Outcome| o.latency.as_ref().map_or(0, |h| h.value_at_quantile(0.5));
    for ((setup, _), fan) in setups.iter().zip(&fan) {
        for (c, &concurrency) in args.concurrency.iter().enumerate() {
            println!();
            println!("fan-out through the gateway, {setup}, concurrency {concurrency}:");
            for ((name, _), o) in cases.iter().zip(&fan[c]) {
                println!(
                    "  {:<24} p50 {:>6} us  {:>7.0} req/s  errors {}",
                    name,
                    p50(o),
                    median(&o.rps),
                    o.errors_text()
                );
            }
            let slowest = fan[c][1..].iter().map(p50).max().unwrap_or(1).max(1);
            println!(
                "  fan-out / slowest single source (p50): {:.2}",
                p50(&fan[c][0]) as f64 / slowest as f64
            );
        }
    }
}
