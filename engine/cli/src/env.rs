//! Every environment variable dagrun reads, declared in one place.

/// State directory (default: `.dagrun/` beside the workflow file). Same as `--state-dir`.
pub const STATE_DIR: &str = "DAGRUN_STATE_DIR";
/// `0` turns off fsync of cache writes (faster; survives `kill -9` but not power loss).
pub const FSYNC: &str = "DAGRUN_FSYNC";
/// The dagrun SDK directory used by `dagrun plugin new` (same as `--sdk`).
pub const SDK: &str = "DAGRUN_SDK";
/// Cargo target directory shared by all plugin crate builds (read by `dagrun-wasm`).
#[allow(dead_code)]
pub const PLUGIN_TARGET_DIR: &str = dagrun_wasm::PLUGIN_TARGET_DIR_ENV;
/// Where compiled plugins are cached (read by `dagrun-wasm`; default `~/.cache/dagrun/wasm`).
#[allow(dead_code)]
pub const WASM_CACHE: &str = dagrun_wasm::COMPILED_CACHE_ENV;
/// Any value turns off colours (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether `name` is set to a value that means "off".
pub fn is_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "no" | "off"))
}
