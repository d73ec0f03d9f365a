//! The WASM plugin host: loads task plugins (wasmtime components), runs each task in a fresh
//! sandbox, caches compiled components on disk, and builds plugin crates on demand.
//!
//! One [`PluginHost`] per process holds the wasmtime `Engine`, the linker, an epoch ticker
//! and an in-memory cache of loaded plugins. Each run gets a fresh `Store`: its inputs are
//! preopened read-only, a fresh output directory read-write, nothing else of the filesystem,
//! no network, no environment variables, a memory cap and a wall-clock deadline.

mod bindings;
mod build;
mod capture;
mod error;
mod host;
mod interrupt;
mod sandbox;

pub use sandbox::run;

pub use build::{
    BuildError, OUTER_CARGO_ENV, PLUGIN_TARGET_DIR_ENV, PluginSource, build_plugin_crate, built_plugin, cargo_build,
    plugin_source,
};
pub use capture::{
    CAPTURE_BYTES, CappedLog, DEFAULT_LOG_BYTES, MAX_ERROR_BYTES, MAX_SUMMARY_BYTES, bound_summary, log_marker,
    truncate_text,
};
pub use error::{PluginError, invalid_param_name};
pub use host::{COMPILED_CACHE_ENV, LoadedPlugin, PluginHost, PluginInfo, WIT_VERSION, compiled_cache_dir};
pub use sandbox::{InputMount, Limits, Mount, PluginRun, RunOutcome};
