//! The command sink: `sh -c RUN` in the workflow's directory, the webhook JSON on its stdin,
//! `DAGRUN_EVENT`, `DAGRUN_WORKFLOW` and `DAGRUN_RUN_ID` in its environment. Exit 0 is
//! delivered; anything else fails with the first line of its stderr. On a timeout the whole
//! process group is killed.

use dagrun_exec::process::group as process_group;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use dagrun_history::Notification;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{AttemptError, first_line, secs};

/// Stderr kept to find the first line.
const STDERR_MAX: u64 = 8 * 1024;

/// Runs `run` for `n` within `limit`.
pub(crate) async fn run(
    run: &str,
    dir: &Path,
    n: &Notification,
    body: String,
    limit: Duration,
) -> Result<(), AttemptError> {
    let fail = |why: String| AttemptError::Command { command: first_line(run, 60), why };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(run)
        .current_dir(dir)
        .env("DAGRUN_EVENT", n.event.as_str())
        .env("DAGRUN_WORKFLOW", &n.workflow)
        .env("DAGRUN_RUN_ID", n.run_id.as_deref().unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    process_group::configure(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot start in {}: {e}", dir.display())))?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let stderr = child.stderr.take();
    // Stderr is read on the side: a background process the command leaves holding it must
    // not keep the attempt waiting once the command itself has exited.
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(s) = stderr {
            let _ = s.take(STDERR_MAX).read_to_end(&mut buf).await;
        }
        buf
    });
    let waited = tokio::time::timeout(limit, async {
        if let Some(mut s) = stdin.take() {
            // A command that does not read its stdin closes the pipe: not an error.
            let _ = s.write_all(body.as_bytes()).await;
        }
        child.wait().await
    })
    .await;
    let status = match waited {
        Err(_) => {
            process_group::kill(pid);
            reader.abort();
            return Err(fail(format!("timed out after {}", secs(limit))));
        }
        Ok(Err(e)) => return Err(fail(format!("could not be waited for: {e}"))),
        Ok(Ok(status)) => status,
    };
    if status.success() {
        reader.abort();
        return Ok(());
    }
    let stderr = tokio::time::timeout(Duration::from_millis(200), reader).await.ok().and_then(Result::ok);
    let line = stderr.map(|b| first_line(&String::from_utf8_lossy(&b), 200)).unwrap_or_default();
    let how = match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(fail(if line.is_empty() { how } else { format!("{how}: {line}") }))
}
