//! Exit codes: documented in README.md and docs/cli.md; scripts rely on them. Every library
//! error and run outcome is mapped to one here, in one place.

use std::process::ExitCode;

use dagrun_exec::{PrepareError, RunError, RunStatus};

/// How a dagrun command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything succeeded (or was cached).
    Success = 0,
    /// 1: one or more tasks failed (their downstream was skipped).
    TaskFailed = 1,
    /// 2: the command line is wrong (unknown flag, unknown task name).
    Usage = 2,
    /// 3: the workflow file is invalid (syntax, unknown field, bad reference, cycle).
    InvalidWorkflow = 3,
    /// 4: an evaluation gate refused a model (and nothing else failed).
    GateRefused = 4,
    /// 5: `cache verify` found corrupt or broken entries (they were removed).
    CacheCorrupt = 5,
    /// 6: a monitoring check raised an alert: drift with `fail_on_drift`, a performance
    /// regression with `fail_on_regression` (and nothing failed or was refused).
    Alert = 6,
    /// 7: an `Approval` step waits for a person: the run is parked (`dagrun approvals` lists
    /// it, `dagrun approve RUN` lets it go on); nothing failed or was refused.
    Waiting = 7,
    /// 75: another run holds the state directory (try again later).
    Busy = 75,
    /// 70: dagrun itself failed (state directory unwritable, I/O error).
    Internal = 70,
    /// 130: interrupted by Ctrl-C.
    Interrupted = 130,
}

impl Exit {
    /// The exit code of a finished run.
    pub fn of_run(status: RunStatus) -> Exit {
        match status {
            RunStatus::Succeeded => Exit::Success,
            // A scheduler can tell "a worse model was blocked" from "something broke".
            RunStatus::Refused => Exit::GateRefused,
            RunStatus::Alerted => Exit::Alert,
            RunStatus::Waiting => Exit::Waiting,
            RunStatus::Failed => Exit::TaskFailed,
            RunStatus::Interrupted | RunStatus::Running => Exit::Interrupted,
        }
    }

    /// The exit code of a workflow that could not be prepared.
    pub fn of_prepare(e: &PrepareError) -> Exit {
        match e {
            PrepareError::Invalid(_) => Exit::InvalidWorkflow,
            PrepareError::Read(_)
            | PrepareError::UnknownTask(_)
            | PrepareError::Partition(_)
            | PrepareError::LeftOut { .. } => Exit::Usage,
        }
    }

    /// The exit code of a run that could not start or finish.
    pub fn of_run_error(e: &RunError) -> Exit {
        match e {
            RunError::Busy(_) => Exit::Busy,
            RunError::Store(_) | RunError::History(_) => Exit::Internal,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_outcomes_map_to_documented_codes() {
        let codes: Vec<u8> =
            [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Refused, RunStatus::Alerted, RunStatus::Interrupted]
                .into_iter()
                .map(|s| Exit::of_run(s) as u8)
                .collect();
        assert_eq!(codes, [0, 1, 4, 6, 130]);
    }
}
