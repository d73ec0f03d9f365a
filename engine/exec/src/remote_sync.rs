//! `dagrun cache push` and `dagrun cache pull`: every instance of a planned run (a workflow, or
//! a backfill's partitions) taken in dependency order, its key computed as a run computes it —
//! from its upstream's recorded outputs, so a pulled upstream entry makes the downstream key
//! known — without running anything. Push sends the local entries (and what earlier runs left
//! pending); pull takes the remote's entries and objects into the local store, so that the
//! next run here is all local hits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dagrun_cache::{Manifest, StatCache, Store, StoreError};
use dagrun_plan::{KeyContext, Probe, probe};
use dagrun_remote::RemoteError;

use crate::engine::RunPlan;
use crate::events::Reporter;
use crate::remote::{RemoteOptions, RunRemote};
use crate::shared::build_plugins;

/// What a push or a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// The remote (`s3://bucket/prefix`).
    pub remote: String,
    /// Instances looked at.
    pub instances: usize,
    /// Push: entries published now. Pull: entries taken from the remote.
    pub transferred: usize,
    /// Bytes of outputs the entries transferred record.
    pub bytes: u64,
    /// Push: entries the remote had already. Pull: entries the local store had already.
    pub already: usize,
    /// Push: instances without a local entry for their current key. Pull: without a remote one.
    pub missing: usize,
    /// Instances whose key cannot be computed (an upstream is missing, an input is absent).
    pub unknown: usize,
}

/// Why a push or pull could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Neither the caller nor the workflow names a remote cache.
    #[error(
        "no remote cache is configured: set DAGRUN_REMOTE_CACHE=s3://BUCKET/PREFIX or the workflow's `remote_cache` field"
    )]
    NotConfigured,
    /// The environment does not say how to reach the remote.
    #[error("{0}")]
    Connect(String),
    /// The remote could not be used (unreachable, refused, missing bucket).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The state directory could not be locked, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Walks `plan`'s instances in dependency order, computing each key from its upstream's
/// manifests; `visit` gets each computable probe and returns the instance's outputs, when it
/// has them (else its downstream is unknown).
async fn walk<F>(plan: &RunPlan, store: &Store, reporter: &dyn Reporter, report: &mut SyncReport, mut visit: F)
where
    F: AsyncFnMut(usize, Probe, &mut SyncReport) -> Option<Manifest>,
{
    let inst = &plan.instances;
    let (plugins, _) = build_plugins(&plan.workflow, inst, store, reporter);
    let stat = StatCache::load(store);
    let ctx = KeyContext::new(&plan.workflow, &stat, &plugins);
    let mut manifests: HashMap<usize, Manifest> = HashMap::new();
    for &i in inst.topo_order() {
        report.instances += 1;
        if inst.upstream(i).any(|u| !manifests.contains_key(&u)) {
            report.unknown += 1;
            continue;
        }
        let ups: HashMap<usize, &Manifest> = inst.upstream(i).map(|u| (u, &manifests[&u])).collect();
        let Ok(p) = probe(&ctx, store, inst, i, &ups) else {
            report.unknown += 1;
            continue;
        };
        if let Some(m) = visit(i, p, report).await {
            manifests.insert(i, m);
        }
    }
    let _ = stat.save(store);
}

fn open(
    plan: &RunPlan,
    store: &Arc<Store>,
    opts: &RemoteOptions,
    reporter: &Arc<dyn Reporter>,
) -> Result<Arc<RunRemote>, SyncError> {
    let (url, _) = opts.resolve(&plan.workflow).ok_or(SyncError::NotConfigured)?;
    // Probe the environment first so a misconfiguration is an error here, not a warning.
    dagrun_remote::connect(&url)?;
    let opts = RemoteOptions { location: Some(url), mode: Some(crate::remote::RemoteMode::ReadWrite) };
    RunRemote::open(&opts, &plan.workflow, store, reporter).ok_or(SyncError::Connect("cannot connect".into()))
}

/// `dagrun cache push`: publishes every instance's local entry for its current key (objects
/// first, create-only), after the uploads earlier runs left pending. Holds the state
/// directory's lock.
pub async fn push_cache(
    plan: &RunPlan,
    store: &Arc<Store>,
    opts: &RemoteOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<SyncReport, SyncError> {
    let _lock = store.lock()?;
    let remote = open(plan, store, opts, &reporter)?;
    let mut report = SyncReport { remote: remote.cache.url().to_string(), ..SyncReport::default() };
    walk(plan, store, reporter.as_ref(), &mut report, async |_, p, report: &mut SyncReport| {
        let Some(entry) = p.hit else {
            report.missing += 1;
            return None;
        };
        let outputs = entry.outputs.clone();
        remote.upload(entry);
        Some(outputs)
    })
    .await;
    remote.finish(|| false).await;
    if let Some(e) = remote.failure() {
        return Err(SyncError::Connect(e));
    }
    report.transferred = remote.published.load(Ordering::Relaxed);
    report.already = remote.existing.load(Ordering::Relaxed);
    report.bytes = remote.sent_bytes.load(Ordering::Relaxed);
    Ok(report)
}

/// `dagrun cache pull`: takes the remote's entry (and its objects, verified) for every
/// instance the local store has none for, in dependency order. Nothing runs and no output is
/// written in the workflow directory: the next run restores them as local hits. Holds the state
/// directory's lock.
pub async fn pull_cache(
    plan: &RunPlan,
    store: &Arc<Store>,
    opts: &RemoteOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<SyncReport, SyncError> {
    let _lock = store.lock()?;
    let (url, _) = opts.resolve(&plan.workflow).ok_or(SyncError::NotConfigured)?;
    let cache = dagrun_remote::RemoteCache::new(dagrun_remote::connect(&url)?);
    let mut report = SyncReport { remote: url.to_string(), ..SyncReport::default() };
    let mut failed = None;
    walk(plan, store, reporter.as_ref(), &mut report, async |_, p, report: &mut SyncReport| {
        if let Some(hit) = p.hit {
            report.already += 1;
            return Some(hit.outputs);
        }
        if failed.is_some() {
            return None;
        }
        match cache.pull(store, &p.key).await {
            Ok(Some(entry)) => {
                report.transferred += 1;
                report.bytes += entry.outputs.values().map(|r| r.size).sum::<u64>();
                Some(entry.outputs)
            }
            Ok(None) => {
                report.missing += 1;
                None
            }
            Err(e) if e.is_corruption() => {
                let message = format!("{e}; remove {} from the remote", cache.entry_location(&p.key));
                reporter.report(&crate::Event::RemoteWarning { remote: url.to_string(), task: None, message });
                report.missing += 1;
                None
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    })
    .await;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(report),
    }
}
