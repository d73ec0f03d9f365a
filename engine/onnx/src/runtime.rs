//! Finding and loading the ONNX Runtime shared library.
//!
//! dagrun does not link ONNX Runtime: it loads `libonnxruntime` at run time (ort's `load-dynamic`), from the
//! first of these that loads:
//!
//! 1. the file named by the environment variable `ORT_DYLIB_PATH` (if set, it must work: no fallback);
//! 2. the `onnxruntime` package of the active Python (`python3`, then `python`): its `capi/` directory;
//! 3. common locations: `$VIRTUAL_ENV`, `$CONDA_PREFIX`, `~/.local` and pyenv site-packages, the system
//!    Python's site/dist-packages, then `/usr/local/lib`, `/usr/lib`, `/usr/lib/<arch>-linux-gnu`,
//!    `/opt/onnxruntime/lib`, `/opt/homebrew/lib`.
//!
//! The library is loaded and ONNX Runtime's environment created once per process ([`init`]); later calls
//! return the same [`Runtime`] (or the same error).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ort::environment::Environment;

/// The ONNX Runtime version dagrun is built and tested against (the `api-31` of ort 2.0.0-rc.15 needs 1.31+).
pub const RECOMMENDED_VERSION: &str = "1.31.1";

/// What to run to get a working ONNX Runtime; part of every [`OrtError`] message.
pub const INSTALL_HINT: &str = "Install it with `pip install onnxruntime==1.31.1` (dagrun finds the package of the \
     active python3), or set ORT_DYLIB_PATH=/path/to/libonnxruntime.so";

/// The ONNX Runtime library dagrun uses: where it is, its version, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeInfo {
    /// The shared library that was loaded.
    pub path: PathBuf,
    /// ONNX Runtime's version, e.g. `1.31.1`.
    pub version: String,
    /// Which discovery step found it.
    pub source: Source,
}

/// Which discovery step found the library.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The `onnxruntime` package of the Python interpreter named here (`python3` or `python`).
    Python(String),
    /// A common install location.
    CommonLocation,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::EnvVar => f.write_str("ORT_DYLIB_PATH"),
            Source::Python(python) => write!(f, "the onnxruntime package of {python}"),
            Source::CommonLocation => f.write_str("a common install location"),
        }
    }
}

/// Why ONNX Runtime is not available. Every message ends with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtError {
    /// No candidate library was found, or none of those found could be loaded.
    #[error("ONNX Runtime not found. {INSTALL_HINT}.\nLooked in:\n{}", bullet_list(.searched))]
    NotFound {
        /// Each place looked at, with what was (not) there.
        searched: Vec<String>,
    },
    /// `ORT_DYLIB_PATH` names a file that does not exist.
    #[error(
        "ORT_DYLIB_PATH={} does not exist. Set ORT_DYLIB_PATH=/path/to/libonnxruntime.so (ONNX Runtime \
         {RECOMMENDED_VERSION}), or unset it and install it with `pip install onnxruntime==1.31.1`",
        .path.display()
    )]
    EnvPathMissing {
        /// The value of `ORT_DYLIB_PATH`.
        path: PathBuf,
    },
    /// `ORT_DYLIB_PATH` names a file that is not a usable ONNX Runtime library (wrong file, too old, ...).
    #[error(
        "could not load ONNX Runtime from ORT_DYLIB_PATH={}: {reason}. Set ORT_DYLIB_PATH=/path/to/libonnxruntime.so \
         (ONNX Runtime {RECOMMENDED_VERSION}), or unset it and install it with `pip install onnxruntime==1.31.1`",
        .path.display()
    )]
    Load {
        /// The file that failed to load.
        path: PathBuf,
        /// The loader's error.
        reason: String,
    },
    /// The library loaded but ONNX Runtime's environment could not be created.
    #[error("ONNX Runtime from {} loaded, but creating its environment failed: {reason}. {INSTALL_HINT}", .path.display())]
    Environment {
        /// The loaded library.
        path: PathBuf,
        /// ONNX Runtime's error.
        reason: String,
    },
}

fn bullet_list(items: &[String]) -> String {
    items.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
}

/// The loaded ONNX Runtime: its [`RuntimeInfo`] and the process-wide ONNX Runtime environment.
pub struct Runtime {
    info: RuntimeInfo,
    env: Environment,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Where the library is, its version, how it was found.
    pub fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    /// The process-wide ONNX Runtime environment, to build other `ort` sessions with.
    pub fn environment(&self) -> &Environment {
        &self.env
    }
}

static RUNTIME: OnceLock<Result<Runtime, OrtError>> = OnceLock::new();

/// Finds and loads ONNX Runtime (once per process) and reports what was loaded. For `dagrun doctor`.
pub fn discover() -> Result<RuntimeInfo, OrtError> {
    init().map(|rt| rt.info.clone())
}

/// For test suites that need ONNX Runtime: `false` when `DAGRUN_SKIP_ONNX=1` (the caller skips
/// the test); otherwise loads the runtime and panics with what to install when it cannot.
///
/// A skip is announced on the process's standard error directly, not through `eprintln!`, which
/// the test harness captures (and shows only for failures): the line `SKIPPED <test>: ...` appears
/// in the `cargo test` output next to the test's `ok`.
pub fn required_by_tests() -> bool {
    if std::env::var("DAGRUN_SKIP_ONNX").is_ok_and(|v| v == "1") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let line = format!("SKIPPED {test}: DAGRUN_SKIP_ONNX=1 and the test needs ONNX Runtime (it did not run)\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return false;
    }
    if let Err(e) = init() {
        panic!("{e}\n(set DAGRUN_SKIP_ONNX=1 to skip the tests that need ONNX Runtime)");
    }
    true
}

/// Finds and loads ONNX Runtime and creates its environment, once per process; later calls return the
/// same runtime, or the same error.
pub fn init() -> Result<&'static Runtime, OrtError> {
    RUNTIME.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Whether [`init`] already ran successfully in this process (no discovery is attempted).
pub fn is_loaded() -> bool {
    matches!(RUNTIME.get(), Some(Ok(_)))
}

/// A library file found by discovery, not yet loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The library file.
    pub path: PathBuf,
    /// Which discovery step found it.
    pub source: Source,
}

/// Runs discovery without loading anything: the candidate library files in the order they would be
/// tried, plus a line for each place looked at (what [`OrtError::NotFound`] lists).
///
/// If `ORT_DYLIB_PATH` is set, it is the only candidate (or an error if the file does not exist).
pub fn candidates() -> Result<(Vec<Candidate>, Vec<String>), OrtError> {
    let mut searched = Vec::new();
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            if !path.is_file() {
                return Err(OrtError::EnvPathMissing { path });
            }
            return Ok((vec![Candidate { path, source: Source::EnvVar }], vec![]));
        }
        _ => searched.push("ORT_DYLIB_PATH: not set".to_string()),
    }

    let mut found: Vec<Candidate> = Vec::new();
    let push = |path: PathBuf, source: Source, found: &mut Vec<Candidate>| {
        if !found.iter().any(|c| c.path == path) {
            found.push(Candidate { path, source });
        }
    };

    for python in ["python3", "python"] {
        match python_package_dir(python) {
            Ok(dir) => {
                let capi = dir.join("capi");
                let libs = libraries_in(&capi);
                if libs.is_empty() {
                    searched
                        .push(format!("{python}: onnxruntime package at {}, but no library in capi/", dir.display()));
                } else {
                    searched.push(format!("{python}: {}", capi.display()));
                }
                for lib in libs {
                    push(lib, Source::Python(python.to_string()), &mut found);
                }
                // The first interpreter that has the package is "the active Python".
                break;
            }
            Err(why) => searched.push(format!("{python}: {why}")),
        }
    }

    for pattern in common_patterns() {
        let dirs: Vec<PathBuf> = glob::glob(&pattern).map(|paths| paths.flatten().collect()).unwrap_or_default();
        let mut any = false;
        for dir in dirs {
            for lib in libraries_in(&dir) {
                any = true;
                push(lib, Source::CommonLocation, &mut found);
            }
        }
        if !any {
            searched.push(format!("{pattern}: nothing"));
        }
    }
    Ok((found, searched))
}

fn load() -> Result<Runtime, OrtError> {
    let (candidates, mut searched) = candidates()?;
    for candidate in candidates {
        match ort::init_from(&candidate.path) {
            Ok(builder) => {
                let env = builder
                    .with_name("dagrun")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| OrtError::Environment { path: candidate.path.clone(), reason: e.to_string() })?;
                let version = loaded_version(&candidate.path);
                return Ok(Runtime {
                    info: RuntimeInfo { path: candidate.path, version, source: candidate.source },
                    env,
                });
            }
            Err(e) if candidate.source == Source::EnvVar => {
                return Err(OrtError::Load { path: candidate.path, reason: e.to_string() });
            }
            Err(e) => searched.push(format!("{}: found but not usable: {e}", candidate.path.display())),
        }
    }
    Err(OrtError::NotFound { searched })
}

/// The version of the loaded library, from the first that says: ONNX Runtime's build info
/// (`git-branch=rel-1.31.1`), the (symlink-resolved) file name (`libonnxruntime.so.1.31.1`), the Python
/// package's `onnxruntime-1.31.1.dist-info` next to it; else `unknown (>= 1.31)` (ort refuses older ones).
fn loaded_version(path: &Path) -> String {
    if let Some(v) = version_from_build_info(ort::info()) {
        return v;
    }
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for p in [path, resolved.as_path()] {
        if let Some(v) = p.file_name().and_then(|n| n.to_str()).and_then(version_from_file_name) {
            return v;
        }
    }
    if let Some(v) = resolved.parent().and_then(version_from_dist_info) {
        return v;
    }
    format!("unknown (>= 1.{})", ort::MINOR_VERSION)
}

/// `.../site-packages/onnxruntime/capi` → the version in `.../site-packages/onnxruntime-1.31.1.dist-info`.
fn version_from_dist_info(capi: &Path) -> Option<String> {
    let site = capi.parent()?.parent()?;
    std::fs::read_dir(site).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let rest = name.strip_suffix(".dist-info")?;
        let (dist, version) = rest.rsplit_once('-')?;
        (dist.starts_with("onnxruntime") && is_version(version)).then(|| version.to_string())
    })
}

/// `ORT Build Info: git-branch=rel-1.31.1, git-commit-id=..., ...` → `1.31.1`.
pub(crate) fn version_from_build_info(info: &str) -> Option<String> {
    let branch = info.split([',', ' ']).find_map(|part| part.trim().strip_prefix("git-branch="))?;
    let v = branch.strip_prefix("rel-").unwrap_or(branch);
    is_version(v).then(|| v.to_string())
}

/// `libonnxruntime.so.1.31.1` / `libonnxruntime.1.31.1.dylib` → `1.31.1`.
pub(crate) fn version_from_file_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("libonnxruntime")?;
    let rest = rest.strip_prefix(".so.").or_else(|| rest.strip_prefix('.')?.strip_suffix(".dylib"))?;
    is_version(rest).then(|| rest.to_string())
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a file name is the ONNX Runtime library (not a provider library or a Python extension).
pub(crate) fn is_library_name(name: &str) -> bool {
    if cfg!(windows) {
        return name.eq_ignore_ascii_case("onnxruntime.dll");
    }
    name == "libonnxruntime.so"
        || name == "libonnxruntime.dylib"
        || version_from_file_name(name).is_some()
        || name.strip_prefix("libonnxruntime.so.").is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
}

/// The ONNX Runtime libraries in `dir`, highest version first (`libonnxruntime.so.1.31.1` before `libonnxruntime.so`).
fn libraries_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut libs: Vec<(Vec<u64>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !is_library_name(&name) || !e.path().is_file() {
                return None;
            }
            let digits: Vec<u64> = name.split('.').filter_map(|p| p.parse().ok()).collect();
            Some((digits, e.path()))
        })
        .collect();
    libs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    libs.into_iter().map(|(_, p)| p).collect()
}

/// Runs `python -c "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"`.
fn python_package_dir(python: &str) -> Result<PathBuf, String> {
    let out = Command::new(python)
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(
            |e| if e.kind() == std::io::ErrorKind::NotFound { "not installed".to_string() } else { e.to_string() },
        )?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(if err.contains("No module named") {
            "onnxruntime is not installed for it".to_string()
        } else {
            format!("`import onnxruntime` failed: {}", err.trim().lines().last().unwrap_or(""))
        });
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if dir.is_empty() {
        return Err("`import onnxruntime` printed no path".to_string());
    }
    Ok(PathBuf::from(dir))
}

fn common_patterns() -> Vec<String> {
    let mut patterns = Vec::new();
    let site = "lib/python3*/site-packages/onnxruntime/capi";
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            patterns.push(format!("{}/{site}", PathBuf::from(prefix).display()));
        }
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        let home = PathBuf::from(home);
        patterns.push(format!("{}/.local/{site}", home.display()));
        patterns.push(format!("{}/.pyenv/versions/*/{site}", home.display()));
    }
    for base in ["/usr/local/lib", "/usr/lib"] {
        for kind in ["site-packages", "dist-packages"] {
            patterns.push(format!("{base}/python3*/{kind}/onnxruntime/capi"));
        }
    }
    patterns.push("/usr/lib/python3/dist-packages/onnxruntime/capi".to_string());
    for dir in ["/usr/local/lib", "/usr/lib", "/usr/lib/*-linux-gnu", "/opt/onnxruntime/lib", "/opt/homebrew/lib"] {
        patterns.push(dir.to_string());
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_build_info_and_file_names() {
        assert_eq!(
            version_from_build_info("ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release")
                .as_deref(),
            Some("1.31.1")
        );
        assert_eq!(version_from_build_info("ORT Build Info: git-branch=main, git-commit-id=abc"), None);
        assert_eq!(version_from_file_name("libonnxruntime.so.1.31.1").as_deref(), Some("1.31.1"));
        assert_eq!(version_from_file_name("libonnxruntime.1.31.1.dylib").as_deref(), Some("1.31.1"));
        assert_eq!(version_from_file_name("libonnxruntime.so"), None);

        let site = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(site.path().join("onnxruntime/capi")).unwrap();
        std::fs::create_dir_all(site.path().join("onnxruntime-1.31.1.dist-info")).unwrap();
        assert_eq!(version_from_dist_info(&site.path().join("onnxruntime/capi")).as_deref(), Some("1.31.1"));
    }

    #[test]
    fn library_names() {
        if cfg!(windows) {
            return;
        }
        for ok in
            ["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.31.1", "libonnxruntime.1.31.1.dylib"]
        {
            assert!(is_library_name(ok), "{ok}");
        }
        for no in [
            "libonnxruntime_providers_shared.so",
            "onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so",
            "libonnxruntime.so.1.31.1.bak",
        ] {
            assert!(!is_library_name(no), "{no}");
        }
    }

    #[test]
    fn highest_version_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["libonnxruntime.so", "libonnxruntime.so.1.9.0", "libonnxruntime.so.1.31.1", "other.so"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<String> =
            libraries_in(dir.path()).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["libonnxruntime.so.1.31.1", "libonnxruntime.so.1.9.0", "libonnxruntime.so"]);
    }

    #[test]
    fn not_found_message_says_what_to_do() {
        let e = OrtError::NotFound { searched: vec!["ORT_DYLIB_PATH: not set".into()] };
        let msg = e.to_string();
        assert!(msg.contains("pip install onnxruntime==1.31.1"), "{msg}");
        assert!(msg.contains("ORT_DYLIB_PATH=/path/to/libonnxruntime.so"), "{msg}");
        assert!(msg.contains("  - ORT_DYLIB_PATH: not set"), "{msg}");
    }
}
