//! `dagrun plan`: for each task, cached or will run, and why.

use std::collections::HashMap;

use serde::Serialize;

use dagrun_cache::{Manifest, Store};

use crate::instances::Instances;
use crate::keys::{KeyContext, KeyError, explain_miss, last_run_name, probe};

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

/// Plans a run's instances in dependency order without running anything.
pub fn plan(inst: &Instances, forced: &[bool], store: &Store, ctx: &KeyContext<'_>) -> Vec<PlannedTask> {
    let mut manifests: HashMap<usize, Manifest> = HashMap::new();
    let mut blocked: Vec<bool> = vec![false; inst.len()];
    let mut out = Vec::new();
    for &i in inst.topo_order() {
        let node = &inst.nodes[i];
        let names = |f: &dyn Fn(usize) -> bool| {
            let mut v: Vec<&str> = inst.upstream(i).filter(|&u| f(u)).map(|u| inst.nodes[u].name.as_str()).collect();
            v.sort_unstable();
            v
        };
        let pending = names(&|u| !manifests.contains_key(&u));
        let cannot = names(&|u| blocked[u]);
        let decision = if !cannot.is_empty() {
            Decision::Error { message: format!("upstream {} cannot run", list(&cannot)) }
        } else if !pending.is_empty() {
            Decision::Run { key: None, reasons: vec![format!("upstream {} will run", list(&pending))] }
        } else {
            let ups: HashMap<usize, &Manifest> = inst.upstream(i).map(|u| (u, &manifests[&u])).collect();
            match probe(ctx, store, inst, i, &ups) {
                Err(KeyError::PluginNotBuilt(p)) => {
                    Decision::Run { key: None, reasons: vec![format!("plugin {p} changed: it will be rebuilt")] }
                }
                Err(e) => Decision::Error { message: e.to_string() },
                Ok(p) if forced[node.task] => {
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
                    None if p.rejected.is_some() => Decision::Run {
                        key: Some(p.key.0.to_hex()),
                        reasons: vec![format!("cache entry corrupt: {}", p.rejected.expect("checked"))],
                    },
                    None => Decision::Run {
                        key: Some(p.key.0.to_hex()),
                        reasons: explain_miss(
                            store,
                            &last_run_name(ctx.workflow, &node.name),
                            &p.resolved.inputs,
                            &p.key,
                        ),
                    },
                },
            }
        };
        blocked[i] = matches!(decision, Decision::Error { .. });
        out.push(PlannedTask { task: node.name.clone(), decision });
    }
    out
}

/// `` `a` ``, `` `a`, `b` `` or `` `a`, `b`, `c` and 4 more ``.
fn list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(3).map(|n| format!("`{n}`")).collect();
    match names.len() {
        0..=3 => shown.join(", "),
        n => format!("{} and {} more", shown.join(", "), n - 3),
    }
}
