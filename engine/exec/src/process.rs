//! Process groups of the commands dagrun starts (tasks, notification commands): a command
//! leads its own group, so a timeout or Ctrl-C kills everything it started.

#[cfg(unix)]
#[allow(unsafe_code)]
pub mod group {
    use tokio::process::Command;

    /// Puts the shell in its own process group (so a timeout or Ctrl-C kills everything it
    /// started). No `pre_exec` hook: that would force fork+exec instead of the much cheaper
    /// posix_spawn. Orphans of a dagrun killed with SIGKILL are reaped by the next run.
    pub fn configure(cmd: &mut Command) {
        cmd.process_group(0);
    }

    /// Kills the whole process group led by `pid`.
    pub fn kill(pid: Option<u32>) {
        // Never 0 or 1 (as -0 and -1 would signal this group or every process we may signal).
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }

    /// Whether a process with this pid exists and has not died: a dagrun killed with
    /// `kill -9` stays a zombie until its parent reaps it, and signal 0 still reaches a zombie.
    pub fn alive(pid: u32) -> bool {
        let Ok(pid) = i32::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks for existence; no memory involved.
        if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
            return false;
        }
        // `/proc/<pid>/stat` is `pid (comm) STATE ...`; comm may contain spaces and `)`.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_none_or(|s| s != "Z" && s != "X"),
            Err(_) => true,
        }
    }
}

#[cfg(not(unix))]
pub mod group {
    use tokio::process::Command;

    pub fn configure(_cmd: &mut Command) {}

    pub fn kill(_pid: Option<u32>) {}

    pub fn alive(_pid: u32) -> bool {
        true
    }
}
