//! The model registry on disk, as the engine uses it: the layout and its operations are defined
//! once in [`dagrun_contracts::registry`] (shared with the deploy plugin); this module keeps the
//! engine's names for them.
//!
//! ```text
//! <registry>/<name>/current            "v0003\n": the deployed version
//! <registry>/<name>/v0003/model.onnx   the model
//! <registry>/<name>/v0003/verdict.json the gate's verdict that allowed it
//! <registry>/<name>/v0003/metadata.json
//! ```

use std::path::Path;

pub use dagrun_contracts::registry::{ModelVersion, VERDICT_FILE, current, names, reference, verdict_file, versions};

/// Points `current` at `version` atomically (temp file + fsync + rename); an error if the
/// version has no `model.onnx` or the name or version is not valid.
pub fn set_current(registry: &Path, name: &str, version: &str) -> std::io::Result<()> {
    dagrun_contracts::registry::set_current(registry, name, version).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The engine-facing names keep working over the shared implementation.
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
        let missing = set_current(dir.path(), "churn", "v0009").unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        assert!(missing.to_string().ends_with("v0009 has no model.onnx"), "{missing}");
        assert_eq!(names(dir.path()), ["churn"]);
    }
}
