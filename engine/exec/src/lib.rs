//! Execution: runs a planned workflow on tokio with parallelism, retries, timeouts,
//! cancellation, cache restore, events for reporters, and run history.

mod command;
mod events;
mod history;
mod onnx_task;
mod runner;
mod task;
mod wasm_task;

pub use command::tail;
pub use events::{Counts, Event, Reporter, RunStatus, TaskStatus, peak_rss_kb};
pub use history::{RUN_RECORD_VERSION, RunRecord, TaskRecord, new_run_id};
pub use onnx_task::{VERDICT_VERSION, Verdict};
pub use runner::{ExecError, RunContext, RunOptions, run};
