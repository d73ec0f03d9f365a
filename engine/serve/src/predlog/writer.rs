//! The writer thread: takes logged requests off the queue, routes each to its model's file for the
//! request's UTC day (or the day's file for its version when the day's file has other columns),
//! writes what it gathered at least every second and when closed, and counts what it could not
//! write.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use dagrun_onnx::Predictions;
use dagrun_onnx::rows::Rows;

use super::file::Sink;
use super::layout::Layout;
use crate::metrics::Metrics;
use crate::{Event, Events};

/// Lines reach the file at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A file's gathered lines are written at once past this many bytes.
const FLUSH_BYTES: usize = 1 << 20;

/// Files tried for one model version and day before its rows are dropped.
const MAX_FILES: usize = 100;

/// One logged request.
#[derive(Debug)]
pub(crate) struct Entry {
    pub layout: Arc<Layout>,
    /// When it was answered.
    pub at: DateTime<Utc>,
    pub rows: Rows,
    pub predictions: Predictions,
    /// What it counts for in the queue's budget of feature values.
    pub weight: usize,
}

/// What the queue carries.
#[derive(Debug)]
pub(crate) enum Msg {
    Entry(Entry),
    /// Write everything queued before this, then stop.
    Close,
}

/// An open file and what it holds.
#[derive(Debug)]
struct Open {
    sink: Sink,
    name: String,
    day: NaiveDate,
}

/// The open files and where each model version's rows go.
pub(crate) struct Writer {
    dir: PathBuf,
    metrics: Arc<Metrics>,
    events: Events,
    /// Feature values queued for the writer.
    queued: Arc<AtomicUsize>,
    /// (layout id, day) → file.
    routes: HashMap<(u64, NaiveDate), PathBuf>,
    files: HashMap<PathBuf, Open>,
    /// Writing fails since the last report (reported once until a write works again).
    failing: bool,
}

/// Takes entries until [`Msg::Close`] (or until every sender is gone), then writes what is left.
pub(crate) fn run(rx: Receiver<Msg>, mut writer: Writer) {
    let mut next = Instant::now() + FLUSH_EVERY;
    loop {
        match rx.recv_deadline(next) {
            Ok(Msg::Entry(e)) => writer.write(e),
            Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= next {
            writer.flush();
            next = Instant::now() + FLUSH_EVERY;
        }
    }
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Entry(e) = msg {
            writer.write(e);
        }
    }
    writer.close();
}

/// `<day>.csv`, then `<day>.<version>.csv`, `<day>.<version>.2.csv`, ...
pub(crate) fn file_name(day: NaiveDate, version: &str, attempt: usize) -> String {
    match attempt {
        0 => format!("{day}.csv"),
        1 => format!("{day}.{version}.csv"),
        n => format!("{day}.{version}.{n}.csv"),
    }
}

impl Writer {
    pub fn new(dir: &Path, metrics: Arc<Metrics>, events: Events, queued: Arc<AtomicUsize>) -> Writer {
        Writer {
            dir: dir.to_path_buf(),
            metrics,
            events,
            queued,
            routes: HashMap::new(),
            files: HashMap::new(),
            failing: false,
        }
    }

    /// Adds an entry's lines to its file (written once enough are gathered, or at the next flush).
    pub fn write(&mut self, e: Entry) {
        self.queued.fetch_sub(e.weight, Relaxed);
        let rows = e.rows.rows.min(e.predictions.len());
        if rows == 0 {
            return;
        }
        let day = e.at.date_naive();
        let path = match self.route(&e.layout, day) {
            Ok(path) => path,
            Err((path, error)) => return self.failed(&path, 0, rows as u64, &error),
        };
        let open = self.files.get_mut(&path).expect("routed to an open file");
        open.sink.lines(rows, |buf| {
            e.layout.push_lines(buf, e.at, &e.rows, &e.predictions);
        });
        if open.sink.pending() >= FLUSH_BYTES {
            self.flush_file(&path);
        }
    }

    /// The file for `layout`'s rows of `day`: the first of [`file_name`]'s that is new, empty, or
    /// has the same header. Opening one for a new day closes the model's files of earlier days.
    fn route(&mut self, layout: &Layout, day: NaiveDate) -> Result<PathBuf, (PathBuf, io::Error)> {
        if let Some(path) = self.routes.get(&(layout.id, day))
            && self.files.contains_key(path)
        {
            return Ok(path.clone());
        }
        self.close_before(&layout.name, day);
        let dir = self.dir.join(&layout.name);
        for attempt in 0..MAX_FILES {
            let path = dir.join(file_name(day, &layout.version, attempt));
            let same = match self.files.get(&path) {
                Some(open) => open.sink.header == layout.header,
                None => match Sink::open(&path, &layout.header) {
                    Ok(Some(sink)) => {
                        self.files.insert(path.clone(), Open { sink, name: layout.name.clone(), day });
                        true
                    }
                    Ok(None) => false,
                    Err(e) => return Err((path, e)),
                },
            };
            if same {
                self.routes.insert((layout.id, day), path.clone());
                return Ok(path);
            }
        }
        let why = format!("{MAX_FILES} files of {day} for {} {} have other columns", layout.name, layout.version);
        Err((dir, io::Error::other(why)))
    }

    /// Closes `name`'s files of days before `day`.
    fn close_before(&mut self, name: &str, day: NaiveDate) {
        let old: Vec<PathBuf> =
            self.files.iter().filter(|(_, o)| o.name == name && o.day < day).map(|(p, _)| p.clone()).collect();
        for path in old {
            self.close_file(&path);
        }
    }

    /// Writes every file's gathered lines.
    pub fn flush(&mut self) {
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            self.flush_file(&path);
        }
    }

    fn flush_file(&mut self, path: &Path) {
        let Some(open) = self.files.get_mut(path) else { return };
        match open.sink.flush() {
            Ok(rows) => self.written(rows),
            Err(f) => {
                self.forget(path);
                self.failed(path, f.written, f.lost, &f.error);
            }
        }
    }

    fn close_file(&mut self, path: &Path) {
        let Some(open) = self.forget(path) else { return };
        match open.sink.close() {
            Ok(rows) => self.written(rows),
            Err(f) => self.failed(path, f.written, f.lost, &f.error),
        }
    }

    /// Drops a file and the routes to it (a later row opens it again).
    fn forget(&mut self, path: &Path) -> Option<Open> {
        self.routes.retain(|_, p| p != path);
        self.files.remove(path)
    }

    /// Writes everything and closes every file.
    pub fn close(&mut self) {
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            self.close_file(&path);
        }
    }

    fn written(&mut self, rows: u64) {
        if rows > 0 {
            self.metrics.log_rows.fetch_add(rows, Relaxed);
            self.failing = false;
        }
    }

    /// Counts rows that could not be written; the first failure since writing last worked is
    /// reported.
    fn failed(&mut self, path: &Path, written: u64, lost: u64, error: &io::Error) {
        self.metrics.log_rows.fetch_add(written, Relaxed);
        self.metrics.log_dropped.fetch_add(lost, Relaxed);
        if !self.failing {
            self.failing = true;
            (self.events)(Event::LogFailed { path: path.to_path_buf(), reason: error.to_string() });
        }
    }
}
