//! The scheduler: walks the instance graph on tokio, at most `jobs` commands running at a time.
//!
//! An instance becomes ready when everything it needs has succeeded (or was cached). Its key is
//! computed then, from its upstreams' actual outputs, so a re-run upstream that produces the
//! same bytes leaves its downstream cached. A failed or refused instance skips its downstream;
//! unrelated branches go on. A cancel kills running tasks, caches nothing half-done, and marks
//! the rest skipped. The scheduler knows nothing of task kinds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use dagrun_cache::{Manifest, StoreError, now_ms};
use dagrun_plan::Instances;

use crate::cancel::Cancel;
use crate::events::{Event, RunStatus, TaskStatus, peak_rss_kb};
use crate::history::{RunRecord, TaskRecord};
use crate::job::{JobResult, run_job};
use crate::quick::take_hit;
use crate::shared::RunShared;

/// Runs every instance of `run`, filling in `record` (saved under `<state>/runs/` as it goes).
pub(crate) async fn schedule(
    run: Arc<RunShared>,
    record: RunRecord,
    forced: Vec<bool>,
    jobs: usize,
    reverse: bool,
    cancel: Cancel,
) -> Result<RunRecord, StoreError> {
    let (forced, cancel) = (&forced[..], &cancel);
    let started = Instant::now();
    // Objects and entries are fsynced in the background while tasks run (a task never waits for
    // the disk); the run waits for those fsyncs before it ends.
    let store = run.store.clone();
    let commit = store.group_commit();
    // One `procs/` record for the run's commands, not a file per command.
    let _procs = crate::procs::hold(&run.store.root().join("procs"));
    let graph = run.instances.clone();
    let mut book = Book::new(&run, record);
    let mut queue = Queue::new(&graph, reverse);
    let mut manifests: Vec<Option<Arc<Manifest>>> = vec![None; graph.len()];
    let mut running: JoinSet<JobResult> = JoinSet::new();
    let mut cancel_rx = cancel.receiver();
    let mut abandon_rx = cancel.abandon_receiver();
    let mut interrupted = cancel.is_cancelled();
    let mut last_save = Instant::now();
    // Quick hits worked out ahead on two threads; taken only while nothing went the full way.
    let mut ahead = crate::quick::ahead(&run, forced);
    let mut full_way = false;
    // `jobs` commands at a time; up to twice as many jobs in flight, so that a job's key
    // look-up and output storing happen while other jobs' commands run.
    let jobs = jobs.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let gate = Arc::new(crate::gate::Gate::new(jobs));
    // Turns to take a first slot, in the order jobs start here (see `crate::gate`).
    let mut tickets = 0..;

    loop {
        interrupted |= cancel.is_cancelled();
        while !interrupted && running.len() < jobs.saturating_mul(2) {
            let Some(i) = queue.pop() else { break };
            // Every upstream finished; only one whose alert an `only_if` took as its go-ahead has
            // no outputs.
            let ups: HashMap<usize, Arc<Manifest>> =
                graph.upstream(i).filter_map(|u| Some((u, manifests[u].clone()?))).collect();
            let forced = forced[graph.nodes[i].task];
            // Nothing changed since the last run: settled here, without a thread hand-off.
            if let Some(r) = take_hit(&run, &mut ahead, i, &ups, forced, full_way) {
                manifests[i] = r.manifest.clone();
                book.finish(r);
                queue.settle(&graph, i, TaskStatus::Cached, &mut book);
                interrupted |= cancel.is_cancelled();
                continue;
            }
            full_way = true;
            let turn = (gate.clone(), tickets.next().expect("endless"));
            running.spawn(run_job(run.clone(), i, ups, forced, cancel.receiver(), turn));
        }
        // Keep history useful after a crash: save progress at most every 2 seconds.
        if last_save.elapsed() > Duration::from_secs(2) {
            let _ = book.record.save(&run.store);
            last_save = Instant::now();
        }
        if running.is_empty() || cancel.is_abandoned() {
            // Abandoned: running jobs are dropped (their plugins told to stop) and not waited for.
            running.abort_all();
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let r = match joined.expect("non-empty") {
                    Ok(r) => r,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let (i, status) = (r.index, r.status);
                manifests[i] = r.manifest.clone();
                book.finish(r);
                queue.settle(&graph, i, status, &mut book);
            }
            Ok(()) = cancel_rx.changed(), if !interrupted => {
                interrupted = *cancel_rx.borrow();
            }
            Ok(()) = abandon_rx.changed() => {}
        }
    }
    if let Err(e) = commit.finish() {
        let message = format!("the cache may not survive a power loss: {e}");
        run.reporter.report(&Event::Warning { message });
    }
    book.close(interrupted || cancel.is_cancelled(), started)
}

/// Instances waiting for their upstream, and the ready ones in the order they start: oldest
/// partition first (newest first with `reverse`), then graph order.
struct Queue {
    waiting: Vec<usize>,
    ready: BinaryHeap<(Reverse<(i64, usize)>, usize)>,
    position: Vec<usize>,
    reverse: bool,
    /// Per instance: an upstream its `only_if` looks at raised an alert.
    met: Vec<bool>,
}

impl Queue {
    fn new(graph: &Instances, reverse: bool) -> Queue {
        let n = graph.len();
        let mut position = vec![0; n];
        for (k, &i) in graph.topo_order().iter().enumerate() {
            position[i] = k;
        }
        let waiting: Vec<usize> = (0..n).map(|i| graph.upstream(i).count()).collect();
        let roots: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut q = Queue { waiting, ready: BinaryHeap::new(), position, reverse, met: vec![false; n] };
        for i in roots {
            q.push(graph, i);
        }
        q
    }

    fn push(&mut self, graph: &Instances, i: usize) {
        let rank = if self.reverse { graph.rank[i].saturating_neg() } else { graph.rank[i] };
        self.ready.push((Reverse((rank, self.position[i])), i));
    }

    fn pop(&mut self) -> Option<usize> {
        self.ready.pop().map(|(_, i)| i)
    }

    /// `i` ended as `status`. Each downstream instance waits for one upstream less, or, when
    /// `i` did not give it what it needs, is skipped with everything below it. An instance with
    /// `only_if: Alerted(<i's task>)` takes `i`'s alert as the go-ahead; once all its upstream
    /// ended, it runs if one of them alerted, else it is skipped (not a failure).
    fn settle(&mut self, graph: &Instances, i: usize, status: TaskStatus, book: &mut Book<'_>) {
        let name = &graph.nodes[i].name;
        let task = &book.run.workflow.tasks[graph.nodes[i].task].name;
        let downstream: Vec<usize> = graph.downstream(i).collect();
        for d in downstream {
            if book.is_done(d) {
                continue;
            }
            let cond = book.run.workflow.tasks[graph.nodes[d].task].only_if.as_ref();
            let on_this = cond.is_some_and(|c| c.task() == task);
            let go = match status {
                TaskStatus::Succeeded | TaskStatus::Cached => true,
                TaskStatus::Alerted if on_this => {
                    self.met[d] = true;
                    true
                }
                _ => false,
            };
            if !go {
                book.skip_subtree(graph, d, skip_reason(name, status, on_this));
                continue;
            }
            self.waiting[d] -= 1;
            if self.waiting[d] > 0 {
                continue;
            }
            match cond {
                Some(c) if !self.met[d] => {
                    book.skip_subtree(graph, d, format!("only_if: `{}` raised no alert", c.task()));
                }
                _ => self.push(graph, d),
            }
        }
    }
}

/// Why an instance is skipped when upstream `name` ended as `status`.
fn skip_reason(name: &str, status: TaskStatus, conditional: bool) -> String {
    match status {
        TaskStatus::Failed => format!("upstream `{name}` failed"),
        TaskStatus::Refused => format!("upstream `{name}` was refused by its gate"),
        TaskStatus::Alerted => format!("upstream `{name}` raised an alert"),
        TaskStatus::Held if conditional => format!("only_if: `{name}`'s alert is held by its cooldown"),
        TaskStatus::Held => format!("upstream `{name}` raised an alert (held by its cooldown)"),
        TaskStatus::Waiting => format!("upstream `{name}` waits for approval"),
        _ => format!("upstream `{name}` did not run"),
    }
}

/// The run's bookkeeping: final states, the record, and partitions as they complete.
struct Book<'a> {
    run: &'a RunShared,
    record: RunRecord,
    done: Vec<bool>,
    /// Instances left per partition, to report partitions as they complete.
    partition_left: HashMap<String, usize>,
}

impl<'a> Book<'a> {
    fn new(run: &'a RunShared, record: RunRecord) -> Book<'a> {
        let mut partition_left: HashMap<String, usize> = HashMap::new();
        for node in &run.instances.nodes {
            if let Some(p) = &node.partition {
                *partition_left.entry(p.key.clone()).or_default() += 1;
            }
        }
        Book { run, record, done: vec![false; run.instances.len()], partition_left }
    }

    fn is_done(&self, i: usize) -> bool {
        self.done[i]
    }

    /// `d` and everything below it that has not ended are skipped, for `why`.
    fn skip_subtree(&mut self, graph: &Instances, d: usize, why: String) {
        for x in graph.with_descendants(d) {
            if !self.is_done(x) {
                self.finish(JobResult::skipped(x, why.clone()));
            }
        }
    }

    /// Ends the run: what never started is skipped, the status is decided, the record saved and
    /// `RunFinished` reported.
    fn close(mut self, interrupted: bool, started: Instant) -> Result<RunRecord, StoreError> {
        let run = self.run;
        for &i in run.instances.topo_order() {
            if !self.is_done(i) {
                let why = if interrupted { "interrupted" } else { "not reached" };
                self.finish(JobResult::skipped(i, why.to_owned()));
            }
        }
        let mut record = self.record;
        record.status = if interrupted {
            RunStatus::Interrupted
        } else if record.counts.failed > 0 {
            RunStatus::Failed
        } else if record.counts.refused > 0 {
            RunStatus::Refused
        } else if record.counts.waiting > 0 {
            RunStatus::Waiting
        } else if record.counts.alerted + record.counts.held > 0 {
            RunStatus::Alerted
        } else {
            RunStatus::Succeeded
        };
        record.finished_ms = Some(now_ms());
        record.save(&run.store)?;
        run.reporter.report(&Event::RunFinished {
            run_id: record.id.clone(),
            status: record.status,
            counts: record.counts,
            duration_ms: started.elapsed().as_millis() as u64,
            saved_ms: record.saved_ms,
            peak_rss_kb: peak_rss_kb(),
        });
        Ok(record)
    }

    fn finish(&mut self, r: JobResult) {
        let node = &self.run.instances.nodes[r.index];
        self.done[r.index] = true;
        self.record.counts.add(r.status);
        self.record.saved_ms += r.saved_ms;
        let log = r.log.as_ref().map(|p| p.display().to_string());
        self.run.reporter.report(&Event::TaskFinished {
            task: node.name.clone(),
            status: r.status,
            duration_ms: r.duration_ms,
            key: r.key,
            saved_ms: r.saved_ms,
            attempts: r.attempts,
            failure: r.failure.clone(),
            error: r.error.clone(),
            log: log.clone(),
            summary: r.summary.clone(),
            remote: r.remote,
        });
        self.record.tasks.push(TaskRecord {
            task: node.name.clone(),
            status: r.status,
            duration_ms: r.duration_ms,
            started_ms: r.started_ms,
            key: r.key,
            cached: r.status == TaskStatus::Cached,
            saved_ms: r.saved_ms,
            attempts: r.attempts,
            failure: r.failure.map(Box::new),
            error: r.error,
            log,
            summary: r.summary.map(Box::new),
        });
        if let Some(p) = &node.partition {
            let left = self.partition_left.get_mut(&p.key).expect("counted");
            *left -= 1;
            if *left == 0 {
                self.run.reporter.report(&Event::PartitionFinished { partition: p.key.clone() });
            }
        }
    }
}
