//! Plugin crates: `Wasm(plugin: "plugins/train")` names a crate that dagrun builds with cargo
//! (wasm32-wasip2, release) when its sources changed since the last build.
//!
//! "Changed" is a fingerprint of the size and mtime of every source file of the crate and of its
//! path dependencies. Touching a file triggers a rebuild; the cache key uses the built wasm
//! bytes, so a rebuild that produces the same bytes stays a cache hit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

/// Environment variable: a cargo target directory shared by every plugin crate build (so
/// plugins reuse each other's compiled dependencies). Default: each crate's own `target/`.
pub const PLUGIN_TARGET_DIR_ENV: &str = "DAGRUN_PLUGIN_TARGET_DIR";

/// Settings of an outer cargo (e.g. when dagrun runs under `cargo test`) that must not leak
/// into a nested plugin build.
pub const OUTER_CARGO_ENV: [&str; 5] =
    ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_MAKEFLAGS"];

/// Version of the build record format.
const BUILD_RECORD_VERSION: u32 = 1;

/// What a `Wasm` task's `plugin` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A built component.
    Wasm(PathBuf),
    /// A crate directory (has a Cargo.toml).
    Crate(PathBuf),
}

/// Classifies a plugin path (resolved against the workflow directory).
pub fn plugin_source(spec: &str, wf_dir: &Path) -> PluginSource {
    let p = wf_dir.join(spec);
    if p.join("Cargo.toml").is_file() { PluginSource::Crate(p) } else { PluginSource::Wasm(p) }
}

/// Why a plugin crate could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be started.
    #[error("cannot run cargo to build plugin {dir}: {source} (install Rust from https://rustup.rs)")]
    Cargo {
        /// Crate directory.
        dir: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The build failed.
    #[error("building plugin {dir} failed:\n{output}{hint}")]
    Failed {
        /// Crate directory.
        dir: String,
        /// The end of cargo's output.
        output: String,
        /// What to do.
        hint: String,
    },
    /// The crate built no .wasm (not a cdylib?).
    #[error("building plugin {dir} produced no .wasm file: add `[lib] crate-type = [\"cdylib\"]` to its Cargo.toml")]
    NoWasm {
        /// Crate directory.
        dir: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct BuildRecord {
    version: u32,
    fingerprint: String,
    wasm: PathBuf,
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if p.is_dir() {
            source_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Directories of `path = "..."` dependencies named in a Cargo.toml (one level; best effort).
fn path_deps(crate_dir: &Path) -> Vec<PathBuf> {
    let Ok(toml) = std::fs::read_to_string(crate_dir.join("Cargo.toml")) else { return Vec::new() };
    toml.split("path")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
            let end = rest.find('"')?;
            Some(crate_dir.join(&rest[..end]))
        })
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect()
}

fn fingerprint(dir: &Path) -> String {
    let mut files = Vec::new();
    source_files(dir, &mut files);
    for dep in path_deps(dir) {
        source_files(&dep, &mut files);
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in files {
        let Ok(meta) = std::fs::metadata(&f) else { continue };
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        h.update(f.to_string_lossy().as_bytes());
        h.update(&meta.len().to_le_bytes());
        h.update(&mtime.to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

fn record_path(dir: &Path, records: &Path) -> PathBuf {
    records.join(format!("{}.json", &blake3::hash(dir.display().to_string().as_bytes()).to_hex()[..16]))
}

/// The .wasm of the crate's last build, if its sources are unchanged since (no build is run).
pub fn built_plugin(dir: &Path, records: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let rec: BuildRecord = serde_json::from_slice(&std::fs::read(record_path(&dir, records)).ok()?).ok()?;
    (rec.version == BUILD_RECORD_VERSION && rec.fingerprint == fingerprint(&dir) && rec.wasm.is_file())
        .then_some(rec.wasm)
}

/// Builds the crate if its sources changed since the last build; returns the .wasm path.
/// `records` is a directory where build fingerprints are kept (in the state directory).
pub fn build_plugin_crate(dir: &Path, records: &Path) -> Result<PathBuf, BuildError> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let record_path = record_path(&dir, records);
    if let Some(wasm) = built_plugin(&dir, records) {
        return Ok(wasm);
    }
    let wasm = cargo_build(&dir)?;
    let rec = BuildRecord { version: BUILD_RECORD_VERSION, fingerprint: fingerprint(&dir), wasm: wasm.clone() };
    let _ = std::fs::create_dir_all(records);
    let tmp = record_path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, serde_json::to_vec(&rec).expect("serializes")).is_ok() {
        let _ = std::fs::rename(&tmp, &record_path);
    }
    Ok(wasm)
}

/// Runs `cargo build --release --target wasm32-wasip2` in a plugin crate; returns its .wasm.
pub fn cargo_build(dir: &Path) -> Result<PathBuf, BuildError> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let shown = dir.display().to_string();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .current_dir(&dir);
    for var in OUTER_CARGO_ENV {
        cmd.env_remove(var);
    }
    if let Some(shared) = std::env::var_os(PLUGIN_TARGET_DIR_ENV) {
        cmd.env("CARGO_TARGET_DIR", shared);
    }
    let out = cmd.output().map_err(|source| BuildError::Cargo { dir: shown.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        let hint = if stderr.contains("wasm32-wasip2")
            && (stderr.contains("target may not be installed") || stderr.contains("can't find crate for `core`"))
        {
            "\nhint: install the target with `rustup target add wasm32-wasip2`".to_owned()
        } else {
            String::new()
        };
        return Err(BuildError::Failed { dir: shown, output: tail, hint });
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().is_some_and(|p| Path::new(p) == dir.join("Cargo.toml")))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or(BuildError::NoWasm { dir: shown })
}
