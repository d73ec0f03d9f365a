//! Following the registry: per model name, the version being served and what `current` looked
//! like when it was last read. A request costs one `stat` of `current`; when it moved (a deploy, a
//! rollback), the named version is loaded, checked, warmed and swapped in before the request is
//! answered, so every answer comes from a version that was current while the request ran. Requests
//! already holding the old version finish on it, and it stays loaded: a rollback to it swaps at
//! once. A version that fails to load is reported once and
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
/// in place changes its status-change time (which, unlike the modification time, cannot be put
/// back) or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    size: u64,
}

/// File times are kept at the kernel's tick (a few ms): `current` changed twice within one tick,
/// or replaced by a file that reuses the inode of one seen within that tick, can show the same
/// stamp. A stamp taken this close to the last change of `current` is not trusted: requests read
/// `current` again until it has been still for longer.
const RACY: Duration = Duration::from_millis(50);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        size: m.size(),
    })
}

/// Whether `stamp`, taken at `taken`, can stand for `current` until it changes (see [`RACY`]).
fn settled(stamp: &Stamp, taken: std::time::SystemTime) -> bool {
    let taken = taken.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
    (taken - stamp.mtime_ns.max(stamp.ctime_ns)).abs() > RACY.as_nanos() as i128
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
    /// The version `served` replaced, kept loaded: a rollback to it swaps at once.
    previous: Mutex<Option<Arc<Served>>>,
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
            previous: Mutex::new(None),
            seen: Mutex::new(None),
            reload: tokio::sync::Mutex::new(None),
        }
    }

    /// The version serving now, without looking at the registry.
    pub fn served(&self) -> Option<Arc<Served>> {
        self.served.read().expect("served lock").clone()
    }

    /// The version to answer a request with: the current one, loaded first if `current` moved.
    pub async fn get(self: &Arc<Self>, state: &Arc<State>) -> Result<Arc<Served>, ApiError> {
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
    /// Runs as its own task: a client that disconnects while a version loads does not cancel the
    /// load (the next request finds it in place).
    pub async fn refresh(self: &Arc<Self>, state: &Arc<State>, force: bool) -> Result<Arc<Served>, ApiError> {
        let (slot, state) = (self.clone(), state.clone());
        tokio::spawn(async move { slot.decide(&state, force).await }).await.unwrap_or_else(|e| {
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("following the registry failed: {e}")))
        })
    }

    async fn decide(&self, state: &State, force: bool) -> Result<Arc<Served>, ApiError> {
        let mut failed = self.reload.lock().await;
        let registry_dir = &state.options.registry;
        let taken = std::time::SystemTime::now();
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
        let decided = self.follow(state, &mut failed, served, force).await;
        // Only once the version `current` names serves (or failed to load): until then, requests
        // that find `current` moved wait for the lock above rather than take the version it no
        // longer names. (A request dropped while a version loads leaves `seen` as it was: the next
        // one decides again.)
        *self.seen.lock().expect("seen lock") = now.filter(|n| settled(n, taken));
        decided
    }

    /// Makes the version `current` names now the served one, or says why it cannot be.
    async fn follow(
        &self,
        state: &State,
        failed: &mut Option<Failed>,
        served: Option<Arc<Served>>,
        force: bool,
    ) -> Result<Arc<Served>, ApiError> {
        let registry_dir = &state.options.registry;
        let unavailable = |reason: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason);
        let version = match registry::read_current(registry_dir, &self.name) {
            Ok(Some(v)) => v,
            Ok(None) => {
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
                self.report_failure(state, failed, "?", reason.clone(), served.as_deref());
                return served.ok_or_else(|| unavailable(&reason));
            }
        };
        if let Some(s) = served.as_ref().filter(|s| s.version == version) {
            *failed = None;
            return Ok(s.clone());
        }
        if let Some(f) = failed.as_ref().filter(|f| f.version == version && (!force || f.at.elapsed() < RETRY)) {
            return served.ok_or_else(|| unavailable(&f.reason));
        }
        let start = Instant::now();
        let warm = self.previous.lock().expect("previous lock").take_if(|p| p.version == version);
        let was_loaded = warm.is_some();
        let loaded = match warm {
            Some(p) => Ok(p),
            None => {
                let (dir, name, v, batching, metrics) =
                    (registry_dir.clone(), self.name.clone(), version.clone(), state.batching(), state.metrics.clone());
                tokio::task::spawn_blocking(move || Served::load(&dir, &name, &v, batching, metrics).map(Arc::new))
                    .await
                    .unwrap_or_else(|e| Err(format!("loading panicked: {e}")))
            }
        };
        match loaded {
            Ok(new) => {
                *self.served.write().expect("served lock") = Some(new.clone());
                *self.previous.lock().expect("previous lock") = served.clone();
                *failed = None;
                state.metrics.serving(&self.name, &new.version, &new.digest);
                (state.events)(Event::Serving {
                    name: self.name.clone(),
                    version: new.version.clone(),
                    digest: new.digest.clone(),
                    replaced: served.map(|s| s.version.clone()),
                    load: (!was_loaded).then(|| start.elapsed()),
                });
                Ok(new)
            }
            Err(reason) => {
                let reason = format!("model `{}` {version} cannot be served: {reason}", self.name);
                self.report_failure(state, failed, &version, reason.clone(), served.as_deref());
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
        // Counted once, like the event: retries and polls of the same failure are not new ones
        // (an unreadable `current` is read again at every poll).
        if !repeat {
            state.metrics.load_failed(&self.name);
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
        self.previous.lock().expect("previous lock").take();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_stamp_is_trusted_once_current_has_been_still_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("current");
        std::fs::write(&path, "v0001\n").unwrap();
        let s = stamp(&path).unwrap();
        let changed = SystemTime::UNIX_EPOCH + Duration::from_nanos(s.mtime_ns.max(s.ctime_ns) as u64);
        assert!(!settled(&s, changed), "taken in the tick it changed");
        assert!(!settled(&s, changed + RACY / 2));
        assert!(settled(&s, changed + RACY * 2));
        assert!(settled(&s, changed - Duration::from_secs(3600)), "a clock far behind the file's");
        // An edit in place with the modification time put back still changes the stamp.
        std::thread::sleep(Duration::from_millis(20));
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(mtime)).unwrap();
        assert_ne!(stamp(&path), Some(s));
    }
}
