//! Which tasks a run includes (`--only`) and which it re-runs regardless of the cache (`--force`).

use crate::graph::TaskGraph;
use dagrun_workflow::{Workflow, did_you_mean};

/// The tasks a run covers and the ones it forces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `included[i]`: task `i` is part of this run.
    pub included: Vec<bool>,
    /// `forced[i]`: task `i` runs even on a cache hit.
    pub forced: Vec<bool>,
}

/// A task name on the command line that the workflow does not have.
#[derive(Debug, thiserror::Error)]
#[error("no task named `{name}` in {workflow}{}", .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
pub struct UnknownTask {
    /// The name given.
    pub name: String,
    /// The workflow file.
    pub workflow: String,
    /// A close existing name.
    pub suggestion: Option<String>,
}

/// How `--force` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Force {
    /// No forcing.
    None,
    /// `--force`: every task.
    All,
    /// `--force TASK...`: those tasks and their downstream.
    Tasks(Vec<String>),
}

impl Selection {
    /// Resolves `--only` (tasks plus what they need) and `--force`.
    pub fn new(wf: &Workflow, graph: &TaskGraph, only: &[String], force: &Force) -> Result<Selection, UnknownTask> {
        let n = wf.tasks.len();
        let lookup = |name: &String| {
            wf.task_index(name).ok_or_else(|| UnknownTask {
                name: name.clone(),
                workflow: wf.source_name().to_owned(),
                suggestion: did_you_mean(name, wf.tasks.iter().map(|t| t.name.as_str())).map(str::to_owned),
            })
        };
        let mut included = vec![only.is_empty(); n];
        for name in only {
            for i in graph.with_ancestors(lookup(name)?) {
                included[i] = true;
            }
        }
        let mut forced = vec![false; n];
        match force {
            Force::None => {}
            Force::All => forced.iter_mut().for_each(|f| *f = true),
            Force::Tasks(names) => {
                for name in names {
                    for i in graph.with_descendants(lookup(name)?) {
                        forced[i] = true;
                    }
                }
            }
        }
        Ok(Selection { included, forced })
    }

    /// Every task, nothing forced.
    pub fn all(n: usize) -> Selection {
        Selection { included: vec![true; n], forced: vec![false; n] }
    }
}
