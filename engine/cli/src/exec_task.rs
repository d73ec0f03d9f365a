//! `dagrun exec-task`: what a remote job (Slurm, Ray) runs. Parses, calls
//! [`dagrun_exec::exec_task`], prints the task's log on stdout (the job's log) and one line on
//! stderr saying what happened.

use dagrun_exec::{Cancel, ExecTaskError, RemoteUrl};

use crate::exit::Exit;
use crate::printer::{errln, outln};

/// Runs the task stored under `key` in the remote cache `url` and publishes its outputs.
pub fn exec_task(url: &str, key: &str) -> Result<Exit, Exit> {
    let url: RemoteUrl =
        url.parse().map_err(|e| crate::commands::error(format!("invalid --remote-cache: {e}"), Exit::Usage))?;
    let cancel = Cancel::new();
    let scratch = std::env::temp_dir();
    let result = crate::run::interruptible(&cancel, dagrun_exec::exec_task(&url, key, &scratch, &cancel))?;
    match result {
        Ok(r) => {
            print_log(&r.log);
            let how = match r.published {
                dagrun_exec::Published::Created => "published",
                dagrun_exec::Published::Existing => "already published by another run; left as it was",
            };
            errln!(
                "dagrun exec-task: `{}` ran in {} ms; its outputs under key {} are {how} in {url}",
                r.instance,
                r.duration_ms,
                r.key.0.short()
            );
            Ok(Exit::Success)
        }
        Err(ExecTaskError::Task { task, message, log }) => {
            print_log(&log);
            errln!("dagrun exec-task: task `{task}` failed: {message}");
            Err(if cancel.is_cancelled() { Exit::Interrupted } else { Exit::TaskFailed })
        }
        Err(e @ ExecTaskError::Key(_)) => Err(crate::commands::error(format!("dagrun exec-task: {e}"), Exit::Usage)),
        Err(e) => Err(crate::commands::error(format!("dagrun exec-task: {e}"), Exit::Internal)),
    }
}

fn print_log(log: &str) {
    if !log.is_empty() {
        outln!("{}", log.trim_end_matches('\n'));
    }
}
