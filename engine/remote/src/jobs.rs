//! What Slurm and Ray jobs have in common: the states dagrun tells apart and what can go wrong
//! while submitting, polling or cancelling one.

/// A remote job's state, as far as dagrun cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued, not started yet.
    Pending,
    /// Running.
    Running,
    /// Ended with success.
    Succeeded,
    /// Ended with a failure (`detail`: the cluster's own words: state, reason, exit code).
    Failed {
        /// The cluster's state line.
        detail: String,
    },
    /// Cancelled or stopped (by dagrun or by someone else).
    Cancelled {
        /// The cluster's state line.
        detail: String,
    },
    /// The cluster no longer knows the job (ended long ago, or purged).
    Gone,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// Submitting, polling or cancelling a remote job failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The cluster refused the job (`sbatch`'s error, the Jobs API's answer).
    #[error("{executor} refused the job: {message}")]
    Refused {
        /// `Slurm` or `Ray`.
        executor: &'static str,
        /// What it said.
        message: String,
    },
    /// A Slurm tool failed or could not be run.
    #[error("{what} failed: {message}")]
    Tool {
        /// What was being done.
        what: String,
        /// Its error output.
        message: String,
    },
    /// The Ray cluster could not be reached.
    #[error(
        "the Ray cluster at {address} is not reachable ({message}); start it (`ray start --head`) or fix `executor: Ray(address: ...)`"
    )]
    Unreachable {
        /// The Jobs API address.
        address: String,
        /// The client's error.
        message: String,
    },
    /// The Jobs API answered something unexpected.
    #[error("the Ray Jobs API at {address} answered {what}: {message}")]
    Api {
        /// The Jobs API address.
        address: String,
        /// Which request.
        what: String,
        /// Status and body, shortened.
        message: String,
    },
}
