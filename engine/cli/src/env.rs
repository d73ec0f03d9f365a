//! Every environment variable the CLI itself reads, declared in one place. Plugin builds and the
//! compiled-plugin cache read theirs in `dagrun-wasm` (`dagrun_wasm::PLUGIN_TARGET_DIR_ENV`,
//! `dagrun_wasm::COMPILED_CACHE_ENV`).

/// State directory (default: `.dagrun/` beside the workflow file). Same as `--state-dir`.
pub const STATE_DIR: &str = "DAGRUN_STATE_DIR";
/// `0` turns off fsync of cache writes (faster; survives `kill -9` but not power loss).
pub const FSYNC: &str = "DAGRUN_FSYNC";
/// The dagrun SDK directory used by `dagrun plugin new` (same as `--sdk`).
pub const SDK: &str = "DAGRUN_SDK";
/// Cap of each task's log file (a size with its unit: `64MiB`, `500KB`, `1000B`); default 64 MiB. Past it the
/// log ends with a `[dagrun: log truncated: ...]` line and further output is dropped.
pub const LOG_MAX: &str = "DAGRUN_LOG_MAX";
/// Where `dagrun daemon` serves webhooks (same as `--listen`; default `127.0.0.1:7878`).
pub const LISTEN: &str = "DAGRUN_LISTEN";
/// Milliseconds `run`, `backfill` and `trigger` spend delivering due notifications after a run
/// (default 5000); `0`: none (the daemon or the next run delivers them).
pub const NOTIFY_BUDGET_MS: &str = "DAGRUN_NOTIFY_BUDGET_MS";
/// Where `dagrun serve` listens (same as `--addr`; default `127.0.0.1:8080`).
pub const SERVE_ADDR: &str = "DAGRUN_SERVE_ADDR";
/// Where `dagrun ui` listens (same as `--addr`; default `127.0.0.1:8765`).
pub const UI_ADDR: &str = "DAGRUN_UI_ADDR";
/// The shared remote cache, `s3://bucket/prefix` (overrides a workflow's `remote_cache`). Its
/// endpoint and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_PROFILE`), read by
/// `dagrun-remote`.
pub const REMOTE_CACHE: &str = "DAGRUN_REMOTE_CACHE";
/// How runs use the remote cache: `off`, `read` or `readwrite` (default `readwrite` when a
/// location is configured). `--remote-cache` overrides it.
pub const REMOTE_CACHE_MODE: &str = "DAGRUN_REMOTE_CACHE_MODE";
/// The `dagrun` binary remote jobs run, as the cluster's nodes see it (default: this one).
pub const REMOTE_BIN: &str = "DAGRUN_REMOTE_BIN";
/// Any value turns off colours (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether `name` is set to a value that means "off".
pub fn is_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "no" | "off"))
}

/// The task log cap: [`LOG_MAX`] or [`dagrun_wasm::DEFAULT_LOG_BYTES`].
pub fn log_max() -> Result<u64, crate::exit::Exit> {
    match std::env::var(LOG_MAX) {
        Err(_) => Ok(dagrun_wasm::DEFAULT_LOG_BYTES),
        Ok(v) => dagrun_workflow::size::parse(&v)
            .map_err(|why| crate::commands::error(format!("invalid {LOG_MAX}={v:?}: {why}"), crate::exit::Exit::Usage)),
    }
}

/// The time for notifications after a run: [`NOTIFY_BUDGET_MS`] or 5 s.
pub fn notify_budget() -> Result<std::time::Duration, crate::exit::Exit> {
    match std::env::var(NOTIFY_BUDGET_MS) {
        Err(_) => Ok(std::time::Duration::from_secs(5)),
        Ok(v) => v.trim().parse().map(std::time::Duration::from_millis).map_err(|_| {
            crate::commands::error(
                format!("invalid {NOTIFY_BUDGET_MS}={v:?}: expected a number of milliseconds, e.g. 5000 (0: none)"),
                crate::exit::Exit::Usage,
            )
        }),
    }
}

/// The remote cache as the environment sets it: [`REMOTE_CACHE`] and [`REMOTE_CACHE_MODE`].
pub fn remote_cache() -> Result<dagrun_exec::RemoteOptions, crate::exit::Exit> {
    let usage = |msg: String| crate::commands::error(msg, crate::exit::Exit::Usage);
    let location = match std::env::var(REMOTE_CACHE) {
        Err(_) => None,
        Ok(v) if v.trim().is_empty() => None,
        Ok(v) => Some(v.trim().parse().map_err(|e| usage(format!("invalid {REMOTE_CACHE}: {e}")))?),
    };
    let mode = match std::env::var(REMOTE_CACHE_MODE) {
        Err(_) => None,
        Ok(v) => Some(
            crate::args::RemoteMode::parse(&v)
                .map_err(|why| usage(format!("invalid {REMOTE_CACHE_MODE}={v:?}: {why}")))?
                .engine(),
        ),
    };
    Ok(dagrun_exec::RemoteOptions { location, mode })
}

/// [`REMOTE_BIN`], when set.
pub fn remote_bin() -> Option<std::path::PathBuf> {
    std::env::var_os(REMOTE_BIN).filter(|v| !v.is_empty()).map(std::path::PathBuf::from)
}
