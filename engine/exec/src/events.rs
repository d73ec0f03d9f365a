//! Events a run emits; the CLI's reporters (progress bars, plain lines, JSON) consume them.

use serde::Serialize;

use dagrun_cache::ActionKey;

use crate::outcome::Failure;

/// Final state of a task in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// It ran and succeeded.
    Succeeded,
    /// Its outputs came from the cache.
    Cached,
    /// It failed (after its retries).
    Failed,
    /// An evaluation gate refused the model: a decision, not a failure.
    Refused,
    /// A monitoring check (`Drift`, `Performance`) found drift or a regression and was set to
    /// fail on it: a finding, not a failure.
    Alerted,
    /// It did not run because something it needs failed or was refused (or the run was
    /// interrupted), or its `only_if` condition did not hold.
    Skipped,
    /// A monitoring check found drift during its cooldown: reported and notified, but its
    /// `only_if` dependents (a retrain) do not run. Not cached.
    Held,
    /// An `Approval` step asked a person and the run is parked: `dagrun approve RUN` (or
    /// `reject`) decides, and the next run of the workflow goes on from here. Not cached.
    Waiting,
}

impl TaskStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Cached => "cached",
            TaskStatus::Failed => "failed",
            TaskStatus::Refused => "refused",
            TaskStatus::Alerted => "alerted",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Held => "held",
            TaskStatus::Waiting => "waiting",
        }
    }
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    /// Ran and succeeded.
    pub succeeded: usize,
    /// Served from cache.
    pub cached: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Refused by an evaluation gate (not counted in `failed`).
    #[serde(default)]
    pub refused: usize,
    /// Monitoring alerts that stopped their task (not counted in `failed`).
    #[serde(default)]
    pub alerted: usize,
    /// Monitoring alerts held by a cooldown.
    #[serde(default)]
    pub held: usize,
    /// Approval steps waiting for a person.
    #[serde(default)]
    pub waiting: usize,
}

impl Counts {
    /// Adds one task.
    pub fn add(&mut self, s: TaskStatus) {
        match s {
            TaskStatus::Succeeded => self.succeeded += 1,
            TaskStatus::Cached => self.cached += 1,
            TaskStatus::Failed => self.failed += 1,
            TaskStatus::Refused => self.refused += 1,
            TaskStatus::Alerted => self.alerted += 1,
            TaskStatus::Skipped => self.skipped += 1,
            TaskStatus::Held => self.held += 1,
            TaskStatus::Waiting => self.waiting += 1,
        }
    }

    /// All tasks counted.
    pub fn total(&self) -> usize {
        self.succeeded
            + self.cached
            + self.failed
            + self.refused
            + self.alerted
            + self.skipped
            + self.held
            + self.waiting
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running (or the process died: seen only in history).
    Running,
    /// Every task succeeded or was cached.
    Succeeded,
    /// At least one task failed.
    Failed,
    /// Nothing failed, but an evaluation gate refused a model.
    Refused,
    /// Nothing failed or was refused, but a monitoring check raised an alert (drift or a
    /// performance regression, with `fail_on_drift` / `fail_on_regression`).
    Alerted,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// Nothing failed or was refused, but an `Approval` step waits for a person: the run is
    /// parked (`dagrun approvals` lists it; `dagrun approve RUN` lets it go on).
    Waiting,
}

impl RunStatus {
    /// Lower-case name (`running` for a run whose process died).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Refused => "refused",
            RunStatus::Alerted => "alerted",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Waiting => "waiting",
        }
    }
}

/// One thing that happened during a run. Serialized as `{"event": "...", ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run started.
    RunStarted {
        /// Run id (see `dagrun runs`).
        run_id: String,
        /// Workflow name.
        workflow: String,
        /// Number of task instances in this run (tasks × partitions).
        tasks: usize,
        /// Number of distinct partitions in this run (0 when nothing is partitioned).
        partitions: usize,
        /// Parallelism.
        jobs: usize,
    },
    /// A task's attempt started executing (not emitted for cache hits).
    TaskStarted {
        /// Task name.
        task: String,
        /// 1-based attempt number.
        attempt: u32,
    },
    /// An attempt failed and the task will be retried.
    TaskRetrying {
        /// Task name.
        task: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// Delay before the next attempt.
        delay_ms: u64,
    },
    /// A task reached its final state.
    TaskFinished {
        /// Task name.
        task: String,
        /// Final state.
        status: TaskStatus,
        /// Wall time spent on it in this run.
        duration_ms: u64,
        /// Cache key (hex in JSON), when computed.
        key: Option<ActionKey>,
        /// For a cache hit: how long the task took when it ran.
        saved_ms: u64,
        /// Attempts made (0 for cached/skipped).
        attempts: u32,
        /// How it failed (status `failed` only).
        failure: Option<Failure>,
        /// Failure, refusal or skip reason.
        error: Option<String>,
        /// Path of the task's captured output, when it ran.
        log: Option<String>,
        /// What a plugin returned as its summary (JSON), when it ran.
        summary: Option<serde_json::Value>,
        /// A cache hit served by the shared remote cache (see [`Event::RemoteHit`]).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        remote: bool,
    },
    /// A local miss was a hit in the shared remote cache: its objects were downloaded and
    /// verified, the entry recorded locally and the outputs restored (the task did not run).
    RemoteHit {
        /// Task name.
        task: String,
        /// Bytes of outputs the entry records.
        bytes: u64,
        /// Time spent asking, downloading and restoring.
        ms: u64,
    },
    /// The shared remote cache could not be used for something; the run goes on locally.
    /// Unreachable or misconfigured remotes are reported once per run, then left alone.
    RemoteWarning {
        /// The remote (`s3://bucket/prefix`; never credentials).
        remote: String,
        /// The task concerned, if one.
        task: Option<String>,
        /// What happened and what to do.
        message: String,
    },
    /// The run's tasks are done; it waits for uploads to the remote cache before it ends.
    RemoteWaiting {
        /// Uploads still going.
        uploads: usize,
    },
    /// What the run sent to the remote cache (reported at its end when it sent or kept anything).
    RemoteUploaded {
        /// The remote.
        remote: String,
        /// Entries published now.
        published: usize,
        /// Entries another runner had published first (left as they are).
        existing: usize,
        /// Entries that could not be sent: kept in `<state>/remote/pending` for the next run.
        pending: usize,
    },
    /// Selected tasks left out of a partial run (see `Instances::left_out`).
    TasksLeftOut {
        /// Their names.
        tasks: Vec<String>,
        /// Why, and how to run them.
        reason: String,
    },
    /// A cache entry or one of its objects was corrupt: it was deleted and the task runs again.
    CacheCorrupt {
        /// The task whose cached output it was.
        task: String,
        /// What was wrong.
        error: String,
    },
    /// Every instance of a partition reached its final state.
    PartitionFinished {
        /// The partition key.
        partition: String,
    },
    /// A plugin crate is being built (cargo, wasm32-wasip2, release).
    PluginBuildStarted {
        /// The `plugin` path as written in the workflow.
        plugin: String,
    },
    /// A plugin crate build ended.
    PluginBuildFinished {
        /// The `plugin` path.
        plugin: String,
        /// How long the build (or the freshness check) took.
        duration_ms: u64,
        /// The build error, if it failed.
        error: Option<String>,
    },
    /// Something went wrong that does not fail the run (after it: recording registry changes,
    /// queuing notifications, updating drift incidents).
    Warning {
        /// What, for people.
        message: String,
    },
    /// The run ended.
    RunFinished {
        /// Run id.
        run_id: String,
        /// Outcome.
        status: RunStatus,
        /// Counts by status.
        counts: Counts,
        /// Wall time of the run.
        duration_ms: u64,
        /// Compute time the cache saved.
        saved_ms: u64,
        /// Peak resident memory of this process, when known.
        peak_rss_kb: Option<u64>,
    },
}

/// Receives events. Implementations must be cheap: they are called from the scheduler.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn report(&self, event: &Event);
}

/// Peak resident set size of this process (Linux `VmHWM`), in KiB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
