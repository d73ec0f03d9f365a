//! Registries on S3 during a run. Before the tasks start each `s3://` registry the workflow
//! names is synced into its mirror (`<state>/registries/...`), and the run's workflow resolves
//! the URL to that directory, so gates, deploys, predictions and monitors work on it unchanged.
//! Right after a task that may have changed a mirror (a plugin with the registry mounted
//! writable, a `Performance` rollback) the change is published with conditional writes. A
//! registry is not optional: a task that needs one that cannot be reached, whose deployed
//! version is corrupt, or whose deploy lost the race to another one fails, saying why and
//! what to do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use dagrun_remote::{Moved, RemoteError, RemoteRegistry, RemoteUrl};
use dagrun_workflow::registry_urls::{is_remote, task_locations};
use dagrun_workflow::{TaskKind, Workflow};

use crate::events::{Event, Reporter};
use crate::outcome::{Failure, TaskError};

/// The remote registries of one run.
#[derive(Debug, Default)]
pub(crate) struct Registries {
    /// Location as written → the registry.
    remotes: BTreeMap<String, RemoteRegistry>,
    /// Location as written → why tasks that use it cannot run.
    errors: BTreeMap<String, String>,
    /// `(location, model)` → the version this run made current on the remote.
    published: Mutex<BTreeMap<(String, String), String>>,
}

impl Registries {
    /// Syncs every `s3://` registry of `wf` under `state_dir`; returns the workflow with its
    /// mirrors set. A registry that could not be synced resolves to an empty place in the state
    /// directory instead: nothing is decided on a stale mirror (a gate sees no champion, so its
    /// key changes and the task runs, and fails on [`Registries::check`]). Versions that fail
    /// their checks are warnings. A workflow without `s3://` registries is shared, not copied
    /// (a copy of a 10,000-task workflow costs tens of MiB).
    pub(crate) async fn sync(
        wf: &Arc<Workflow>,
        state_dir: &Path,
        reporter: &dyn Reporter,
    ) -> (Arc<Workflow>, Registries) {
        let mut out = Registries::default();
        let locations = wf.remote_registries();
        if locations.is_empty() {
            return (wf.clone(), out);
        }
        let mut wf = Workflow::clone(wf);
        for location in locations {
            let url = match location.parse::<RemoteUrl>() {
                Ok(u) => u,
                Err(e) => {
                    out.errors.insert(location, e.to_string());
                    continue;
                }
            };
            let mirror = dagrun_remote::mirror_dir(state_dir, &url);
            wf.registry_mirrors.insert(location.clone(), mirror.join(".unreachable"));
            let remote = match RemoteRegistry::open(&url, state_dir) {
                Ok(r) => r,
                Err(e) => {
                    out.errors.insert(location, unreachable(&e));
                    continue;
                }
            };
            match remote.sync().await {
                Ok(synced) => {
                    wf.registry_mirrors.insert(location.clone(), mirror);
                    for p in &synced.problems {
                        reporter.report(&Event::Warning { message: p.to_string() });
                    }
                    if !synced.broken.is_empty() {
                        let why = synced.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                        out.errors.insert(location.clone(), why);
                    }
                }
                Err(e) => {
                    out.errors.insert(location.clone(), unreachable(&e));
                }
            }
            out.remotes.insert(location, remote);
        }
        // Said once up front too: a task that only reads the registry (a prediction, a drift
        // check) may fail before it gets to say why (nothing deployed, as far as it can see).
        for why in out.errors.values() {
            reporter.report(&Event::Warning { message: why.clone() });
        }
        (Arc::new(wf), out)
    }

    /// Fails a task that names a registry this run could not sync.
    pub(crate) fn check(&self, kind: &TaskKind) -> Result<(), TaskError> {
        for (_, location) in task_locations(kind) {
            if let Some(why) = self.errors.get(location) {
                return Err(TaskError::permanent(Failure::Input, why.clone()));
            }
        }
        Ok(())
    }

    /// Publishes what a task changed in the mirror of `location` (nothing for a directory);
    /// returns the pointers moved on the remote (the run record shows them as registry changes).
    pub(crate) async fn publish(&self, location: &str) -> Result<Vec<Moved>, TaskError> {
        if !is_remote(location) {
            return Ok(Vec::new());
        }
        let Some(remote) = self.remotes.get(location) else {
            let why =
                self.errors.get(location).cloned().unwrap_or_else(|| format!("registry {location} was not synced"));
            return Err(TaskError::permanent(Failure::Input, why));
        };
        match remote.publish().await {
            Ok(moved) => {
                let mut published = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for m in &moved {
                    published.insert((location.to_owned(), m.name.clone()), m.to.clone());
                }
                Ok(moved)
            }
            Err(e @ RemoteError::LostRace { .. }) => Err(TaskError::permanent(Failure::Plugin, e.to_string())),
            Err(e) => {
                // Not published: the mirror goes back to what the remote holds (best effort: an
                // unreachable remote is re-synced by the next run).
                let _ = remote.sync().await;
                Err(TaskError::new(Failure::Plugin, format!("{}; the change was not published", unreachable(&e))))
            }
        }
    }

    /// What `current` of `name` in `location` is after the run, as far as this run moved it:
    /// `Some(Some(v))` when it published `v`, `Some(None)` when it moved nothing there (a remote
    /// registry: what the mirror shows may be another writer's move), `None` for a directory.
    pub(crate) fn after(&self, location: &str, name: &str) -> Option<Option<String>> {
        if !is_remote(location) {
            return None;
        }
        let published = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(published.get(&(location.to_owned(), name.to_owned())).cloned())
    }
}

/// A request error with what to check.
fn unreachable(e: &RemoteError) -> String {
    match e {
        RemoteError::Request { .. } => format!(
            "{e} (a registry is not optional: check that the bucket exists and that AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY reach it; `dagrun doctor` probes it)"
        ),
        e => e.to_string(),
    }
}
