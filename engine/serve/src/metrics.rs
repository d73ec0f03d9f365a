//! `/metrics` in the Prometheus text format: requests, errors and rows per model and version, a
//! latency histogram, batches formed, loads, and which version each name serves. Counters are
//! atomics updated on the request path; the text is written when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Counters of one model version.
#[derive(Debug, Default)]
pub(crate) struct VersionStats {
    requests: AtomicU64,
    errors: AtomicU64,
    rows: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_ns: AtomicU64,
}

impl VersionStats {
    /// One answered request: `ok` or refused/failed, with its rows and how long it took.
    pub fn record(&self, ok: bool, rows: usize, took: Duration) {
        self.requests.fetch_add(1, Relaxed);
        if !ok {
            self.errors.fetch_add(1, Relaxed);
        }
        self.rows.fetch_add(rows as u64, Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_ns.fetch_add(took.as_nanos() as u64, Relaxed);
    }
}

/// Every counter of the service.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    versions: Mutex<BTreeMap<(String, String), Arc<VersionStats>>>,
    /// name → (version, digest) serving now.
    serving: Mutex<BTreeMap<String, (String, String)>>,
    load_failures: Mutex<BTreeMap<String, u64>>,
    /// Requests refused before a model was chosen (unknown model, bad path), by status code.
    unrouted: Mutex<BTreeMap<u16, u64>>,
    /// Predictions in batches that combined several requests, and those batches.
    pub combined_batches: AtomicU64,
    /// Prediction log rows written and dropped (queue full or write errors).
    pub log_rows: AtomicU64,
    pub log_dropped: AtomicU64,
}

impl Metrics {
    /// The counters of `name` `version` (created on first use; kept after a swap).
    pub fn version(&self, name: &str, version: &str) -> Arc<VersionStats> {
        let mut map = self.versions.lock().expect("metrics lock");
        map.entry((name.to_owned(), version.to_owned())).or_default().clone()
    }

    pub fn serving(&self, name: &str, version: &str, digest: &str) {
        self.serving.lock().expect("metrics lock").insert(name.to_owned(), (version.to_owned(), digest.to_owned()));
    }

    pub fn load_failed(&self, name: &str) {
        *self.load_failures.lock().expect("metrics lock").entry(name.to_owned()).or_default() += 1;
    }

    pub fn unrouted(&self, status: u16) {
        *self.unrouted.lock().expect("metrics lock").entry(status).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let versions = self.versions.lock().expect("metrics lock").clone();
        let counter = |out: &mut String, name: &str, help: &str, get: &dyn Fn(&VersionStats) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((model, version), s) in &versions {
                let _ = writeln!(out, "{name}{{model=\"{}\",version=\"{}\"}} {}", esc(model), esc(version), get(s));
            }
        };
        counter(&mut out, "dagrun_serve_requests_total", "Inference requests answered.", &|s| s.requests.load(Relaxed));
        counter(&mut out, "dagrun_serve_request_errors_total", "Inference requests refused or failed.", &|s| {
            s.errors.load(Relaxed)
        });
        counter(&mut out, "dagrun_serve_rows_total", "Rows predicted.", &|s| s.rows.load(Relaxed));
        let h = "dagrun_serve_request_duration_seconds";
        let _ = writeln!(out, "# HELP {h} Time from a request's arrival to its answer.\n# TYPE {h} histogram");
        for ((model, version), s) in &versions {
            let labels = format!("model=\"{}\",version=\"{}\"", esc(model), esc(version));
            let mut cumulative = 0;
            for (b, count) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += count.load(Relaxed);
                let _ = writeln!(out, "{h}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
            }
            let total = s.requests.load(Relaxed);
            let _ = writeln!(out, "{h}_bucket{{{labels},le=\"+Inf\"}} {total}");
            let _ = writeln!(out, "{h}_sum{{{labels}}} {}", s.sum_ns.load(Relaxed) as f64 / 1e9);
            let _ = writeln!(out, "{h}_count{{{labels}}} {total}");
        }
        let g = "dagrun_serve_model_info";
        let _ = writeln!(out, "# HELP {g} The version each model name serves now (value 1).\n# TYPE {g} gauge");
        for (model, (version, digest)) in self.serving.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "{g}{{model=\"{}\",version=\"{}\",digest=\"{digest}\"}} 1", esc(model), esc(version));
        }
        let f = "dagrun_serve_load_failures_total";
        let _ = writeln!(out, "# HELP {f} Versions that could not be loaded.\n# TYPE {f} counter");
        for (model, n) in self.load_failures.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "{f}{{model=\"{}\"}} {n}", esc(model));
        }
        let u = "dagrun_serve_unrouted_requests_total";
        let _ = writeln!(out, "# HELP {u} Requests refused before a model was chosen.\n# TYPE {u} counter");
        for (code, n) in self.unrouted.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "{u}{{code=\"{code}\"}} {n}");
        }
        for (name, help, v) in [
            (
                "dagrun_serve_combined_batches_total",
                "Inference calls that answered several requests at once.",
                &self.combined_batches,
            ),
            ("dagrun_serve_prediction_log_rows_total", "Rows written to the prediction log.", &self.log_rows),
            (
                "dagrun_serve_prediction_log_dropped_total",
                "Rows the prediction log could not keep up with or write.",
                &self.log_dropped,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histogram_render() {
        let m = Metrics::default();
        let s = m.version("churn", "v0002");
        s.record(true, 3, Duration::from_micros(300));
        s.record(false, 0, Duration::from_millis(2));
        m.serving("churn", "v0002", "ab");
        let text = m.render();
        assert!(text.contains("dagrun_serve_requests_total{model=\"churn\",version=\"v0002\"} 2\n"), "{text}");
        assert!(text.contains("dagrun_serve_request_errors_total{model=\"churn\",version=\"v0002\"} 1\n"));
        assert!(text.contains("dagrun_serve_rows_total{model=\"churn\",version=\"v0002\"} 3\n"));
        let bucket = |le: &str| {
            format!("dagrun_serve_request_duration_seconds_bucket{{model=\"churn\",version=\"v0002\",le=\"{le}\"}}")
        };
        assert!(text.contains(&format!("{} 0\n", bucket("0.00025"))));
        assert!(text.contains(&format!("{} 1\n", bucket("0.0005"))));
        assert!(text.contains(&format!("{} 2\n", bucket("0.0025"))));
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))));
        assert!(text.contains("dagrun_serve_model_info{model=\"churn\",version=\"v0002\",digest=\"ab\"} 1\n"));
    }
}
