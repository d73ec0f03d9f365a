//! The prediction log: sampled request features and predictions appended to
//! `<dir>/<name>/<YYYY-MM-DD>.csv` (UTC days), the `current` data a `Drift` task reads. Rows are
//! handed to a writer thread and never hold a request up: when it falls behind (1024 requests,
//! or about 4 million feature values, waiting), rows are dropped and counted
//! (`dagrun_serve_prediction_log_dropped_total`; `dagrun_serve_prediction_log_rows_total` counts
//! the rows written). `--log-sample` logs that share of the requests, each with all its rows.
//!
//! **Columns.** The model's feature names (`f0`, `f1`, ... when it names none), `prediction` (the
//! class label, or the value), `proba_<class>` per class (classifiers with probabilities) — the
//! names `OnnxPredict` writes — then `_served_at` (UTC, `2025-03-02T10:15:30.123Z`),
//! `_model_version` (`v0003`) and `_model_digest` (the first 16 hex digits of the model's
//! blake3). A `Drift` task compares the columns present in both files, so against training data
//! the features are compared and the rest is listed as skipped. A name already taken by a
//! feature gets a leading `_` until it is free. Numbers are the shortest text that reads back
//! to the same value (`f32` for models that take or give single precision).
//!
//! **Files.** A request goes to the file of the UTC day it was answered on. An existing file is
//! appended to when its header is the same; when it has other columns (a version with other
//! features or classes deployed during the day, or a restart after a deploy), the rows go to
//! `<YYYY-MM-DD>.<version>.csv` instead (then `<YYYY-MM-DD>.<version>.2.csv`, ...): files are
//! never mixed, and the day's first layout keeps `<YYYY-MM-DD>.csv`. Versions with the same
//! columns share the day's file (`_model_version` tells their rows apart). One service should
//! log to a directory at a time.
//!
//! **Crash safety.** Only whole lines are written: lines are gathered in memory and written with
//! one call, at least every second and at shutdown ([`PredLog::close`]). A file whose last line
//! is unfinished (a crash or `kill -9` during a write, a full disk) is cut back to its last whole
//! line before anything is appended. A write that fails (disk full, permissions) drops its rows,
//! counts them, and is reported once ([`Event::LogFailed`](crate::Event::LogFailed)) until
//! writing works again; the service keeps answering.

mod file;
mod layout;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use crossbeam_channel::Sender;
use dagrun_onnx::Predictions;
use dagrun_onnx::rows::Rows;

use self::layout::{Layout, Shape, Spec};
pub use self::layout::{MODEL_DIGEST, MODEL_VERSION, SERVED_AT};
use self::writer::{Entry, Msg, Writer};
use crate::Events;
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::worker::Served;

/// Logged requests waiting for the writer; past this many, requests are not logged.
const QUEUE: usize = 1024;

/// Feature values waiting for the writer (about 32 MB); past this many, requests are not logged
/// (unless the queue is empty).
const QUEUE_VALUES: usize = 4 << 20;

/// Model versions whose columns are remembered.
const LAYOUTS: usize = 64;

/// Where and how much to log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogOptions {
    /// The directory (`<dir>/<name>/<YYYY-MM-DD>.csv`).
    pub dir: PathBuf,
    /// Share of requests logged, 0 to 1.
    pub sample: f64,
}

/// What time it is (tests set it).
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The running log.
pub(crate) struct PredLog {
    sample: f64,
    metrics: Arc<Metrics>,
    queue: Sender<Msg>,
    /// Feature values queued (the writer subtracts what it took).
    queued: Arc<AtomicUsize>,
    writer: Mutex<Option<JoinHandle<()>>>,
    layouts: RwLock<Vec<Arc<Layout>>>,
    next_id: AtomicU64,
    clock: Clock,
}

impl std::fmt::Debug for PredLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredLog").field("sample", &self.sample).finish_non_exhaustive()
    }
}

impl PredLog {
    /// Creates the directory (checking it can be written) and starts the writer.
    pub fn start(options: &LogOptions, metrics: Arc<Metrics>, events: Events) -> Result<PredLog, ServeError> {
        PredLog::start_with(options, metrics, events, Arc::new(Utc::now))
    }

    pub(crate) fn start_with(
        options: &LogOptions,
        metrics: Arc<Metrics>,
        events: Events,
        clock: Clock,
    ) -> Result<PredLog, ServeError> {
        if !(0.0..=1.0).contains(&options.sample) {
            return Err(ServeError::Options(format!("log sample {} is not a share from 0 to 1", options.sample)));
        }
        let dir = &options.dir;
        let fail = |source| ServeError::Log { path: dir.clone(), source };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let probe = dir.join(format!(".dagrun-serve-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(fail)?;
        let _ = std::fs::remove_file(&probe);
        let (queue, rx) = crossbeam_channel::bounded(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer::new(dir, metrics.clone(), events, queued.clone());
        let handle = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || writer::run(rx, writer))
            .map_err(fail)?;
        let mut log = PredLog::with_queue(options.sample, metrics, clock, queue);
        log.queued = queued;
        log.writer = Mutex::new(Some(handle));
        Ok(log)
    }

    /// A log whose queue is `queue` (no writer thread yet).
    fn with_queue(sample: f64, metrics: Arc<Metrics>, clock: Clock, queue: Sender<Msg>) -> PredLog {
        PredLog {
            sample,
            metrics,
            queue,
            queued: Arc::new(AtomicUsize::new(0)),
            writer: Mutex::new(None),
            layouts: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(0),
            clock,
        }
    }

    /// Logs one request's rows and predictions (if sampled). Never blocks.
    pub fn record(&self, served: &Served, rows: &Rows, predictions: &Predictions) {
        if !self.sampled() {
            return;
        }
        let classes = served.classes.as_deref().map(Vec::as_slice);
        let spec = Spec {
            name: &served.name,
            version: &served.version,
            digest: &served.digest,
            features: served.schema.features.as_deref(),
            classes,
            shape: Shape::of(rows, predictions, classes),
        };
        self.submit(&spec, rows, predictions);
    }

    /// Whether to log this request.
    fn sampled(&self) -> bool {
        self.sample >= 1.0 || (self.sample > 0.0 && fastrand::f64() < self.sample)
    }

    /// Queues a request's rows for the writer, or counts them as dropped when it is behind.
    fn submit(&self, spec: &Spec<'_>, rows: &Rows, predictions: &Predictions) {
        let n = rows.rows.min(predictions.len());
        if n == 0 {
            return;
        }
        let weight = rows.rows * rows.width.max(1);
        let before = self.queued.fetch_add(weight, Relaxed);
        if before > 0 && before + weight > QUEUE_VALUES {
            self.queued.fetch_sub(weight, Relaxed);
            self.metrics.log_dropped.fetch_add(n as u64, Relaxed);
            return;
        }
        let layout = self.layout(spec);
        let entry = Entry { layout, at: (self.clock)(), rows: rows.clone(), predictions: predictions.clone(), weight };
        if self.queue.try_send(Msg::Entry(entry)).is_err() {
            self.queued.fetch_sub(weight, Relaxed);
            self.metrics.log_dropped.fetch_add(n as u64, Relaxed);
        }
    }

    /// The columns of `spec` (made once per model version).
    fn layout(&self, spec: &Spec<'_>) -> Arc<Layout> {
        if let Some(l) = self.layouts.read().expect("layouts lock").iter().find(|l| l.matches(spec)) {
            return l.clone();
        }
        let mut layouts = self.layouts.write().expect("layouts lock");
        if let Some(l) = layouts.iter().find(|l| l.matches(spec)) {
            return l.clone();
        }
        if layouts.len() >= LAYOUTS {
            layouts.remove(0);
        }
        let layout = Arc::new(Layout::new(self.next_id.fetch_add(1, Relaxed), spec));
        layouts.push(layout.clone());
        layout
    }

    /// Writes what is queued and stops the writer (waiting for it). Later requests are not logged.
    pub fn close(&self) {
        let Some(handle) = self.writer.lock().expect("writer lock").take() else { return };
        // The writer takes everything queued before this, so the send waits at most for it.
        let _ = self.queue.send(Msg::Close);
        let _ = handle.join();
    }
}

impl Drop for PredLog {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
