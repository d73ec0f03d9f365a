//! The remote cache's arguments: `--remote-cache MODE` (on `run`, `backfill`, `trigger`) and
//! `dagrun cache push|pull`'s instance selection.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::args::StateArgs;

/// `--remote-cache MODE`: how a run uses the shared remote cache.
#[derive(Debug, Args, Clone)]
pub struct RemoteArgs {
    /// Use the shared remote cache (DAGRUN_REMOTE_CACHE or the workflow's `remote_cache`):
    /// `off`, `read` (never writes) or `readwrite` (default when a location is configured);
    /// overrides DAGRUN_REMOTE_CACHE_MODE.
    #[arg(long = "remote-cache", value_enum, value_name = "MODE")]
    pub remote_cache: Option<RemoteMode>,
}

/// `--remote-cache`'s modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RemoteMode {
    /// Do not use the remote cache.
    Off,
    /// Look local misses up there; never write.
    Read,
    /// Look local misses up, and publish what runs here.
    Readwrite,
}

impl RemoteMode {
    /// `off`, `read` or `readwrite` (as `DAGRUN_REMOTE_CACHE_MODE` writes it).
    pub fn parse(s: &str) -> Result<RemoteMode, String> {
        <RemoteMode as ValueEnum>::from_str(s.trim(), true)
            .map_err(|_| "expected `off`, `read` or `readwrite`".to_owned())
    }

    /// The engine's mode.
    pub fn engine(self) -> dagrun_exec::RemoteMode {
        match self {
            RemoteMode::Off => dagrun_exec::RemoteMode::Off,
            RemoteMode::Read => dagrun_exec::RemoteMode::Read,
            RemoteMode::Readwrite => dagrun_exec::RemoteMode::ReadWrite,
        }
    }
}

/// `dagrun cache push|pull WORKFLOW`: the instances of a run of the latest partitions, of one
/// (`--partition`), of a range (`--from`, `--to`) or of a list (`--partitions`).
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    /// One partition (a key, or a date/time inside it); default: the latest complete ones.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["from", "partitions"])]
    pub partition: Option<String>,
    /// First partition (date or key), inclusive.
    #[arg(long, value_name = "DATE", requires = "to", conflicts_with = "partitions")]
    pub from: Option<String>,
    /// Last partition (date or key), inclusive.
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<String>,
    /// Exactly these partitions (comma-separated keys or dates).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub partitions: Vec<String>,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}
