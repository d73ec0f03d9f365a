//! A run's aftermath, once its tasks have ended: how it moved the registry (each model's
//! `current` before and after, recorded in the run record), the notifications it gives rise
//! to (queued in the outbox for the workflow's `notify` sinks; delivery is elsewhere), and the
//! drift incidents it opens, counts or resolves. Nothing here fails a run: a problem is a
//! warning ([`Event::Warning`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dagrun_cache::Store;
use dagrun_contracts::registry;
use dagrun_history::History;
use dagrun_plan::Instances;
use dagrun_workflow::{DataSource, DeployedDef, TaskKind, Workflow};

use crate::events::{Event, Reporter, TaskStatus};
use crate::history::{RegistryChange, RunRecord, TaskRecord};
use crate::notices::{Found, VersionFacts, notices};
use crate::when;

/// The registry models the workflow names, with `current` as it is now (in `before`).
pub(crate) fn snapshot(wf: &Workflow) -> Vec<RegistryChange> {
    wf.registry_models()
        .into_iter()
        .map(|(reg, name)| {
            let before = read_current(wf, &reg, &name);
            RegistryChange { registry: reg, name, before, after: None }
        })
        .collect()
}

fn read_current(wf: &Workflow, reg: &str, name: &str) -> Option<String> {
    registry::read_current(&dagrun_plan::resolve_path(wf, reg), name).ok().flatten()
}

/// What the aftermath works with (owned: it runs on the blocking pool).
pub(crate) struct Aftermath {
    pub history: Arc<History>,
    pub store: Arc<Store>,
    pub workflow: Arc<Workflow>,
    pub instances: Arc<Instances>,
    pub reporter: Arc<dyn Reporter>,
    /// From [`snapshot`] before the run started.
    pub before: Vec<RegistryChange>,
    /// The run's `s3://` registries: what the run published there.
    pub registries: Arc<crate::registries::Registries>,
}

impl Aftermath {
    /// [`Aftermath::finish_in`] on the blocking pool (SQLite and the registry are files). A
    /// panic there is a warning: the record comes back as far as it got.
    pub(crate) async fn run(self, mut record: RunRecord) -> RunRecord {
        let reporter = self.reporter.clone();
        // Should the job never run (a runtime shutting down), the record as the scheduler saved
        // it: read back, else these fields without the tasks.
        let (store, tasks) = (self.store.clone(), std::mem::take(&mut record.tasks));
        let kept = record.clone();
        record.tasks = tasks;
        let job = tokio::task::spawn_blocking(move || {
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.finish_in(&mut record)));
            (record, done.err())
        });
        let warn = |what: String| {
            reporter.report(&Event::Warning { message: format!("internal error after the run: {what}") })
        };
        match job.await.map_err(tokio::task::JoinError::try_into_panic) {
            Ok((record, panic)) => {
                if let Some(p) = panic {
                    let what =
                        p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
                    warn(what.unwrap_or_else(|| "a panic".to_owned()));
                }
                record
            }
            // Panics are caught inside the job.
            Err(Ok(panic)) => std::panic::resume_unwind(panic),
            Err(Err(e)) => {
                warn(e.to_string());
                RunRecord::load(&store, &kept.id).unwrap_or(kept)
            }
        }
    }

    /// [`Aftermath::finish_in`], taking and returning the record.
    #[cfg(test)]
    pub(crate) fn finish(self, mut record: RunRecord) -> RunRecord {
        self.finish_in(&mut record);
        record
    }

    /// Records the registry changes in `record` (saving it again when there are any), queues the
    /// notifications and updates the incidents. Problems are reported as warnings.
    fn finish_in(self, record: &mut RunRecord) {
        let wf = &self.workflow;
        record.registry = self
            .before
            .iter()
            .map(|c| {
                // On S3 the mirror may show another writer's move: the run moved what it published.
                let after = match self.registries.after(&c.registry, &c.name) {
                    Some(published) => published.or_else(|| c.before.clone()),
                    None => read_current(wf, &c.registry, &c.name),
                };
                RegistryChange { after, ..c.clone() }
            })
            .collect();
        // The scheduler saved the record as it ended; saved again only with registry changes.
        if !record.registry.is_empty()
            && let Err(e) = record.save(&self.store)
        {
            self.warn(format!("cannot save the registry changes in the run record: {e}"));
        }
        // The JSON record is the run's own file; a store that missed it catches up from it
        // (`sync_history`), so a failure here is a warning.
        let r = record.record_in(&self.history, Some(&wf.dir));
        self.warned(r, "record the run in the history store");
        if !wf.notify.is_empty() {
            self.notify(record);
        }
        self.incidents(record);
    }

    fn warn(&self, message: String) {
        self.reporter.report(&Event::Warning { message });
    }

    /// Queues every notification of the run for the workflow's sinks.
    fn notify(&self, record: &RunRecord) {
        let wf = &self.workflow;
        let found = self.gather(record);
        let now = when::now_ms();
        for n in notices(record, wf, &found) {
            let dedup =
                if n.once { format!("{}/{}", wf.name, n.subject) } else { format!("run {}/{}", record.id, n.subject) };
            if let Err(e) = self.history.enqueue(&n.notification, &wf.notify, &wf.dir, &dedup, now) {
                self.warn(format!("cannot queue the {} notification: {e}", n.notification.event.as_str()));
            }
        }
    }

    /// Reads what the notifications need beyond the record: each newly current version's
    /// digest, verdict and approval, and each refused gate's verdict.
    fn gather(&self, record: &RunRecord) -> Found {
        let wf = &self.workflow;
        let mut found = Found::default();
        for c in record.registry.iter().filter(|c| c.moved_up() == Some(true)) {
            let Some(version) = &c.after else { continue };
            let dir = dagrun_plan::resolve_path(wf, &c.registry);
            let meta = registry::read_metadata(&dir, &c.name, version).ok();
            let verdict = read_json(&registry::verdict_file(&dir, &c.name, version));
            let facts = VersionFacts {
                digest: meta.as_ref().map(|m| m.digest.clone()),
                verdict,
                approval: meta.and_then(|m| m.approval),
            };
            found.versions.insert((c.registry.clone(), c.name.clone(), version.clone()), facts);
        }
        for t in record.tasks.iter().filter(|t| t.status == TaskStatus::Refused) {
            let Some(i) = self.instances.nodes.iter().position(|n| n.name == t.task) else { continue };
            let outputs = dagrun_plan::instance_outputs(wf, &self.instances, i);
            if let Some(v) = outputs.get("verdict").and_then(|p| read_json(&wf.dir.join(p))) {
                found.verdicts.insert(t.task.clone(), v);
            }
        }
        found
    }

    /// Drift alerts (and held ones) on a deployed model open or count an incident; a deploy of
    /// the model resolves it, and so does a check of it that ran and found no drift.
    fn incidents(&self, record: &RunRecord) {
        let wf = &self.workflow;
        let finished = record.finished_ms.unwrap_or(record.started_ms) as i64;
        let checks = drift_checks(wf, record);
        let mut alerted = std::collections::BTreeSet::new();
        for (t, d) in &checks {
            if matches!(t.status, TaskStatus::Alerted | TaskStatus::Held) {
                let reg = registry_key(wf, &d.registry);
                // Detected when the run started: the check is what a run of the loop does first.
                let r = self.history.drift_alert(&wf.name, &reg, &d.name, &record.id, record.started_ms as i64);
                self.warned(r.map(drop), "record the drift incident");
                alerted.insert((reg, d.name.clone()));
            }
        }
        for c in record.registry.iter().filter(|c| c.moved_up() == Some(true)) {
            let resolution = format!("deployed {}", c.after.as_deref().unwrap_or_default());
            let reg = registry_key(wf, &c.registry);
            let r = self.history.resolve_incidents(&reg, &c.name, &record.id, &resolution, finished);
            self.warned(r.map(drop), "resolve the drift incident");
        }
        for (t, d) in &checks {
            let reg = registry_key(wf, &d.registry);
            let quiet = t.status == TaskStatus::Succeeded && t.summary.as_ref().is_some_and(|s| s["drifted"] == false);
            if quiet && !alerted.contains(&(reg.clone(), d.name.clone())) {
                let r = self.history.resolve_incidents(&reg, &d.name, &record.id, "cleared", finished);
                self.warned(r.map(drop), "resolve the drift incident");
            }
        }
    }

    fn warned(&self, r: Result<(), dagrun_history::HistoryError>, what: &str) {
        if let Err(e) = r {
            self.warn(format!("cannot {what}: {e}"));
        }
    }
}

/// The run's `Drift` tasks with `reference: Deployed(...)`, with the model they check.
fn drift_checks<'a>(wf: &'a Workflow, record: &'a RunRecord) -> Vec<(&'a TaskRecord, &'a DeployedDef)> {
    record
        .tasks
        .iter()
        .filter_map(|t| {
            let base = t.task.split('@').next().unwrap_or(&t.task);
            match &wf.tasks[wf.task_index(base)?].kind {
                TaskKind::Drift(d) => match &d.reference {
                    DataSource::Deployed(m) => Some((t, m)),
                    DataSource::Input(_) => None,
                },
                _ => None,
            }
        })
        .collect()
}

/// The registry directory as incidents know it: resolved against the workflow directory and,
/// when it exists, canonical (two workflows spelling one directory differently share incidents).
fn registry_key(wf: &Workflow, reg: &str) -> String {
    registry_key_in(&wf.dir, reg)
}

/// A registry directory as the history store keys it: resolved against the workflow's directory
/// `dir`, canonical when it exists.
pub(crate) fn registry_key_in(dir: &Path, reg: &str) -> String {
    if dagrun_workflow::registry_urls::is_remote(reg) {
        return reg.to_owned();
    }
    let path: PathBuf = if Path::new(reg).is_absolute() { reg.into() } else { dir.join(reg) };
    std::fs::canonicalize(&path).unwrap_or(path).display().to_string()
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
#[path = "aftermath_tests.rs"]
mod tests;
