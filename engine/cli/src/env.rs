//! Every environment variable the CLI itself reads, declared in one place. Plugin builds and the
//! compiled-plugin cache read theirs in `dagrun-wasm` (`dagrun_wasm::PLUGIN_TARGET_DIR_ENV`,
//! `dagrun_wasm::COMPILED_CACHE_ENV`).

/// State directory (default: `.dagrun/` beside the workflow file). Same as `--state-dir`.
pub const STATE_DIR: &str = "DAGRUN_STATE_DIR";
/// `0` turns off fsync of cache writes (faster; survives `kill -9` but not power loss).
pub const FSYNC: &str = "DAGRUN_FSYNC";
/// The dagrun SDK directory used by `dagrun plugin new` (same as `--sdk`).
pub const SDK: &str = "DAGRUN_SDK";
/// Any value turns off colours (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether `name` is set to a value that means "off".
pub fn is_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "no" | "off"))
}
