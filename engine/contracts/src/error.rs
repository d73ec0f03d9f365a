//! Errors reading and writing the contracts, and the version check every versioned file gets.

use std::io;
use std::path::PathBuf;

/// What went wrong with a contract file or the registry.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The file was written by a newer dagrun or plugin.
    #[error(
        "{file} version {found} is newer than this dagrun/plugin understands ({supported}): upgrade dagrun and the plugins"
    )]
    NewerVersion {
        /// `verdict.json`, `metadata.json`.
        file: &'static str,
        /// The version in the file.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The file has no usable `version` (missing, not a number, or 0).
    #[error("{file} has no valid `version` field (expected a number from 1 to {supported}): {detail}")]
    UnknownVersion {
        /// `verdict.json`, `metadata.json`.
        file: &'static str,
        /// The newest version this build understands.
        supported: u32,
        /// What was found.
        detail: String,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{file} is not a valid dagrun {file}: {source}")]
    Json {
        /// `verdict.json`, `metadata.json`.
        file: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A version directory whose files disagree: the model's bytes and the digest recorded for
    /// them, or the name or version recorded and the directory's.
    #[error("{}: {reason}", .dir.display())]
    Inconsistent {
        /// The version directory.
        dir: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A model name that cannot be a registry directory.
    #[error("invalid model name `{0}`: use letters, digits, `-` and `_`")]
    InvalidName(String),
    /// A version name that is not `v` followed by digits.
    #[error("invalid model version `{0}`: expected `v` and a number, like v0001")]
    InvalidVersion(String),
    /// A registry version directory without its model file.
    #[error("{} has no model.onnx", .0.display())]
    NoModel(PathBuf),
}

impl ContractError {
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ContractError {
        let path = path.into();
        move |source| ContractError::Io { path, source }
    }
}

impl From<ContractError> for io::Error {
    fn from(e: ContractError) -> io::Error {
        let kind = match &e {
            ContractError::Io { source, .. } => source.kind(),
            ContractError::NoModel(_) => io::ErrorKind::NotFound,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// Checks the `version` field of a versioned JSON file before its shape is parsed, so a newer
/// file gives [`ContractError::NewerVersion`] rather than a missing-field error.
pub fn check_version(file: &'static str, json: &serde_json::Value, supported: u32) -> Result<u32, ContractError> {
    let unknown = |detail: String| ContractError::UnknownVersion { file, supported, detail };
    let found = match json.get("version") {
        None => return Err(unknown("no `version` field".into())),
        Some(v) => v.as_u64().ok_or_else(|| unknown(format!("`version` is {v}")))?,
    };
    match u32::try_from(found) {
        Ok(0) => Err(unknown("`version` is 0".into())),
        Ok(v) if v <= supported => Ok(v),
        _ => Err(ContractError::NewerVersion { file, found: found.min(u64::from(u32::MAX)) as u32, supported }),
    }
}

/// Parses a versioned JSON file: version check first, then the shape.
pub(crate) fn parse_versioned<T: serde::de::DeserializeOwned>(
    file: &'static str,
    bytes: &[u8],
    supported: u32,
) -> Result<T, ContractError> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| ContractError::Json { file, source })?;
    check_version(file, &json, supported)?;
    serde_json::from_value(json).map_err(|source| ContractError::Json { file, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_check() {
        assert_eq!(check_version("verdict.json", &json!({"version": 1}), 1).unwrap(), 1);
        let newer = check_version("verdict.json", &json!({"version": 2}), 1).unwrap_err().to_string();
        assert_eq!(
            newer,
            "verdict.json version 2 is newer than this dagrun/plugin understands (1): upgrade dagrun and the plugins"
        );
        let huge = check_version("x.json", &json!({"version": 1u64 << 40}), 1).unwrap_err();
        assert!(matches!(huge, ContractError::NewerVersion { found: u32::MAX, .. }), "{huge}");
        for bad in [json!({}), json!({"version": 0}), json!({"version": "1"}), json!({"version": -1})] {
            let e = check_version("metadata.json", &bad, 1).unwrap_err();
            assert!(matches!(e, ContractError::UnknownVersion { .. }), "{bad}: {e}");
            assert!(e.to_string().starts_with("metadata.json has no valid `version` field"), "{e}");
        }
    }

    #[test]
    fn io_error_conversion_keeps_the_kind() {
        let e: io::Error = ContractError::NoModel("r/m/v0001".into()).into();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("has no model.onnx"), "{e}");
        let e: io::Error = ContractError::InvalidName("a/b".into()).into();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
