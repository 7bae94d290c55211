//! The two formats `/metrics` speaks, and which one a scraper gets.
//!
//! [prometheus-client] writes OpenMetrics 1.0.0 text only. A scraper that
//! asks for it by name in its `Accept` header (Prometheus does by default,
//! with a higher `q` than the classic format) gets it as written; any
//! other client (curl, `promtool check metrics`, an agent configured for
//! the classic format, a request without `Accept`) gets the Prometheus
//! text format 0.0.4, converted from it by [`to_text`].
//!
//! The two differ, for what the gateway's registry holds (counters,
//! gauges and histograms, without exemplars or `_created` samples; a unit
//! test of [`super::Metrics`] keeps it so), in three things only:
//!
//! - a counter's family: OpenMetrics names it without the `_total` suffix
//!   its sample carries (`# TYPE samverka_requests counter`, then
//!   `samverka_requests_total{...} 3`); 0.0.4 knows no families apart from
//!   samples, so `# HELP` and `# TYPE` must name the sample,
//!   `samverka_requests_total`, or the samples would be read as an untyped
//!   metric without help;
//! - `# UNIT` lines, OpenMetrics only: dropped (0.0.4 parsers skip them as
//!   comments anyway);
//! - the closing `# EOF`, OpenMetrics only: dropped.
//!
//! Sample lines, label escaping (`\\`, `\"`, `\n`), numbers (`1`, `0.5`,
//! `+Inf`, `NaN`) and histograms' `_bucket`/`_sum`/`_count` samples are
//! the same in both. `# HELP` text is written unescaped by
//! prometheus-client in both formats, so help texts must not hold a
//! backslash or a line break (the unit test checks this too).
//!
//! [prometheus-client]: https://docs.rs/prometheus-client

/// A format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format for a request with this `Accept` header (`None`: no
    /// header): OpenMetrics when the client names
    /// `application/openmetrics-text` with a quality above 0 and at least
    /// that of `text/plain` (as its most specific range, `text/*` or
    /// `*/*`, gives it); else the text format 0.0.4. A wildcard alone does
    /// not ask for OpenMetrics: it is what clients send that know no
    /// format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut openmetrics: Option<f32> = None;
        // The quality of text/plain by the most specific range naming it:
        // (specificity, q).
        let mut text: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let specificity = match media.as_str() {
                "application/openmetrics-text" => {
                    openmetrics = Some(openmetrics.map_or(q, |o| o.max(q)));
                    continue;
                }
                "text/plain" => 2,
                "text/*" => 1,
                "*/*" => 0,
                _ => continue,
            };
            match text {
                Some((s, _)) if s > specificity => {}
                Some((s, t)) if s == specificity => text = Some((s, t.max(q))),
                _ => text = Some((specificity, q)),
            }
        }
        match openmetrics {
            Some(om) if om > 0.0 && om >= text.map_or(0.0, |(_, t)| t) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text, as prometheus-client writes it, in the Prometheus
/// text format 0.0.4 (see the module's documentation for what changes).
pub(super) fn to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(text);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Format, to_text};

    /// What the conversion relies on holds for every metric the gateway
    /// registers: only counters, gauges and histograms, no exemplars, no
    /// `_created` samples, one-line help without backslashes; and every
    /// sample of the text format belongs to the family its `# TYPE` line
    /// names, with help.
    #[test]
    fn the_gateways_metrics_convert_faithfully() {
        use std::time::Duration;
        let metrics = super::super::Metrics::new();
        let decision = crate::audit::Decision::Allowed;
        let took = Duration::from_millis(3);
        metrics.request(
            "RecordExchange/GetRecords",
            &"2021000001".into(),
            decision,
            "",
            took,
        );
        metrics.consent_check::<()>(&Ok(()));
        metrics.source_call(&"employment".into(), "OK", took);
        metrics.audit_batch(2, took);
        metrics.handshake_failed();
        metrics.ready(true);
        let _open = metrics.connection(());
        metrics.watch_crls(|| vec![("CN=test CA".to_owned(), 0)]);

        let openmetrics = metrics.render(Format::OpenMetrics);
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
        for line in openmetrics.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.rsplit(' ').next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "{line}: convert this type too"
                );
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(!rest.contains('\\'), "{line}");
            } else if !line.starts_with('#') {
                assert!(!line.contains(" # "), "an exemplar: {line}");
                assert!(!line.contains("_created"), "{line}");
            }
        }

        let text = metrics.render(Format::Text);
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        let (mut family, mut kind, mut helped) = (String::new(), String::new(), Vec::new());
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.push(rest.split(' ').next().unwrap_or_default().to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, k) = rest.split_once(' ').unwrap();
                assert_eq!(helped.last().map(String::as_str), Some(name), "{line}");
                (family, kind) = (name.to_owned(), k.to_owned());
            } else {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let ok = match kind.as_str() {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(family.as_str())),
                    _ => name == family,
                };
                assert!(ok, "{line} is not a sample of {family} ({kind})");
            }
        }
        assert!(
            text.contains("# TYPE samverka_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE samverka_tls_handshake_failures_total counter\n"));
    }

    #[test]
    fn openmetrics_only_when_asked_for_by_name() {
        for (accept, want) in [
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("text/plain;version=0.0.4"), Format::Text),
            (Some("application/json"), Format::Text),
            (
                Some("application/openmetrics-text; version=1.0.0"),
                Format::OpenMetrics,
            ),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            // What Prometheus 2 sends by default.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,\
                     application/openmetrics-text;version=0.0.1;q=0.4,\
                     text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Format::OpenMetrics,
            ),
            // Prometheus told to scrape the classic format first.
            (
                Some(
                    "text/plain;version=0.0.4;q=0.5,\
                     application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1",
                ),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (
                Some("application/openmetrics-text;q=0.5, */*"),
                Format::Text,
            ),
            (
                Some("application/openmetrics-text;q=0.5, text/plain;q=0.2, */*"),
                Format::OpenMetrics,
            ),
            (
                Some("Application/OpenMetrics-Text ; Q=0.9"),
                Format::OpenMetrics,
            ),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn counters_are_named_by_their_sample_and_openmetrics_markers_go() {
        let openmetrics = "# HELP requests RPCs by method.\n\
                           # TYPE requests counter\n\
                           requests_total{method=\"a\\\"b\"} 3\n\
                           # HELP took_seconds Time taken.\n\
                           # TYPE took_seconds histogram\n\
                           # UNIT took_seconds seconds\n\
                           took_seconds_sum 0.5\n\
                           took_seconds_count 1\n\
                           took_seconds_bucket{le=\"+Inf\"} 1\n\
                           # HELP open Connections open.\n\
                           # TYPE open gauge\n\
                           open 2\n\
                           # EOF\n";
        assert_eq!(
            to_text(openmetrics),
            "# HELP requests_total RPCs by method.\n\
             # TYPE requests_total counter\n\
             requests_total{method=\"a\\\"b\"} 3\n\
             # HELP took_seconds Time taken.\n\
             # TYPE took_seconds histogram\n\
             took_seconds_sum 0.5\n\
             took_seconds_count 1\n\
             took_seconds_bucket{le=\"+Inf\"} 1\n\
             # HELP open Connections open.\n\
             # TYPE open gauge\n\
             open 2\n"
        );
    }
}
