//! Quick hits: a cache hit confirmed on the scheduler's own thread, without reading the entry
//! or handing the instance to another thread, when nothing changed since the last run.
//!
//! An instance is a quick hit when its key (computed from the stat cache alone: no file is
//! hashed here) is the key its last run recorded, the last-keys index knows that key's outputs,
//! the entry and its objects are still in the store, and every declared output is in place with
//! the recorded content (the stat cache vouches for it). Anything else — a file to hash, a
//! missing or moved output, an unknown key — is not an error here: the instance goes the full
//! way (`crate::job`), which restores, runs or reports as usual.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dagrun_cache::{Manifest, check_outputs};
use dagrun_plan::{KeyContext, instance_outputs, key_inputs};

use crate::commit::last_name;
use crate::events::TaskStatus;
use crate::job::{JobResult, borrowed};
use crate::shared::RunShared;

/// How recently an entry must have been marked used for a quick hit not to mark it again.
const FRESH: Duration = Duration::from_secs(3600);

/// Instance `i`'s result when it is a quick hit (see the module docs); `None`: take the full way.
pub(crate) fn quick_hit(run: &RunShared, i: usize, ups: &HashMap<usize, Arc<Manifest>>) -> Option<JobResult> {
    let started_ms = crate::when::now_ms() as u64;
    let node = &run.instances.nodes[i];
    let task = &run.workflow.tasks[node.task];
    if run.verify || task.kind.always_runs() {
        return None;
    }
    if let dagrun_workflow::TaskKind::Wasm(w) = &task.kind
        && run.plugin_errors.contains_key(&w.plugin)
    {
        return None;
    }
    let (last_key, outputs, duration_ms) = run.last_keys.last_outputs(&last_name(run, &node.name))?;
    let ctx = KeyContext { hash: false, ..run.key_context() };
    let key = key_inputs(&ctx, &run.instances, i, &borrowed(ups)).ok()?.inputs.key();
    if key != last_key || !outputs_in_place(run, i, &outputs) || !run.top.confirm_entry(&run.store, &key, FRESH) {
        return None;
    }
    Some(JobResult {
        manifest: Some(outputs),
        saved_ms: duration_ms,
        started_ms: Some(started_ms),
        ..JobResult::new(i, TaskStatus::Cached, Some(key.0.to_hex()))
    })
}

/// Whether `outputs` agree with instance `i`'s declared outputs (as a restore checks them), each
/// in place at its declared path with its recorded content, and its object still in the store.
fn outputs_in_place(run: &RunShared, i: usize, outputs: &Manifest) -> bool {
    let declared = instance_outputs(&run.workflow, &run.instances, i);
    check_outputs(outputs, &declared).is_ok()
        && outputs.iter().all(|(name, rec)| {
            let path = run.workflow.dir.join(&declared[name]);
            run.top.has_object(&run.store, &rec.digest)
                && run.stat.known(&path).ok().flatten().map(|(d, _)| d) == Some(rec.digest)
        })
}
