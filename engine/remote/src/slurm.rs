//! Slurm through its command-line tools: `sbatch --parsable` submits, `scontrol show job -o`
//! polls, `scancel` cancels. The tools find the cluster as they always do (`SLURM_CONF`,
//! `/etc/slurm/slurm.conf`); the job inherits the submitting process's environment
//! (`--export=ALL`), so secrets never appear on a command line.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::jobs::{ExecutorError, JobState};

/// What to submit.
#[derive(Debug, Clone, Default)]
pub struct SlurmJob {
    /// `--job-name`.
    pub name: String,
    /// The command line the job runs (`--wrap`, a shell command).
    pub command: String,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, in bytes (rounded up to MiB).
    pub mem_bytes: Option<u64>,
    /// `--time`, as `D-HH:MM:SS`.
    pub time: Option<String>,
    /// Further arguments, as given.
    pub extra: Vec<String>,
    /// `--output`: where the job's stdout and stderr go (on the node that runs it).
    pub output: PathBuf,
}

impl SlurmJob {
    /// The `sbatch` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", self.name),
            format!("--output={}", self.output.display()),
            "--export=ALL".to_owned(),
        ];
        if let Some(p) = &self.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(c) = self.cpus {
            a.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = self.mem_bytes {
            a.push(format!("--mem={}M", m.div_ceil(1 << 20).max(1)));
        }
        if let Some(t) = &self.time {
            a.push(format!("--time={t}"));
        }
        a.extend(self.extra.iter().cloned());
        a.push(format!("--wrap={}", self.command));
        a
    }
}

/// Runs a Slurm tool: its stdout, or its stderr as the error.
async fn tool(program: &str, args: &[String], what: &str) -> Result<String, ExecutorError> {
    let run = Command::new(program).args(args).kill_on_drop(true).output();
    let out = match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Err(ExecutorError::Tool {
                what: what.to_owned(),
                message: format!(
                    "cannot run `{program}`: {e}; install the Slurm client tools (slurm-client) or add them to PATH"
                ),
            });
        }
        Err(_) => {
            return Err(ExecutorError::Tool {
                what: what.to_owned(),
                message: format!("`{program}` did not answer within 60 s"),
            });
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let message = if stderr.is_empty() { format!("`{program}` failed ({})", out.status) } else { stderr };
    Err(ExecutorError::Tool { what: what.to_owned(), message })
}

/// Submits the job; its id.
pub async fn submit(job: &SlurmJob) -> Result<String, ExecutorError> {
    let out = tool("sbatch", &job.args(), "submitting the Slurm job").await.map_err(|e| match e {
        ExecutorError::Tool { message, .. } => ExecutorError::Refused { executor: "Slurm", message },
        e => e,
    })?;
    // `--parsable`: `<id>` or `<id>;<cluster>`.
    let id = out.lines().last().unwrap_or("").split(';').next().unwrap_or("").trim().to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return Err(ExecutorError::Refused {
            executor: "Slurm",
            message: format!("sbatch printed no job id: {out:?}"),
        });
    }
    Ok(id)
}

/// The job's state now (`scontrol show job -o ID`). A job Slurm no longer knows (past
/// `MinJobAge`) is [`JobState::Gone`].
pub async fn state(id: &str) -> Result<JobState, ExecutorError> {
    let args = ["show".to_owned(), "job".to_owned(), "-o".to_owned(), id.to_owned()];
    match tool("scontrol", &args, &format!("polling Slurm job {id}")).await {
        Ok(text) => Ok(parse_state(&text)),
        Err(ExecutorError::Tool { message, .. }) if message.contains("Invalid job id") => Ok(JobState::Gone),
        Err(e) => Err(e),
    }
}

/// Reads `JobState=`, `Reason=` and `ExitCode=` from one line of `scontrol show job -o`.
pub fn parse_state(text: &str) -> JobState {
    let field = |name: &str| {
        text.split_whitespace().find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('='))).unwrap_or("")
    };
    let state = field("JobState");
    let detail = format!("JobState={state} Reason={} ExitCode={}", field("Reason"), field("ExitCode"));
    match state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" | "SUSPENDED" => JobState::Pending,
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "RESIZING" | "SIGNALING" => JobState::Running,
        "COMPLETED" => JobState::Succeeded,
        "CANCELLED" => JobState::Cancelled { detail },
        "" => JobState::Gone,
        _ => JobState::Failed { detail },
    }
}

/// Cancels the job (`scancel ID`).
pub async fn cancel(id: &str) -> Result<(), ExecutorError> {
    tool("scancel", &[id.to_owned()], &format!("cancelling Slurm job {id}")).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_of_a_job() {
        let line = "JobId=7 JobName=x UserId=root(0) JobState=CANCELLED Reason=None Dependency=(null) ExitCode=0:15";
        assert_eq!(
            parse_state(line),
            JobState::Cancelled { detail: "JobState=CANCELLED Reason=None ExitCode=0:15".into() }
        );
        assert_eq!(parse_state("JobId=7 JobState=RUNNING Reason=None"), JobState::Running);
        assert_eq!(parse_state("JobId=7 JobState=PENDING Reason=Resources"), JobState::Pending);
        assert_eq!(parse_state("JobId=7 JobState=COMPLETED ExitCode=0:0"), JobState::Succeeded);
        assert!(matches!(parse_state("JobId=7 JobState=NODE_FAIL"), JobState::Failed { .. }));
    }

    #[test]
    fn the_arguments_carry_resources_and_no_environment_values() {
        let job = SlurmJob {
            name: "dagrun-train".into(),
            command: "exec dagrun exec-task".into(),
            partition: Some("gpu".into()),
            cpus: Some(8),
            mem_bytes: Some(32 << 30),
            time: Some("0-02:00:00".into()),
            extra: vec!["--gres=gpu:1".into()],
            output: "/tmp/x.log".into(),
        };
        let a = job.args().join(" ");
        assert_eq!(
            a,
            "--parsable --job-name=dagrun-train --output=/tmp/x.log --export=ALL --partition=gpu --cpus-per-task=8 \
             --mem=32768M --time=0-02:00:00 --gres=gpu:1 --wrap=exec dagrun exec-task"
        );
    }
}
