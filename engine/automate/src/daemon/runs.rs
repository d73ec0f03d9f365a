//! The daemon's loop ("brain"): fires due ticks, takes pending events from the log, starts one
//! run at a time for them, and closes it (with the outcome triggers it fires).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dagrun_exec::{Cancel, RunError, RunOptions, RunRecord, RunRequest, RunStatus};
use dagrun_plan::PartitionSelection;
use dagrun_workflow::automation::Concurrency;
use tokio::sync::{mpsc, watch};
use tokio::task::block_in_place;

use super::sources::Sources;
use super::{Ctx, LandedRx, Notice, WorkflowSet};
use crate::log::Event;

/// The run in progress.
struct Current {
    run_id: String,
    cancel: Cancel,
}

/// A run that ended.
pub(crate) struct Done {
    workflow: String,
    run_id: String,
    started_ms: i64,
    result: Result<RunRecord, RunError>,
}

pub(crate) struct Brain {
    pub(super) ctx: Arc<Ctx>,
    pub(super) set: WorkflowSet,
    pub(super) marks: HashMap<String, i64>,
    pub(super) sources: Sources,
    current: Option<Current>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// After the state directory was busy: not before this instant.
    retry_at: Option<tokio::time::Instant>,
    /// The pid holding the state directory, once said (said again only when it changes).
    busy_with: Option<Option<u32>>,
    /// Whether the start-up banner was shown (workflows loaded later are announced).
    pub(super) started: bool,
}

impl Brain {
    pub(crate) fn new(ctx: Arc<Ctx>, set: WorkflowSet) -> Brain {
        let (done_tx, done_rx) = mpsc::channel(4);
        Brain {
            ctx,
            set,
            marks: HashMap::new(),
            sources: Sources::default(),
            current: None,
            done_tx,
            done_rx,
            retry_at: None,
            busy_with: None,
            started: false,
        }
    }

    /// The loop, until shutdown; then the current run is cancelled (or abandoned) and closed.
    pub(crate) async fn run(&mut self, mut shutdown: watch::Receiver<u8>) {
        let mut reload = tokio::time::interval(self.ctx.cfg.reload);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut landed = self.sources.landed.take();
        loop {
            if *shutdown.borrow() > 0 {
                break;
            }
            self.fire_due_ticks();
            let expiry = self.expire_approvals();
            self.start_next();
            let deadline = self.next_deadline();
            let retry = self.retry_at;
            tokio::select! {
                _ = self.ctx.clock.sleep_until(deadline) => {}
                Some(first) = recv(&mut landed) => self.on_landed(first, landed.as_mut()),
                _ = self.ctx.wake.notified() => {}
                Some(done) = self.done_rx.recv() => self.finish(done),
                _ = reload.tick() => self.reload(),
                _ = async { tokio::time::sleep_until(retry.unwrap_or_else(tokio::time::Instant::now)).await }, if retry.is_some() => {
                    self.retry_at = None;
                }
                _ = tokio::time::sleep(expiry.unwrap_or_default()), if expiry.is_some() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.stop(shutdown).await;
    }

    async fn stop(&mut self, mut shutdown: watch::Receiver<u8>) {
        self.sources.stop();
        let Some(cur) = &self.current else { return };
        cur.cancel.cancel();
        if *shutdown.borrow() >= 2 {
            cur.cancel.abandon();
        }
        loop {
            tokio::select! {
                Some(done) = self.done_rx.recv() => {
                    self.finish(done);
                    return;
                }
                Ok(()) = shutdown.changed() => {
                    if *shutdown.borrow() >= 2 && let Some(cur) = &self.current {
                        cur.cancel.abandon();
                    }
                }
            }
        }
    }

    /// Approval requests nobody answered in time take their `on_timeout` decision (and notify);
    /// returns how long until the next pending one times out (wall clock, as requests are).
    fn expire_approvals(&mut self) -> Option<Duration> {
        let history = self.ctx.engine.history().clone();
        match block_in_place(|| dagrun_exec::approvals::expire(&history)) {
            Ok(expired) => {
                if !expired.is_empty() {
                    // Each decision queued its notification.
                    self.ctx.notify_wake.notify_one();
                }
                for a in expired {
                    if a.state == dagrun_exec::history_store::ApprovalState::Approved {
                        self.resume_approved(&a);
                    }
                    self.ctx.observer.notice(Notice::ApprovalTimedOut {
                        workflow: a.binding.workflow.clone(),
                        request: a.id,
                        run_id: a.run_id.clone(),
                        decision: a.state.as_str().to_owned(),
                    });
                }
            }
            Err(e) => self.warn(format!("approval timeouts: {e}")),
        }
        let next = block_in_place(|| history.next_expiry()).ok().flatten()?;
        let left = next.saturating_sub(dagrun_cache::now_ms() as i64).max(0) as u64;
        // At least 10 ms, so that a deadline that is just passing does not spin the loop.
        Some(Duration::from_millis(left.max(10)))
    }

    /// A request approved by its timeout (`on_timeout: Approve`): its run resumes, as after
    /// `dagrun approve`.
    fn resume_approved(&self, a: &dagrun_exec::history_store::Approval) {
        let event = crate::log::NewEvent {
            workflow: a.binding.workflow.clone(),
            source: crate::log::Source::Manual,
            key: format!("approval:{}", a.id),
            partition: a.partition.clone(),
            detail: serde_json::json!({"reason": format!("approval request #{} approved by its timeout", a.id)}),
            at_ms: self.ctx.clock.now_ms(),
        };
        let r = block_in_place(|| self.ctx.log.record(&[event]));
        self.log_result(r.map(drop));
    }

    /// When the loop must look again at the latest: the next tick of any schedule.
    fn next_deadline(&self) -> i64 {
        let now = self.ctx.clock.now_ms();
        let ticks = self.set.all().filter_map(|l| {
            let s = l.workflow.automation.schedule.as_ref()?;
            crate::ticks::next_after(s, *self.marks.get(&l.workflow.name).unwrap_or(&now))
        });
        ticks.min().unwrap_or(now + 3_600_000)
    }

    fn on_landed(&mut self, first: crate::watch::Landed, rx: Option<&mut LandedRx>) {
        let mut batch = vec![first];
        if let Some(rx) = rx {
            while batch.len() < 5_000 {
                match rx.try_recv() {
                    Ok(l) => batch.push(l),
                    Err(_) => break,
                }
            }
        }
        self.record_landed(batch);
    }

    /// Starts a run for the workflow whose events wait longest, unless one is running.
    fn start_next(&mut self) {
        if self.current.is_some() || self.retry_at.is_some() {
            return;
        }
        let pending = match block_in_place(|| self.ctx.log.pending_workflows()) {
            Ok(p) => p,
            Err(e) => return self.warn(format!("{e}")),
        };
        for name in pending {
            let Some(loaded) = self.set.by_name(&name).cloned() else { continue };
            let events = match block_in_place(|| self.ctx.log.pending(&name)) {
                Ok(e) => e,
                Err(e) => return self.warn(format!("{e}")),
            };
            let (ids, keys) = batch(&loaded, &events);
            let now = self.ctx.clock.now_ms();
            let mut req = RunRequest::new(now.div_euclid(1000));
            if !keys.is_empty() {
                req.partitions = PartitionSelection::Keys(keys.clone());
            }
            let plan =
                match dagrun_exec::prepare_loaded(&loaded.path, (*loaded.workflow).clone(), loaded.graph.clone(), &req)
                {
                    Ok(plan) => plan,
                    Err(e) => {
                        let why = format!("cannot run: {e}");
                        if let Err(e) = block_in_place(|| self.ctx.log.skip(&ids, &why, now)) {
                            self.warn(format!("{e}"));
                        }
                        self.ctx.observer.notice(Notice::NotRun { workflow: name.clone(), events: ids, why });
                        continue;
                    }
                };
            // Manual events come from another process (`dagrun trigger`): say so here.
            for e in events.iter().filter(|e| e.event.source == crate::log::Source::Manual && ids.contains(&e.id)) {
                self.ctx.observer.notice(Notice::Recorded(e.clone()));
            }
            if !self.state_dir_free() {
                return;
            }
            let run_id = self.new_run_id();
            if let Err(e) = block_in_place(|| self.ctx.log.start_run(&run_id, &name, &ids, now)) {
                return self.warn(format!("{e}"));
            }
            self.ctx.observer.notice(Notice::RunStarting {
                workflow: name.clone(),
                run_id: run_id.clone(),
                events: ids,
                partitions: keys,
            });
            self.spawn(plan, name, run_id, now);
            return;
        }
    }

    /// Whether the state directory is free for a run now (another `dagrun run` may hold it);
    /// when it is not, says so once and looks again in 2 s.
    fn state_dir_free(&mut self) -> bool {
        match self.ctx.engine.store().lock() {
            Ok(lock) => {
                drop(lock);
                self.busy_with = None;
                true
            }
            Err(e) => {
                let pid = match &e {
                    dagrun_cache::StoreError::Busy { pid, .. } => *pid,
                    _ => None,
                };
                if self.busy_with != Some(pid) {
                    let who = pid.map_or("another dagrun".to_owned(), |p| format!("another dagrun (pid {p})"));
                    let why = match &e {
                        dagrun_cache::StoreError::Busy { .. } => format!("{who} holds the state directory"),
                        e => e.to_string(),
                    };
                    self.warn(format!("waiting: {why}; queued events run when it is free"));
                    self.busy_with = Some(pid);
                }
                self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                false
            }
        }
    }

    fn spawn(&mut self, plan: dagrun_exec::RunPlan, workflow: String, run_id: String, started_ms: i64) {
        let cancel = Cancel::new();
        let mut opts = RunOptions::new(self.ctx.cfg.jobs);
        opts.log_bytes = self.ctx.cfg.log_bytes;
        opts.remote = self.ctx.cfg.remote.clone();
        opts.remote_bin = self.ctx.cfg.remote_bin.clone();
        opts.run_id = Some(run_id.clone());
        let reporter = self.ctx.observer.run_reporter(&workflow, &run_id);
        let (engine, tx, c) = (self.ctx.engine.clone(), self.done_tx.clone(), cancel.clone());
        let (w, r) = (workflow.clone(), run_id.clone());
        tokio::spawn(async move {
            let result = engine.run(&plan, &opts, reporter, &c).await;
            let _ = tx.send(Done { workflow: w, run_id: r, started_ms, result }).await;
        });
        self.current = Some(Current { run_id, cancel });
    }

    /// A run id unique in the state directory (ids come from the wall clock, not the daemon's
    /// clock, which tests move by hand).
    fn new_run_id(&self) -> String {
        let base = dagrun_exec::new_run_id(dagrun_cache::now_ms());
        let runs = self.ctx.engine.store().root().join("runs");
        let mut id = base.clone();
        let mut n = 1;
        while runs.join(format!("{id}.json")).exists() {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }

    fn finish(&mut self, done: Done) {
        if self.current.as_ref().is_some_and(|c| c.run_id == done.run_id) {
            self.current = None;
        }
        // The run queued its notifications as it ended.
        self.ctx.notify_wake.notify_one();
        let now = self.ctx.clock.now_ms();
        let log = &self.ctx.log;
        match done.result {
            Ok(record) if record.status == RunStatus::Interrupted => {
                self.log_result(block_in_place(|| log.requeue_run(&done.run_id, "interrupted", now)));
                self.notice_finished(&done.workflow, &done.run_id, &record);
            }
            Ok(record) => {
                self.log_result(block_in_place(|| log.finish_run(&done.run_id, record.status.as_str(), now)));
                self.notice_finished(&done.workflow, &done.run_id, &record);
                self.fire_outcomes(&done.workflow, &record);
                self.skip_if_busy_policy(&done.workflow, done.started_ms, now);
            }
            Err(e) => {
                let busy = matches!(e, RunError::Busy(_));
                self.log_result(block_in_place(|| log.requeue_run(&done.run_id, "not started", now)));
                self.warn(format!("run {} of `{}` did not start: {e}; retrying", done.run_id, done.workflow));
                let wait = if busy { Duration::from_secs(2) } else { Duration::from_secs(10) };
                self.retry_at = Some(tokio::time::Instant::now() + wait);
            }
        }
    }

    fn notice_finished(&self, workflow: &str, run_id: &str, record: &RunRecord) {
        let duration_ms = record.finished_ms.unwrap_or(record.started_ms).saturating_sub(record.started_ms);
        self.ctx.observer.notice(Notice::RunFinished {
            workflow: workflow.to_owned(),
            run_id: run_id.to_owned(),
            status: record.status,
            duration_ms,
        });
    }

    /// `concurrency: Skip`: events that arrived while the run was in progress are not run.
    fn skip_if_busy_policy(&mut self, workflow: &str, started_ms: i64, now: i64) {
        let Some(l) = self.set.by_name(workflow) else { return };
        if l.workflow.automation.concurrency != Concurrency::Skip {
            return;
        }
        let Ok(pending) = block_in_place(|| self.ctx.log.pending(workflow)) else { return };
        let ids: Vec<i64> = pending.iter().filter(|e| e.event.at_ms >= started_ms).map(|e| e.id).collect();
        if ids.is_empty() {
            return;
        }
        let why = "a run was in progress (concurrency: Skip)";
        let r = block_in_place(|| self.ctx.log.skip(&ids, why, now));
        self.log_result(r);
        self.ctx.observer.notice(Notice::NotRun { workflow: workflow.to_owned(), events: ids, why: why.to_owned() });
    }

    pub(super) fn log_result(&self, r: Result<(), crate::log::LogError>) {
        if let Err(e) = r {
            self.warn(format!("{e}"));
        }
    }

    pub(super) fn warn(&self, msg: String) {
        self.ctx.observer.notice(Notice::Warning(msg));
    }
}

async fn recv(rx: &mut Option<LandedRx>) -> Option<crate::watch::Landed> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The events one run takes, and its partitions: for a partitioned workflow, those that name
/// a partition (all together) first, then those that do not (the latest partition); for any
/// other workflow, all of them.
fn batch(loaded: &super::Loaded, events: &[Event]) -> (Vec<i64>, Vec<String>) {
    let partitioned = loaded.workflow.tasks.iter().any(|t| t.partitioned.is_some());
    if !partitioned {
        return (events.iter().map(|e| e.id).collect(), Vec::new());
    }
    let keyed: Vec<&Event> = events.iter().filter(|e| e.event.partition.is_some()).collect();
    if keyed.is_empty() {
        return (events.iter().map(|e| e.id).collect(), Vec::new());
    }
    let mut keys: Vec<String> = keyed.iter().filter_map(|e| e.event.partition.clone()).collect();
    keys.sort();
    keys.dedup();
    (keyed.iter().map(|e| e.id).collect(), keys)
}
