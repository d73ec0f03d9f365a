//! Quick hits: a cache hit confirmed on the scheduler's own thread, without reading the entry
//! or handing the instance to another thread, when nothing changed since the last run.
//!
//! An instance is a quick hit when its key (computed from the stat cache alone: no file is
//! hashed here) is the key its last run recorded, the last-keys index knows that key's outputs,
//! the entry and its objects are still in the store, and every declared output is in place with
//! the recorded content (the stat cache vouches for it). Anything else — a file to hash, a
//! missing or moved output, an unknown key — is not an error here: the instance goes the full
//! way (`crate::job`), which restores, runs or reports as usual.
//!
//! In a large run these checks are worked out ahead ([`ahead`]), on two threads, before the
//! scheduler starts; the scheduler takes such a guess only while nothing has gone the full way
//! and the upstream manifests it holds are exactly the ones the guess assumed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dagrun_cache::{ActionKey, KnownMemo, Manifest, check_outputs};
use dagrun_plan::{Instances, KeyContext, instance_outputs, key_inputs};

use crate::commit::last_name;
use crate::events::TaskStatus;
use crate::job::{JobResult, borrowed};
use crate::shared::RunShared;

/// How recently an entry must have been marked used for a quick hit not to mark it again.
const FRESH: Duration = Duration::from_secs(3600);

/// Instance `i`'s result when it is a quick hit (see the module docs); `None`: take the full way.
pub(crate) fn quick_hit(run: &RunShared, i: usize, ups: &HashMap<usize, Arc<Manifest>>) -> Option<JobResult> {
    let last = last_outputs(run, i)?;
    quick_check(run, i, ups, last, None).map(|h| h.into_result(i))
}

/// What the last-keys index knows of instance `i`: its last key, that key's outputs, duration.
type Last = (ActionKey, Arc<Manifest>, u64);

fn last_outputs(run: &RunShared, i: usize) -> Option<Last> {
    run.last_keys.last_outputs(&last_name(run, &run.instances.nodes[i].name))
}

/// What a quick hit's result is made of (kept small: [`ahead`] holds one per instance).
#[derive(Debug)]
pub(crate) struct QuickHit {
    key: ActionKey,
    outputs: Arc<Manifest>,
    duration_ms: u64,
}

impl QuickHit {
    fn into_result(self, i: usize) -> JobResult {
        JobResult {
            manifest: Some(self.outputs),
            saved_ms: self.duration_ms,
            // When the scheduler settles it (a guess is made earlier).
            started_ms: Some(crate::when::now_ms() as u64),
            ..JobResult::new(i, TaskStatus::Cached, Some(self.key))
        }
    }
}

/// Instance `i`'s quick hit (see the module docs) given its upstream instances' manifests `ups`
/// and what the index knows of it (`last`); `None`: take the full way. `memo`: for checks made
/// ahead, where a file many instances read is looked at once.
fn quick_check(
    run: &RunShared,
    i: usize,
    ups: &HashMap<usize, Arc<Manifest>>,
    (last_key, outputs, duration_ms): Last,
    memo: Option<&KnownMemo>,
) -> Option<QuickHit> {
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
    let ctx = KeyContext { hash: false, memo, ..run.key_context() };
    let key = key_inputs(&ctx, &run.instances, i, &borrowed(ups)).ok()?.inputs.key();
    if key != last_key || !outputs_in_place(run, i, &outputs) || !run.top.confirm_entry(&run.store, &key, FRESH) {
        return None;
    }
    Some(QuickHit { key, outputs, duration_ms })
}

/// Whether `outputs` agree with instance `i`'s declared outputs (as a restore checks them), each
/// in place at its declared path with its recorded content, and its object still in the store
/// (an inline output has none: its entry, confirmed apart, holds its bytes).
fn outputs_in_place(run: &RunShared, i: usize, outputs: &Manifest) -> bool {
    let declared = instance_outputs(&run.workflow, &run.instances, i);
    check_outputs(outputs, &declared).is_ok()
        && outputs.iter().all(|(name, rec)| {
            let path = run.workflow.dir.join(&declared[name]);
            (rec.inline || run.top.has_object(&run.store, &rec.digest))
                && run.stat.known(&path).ok().flatten().map(|(d, _)| d) == Some(rec.digest)
        })
}

/// Below this many instances the checks are not worth a second thread.
const AHEAD_MIN: usize = 256;

/// A quick-hit check made ahead, assuming its upstream instances are quick hits too.
#[derive(Debug)]
pub(crate) struct Guess {
    /// The upstream manifests it assumed (the last-keys index's, shared with their own hits).
    ups: Box<[(usize, Arc<Manifest>)]>,
    /// What the check said with them.
    hit: Option<QuickHit>,
}

impl Guess {
    /// Whether `ups`, the upstream manifests the scheduler holds, are the assumed ones (the same
    /// allocations: an upstream that went the full way has a new one).
    pub(crate) fn holds(&self, ups: &HashMap<usize, Arc<Manifest>>) -> bool {
        ups.len() == self.ups.len() && self.ups.iter().all(|(u, m)| ups.get(u).is_some_and(|a| Arc::ptr_eq(a, m)))
    }

    /// The guessed result for instance `i`.
    pub(crate) fn into_hit(self, i: usize) -> Option<JobResult> {
        self.hit.map(|h| h.into_result(i))
    }
}

/// Instance `i`'s quick hit, if it is one: the guess made ahead when it still holds (nothing
/// went the full way yet, the same upstream manifests), else a check now (never for `forced`).
pub(crate) fn take_hit(
    run: &RunShared,
    ahead: &mut [Option<Guess>],
    i: usize,
    ups: &HashMap<usize, Arc<Manifest>>,
    forced: bool,
    full_way: bool,
) -> Option<JobResult> {
    match ahead.get_mut(i).and_then(Option::take).filter(|g| !full_way && g.holds(ups)) {
        Some(g) => g.into_hit(i),
        None => (!forced).then(|| quick_hit(run, i, ups)).flatten(),
    }
}

/// Quick-hit checks of every instance not `forced`, made on two threads before the run starts
/// (empty below [`AHEAD_MIN`] instances or when the last-keys index knows nothing).
pub(crate) fn ahead(run: &RunShared, forced: &[bool]) -> Vec<Option<Guess>> {
    let graph: &Instances = &run.instances;
    let n = graph.len();
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    if n < AHEAD_MIN || cores < 2 || run.last_keys.is_empty() {
        return Vec::new();
    }
    // What the index knows of each instance, looked up once (each is also an upstream of others).
    let last: Vec<Option<Last>> = (0..n).map(|i| last_outputs(run, i)).collect();
    // Nothing is written until the run starts: each thread looks at a shared input once.
    let guess = |i: usize, memo: &KnownMemo| -> Option<Guess> {
        if forced[graph.nodes[i].task] {
            return None;
        }
        let ups: Box<[(usize, Arc<Manifest>)]> =
            graph.upstream(i).map(|u| Some((u, last[u].as_ref()?.1.clone()))).collect::<Option<_>>()?;
        let map: HashMap<usize, Arc<Manifest>> = ups.iter().cloned().collect();
        let hit = last[i].clone().and_then(|l| quick_check(run, i, &map, l, Some(memo)));
        Some(Guess { hit, ups })
    };
    // The first half on another thread, the second here; in instance order when joined.
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let memo = KnownMemo::default();
            (0..n / 2).map(|i| guess(i, &memo)).collect::<Vec<_>>()
        });
        let memo = KnownMemo::default();
        let second: Vec<Option<Guess>> = (n / 2..n).map(|i| guess(i, &memo)).collect();
        let mut out = first.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        out.extend(second);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guess_holds_only_for_the_very_manifests_it_assumed() {
        let assumed = Arc::new(Manifest::new());
        let guess = Guess { ups: vec![(0, assumed.clone())].into(), hit: None };
        assert!(guess.holds(&HashMap::from([(0, assumed.clone())])));
        let equal_but_new = Arc::new(Manifest::new());
        assert!(!guess.holds(&HashMap::from([(0, equal_but_new)])), "an upstream that went the full way");
        assert!(!guess.holds(&HashMap::new()), "an upstream without outputs");
        assert!(!guess.holds(&HashMap::from([(0, assumed.clone()), (1, assumed)])), "another upstream");
    }
}
