//! Pid files under an advisory lock: one holder at a time, and a probe that says whether a holder
//! is there without ever making a holder's take fail.
//!
//! A holder ([`lock_pid_file`]: `dagrun run`'s state-directory lock, the daemon's lock) takes an
//! exclusive `flock` and writes its pid. The lock belongs to the open file, not to the process,
//! so two kinds of short-lived co-owners exist, and a taker that finds the lock busy waits both out
//! instead of reporting a holder that is not there:
//!
//! - Probes ([`pid_file_holder`]: `dagrun approvals`, `trigger`, `daemon status` looking for a
//!   daemon) cannot test an `flock` without taking one, so they take a *shared* lock for an
//!   instant. Shared locks never conflict with one another (two probes never see each other as a
//!   holder), and a busy taker that is granted a shared lock too knows only probes are there.
//! - A process the holder was starting when it was killed: between `fork` (or `posix_spawn`'s
//!   clone) and `exec` the child has a copy of every descriptor, close-on-exec ones included, so
//!   it keeps the dead holder's lock until it execs, which under load can come after the holder's
//!   parent has reaped it. The pid file then names a process that is gone.

use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a taker waits out probes and a dead holder's leftovers before giving up. Both let go
/// within milliseconds; only processes probing in a tight loop, or a child of the dead holder that
/// never execs, keep the lock this long.
const WAIT_MAX: Duration = Duration::from_secs(5);

/// Takes an exclusive advisory lock on `path` (created if missing) and writes this process's
/// pid into it; `Ok(Err(pid))` when another live process holds it, with the pid it wrote. Probes
/// ([`pid_file_holder`]) and a dead holder's leftovers (see the module) are waited out. `flock`
/// on Unix: the kernel releases the lock when the file is closed or the process dies, so a crash
/// never leaves a stale lock. Keep the returned file open as long as the lock is needed.
pub fn lock_pid_file(path: &Path) -> io::Result<Result<File, Option<u32>>> {
    let mut file = File::options().read(true).write(true).create(true).truncate(false).open(path)?;
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let busy = match busy_with(&file, path)? {
            Busy::Holder(pid) => return Ok(Err(pid)),
            Busy::Probes => "processes checking for its holder (`dagrun approvals`, `trigger`, `daemon status`) \
                             kept it locked without a break: stop whatever runs them in a loop"
                .to_owned(),
            Busy::Leftover(pid) => format!(
                "it stays locked though the process named in it ({}) is gone: a process that one started still \
                 has it open (`fuser -v {}` names it); stop that process",
                pid.map_or("none".to_owned(), |p| p.to_string()),
                path.display()
            ),
        };
        if Instant::now() >= deadline {
            let why = format!("waited {} s: {busy}, then try again", WAIT_MAX.as_secs());
            return Err(io::Error::new(io::ErrorKind::WouldBlock, why));
        }
        // Either lets go within milliseconds; sleeping gives it the CPU instead of spinning.
        std::thread::sleep(Duration::from_millis(1));
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(Ok(file))
}

/// Who keeps a lock that a take found busy.
enum Busy {
    /// A live process holds it (with the pid it wrote).
    Holder(Option<u32>),
    /// Only probes' shared locks.
    Probes,
    /// An exclusive lock whose writer is gone (or has not written its pid yet).
    Leftover(Option<u32>),
}

fn busy_with(file: &File, path: &Path) -> io::Result<Busy> {
    // A holder's exclusive lock refuses our shared one too; probes' shared locks do not.
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock()?;
            return Ok(Busy::Probes);
        }
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // No pid: a taker between its lock and its write (it writes at once and is then reported),
    // or one that died in between. Waiting is right for both.
    Ok(match written_pid(path) {
        Some(pid) if !gone(pid) => Busy::Holder(Some(pid)),
        pid => Busy::Leftover(pid),
    })
}

/// Whether process `pid` has certainly exited (Linux: no `/proc/PID`, or a zombie, whose files
/// are closed). Without `/proc` nothing is certain: a holder is then never waited for.
fn gone(pid: u32) -> bool {
    if !Path::new("/proc/self/stat").exists() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) STATE ...`; comm may contain spaces and `)`.
        Ok(stat) => {
            stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|s| s == "Z" || s == "X")
        }
        Err(_) => true,
    }
}

/// Whether a holder ([`lock_pid_file`]) has `path` locked now: `Some` with the pid it wrote (if
/// readable), `None` when nobody does, the file does not exist, or only a leftover of a holder
/// that is gone keeps it (see the module). Takes a shared lock for an instant, which never makes
/// a concurrent [`lock_pid_file`] fail nor another probe see a holder.
pub fn pid_file_holder(path: &Path) -> Option<Option<u32>> {
    let file = File::open(path).ok()?;
    match file.try_lock_shared() {
        // Nobody holds it (our shared lock is released when `file` is dropped).
        Ok(()) => None,
        // An exclusive holder, or a lock we cannot test (then assume one, as a take would fail).
        Err(_) => match written_pid(path) {
            Some(pid) if gone(pid) => None,
            pid => Some(pid),
        },
    }
}

/// The pid a holder wrote into `path`.
fn written_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Runs `probe` in a loop on other threads while `body` runs.
    fn with_probes(threads: usize, probe: impl Fn() + Sync, body: impl FnOnce()) {
        /// Stops the probes however `body` ends (a failed assertion must not leave them looping).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        probe();
                    }
                });
            }
            let _stop = Stop(&stop);
            body();
        });
    }

    #[test]
    fn probes_never_make_a_take_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        with_probes(
            2,
            || {
                pid_file_holder(&path);
            },
            || {
                for i in 0..500 {
                    let held = lock_pid_file(&path).unwrap().unwrap_or_else(|pid| panic!("take {i}: held by {pid:?}"));
                    assert_eq!(pid_file_holder(&path), Some(Some(std::process::id())), "take {i}");
                    drop(held);
                }
            },
        );
    }

    #[test]
    fn probes_never_see_one_another_as_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, "1").unwrap();
        with_probes(
            2,
            || assert_eq!(pid_file_holder(&path), None),
            || {
                for i in 0..2000 {
                    assert_eq!(pid_file_holder(&path), None, "probe {i}");
                }
            },
        );
    }

    #[test]
    fn a_holder_is_reported_at_once_and_a_missing_file_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        assert_eq!(pid_file_holder(&path), None);
        let held = lock_pid_file(&path).unwrap().unwrap();
        let start = Instant::now();
        assert_eq!(lock_pid_file(&path).unwrap().unwrap_err(), Some(std::process::id()));
        assert!(start.elapsed() < WAIT_MAX / 2, "a holder is not waited for: {:?}", start.elapsed());
        drop(held);
        assert_eq!(pid_file_holder(&path), None);
    }

    #[test]
    fn a_dead_holders_leftover_is_waited_out() {
        // A child the holder was starting when it was killed keeps the lock until it execs: another
        // open of the file plays that child, and the pid file names a process that has exited.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(&path, dead.to_string()).unwrap();
        let leftover = File::open(&path).unwrap();
        leftover.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                drop(leftover);
            });
            assert_eq!(pid_file_holder(&path), None, "no holder: pid {dead} is gone");
            let taken = lock_pid_file(&path).unwrap();
            assert!(taken.is_ok(), "the leftover of exited pid {dead} was taken for a holder: {taken:?}");
        });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), std::process::id().to_string());
    }
}
