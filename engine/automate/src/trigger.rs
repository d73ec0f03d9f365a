//! `dagrun trigger`: a manual event, written to the log like any other; a running daemon is
//! woken to run it, otherwise the caller runs it at once (and closes the event).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::log::{EventLog, LogError, NewEvent, Recorded, Source};

/// Whether `key` names a partition of every partition scheme the workflow's tasks use (what
/// a run over it needs); why not, otherwise.
pub fn check_partition(wf: &dagrun_workflow::Workflow, key: &str) -> Result<(), String> {
    let used = wf.used_schemes();
    if used.is_empty() {
        return Err(format!("workflow `{}` has no partitioned task: it takes no partition", wf.name));
    }
    for (name, scheme) in used {
        if scheme.find(key).is_none() {
            let hint = match scheme {
                dagrun_workflow::partition::Scheme::List(keys) => format!("its keys: {}", keys.join(", ")),
                dagrun_workflow::partition::Scheme::Time { .. } => {
                    "a date within its range, e.g. 2025-01-31, or an hour, e.g. 2025-01-31T05".to_owned()
                }
            };
            return Err(format!("`{key}` is not a partition of scheme `{name}` of workflow `{}` ({hint})", wf.name));
        }
    }
    Ok(())
}

/// Records a manual event for workflow `name` in the log of state directory `state`.
pub fn record_manual(
    state: &Path,
    name: &str,
    partition: Option<&str>,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<(EventLog, Recorded), LogError> {
    let log = EventLog::open(state)?;
    // Every `dagrun trigger` is an event of its own: the key only has to be unique.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let key = format!("manual:{now_ms}:{}:{nanos}", std::process::id());
    let detail = serde_json::json!({"reason": reason, "by": std::env::var("USER").ok()});
    let event = NewEvent {
        workflow: name.to_owned(),
        source: Source::Manual,
        key,
        partition: partition.map(str::to_owned),
        detail,
        at_ms: now_ms,
    };
    let r = log.record(&[event])?[0];
    Ok((log, r))
}

/// Asks the daemon listening at `addr` to look at the log now (`POST /v1/wake`). `false` when
/// it could not be reached: it still finds the event at its next wake-up.
pub fn wake(addr: &str) -> bool {
    let Ok(sock) = addr.parse::<std::net::SocketAddr>() else { return false };
    let Ok(mut s) = TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("POST /v1/wake HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 2")
}
