//! Remote execution: a task with a Slurm or Ray `executor` runs as a job on that cluster.
//! The local side ([`RemoteKind`]) ships the task's inputs and a [`spec::TaskSpec`] to the
//! remote cache, submits a job running `dagrun exec-task`, waits for it (cancelling it on
//! Ctrl-C or timeout), attaches its log, then pulls the entry the job published under the
//! task's key and restores the outputs like a cache hit. The worker side ([`exec_task`]) runs
//! the task with the same code as a local run. The key is the local one: running remotely
//! never changes what is cached.

mod backend;
mod spec;
mod submit;
mod worker;

use std::path::PathBuf;
use std::sync::OnceLock;

use dagrun_remote::{RemoteCache, RemoteUrl};

pub use spec::SPEC_VERSION;
pub(crate) use submit::RemoteKind;
pub use worker::{ExecTaskError, ExecTaskReport, exec_task};

/// A run's remote settings, connected on first use.
#[derive(Debug, Default)]
pub(crate) struct RemoteSetup {
    url: Option<RemoteUrl>,
    bin: Option<PathBuf>,
    cache: OnceLock<Result<RemoteCache, String>>,
}

impl RemoteSetup {
    /// `connected`: the run's remote cache client when it has one for the same location (the
    /// remote cache is on), so remote tasks share it instead of building a second client.
    pub(crate) fn new(url: Option<RemoteUrl>, bin: Option<PathBuf>, connected: Option<RemoteCache>) -> RemoteSetup {
        let cache = OnceLock::new();
        if let Some(c) = connected.filter(|c| Some(c.url()) == url.as_ref()) {
            let _ = cache.set(Ok(c));
        }
        RemoteSetup { url, bin, cache }
    }

    /// Whether a remote cache is configured.
    pub(crate) fn configured(&self) -> bool {
        self.url.is_some()
    }

    /// The remote cache, connected from the AWS environment on first use.
    pub(crate) fn cache(&self) -> Result<&RemoteCache, String> {
        self.cache
            .get_or_init(|| match &self.url {
                Some(url) => dagrun_remote::connect(url).map(RemoteCache::new).map_err(|e| e.to_string()),
                None => Err("no remote cache is configured".into()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The `dagrun` binary a job runs.
    pub(crate) fn bin(&self) -> PathBuf {
        self.bin.clone().or_else(|| std::env::current_exe().ok()).unwrap_or_else(|| PathBuf::from("dagrun"))
    }
}

/// `s` quoted for `sh`.
pub(crate) fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:+,@%".contains(&b)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(sh_quote("/usr/bin/dagrun"), "/usr/bin/dagrun");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
