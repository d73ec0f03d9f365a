//! Exit codes: documented in README.md and docs/cli.md; scripts rely on them.

use std::process::ExitCode;

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
    /// 75: another run holds the state directory (try again later).
    Busy = 75,
    /// 70: dagrun itself failed (state directory unwritable, I/O error).
    Internal = 70,
    /// 130: interrupted by Ctrl-C.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
