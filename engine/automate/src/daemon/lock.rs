//! One daemon per state directory: an advisory lock (`<state>/daemon.lock`, released by the
//! kernel when the process dies) and `<state>/daemon.json` saying where it listens.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a running daemon tells other commands (`dagrun trigger`, `dagrun daemon status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Its process id.
    pub pid: u32,
    /// Where its HTTP server listens (webhooks, wake-ups), if it serves.
    pub addr: Option<String>,
    /// When it started (Unix ms).
    pub started_ms: i64,
    /// The names of the workflows it runs now.
    #[serde(default)]
    pub workflows: Vec<String>,
    /// The file each of them comes from (absolute).
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, PathBuf>,
}

/// The held lock; dropping it releases the lock and removes `daemon.json`.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    info: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon holds it.
    #[error("another dagrun daemon (pid {}) is running on state directory {}; stop it first, or use another --state-dir", .pid.map_or("unknown".to_owned(), |p| p.to_string()), .dir.display())]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
    },
    /// The lock file could not be used.
    #[error("cannot use {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn lock_path(state: &Path) -> PathBuf {
    state.join("daemon.lock")
}

fn info_path(state: &Path) -> PathBuf {
    state.join("daemon.json")
}

impl DaemonLock {
    /// Takes the lock of state directory `state` (created if missing) for this process.
    pub fn take(state: &Path) -> Result<DaemonLock, LockError> {
        let path = lock_path(state);
        let io = |source| LockError::Io { path: path.clone(), source };
        std::fs::create_dir_all(state).map_err(io)?;
        match dagrun_cache::lock_pid_file(&path).map_err(io)? {
            Ok(file) => Ok(DaemonLock { _file: file, info: info_path(state) }),
            Err(pid) => Err(LockError::Held { dir: state.to_owned(), pid }),
        }
    }

    /// Publishes where the daemon listens (atomically: temp file + rename).
    pub fn publish(&self, info: &DaemonInfo) -> std::io::Result<()> {
        publish(&self.info, info)
    }
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.info);
    }
}

/// Writes `daemon.json` of state directory `state` (atomically: temp file + rename). Only the
/// daemon holding the lock calls this.
pub(crate) fn publish_in(state: &Path, info: &DaemonInfo) -> std::io::Result<()> {
    publish(&info_path(state), info)
}

fn publish(path: &Path, info: &DaemonInfo) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(info).expect("serializes"))?;
    std::fs::rename(&tmp, path)
}

/// The daemon running on `state`, if one is: its lock is held and it published its info. The
/// probe never gets in the way of a daemon starting at the same instant (see
/// [`dagrun_cache::pid_file_holder`]).
pub fn running(state: &Path) -> Option<DaemonInfo> {
    let pid = dagrun_cache::pid_file_holder(&lock_path(state))?;
    let info = std::fs::read(info_path(state)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    Some(info.unwrap_or(DaemonInfo {
        pid: pid.unwrap_or(0),
        addr: None,
        started_ms: 0,
        workflows: Vec::new(),
        files: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DaemonLock::take(dir.path()).unwrap();
        let info = DaemonInfo {
            pid: std::process::id(),
            addr: Some("127.0.0.1:1".into()),
            started_ms: 5,
            workflows: Vec::new(),
            files: Default::default(),
        };
        lock.publish(&info).unwrap();
        let e = DaemonLock::take(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert_eq!(running(dir.path()).unwrap().addr.as_deref(), Some("127.0.0.1:1"));
        drop(lock);
        assert!(running(dir.path()).is_none());
        assert!(!dir.path().join("daemon.json").exists());
        DaemonLock::take(dir.path()).unwrap();
    }

    #[test]
    fn a_daemon_starts_while_commands_look_for_one() {
        let dir = tempfile::tempdir().unwrap();
        DaemonLock::take(dir.path()).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            // `dagrun approvals`, `trigger` and `daemon status` asking while daemons (re)start.
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        running(dir.path());
                    }
                });
            }
            let taken: Vec<Result<(), String>> = (0..1000)
                .map(|_| {
                    let lock = DaemonLock::take(dir.path()).map_err(|e| e.to_string())?;
                    let seen = running(dir.path()).map(|d| d.pid);
                    drop(lock);
                    (seen == Some(std::process::id())).then_some(()).ok_or(format!("running() saw {seen:?}"))
                })
                .collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let failed: Vec<&String> = taken.iter().filter_map(|t| t.as_ref().err()).collect();
            assert!(failed.is_empty(), "{} of 1000 starts failed: {:?}", failed.len(), failed.first());
        });
    }
}
