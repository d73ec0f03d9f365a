//! CI export: the file that runs a workflow on its schedule in the CI a team already has, with
//! dagrun's state directory kept in the CI's cache between runs, the outputs uploaded, and the
//! job failing when dagrun fails (a refusing gate included).
//!
//! [`github_actions`] writes a GitHub Actions workflow, [`gitlab_ci`] a `.gitlab-ci.yml`. Both
//! are pure: they read a loaded [`Workflow`] and return the text, warnings for what the CI cannot
//! do as dagrun would, notes for the person exporting, and where the file usually goes. The YAML
//! is written by hand; every string that comes from the workflow file is quoted (see [`yaml`]).
//! With [`ExportOptions::shards`] both write a sharded backfill instead (see [`backfill`]).

mod backfill;
mod cron;
mod github;
mod gitlab;
mod yaml;

use std::path::{Component, Path};

use dagrun_workflow::automation::Concurrency;
use dagrun_workflow::{TaskKind, Workflow};

pub use github::github_actions;
pub use gitlab::gitlab_ci;

/// The command that installs dagrun in CI unless `--install` says otherwise.
pub const DEFAULT_INSTALL: &str = "cargo install --locked dagrun";

/// The ONNX Runtime that `OnnxEval` and `OnnxPredict` tasks load (its PyPI wheel ships the library).
pub const ONNXRUNTIME: &str = "onnxruntime==1.31.1";

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The shell command that installs dagrun on the CI machine.
    pub install: String,
    /// `--shards N`: a backfill started by hand with a range, run as N parallel jobs (one
    /// `dagrun backfill --shard I/N` each) and then once unsharded, instead of the scheduled run.
    pub shards: Option<u32>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { install: DEFAULT_INSTALL.to_owned(), shards: None }
    }
}

/// A generated CI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The file's text.
    pub text: String,
    /// What the CI will do differently from dagrun (no schedule, triggers left out, ...).
    pub warnings: Vec<String>,
    /// What the person exporting has to do besides committing the file.
    pub notes: Vec<String>,
    /// Where the file usually goes, relative to the repository root.
    pub suggested_path: String,
}

/// Why a workflow cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The cron expression uses syntax the CI's cron does not have.
    #[error("the schedule `{expr}` cannot be written for {ci}: {why}")]
    Cron {
        /// The expression as written.
        expr: String,
        /// The CI system.
        ci: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// `--shards` for a workflow without partitions, or a number of shards the CI cannot run.
    #[error("--shards {shards}: {why}")]
    Shards {
        /// The number asked for.
        shards: u32,
        /// What is wrong, and what to do.
        why: String,
    },
}

/// What both CI files need to know about a workflow, worked out once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The workflow's `name`.
    pub name: String,
    /// A lower-case, `[a-z0-9-]` form of the name for file names, cache keys and job names.
    pub slug: String,
    /// 8 hex digits of the workflow path's hash: two workflows with one name get apart keys.
    pub id: String,
    /// The workflow file, relative to the repository root, with `/` separators.
    pub path: String,
    /// The state directory and the model registries the workflow writes: kept in the CI cache.
    pub persist: Vec<String>,
    /// Every declared output path (relative to the repository root), `{var}` templates as `*`.
    pub outputs: Vec<String>,
    /// Whether any task is a `Wasm` plugin task (the wasm32-wasip2 target is needed).
    pub has_wasm: bool,
    /// Whether any task is `OnnxEval` or `OnnxPredict` (ONNX Runtime is needed).
    pub has_onnx: bool,
    /// The schedule: its expression as written, as five fields, and its time zone (`None`: UTC).
    pub schedule: Option<(String, String, Option<String>)>,
    /// Warnings common to both CI systems.
    pub warnings: Vec<String>,
}

impl Target {
    /// Works out what to export; `ci` names the CI system in messages.
    pub(crate) fn new(wf: &Workflow, workflow_path: &str, ci: &'static str) -> Result<Target, ExportError> {
        let path = normalise(workflow_path);
        let dir = match path.rfind('/') {
            Some(i) => path[..i].to_owned(),
            None => String::new(),
        };
        let mut warnings = Vec::new();
        let schedule = match &wf.automation.schedule {
            None => {
                warnings.push(format!(
                    "workflow `{}` has no schedule: the {ci} file runs it only when started by hand",
                    wf.name
                ));
                None
            }
            Some(s) => {
                let fields =
                    cron::five_fields(&s.expr).map_err(|why| ExportError::Cron { expr: s.expr.clone(), ci, why })?;
                let tz = (!is_utc(s.timezone.name())).then(|| s.timezone.name().to_owned());
                Some((s.expr.clone(), fields, tz))
            }
        };
        if !wf.automation.triggers.is_empty() {
            warnings.push(format!(
                "{} trigger(s) of `{}` (files landing, webhooks, other workflows' outcomes) are not exported: \
                 {ci} runs the workflow on its schedule and by hand only",
                wf.automation.triggers.len(),
                wf.name
            ));
        }
        if wf.automation.concurrency == Concurrency::Skip {
            warnings.push(format!(
                "`concurrency: Skip` has no {ci} equivalent: a run started while another is in progress waits for it instead"
            ));
        }
        let mut persist = vec![yaml::glob_literal(&join(&dir, ".dagrun"), false)];
        for registry in registries(wf) {
            match inside(&dir, &registry).map(|p| yaml::glob_literal(&p, false)) {
                Some(p) if !persist.contains(&p) => persist.push(p),
                Some(_) => {}
                None => warnings.push(format!(
                    "model registry `{registry}` is outside the repository: it is not kept between {ci} runs"
                )),
            }
        }
        let mut outputs: Vec<String> = Vec::new();
        for task in &wf.tasks {
            for out in task.outputs.values() {
                let p = yaml::glob_literal(&join(&dir, &normalise(out)), task.partitioned.is_some());
                if !outputs.contains(&p) {
                    outputs.push(p);
                }
            }
        }
        let kinds = || wf.tasks.iter().map(|t| &t.kind);
        Ok(Target {
            name: wf.name.clone(),
            slug: slug(&wf.name),
            id: blake3::hash(path.as_bytes()).to_hex()[..8].to_owned(),
            has_wasm: kinds().any(|k| matches!(k, TaskKind::Wasm(_))),
            has_onnx: kinds().any(|k| {
                matches!(
                    k,
                    TaskKind::OnnxEval(_) | TaskKind::OnnxPredict(_) | TaskKind::Drift(_) | TaskKind::Performance(_)
                )
            }),
            path,
            persist,
            outputs,
            schedule,
            warnings,
        })
    }

    /// The prefix of this workflow's cache keys and concurrency group: `dagrun-<slug>-<id>`.
    pub(crate) fn key(&self) -> String {
        format!("dagrun-{}-{}", self.slug, self.id)
    }

    /// The time zone the schedule is read in, by name (`UTC` when the workflow gives none).
    pub(crate) fn timezone(&self) -> &str {
        self.schedule.as_ref().and_then(|(_, _, tz)| tz.as_deref()).unwrap_or("UTC")
    }
}

/// Whether a time zone name is UTC under another name.
fn is_utc(name: &str) -> bool {
    let n = name.strip_prefix("Etc/").unwrap_or(name);
    matches!(n, "UTC" | "UCT" | "Universal" | "Zulu" | "GMT" | "GMT0" | "GMT+0" | "GMT-0" | "Greenwich")
}

/// The directories of model registries the workflow reads or writes, as written (relative to
/// the workflow directory, or absolute).
fn registries(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for task in &wf.tasks {
        match &task.kind {
            TaskKind::OnnxEval(e) => out.extend(e.gate.iter().flat_map(|g| &g.champion).map(|c| c.registry.clone())),
            TaskKind::OnnxPredict(p) => out.extend(p.deployed.iter().map(|d| d.registry.clone())),
            TaskKind::Wasm(w) => out.extend(w.mounts.values().filter(|m| m.writable).map(|m| m.path.clone())),
            TaskKind::Drift(d) => {
                out.extend([Some(&d.reference), d.model.as_ref()].into_iter().flatten().filter_map(deployed_registry))
            }
            TaskKind::Performance(p) => out.extend(deployed_registry(&p.model)),
            TaskKind::Approval(a) => out.push(a.deploys.registry.clone()),
            TaskKind::Command(_) => {}
        }
    }
    out
}

fn deployed_registry(s: &dagrun_workflow::DataSource) -> Option<String> {
    match s {
        dagrun_workflow::DataSource::Deployed(d) => Some(d.registry.clone()),
        dagrun_workflow::DataSource::Input(_) => None,
    }
}

/// `path` (relative to the workflow directory `dir`) relative to the repository root, or `None`
/// when it is absolute or climbs above the root.
fn inside(dir: &str, path: &str) -> Option<String> {
    if Path::new(path).is_absolute() {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    // A workflow outside any repository keeps its absolute directory (with its leading `/`).
    let root = if dir.starts_with('/') { "/" } else { "" };
    (!parts.is_empty()).then(|| format!("{root}{}", parts.join("/")))
}

/// A relative path with `/` separators and without `.` components or repeated slashes.
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".").collect();
    let joined = parts.join("/");
    if path.starts_with('/') { format!("/{joined}") } else { joined }
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() { path.to_owned() } else { format!("{dir}/{path}") }
}

/// `name` in lower case with every run of other characters than `a-z0-9` as one `-`, at most
/// 40 characters; `workflow` when nothing is left.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.chars().take(40).collect();
    let out = out.trim_end_matches('-');
    if out.is_empty() { "workflow".to_owned() } else { out.to_owned() }
}

/// The line that starts each generated file.
fn header(command: &str, path: &str) -> String {
    format!(
        "# Generated by `dagrun export {command}` from {} (dagrun {}).\n\
         # Export again after changing the workflow's schedule, outputs or task kinds.\n",
        yaml::comment(path),
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
