//! Runs one attempt of a `Command` task: `sh -c`, output captured to a log, timeout and cancellation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;

use dagrun_workflow::duration;

/// Everything one attempt needs.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The shell command line.
    pub run: String,
    /// Environment variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory (the workflow directory).
    pub cwd: PathBuf,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Directory recording running process groups, so a later run can reap orphans of a
    /// dagrun that was killed with SIGKILL.
    pub procs: PathBuf,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The command exited non-zero or was killed by a signal.
    #[error("{status}{}", tail_text(.tail))]
    Exit {
        /// "exit code 3" or "killed by signal 9".
        status: String,
        /// The last lines of its output.
        tail: String,
    },
    /// The command ran longer than its timeout and was killed.
    #[error("timed out after {} (the task's `timeout`)", duration::format(*.0))]
    Timeout(Duration),
    /// The shell could not be started or the log not written.
    #[error("cannot start `sh`: {0}")]
    Spawn(std::io::Error),
    /// The run was interrupted.
    #[error("interrupted")]
    Cancelled,
    /// An evaluation gate refused the model (not retried).
    #[error("{0}")]
    GateRefused(String),
    /// A failure that would repeat identically (e.g. invalid params): not retried.
    #[error("{0}")]
    Permanent(String),
    /// A WASM plugin run failed (the message is complete).
    #[error("{0}")]
    Plugin(String),
}

fn tail_text(tail: &str) -> String {
    if tail.is_empty() { String::new() } else { format!("; last output:\n{tail}") }
}

/// Resolves once the run is interrupted (never, if the sender is gone without interrupting).
pub(crate) async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// The last `n` lines of a file (best effort).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs the command once. Its whole process group is killed on timeout or cancellation.
pub async fn run_attempt(spec: &CommandSpec, cancel: &mut watch::Receiver<bool>) -> Result<(), AttemptError> {
    if let Some(dir) = spec.log.parent() {
        dagrun_cache::ensure_dir(dir).map_err(AttemptError::Spawn)?;
    }
    let log = std::fs::File::create(&spec.log).map_err(AttemptError::Spawn)?;
    let log2 = log.try_clone().map_err(AttemptError::Spawn)?;
    // An absolute path skips the PATH search (measurable when a backfill starts thousands).
    let shell = if Path::new("/bin/sh").exists() { "/bin/sh" } else { "sh" };
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(&spec.run)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true);
    process_group::configure(&mut cmd);
    let mut child = cmd.spawn().map_err(AttemptError::Spawn)?;
    let pid = child.id();
    let _record = pid.map(|p| ProcRecord::new(&spec.procs, p));
    let sleep = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let status = tokio::select! {
        status = child.wait() => status.map_err(AttemptError::Spawn)?,
        () = sleep => {
            process_group::kill(pid);
            let _ = child.wait().await;
            return Err(AttemptError::Timeout(spec.timeout.unwrap_or_default()));
        }
        () = cancelled(cancel) => {
            process_group::kill(pid);
            let _ = child.wait().await;
            return Err(AttemptError::Cancelled);
        }
    };
    if status.success() {
        return Ok(());
    }
    let status_text = match status.code() {
        Some(code) => format!("exit code {code}"),
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                format!("killed by signal {}", status.signal().unwrap_or(0))
            }
            #[cfg(not(unix))]
            {
                "terminated".to_owned()
            }
        }
    };
    Err(AttemptError::Exit { status: status_text, tail: tail(&spec.log, 20) })
}

/// A file `<procs>/<pgid>` holding dagrun's pid while the process group runs.
struct ProcRecord(PathBuf);

impl ProcRecord {
    fn new(dir: &Path, pgid: u32) -> ProcRecord {
        let path = dir.join(pgid.to_string());
        let _ = dagrun_cache::ensure_dir(dir);
        let _ = std::fs::write(&path, std::process::id().to_string());
        ProcRecord(path)
    }
}

impl Drop for ProcRecord {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills process groups left running by a dagrun that died without cleaning up (`kill -9`).
/// Returns how many were reaped.
pub fn reap_orphans(procs: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(procs) else { return 0 };
    let mut reaped = 0;
    for e in entries.flatten() {
        let (Some(pgid), Ok(owner)) = (
            e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()),
            std::fs::read_to_string(e.path()).map(|s| s.trim().parse::<u32>().unwrap_or(0)),
        ) else {
            continue;
        };
        if !process_group::alive(owner) {
            process_group::kill(Some(pgid));
            let _ = std::fs::remove_file(e.path());
            reaped += 1;
        }
    }
    reaped
}

#[cfg(unix)]
#[allow(unsafe_code)]
mod process_group {
    use tokio::process::Command;

    /// Puts the shell in its own process group (so a timeout or Ctrl-C kills everything it
    /// started). No `pre_exec` hook: that would force fork+exec instead of the much cheaper
    /// posix_spawn. Orphans of a dagrun killed with SIGKILL are reaped by the next run.
    pub fn configure(cmd: &mut Command) {
        cmd.process_group(0);
    }

    /// Kills the whole process group led by `pid`.
    pub fn kill(pid: Option<u32>) {
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }

    /// Whether a process with this pid exists.
    pub fn alive(pid: u32) -> bool {
        let Ok(pid) = i32::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks for existence; no memory involved.
        pid > 0 && unsafe { libc::kill(pid, 0) } == 0
    }
}

#[cfg(not(unix))]
mod process_group {
    use tokio::process::Command;

    pub fn configure(_cmd: &mut Command) {}

    pub fn kill(_pid: Option<u32>) {}

    pub fn alive(_pid: u32) -> bool {
        true
    }
}
