//! Run history: one versioned JSON record per run under `<state>/runs/`, written atomically.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use dagrun_cache::{ActionKey, Digest, Store, StoreError};

use crate::events::{Counts, RunStatus, TaskStatus};
use crate::outcome::Failure;

/// Version of the run record format. Version 1 (before `refused` was a status of its own:
/// refusals were counted in `failed` too) is read and converted; version 2 (before tasks had
/// their start time, `started_ms`) is read as it is: its tasks have none.
pub const RUN_RECORD_VERSION: u32 = 3;

/// One task's line in a run record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task name.
    pub task: String,
    /// Final state.
    pub status: TaskStatus,
    /// Wall time in this run.
    pub duration_ms: u64,
    /// When it started (Unix ms): the cache lookup, for a hit; when it first had a slot
    /// (`-j`), for a task that ran. `None` for a task that never started (skipped), and in
    /// records of version 2 and older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// Cache key (hex in JSON); a record whose key is not a digest reads as having none.
    #[serde(default, deserialize_with = "lenient_key")]
    pub key: Option<ActionKey>,
    /// Whether it was a cache hit.
    pub cached: bool,
    /// For a hit: the compute time it saved.
    pub saved_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// How it failed (boxed: most tasks have none, and a run keeps a row per task).
    #[serde(default)]
    pub failure: Option<Box<Failure>>,
    /// Failure, refusal or skip reason.
    pub error: Option<String>,
    /// Its log, when it ran.
    #[serde(default)]
    pub log: Option<String>,
    /// A plugin's summary (JSON; boxed like `failure`).
    #[serde(default)]
    pub summary: Option<Box<serde_json::Value>>,
}

/// A task's key as a record holds it: a digest's hex, or `null`. Any other string (a record
/// edited by hand, an old test fixture) reads as no key rather than making the whole record
/// unreadable; a key that is not a string still is an error.
fn lenient_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ActionKey>, D::Error> {
    let text: Option<String> = Deserialize::deserialize(d)?;
    Ok(text.and_then(|t| Digest::from_hex(&t)).map(ActionKey))
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`RUN_RECORD_VERSION`].
    pub version: u32,
    /// Sortable id, e.g. `20261126-120301042-3f`.
    pub id: String,
    /// Workflow file path.
    pub workflow: String,
    /// Workflow name.
    pub workflow_name: String,
    /// Start (Unix ms).
    pub started_ms: u64,
    /// End (Unix ms), if it ended.
    pub finished_ms: Option<u64>,
    /// Outcome (`running` if the process died).
    pub status: RunStatus,
    /// Counts by status.
    pub counts: Counts,
    /// Compute time saved by cache hits.
    pub saved_ms: u64,
    /// Per task, in completion order.
    pub tasks: Vec<TaskRecord>,
    /// The registry models the workflow names, with the version `current` named before the run
    /// started and after it ended (absent in records written before it existed).
    #[serde(default)]
    pub registry: Vec<RegistryChange>,
    /// The workflow's `manual_minutes` estimate when it ran (absent when not set, and in
    /// records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_minutes: Option<u32>,
    /// The process that ran it (absent in records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// That process's start time, so a pid taken by another process since is not mistaken for
    /// it (clock ticks since boot, Linux; see `dagrun_history::alive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_started: Option<u64>,
}

/// One registry model's `current` before and after a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryChange {
    /// The registry directory, as the workflow writes it.
    pub registry: String,
    /// The model's name.
    pub name: String,
    /// The version `current` named before the run (`None`: nothing deployed).
    pub before: Option<String>,
    /// The version it names after the run.
    pub after: Option<String>,
}

impl RegistryChange {
    /// `Some(true)`: `current` moved to a higher version (a deploy); `Some(false)`: to a lower
    /// one (a rollback); `None`: it did not move (or moved away from every version).
    pub fn moved_up(&self) -> Option<bool> {
        let n = |v: &Option<String>| v.as_deref().and_then(dagrun_contracts::registry::parse_version);
        match (n(&self.before), n(&self.after)) {
            (_, None) => None,
            (None, Some(_)) => Some(true),
            (Some(b), Some(a)) if a == b => None,
            (Some(b), Some(a)) => Some(a > b),
        }
    }
}

/// Why a run record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    /// It is not JSON of a run record.
    #[error("not a run record: {0}")]
    Parse(serde_json::Error),
    /// A newer dagrun wrote it.
    #[error("record version {0}; this dagrun reads up to {RUN_RECORD_VERSION}: upgrade dagrun")]
    Newer(u32),
}

fn runs_dir(store: &Store) -> PathBuf {
    store.root().join("runs")
}

impl RunRecord {
    /// Whether the run was killed mid-run: it has no end and the process that ran it is gone.
    /// `false` while it runs, once it ended, and when its process was not recorded (then it
    /// cannot be told from a run going on).
    pub fn killed(&self) -> bool {
        self.finished_ms.is_none()
            && self.status == RunStatus::Running
            && dagrun_history::alive::alive(self.pid, self.pid_started) == Some(false)
    }

    /// Writes (or overwrites) the record.
    pub fn save(&self, store: &Store) -> Result<(), StoreError> {
        let path = runs_dir(store).join(format!("{}.json", self.id));
        store.write_atomic_cheap_with(&path, |w| Ok(serde_json::to_writer_pretty(w, self)?))
    }

    /// Most recent runs first (at most `limit`); unreadable records are skipped.
    pub fn list(store: &Store, limit: usize) -> Vec<RunRecord> {
        Self::ids(store).into_iter().rev().filter_map(|id| Self::load(store, &id)).take(limit).collect()
    }

    /// The ids of the records under `<state>/runs/`, oldest first.
    pub fn ids(store: &Store) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(runs_dir(store))
            .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        ids.retain(|n| n.ends_with(".json"));
        for id in &mut ids {
            id.truncate(id.len() - ".json".len());
        }
        ids.sort_unstable();
        ids
    }

    /// The file of run `id`'s record.
    pub fn path(store: &Store, id: &str) -> PathBuf {
        runs_dir(store).join(format!("{id}.json"))
    }

    /// Loads one run by exact id (converting older versions).
    pub fn load(store: &Store, id: &str) -> Option<RunRecord> {
        Self::read(store, id).ok()
    }

    /// [`RunRecord::load`], saying why a record cannot be read.
    pub fn read(store: &Store, id: &str) -> Result<RunRecord, RecordError> {
        let bytes = std::fs::read(Self::path(store, id)).map_err(RecordError::Read)?;
        let mut r = serde_json::from_slice::<RunRecord>(&bytes).map_err(RecordError::Parse)?;
        match r.version {
            1 => {
                // Version 1 counted refusals in `failed` too.
                r.counts.failed = r.counts.failed.saturating_sub(r.counts.refused);
                if r.status == RunStatus::Failed && r.counts.failed == 0 && r.counts.refused > 0 {
                    r.status = RunStatus::Refused;
                }
                r.version = RUN_RECORD_VERSION;
                Ok(r)
            }
            // Version 2 lacks only the tasks' start times (optional).
            2 => {
                r.version = RUN_RECORD_VERSION;
                Ok(r)
            }
            RUN_RECORD_VERSION => Ok(r),
            v => Err(RecordError::Newer(v)),
        }
    }

    /// Finds a run by id, unique id prefix, or `last`.
    pub fn find(store: &Store, query: &str) -> Result<RunRecord, String> {
        let all = Self::list(store, usize::MAX);
        if query == "last" {
            return all.into_iter().next().ok_or_else(|| "no runs recorded yet".to_owned());
        }
        let matches: Vec<RunRecord> = all.into_iter().filter(|r| r.id.starts_with(query)).collect();
        match matches.len() {
            0 => Err(format!("no run with id `{query}` (see `dagrun runs`)")),
            1 => Ok(matches.into_iter().next().expect("one")),
            n => Err(format!("`{query}` matches {n} runs; give more of the id")),
        }
    }
}

/// A new run id: UTC date, time to the millisecond, and 2 hex digits of the process id, so ids
/// sort by start time: `20261126-120301042-3f`.
pub fn new_run_id(now_ms: u64) -> String {
    let secs = now_ms / 1000;
    let (y, m, d, _) = dagrun_workflow::partition::civil(secs as i64);
    let rem = secs % 86_400;
    let salt = std::process::id() & 0xff;
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}{:03}-{salt:02x}", rem / 3600, (rem / 60) % 60, rem % 60, now_ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store holding `text` as the record of run `20260101-000000000-00`.
    fn store_with(text: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), dagrun_cache::Durability::NoFsync).unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        std::fs::write(dir.path().join("runs/20260101-000000000-00.json"), text).unwrap();
        (dir, store)
    }

    #[test]
    fn a_key_is_read_as_a_digest_and_a_key_that_is_not_one_as_none() {
        let key = ActionKey(Digest::of(b"k"));
        let row = |k: &str| {
            format!(
                r#"{{"task":"t","status":"cached","duration_ms":1,"key":{k},"cached":true,"saved_ms":0,"attempts":0,"error":null}}"#
            )
        };
        let read = |k: &str| serde_json::from_str::<TaskRecord>(&row(k)).unwrap().key;
        assert_eq!(read(&format!("\"{key}\"")), Some(key));
        assert_eq!((read("null"), read("\"k1\"")), (None, None));
        let written =
            serde_json::to_value(TaskRecord { key: Some(key), ..serde_json::from_str(&row("null")).unwrap() });
        assert_eq!(written.unwrap()["key"], key.0.to_hex(), "written as hex");
        assert!(serde_json::from_str::<TaskRecord>(&row("7")).is_err(), "not a string: unreadable as before");
    }

    #[test]
    fn version_1_records_count_refusals_apart() {
        let v1 = r#"{"version":1,"id":"20260101-000000000-00","workflow":"w.ron","workflow_name":"w",
            "started_ms":1,"finished_ms":2,"status":"failed",
            "counts":{"succeeded":2,"cached":0,"failed":1,"skipped":1,"refused":1},"saved_ms":0,
            "tasks":[{"task":"evaluate","status":"failed","duration_ms":1,"key":null,"cached":false,
            "saved_ms":0,"attempts":1,"error":"gate refused: accuracy 0.5 < min 0.7"}]}"#;
        let (_dir, store) = store_with(v1);
        let r = RunRecord::load(&store, "20260101-000000000-00").unwrap();
        assert_eq!((r.status, r.counts.failed, r.counts.refused), (RunStatus::Refused, 0, 1));
        assert_eq!(r.version, RUN_RECORD_VERSION);
        assert!(r.registry.is_empty(), "older records have no registry changes");
    }

    #[test]
    fn version_2_records_read_without_start_times_and_version_3_keeps_them() {
        let v2 = r#"{"version":2,"id":"20260101-000000000-00","workflow":"w.ron","workflow_name":"w",
            "started_ms":1,"finished_ms":2,"status":"succeeded",
            "counts":{"succeeded":1,"cached":0,"failed":0,"skipped":0,"refused":0},"saved_ms":0,
            "tasks":[{"task":"a","status":"succeeded","duration_ms":1,"key":null,"cached":false,
            "saved_ms":0,"attempts":1,"error":null}]}"#;
        let (dir, store) = store_with(v2);
        let mut r = RunRecord::read(&store, "20260101-000000000-00").unwrap();
        assert_eq!((r.version, r.tasks[0].started_ms), (RUN_RECORD_VERSION, None));
        r.tasks[0].started_ms = Some(1);
        r.save(&store).unwrap();
        let text = std::fs::read_to_string(dir.path().join("runs/20260101-000000000-00.json")).unwrap();
        assert!(text.contains("\"version\": 3") && text.contains("\"started_ms\": 1"), "{text}");
        assert_eq!(RunRecord::read(&store, "20260101-000000000-00").unwrap().tasks[0].started_ms, Some(1));
    }

    #[test]
    fn registry_moves() {
        let c = |b: Option<&str>, a: Option<&str>| RegistryChange {
            registry: "registry".into(),
            name: "churn".into(),
            before: b.map(Into::into),
            after: a.map(Into::into),
        };
        assert_eq!(c(None, Some("v0001")).moved_up(), Some(true));
        assert_eq!(c(Some("v0001"), Some("v0002")).moved_up(), Some(true));
        assert_eq!(c(Some("v0003"), Some("v0002")).moved_up(), Some(false));
        assert_eq!(c(Some("v0002"), Some("v0002")).moved_up(), None);
        assert_eq!(c(Some("v0002"), None).moved_up(), None);
        assert_eq!(c(None, None).moved_up(), None);
    }

    #[test]
    fn dates() {
        assert!(new_run_id(1_764_158_400_042).starts_with("20251126-120000042-"));
    }
}
