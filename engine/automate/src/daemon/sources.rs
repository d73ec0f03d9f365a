//! Where the daemon's events come from, each written to the log before it is acted on: cron
//! ticks, files landing (the watcher), webhooks (the HTTP server), other workflows' task
//! outcomes; and the start-up work (recovering runs a killed daemon left, schedule marks).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use dagrun_exec::{RunRecord, RunStatus, TaskStatus};
use dagrun_workflow::automation::{self, Outcome, Trigger};
use dagrun_workflow::{Input, partition};
use tokio::sync::{mpsc, watch};
use tokio::task::block_in_place;

use super::runs::Brain;
use super::{Ctx, LandedRx, Notice};
use crate::hooks::{self, Answer, Delivery, HookLog, Route, Routes};
use crate::log::{FileRow, NewEvent, Source};
use crate::watch::{FileStat, Landed, WatchSpec, Watcher};

/// The watcher and server of a running daemon.
pub(crate) struct Sources {
    /// What the watcher watches: (workflow, glob) by spec id. Ids are never reused, so a file
    /// reported by a watcher replaced on a reload is never taken for another trigger's.
    specs: Vec<(usize, String, String)>,
    next_id: usize,
    watcher: Option<Watcher>,
    /// The loop takes the receiving end once; watchers started on reloads share the sender.
    pub(super) landed: Option<LandedRx>,
    landed_tx: mpsc::Sender<Landed>,
    routes: Routes,
    server_stop: Option<watch::Sender<bool>>,
}

impl Default for Sources {
    fn default() -> Self {
        let (landed_tx, rx) = mpsc::channel(1024);
        Sources {
            specs: Vec::new(),
            next_id: 0,
            watcher: None,
            landed: Some(rx),
            landed_tx,
            routes: Routes::default(),
            server_stop: None,
        }
    }
}

impl Sources {
    pub(crate) fn stop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
        if let Some(s) = self.server_stop.take() {
            let _ = s.send(true);
        }
    }
}

impl Brain {
    /// Loads the workflows, recovers what a killed daemon left, marks schedules, starts the
    /// server and the watcher, and says so.
    pub(crate) async fn start(
        &mut self,
        listener: Option<tokio::net::TcpListener>,
        addr: Option<SocketAddr>,
        _shutdown: watch::Receiver<u8>,
    ) {
        self.reload();
        self.recover();
        if let Some(listener) = listener {
            let (stop_tx, mut stop_rx) = watch::channel(false);
            let sink: Arc<dyn hooks::Sink> = Arc::new(HookSink { ctx: self.ctx.clone() });
            let routes = self.sources.routes.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                let _ = hooks::serve(listener, routes, sink, stop).await;
            });
            self.sources.server_stop = Some(stop_tx);
        }
        let workflows = self
            .set
            .all()
            .map(|l| {
                let a = &l.workflow.automation;
                let next = a.schedule.as_ref().and_then(|s| {
                    let now = self.ctx.clock.now_ms();
                    crate::ticks::next_after(s, (*self.marks.get(&l.workflow.name).unwrap_or(&now)).max(now))
                });
                let addr = addr.map(|a| a.to_string());
                let describe = |t: &Trigger| {
                    let d = crate::status::describe(t, &l.workflow.name, addr.as_deref());
                    match t {
                        Trigger::Webhook(w) if std::env::var(&w.token_env).map_or(true, |v| v.is_empty()) => {
                            format!("{d}: DISABLED until {} is set", w.token_env)
                        }
                        _ => d,
                    }
                };
                let triggers = a.triggers.iter().map(describe).collect();
                (l.workflow.name.clone(), l.path.clone(), next, triggers)
            })
            .collect();
        self.ctx.observer.notice(Notice::Started { addr, workflows });
        self.started = true;
    }

    /// Runs a killed daemon left: finished ones are closed (their record says how they
    /// ended: never run twice); the others give their events back to the queue.
    fn recover(&mut self) {
        let log = self.ctx.log.clone();
        let unfinished = match block_in_place(|| log.unfinished_runs()) {
            Ok(u) => u,
            Err(e) => return self.warn(format!("{e}")),
        };
        let now = self.ctx.clock.now_ms();
        for u in unfinished {
            let store = self.ctx.engine.store();
            let r = match RunRecord::load(store, &u.run_id) {
                Some(r) if r.status != RunStatus::Running && r.status != RunStatus::Interrupted => {
                    block_in_place(|| log.finish_run(&u.run_id, r.status.as_str(), now))
                }
                record => {
                    // Its record still says `running`: it never will finish. Say so in the
                    // history (`dagrun runs`), then run its events again.
                    if let Some(mut r) = record.filter(|r| r.status == RunStatus::Running) {
                        r.status = RunStatus::Interrupted;
                        r.finished_ms = Some(dagrun_cache::now_ms());
                        if let Err(e) = r.save(store) {
                            self.warn(format!("cannot close the record of run {}: {e}", u.run_id));
                        }
                    }
                    block_in_place(|| log.requeue_run(&u.run_id, "interrupted (the daemon stopped)", now))
                }
            };
            self.log_result(r);
        }
    }

    /// Re-reads changed workflow files; refreshes schedule marks, webhook routes and watches.
    pub(crate) fn reload(&mut self) {
        let changes = self.set.refresh();
        if changes.is_empty() {
            return;
        }
        for c in changes {
            // The first load is summed up by the start-up banner.
            if self.started || !matches!(c, super::Change::Loaded { .. }) {
                self.ctx.observer.notice(Notice::Workflow(c));
            }
        }
        self.mark_schedules();
        self.refresh_routes();
        self.refresh_watches();
        self.publish_workflows();
        for l in self.set.all() {
            for t in &l.workflow.automation.triggers {
                let Trigger::TaskOutcome { workflow, task, .. } = t else { continue };
                match self.set.by_name(workflow) {
                    None => self.warn(format!(
                        "`{}` ({}) waits for workflow `{workflow}`, which this daemon does not run",
                        l.workflow.name,
                        l.path.display()
                    )),
                    Some(other) if other.workflow.task_index(task).is_none() => self.warn(format!(
                        "`{}` ({}) waits for task `{task}` of `{workflow}`, which has no such task",
                        l.workflow.name,
                        l.path.display()
                    )),
                    Some(_) => {}
                }
            }
        }
    }

    /// Shares the loaded workflows with the webhook server and in `daemon.json`.
    fn publish_workflows(&self) {
        let all: std::collections::HashMap<String, Arc<dagrun_workflow::Workflow>> =
            self.set.all().map(|l| (l.workflow.name.clone(), l.workflow.clone())).collect();
        let names: Vec<String> = self.set.all().map(|l| l.workflow.name.clone()).collect();
        *self.ctx.workflows.write().unwrap_or_else(|p| p.into_inner()) = all;
        let info = {
            let mut info = self.ctx.info.lock().unwrap_or_else(|p| p.into_inner());
            info.workflows = names;
            info.files = self
                .set
                .all()
                .map(|l| (l.workflow.name.clone(), std::path::absolute(&l.path).unwrap_or_else(|_| l.path.clone())))
                .collect();
            info.clone()
        };
        if let Err(e) = super::lock::publish_in(&self.ctx.cfg.state_dir, &info) {
            self.warn(format!("cannot update daemon.json: {e}"));
        }
    }

    /// A schedule's mark is the last tick handled; a new (or edited) schedule starts now.
    fn mark_schedules(&mut self) {
        let now = self.ctx.clock.now_ms();
        let log = self.ctx.log.clone();
        let mut marks = HashMap::new();
        for l in self.set.all() {
            let Some(s) = &l.workflow.automation.schedule else { continue };
            let name = &l.workflow.name;
            let mark = match block_in_place(|| log.schedule_mark(name)) {
                Ok(Some((expr, mark))) if expr == s.expr => mark,
                Ok(_) => {
                    let r = block_in_place(|| log.record_ticks(name, &s.expr, &[], now)).map(|_| ());
                    self.log_result(r);
                    now
                }
                Err(e) => {
                    self.warn(format!("{e}"));
                    now
                }
            };
            marks.insert(name.clone(), mark);
        }
        self.marks = marks;
    }

    fn refresh_routes(&mut self) {
        let mut routes = Vec::new();
        for l in self.set.all() {
            for t in &l.workflow.automation.triggers {
                if let Trigger::Webhook(w) = t {
                    let token = std::env::var(&w.token_env).ok().filter(|t| !t.is_empty());
                    if token.is_none() {
                        self.warn(format!(
                            "webhook `{}` of `{}` is disabled: set {} in the daemon's environment",
                            w.name, l.workflow.name, w.token_env
                        ));
                    }
                    let (workflow, name, token_env) = (l.workflow.name.clone(), w.name.clone(), w.token_env.clone());
                    routes.push(Route { workflow, name, token_env, token });
                }
            }
        }
        *self.sources.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }

    fn refresh_watches(&mut self) {
        let mut wanted = Vec::new();
        for l in self.set.all() {
            for t in &l.workflow.automation.triggers {
                if let Trigger::FileLanded { glob, settle } = t {
                    wanted.push((l.workflow.name.clone(), l.workflow.dir.clone(), glob.clone(), *settle));
                }
            }
        }
        let same = wanted.len() == self.sources.specs.len()
            && wanted.iter().zip(&self.sources.specs).all(|(w, (_, name, glob))| w.0 == *name && w.2 == *glob);
        if same && (self.sources.watcher.is_some() || wanted.is_empty()) {
            return;
        }
        if let Some(w) = self.sources.watcher.take() {
            w.stop();
        }
        let mut specs = Vec::new();
        self.sources.specs.clear();
        for (name, dir, glob, settle) in wanted {
            let id = self.sources.next_id;
            self.sources.next_id += 1;
            specs.push(WatchSpec { id, dir, glob: glob.clone(), settle });
            self.sources.specs.push((id, name, glob));
        }
        if specs.is_empty() {
            return;
        }
        match Watcher::start(specs, self.known_files(), self.ctx.cfg.rescan, self.sources.landed_tx.clone()) {
            Ok(w) => self.sources.watcher = Some(w),
            Err(e) => self.warn(format!("file triggers are not watched: {e}")),
        }
    }

    /// What the log knows of watched files, by absolute path.
    fn known_files(&self) -> HashMap<PathBuf, FileStat> {
        let rows = block_in_place(|| self.ctx.log.files()).unwrap_or_default();
        let mut out = HashMap::new();
        for (workflow, path, row) in rows {
            if let Some(l) = self.set.by_name(&workflow) {
                let stat = FileStat { size: row.size, mtime_ns: row.mtime_ns, digest: row.digest };
                out.insert(l.workflow.dir.join(&path), stat);
            }
        }
        out
    }

    /// Files the watcher saw settle: each is an event if its content is new (one transaction).
    pub(crate) fn record_landed(&mut self, batch: Vec<Landed>) {
        let now = self.ctx.clock.now_ms();
        let mut rows = Vec::with_capacity(batch.len());
        for l in batch {
            let Some((_, workflow, glob)) = self.sources.specs.iter().find(|(id, ..)| *id == l.id).cloned() else {
                continue;
            };
            if self.set.by_name(&workflow).is_some_and(|w| automation::is_output(&w.workflow.tasks, &l.rel_path)) {
                // Its own output (validation refuses globs that match one; this catches the rest):
                // an event would make every run start the next.
                continue;
            }
            let partition = self.set.by_name(&workflow).and_then(|w| partition_of(&w.workflow, &glob, &l.rel_path));
            if partition.is_none() && partition::is_templated(&glob) {
                // `landing/{date}.csv` names its files: `landing/notes.csv` is not one of them.
                self.warn(format!(
                    "{workflow}: {} does not fit `{glob}` (its name gives no valid partition): ignored",
                    l.rel_path
                ));
                continue;
            }
            let detail =
                serde_json::json!({"path": l.rel_path, "digest": l.stat.digest, "size": l.stat.size, "glob": glob});
            let event = NewEvent { workflow, source: Source::File, key: String::new(), partition, detail, at_ms: now };
            let row = FileRow { size: l.stat.size, mtime_ns: l.stat.mtime_ns, digest: l.stat.digest };
            rows.push((event, l.rel_path, row));
        }
        let log = self.ctx.log.clone();
        match block_in_place(|| log.record_files(&rows)) {
            Ok(recorded) => {
                self.notify_landed(&rows, &recorded);
                self.announce(recorded.into_iter().flatten().filter(|r| r.new).map(|r| r.id))
            }
            Err(e) => self.warn(format!("files landed but could not be recorded (they will be seen again): {e}")),
        }
    }

    /// Queues the `file_landed` notifications of the files just recorded as new events.
    fn notify_landed(&self, rows: &[(NewEvent, String, FileRow)], recorded: &[Option<crate::log::Recorded>]) {
        for ((event, path, row), r) in rows.iter().zip(recorded) {
            let (Some(r), Some(l)) = (r, self.set.by_name(&event.workflow)) else { continue };
            if !r.new {
                continue;
            }
            let f = super::notify::LandedFile {
                event_id: r.id,
                path,
                partition: event.partition.as_deref(),
                size: row.size,
                digest: &row.digest,
                at_ms: event.at_ms,
            };
            if let Err(e) = super::notify::file_landed(&self.ctx, &l.workflow, &f) {
                self.warn(e);
            }
        }
    }

    /// Records the ticks due now (with the catch-up policy), each with the partition it closes.
    pub(crate) fn fire_due_ticks(&mut self) {
        let now = self.ctx.clock.now_ms();
        let mut fired = Vec::new();
        for l in self.set.all() {
            let Some(s) = &l.workflow.automation.schedule else { continue };
            let name = &l.workflow.name;
            let mark = *self.marks.get(name).unwrap_or(&now);
            let due = crate::ticks::due(s, mark, now);
            if due.mark == mark {
                continue;
            }
            let events: Vec<NewEvent> = due
                .fire
                .iter()
                .map(|&t| {
                    let keys = crate::ticks::closed_partitions(&l.workflow, t);
                    NewEvent {
                        workflow: name.clone(),
                        source: Source::Tick,
                        key: format!("tick:{}:{t}", s.expr),
                        partition: (keys.len() == 1).then(|| keys[0].clone()),
                        detail: serde_json::json!({"scheduled_ms": t, "cron": s.expr}),
                        at_ms: now,
                    }
                })
                .collect();
            fired.push((name.clone(), s.expr.clone(), events, due));
        }
        let log = self.ctx.log.clone();
        for (name, expr, events, due) in fired {
            match block_in_place(|| log.record_ticks(&name, &expr, &events, due.mark)) {
                Ok(recorded) => {
                    self.marks.insert(name.clone(), due.mark);
                    self.announce(recorded.iter().filter(|r| r.new).map(|r| r.id));
                    if due.skipped > 0 {
                        let n = Notice::Missed { workflow: name, skipped: due.skipped, more: due.more };
                        self.ctx.observer.notice(n);
                    }
                }
                Err(e) => self.warn(format!("{e}")),
            }
        }
    }

    fn announce(&self, ids: impl Iterator<Item = i64>) {
        for id in ids {
            if let Ok(Some(e)) = block_in_place(|| self.ctx.log.event(id)) {
                self.ctx.observer.notice(Notice::Recorded(e));
            }
        }
    }

    /// `TaskOutcome` triggers of other workflows that this finished run fires.
    pub(crate) fn fire_outcomes(&mut self, finished: &str, record: &RunRecord) {
        let Some(source) = self.set.by_name(finished).cloned() else { return };
        let now = self.ctx.clock.now_ms();
        let mut events = Vec::new();
        for l in self.set.all() {
            for t in &l.workflow.automation.triggers {
                let Trigger::TaskOutcome { workflow, task, when } = t else { continue };
                if workflow != finished {
                    continue;
                }
                for rec in &record.tasks {
                    let base = rec.task.split_once('@').map_or(rec.task.as_str(), |(b, _)| b);
                    if base != task || !fires(when, rec, &source.workflow) {
                        continue;
                    }
                    events.push(NewEvent {
                        workflow: l.workflow.name.clone(),
                        source: Source::Outcome,
                        key: format!("outcome:{}:{}", record.id, rec.task),
                        partition: None,
                        detail: serde_json::json!({"workflow": finished, "task": rec.task, "run": record.id, "status": rec.status.as_str()}),
                        at_ms: now,
                    });
                }
            }
        }
        if events.is_empty() {
            return;
        }
        match block_in_place(|| self.ctx.log.record(&events)) {
            Ok(recorded) => self.announce(recorded.iter().filter(|r| r.new).map(|r| r.id)),
            Err(e) => self.warn(format!("{e}")),
        }
    }
}

/// Whether a task's line in a run record matches a trigger's `when`.
fn fires(when: &Outcome, rec: &dagrun_exec::TaskRecord, wf: &dagrun_workflow::Workflow) -> bool {
    match when {
        Outcome::Succeeded => rec.status == TaskStatus::Succeeded,
        Outcome::Failed => rec.status == TaskStatus::Failed,
        Outcome::Refused => rec.status == TaskStatus::Refused,
        Outcome::Alerted => rec.status == TaskStatus::Alerted,
        Outcome::Finished => {
            matches!(rec.status, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Refused | TaskStatus::Alerted)
        }
        Outcome::Json { output, pointer, equals } => {
            rec.status == TaskStatus::Succeeded && json_output(wf, &rec.task, output, pointer).as_ref() == Some(equals)
        }
    }
}

/// The value at `pointer` in output `output` of instance `instance` (`task` or `task@key`).
fn json_output(
    wf: &dagrun_workflow::Workflow,
    instance: &str,
    output: &str,
    pointer: &str,
) -> Option<serde_json::Value> {
    let (name, key) = match instance.split_once('@') {
        Some((n, k)) => (n, Some(k)),
        None => (instance, None),
    };
    let task = wf.tasks.iter().find(|t| t.name == name)?;
    let mut path = task.outputs.get(output)?.clone();
    if let (Some(key), Some(scheme)) = (key, task.partitioned.as_ref().and_then(|s| wf.schemes.get(s))) {
        let p = scheme.find(key)?;
        path = partition::render(&path, &p.vars(scheme));
    }
    let bytes = std::fs::read(wf.dir.join(path)).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.pointer(pointer).cloned()
}

/// The partition a landed file names: through the trigger's own template, else through a
/// partitioned task's templated input it matches.
fn partition_of(wf: &dagrun_workflow::Workflow, glob: &str, rel: &str) -> Option<String> {
    if partition::is_templated(glob) {
        return crate::watch::partition_vars(glob, rel).and_then(|v| crate::watch::partition_instant(&v));
    }
    wf.tasks.iter().filter(|t| t.partitioned.is_some()).flat_map(|t| t.inputs.values()).find_map(|i| match i {
        Input::File(t) | Input::Glob(t) if partition::is_templated(t) => {
            crate::watch::partition_vars(t, rel).and_then(|v| crate::watch::partition_instant(&v))
        }
        _ => None,
    })
}

/// Without a delivery id, the same body again within this time is a retry of one delivery.
pub const BODY_WINDOW_MS: i64 = 10 * 60 * 1000;

/// The webhook server's way into the log.
struct HookSink {
    ctx: Arc<Ctx>,
}

impl HookSink {
    fn check_partition(&self, workflow: &str, key: &str) -> Result<(), String> {
        let all = self.ctx.workflows.read().unwrap_or_else(|p| p.into_inner());
        match all.get(workflow) {
            Some(wf) => crate::trigger::check_partition(wf, key),
            None => Ok(()),
        }
    }
}

impl hooks::Sink for HookSink {
    fn deliver(&self, d: Delivery) -> Answer {
        if let Some(p) = &d.partition
            && let Err(why) = self.check_partition(&d.workflow, p)
        {
            return Answer::Rejected(why);
        }
        let now = self.ctx.clock.now_ms();
        let (key, window) = match &d.delivery_id {
            Some(id) => (format!("webhook:{}:id:{id}", d.name), None),
            None => (format!("webhook:{}:body:{}", d.name, d.body_digest), Some(BODY_WINDOW_MS)),
        };
        let detail = serde_json::json!({"hook": d.name, "delivery": d.delivery_id, "reason": d.reason});
        let event =
            NewEvent { workflow: d.workflow, source: Source::Webhook, key, partition: d.partition, detail, at_ms: now };
        let recorded = match window {
            Some(w) => self.ctx.log.record_unless_recent(&event, now - w),
            None => self.ctx.log.record(&[event]).map(|r| r[0]),
        };
        match recorded {
            Ok(r) => {
                if r.new {
                    if let Ok(Some(e)) = self.ctx.log.event(r.id) {
                        self.ctx.observer.notice(Notice::Recorded(e));
                    }
                    self.ctx.wake.notify_one();
                    Answer::Accepted { event: r.id }
                } else {
                    Answer::Duplicate { event: r.id }
                }
            }
            Err(e) => Answer::Unavailable(e.to_string()),
        }
    }

    fn wake(&self) {
        self.ctx.wake.notify_one();
    }

    fn log(&self, line: HookLog) {
        // Accepted deliveries are announced as recorded events; refusals are worth a line.
        if !matches!(line, HookLog::Delivered { .. }) {
            self.ctx.observer.notice(Notice::HookRefused(line.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(src: &str) -> dagrun_workflow::Workflow {
        dagrun_workflow::Workflow::from_source(dagrun_workflow::Source::new("w.ron", src), "/wf".into()).unwrap()
    }

    #[test]
    fn a_landed_file_names_its_partition_through_the_glob_or_a_task_input() {
        let w = wf(r#"Workflow(name: "w", partitions: {"day": Daily(start: "2025-01-01")},
            tasks: [Task(name: "t", kind: Command(run: "true"), inputs: {"d": File("landing/{date}/data.csv")},
                         outputs: {"o": "out/{date}.txt"}, partitioned: "day")])"#);
        assert_eq!(partition_of(&w, "drops/{date}.csv", "drops/2025-03-05.csv").as_deref(), Some("2025-03-05"));
        // No variable in the trigger's glob: the task's templated input names it.
        assert_eq!(partition_of(&w, "landing/**", "landing/2025-03-06/data.csv").as_deref(), Some("2025-03-06"));
        assert_eq!(partition_of(&w, "landing/**", "landing/readme.txt"), None);
    }
}
