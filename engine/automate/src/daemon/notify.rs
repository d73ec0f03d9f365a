//! The daemon's notifications: a background task delivering the outbox (woken when rows may be
//! due: a run ended, a file landed; else when the next retry is due), which never holds up the
//! daemon's loop; and the `file_landed` notifications of recorded files.

use std::sync::Arc;
use std::time::Duration;

use dagrun_history::{Fact, Notification};
use dagrun_notify::DeliverOptions;
use dagrun_workflow::heal::NotifyEvent;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Ctx, Notice};

/// How long shutdown waits for a round in flight before leaving it (its rows stay due).
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The running delivery task.
pub(crate) struct Deliverer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Deliverer {
    /// Starts delivering what is due now and from now on.
    pub(crate) fn start(ctx: &Arc<Ctx>) -> Deliverer {
        let (stop, stop_rx) = watch::channel(false);
        let history = ctx.engine.history().clone();
        let (wake, observer) = (ctx.notify_wake.clone(), ctx.observer.clone());
        let task = tokio::spawn(async move {
            let report = move |s: &dagrun_notify::Summary| {
                observer.notice(Notice::Notifications {
                    delivered: s.delivered,
                    retrying: s.retrying,
                    gave_up: s.gave_up,
                    first_error: s.errors.first().map(|(_, e)| e.clone()).or_else(|| s.store_error.clone()),
                })
            };
            // Retry times are wall-clock times (the engine queues with the wall clock).
            let now = || i64::try_from(dagrun_cache::now_ms()).unwrap_or(i64::MAX);
            dagrun_notify::run_loop(history, DeliverOptions::default(), wake, stop_rx, now, report).await;
        });
        Deliverer { stop, task }
    }

    /// Stops it: the round in flight gets a few seconds to record its outcomes; what it has not
    /// recorded then stays due and is sent at the next start.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// A file that landed and was recorded as an event.
pub(crate) struct LandedFile<'a> {
    pub event_id: i64,
    pub path: &'a str,
    pub partition: Option<&'a str>,
    pub size: u64,
    pub digest: &'a str,
    pub at_ms: i64,
}

/// Queues a `file_landed` notification for the sinks of `wf` that list `FileLanded` (the
/// default list leaves it out), and wakes the deliverer.
pub(crate) fn file_landed(ctx: &Ctx, wf: &dagrun_workflow::Workflow, f: &LandedFile<'_>) -> Result<(), String> {
    if !wf.notify.iter().any(|s| s.events().contains(&NotifyEvent::FileLanded)) {
        return Ok(());
    }
    let mut facts = vec![Fact { name: "file".into(), value: f.path.to_owned() }];
    if let Some(p) = f.partition {
        facts.push(Fact { name: "partition".into(), value: p.to_owned() });
    }
    facts.push(Fact { name: "size".into(), value: format!("{} bytes", f.size) });
    let n = Notification {
        event: NotifyEvent::FileLanded,
        workflow: wf.name.clone(),
        run_id: None,
        at_ms: f.at_ms,
        title: format!("{}: {} landed", wf.name, f.path),
        facts,
        action: None,
        details: serde_json::json!({
            "path": f.path, "partition": f.partition, "size": f.size, "digest": f.digest, "event_id": f.event_id,
        }),
    };
    let dedup = format!("file landed: event #{} ({} {})", f.event_id, f.path, f.digest);
    let now = i64::try_from(dagrun_cache::now_ms()).unwrap_or(i64::MAX);
    let added = tokio::task::block_in_place(|| ctx.engine.history().enqueue(&n, &wf.notify, &wf.dir, &dedup, now))
        .map_err(|e| format!("the notification that {} landed could not be queued: {e}", f.path))?;
    if added > 0 {
        ctx.notify_wake.notify_one();
    }
    Ok(())
}
