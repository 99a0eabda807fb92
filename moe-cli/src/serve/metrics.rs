//! Server counters, rendered in the Prometheus text format at `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the time-to-first-token histogram buckets.
const TTFT_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    /// Per bucket (non-cumulative), plus one for `+Inf`.
    counts: [u64; TTFT_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// Every counter and gauge of the server.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Requests answered with a completion (stream or not).
    pub(crate) requests: AtomicU64,
    /// Requests refused: invalid (4xx) and overloaded (503).
    pub(crate) rejected_invalid: AtomicU64,
    pub(crate) rejected_overloaded: AtomicU64,
    /// Sequences cancelled because their client went away.
    pub(crate) cancelled: AtomicU64,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) completion_tokens: AtomicU64,
    /// Requests waiting for the scheduler.
    pub(crate) queue_depth: AtomicU64,
    /// Sequences in the last forward step, and how many steps ran.
    pub(crate) batch_size: AtomicU64,
    pub(crate) steps: AtomicU64,
    pub(crate) batch_rows: AtomicU64,
    ttft: Mutex<Histogram>,
}

impl Metrics {
    /// Records one time to first token.
    pub(crate) fn observe_ttft(&self, seconds: f64) {
        let Ok(mut h) = self.ttft.lock() else { return };
        let i = TTFT_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(TTFT_BUCKETS.len());
        h.counts[i] += 1;
        h.sum += seconds;
        h.count += 1;
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "moe_requests_total",
            "Completion requests accepted.",
            "counter",
            get(&self.requests),
        );
        counter(
            "moe_requests_rejected_invalid_total",
            "Requests refused as invalid (4xx).",
            "counter",
            get(&self.rejected_invalid),
        );
        counter(
            "moe_requests_rejected_overloaded_total",
            "Requests refused with 503 because the queue was full.",
            "counter",
            get(&self.rejected_overloaded),
        );
        counter(
            "moe_requests_cancelled_total",
            "Sequences cancelled because the client disconnected.",
            "counter",
            get(&self.cancelled),
        );
        counter(
            "moe_prompt_tokens_total",
            "Prompt tokens prefilled.",
            "counter",
            get(&self.prompt_tokens),
        );
        counter(
            "moe_completion_tokens_total",
            "Tokens generated.",
            "counter",
            get(&self.completion_tokens),
        );
        counter(
            "moe_queue_depth",
            "Requests waiting for the scheduler.",
            "gauge",
            get(&self.queue_depth),
        );
        counter(
            "moe_batch_size",
            "Sequences in the latest forward step.",
            "gauge",
            get(&self.batch_size),
        );
        counter(
            "moe_steps_total",
            "Batched forward steps run.",
            "counter",
            get(&self.steps),
        );
        counter(
            "moe_batch_rows_total",
            "Sequences summed over all steps (divide by moe_steps_total for the mean batch size).",
            "counter",
            get(&self.batch_rows),
        );
        let name = "moe_time_to_first_token_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Time from a request's arrival to its first generated token.\n# TYPE {name} histogram"
        );
        if let Ok(h) = self.ttft.lock() {
            let mut cumulative = 0;
            for (i, b) in TTFT_BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
            }
            let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "{name}_sum {}", h.sum);
            let _ = writeln!(s, "{name}_count {}", h.count);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_ttft(0.003);
        m.observe_ttft(0.2);
        m.observe_ttft(100.0);
        m.requests.fetch_add(2, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("moe_requests_total 2\n"), "{text}");
        assert!(text.contains("moe_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("moe_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n"));
        assert!(text.contains("moe_time_to_first_token_seconds_bucket{le=\"30\"} 2\n"));
        assert!(text.contains("moe_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("moe_time_to_first_token_seconds_count 3\n"));
    }
}
