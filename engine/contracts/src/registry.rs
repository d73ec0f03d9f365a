//! The model registry on disk: versioned model directories and an atomic `current` pointer.
//!
//! ```text
//! <registry>/<name>/current              "v0003\n": the deployed version
//! <registry>/<name>/v0003/model.onnx     the model
//! <registry>/<name>/v0003/verdict.json   the gate's verdict that allowed it (verbatim)
//! <registry>/<name>/v0003/metadata.json  [`Metadata`]: layout version, name, version, digest
//! <registry>/<name>/v0003/reference.csv   the data the model was trained on (optional; or .parquet)
//! ```
//! The reference data is what `Drift(reference: Deployed(registry, name))` compares new data
//! with: it follows the model, so a deploy or a rollback moves it too.
//! Written by the deploy plugin ([`promote`]), `dagrun models rollback` and the `Performance`
//! kind's automatic rollback ([`set_current`]); read by the `OnnxEval` gate (the champion),
//! `OnnxPredict`, `dagrun models list`, and (promotion times, approvals, the version before:
//! [`crate::promotions`]) the circuit breaker, cooldowns and rollbacks.
//! A version directory appears whole (staged, then renamed); `current` is replaced atomically
//! (temp file, fsync, rename, fsync of the directory where the platform allows it).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalRecord;
use crate::error::{ContractError, parse_versioned};

pub use crate::promotions::{automatic_promotions, last_promotion, previous_of};

/// Version of the registry layout, recorded in every `metadata.json`.
pub const REGISTRY_VERSION: u32 = 1;
/// The pointer file in a model's directory.
pub const CURRENT_FILE: &str = "current";
/// The model in a version directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The verdict in a version directory.
pub const VERDICT_FILE: &str = crate::verdict::VERDICT_FILE;
/// The metadata in a version directory.
pub const METADATA_FILE: &str = "metadata.json";

/// `<registry>/<name>`.
pub fn model_dir(registry: &Path, name: &str) -> PathBuf {
    registry.join(name)
}

/// `<registry>/<name>/current`.
pub fn current_file(registry: &Path, name: &str) -> PathBuf {
    model_dir(registry, name).join(CURRENT_FILE)
}

/// `<registry>/<name>/<version>`.
pub fn version_dir(registry: &Path, name: &str, version: &str) -> PathBuf {
    model_dir(registry, name).join(version)
}

/// `<registry>/<name>/<version>/model.onnx`.
pub fn model_file(registry: &Path, name: &str, version: &str) -> PathBuf {
    version_dir(registry, name, version).join(MODEL_FILE)
}

/// `<registry>/<name>/<version>/verdict.json`.
pub fn verdict_file(registry: &Path, name: &str, version: &str) -> PathBuf {
    version_dir(registry, name, version).join(VERDICT_FILE)
}

/// `<registry>/<name>/<version>/metadata.json`.
pub fn metadata_file(registry: &Path, name: &str, version: &str) -> PathBuf {
    version_dir(registry, name, version).join(METADATA_FILE)
}

/// `v0001` for 1 (at least four digits).
pub fn format_version(n: u32) -> String {
    format!("v{n:04}")
}

/// 1 for `v0001` (or `v1`); `None` for anything that is not `v` followed by digits.
pub fn parse_version(version: &str) -> Option<u32> {
    let digits = version.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks a model name: non-empty ASCII letters, digits, `-` and `_` (one directory level, no
/// dot files, no path separators).
pub fn validate_name(name: &str) -> Result<(), ContractError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ContractError::InvalidName(name.to_owned()));
    }
    Ok(())
}

fn validate_version(version: &str) -> Result<u32, ContractError> {
    parse_version(version).ok_or_else(|| ContractError::InvalidVersion(version.to_owned()))
}

/// `metadata.json` in a version directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// [`REGISTRY_VERSION`].
    pub version: u32,
    /// The model name.
    pub name: String,
    /// Its version directory, `v0003`.
    pub model_version: String,
    /// blake3 (hex) of `model.onnx`.
    pub digest: String,
    /// The data the model was trained on, copied beside it (absent for versions deployed
    /// without one, and in metadata written before it existed: older readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceData>,
    /// When it was promoted (Unix ms; absent in metadata written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_ms: Option<i64>,
    /// The version that was current when it was promoted (what a rollback returns to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// How it was let through, when an `Approval` step ran before the deploy (absent: the
    /// deploy was automatic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRecord>,
}

/// The reference (training) data recorded with a model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceData {
    /// Its file in the version directory: `reference.csv` or `reference.parquet`.
    pub file: String,
    /// blake3 (hex) of its bytes.
    pub digest: String,
    /// Where it came from (the file name the deploy task was given), for people.
    pub source: String,
}

/// A reference dataset to record with a new version (see [`promote`]).
#[derive(Debug, Clone, Copy)]
pub struct NewReference<'a> {
    /// The file to copy.
    pub path: &'a Path,
    /// blake3 (hex) of its bytes.
    pub digest: &'a str,
}

impl NewReference<'_> {
    /// The file name it gets in the version directory: `reference.parquet` for Parquet (by
    /// extension), else `reference.csv`.
    pub fn file_name(&self) -> &'static str {
        match self.path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq") => "reference.parquet",
            _ => "reference.csv",
        }
    }
}

/// The reference data recorded with `version`: its path and metadata; `None` when the
/// version has none (or its metadata cannot be read).
pub fn reference(registry: &Path, name: &str, version: &str) -> Option<(PathBuf, ReferenceData)> {
    let meta = read_metadata(registry, name, version).ok()?;
    let r = meta.reference?;
    Some((version_dir(registry, name, version).join(&r.file), r))
}

impl Metadata {
    /// Metadata for a new version, at this build's [`REGISTRY_VERSION`].
    pub fn new(name: &str, model_version: &str, digest: &str) -> Metadata {
        Metadata {
            version: REGISTRY_VERSION,
            name: name.to_owned(),
            model_version: model_version.to_owned(),
            digest: digest.to_owned(),
            reference: None,
            promoted_ms: None,
            previous: None,
            approval: None,
        }
    }

    /// Parses `metadata.json`; a newer or unknown `version` is an error that says so.
    pub fn from_json(bytes: &[u8]) -> Result<Metadata, ContractError> {
        parse_versioned(METADATA_FILE, bytes, REGISTRY_VERSION)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("metadata serializes") + "\n"
    }
}

/// Reads `<registry>/<name>/<version>/metadata.json`.
pub fn read_metadata(registry: &Path, name: &str, version: &str) -> Result<Metadata, ContractError> {
    let path = metadata_file(registry, name, version);
    Metadata::from_json(&fs::read(&path).map_err(ContractError::io(&path))?)
}

/// Checks a version before it is served or made current: its `metadata.json` must be readable
/// and name this model and version, and `digest` (blake3 hex of its `model.onnx`, computed by the
/// caller) must be the one recorded. Returns the metadata.
pub fn check_version(registry: &Path, name: &str, version: &str, digest: &str) -> Result<Metadata, ContractError> {
    let dir = version_dir(registry, name, version);
    let meta = read_metadata(registry, name, version).map_err(|e| ContractError::Inconsistent {
        dir: dir.clone(),
        reason: format!("no usable {METADATA_FILE} (every deployed version has one): {e}"),
    })?;
    let wrong = |reason: String| Err(ContractError::Inconsistent { dir: dir.clone(), reason });
    if meta.name != name || meta.model_version != version {
        return wrong(format!(
            "{METADATA_FILE} describes `{}` {}, not `{name}` {version}",
            meta.name, meta.model_version
        ));
    }
    if meta.digest != digest {
        return wrong(format!(
            "{MODEL_FILE} is corrupt: its blake3 is {digest}, {METADATA_FILE} records {}",
            meta.digest
        ));
    }
    Ok(meta)
}

/// One version of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelVersion {
    /// `v0003`.
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Whether it is the current one.
    pub current: bool,
}

/// The version `current` names: `Ok(None)` when there is no `current` file; an error when it
/// cannot be read or does not hold a version name.
pub fn read_current(registry: &Path, name: &str) -> Result<Option<String>, ContractError> {
    let path = current_file(registry, name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ContractError::Io { path, source: e }),
    };
    let version = text.trim();
    validate_version(version)?;
    Ok(Some(version.to_owned()))
}

/// The version `current` points to and its model file; `None` when nothing (usable) is
/// deployed: no or unreadable `current`, or its model file is missing.
pub fn current(registry: &Path, name: &str) -> Option<(String, PathBuf)> {
    let version = read_current(registry, name).ok()??;
    let model = model_file(registry, name, &version);
    model.is_file().then_some((version, model))
}

/// Every version directory of a model, oldest (lowest number) first; empty if there is none.
pub fn versions(registry: &Path, name: &str) -> Vec<ModelVersion> {
    let current = read_current(registry, name).ok().flatten();
    let mut found: Vec<(u32, String)> =
        subdirs(&model_dir(registry, name)).into_iter().filter_map(|v| parse_version(&v).map(|n| (n, v))).collect();
    found.sort();
    found
        .into_iter()
        .map(|(_, v)| ModelVersion {
            dir: version_dir(registry, name, &v),
            current: current.as_ref() == Some(&v),
            version: v,
        })
        .collect()
}

/// The model names in a registry, sorted (directories with valid names only).
pub fn names(registry: &Path) -> Vec<String> {
    let mut out: Vec<String> = subdirs(registry).into_iter().filter(|n| validate_name(n).is_ok()).collect();
    out.sort();
    out
}

/// Names of the subdirectories of `dir` (none if it cannot be read).
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter(|e| e.path().is_dir()).filter_map(|e| e.file_name().into_string().ok()).collect()
}

/// The number the next version of a model gets: one more than the highest existing `vNNNN`.
pub fn next_version(registry: &Path, name: &str) -> u32 {
    versions(registry, name).iter().filter_map(|v| parse_version(&v.version)).max().map_or(1, |n| n + 1)
}

/// Points `current` at an existing `version` atomically (temp file, fsync, rename).
pub fn set_current(registry: &Path, name: &str, version: &str) -> Result<(), ContractError> {
    validate_name(name)?;
    validate_version(version)?;
    let model = model_file(registry, name, version);
    if !model.is_file() {
        return Err(ContractError::NoModel(version_dir(registry, name, version)));
    }
    let dir = model_dir(registry, name);
    let tmp = dir.join(format!(".{CURRENT_FILE}.{}.tmp", unique_suffix()));
    write_synced(&tmp, format!("{version}\n").as_bytes())?;
    let dest = current_file(registry, name);
    fs::rename(&tmp, &dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ContractError::Io { path: dest, source: e }
    })?;
    sync_dir(&dir);
    Ok(())
}

/// What [`promote`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The version now current.
    pub version: String,
    /// True when these bytes were already current (nothing was written).
    pub unchanged: bool,
}

/// Adds `model` as the next version of `name` with its verdict (copied verbatim), its
/// reference data (copied, when given) and [`Metadata`] — when it was promoted, the version
/// current before it (what a rollback returns to) and how it was let through (`approval.json`,
/// when given: the circuit breaker counts the automatic ones) — then makes it current. The version directory is written as a hidden staging directory and renamed into
/// place, so readers never see half a version. When the current version's model has exactly
/// these bytes, nothing is written.
///
/// Whether the model may be promoted (a passing verdict for its digest) is the caller's check.
pub fn promote(
    registry: &Path,
    name: &str,
    model: &[u8],
    digest: &str,
    verdict: &[u8],
    reference: Option<NewReference<'_>>,
    approval: Option<&ApprovalRecord>,
) -> Result<Promotion, ContractError> {
    validate_name(name)?;
    if let Some((version, path)) = current(registry, name)
        && fs::read(&path).is_ok_and(|b| b == model)
    {
        return Ok(Promotion { version, unchanged: true });
    }
    let dir = model_dir(registry, name);
    fs::create_dir_all(&dir).map_err(ContractError::io(&dir))?;
    let version = format_version(next_version(registry, name));
    let staging = dir.join(format!(".{version}.staging.{}", unique_suffix()));
    let mut meta = Metadata::new(name, &version, digest);
    meta.promoted_ms = Some(now_ms());
    meta.previous = read_current(registry, name).ok().flatten();
    meta.approval = approval.cloned();
    let staged = stage(&staging, Staged { meta, model, verdict, reference });
    let target = version_dir(registry, name, &version);
    let placed = staged.and_then(|()| fs::rename(&staging, &target).map_err(ContractError::io(&target)));
    if let Err(e) = placed {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    sync_dir(&dir);
    set_current(registry, name, &version)?;
    Ok(Promotion { version, unchanged: false })
}

/// What goes into a new version directory.
struct Staged<'a> {
    meta: Metadata,
    model: &'a [u8],
    verdict: &'a [u8],
    reference: Option<NewReference<'a>>,
}

/// Now, in Unix milliseconds (0 if the clock is before 1970; WASI has a wall clock).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Writes a version directory's files into `staging`.
fn stage(staging: &Path, s: Staged<'_>) -> Result<(), ContractError> {
    fs::create_dir(staging).map_err(ContractError::io(staging))?;
    write_synced(&staging.join(MODEL_FILE), s.model)?;
    write_synced(&staging.join(VERDICT_FILE), s.verdict)?;
    let mut meta = s.meta;
    if let Some(r) = s.reference {
        let file = r.file_name();
        let dest = staging.join(file);
        fs::copy(r.path, &dest).map_err(ContractError::io(r.path))?;
        File::open(&dest).and_then(|f| f.sync_all()).map_err(ContractError::io(&dest))?;
        let source = r.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        meta.reference = Some(ReferenceData { file: file.to_owned(), digest: r.digest.to_owned(), source });
    }
    write_synced(&staging.join(METADATA_FILE), meta.to_json().as_bytes())?;
    sync_dir(staging);
    Ok(())
}

/// Writes a file and flushes it to disk (fsync; skipped where the platform cannot).
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ContractError> {
    let write = || -> io::Result<()> {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        match f.sync_all() {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
            r => r,
        }
    };
    write().map_err(ContractError::io(path))
}

/// Flushes a directory's entries (renames) to disk where the platform allows opening a
/// directory; best effort.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Distinguishes temp names of concurrent writers (the pid where there is one; WASI has none).
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    #[cfg(not(target_os = "wasi"))]
    return format!("{}-{nanos}", std::process::id());
    #[cfg(target_os = "wasi")]
    return format!("{nanos}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(registry: &Path, name: &str, version: &str, bytes: &[u8]) {
        fs::create_dir_all(version_dir(registry, name, version)).unwrap();
        fs::write(model_file(registry, name, version), bytes).unwrap();
    }

    #[test]
    fn paths_and_names() {
        let r = Path::new("reg");
        assert_eq!(current_file(r, "churn"), Path::new("reg/churn/current"));
        assert_eq!(model_file(r, "churn", "v0002"), Path::new("reg/churn/v0002/model.onnx"));
        assert_eq!(verdict_file(r, "churn", "v0002"), Path::new("reg/churn/v0002/verdict.json"));
        assert_eq!(metadata_file(r, "churn", "v0002"), Path::new("reg/churn/v0002/metadata.json"));
        assert_eq!(format_version(1), "v0001");
        assert_eq!(format_version(12345), "v12345");
        assert_eq!(parse_version("v0001"), Some(1));
        assert_eq!(parse_version("v12345"), Some(12345));
        for bad in ["v", "0001", "v-1", "v1a", "V0001", "v 1", "v99999999999"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
        validate_name("churn-model_2").unwrap();
        for bad in ["", ".", "..", "a/b", "a\\b", ".hidden", "é", "a b"] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid model name `{bad}`")), "{e}");
        }
    }

    #[test]
    fn current_versions_names_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        for v in ["v0001", "v0002", "v0010"] {
            add(reg, "churn", v, v.as_bytes());
        }
        fs::create_dir_all(reg.join("churn/.v0011.staging.1")).unwrap();
        fs::create_dir_all(reg.join(".trash")).unwrap();
        assert_eq!(current(reg, "churn"), None);
        assert_eq!(read_current(reg, "churn").unwrap(), None);
        set_current(reg, "churn", "v0010").unwrap();
        assert_eq!(fs::read_to_string(current_file(reg, "churn")).unwrap(), "v0010\n");
        assert_eq!(current(reg, "churn").unwrap(), ("v0010".to_owned(), model_file(reg, "churn", "v0010")));
        set_current(reg, "churn", "v0002").unwrap();
        let vs = versions(reg, "churn");
        let shown: Vec<_> = vs.iter().map(|v| (v.version.as_str(), v.current)).collect();
        assert_eq!(shown, [("v0001", false), ("v0002", true), ("v0010", false)], "numeric order; hidden dirs skipped");
        assert_eq!(vs[1].dir, version_dir(reg, "churn", "v0002"));
        assert_eq!(next_version(reg, "churn"), 11);
        assert_eq!(next_version(reg, "other"), 1);
        assert_eq!(names(reg), ["churn"]);
        assert!(versions(reg, "other").is_empty());
        let leftovers: Vec<_> = fs::read_dir(reg.join("churn"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    }

    #[test]
    fn set_current_refuses_what_is_not_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        add(reg, "churn", "v0001", b"m");
        assert!(matches!(set_current(reg, "churn", "v0009"), Err(ContractError::NoModel(_))));
        assert!(matches!(set_current(reg, "churn", "../churn/v0001"), Err(ContractError::InvalidVersion(_))));
        assert!(matches!(set_current(reg, "../x", "v0001"), Err(ContractError::InvalidName(_))));
        assert!(!current_file(reg, "churn").exists());
    }

    #[test]
    fn a_current_file_with_garbage_is_an_error_not_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        add(reg, "churn", "v0001", b"m");
        fs::write(current_file(reg, "churn"), "../../etc\n").unwrap();
        assert!(matches!(read_current(reg, "churn"), Err(ContractError::InvalidVersion(v)) if v == "../../etc"));
        assert_eq!(current(reg, "churn"), None);
        assert!(versions(reg, "churn").iter().all(|v| !v.current));
    }

    #[test]
    fn promote_stages_then_moves_current_and_same_bytes_are_a_noop() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("registry");
        let p = promote(&reg, "churn", b"model-1", "d1", b"{\"verdict\":1}\n", None, None).unwrap();
        assert_eq!(p, Promotion { version: "v0001".into(), unchanged: false });
        assert_eq!(fs::read(model_file(&reg, "churn", "v0001")).unwrap(), b"model-1");
        assert_eq!(fs::read(verdict_file(&reg, "churn", "v0001")).unwrap(), b"{\"verdict\":1}\n", "verbatim");
        let meta = read_metadata(&reg, "churn", "v0001").unwrap();
        assert_eq!(Metadata { promoted_ms: None, ..meta.clone() }, Metadata::new("churn", "v0001", "d1"));
        assert!(meta.promoted_ms.is_some_and(|t| (now_ms() - t).abs() < 60_000), "{meta:?}");
        assert_eq!(read_current(&reg, "churn").unwrap().as_deref(), Some("v0001"));

        let again = promote(&reg, "churn", b"model-1", "d1", b"other verdict", None, None).unwrap();
        assert_eq!(again, Promotion { version: "v0001".into(), unchanged: true });
        assert_eq!(fs::read(verdict_file(&reg, "churn", "v0001")).unwrap(), b"{\"verdict\":1}\n", "untouched");

        let p2 = promote(&reg, "churn", b"model-2", "d2", b"{}", None, None).unwrap();
        assert_eq!(p2, Promotion { version: "v0002".into(), unchanged: false });
        set_current(&reg, "churn", "v0001").unwrap();
        let p3 = promote(&reg, "churn", b"model-2", "d2", b"{}", None, None).unwrap();
        assert_eq!(p3.version, "v0003", "bytes of a version that is not current make a new version");
        let entries: Vec<String> =
            fs::read_dir(reg.join("churn")).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        assert!(entries.iter().all(|e| !e.starts_with('.')), "no staging or temp leftovers: {entries:?}");
        assert!(matches!(promote(&reg, "a/b", b"m", "d", b"{}", None, None), Err(ContractError::InvalidName(_))));
    }

    #[test]
    fn promote_fails_cleanly_when_the_version_exists_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path();
        fs::create_dir_all(model_dir(reg, "churn")).unwrap();
        // A stray *file* named like the next version: not a version (not a directory), and in the way.
        fs::write(version_dir(reg, "churn", "v0001"), "stray").unwrap();
        let e = promote(reg, "churn", b"m", "d", b"{}", None, None).unwrap_err();
        assert!(matches!(e, ContractError::Io { .. }), "{e}");
        assert_eq!(read_current(reg, "churn").unwrap(), None, "current untouched");
        let hidden =
            fs::read_dir(model_dir(reg, "churn")).unwrap().flatten().filter(|e| e.file_name() != "v0001").count();
        assert_eq!(hidden, 0, "the staging directory was removed");
    }

    #[test]
    fn metadata_versions() {
        let m = Metadata::new("churn", "v0001", "d");
        let json = m.to_json();
        assert_eq!(Metadata::from_json(json.as_bytes()).unwrap(), m);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v, serde_json::json!({"version": 1, "name": "churn", "model_version": "v0001", "digest": "d"}));
        let newer = br#"{"version": 3, "layout": "different"}"#;
        let e = Metadata::from_json(newer).unwrap_err().to_string();
        assert!(e.starts_with("metadata.json version 3 is newer than this dagrun/plugin understands (1)"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_metadata(dir.path(), "churn", "v0001").unwrap_err().to_string();
        assert!(e.contains("metadata.json"), "{e}");
    }

    #[test]
    fn promote_records_the_reference_data() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("registry");
        let data = dir.path().join("train.parquet");
        fs::write(&data, b"PAR1 data").unwrap();
        let r = NewReference { path: &data, digest: "rd" };
        let p = promote(&reg, "churn", b"model-1", "d1", b"{}", Some(r), None).unwrap();
        let (path, meta) = reference(&reg, "churn", &p.version).unwrap();
        assert_eq!(path, version_dir(&reg, "churn", "v0001").join("reference.parquet"));
        assert_eq!(fs::read(&path).unwrap(), b"PAR1 data");
        assert_eq!(
            meta,
            ReferenceData { file: "reference.parquet".into(), digest: "rd".into(), source: "train.parquet".into() }
        );
        let p2 = promote(&reg, "churn", b"model-2", "d2", b"{}", None, None).unwrap();
        assert_eq!(reference(&reg, "churn", &p2.version), None, "a version deployed without data has none");
        let old = r#"{"version": 1, "name": "churn", "model_version": "v0001", "digest": "d"}"#;
        assert_eq!(Metadata::from_json(old.as_bytes()).unwrap().reference, None, "older metadata still reads");
    }
}
