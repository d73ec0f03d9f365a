//! Detects files landing (placeholder with the agreed API; replaced by the real watcher).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// One glob to watch.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// Caller's id.
    pub id: usize,
    /// Absolute workflow dir.
    pub dir: PathBuf,
    /// The glob as written.
    pub glob: String,
    /// Quiet time.
    pub settle: Duration,
}

/// A file's stat and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Size.
    pub size: u64,
    /// Mtime.
    pub mtime_ns: i128,
    /// blake3 hex.
    pub digest: String,
}

/// A landed file.
#[derive(Debug, Clone)]
pub struct Landed {
    /// Spec id.
    pub id: usize,
    /// Relative path.
    pub rel_path: String,
    /// Stat.
    pub stat: FileStat,
}

/// The watcher.
#[derive(Debug)]
pub struct Watcher;

/// Watch errors.
#[derive(Debug, thiserror::Error)]
#[error("watch error")]
pub struct WatchError;

impl Watcher {
    /// Starts.
    pub fn start(
        _specs: Vec<WatchSpec>,
        _known: HashMap<PathBuf, FileStat>,
        _rescan_every: Duration,
        _tx: tokio::sync::mpsc::Sender<Landed>,
    ) -> Result<Watcher, WatchError> {
        Ok(Watcher)
    }
    /// Stops.
    pub fn stop(self) {}
}

/// Partition variables of a path.
pub fn partition_vars(_glob: &str, _rel_path: &str) -> Option<BTreeMap<&'static str, String>> {
    None
}

/// An instant for the variables.
pub fn partition_instant(_vars: &BTreeMap<&'static str, String>) -> Option<String> {
    None
}
