//! Typed task outcomes: how a task failed, and what an attempt can end with.

use serde::{Deserialize, Serialize};

/// How a task failed, for people and for scripts (`--json`, run records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// A command exited non-zero.
    ExitCode {
        /// Its exit code.
        code: i32,
    },
    /// A command was killed by a signal.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// The task ran past its `timeout` (or a plugin past its deadline).
    Timeout,
    /// A plugin trapped: a panic, a memory cap, or a WebAssembly trap.
    Trap,
    /// The task's params do not match what its plugin accepts.
    InvalidParams,
    /// The task succeeded but did not write a declared output.
    MissingOutput {
        /// The output's name.
        output: String,
    },
    /// A declared output's real path (symbolic links resolved) leaves the workflow directory
    /// or lies inside the state directory: nothing is deleted or written there.
    OutputPath {
        /// The output's name.
        output: String,
    },
    /// Its inputs could not be resolved (a missing file, an empty glob, nothing deployed).
    Input,
    /// A plugin could not be built or loaded, or returned an error.
    Plugin,
    /// An ONNX evaluation or prediction failed.
    Model,
    /// A data file could not be read or compared (`Drift`, `Performance`).
    Data,
    /// Its outputs could not be stored in or restored from the cache.
    Cache,
    /// The process could not be started or its log not written.
    Spawn,
    /// A remote job (Slurm, Ray) could not be submitted, failed, or was cancelled by its
    /// cluster.
    Remote {
        /// `slurm` or `ray`.
        executor: String,
        /// The cluster's job id, when it got one.
        job: Option<String>,
    },
}

/// A task failure: its kind and the message a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    /// What kind of failure.
    pub failure: Failure,
    /// The whole message.
    pub message: String,
    /// It would fail the same way again: not retried.
    pub permanent: bool,
}

impl TaskError {
    /// A failure worth retrying (if the task has retries).
    pub fn new(failure: Failure, message: impl Into<String>) -> TaskError {
        TaskError { failure, message: bounded(message.into()), permanent: false }
    }

    /// A failure that would repeat identically: never retried.
    pub fn permanent(failure: Failure, message: impl Into<String>) -> TaskError {
        TaskError { failure, message: bounded(message.into()), permanent: true }
    }
}

/// An error text cut to [`dagrun_wasm::MAX_ERROR_BYTES`] (64 KiB) with a marker: what the
/// terminal, the JSON events and the run record get.
pub(crate) fn bounded(message: String) -> String {
    dagrun_wasm::truncate_text(message, dagrun_wasm::MAX_ERROR_BYTES)
}

/// How one attempt of a task ended, when it did not succeed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// It failed.
    Failed(TaskError),
    /// An evaluation gate refused the model, or a person rejected it (a decision: never
    /// retried).
    Refused {
        /// Why, for people: `gate refused: accuracy 0.62 < min 0.7`.
        reason: String,
        /// The decision (a gate's: the metric that failed and by how much), kept in the run
        /// history.
        summary: Option<serde_json::Value>,
    },
    /// A monitoring check found drift or a regression and was told to fail on it
    /// (`fail_on_drift`, `fail_on_regression`): a finding, never retried.
    Alert {
        /// Why, for people: `drift: 2 of 10 columns drifted ...`.
        reason: String,
        /// The task's summary (what it found), kept in the run history like a success's.
        summary: Option<serde_json::Value>,
    },
    /// A monitoring check found drift during its cooldown: reported, not acted on.
    Held {
        /// Why, for people.
        reason: String,
        /// What it found.
        summary: Option<serde_json::Value>,
    },
    /// An `Approval` step asked a person: the run is parked until they decide.
    Waiting {
        /// What it waits for, for people (with the command to act).
        reason: String,
        /// The request.
        summary: Option<serde_json::Value>,
    },
    /// The run was interrupted.
    Cancelled,
}

impl From<TaskError> for AttemptError {
    fn from(e: TaskError) -> AttemptError {
        AttemptError::Failed(e)
    }
}
