//! Prometheus metrics in the text exposition format, kept in memory: request
//! counts and latencies by route and status, decisions by outcome, rejection
//! reasons by step, and store latency. Nothing is ever sent anywhere: a
//! scraper reads `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Values {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    decisions: BTreeMap<String, u64>,
    rejections: BTreeMap<(String, String), u64>,
    store: BTreeMap<String, Histogram>,
}

/// The metrics of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Values) -> T) -> T {
        f(&mut self.values.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A request answered: its method, route pattern, status and duration.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.with(|v| {
            *v.requests.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
            v.latency.entry(route.to_string()).or_default().observe(took.as_secs_f64());
        });
    }

    /// A routing outcome: `selected`, `no_service`, `unauthenticated`, ...
    pub fn decision(&self, outcome: &str) {
        self.with(|v| *v.decisions.entry(outcome.to_string()).or_default() += 1);
    }

    /// A service excluded at `step` for a reason of `kind`.
    pub fn rejection(&self, step: &str, kind: &str) {
        self.with(|v| *v.rejections.entry((step.to_string(), kind.to_string())).or_default() += 1);
    }

    /// A store operation and how long it took.
    pub fn store(&self, operation: &str, took: Duration) {
        self.with(|v| v.store.entry(operation.to_string()).or_default().observe(took.as_secs_f64()));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.with(|v| {
            let mut out = String::new();
            out.push_str("# HELP caio_http_requests_total HTTP requests answered, by method, route and status.\n");
            out.push_str("# TYPE caio_http_requests_total counter\n");
            for ((method, route, status), count) in &v.requests {
                let _ = writeln!(
                    out,
                    "caio_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    label(method),
                    label(route)
                );
            }
            out.push_str("# HELP caio_http_request_duration_seconds Time to answer a request, by route.\n");
            out.push_str("# TYPE caio_http_request_duration_seconds histogram\n");
            for (route, histogram) in &v.latency {
                histogram.render(
                    &mut out,
                    "caio_http_request_duration_seconds",
                    &format!("route=\"{}\"", label(route)),
                );
            }
            out.push_str("# HELP caio_decisions_total Routing outcomes.\n");
            out.push_str("# TYPE caio_decisions_total counter\n");
            for (outcome, count) in &v.decisions {
                let _ = writeln!(out, "caio_decisions_total{{outcome=\"{}\"}} {count}", label(outcome));
            }
            out.push_str("# HELP caio_rejections_total Services excluded from decisions, by step and reason.\n");
            out.push_str("# TYPE caio_rejections_total counter\n");
            for ((step, kind), count) in &v.rejections {
                let _ = writeln!(
                    out,
                    "caio_rejections_total{{step=\"{}\",reason=\"{}\"}} {count}",
                    label(step),
                    label(kind)
                );
            }
            out.push_str("# HELP caio_store_duration_seconds Time of store operations, by operation.\n");
            out.push_str("# TYPE caio_store_duration_seconds histogram\n");
            for (operation, histogram) in &v.store {
                histogram.render(
                    &mut out,
                    "caio_store_duration_seconds",
                    &format!("operation=\"{}\"", label(operation)),
                );
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::default();
        metrics.request("POST", "/v1/route", 200, Duration::from_micros(300));
        metrics.request("POST", "/v1/route", 200, Duration::from_millis(3));
        metrics.rejection("rules", "say \"no\"");
        let text = metrics.render();
        assert!(
            text.contains("caio_http_requests_total{method=\"POST\",route=\"/v1/route\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("caio_http_request_duration_seconds_bucket{route=\"/v1/route\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("caio_http_request_duration_seconds_bucket{route=\"/v1/route\",le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(text.contains("caio_http_request_duration_seconds_count{route=\"/v1/route\"} 2"), "{text}");
        assert!(text.contains("reason=\"say \\\"no\\\"\""), "{text}");
    }
}
