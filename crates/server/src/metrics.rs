//! Request counts and latency histograms, and the Prometheus text
//! exposition (format 0.0.4) of them plus the pool's queue and workers.
//!
//! Written by hand: a few counters and histograms do not need a metrics
//! registry crate, and `tests/metrics.rs` parses the output.

use ipfs_accelerate_pool::WorkerStatus;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: from a cache-hot
/// `/health` to a large batch on a slow worker.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Tables {
    /// (route, status) → requests.
    requests: BTreeMap<(String, u16), u64>,
    /// route → latency histogram.
    latency: BTreeMap<String, Histogram>,
}

/// The server's own metrics.
#[derive(Default)]
pub struct Metrics {
    tables: Mutex<Tables>,
    in_flight: AtomicI64,
}

/// Counts one request as in flight until dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Marks a request as started.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Records a finished request.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        *tables.requests.entry((route.to_string(), status)).or_default() += 1;
        let h = tables.latency.entry(route.to_string()).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text: these metrics, the pool's queue depth and one
    /// gauge per worker set to 1 for its current state.
    pub fn render(&self, queued: usize, workers: &[WorkerStatus]) -> String {
        let mut out = String::new();
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        header(
            &mut out,
            "ipfs_accelerate_http_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for ((route, status), n) in &tables.requests {
            let _ = writeln!(
                out,
                "ipfs_accelerate_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        header(
            &mut out,
            "ipfs_accelerate_http_request_duration_seconds",
            "histogram",
            "Time from request to response, by route.",
        );
        for (route, h) in &tables.latency {
            let route = escape(route);
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "ipfs_accelerate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ipfs_accelerate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "ipfs_accelerate_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ =
                writeln!(out, "ipfs_accelerate_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        drop(tables);
        header(&mut out, "ipfs_accelerate_http_requests_in_flight", "gauge", "HTTP requests being answered now.");
        let _ =
            writeln!(out, "ipfs_accelerate_http_requests_in_flight {}", self.in_flight.load(Ordering::Relaxed).max(0));
        header(&mut out, "ipfs_accelerate_pool_queue_depth", "gauge", "Requests waiting in the pool's queue.");
        let _ = writeln!(out, "ipfs_accelerate_pool_queue_depth {queued}");
        header(
            &mut out,
            "ipfs_accelerate_pool_worker_state",
            "gauge",
            "1 for each worker's current state (ready, idle, recovering, down, circuit-open, circuit-half-open).",
        );
        for w in workers {
            let _ = writeln!(
                out,
                "ipfs_accelerate_pool_worker_state{{worker=\"{}\",kind=\"{}\",state=\"{}\"}} 1",
                escape(&w.id),
                w.kind.as_str(),
                w.state()
            );
        }
        header(&mut out, "ipfs_accelerate_pool_worker_in_flight", "gauge", "Requests running on each worker now.");
        for w in workers {
            let _ =
                writeln!(out, "ipfs_accelerate_pool_worker_in_flight{{worker=\"{}\"}} {}", escape(&w.id), w.in_flight);
        }
        header(&mut out, "ipfs_accelerate_pool_worker_answered_total", "counter", "Requests each worker answered.");
        for w in workers {
            let _ = writeln!(
                out,
                "ipfs_accelerate_pool_worker_answered_total{{worker=\"{}\"}} {}",
                escape(&w.id),
                w.answered
            );
        }
        header(&mut out, "ipfs_accelerate_pool_worker_failed_total", "counter", "Requests each worker failed.");
        for w in workers {
            let _ =
                writeln!(out, "ipfs_accelerate_pool_worker_failed_total{{worker=\"{}\"}} {}", escape(&w.id), w.failed);
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the exposition format requires: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn buckets_are_cumulative() {
        let m = Metrics::default();
        m.record("/x", 200, Duration::from_millis(3));
        m.record("/x", 500, Duration::from_secs(60));
        let text = m.render(0, &[]);
        assert!(text.contains("ipfs_accelerate_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.005\"} 1"));
        assert!(text.contains("ipfs_accelerate_http_request_duration_seconds_bucket{route=\"/x\",le=\"30\"} 1"));
        assert!(text.contains("ipfs_accelerate_http_request_duration_seconds_bucket{route=\"/x\",le=\"+Inf\"} 2"));
        assert!(text.contains("ipfs_accelerate_http_requests_total{route=\"/x\",status=\"500\"} 1"));
    }
}
