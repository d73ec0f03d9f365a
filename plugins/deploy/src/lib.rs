//! `deploy`: promotes a model into a versioned registry, only with a passing verdict for its
//! exact bytes.
//!
//! Inputs: `model` (model.onnx), `verdict` (the `OnnxEval` gate's verdict.json) and, optionally,
//! `reference` (the data the model was trained on, CSV or Parquet: copied beside the model so a
//! `Drift(reference: Deployed(...))` task compares new data with it) and `approval` (an
//! `Approval` step's approval.json: it must name this model's digest and this verdict's
//! digest, else the deploy is refused; it is recorded in the version's metadata, where the
//! circuit breaker counts automatic promotions). Mount: `registry` (writable). Params:
//! `{"name": "churn"}`. Output: `receipt` (JSON).
//!
//! Layout written: `<registry>/<name>/v0001/{model.onnx, verdict.json, metadata.json[, reference.csv]}` and
//! `<registry>/<name>/current` (replaced atomically: temp file + rename). The metadata records
//! when the version was promoted and the version current before it (what a rollback returns
//! to). Deploying bytes that are already current is a no-op. The verdict format and the registry layout and operations
//! are `dagrun-contracts`', shared with the engine.

use std::fs;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use dagrun_contracts::{ApprovalRecord, Verdict, registry};
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

/// The optional inputs of a deploy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The training data (`reference`), recorded with the model as its drift reference.
    pub reference: Option<&'a Path>,
    /// The `Approval` step's approval.json (`approval`), bound to the model and the verdict.
    pub approval: Option<&'a Path>,
}

/// The deploy logic, on plain paths (tested natively).
pub fn deploy(
    model: &Path,
    verdict_path: &Path,
    registry: &Path,
    name: &str,
    extras: Extras<'_>,
) -> Result<Receipt, Error> {
    let bytes = fs::read(model).map_err(|e| Error::bad_input(format!("cannot read the model: {e}")))?;
    let digest = blake3::hash(&bytes).to_hex().to_string();
    let verdict_bytes =
        fs::read(verdict_path).map_err(|e| Error::bad_input(format!("cannot read the verdict: {e}")))?;
    let verdict: Verdict =
        Verdict::from_json(&verdict_bytes).map_err(|e| Error::bad_input(format!("input `verdict`: {e}")))?;
    if !verdict.passed() {
        return Err(Error::failed(format!("refusing to deploy: the gate refused this model ({})", verdict.reason)));
    }
    if verdict.candidate.digest != digest {
        return Err(Error::failed(format!(
            "refusing to deploy: the verdict is for model {} but this model is {digest} (was it changed after evaluation?)",
            short(&verdict.candidate.digest)
        )));
    }
    let approval = extras.approval.map(|p| read_approval(p, name, &digest, &verdict_bytes)).transpose()?;
    registry::validate_name(name).map_err(|e| Error::invalid_params(e.to_string()))?;
    let reference = extras.reference;
    let reference_digest = reference.map(file_digest).transpose()?;
    let new_reference =
        reference.zip(reference_digest.as_deref()).map(|(path, digest)| registry::NewReference { path, digest });
    let done = registry::promote(registry, name, &bytes, &digest, &verdict_bytes, new_reference, approval.as_ref())
        .map_err(|e| Error::failed(format!("cannot deploy into {}: {e}", registry.display())))?;
    Ok(Receipt { name: name.to_owned(), version: done.version, digest, unchanged: done.unchanged })
}

/// Reads `approval.json` and checks that it lets through exactly this model and this verdict.
fn read_approval(path: &Path, name: &str, model_digest: &str, verdict_bytes: &[u8]) -> Result<ApprovalRecord, Error> {
    let approval = ApprovalRecord::read(path).map_err(|e| Error::bad_input(format!("input `approval`: {e}")))?;
    if let Some(guarded) = approval.model.as_deref().filter(|g| *g != name) {
        return Err(Error::bad_input(format!(
            "refusing to deploy: the approval is for registry model `{guarded}` but this task deploys `{name}`: make the Approval step's `deploys` name `{name}`"
        )));
    }
    if approval.model_digest != model_digest {
        return Err(Error::failed(format!(
            "refusing to deploy: the approval is for model {} but this model is {} (a different model needs its own approval)",
            short(&approval.model_digest),
            short(model_digest)
        )));
    }
    let verdict_digest = blake3::hash(verdict_bytes).to_hex().to_string();
    if approval.verdict_digest != verdict_digest {
        return Err(Error::failed(format!(
            "refusing to deploy: the approval is for verdict {} but this verdict is {} (the model was evaluated again since it was approved)",
            short(&approval.verdict_digest),
            short(&verdict_digest)
        )));
    }
    Ok(approval)
}

/// blake3 (hex) of a file, read in chunks (training data can be large).
fn file_digest(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| Error::bad_input(format!("cannot read the reference data: {e}"));
    let mut file = fs::File::open(path).map_err(unreadable)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
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
        // Optional: the training data, recorded with the model as its drift reference, and
        // the approval that lets it through.
        let reference = ctx.input("reference").ok();
        let approval = ctx.input("approval").ok();
        let extras = Extras { reference: reference.as_deref(), approval: approval.as_deref() };
        let receipt = deploy(&model, &verdict, &registry, &params.name, extras)?;
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
    use dagrun_contracts::{ApprovalDecision, Decision, Scored};
    use serde_json::json;

    fn verdict(decision: Decision, digest: &str) -> Verdict {
        Verdict {
            version: dagrun_contracts::VERDICT_VERSION,
            decision,
            reason: "r".into(),
            candidate: Scored { digest: digest.into(), version: None, metrics: json!({"accuracy": 0.9}) },
            champion: None,
            behaviour: None,
            data_digest: "d".into(),
            gate: json!({"min": {"accuracy": 0.8}}),
        }
    }

    fn setup(decision: Decision, model: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("model.onnx");
        fs::write(&m, model).unwrap();
        let v = dir.path().join("verdict.json");
        let digest = blake3::hash(b"model-bytes").to_hex().to_string();
        fs::write(&v, verdict(decision, &digest).to_json()).unwrap();
        (dir, m, v)
    }

    #[test]
    fn deploys_then_noop_then_refuses_tampered_and_refused() {
        let (dir, m, v) = setup(Decision::Pass, b"model-bytes");
        let reg = dir.path().join("registry");
        let r = deploy(&m, &v, &reg, "churn", Extras::default()).unwrap();
        assert_eq!((r.version.as_str(), r.unchanged), ("v0001", false));
        assert_eq!(fs::read_to_string(reg.join("churn/current")).unwrap(), "v0001\n");
        assert!(deploy(&m, &v, &reg, "churn", Extras::default()).unwrap().unchanged, "same bytes: no-op");
        fs::write(&m, b"model-bytEs").unwrap();
        let e = deploy(&m, &v, &reg, "churn", Extras::default()).unwrap_err();
        assert!(e.to_string().contains("the verdict is for model"), "{e}");
        let (dir2, m2, v2) = setup(Decision::Refuse, b"model-bytes");
        let e = deploy(&m2, &v2, &dir2.path().join("registry"), "churn", Extras::default()).unwrap_err();
        assert!(e.to_string().contains("the gate refused this model"), "{e}");
    }

    #[test]
    fn registry_files_follow_the_contract() {
        let (dir, m, v) = setup(Decision::Pass, b"model-bytes");
        let reg = dir.path().join("registry");
        deploy(&m, &v, &reg, "churn", Extras::default()).unwrap();
        assert_eq!(registry::current(&reg, "churn").unwrap().0, "v0001");
        let meta = registry::read_metadata(&reg, "churn", "v0001").unwrap();
        assert_eq!((meta.model_version.as_str(), meta.digest.len()), ("v0001", 64));
        let copied = Verdict::<serde_json::Value>::read(&registry::verdict_file(&reg, "churn", "v0001")).unwrap();
        assert_eq!(copied, Verdict::read(&v).unwrap());
        let e = deploy(&m, &v, &reg, "../escape", Extras::default()).unwrap_err();
        assert!(e.to_string().contains("invalid model name `../escape`"), "{e}");
    }

    #[test]
    fn a_verdict_of_a_newer_version_is_refused_clearly() {
        let (dir, m, v) = setup(Decision::Pass, b"model-bytes");
        let newer = fs::read_to_string(&v).unwrap().replacen("\"version\": 1", "\"version\": 2", 1);
        fs::write(&v, newer).unwrap();
        let reg = dir.path().join("registry");
        let e = deploy(&m, &v, &reg, "churn", Extras::default()).unwrap_err();
        assert_eq!(e.kind(), dagrun_sdk::ErrorKind::BadInput);
        assert!(
            e.to_string().contains("verdict.json version 2 is newer than this dagrun/plugin understands (1): upgrade"),
            "{e}"
        );
        assert!(!reg.exists(), "nothing deployed");
    }

    #[test]
    fn records_the_reference_data_with_the_model() {
        let (dir, m, v) = setup(Decision::Pass, b"model-bytes");
        let data = dir.path().join("train.csv");
        fs::write(&data, "a,label\n1,0\n").unwrap();
        let reg = dir.path().join("registry");
        let r = deploy(&m, &v, &reg, "churn", Extras { reference: Some(&data), approval: None }).unwrap();
        let (path, meta) = registry::reference(&reg, "churn", &r.version).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), "a,label\n1,0\n");
        assert_eq!(meta.digest, blake3::hash(b"a,label\n1,0\n").to_hex().to_string());
        assert_eq!(meta.source, "train.csv");
    }

    fn with(a: &Path) -> Extras<'_> {
        Extras { reference: None, approval: Some(a) }
    }

    fn approval_file(dir: &Path, model_digest: &str, verdict: &Path, decision: ApprovalDecision) -> PathBuf {
        let a = ApprovalRecord {
            version: dagrun_contracts::APPROVAL_VERSION,
            decision,
            model: None,
            model_digest: model_digest.into(),
            verdict_digest: blake3::hash(&fs::read(verdict).unwrap()).to_hex().to_string(),
            reasons: vec!["23.1% of predictions change (max 10%)".into()],
            by: Some("ana".into()),
            note: None,
            decided_ms: Some(1_764_331_200_000),
            request: Some(3),
        };
        let path = dir.join("approval.json");
        fs::write(&path, a.to_json()).unwrap();
        path
    }

    #[test]
    fn an_approval_is_bound_to_the_model_and_the_verdict_and_recorded() {
        let (dir, m, v) = setup(Decision::Pass, b"model-bytes");
        let reg = dir.path().join("registry");
        let digest = blake3::hash(b"model-bytes").to_hex().to_string();

        let other_model = approval_file(dir.path(), &"ab".repeat(32), &v, ApprovalDecision::Approved);
        let e = deploy(&m, &v, &reg, "churn", with(&other_model)).unwrap_err();
        assert_eq!(e.kind(), dagrun_sdk::ErrorKind::Failed);
        assert!(e.to_string().contains("the approval is for model abababababab but this model is"), "{e}");
        assert!(!reg.exists(), "nothing deployed");

        let a = approval_file(dir.path(), &digest, &v, ApprovalDecision::Approved);
        let mut named = ApprovalRecord::read(&a).unwrap();
        named.model = Some("churnn".into());
        fs::write(&a, named.to_json()).unwrap();
        let e = deploy(&m, &v, &reg, "churn", with(&a)).unwrap_err();
        assert!(
            e.to_string().contains("the approval is for registry model `churnn` but this task deploys `churn`"),
            "{e}"
        );
        assert!(!reg.exists(), "nothing deployed");

        let a = approval_file(dir.path(), &digest, &v, ApprovalDecision::Approved);
        let mut changed = fs::read_to_string(&v).unwrap();
        changed = changed.replace("\"reason\": \"r\"", "\"reason\": \"r2\"");
        fs::write(&v, &changed).unwrap();
        let e = deploy(&m, &v, &reg, "churn", with(&a)).unwrap_err();
        assert!(e.to_string().contains("the approval is for verdict"), "{e}");

        let a = approval_file(dir.path(), &digest, &v, ApprovalDecision::Approved);
        let r = deploy(&m, &v, &reg, "churn", with(&a)).unwrap();
        let meta = registry::read_metadata(&reg, "churn", &r.version).unwrap();
        assert_eq!(meta.approval, Some(ApprovalRecord::read(&a).unwrap()));
        assert!(meta.promoted_ms.is_some());
        assert_eq!(meta.previous, None);

        fs::write(&a, "{\"version\": 1}").unwrap();
        let e = deploy(&m, &v, &reg, "churn", with(&a)).unwrap_err();
        assert_eq!(e.kind(), dagrun_sdk::ErrorKind::BadInput);
        assert!(e.to_string().contains("input `approval`: approval.json is not a valid"), "{e}");
    }

    #[test]
    fn a_deploy_records_the_version_it_replaces() {
        let (dir, m, v) = setup(Decision::Pass, b"model-bytes");
        let reg = dir.path().join("registry");
        deploy(&m, &v, &reg, "churn", Extras::default()).unwrap();
        let (dir2, m2, _) = setup(Decision::Pass, b"model-bytes-2");
        let digest2 = blake3::hash(b"model-bytes-2").to_hex().to_string();
        let v2 = dir2.path().join("verdict2.json");
        fs::write(&v2, verdict(Decision::Pass, &digest2).to_json()).unwrap();
        let a = approval_file(dir2.path(), &digest2, &v2, ApprovalDecision::Automatic);
        let r = deploy(&m2, &v2, &reg, "churn", Extras { reference: None, approval: Some(&a) }).unwrap();
        assert_eq!(r.version, "v0002");
        let meta = registry::read_metadata(&reg, "churn", "v0002").unwrap();
        assert_eq!(meta.previous.as_deref(), Some("v0001"));
        let auto = registry::automatic_promotions(&reg, "churn", 0);
        assert_eq!(auto.len(), 1, "only the Approval step's automatic promotion counts for the breaker");
        assert_eq!(auto[0].0, "v0002");
    }
}
