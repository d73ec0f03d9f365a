//! `dagrun cache push|pull` and `dagrun doctor`'s remote cache lines: flags to a request, the
//! engine's sync or probe, the counts and findings rendered.

use std::path::Path;
use std::sync::Arc;

use dagrun_cache::StoreError;
use dagrun_exec::remote_cache::{RemoteUrl, connect, probe};
use dagrun_exec::{RunRequest, SyncError, SyncReport};
use dagrun_plan::PartitionSelection;

use crate::args::SyncArgs;
use crate::commands::{durability, error, now_secs, prepare_error, runtime, state_dir};
use crate::exit::Exit;
use crate::printer::outln;
use crate::reporter::PlainReporter;

/// `dagrun cache push` (`push`) or `dagrun cache pull`.
pub fn sync(a: &SyncArgs, push: bool) -> Result<Exit, Exit> {
    let partitions = match (&a.partition, a.from.is_some() || !a.partitions.is_empty()) {
        (Some(key), _) => PartitionSelection::Keys(vec![key.clone()]),
        (None, true) => crate::run::backfill_selection(a.from.as_deref(), a.to.as_deref(), &a.partitions)?,
        (None, false) => PartitionSelection::Latest,
    };
    let req = RunRequest { partitions, ..RunRequest::new(now_secs()) };
    let plan = dagrun_exec::prepare(&a.workflow, &req).map_err(prepare_error)?;
    let opts = crate::env::remote_cache()?;
    let dir = state_dir(&a.state, Some(&a.workflow));
    let store = dagrun_cache::Store::open(&dir, durability())
        .map_err(|e| error(format!("cannot open state directory: {e}"), Exit::Internal))?;
    let store = Arc::new(store);
    let reporter: Arc<dyn dagrun_exec::Reporter> = Arc::new(PlainReporter);
    let rt = runtime()?;
    let result = rt.block_on(async {
        if push {
            dagrun_exec::push_cache(&plan, &store, &opts, reporter).await
        } else {
            dagrun_exec::pull_cache(&plan, &store, &opts, reporter).await
        }
    });
    let report = result.map_err(|e| sync_error(e, push))?;
    if a.json {
        outln!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        outln!("{}", summary(&report, push));
    }
    Ok(Exit::Success)
}

fn sync_error(e: SyncError, push: bool) -> Exit {
    let what = if push { "push to" } else { "pull from" };
    match e {
        e @ SyncError::NotConfigured => error(e, Exit::Usage),
        SyncError::Store(e @ StoreError::Busy { .. }) => error(e, Exit::Busy),
        e => error(format!("cannot {what} the remote cache: {e}"), Exit::Internal),
    }
}

/// One line of counts and bytes.
fn summary(r: &SyncReport, push: bool) -> String {
    let size = crate::maintenance::bytes(r.bytes);
    let mut line = if push {
        format!(
            "pushed to {}: {} entries published ({size} of outputs), {} there already, {} without a local entry",
            r.remote, r.transferred, r.already, r.missing
        )
    } else {
        format!(
            "pulled from {}: {} entries taken ({size} of outputs), {} here already, {} not on the remote",
            r.remote, r.transferred, r.already, r.missing
        )
    };
    if r.unknown > 0 {
        line.push_str(&format!(", {} whose key is not known yet (an upstream is missing)", r.unknown));
    }
    line.push_str(&format!(" — {} instances", r.instances));
    line
}

/// `dagrun doctor`'s remote cache lines; `false` when something is missing. The location:
/// `DAGRUN_REMOTE_CACHE`, else `workflow`'s `remote_cache`; nothing is printed without one.
pub fn doctor(workflow: Option<&Path>) -> bool {
    let from_env = match crate::env::remote_cache() {
        Ok(opts) => opts.location,
        Err(_) => return false,
    };
    let url: RemoteUrl = match (from_env, workflow) {
        (Some(url), _) => url,
        (None, Some(path)) => match crate::commands::load(path) {
            Ok((wf, _)) => match wf.remote_cache.and_then(|u| u.parse().ok()) {
                Some(url) => url,
                None => return true,
            },
            Err(_) => return false,
        },
        (None, None) => return true,
    };
    let fix = "check AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that the bucket exists";
    let conn = match connect(&url) {
        Ok(c) => c,
        Err(e) => {
            outln!("missing  remote cache: {e}");
            return false;
        }
    };
    let found = match runtime() {
        Ok(rt) => rt.block_on(probe(&conn)),
        Err(_) => return false,
    };
    match found {
        Err(e) => {
            outln!("missing  remote cache {url} reachable: {e}; {fix}");
            false
        }
        Ok(p) => {
            let line = |ok: bool, yes: &str, no: &str| {
                if ok {
                    outln!("ok       remote cache {url} {yes}")
                } else {
                    outln!("missing  remote cache {url} {no}")
                }
            };
            line(p.reachable, "reachable (bucket listed, credentials accepted)", &format!("not reachable: {fix}"));
            line(
                p.writable,
                "writable (a test object written, read back and removed)",
                "not writable: give the credentials write access to the bucket, or run with --remote-cache=read",
            );
            line(
                p.conditional_put,
                "honours create-only puts (a published entry is never replaced)",
                "ignores create-only puts (If-None-Match): a second runner could replace a published entry; use a \
                 server that supports conditional writes (AWS S3, MinIO, R2, SeaweedFS), or --remote-cache=read",
            );
            p.reachable && p.writable && p.conditional_put
        }
    }
}
