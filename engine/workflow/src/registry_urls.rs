//! Registries on S3: where a workflow names a registry (a gate's `Champion`, `Deployed(...)`,
//! a `Wasm` mount) it may write `s3://bucket/prefix` instead of a directory. Checked here; the
//! run works on a local mirror of it ([`crate::Workflow::registry_mirrors`]).

use crate::diag::{Diagnostic, Source};
use crate::model::{DataSource, TaskDef, TaskKind};
use crate::validate::TaskSpans;

/// Whether a registry (or mount) location is remote rather than a directory: it has a
/// `scheme://`. Only `s3://` is accepted (see [`check_location`]).
pub fn is_remote(location: &str) -> bool {
    location.contains("://")
}

/// Why a remote location is not a usable `s3://bucket/prefix` (the grammar of
/// [`crate::remote::parse_s3_location`], shared with `remote_cache`); `Ok` for directories and
/// valid URLs.
pub fn check_location(location: &str) -> Result<(), String> {
    if !is_remote(location) {
        return Ok(());
    }
    if !location.starts_with("s3://") {
        return Err("only s3:// registries are supported besides directories".into());
    }
    crate::remote::parse_s3_location(location).map(|_| ())
}

/// The registry locations a task names, with the kind field they are written in.
pub fn task_locations(kind: &TaskKind) -> Vec<(&'static str, &str)> {
    fn deployed(s: &DataSource) -> Option<&str> {
        match s {
            DataSource::Deployed(d) => Some(d.registry.as_str()),
            DataSource::Input(_) => None,
        }
    }
    match kind {
        TaskKind::OnnxEval(e) => e
            .gate
            .as_ref()
            .and_then(|g| g.champion.as_ref())
            .map(|c| ("gate", c.registry.as_str()))
            .into_iter()
            .collect(),
        TaskKind::OnnxPredict(p) => p.deployed.iter().map(|d| ("deployed", d.registry.as_str())).collect(),
        TaskKind::Drift(d) => {
            let reference = deployed(&d.reference).map(|r| ("reference", r));
            let model = d.model.as_ref().and_then(deployed).map(|r| ("model", r));
            reference.into_iter().chain(model).collect()
        }
        TaskKind::Performance(p) => deployed(&p.model).map(|r| ("model", r)).into_iter().collect(),
        TaskKind::Approval(a) => vec![("deploys", a.deploys.registry.as_str())],
        TaskKind::Wasm(w) => w.mounts.values().map(|m| ("mounts", m.path.as_str())).collect(),
        TaskKind::Command(_) => Vec::new(),
    }
}

/// Every remote location a task names must be a valid `s3://` URL.
pub(crate) fn check_task(source: &Source, def: &TaskDef, sp: &TaskSpans<'_>, diags: &mut Vec<Diagnostic>) {
    for (field, location) in task_locations(&def.kind) {
        if let Err(why) = check_location(location) {
            diags.push(
                Diagnostic::new(
                    "dagrun::invalid-registry",
                    format!("task `{}` names registry {location:?}: {why}", def.name),
                    source,
                )
                .label(sp.kind_field(field), "here")
                .help("write a directory (relative to the workflow file) or s3://BUCKET/PREFIX; endpoint and credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        for ok in ["registry", "/abs/registry", "s3://models", "s3://team-models/dagrun/prod/"] {
            check_location(ok).unwrap();
        }
        for (bad, says) in [
            ("gs://models", "only s3://"),
            ("s3://", "bucket"),
            ("s3://Models/x", "bucket"),
            ("s3://models/a/../b", "prefix"),
            ("s3://models/a//b", "prefix"),
        ] {
            let e = check_location(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(is_remote("s3://models") && !is_remote("registry"));
    }
}
