//! `--registry s3://BUCKET/PREFIX` for `dagrun models` and `dagrun serve`: the command works on
//! a private mirror (a temporary directory, removed on exit) synced from the remote; a rollback
//! is published with a conditional write; `serve` keeps its mirror in step by polling.

use std::path::Path;
use std::time::Duration;

use dagrun_remote::{RemoteRegistry, RemoteUrl};

use crate::commands::error;
use crate::exit::Exit;
use crate::printer::errln;

/// A remote registry and its private mirror.
pub struct Mirrored {
    pub remote: RemoteRegistry,
    _dir: tempfile::TempDir,
}

impl Mirrored {
    /// The mirror: the registry directory the command works on.
    pub fn dir(&self) -> &Path {
        self.remote.mirror()
    }
}

/// The `s3://` URL `registry` is, if it is one (an invalid one is a usage error).
pub fn url(registry: &Path) -> Result<Option<RemoteUrl>, Exit> {
    let Some(text) = registry.to_str().filter(|t| dagrun_workflow::registry_urls::is_remote(t)) else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|e| error(e, Exit::Usage))
}

/// Connects to the remote registry at `url` and syncs it into a new private mirror. Versions
/// that fail their checks are warnings (they are not mirrored).
pub async fn open(url: &RemoteUrl) -> Result<Mirrored, Exit> {
    let dir = tempfile::Builder::new().prefix("dagrun-registry-").tempdir().map_err(|e| {
        error(format!("cannot create a temporary directory for the registry mirror: {e}"), Exit::Internal)
    })?;
    let remote = RemoteRegistry::open(url, dir.path()).map_err(|e| error(e, Exit::Usage))?;
    let synced = remote.sync().await.map_err(|e| error(unreachable(e), Exit::TaskFailed))?;
    for p in &synced.problems {
        errln!("warning: {p}");
    }
    Ok(Mirrored { remote, _dir: dir })
}

/// [`open`] on a runtime of its own, for the synchronous `dagrun models` commands.
pub fn open_blocking(url: &RemoteUrl) -> Result<(tokio::runtime::Runtime, Mirrored), Exit> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error(format!("cannot start the runtime: {e}"), Exit::Internal))?;
    let mirrored = rt.block_on(open(url))?;
    Ok((rt, mirrored))
}

/// Publishes a change made in the mirror (a rollback): a lost race is exit 1 with what is
/// current now; nothing is overwritten.
pub fn publish(rt: &tokio::runtime::Runtime, m: &Mirrored) -> Result<(), Exit> {
    rt.block_on(m.remote.publish()).map(drop).map_err(|e| match e {
        e @ dagrun_remote::RemoteError::LostRace { .. } => error(e, Exit::TaskFailed),
        e => error(unreachable(e), Exit::TaskFailed),
    })
}

/// Keeps `serve`'s mirror in step: every `every`, one HEAD per model (its `current`'s ETag);
/// a change syncs the new version down, and the server's own look at `current` swaps it in.
/// Without `names`, a full sync every 15 polls also picks up new models.
pub async fn follow(remote: RemoteRegistry, names: Vec<String>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let watched = if names.is_empty() { dagrun_contracts::registry::names(remote.mirror()) } else { names.clone() };
        let result = if names.is_empty() && n.is_multiple_of(15) {
            remote.sync().await.map(Some)
        } else {
            poll_all(&remote, &watched).await
        };
        match result {
            Ok(Some(synced)) => synced.problems.iter().for_each(|p| errln!("warning: {p}")),
            Ok(None) => {}
            Err(e) => errln!("warning: {} (still serving what was loaded)", unreachable(e)),
        }
    }
}

async fn poll_all(
    remote: &RemoteRegistry,
    names: &[String],
) -> Result<Option<dagrun_remote::Synced>, dagrun_remote::RemoteError> {
    for name in names {
        if let Some(s) = remote.poll(name).await? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

fn unreachable(e: dagrun_remote::RemoteError) -> String {
    match e {
        e @ dagrun_remote::RemoteError::Request { .. } => format!(
            "{e} (check that the bucket exists and that AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY reach it)"
        ),
        e => e.to_string(),
    }
}
