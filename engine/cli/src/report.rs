//! `dagrun report`: which history and window (arguments), the history store brought up to date
//! with the run records, the report from `dagrun-history`, rendered by `dagrun-report`.

use std::path::{Path, PathBuf};

use dagrun_cache::Store;
use dagrun_history::{History, Report, ReportQuery};

use crate::args::{ReportArgs, ReportFormat};
use crate::commands::{durability, error, prepare_error, state_dir};
use crate::exit::Exit;
use crate::printer::errln;

/// What `WORKFLOW` named.
enum Scope {
    /// Every workflow of the state directory.
    All,
    /// A workflow file: its name and its current estimate.
    File { name: String, manual_minutes: Option<u32> },
    /// A workflow name, to be found in the history.
    Name(String),
}

pub fn report(args: &ReportArgs) -> Result<Exit, Exit> {
    let window = since_ms(&args.since)?;
    let (scope, dir) = scope(args)?;
    let now = now_ms();
    let (workflow, manual_minutes) = match &scope {
        Scope::All => (None, None),
        Scope::File { name, manual_minutes } => (Some(name.clone()), *manual_minutes),
        Scope::Name(name) => (Some(name.clone()), None),
    };
    let q = ReportQuery { workflow, since_ms: now.saturating_sub(window), until_ms: now, manual_minutes };
    let report = match Store::open_existing(&dir, durability()) {
        Ok(Some(store)) => from_store(&store, &scope, &q)?,
        Ok(None) if matches!(scope, Scope::Name(_)) => {
            let name = q.workflow.as_deref().unwrap_or_default();
            return Err(error(
                format!("unknown workflow `{name}`: no state directory at {}", dir.display()),
                Exit::Usage,
            ));
        }
        Ok(None) => dagrun_history::report::compute(&Default::default(), &q),
        Err(e) => return Err(error(format!("cannot open state directory {}: {e}", dir.display()), Exit::Internal)),
    };
    let text = match args.format {
        ReportFormat::Table => dagrun_report::table(&report),
        ReportFormat::Json => dagrun_report::json(&report),
        ReportFormat::Html => dagrun_report::html(&report),
    };
    match &args.out {
        None => crate::printer::out(format_args!("{text}")),
        Some(out) => {
            crate::export::write_atomic(out, &text)
                .map_err(|why| error(format!("cannot write {}: {why}", out.display()), Exit::Internal))?;
            errln!("wrote {}", out.display());
        }
    }
    Ok(Exit::Success)
}

/// The history store of `store`, up to date with its run records (unreadable ones named).
fn from_store(store: &Store, scope: &Scope, q: &ReportQuery) -> Result<Report, Exit> {
    let fail = |e: dagrun_history::HistoryError| error(e, Exit::Internal);
    let history = History::open(store.root()).map_err(fail)?;
    let synced = dagrun_exec::sync_history(store, &history).map_err(fail)?;
    for s in &synced.skipped {
        errln!("warning: run record {} left out of the report: {}", s.path, s.reason);
    }
    if let Scope::Name(name) = scope {
        let known = history.workflows().map_err(fail)?;
        if !known.contains(name) {
            let listed = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Err(error(
                format!(
                    "unknown workflow `{name}`: the history in {} has runs of: {listed} (give a workflow name or file)",
                    store.root().display()
                ),
                Exit::Usage,
            ));
        }
    }
    history.report(q).map_err(fail)
}

/// `WORKFLOW` as a file, a name or nothing; and the state directory to read.
fn scope(args: &ReportArgs) -> Result<(Scope, PathBuf), Exit> {
    let Some(w) = &args.workflow else { return Ok((Scope::All, state_dir(&args.state, None))) };
    if w.is_file() {
        let opts = dagrun_workflow::LoadOptions { check_env: false };
        let (wf, _) = dagrun_exec::load_workflow_with(w, opts).map_err(prepare_error)?;
        let scope = Scope::File { name: wf.name, manual_minutes: wf.manual_minutes };
        return Ok((scope, state_dir(&args.state, Some(w))));
    }
    let text = w.to_string_lossy();
    if looks_like_a_path(w) {
        return Err(error(
            format!("no workflow file {text} (give an existing .ron file, or a workflow name)"),
            Exit::Usage,
        ));
    }
    Ok((Scope::Name(text.into_owned()), state_dir(&args.state, None)))
}

fn looks_like_a_path(w: &Path) -> bool {
    w.components().count() > 1 || w.extension().is_some()
}

/// `--since` in ms: a duration (`30d`, `12h`, `90m`) or weeks (`2w`).
fn since_ms(text: &str) -> Result<i64, Exit> {
    let bad = |why: &str| error(format!("--since {text}: {why} (give a duration like 30d, 12h or 2w)"), Exit::Usage);
    let d = match text.trim().strip_suffix('w') {
        Some(n) => {
            let weeks: f64 = n.parse().map_err(|_| bad("not a number"))?;
            dagrun_workflow::duration::parse(&format!("{}d", weeks * 7.0)).map_err(bad)?
        }
        None => dagrun_workflow::duration::parse(text).map_err(bad)?,
    };
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_weeks() {
        assert_eq!(since_ms("30d").ok(), Some(30 * 86_400_000));
        assert_eq!(since_ms("2w").ok(), Some(14 * 86_400_000));
        assert_eq!(since_ms("12h").ok(), Some(12 * 3_600_000));
        assert!(since_ms("soon").is_err() && since_ms("0d").is_err() && since_ms("xw").is_err());
    }

    #[test]
    fn a_name_is_not_a_path() {
        assert!(!looks_like_a_path(Path::new("retrain")));
        assert!(looks_like_a_path(Path::new("retrain.ron")) && looks_like_a_path(Path::new("wf/retrain")));
    }
}
