//! The local side of a remote task: ship the inputs and the spec, submit the job, wait for it
//! (cancelling it on Ctrl-C or timeout), attach its log, then restore the outputs it published
//! like a cache hit. A failed job is a failed attempt: retries and backoff apply as locally.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dagrun_cache::{ActionKey, ObjectDigest};
use dagrun_remote::{JobState, RemoteCache};
use dagrun_workflow::duration;

use crate::cancel::cancelled;
use crate::commit::restore_outputs;
use crate::kinds::{Attempt, AttemptFuture, Job, Kind};
use crate::outcome::{AttemptError, Failure, TaskError};
use crate::remote_exec::backend::{Backend, Submitted};
use crate::remote_exec::sh_quote;
use crate::remote_exec::spec::TaskSpec;
use crate::shared::RunShared;

/// How long a cancelled job may take to end before dagrun stops waiting for it.
const CANCEL_GRACE: Duration = Duration::from_secs(15);
/// Lines of a failed job's log quoted in its failure message.
const TAIL_LINES: usize = 20;

/// A task prepared to run as a remote job.
pub(crate) struct RemoteKind {
    spec: TaskSpec,
    /// Local files the spec names: uploaded before each submission (skipped when present).
    files: Vec<(PathBuf, ObjectDigest)>,
    backend: Backend,
    timeout: Option<Duration>,
}

impl RemoteKind {
    pub(crate) fn new(job: &Job<'_>) -> Result<RemoteKind, TaskError> {
        let task = job.task();
        let executor = &task.executor;
        let remote =
            |e: String| TaskError::permanent(Failure::Remote { executor: executor.label().into(), job: None }, e);
        if !job.run.remote_exec.configured() {
            return Err(remote(format!(
                "task `{}` runs on {}, which needs a remote cache for its inputs and outputs: set DAGRUN_REMOTE_CACHE=s3://BUCKET/PREFIX (and AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY for it)",
                task.name,
                executor.label()
            )));
        }
        let backend = Backend::of(executor)
            .map_err(|e| remote(e.to_string()))?
            .ok_or_else(|| remote("not a remote executor".into()))?;
        let (spec, files) = TaskSpec::of(job)?;
        Ok(RemoteKind { spec, files, backend, timeout: task.timeout })
    }

    fn failure(&self, job: Option<&str>) -> Failure {
        Failure::Remote { executor: self.backend.name().to_lowercase(), job: job.map(str::to_owned) }
    }

    /// Uploads the inputs, the plugin and the spec (objects already there are skipped).
    async fn ship(&self, cache: &RemoteCache) -> Result<(), TaskError> {
        let fail = |e: String| TaskError::new(Failure::Cache, format!("cannot ship the task to the remote cache: {e}"));
        for (path, digest) in &self.files {
            cache.upload_file(path, digest).await.map_err(|e| fail(e.to_string()))?;
        }
        let bytes = serde_json::to_vec_pretty(&self.spec).map_err(|e| fail(e.to_string()))?;
        cache.put_spec(&self.spec.key, bytes).await.map_err(|e| fail(e.to_string()))
    }

    /// The shell command the job runs.
    fn command(&self, run: &RunShared, cache: &RemoteCache) -> String {
        let bin = run.remote_exec.bin();
        format!(
            "exec {} exec-task --remote-cache {} --key {}",
            sh_quote(&bin.to_string_lossy()),
            sh_quote(&cache.url().to_string()),
            self.spec.key.0.to_hex()
        )
    }

    async fn run(&self, a: Attempt<'_>) -> Result<Option<serde_json::Value>, AttemptError> {
        let run = a.run.clone();
        let log = TaskLog::create(a.log)?;
        let cache = run.remote_exec.cache().map_err(|e| TaskError::new(Failure::Cache, e))?;
        tokio::select! {
            shipped = self.ship(cache) => shipped?,
            () = cancelled(a.cancel) => return Err(AttemptError::Cancelled),
        }
        let name = job_name(&self.spec, &run.run_id, a.number);
        let output =
            a.log.with_file_name(format!("{}.job-{}.log", self.spec.instance.replace(['/', ':'], "_"), a.number));
        let submitted = self
            .backend
            .submit(&name, &self.command(&run, cache), output, aws_env())
            .await
            .map_err(|e| TaskError::new(self.failure(None), e.to_string()))?;
        let what = format!("{} job {}", self.backend.name(), submitted.id);
        log.line(&format!("[dagrun] submitted {what} (exec-task of key {})", self.spec.key.0.short()));
        let timeout = async {
            match self.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let state = tokio::select! {
            s = self.wait(&submitted) => s,
            () = timeout => {
                self.stop(&submitted, &log).await;
                let after = duration::format(self.timeout.unwrap_or_default());
                let msg = format!("timed out after {after} (the task's `timeout`); {what} was cancelled");
                return Err(TaskError::new(Failure::Timeout, msg).into());
            }
            () = cancelled(a.cancel) => {
                self.stop(&submitted, &log).await;
                return Err(AttemptError::Cancelled);
            }
        };
        let state = state.map_err(|e| TaskError::new(self.failure(Some(&submitted.id)), format!("{what}: {e}")))?;
        let job_log = self.backend.log(&submitted).await;
        log.attach(&what, &job_log);
        self.finish(&run, a.index, cache, &what, &submitted, state, &job_log).await
    }

    /// Polls until the job ends: every 250 ms for the first 10 s (short jobs are noticed
    /// quickly), then less and less often, down to every 2 s. A few failed polls in a row (a
    /// busy controller) are tolerated.
    async fn wait(&self, job: &Submitted) -> Result<JobState, dagrun_remote::ExecutorError> {
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut errors = 0;
        loop {
            match self.backend.state(job).await {
                Ok(s) if s.is_final() => return Ok(s),
                Ok(_) => errors = 0,
                Err(e) if errors >= 5 => return Err(e),
                Err(_) => errors += 1,
            }
            tokio::time::sleep(delay).await;
            if started.elapsed() > Duration::from_secs(10) {
                delay = (delay * 3 / 2).min(Duration::from_secs(2));
            }
        }
    }

    /// Cancels the job and waits (briefly) for it to end.
    async fn stop(&self, job: &Submitted, log: &TaskLog) {
        let what = format!("{} job {}", self.backend.name(), job.id);
        if let Err(e) = self.backend.cancel(job).await {
            log.line(&format!("[dagrun] cancelling {what} failed: {e}"));
            return;
        }
        match tokio::time::timeout(CANCEL_GRACE, self.wait(job)).await {
            Ok(Ok(s)) => log.line(&format!("[dagrun] cancelled {what} ({s:?})")),
            _ => log.line(&format!("[dagrun] asked to cancel {what}; it had not ended after {CANCEL_GRACE:?}")),
        }
        log.attach(&what, &self.backend.log(job).await);
    }

    /// After the job ended: restores its outputs, or says why there are none.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        run: &Arc<RunShared>,
        index: usize,
        cache: &RemoteCache,
        what: &str,
        job: &Submitted,
        state: JobState,
        job_log: &str,
    ) -> Result<Option<serde_json::Value>, AttemptError> {
        let fail = |msg: String| -> AttemptError { TaskError::new(self.failure(Some(&job.id)), msg).into() };
        let last = last_lines(job_log);
        match &state {
            JobState::Failed { detail } => return Err(fail(format!("{what} failed ({detail}){last}"))),
            JobState::Cancelled { detail } => {
                return Err(fail(format!("{what} was cancelled by {} ({detail}){last}", self.backend.name())));
            }
            JobState::Succeeded | JobState::Gone | JobState::Pending | JobState::Running => {}
        }
        let key = self.spec.key;
        let pulled = cache.pull(&run.store, &key).await.map_err(|e| {
            TaskError::new(Failure::Cache, format!("{what} ended but its outputs could not be fetched: {e}"))
        })?;
        let Some(entry) = pulled else {
            let ended = if state == JobState::Gone { "is no longer known to its cluster" } else { "succeeded" };
            return Err(fail(format!("{what} {ended} but published no cache entry for key {}{last}", key.0.short())));
        };
        restore(run, index, entry, key).await
    }
}

impl Kind for RemoteKind {
    fn attempt<'a>(&'a self, a: Attempt<'a>) -> AttemptFuture<'a> {
        Box::pin(self.run(a))
    }
}

/// Puts the pulled entry's outputs at the declared paths (blocking work on its own thread).
async fn restore(
    run: &Arc<RunShared>,
    index: usize,
    entry: dagrun_cache::ActionEntry,
    key: ActionKey,
) -> Result<Option<serde_json::Value>, AttemptError> {
    let r = run.clone();
    let restored = tokio::task::spawn_blocking(move || restore_outputs(&r, index, &entry)).await;
    match restored {
        Ok(Ok(())) => Ok(None),
        Ok(Err(e)) => Err(TaskError::new(
            Failure::Cache,
            format!("cannot restore the outputs of key {} from the remote cache: {e}", key.0.short()),
        )
        .into()),
        Err(e) => Err(TaskError::new(Failure::Cache, format!("internal error while restoring: {e}")).into()),
    }
}

/// A readable, unique job name: `dagrun-<instance>-<key>-<run>-<attempt>` in `[A-Za-z0-9_-]`.
fn job_name(spec: &TaskSpec, run_id: &str, attempt: u32) -> String {
    let raw = format!("dagrun-{}-{}-{run_id}-{attempt}", spec.instance, spec.key.0.short());
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The `AWS_*` variables of this process: a Ray job needs them to reach the remote cache.
fn aws_env() -> BTreeMap<String, String> {
    std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect()
}

/// `; last lines of its log:\n...` (empty for an empty log).
fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if tail.trim().is_empty() { String::new() } else { format!("; last lines of its log:\n{tail}") }
}

/// The task's log: dagrun's lines about the job, then the job's own log.
struct TaskLog(PathBuf);

impl TaskLog {
    fn create(path: &Path) -> Result<TaskLog, TaskError> {
        let spawn = |e: std::io::Error| TaskError::new(Failure::Spawn, format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            dagrun_cache::ensure_dir(dir).map_err(spawn)?;
        }
        std::fs::write(path, b"").map_err(spawn)?;
        Ok(TaskLog(path.to_owned()))
    }

    fn append(&self, text: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&self.0) {
            let _ = f.write_all(text.as_bytes());
        }
    }

    fn line(&self, text: &str) {
        self.append(&format!("{text}\n"));
    }

    fn attach(&self, what: &str, job_log: &str) {
        self.line(&format!("[dagrun] --- the log of {what} ---"));
        self.append(job_log);
        if !job_log.ends_with('\n') {
            self.append("\n");
        }
        self.line(&format!("[dagrun] --- end of the log of {what} ---"));
    }
}
