//! The `procs/` records of running process groups, from which a run kills (reaps) the commands
//! left running by a dagrun that was killed with SIGKILL.
//!
//! One file per dagrun process, `procs/dagrun-<pid>`, with one fixed-width slot per command
//! running at once: its process group id, or blanks once it has ended. A slot is rewritten in
//! place with one 16-byte write that never crosses a page, so a killed dagrun leaves it whole,
//! and a command costs no file created and deleted. The file is removed when no command runs
//! and no run holds it ([`hold`]). A file `procs/<pgid>` holding the pid of its dagrun is what
//! older versions wrote: such files are reaped too.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::process::group as process_group;

/// Bytes per slot: a page holds a whole number of them.
const SLOT: usize = 16;

/// This process's record in one `procs/` directory.
#[derive(Debug)]
struct Table {
    dir: PathBuf,
    file: Option<File>,
    used: Vec<bool>,
    /// Runs using the directory: the file is kept while there are any.
    holders: usize,
}

static TABLES: Mutex<Vec<Table>> = Mutex::new(Vec::new());

fn tables() -> MutexGuard<'static, Vec<Table>> {
    TABLES.lock().unwrap_or_else(|e| e.into_inner())
}

fn table<'a>(tables: &'a mut Vec<Table>, dir: &Path) -> &'a mut Table {
    let i = match tables.iter().position(|t| t.dir == dir) {
        Some(i) => i,
        None => {
            tables.push(Table { dir: dir.to_owned(), file: None, used: Vec::new(), holders: 0 });
            tables.len() - 1
        }
    };
    &mut tables[i]
}

fn own_file(dir: &Path) -> PathBuf {
    dir.join(format!("dagrun-{}", std::process::id()))
}

impl Table {
    /// Removes the file once nothing needs it.
    fn release(&mut self) {
        if self.holders == 0 && !self.used.contains(&true) && self.file.take().is_some() {
            let _ = std::fs::remove_file(own_file(&self.dir));
            self.used.clear();
        }
    }

    /// Opens the file, first killing what a dead process with this pid left in it.
    fn open(&mut self) -> std::io::Result<&File> {
        if self.file.is_none() {
            dagrun_cache::ensure_dir(&self.dir)?;
            let path = own_file(&self.dir);
            let mut file = File::options().read(true).write(true).create(true).truncate(false).open(&path)?;
            let mut stale = String::new();
            let _ = file.read_to_string(&mut stale);
            kill_groups(&stale);
            file.set_len(0)?;
            self.file = Some(file);
        }
        Ok(self.file.as_ref().expect("opened"))
    }
}

/// Keeps this process's record in `dir` while a run starts commands (so that it is created and
/// removed once per run, not once per command).
pub(crate) fn hold(dir: &Path) -> Hold {
    table(&mut tables(), dir).holders += 1;
    Hold(dir.to_owned())
}

/// See [`hold`].
#[derive(Debug)]
pub(crate) struct Hold(PathBuf);

impl Drop for Hold {
    fn drop(&mut self) {
        let mut tables = tables();
        let t = table(&mut tables, &self.0);
        t.holders = t.holders.saturating_sub(1);
        t.release();
    }
}

/// Records process group `pgid` in `dir` until the returned record is dropped. `None` when it
/// cannot be recorded (best effort: the command runs anyway).
pub(crate) fn record(dir: &Path, pgid: u32) -> Option<Record> {
    let mut tables = tables();
    let t = table(&mut tables, dir);
    let slot = t.used.iter().position(|u| !u).unwrap_or(t.used.len());
    let file = t.open().ok()?;
    write_slot(file, slot, &format!("{pgid:>width$}\n", width = SLOT - 1)).ok()?;
    if slot == t.used.len() {
        t.used.push(true);
    } else {
        t.used[slot] = true;
    }
    Some(Record { dir: dir.to_owned(), slot })
}

/// A recorded process group ([`record`]); its slot is blanked when dropped.
#[derive(Debug)]
pub(crate) struct Record {
    dir: PathBuf,
    slot: usize,
}

impl Drop for Record {
    fn drop(&mut self) {
        let mut tables = tables();
        let t = table(&mut tables, &self.dir);
        if let Some(file) = &t.file {
            let _ = write_slot(file, self.slot, &format!("{:width$}\n", "", width = SLOT - 1));
        }
        if let Some(u) = t.used.get_mut(self.slot) {
            *u = false;
        }
        t.release();
    }
}

#[cfg(unix)]
fn write_slot(file: &File, slot: usize, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(text.as_bytes(), (slot * SLOT) as u64)
}

#[cfg(not(unix))]
fn write_slot(_file: &File, _slot: usize, _text: &str) -> std::io::Result<()> {
    Ok(())
}

/// Kills every process group listed in `text` (one per line; blank lines are free slots).
fn kill_groups(text: &str) {
    for pgid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        process_group::kill(Some(pgid));
    }
}

/// Kills process groups left running by a dagrun that died without cleaning up (`kill -9`).
/// Returns how many records were reaped.
pub fn reap_orphans(procs: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(procs) else { return 0 };
    let mut reaped = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        // `dagrun-<owner pid>` lists groups; `<pgid>` (older versions) holds its owner's pid.
        let (owner, groups) = match name.strip_prefix("dagrun-") {
            Some(owner) => (owner.parse::<u32>().ok(), text),
            None if name.parse::<u32>().is_ok() => (text.trim().parse::<u32>().ok(), name.to_owned()),
            None => continue,
        };
        let Some(owner) = owner else { continue };
        if !process_group::alive(owner) {
            kill_groups(&groups);
            let _ = std::fs::remove_file(e.path());
            reaped += 1;
        }
    }
    reaped
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_the_file_goes_when_nothing_needs_it() {
        // Groups above the kernel's pid limit (2^22): nothing real is ever signalled.
        let dir = tempfile::tempdir().unwrap();
        let procs = dir.path().join("procs");
        let path = own_file(&procs);
        let held = hold(&procs);
        let a = record(&procs, 4_200_001).unwrap();
        let b = record(&procs, 4_200_002).unwrap();
        drop(a);
        let c = record(&procs, 4_200_003).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{:>15}\n{:>15}\n", 4_200_003, 4_200_002), "the freed slot is reused");
        drop((b, c));
        assert!(path.exists(), "kept while a run holds it");
        drop(held);
        assert!(!path.exists(), "removed when no command runs and no run holds it");
        drop(record(&procs, 4_200_004).unwrap());
        assert!(!path.exists(), "without a run, removed with its last command");
    }

    #[test]
    fn records_of_dead_dagruns_are_reaped_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        // Pids and groups that no process has: above the kernel's limit (2^22).
        let dead = 4_194_305u32;
        std::fs::write(dir.path().join(format!("dagrun-{dead}")), format!("{:>15}\n{:15}\n", 4_200_005, "")).unwrap();
        std::fs::write(dir.path().join("4200006"), dead.to_string()).unwrap();
        // This process is alive: its record stays.
        std::fs::write(dir.path().join(format!("dagrun-{}", std::process::id())), "").unwrap();
        assert_eq!(reap_orphans(dir.path()), 2);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from(format!("dagrun-{}", std::process::id()))]);
    }
}
