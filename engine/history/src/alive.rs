//! Whether the process that ran a run is still there, to tell a run going on from one killed
//! mid-run (both have no end). A run records its process id and the process's start time
//! (Linux: field 22 of `/proc/PID/stat`, clock ticks since boot): a pid alone may have been
//! taken by another process since.

use std::path::Path;

/// The start time of process `pid` (clock ticks since boot), if it exists and `/proc` says.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and ')': the fields
    // after the last ')' start at field 3.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// This process: its pid and start time (`None` without `/proc`).
pub fn this_process() -> (u32, Option<u64>) {
    let pid = std::process::id();
    (pid, process_start(pid))
}

/// `Some(true)`: the process recorded (`pid` started at `started`) is running; `Some(false)`:
/// it is gone; `None`: nothing recorded, or no `/proc` to ask.
pub fn alive(pid: Option<u32>, started: Option<u64>) -> Option<bool> {
    let (pid, started) = (pid?, started?);
    if !Path::new("/proc/self/stat").exists() {
        return None;
    }
    Some(process_start(pid) == Some(started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_not() {
        let (pid, started) = this_process();
        assert!(started.is_some(), "Linux has /proc");
        assert_eq!(alive(Some(pid), started), Some(true));
        assert_eq!(alive(Some(pid), started.map(|s| s + 1)), Some(false), "the pid, but another process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_pid = child.id();
        let child_started = process_start(child_pid);
        child.wait().unwrap();
        assert_eq!(alive(Some(child_pid), child_started.or(Some(1))), Some(false), "reaped: gone");
        assert_eq!(alive(None, started), None, "nothing recorded: unknown");
    }
}
