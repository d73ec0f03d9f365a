//! One interface over the two clusters: submit a command, poll, cancel, read the job's log.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dagrun_remote::ray::{RayClient, RayJob};
use dagrun_remote::slurm::{self, SlurmJob};
use dagrun_remote::{ExecutorError, JobState};
use dagrun_workflow::executor::{ExecutorDef, slurm_time};
use dagrun_workflow::{duration, size};

/// A cluster dagrun submits to.
#[derive(Debug)]
pub(crate) enum Backend {
    Slurm(dagrun_workflow::executor::SlurmDef),
    Ray(dagrun_workflow::executor::RayDef, RayClient),
}

/// A submitted job.
#[derive(Debug, Clone)]
pub(crate) struct Submitted {
    /// The cluster's id.
    pub id: String,
    /// Slurm: where its output goes.
    pub output: Option<PathBuf>,
}

impl Backend {
    /// The backend of a remote executor (`None` for `Local`).
    pub(crate) fn of(e: &ExecutorDef) -> Result<Option<Backend>, ExecutorError> {
        Ok(match e {
            ExecutorDef::Local => None,
            ExecutorDef::Slurm(s) => Some(Backend::Slurm((**s).clone())),
            ExecutorDef::Ray(r) => Some(Backend::Ray((**r).clone(), RayClient::new(&r.address)?)),
        })
    }

    /// `Slurm` or `Ray`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Slurm(_) => "Slurm",
            Backend::Ray(..) => "Ray",
        }
    }

    /// Submits `command` (a shell command line). `name`: a readable job name, unique per
    /// submission; `output`: Slurm's output file; `env`: variables a Ray job gets (a Slurm job
    /// inherits this process's environment).
    pub(crate) async fn submit(
        &self,
        name: &str,
        command: &str,
        output: PathBuf,
        env: BTreeMap<String, String>,
    ) -> Result<Submitted, ExecutorError> {
        match self {
            Backend::Slurm(s) => {
                let job = SlurmJob {
                    name: name.to_owned(),
                    command: command.to_owned(),
                    partition: s.partition.clone(),
                    cpus: s.cpus,
                    mem_bytes: s.mem.as_deref().and_then(|m| size::parse(m).ok()),
                    time: s.time.as_deref().and_then(|t| duration::parse(t).ok()).map(slurm_time),
                    extra: s.sbatch_args.clone(),
                    output: output.clone(),
                };
                let id = slurm::submit(&job).await?;
                Ok(Submitted { id, output: Some(output) })
            }
            Backend::Ray(r, client) => {
                let job = RayJob {
                    submission_id: name.to_owned(),
                    entrypoint: command.to_owned(),
                    num_cpus: r.num_cpus,
                    num_gpus: r.num_gpus,
                    memory: r.memory.as_deref().and_then(|m| size::parse(m).ok()),
                    env,
                    metadata: BTreeMap::from([("dagrun".to_owned(), "exec-task".to_owned())]),
                };
                let id = client.submit(&job).await?;
                Ok(Submitted { id, output: None })
            }
        }
    }

    /// The job's state now.
    pub(crate) async fn state(&self, job: &Submitted) -> Result<JobState, ExecutorError> {
        match self {
            Backend::Slurm(_) => slurm::state(&job.id).await,
            Backend::Ray(_, client) => client.state(&job.id).await,
        }
    }

    /// Asks the cluster to cancel the job.
    pub(crate) async fn cancel(&self, job: &Submitted) -> Result<(), ExecutorError> {
        match self {
            Backend::Slurm(_) => slurm::cancel(&job.id).await,
            Backend::Ray(_, client) => client.stop(&job.id).await.map(|_| ()),
        }
    }

    /// The job's log (best effort: what could be read).
    pub(crate) async fn log(&self, job: &Submitted) -> String {
        match self {
            Backend::Slurm(_) => job
                .output
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| "[dagrun: the job's output file could not be read here]\n".into()),
            Backend::Ray(_, client) => client
                .logs(&job.id)
                .await
                .unwrap_or_else(|e| format!("[dagrun: the job's log could not be read: {e}]\n")),
        }
    }
}
