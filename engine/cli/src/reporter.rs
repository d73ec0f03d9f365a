//! Reporters turn run events into output: progress bars on a TTY, plain lines otherwise, or JSON.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use dagrun_exec::{Event, Reporter, TaskStatus};
use dagrun_workflow::duration;

use crate::printer::{errln, outln, outln_batched};

/// One JSON object per line on stdout, for every event.
#[derive(Debug, Default)]
pub struct JsonReporter;

impl Reporter for JsonReporter {
    /// One JSON line per event. A cache hit's line may wait for the next other event (or 64 KiB
    /// of them): a large re-run reports thousands in a burst, and a write each was ~8% of it.
    fn report(&self, event: &Event) {
        let line = serde_json::to_string(event).expect("events serialize");
        if matches!(event, Event::TaskFinished { status: TaskStatus::Cached, .. }) {
            outln_batched!("{line}");
        } else {
            outln!("{line}");
        }
    }
}

/// The line for a finished task; a failed or refused task's log follows on its own line.
fn finished_line(event: &Event) -> String {
    let Event::TaskFinished { task, status, duration_ms, saved_ms, error, log, remote, .. } = event else {
        return String::new();
    };
    let d = duration::format(Duration::from_millis(*duration_ms));
    let error = error.as_deref();
    let log_line = |line: String| match log {
        Some(log) => format!("{line}\n           log: {log}"),
        None => line,
    };
    match status {
        TaskStatus::Succeeded => format!("  ok       {task} ({d})"),
        TaskStatus::Cached => {
            let from = if *remote { "remote, " } else { "" };
            format!("  cached   {task} ({from}saved {})", duration::format(Duration::from_millis(*saved_ms)))
        }
        TaskStatus::Failed => log_line(format!("  FAILED   {task} ({d}): {}", error.unwrap_or("failed"))),
        TaskStatus::Refused => log_line(format!("  REFUSED  {task} ({d}): {}", error.unwrap_or("refused"))),
        TaskStatus::Alerted => log_line(format!("  ALERT    {task} ({d}): {}", error.unwrap_or("alert"))),
        TaskStatus::Skipped => format!("  skipped  {task}: {}", error.unwrap_or("skipped")),
        TaskStatus::Held => format!("  HELD     {task} ({d}): {}", error.unwrap_or("alert held")),
        TaskStatus::Waiting => format!("  WAITING  {task}: {}", error.unwrap_or("waits for approval")),
    }
}

/// The line naming the tasks a partial run leaves out (`run` and `plan` alike).
pub fn left_out_line(tasks: &[String], reason: &str) -> String {
    format!("  left out {}: {reason}", tasks.join(", "))
}

/// Lines for the events every reporter shows the same way (`None`: not one of them).
fn notice(event: &Event) -> Option<String> {
    match event {
        Event::TasksLeftOut { tasks, reason } => Some(left_out_line(tasks, reason)),
        Event::CacheCorrupt { error, .. } => Some(format!("  warning  corrupt cache: {error}")),
        Event::Warning { message } => Some(format!("  warning  {message}")),
        Event::RemoteWarning { remote, task: Some(task), message } => {
            Some(format!("  warning  remote cache {remote}: `{task}`: {message}"))
        }
        Event::RemoteWarning { remote, task: None, message } => {
            Some(format!("  warning  remote cache {remote}: {message}"))
        }
        Event::RemoteWaiting { uploads } => {
            Some(format!("  remote   waiting for {uploads} upload(s) to the remote cache to finish"))
        }
        Event::RemoteUploaded { remote, published, existing, pending } => {
            let mut line = format!("  remote   {remote}: {published} entries published, {existing} there already");
            if *pending > 0 {
                line.push_str(&format!(
                    ", {pending} not sent (kept for the next run with the remote cache, or `dagrun cache push`)"
                ));
            }
            Some(line)
        }
        _ => None,
    }
}

/// Plain lines on stderr (used when stderr is not a terminal).
#[derive(Debug, Default)]
pub struct PlainReporter;

impl Reporter for PlainReporter {
    fn report(&self, event: &Event) {
        if let Some(line) = plain_line(event) {
            errln!("{line}");
        }
    }
}

/// An event as [`PlainReporter`] prints it (`None`: an event it does not show).
pub(crate) fn plain_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::RunStarted { run_id, workflow, tasks, partitions: 0, jobs } => {
            format!("dagrun: run {run_id} of `{workflow}`: {tasks} task(s), {jobs} at a time")
        }
        Event::RunStarted { run_id, workflow, tasks, partitions, jobs } => format!(
            "dagrun: run {run_id} of `{workflow}`: {tasks} task(s) over {partitions} partition(s), {jobs} at a time"
        ),
        Event::PartitionFinished { .. } => return None,
        Event::TaskStarted { task, attempt: 1 } => format!("  run      {task}"),
        Event::TaskStarted { task, attempt } => format!("  run      {task} (attempt {attempt})"),
        Event::TaskRetrying { task, attempt, error, delay_ms } => format!(
            "  retry    {task}: attempt {attempt} failed ({}); retrying in {}",
            first_line(error),
            duration::format(Duration::from_millis(*delay_ms))
        ),
        Event::TaskFinished { .. } => finished_line(event),
        Event::TasksLeftOut { .. }
        | Event::CacheCorrupt { .. }
        | Event::Warning { .. }
        | Event::RemoteWarning { .. }
        | Event::RemoteWaiting { .. }
        | Event::RemoteUploaded { .. } => notice(event).unwrap_or_default(),
        // The task's own line says it came from the remote.
        Event::RemoteHit { .. } => return None,
        Event::PluginBuildStarted { plugin } => format!("  build    {plugin} (cargo, wasm32-wasip2)"),
        Event::PluginBuildFinished { plugin, error: None, duration_ms } => {
            format!("  built    {plugin} ({})", duration::format(Duration::from_millis(*duration_ms)))
        }
        Event::PluginBuildFinished { plugin, error: Some(e), .. } => format!("  FAILED   build of {plugin}: {e}"),
        Event::RunFinished { .. } => return None,
    })
}

/// An error on one line: newlines become ` | `, cut at 200 characters.
fn first_line(s: &str) -> String {
    let one: String = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ");
    if one.chars().count() > 200 { format!("{}…", one.chars().take(200).collect::<String>()) } else { one }
}

/// Progress bars on stderr: one overall bar and one spinner per running task.
#[derive(Debug)]
pub struct ProgressReporter {
    multi: MultiProgress,
    overall: ProgressBar,
    partitions: std::sync::OnceLock<ProgressBar>,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl ProgressReporter {
    /// Draws to stderr.
    pub fn new() -> ProgressReporter {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} tasks  {elapsed_precise}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("dagrun");
        ProgressReporter { multi, overall, partitions: std::sync::OnceLock::new(), running: Mutex::new(HashMap::new()) }
    }
}

impl Reporter for ProgressReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::RunStarted { tasks, partitions, .. } => {
                self.overall.set_length(*tasks as u64);
                self.overall.enable_steady_tick(Duration::from_millis(100));
                if *partitions > 0 {
                    let bar = self.multi.insert(0, ProgressBar::new(*partitions as u64));
                    bar.set_style(
                        ProgressStyle::with_template("partitions [{bar:30.green/blue}] {pos}/{len}  ETA {eta}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    let _ = self.partitions.set(bar);
                }
            }
            Event::PartitionFinished { .. } => {
                if let Some(bar) = self.partitions.get() {
                    bar.inc(1);
                }
            }
            Event::TaskStarted { task, attempt } => {
                let mut running = self.running.lock().expect("lock");
                let bar = running.entry(task.clone()).or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(ProgressStyle::with_template("  {spinner} {msg} {elapsed}").expect("valid template"));
                    b.enable_steady_tick(Duration::from_millis(100));
                    b
                });
                bar.set_message(if *attempt > 1 { format!("{task} (attempt {attempt})") } else { task.clone() });
            }
            Event::TaskRetrying { task, attempt, error, .. } => {
                let _ =
                    self.multi.println(format!("  retry    {task}: attempt {attempt} failed ({})", first_line(error)));
            }
            Event::TaskFinished { task, status, .. } => {
                if let Some(bar) = self.running.lock().expect("lock").remove(task) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                self.overall.inc(1);
                if *status != TaskStatus::Cached {
                    let _ = self.multi.println(finished_line(event));
                }
            }
            Event::TasksLeftOut { .. }
            | Event::CacheCorrupt { .. }
            | Event::Warning { .. }
            | Event::RemoteWarning { .. } => {
                let _ = self.multi.println(notice(event).unwrap_or_default());
            }
            // After the bars are gone (the run's tasks are done).
            Event::RemoteWaiting { .. } | Event::RemoteUploaded { .. } => {
                errln!("{}", notice(event).unwrap_or_default())
            }
            Event::RemoteHit { .. } => {}
            Event::PluginBuildStarted { plugin } => self.overall.set_message(format!("building {plugin}")),
            Event::PluginBuildFinished { plugin, error, .. } => {
                self.overall.set_message("");
                if let Some(e) = error {
                    let _ = self.multi.println(format!("  FAILED   build of {plugin}: {e}"));
                }
            }
            Event::RunFinished { .. } => {
                if let Some(bar) = self.partitions.get() {
                    bar.finish_and_clear();
                }
                self.overall.finish_and_clear();
            }
        }
    }
}
