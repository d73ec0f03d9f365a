//! Detects files landing for `FileLanded` triggers: a new or changed file (by content) that a
//! trigger's glob selects, once it has stopped changing for the trigger's settle time.
//!
//! At start every glob's files are scanned and compared with what the daemon saw before
//! ([`Watcher::start`]'s `known`); then `notify` (inotify on Linux) watches each glob's base
//! directory, and a periodic rescan catches whatever it missed (a queue overflow, a base
//! directory created later, which is then watched too). A path touched by an event settles
//! under a single deadline; a settled file is hashed (blake3) on the blocking pool, a few at a
//! time, and emitted only when its content differs from the last seen. Nothing runs while
//! nothing is pending but the rescan timer.
//!
//! Layout: [`pattern`] (globs, base directories, partition variables), `state` (the
//! settle/hash bookkeeping, no I/O), `scan` (blocking file-system work), `run` (the loop).

mod pattern;
mod run;
mod scan;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use pattern::{partition_instant, partition_vars};

/// One `FileLanded` trigger to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The caller's identifier, echoed in [`Landed::id`].
    pub id: usize,
    /// The workflow's directory (absolute); the glob is relative to it.
    pub dir: PathBuf,
    /// The glob as written; may hold partition variables (`landing/{date}.csv`), watched as `*`.
    pub glob: String,
    /// How long a file must stay unchanged (size and modification time) to count as landed.
    pub settle: Duration,
}

/// What was seen of a file: its stat when it was hashed, and its content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// blake3 of the content, lower-case hex.
    pub digest: String,
}

/// A file that landed: new, or with content other than last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landed {
    /// [`WatchSpec::id`] of the trigger whose glob selects it (one `Landed` per such trigger).
    pub id: usize,
    /// Relative to [`WatchSpec::dir`], `/`-separated.
    pub rel_path: String,
    /// Its stat and digest (key it as `dir.join(rel_path)` in the `known` map).
    pub stat: FileStat,
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A trigger's glob cannot be compiled.
    #[error("cannot watch `{glob}` in {}: {reason}", dir.display())]
    Glob {
        /// The workflow directory.
        dir: PathBuf,
        /// The glob as written.
        glob: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system's file watching (inotify) could not be set up.
    #[error("cannot start watching files: {source}")]
    Init {
        /// The error.
        source: notify::Error,
    },
    /// A base directory exists but cannot be watched (e.g. the inotify watch limit).
    #[error("cannot watch directory {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: notify::Error,
    },
    /// [`Watcher::start`] was called outside a tokio runtime.
    #[error("the file watcher must be started within a tokio runtime")]
    NoRuntime,
}

/// The running watcher; stops when stopped or dropped.
#[derive(Debug)]
pub struct Watcher {
    task: tokio::task::JoinHandle<()>,
}

/// The shortest rescan period (a zero period would spin).
const MIN_RESCAN: Duration = Duration::from_millis(100);

impl Watcher {
    /// Spawns the watcher on the current tokio runtime. `known`: what the daemon saw before
    /// (absolute path, as `dir.join(rel_path)`, to stat and digest); `rescan_every`: how often
    /// every base directory is scanned again (at least 100 ms). Landed files are sent on `tx`,
    /// waiting while it is full; the watcher ends when the receiver is dropped.
    ///
    /// Base directories that do not exist yet are not an error: they are watched once a rescan
    /// finds them.
    pub fn start(
        specs: Vec<WatchSpec>,
        known: HashMap<PathBuf, FileStat>,
        rescan_every: Duration,
        tx: tokio::sync::mpsc::Sender<Landed>,
    ) -> Result<Watcher, WatchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let specs = specs
            .into_iter()
            .map(|s| {
                let glob = pattern::SpecGlob::new(&s.glob).map_err(|reason| WatchError::Glob {
                    dir: s.dir.clone(),
                    glob: s.glob.clone(),
                    reason,
                })?;
                let canonical = std::fs::canonicalize(&s.dir).ok().filter(|c| *c != s.dir);
                Ok(run::Spec { id: s.id, dir: s.dir, canonical, glob, settle: s.settle })
            })
            .collect::<Result<Vec<_>, WatchError>>()?;
        let event_loop = run::Loop::new(specs, known)?;
        let task = runtime.spawn(event_loop.run(rescan_every.max(MIN_RESCAN), tx));
        Ok(Watcher { task })
    }

    /// Stops watching (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
