//! `dagrun runs` and `dagrun show`: the run history.

use std::path::Path;

use dagrun_exec::{RunRecord, RunStatus, TaskStatus};

use crate::args::StateArgs;
use crate::commands::{error, existing_store, ms};
use crate::exit::Exit;

pub fn runs(
    workflow: Option<&Path>,
    limit: usize,
    notifications: bool,
    json: bool,
    state: &StateArgs,
) -> Result<Exit, Exit> {
    let store = match existing_store(state, workflow)? {
        Ok(store) => store,
        Err(dir) => {
            if !json {
                println!("no runs recorded: no state directory at {}", dir.display());
            }
            return Ok(Exit::Success);
        }
    };
    if notifications {
        return crate::notifications::list(&store, limit, json);
    }
    let records = RunRecord::list(&store, limit);
    if json {
        for r in &records {
            println!("{}", serde_json::to_string(r).expect("serializes"));
        }
        return Ok(Exit::Success);
    }
    if records.is_empty() {
        println!("no runs recorded in {}", store.root().display());
        return Ok(Exit::Success);
    }
    println!(
        "{:21}  {:11}  {:>5}  {:>6}  {:>6}  {:>6}  {:>7}  {:>8}  {:>8}",
        "run", "status", "tasks", "ran", "cached", "failed", "refused", "time", "saved"
    );
    for r in &records {
        let took = r.finished_ms.map_or("-".to_owned(), |f| ms(f.saturating_sub(r.started_ms)));
        println!(
            "{:21}  {:11}  {:>5}  {:>6}  {:>6}  {:>6}  {:>7}  {:>8}  {:>8}",
            r.id,
            status_name(r),
            r.counts.total(),
            r.counts.succeeded,
            r.counts.cached,
            r.counts.failed,
            r.counts.refused,
            took,
            ms(r.saved_ms)
        );
    }
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    crate::notifications::mention_undelivered(&store, &ids)?;
    Ok(Exit::Success)
}

/// A run's status as `runs` and `show` print it: a run with no end is `killed` when the process
/// that ran it is gone, `running` while it is there, `running?` when the record does not say
/// which process ran it (written before records did).
fn status_name(r: &RunRecord) -> &'static str {
    match r.status {
        RunStatus::Running if r.killed() => "killed",
        RunStatus::Running if r.pid.is_some() => "running",
        RunStatus::Running => "running?",
        s => s.as_str(),
    }
}

pub fn show(query: &str, workflow: Option<&Path>, json: bool, state: &StateArgs) -> Result<Exit, Exit> {
    let store = match existing_store(state, workflow)? {
        Ok(store) => store,
        Err(dir) => {
            return Err(error(format!("no runs recorded yet (no state directory at {})", dir.display()), Exit::Usage));
        }
    };
    let r = RunRecord::find(&store, query).map_err(|e| error(e, Exit::Usage))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializes"));
        return Ok(Exit::Success);
    }
    println!("run {} of `{}` ({}): {}", r.id, r.workflow_name, r.workflow, status_name(&r));
    let width = r.tasks.iter().map(|t| t.task.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:9}  {:>8}  {:12}  note", "task", "status", "time", "key");
    for t in &r.tasks {
        let key = t.key.map_or_else(|| "-".to_owned(), |k| k.0.short());
        let note = match (&t.error, t.status) {
            // The first line, without the "; last output:" that introduces the log's tail.
            (Some(e), _) => e.lines().next().unwrap_or("").trim_end_matches("; last output:").to_owned(),
            (None, TaskStatus::Cached) => format!("saved {}", ms(t.saved_ms)),
            (None, _) => String::new(),
        };
        println!("{:width$}  {:9}  {:>8}  {key:12}  {note}", t.task, t.status.as_str(), ms(t.duration_ms));
    }
    let c = r.counts;
    let refused = if c.refused > 0 { format!(", {} refused", c.refused) } else { String::new() };
    println!(
        "{} ran, {} cached, {} failed{refused}, {} skipped; the cache saved {}",
        c.succeeded,
        c.cached,
        c.failed,
        c.skipped,
        ms(r.saved_ms)
    );
    for t in
        r.tasks.iter().filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Refused | TaskStatus::Alerted))
    {
        if let Some(log) = &t.log {
            println!("log of {}: {log}", t.task);
        }
    }
    Ok(Exit::Success)
}
