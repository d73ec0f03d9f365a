//! `deploy`: promotes a model into a versioned registry, only with a passing verdict for its
//! exact bytes.
//!
//! Inputs: `model` (model.onnx) and `verdict` (the `OnnxEval` gate's verdict.json). Mount:
//! `registry` (writable). Params: `{"name": "churn"}`. Output: `receipt` (JSON).
//!
//! Layout written: `<registry>/<name>/v0001/{model.onnx, verdict.json, metadata.json}` and
//! `<registry>/<name>/current` (replaced atomically: temp file + rename). Deploying bytes that
//! are already current is a no-op.

use std::fs;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

/// Params: the model's name in the registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Model name (a directory under the registry).
    pub name: String,
}

/// What the deploy did (the task's summary and its `receipt` output).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Receipt {
    /// Model name.
    pub name: String,
    /// The version now current.
    pub version: String,
    /// blake3 of the model bytes.
    pub digest: String,
    /// True when these bytes were already current (nothing was written).
    pub unchanged: bool,
}

#[derive(Debug, Deserialize)]
struct Verdict {
    decision: String,
    reason: String,
    candidate: Candidate,
}

#[derive(Debug, Deserialize)]
struct Candidate {
    digest: String,
}

/// The deploy logic, on plain paths (tested natively).
pub fn deploy(model: &Path, verdict_path: &Path, registry: &Path, name: &str) -> Result<Receipt, Error> {
    let bytes = fs::read(model).map_err(|e| Error::bad_input(format!("cannot read the model: {e}")))?;
    let digest = blake3::hash(&bytes).to_hex().to_string();
    let verdict: Verdict = serde_json::from_slice(
        &fs::read(verdict_path).map_err(|e| Error::bad_input(format!("cannot read the verdict: {e}")))?,
    )
    .map_err(|e| Error::bad_input(format!("the verdict is not a dagrun verdict.json: {e}")))?;
    if verdict.decision != "pass" {
        return Err(Error::failed(format!("refusing to deploy: the gate refused this model ({})", verdict.reason)));
    }
    if verdict.candidate.digest != digest {
        return Err(Error::failed(format!(
            "refusing to deploy: the verdict is for model {} but this model is {digest} (was it changed after evaluation?)",
            short(&verdict.candidate.digest)
        )));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::invalid_params(format!("invalid model name `{name}`: use letters, digits, `-` and `_`")));
    }
    let dir = registry.join(name);
    fs::create_dir_all(&dir)?;
    let mut versions: Vec<u32> = fs::read_dir(&dir)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix('v').and_then(|d| d.parse().ok()))
        .collect();
    versions.sort_unstable();
    if let Ok(current) = fs::read_to_string(dir.join("current")) {
        let current = current.trim().to_owned();
        if fs::read(dir.join(&current).join("model.onnx")).is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == digest) {
            return Ok(Receipt { name: name.to_owned(), version: current, digest, unchanged: true });
        }
    }
    let version = format!("v{:04}", versions.last().map_or(1, |v| v + 1));
    let target = dir.join(&version);
    let staging = dir.join(format!(".{version}.staging"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    fs::write(staging.join("model.onnx"), &bytes)?;
    fs::copy(verdict_path, staging.join("verdict.json"))?;
    let metadata = serde_json::json!({"version": 1, "name": name, "model_version": version, "digest": digest});
    fs::write(staging.join("metadata.json"), serde_json::to_string_pretty(&metadata)? + "\n")?;
    fs::rename(&staging, &target)?;
    let tmp = dir.join(".current.tmp");
    fs::write(&tmp, format!("{version}\n"))?;
    fs::rename(&tmp, dir.join("current"))?;
    Ok(Receipt { name: name.to_owned(), version, digest, unchanged: false })
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

struct Deploy;

impl Task for Deploy {
    type Params = Params;
    type Output = Receipt;

    fn describe() -> Info {
        Info::new("deploy", env!("CARGO_PKG_VERSION"))
            .description("Promotes a model with a passing verdict into <registry>/<name>/vNNNN and moves `current`.")
            .params_schema(r#"{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}"#)
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Receipt, Error> {
        let model = ctx.input("model")?;
        let verdict = ctx.input("verdict")?;
        let registry = ctx.mount("registry")?;
        let receipt = deploy(&model, &verdict, &registry, &params.name)?;
        ctx.log_info(if receipt.unchanged {
            format!("{} {} is already current", receipt.name, receipt.version)
        } else {
            format!("deployed {} {}", receipt.name, receipt.version)
        });
        fs::write(ctx.output_file("receipt", "receipt.json"), serde_json::to_string_pretty(&receipt)? + "\n")?;
        Ok(receipt)
    }
}

dagrun_sdk::export_task!(Deploy);

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(decision: &str, model: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("model.onnx");
        fs::write(&m, model).unwrap();
        let v = dir.path().join("verdict.json");
        let digest = blake3::hash(b"model-bytes").to_hex().to_string();
        fs::write(&v, format!(r#"{{"decision":"{decision}","reason":"r","candidate":{{"digest":"{digest}"}}}}"#))
            .unwrap();
        (dir, m, v)
    }

    #[test]
    fn deploys_then_noop_then_refuses_tampered_and_refused() {
        let (dir, m, v) = setup("pass", b"model-bytes");
        let reg = dir.path().join("registry");
        let r = deploy(&m, &v, &reg, "churn").unwrap();
        assert_eq!((r.version.as_str(), r.unchanged), ("v0001", false));
        assert_eq!(fs::read_to_string(reg.join("churn/current")).unwrap(), "v0001\n");
        assert!(deploy(&m, &v, &reg, "churn").unwrap().unchanged, "same bytes: no-op");
        fs::write(&m, b"model-bytEs").unwrap();
        let e = deploy(&m, &v, &reg, "churn").unwrap_err();
        assert!(e.to_string().contains("the verdict is for model"), "{e}");
        let (dir2, m2, v2) = setup("refuse", b"model-bytes");
        let e = deploy(&m2, &v2, &dir2.path().join("registry"), "churn").unwrap_err();
        assert!(e.to_string().contains("the gate refused this model"), "{e}");
    }
}
