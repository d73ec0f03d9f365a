//! `dagrun plan`: for each task, cached or will run, and why.

use std::collections::HashMap;

use serde::Serialize;

use dagrun_cache::{Manifest, Store};
use dagrun_workflow::Workflow;

use crate::graph::TaskGraph;
use crate::keys::{KeyContext, KeyError, explain_miss, probe};
use crate::select::Selection;

/// What a run would do with one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Decision {
    /// Its key is in the cache: outputs are restored, nothing runs.
    Cached {
        /// The key (hex).
        key: String,
    },
    /// It will run.
    Run {
        /// The key when it is known before running (upstreams cached).
        key: Option<String>,
        /// Why, in words.
        reasons: Vec<String>,
    },
    /// Its key cannot be computed (e.g. an input file is missing): it would fail.
    Error {
        /// The problem.
        message: String,
    },
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedTask {
    /// Task name.
    pub task: String,
    /// What happens to it.
    #[serde(flatten)]
    pub decision: Decision,
}

/// Plans the selected tasks in dependency order without running anything.
pub fn plan(
    wf: &Workflow,
    graph: &TaskGraph,
    selection: &Selection,
    store: &Store,
    ctx: &KeyContext<'_>,
) -> Vec<PlannedTask> {
    let mut manifests: HashMap<usize, Manifest> = HashMap::new();
    let mut blocked: Vec<bool> = vec![false; wf.tasks.len()];
    let mut out = Vec::new();
    for &i in graph.topo_order() {
        if !selection.included[i] {
            continue;
        }
        let task = &wf.tasks[i];
        let pending: Vec<&str> =
            graph.upstream(i).filter(|u| !manifests.contains_key(u)).map(|u| wf.tasks[u].name.as_str()).collect();
        let cannot: Vec<&str> = graph.upstream(i).filter(|&u| blocked[u]).map(|u| wf.tasks[u].name.as_str()).collect();
        let decision = if !cannot.is_empty() {
            Decision::Error { message: format!("upstream `{}` cannot run", cannot.join("`, `")) }
        } else if let dagrun_workflow::TaskKind::OnnxEval(_) = task.kind {
            Decision::Error { message: "OnnxEval tasks cannot run in this dagrun build yet".to_owned() }
        } else if !pending.is_empty() {
            let mut pending = pending;
            pending.sort_unstable();
            Decision::Run { key: None, reasons: pending.iter().map(|u| format!("upstream `{u}` will run")).collect() }
        } else {
            let ups: HashMap<&str, &Manifest> =
                graph.upstream(i).map(|u| (wf.tasks[u].name.as_str(), &manifests[&u])).collect();
            match probe(ctx, store, task, &ups) {
                Err(KeyError::PluginNotBuilt(p)) => {
                    Decision::Run { key: None, reasons: vec![format!("plugin {p} changed: it will be rebuilt")] }
                }
                Err(e) => Decision::Error { message: e.to_string() },
                Ok(p) if selection.forced[i] => {
                    if let Some(hit) = p.hit {
                        manifests.insert(i, hit.outputs);
                    }
                    Decision::Run { key: Some(p.key.0.to_hex()), reasons: vec!["forced".to_owned()] }
                }
                Ok(p) => match p.hit {
                    Some(hit) => {
                        manifests.insert(i, hit.outputs);
                        Decision::Cached { key: p.key.0.to_hex() }
                    }
                    None => Decision::Run {
                        key: Some(p.key.0.to_hex()),
                        reasons: explain_miss(store, &task.name, &p.inputs, &p.key),
                    },
                },
            }
        };
        blocked[i] = matches!(decision, Decision::Error { .. });
        out.push(PlannedTask { task: task.name.clone(), decision });
    }
    out
}
