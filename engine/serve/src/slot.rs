//! Following the registry: per model name, the version being served and what `current` looked
//! like when it was last read. A request costs one `stat` of `current`; when it moved (a deploy, a
//! rollback), the named version is loaded, checked, warmed and swapped in before the request is
//! answered, so every answer comes from a version that was current while the request ran. Requests
//! already holding the old version finish on it. A version that fails to load is reported once and
//! retried every [`RETRY`]; the old version keeps serving meanwhile.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dagrun_contracts::registry;

use crate::Event;
use crate::api::State;
use crate::error::ApiError;
use crate::worker::Served;

/// How often a version that failed to load is tried again (when `current` has not moved).
pub const RETRY: Duration = Duration::from_secs(10);

/// Identity of the `current` file as `stat` sees it: a deploy replaces it (a new inode), an edit
/// in place changes its time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    size: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        size: m.size(),
    })
}

/// The last version that could not be served.
#[derive(Debug, Clone)]
struct Failed {
    version: String,
    reason: String,
    at: Instant,
}

/// One served model name.
#[derive(Debug)]
pub(crate) struct Slot {
    pub name: String,
    served: RwLock<Option<Arc<Served>>>,
    /// `current` as it was when `served` (or the failed attempt) was decided.
    seen: Mutex<Option<Stamp>>,
    /// Held while deciding and loading: one load at a time per name.
    reload: tokio::sync::Mutex<Option<Failed>>,
}

impl Slot {
    pub fn new(name: &str) -> Slot {
        Slot {
            name: name.to_owned(),
            served: RwLock::new(None),
            seen: Mutex::new(None),
            reload: tokio::sync::Mutex::new(None),
        }
    }

    /// The version serving now, without looking at the registry.
    pub fn served(&self) -> Option<Arc<Served>> {
        self.served.read().expect("served lock").clone()
    }

    /// The version to answer a request with: the current one, loaded first if `current` moved.
    pub async fn get(&self, state: &State) -> Result<Arc<Served>, ApiError> {
        let now = stamp(&registry::current_file(&state.options.registry, &self.name));
        if now.is_some()
            && now == *self.seen.lock().expect("seen lock")
            && let Some(s) = self.served()
        {
            return Ok(s);
        }
        self.refresh(state, false).await
    }

    /// Reads `current` and makes the version it names the served one (loading it if needed).
    /// `force`: read it even if its stamp did not change, and retry a failed version after [`RETRY`].
    pub async fn refresh(&self, state: &State, force: bool) -> Result<Arc<Served>, ApiError> {
        let mut failed = self.reload.lock().await;
        let registry_dir = &state.options.registry;
        let now = stamp(&registry::current_file(registry_dir, &self.name));
        let served = self.served();
        let unavailable = |reason: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason);
        if !force && now.is_some() && now == *self.seen.lock().expect("seen lock") {
            return match (served, failed.as_ref()) {
                (Some(s), _) => Ok(s),
                (None, Some(f)) => Err(unavailable(&f.reason)),
                (None, None) => Err(unavailable(&format!("model `{}` has no deployed version", self.name))),
            };
        }
        // `seen` moves to `now` only once `served` matches what `current` said (or the failure is
        // recorded): a request that sees the new stamp must never get the old version.
        let seen = || *self.seen.lock().expect("seen lock") = now;
        let version = match registry::read_current(registry_dir, &self.name) {
            Ok(Some(v)) => v,
            Ok(None) => {
                seen();
                let path = registry::current_file(registry_dir, &self.name);
                return served.ok_or_else(|| {
                    unavailable(&format!(
                        "model `{}` has no deployed version ({} does not exist)",
                        self.name,
                        path.display()
                    ))
                });
            }
            Err(e) => {
                let reason = format!("model `{}`: {e}", self.name);
                self.report_failure(state, &mut failed, "?", reason.clone(), served.as_deref());
                seen();
                return served.ok_or_else(|| unavailable(&reason));
            }
        };
        if let Some(s) = served.as_ref().filter(|s| s.version == version) {
            *failed = None;
            seen();
            return Ok(s.clone());
        }
        if let Some(f) = failed.as_ref().filter(|f| f.version == version && (!force || f.at.elapsed() < RETRY)) {
            seen();
            return served.ok_or_else(|| unavailable(&f.reason));
        }
        let start = Instant::now();
        let (dir, name, v, batching, metrics) =
            (registry_dir.clone(), self.name.clone(), version.clone(), state.batching(), state.metrics.clone());
        let loaded =
            tokio::task::spawn_blocking(move || Served::load(&dir, &name, &v, batching, metrics.version(&name, &v)))
                .await
                .unwrap_or_else(|e| Err(format!("loading panicked: {e}")));
        match loaded {
            Ok(new) => {
                let new = Arc::new(new);
                *self.served.write().expect("served lock") = Some(new.clone());
                seen();
                *failed = None;
                state.metrics.serving(&self.name, &new.version, &new.digest);
                (state.events)(Event::Serving {
                    name: self.name.clone(),
                    version: new.version.clone(),
                    digest: new.digest.clone(),
                    replaced: served.map(|s| s.version.clone()),
                    load: start.elapsed(),
                });
                Ok(new)
            }
            Err(reason) => {
                let reason = format!("model `{}` {version} cannot be served: {reason}", self.name);
                self.report_failure(state, &mut failed, &version, reason.clone(), served.as_deref());
                seen();
                served.ok_or_else(|| unavailable(&reason))
            }
        }
    }

    fn report_failure(
        &self,
        state: &State,
        failed: &mut Option<Failed>,
        version: &str,
        reason: String,
        served: Option<&Served>,
    ) {
        let repeat = failed.as_ref().is_some_and(|f| f.version == version && f.reason == reason);
        *failed = Some(Failed { version: version.to_owned(), reason: reason.clone(), at: Instant::now() });
        state.metrics.load_failed(&self.name);
        if !repeat {
            (state.events)(Event::LoadFailed {
                name: self.name.clone(),
                version: version.to_owned(),
                reason,
                still_serving: served.map(|s| s.version.clone()),
            });
        }
    }

    /// Stops serving (the workers end once the requests holding the version finish).
    pub fn close(&self) {
        self.served.write().expect("served lock").take();
    }
}

/// Looks at every served name each [`crate::ServeOptions::poll`]: a deploy is loaded and warm
/// before traffic asks for it, edits in place are noticed, failed versions are retried, and (when
/// no names were given) models added to the registry are picked up.
pub(crate) async fn poll(state: Arc<State>) {
    let mut tick = tokio::time::interval(state.options.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.discover();
        for slot in state.slots() {
            let _ = slot.refresh(&state, true).await;
        }
    }
}
