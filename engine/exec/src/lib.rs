//! Execution: the run API ([`prepare`], [`Engine::run`]), the scheduler, one module per task
//! kind, the cache commit step, events for reporters, and run history.

mod aftermath;
pub mod approvals;
mod cancel;
mod commit;
mod engine;
mod events;
mod gate;
mod history;
mod history_sync;
mod job;
mod kinds;
mod notices;
mod outcome;
mod paths;
mod preload;
pub mod process;
mod procs;
mod quick;
mod registries;
mod remote;
mod remote_exec;
mod remote_sync;
mod scheduler;
mod shared;
mod spawn;
mod when;

pub use cancel::Cancel;
pub use dagrun_history as history_store;
pub use dagrun_remote as remote_cache;
pub use dagrun_remote::{Published, RemoteUrl};
pub use engine::{
    Engine, PrepareError, RunError, RunOptions, RunPlan, RunRequest, load_workflow, load_workflow_with, prepare,
    prepare_loaded,
};
pub use events::{Counts, Event, Reporter, RunStatus, TaskStatus, peak_rss_kb};
pub use history::{RUN_RECORD_VERSION, RecordError, RegistryChange, RunRecord, TaskRecord, new_run_id};
pub use history_sync::{Synced, sync_history};
pub use kinds::tail;
pub use outcome::{Failure, TaskError};
pub use remote::{RemoteMode, RemoteOptions};
pub use remote_exec::{ExecTaskError, ExecTaskReport, SPEC_VERSION, exec_task};
pub use remote_sync::{SyncError, SyncReport, pull_cache, push_cache};
