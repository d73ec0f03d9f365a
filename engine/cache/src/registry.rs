//! The model registry on disk: versioned model directories and an atomic `current` pointer.
//!
//! ```text
//! <registry>/<name>/current            "v0003\n": the deployed version
//! <registry>/<name>/v0003/model.onnx   the model
//! <registry>/<name>/v0003/verdict.json the gate's verdict that allowed it
//! <registry>/<name>/v0003/metadata.json
//! ```
//! Written by the deploy plugin and `dagrun models rollback`; read by the `OnnxEval` gate
//! (the champion) and `dagrun models list`.

use std::fs;
use std::path::{Path, PathBuf};

/// One deployed version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelVersion {
    /// `v0003`.
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Whether it is the current one.
    pub current: bool,
}

/// The version `current` points to, and its model file.
pub fn current(registry: &Path, name: &str) -> Option<(String, PathBuf)> {
    let version = fs::read_to_string(registry.join(name).join("current")).ok()?.trim().to_owned();
    let model = registry.join(name).join(&version).join("model.onnx");
    model.is_file().then_some((version, model))
}

/// Every version of a model, oldest first.
pub fn versions(registry: &Path, name: &str) -> Vec<ModelVersion> {
    let current = current(registry, name).map(|(v, _)| v);
    let mut out: Vec<ModelVersion> = fs::read_dir(registry.join(name))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|v| v.starts_with('v') && v[1..].chars().all(|c| c.is_ascii_digit()))
                .map(|v| ModelVersion {
                    dir: registry.join(name).join(&v),
                    current: Some(&v) == current.as_ref(),
                    version: v,
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out
}

/// The model names in a registry.
pub fn names(registry: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(registry)
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Points `current` at `version` atomically (temp file + rename).
pub fn set_current(registry: &Path, name: &str, version: &str) -> std::io::Result<()> {
    let dir = registry.join(name);
    if !dir.join(version).join("model.onnx").is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} has no model.onnx", dir.join(version).display()),
        ));
    }
    let tmp = dir.join(format!(".current.{}.tmp", std::process::id()));
    fs::write(&tmp, format!("{version}\n"))?;
    fs::rename(&tmp, dir.join("current"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        for v in ["v0001", "v0002"] {
            fs::create_dir_all(dir.path().join("churn").join(v)).unwrap();
            fs::write(dir.path().join("churn").join(v).join("model.onnx"), v).unwrap();
        }
        assert_eq!(current(dir.path(), "churn"), None);
        set_current(dir.path(), "churn", "v0002").unwrap();
        assert_eq!(current(dir.path(), "churn").unwrap().0, "v0002");
        set_current(dir.path(), "churn", "v0001").unwrap();
        let vs = versions(dir.path(), "churn");
        assert_eq!(vs.iter().filter(|v| v.current).map(|v| v.version.as_str()).collect::<Vec<_>>(), ["v0001"]);
        assert!(set_current(dir.path(), "churn", "v0009").is_err());
        assert_eq!(names(dir.path()), ["churn"]);
    }
}
