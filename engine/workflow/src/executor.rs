//! Where a task runs: `Local` (the default), a job on an existing Slurm cluster, or a job on an
//! existing Ray cluster. Set per task (`executor: Slurm(...)`) or for the whole workflow; the
//! task's wins. The executor is not part of the cache key: running remotely never changes what
//! is cached. Only `Command` and `Wasm` tasks run remotely; a workflow-level executor leaves
//! the other kinds (and plugins with `mounts`, host directories a job cannot see) local.

use std::ops::Range;

use serde::Deserialize;

use crate::diag::{Diagnostic, Source};
use crate::model::{TaskDef, TaskKind};
use crate::spans::Node;
use crate::{duration, size};

/// `executor: Local`, `Slurm(...)` or `Ray(...)`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum ExecutorDef {
    /// On this machine, in the scheduler's process.
    #[default]
    Local,
    /// As a Slurm batch job (`sbatch`).
    Slurm(Box<SlurmDef>),
    /// As a Ray job (the Ray Jobs REST API).
    Ray(Box<RayDef>),
}

impl ExecutorDef {
    /// `local`, `slurm` or `ray`.
    pub fn label(&self) -> &'static str {
        match self {
            ExecutorDef::Local => "local",
            ExecutorDef::Slurm(_) => "slurm",
            ExecutorDef::Ray(_) => "ray",
        }
    }

    /// Whether it runs elsewhere.
    pub fn is_remote(&self) -> bool {
        !matches!(self, ExecutorDef::Local)
    }
}

/// `Slurm(partition: "gpu", cpus: 8, mem: "32GiB", time: "2h", sbatch_args: ["--gres=gpu:1"])`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Slurm")]
pub struct SlurmDef {
    /// `--partition` (default: the cluster's default partition).
    #[serde(default)]
    pub partition: Option<String>,
    /// `--cpus-per-task`.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// `--mem`, a size such as `"32GiB"`.
    #[serde(default)]
    pub mem: Option<String>,
    /// `--time`, a duration such as `"2h"`.
    #[serde(default)]
    pub time: Option<String>,
    /// Further `sbatch` arguments, passed as they are (not through a shell).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

/// `Ray(address: "http://head:8265", num_cpus: 4, num_gpus: 1, memory: "8GiB")`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename = "Ray")]
pub struct RayDef {
    /// The Ray dashboard's address (the Jobs API), `http://host:8265`.
    pub address: String,
    /// `entrypoint_num_cpus`.
    #[serde(default)]
    pub num_cpus: Option<f64>,
    /// `entrypoint_num_gpus`.
    #[serde(default)]
    pub num_gpus: Option<f64>,
    /// `entrypoint_memory`, a size such as `"8GiB"`.
    #[serde(default)]
    pub memory: Option<String>,
}

/// `sbatch` options dagrun sets itself: giving them again would break how it tracks the job.
pub const RESERVED_SBATCH_ARGS: &[&str] =
    &["--output", "--error", "--export", "--parsable", "--wrap", "--job-name", "-o", "-e", "-J"];

/// The executor instance `def` of a workflow with executor `workflow` runs on.
pub fn resolve(def: &TaskDef, workflow: Option<&ExecutorDef>) -> ExecutorDef {
    match (&def.executor, workflow) {
        (Some(e), _) => e.clone(),
        (None, Some(w)) if eligible(&def.kind) => w.clone(),
        _ => ExecutorDef::Local,
    }
}

/// Whether a task of this kind can run remotely.
fn eligible(kind: &TaskKind) -> bool {
    match kind {
        TaskKind::Command(_) => true,
        TaskKind::Wasm(w) => w.mounts.is_empty(),
        _ => false,
    }
}

/// Checks an executor as written (`node`: its span node, for labels).
pub(crate) fn check(source: &Source, e: &ExecutorDef, node: Option<&Node>, diags: &mut Vec<Diagnostic>) {
    let span = |f: &str| node.and_then(|n| n.field(f)).map(|n| n.span.clone()).or_else(|| node.map(|n| n.span.clone()));
    let mut bad = |code: &'static str, msg: String, at: Option<Range<usize>>, label: &str, help: &str| {
        diags.push(Diagnostic::new(code, msg, source).label(at, label.to_owned()).help(help.to_owned()));
    };
    match e {
        ExecutorDef::Local => {}
        ExecutorDef::Slurm(s) => {
            if let Some(m) = &s.mem
                && let Err(why) = size::parse(m)
            {
                let help = "write a number and a unit: \"4GiB\", \"512MiB\"";
                bad(
                    "dagrun::invalid-size",
                    format!("invalid Slurm memory `{m}`: {why}"),
                    span("mem"),
                    "not a size",
                    help,
                );
            }
            if let Some(t) = &s.time
                && let Err(why) = duration::parse(t)
            {
                let help = "write a number and a unit: \"30m\", \"2h\", \"1d\"";
                bad(
                    "dagrun::invalid-duration",
                    format!("invalid Slurm time `{t}`: {why}"),
                    span("time"),
                    "not a duration",
                    help,
                );
            }
            if s.cpus == Some(0) {
                bad(
                    "dagrun::invalid-executor",
                    "Slurm `cpus` must be at least 1".into(),
                    span("cpus"),
                    "zero",
                    "ask for 1 or more CPUs, or leave `cpus` out",
                );
            }
            if s.partition.as_deref().is_some_and(|p| p.trim().is_empty()) {
                bad(
                    "dagrun::invalid-executor",
                    "Slurm `partition` is empty".into(),
                    span("partition"),
                    "empty",
                    "name a partition (`sinfo` lists them), or leave `partition` out for the default one",
                );
            }
            for a in &s.sbatch_args {
                let flag = a.split('=').next().unwrap_or(a);
                if RESERVED_SBATCH_ARGS.contains(&flag) {
                    bad(
                        "dagrun::invalid-executor",
                        format!("`sbatch_args` sets `{flag}`, which dagrun sets itself"),
                        span("sbatch_args"),
                        "in here",
                        "remove it: dagrun names the job, captures its output and passes the environment",
                    );
                }
            }
        }
        ExecutorDef::Ray(r) => {
            if !(r.address.starts_with("http://") || r.address.starts_with("https://")) || r.address.len() < 10 {
                let msg = format!("invalid Ray address `{}`", r.address);
                bad(
                    "dagrun::invalid-executor",
                    msg,
                    span("address"),
                    "not an http(s) URL",
                    "give the Ray dashboard's URL (the Jobs API), e.g. \"http://head-node:8265\"",
                );
            }
            for (f, v) in [("num_cpus", r.num_cpus), ("num_gpus", r.num_gpus)] {
                if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    bad(
                        "dagrun::invalid-executor",
                        format!("Ray `{f}` must be a number 0 or more"),
                        span(f),
                        "here",
                        "e.g. 1, 0.5 or 4",
                    );
                }
            }
            if let Some(m) = &r.memory
                && let Err(why) = size::parse(m)
            {
                let help = "write a number and a unit: \"4GiB\", \"512MiB\"";
                bad(
                    "dagrun::invalid-size",
                    format!("invalid Ray memory `{m}`: {why}"),
                    span("memory"),
                    "not a size",
                    help,
                );
            }
        }
    }
}

/// A task's own executor: checked, and refused for kinds that cannot run remotely.
pub(crate) fn check_task(source: &Source, def: &TaskDef, node: Option<&Node>, diags: &mut Vec<Diagnostic>) {
    let Some(e) = &def.executor else { return };
    let at = node.and_then(|n| n.field("executor"));
    check(source, e, at, diags);
    if !e.is_remote() || eligible(&def.kind) {
        return;
    }
    let (why, help) = match &def.kind {
        TaskKind::Wasm(_) => (
            "its plugin has `mounts`, host directories a remote job cannot see",
            "remove `executor` (it runs locally) or the mounts",
        ),
        _ => ("only Command and Wasm tasks run remotely", "remove `executor` from this task: it runs locally"),
    };
    diags.push(
        Diagnostic::new(
            "dagrun::remote-kind",
            format!("task `{}` cannot run on {}: {why}", def.name, e.label()),
            source,
        )
        .label(at.map(|n| n.span.clone()), "remote executor")
        .help(help),
    );
}

/// `D-HH:MM:SS` for `sbatch --time`, rounded up to whole seconds.
pub fn slurm_time(d: std::time::Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{}-{:02}:{:02}:{:02}", s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_rounds_up_and_counts_days() {
        assert_eq!(slurm_time(std::time::Duration::from_secs(2 * 3600)), "0-02:00:00");
        assert_eq!(slurm_time(std::time::Duration::from_millis(90_500)), "0-00:01:31");
        assert_eq!(slurm_time(std::time::Duration::from_secs(86_400 + 61)), "1-00:01:01");
    }
}
