//! The `Command` kind: `sh -c` with `DAGRUN_*` variables, output captured to a log, timeout and
//! cancellation (the whole process group is killed), and orphans of a killed run reaped.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;

use dagrun_wasm::CappedLog;

use dagrun_plan::instance_params;
use dagrun_workflow::{CommandTask, duration};

use crate::cancel::cancelled;
use crate::kinds::{Attempt, AttemptFuture, Job, Kind};
use crate::outcome::{AttemptError, Failure, TaskError};
use crate::process::group as process_group;
use crate::spawn::{self, Spawn};

/// Everything one attempt needs (also what `dagrun exec-task` runs on a remote node).
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    /// The shell command line.
    pub run: String,
    /// Environment variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory (the workflow directory).
    pub cwd: PathBuf,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Cap of the log, in bytes.
    pub log_bytes: u64,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Directory recording running process groups, so a later run can reap orphans of a
    /// dagrun that was killed with SIGKILL.
    pub procs: PathBuf,
}

/// A `Command` task prepared for one instance.
#[derive(Debug)]
pub(crate) struct CommandKind {
    spec: CommandSpec,
}

impl CommandKind {
    pub(crate) fn new(job: &Job<'_>, c: &CommandTask) -> CommandKind {
        let run = job.run;
        CommandKind {
            spec: CommandSpec {
                run: c.run.clone(),
                env: command_env(job, c.env.iter()),
                cwd: run.workflow.dir.clone(),
                log: job.log.to_owned(),
                log_bytes: run.log_bytes,
                timeout: job.task().timeout,
                procs: run.store.root().join("procs"),
            },
        }
    }
}

impl Kind for CommandKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        // A first attempt's log cannot exist yet: the run's log directory is its own.
        let fresh = a.number == 1 && a.run.logs_ready();
        Box::pin(async move { run_attempt(&self.spec, fresh, a.cancel).await.map(|()| None) })
    }
}

/// What the `DAGRUN_*` variables of a command are made of, wherever it runs.
pub(crate) struct EnvParts<'a> {
    /// The task's name.
    pub task: &'a str,
    /// The run's id.
    pub run_id: &'a str,
    /// The directory relative paths resolve against (the command's working directory).
    pub workflow_dir: &'a Path,
    /// The instance's params as a JSON object.
    pub params: String,
    /// Its partition key.
    pub partition: Option<&'a str>,
    /// Each input: name, whether it is a list, its files.
    pub inputs: Vec<(&'a str, bool, Vec<&'a Path>)>,
    /// Each output: name, its path.
    pub outputs: Vec<(&'a str, &'a Path)>,
}

/// `DAGRUN_*` variables: task, run, partition, params, and one variable per input and output;
/// then the task's own `env`.
pub(crate) fn task_env<'a>(
    p: &EnvParts<'_>,
    user: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    let var = |prefix: &str, name: &str| format!("{prefix}{}", name.to_uppercase().replace('-', "_"));
    let abs = |p: &Path| p.display().to_string();
    let mut env = vec![
        ("DAGRUN_TASK".to_owned(), p.task.to_owned()),
        ("DAGRUN_RUN_ID".to_owned(), p.run_id.to_owned()),
        ("DAGRUN_WORKFLOW_DIR".to_owned(), abs(p.workflow_dir)),
        ("DAGRUN_PARAMS".to_owned(), p.params.clone()),
    ];
    if let Some(k) = p.partition {
        env.push(("DAGRUN_PARTITION".to_owned(), k.to_owned()));
    }
    for (name, list, files) in &p.inputs {
        let value = if *list {
            files.iter().map(|f| abs(f)).collect::<Vec<_>>().join("\n")
        } else {
            files.first().map(|f| abs(f)).unwrap_or_default()
        };
        env.push((var("DAGRUN_IN_", name), value));
    }
    for (name, path) in &p.outputs {
        env.push((var("DAGRUN_OUT_", name), abs(path)));
    }
    env.extend(user.map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// [`task_env`] of a local instance.
fn command_env<'a>(job: &Job<'_>, user: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    let run = job.run;
    let node = &run.instances.nodes[job.index];
    let params = instance_params(&run.workflow, &run.instances, job.index);
    let parts = EnvParts {
        task: &job.task().name,
        run_id: &run.run_id,
        workflow_dir: &run.workflow.dir,
        params: serde_json::Value::Object(params).to_string(),
        partition: node.partition.as_ref().map(|p| p.key.as_str()),
        inputs: job
            .probe
            .resolved
            .files
            .iter()
            .map(|(name, input)| (name.as_str(), input.list, input.files.iter().map(|f| f.path.as_path()).collect()))
            .collect(),
        outputs: job.outputs.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect(),
    };
    task_env(&parts, user)
}

fn tail_text(tail: &str) -> String {
    if tail.is_empty() { String::new() } else { format!("; last output:\n{tail}") }
}

/// The last `n` lines of a file (best effort).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn spawn_error(e: std::io::Error) -> AttemptError {
    AttemptError::Failed(TaskError::new(Failure::Spawn, format!("cannot start `sh`: {e}")))
}

/// The shell: an absolute path skips the PATH search (measurable when a backfill starts
/// thousands), looked up once per process rather than once per command.
fn shell() -> &'static str {
    static SHELL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    SHELL.get_or_init(|| if Path::new("/bin/sh").exists() { "/bin/sh" } else { "sh" })
}

/// `/dev/null` for a command's stdin: opened once per process (a descriptor instead of a path
/// look-up per command).
fn dev_null() -> Option<&'static std::fs::File> {
    static NULL: std::sync::OnceLock<std::io::Result<std::fs::File>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| std::fs::File::open("/dev/null")).as_ref().ok()
}

/// A started command: by [`spawn::spawn`], or by tokio where that cannot (not Linux, no pidfds,
/// no `/dev/null` open).
enum Running {
    Own(spawn::Child),
    Tokio(tokio::process::Child),
}

impl Running {
    fn id(&self) -> Option<u32> {
        match self {
            Running::Own(c) => Some(c.id()),
            Running::Tokio(c) => c.id(),
        }
    }

    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            Running::Own(c) => c.wait().await,
            Running::Tokio(c) => c.wait().await,
        }
    }
}

/// Starts the shell with the command, its output into `out` (the pipe's write end, closed here
/// once the command has its own copy), in its own process group.
fn start(spec: &CommandSpec, out: std::io::PipeWriter) -> std::io::Result<Running> {
    let null = dev_null();
    if let Some(null) = null {
        let s = Spawn {
            program: shell(),
            script: &spec.run,
            cwd: &spec.cwd,
            vars: &spec.env,
            stdin: null.as_fd(),
            out: out.as_fd(),
        };
        if let Some(child) = spawn::spawn(&s)? {
            return Ok(Running::Own(child));
        }
    }
    let stdin = match null {
        Some(f) => Stdio::from(f.try_clone()?),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(shell());
    cmd.arg("-c")
        .arg(&spec.run)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    process_group::configure(&mut cmd);
    cmd.spawn().map(Running::Tokio)
}

/// Runs the command once. Its whole process group is killed on timeout or cancellation.
/// `fresh`: the log's directory exists and holds no log of this task yet.
pub(crate) async fn run_attempt(
    spec: &CommandSpec,
    fresh: bool,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), AttemptError> {
    // stdout and stderr share one pipe (their order is kept) read by dagrun into the capped log,
    // which is only created when the command prints something. Its directory is made now, so an
    // unwritable state directory fails the task before the command runs; an earlier attempt's
    // log is removed.
    let log = if fresh {
        CappedLog::on_first_write_new(&spec.log, spec.log_bytes)
    } else {
        if let Some(dir) = spec.log.parent() {
            dagrun_cache::ensure_dir(dir).map_err(spawn_error)?;
        }
        CappedLog::on_first_write(&spec.log, spec.log_bytes).map_err(spawn_error)?
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    // Our copies of the pipe's write end are closed once it started, so the reader sees the end.
    let mut child = start(spec, writer).map_err(spawn_error)?;
    let pid = child.id();
    let _record = pid.and_then(|p| crate::procs::record(&spec.procs, p));
    // The output is copied by this attempt itself, beside the wait for the command: a task of
    // its own would cost a hand-off between threads at every command's end.
    let copy = copy_capped(reader, log, spec.log.clone());
    tokio::pin!(copy);
    let mut lost = None;
    let sleep = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let status = loop {
        tokio::select! {
            why = &mut copy, if lost.is_none() => lost = Some(why),
            status = child.wait() => break status,
            () = &mut sleep => {
                process_group::kill(pid);
                let _ = child.wait().await;
                finish_copy(copy, lost).await;
                let after = duration::format(spec.timeout.unwrap_or_default());
                return Err(TaskError::new(Failure::Timeout, format!("timed out after {after} (the task's `timeout`)")).into());
            }
            () = cancelled(cancel) => {
                process_group::kill(pid);
                let _ = child.wait().await;
                return Err(AttemptError::Cancelled);
            }
        }
    };
    let lost = finish_copy(copy, lost).await;
    let status = status.map_err(spawn_error)?;
    if let Some(why) = lost.filter(|_| status.success()) {
        let message = format!("the command succeeded, but {why}");
        return Err(TaskError::new(Failure::Spawn, message).into());
    }
    if status.success() {
        return Ok(());
    }
    let (failure, status_text) = match status.code() {
        Some(code) => (Failure::ExitCode { code }, format!("exit code {code}")),
        None => {
            #[cfg(unix)]
            let signal = {
                use std::os::unix::process::ExitStatusExt;
                status.signal().unwrap_or(0)
            };
            #[cfg(not(unix))]
            let signal = 0;
            (Failure::Signal { signal }, format!("killed by signal {signal}"))
        }
    };
    let message = format!("{status_text}{}", tail_text(&tail(&spec.log, 20)));
    Err(TaskError::new(failure, message).into())
}

/// Copies the command's output into its log until the pipe closes; past the cap the rest is
/// read and dropped (the command never blocks on a full pipe). Returns why output was lost, if
/// it was (the log could not be created, the pipe not read).
async fn copy_capped(reader: std::io::PipeReader, mut log: CappedLog, path: PathBuf) -> Option<String> {
    let fd = std::os::fd::OwnedFd::from(reader);
    let mut pipe = match tokio::process::ChildStdout::from_std(std::process::ChildStdout::from(fd)) {
        Ok(p) => p,
        Err(e) => return Some(format!("its output could not be read: {e}")),
    };
    // Not 64 KiB: glibc consolidates its free lists on every free of a chunk that large, and
    // most commands print little or nothing.
    let mut buf = vec![0u8; 16 << 10];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        log.write(&buf[..n]);
    }
    log.take_error().map(|e| format!("its output could not be written to its log {}: {e}", path.display()))
}

/// Waits for the copy to reach the end of the pipe (`lost`: what it returned, if it already has);
/// a background process of the command that keeps the pipe open is not waited for beyond a
/// short grace. Returns why output was lost.
async fn finish_copy(
    copy: std::pin::Pin<&mut impl std::future::Future<Output = Option<String>>>,
    lost: Option<Option<String>>,
) -> Option<String> {
    match lost {
        Some(why) => why,
        None => tokio::time::timeout(Duration::from_millis(500), copy).await.ok().flatten(),
    }
}
