//! Notifications as the CLI shows them: the one line about what was left undelivered after a
//! run (delivered by `dagrun_automate::trigger::run_here` within a time budget, never touching
//! the run's exit code); the runs with undelivered
//! notifications under `dagrun runs`; and the `dagrun runs --notifications` list.

use std::collections::BTreeMap;

use dagrun_cache::Store;
use dagrun_history::{Delivery, DeliveryState, History};
use dagrun_notify::{MAX_ATTEMPTS, Summary};
use dagrun_workflow::heal::NotifyDef;

use crate::exit::Exit;
use crate::printer::outln;

/// `notifications: 2 delivered, 1 not yet (WHY; ...)`, or nothing when all went out.
pub(crate) fn summary_line(s: &Summary) -> Option<String> {
    if s.attempted() == 0
        && let Some(e) = &s.store_error
    {
        return Some(format!("notifications: none delivered: {e}"));
    }
    let later = s.retrying + s.not_attempted;
    if later + s.gave_up == 0 {
        return None;
    }
    let mut counts = vec![format!("{} delivered", s.delivered)];
    if later > 0 {
        counts.push(format!("{later} not yet"));
    }
    if s.gave_up > 0 {
        counts.push(format!("{} given up after {MAX_ATTEMPTS} attempts", s.gave_up));
    }
    let why = s.errors.first().map_or("the time for notifications after a run ran out", |(_, e)| e.as_str());
    let retry = if later > 0 { "; retried by the daemon or the next run" } else { "" };
    let them = if later + s.gave_up == 1 { "it" } else { "them" };
    Some(format!("notifications: {} ({why}{retry}; `dagrun runs --notifications` lists {them})", counts.join(", ")))
}

/// The history store of `store`'s directory, if it was ever created (read-only commands never
/// create one).
fn open(store: &Store) -> Result<Option<History>, Exit> {
    if !store.root().join(dagrun_history::FILE_NAME).exists() {
        return Ok(None);
    }
    History::open(store.root())
        .map(Some)
        .map_err(|e| crate::commands::error(format!("cannot read the history: {e}"), Exit::Internal))
}

/// Rows looked at for `dagrun runs`' mentions.
const MENTION_LIMIT: usize = 1_000;

/// Under `dagrun runs`: a line per listed run with undelivered notifications, and one for the
/// others.
pub(crate) fn mention_undelivered(store: &Store, run_ids: &[&str]) -> Result<(), Exit> {
    let Some(history) = open(store)? else { return Ok(()) };
    let rows = history.undelivered(None, MENTION_LIMIT).map_err(|e| crate::commands::error(e, Exit::Internal))?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut by_run: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    let mut others = 0;
    for d in &rows {
        match d.notification.run_id.as_deref().filter(|r| run_ids.contains(r)) {
            Some(r) => by_run.entry(r).or_default().push(d),
            None => others += 1,
        }
    }
    outln!("");
    for id in run_ids {
        let Some(ds) = by_run.get(id) else { continue };
        let why = ds.iter().find_map(|d| d.last_error.as_deref()).unwrap_or("not tried yet");
        outln!("run {id}: {} not delivered ({why})", count(ds.len()));
    }
    if others > 0 {
        let more = if rows.len() == MENTION_LIMIT { " or more" } else { "" };
        outln!("{}{more} of other runs or events not delivered", count(others));
    }
    outln!("(`dagrun runs --notifications` lists every undelivered notification)");
    Ok(())
}

fn count(n: usize) -> String {
    if n == 1 { "1 notification".to_owned() } else { format!("{n} notifications") }
}

/// `dagrun runs --notifications`: undelivered notifications, newest first.
pub(crate) fn list(store: &Store, limit: usize, json: bool) -> Result<Exit, Exit> {
    let rows = match open(store)? {
        Some(h) => h.undelivered(None, limit).map_err(|e| crate::commands::error(e, Exit::Internal))?,
        None => Vec::new(),
    };
    if json {
        for d in &rows {
            outln!("{}", serde_json::to_string(&Row::of(d)).expect("serializes"));
        }
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        outln!("no undelivered notifications");
        return Ok(Exit::Success);
    }
    let sinks: Vec<String> = rows.iter().map(|d| sink(&d.sink)).collect();
    let width = sinks.iter().map(String::len).max().unwrap_or(4).max(4);
    outln!(
        "{:>5}  {:17}  {:width$}  {:>8}  {:21}  {:21}  last error",
        "id",
        "event",
        "sink",
        "attempts",
        "next try",
        "run"
    );
    for (d, sink) in rows.iter().zip(&sinks) {
        let next = match d.state {
            DeliveryState::Failed => "given up".to_owned(),
            _ => crate::daemon::when(d.next_ms),
        };
        outln!(
            "{:>5}  {:17}  {sink:width$}  {:>8}  {next:21}  {:21}  {}",
            d.id,
            d.notification.event.as_str(),
            d.attempts,
            d.notification.run_id.as_deref().unwrap_or("-"),
            d.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(Exit::Success)
}

/// `slack $SLACK_WEBHOOK_URL`, `command ./page.sh`.
fn sink(s: &NotifyDef) -> String {
    match s {
        NotifyDef::Slack(s) => format!("slack ${}", s.webhook_env),
        NotifyDef::Webhook(w) => format!("webhook ${}", w.url_env),
        NotifyDef::Command(c) => {
            let run: String = c.run.chars().take(30).collect();
            format!("command {run}{}", if run.len() < c.run.len() { "…" } else { "" })
        }
    }
}

/// A line of `dagrun runs --notifications --json`.
#[derive(serde::Serialize)]
struct Row<'a> {
    id: i64,
    event: &'static str,
    workflow: &'a str,
    run_id: Option<&'a str>,
    title: &'a str,
    sink: &'static str,
    state: DeliveryState,
    attempts: u32,
    next_ms: Option<i64>,
    last_error: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn of(d: &'a Delivery) -> Row<'a> {
        let n = &d.notification;
        Row {
            id: d.id,
            event: n.event.as_str(),
            workflow: &n.workflow,
            run_id: n.run_id.as_deref(),
            title: &n.title,
            sink: d.sink.label(),
            state: d.state,
            attempts: d.attempts,
            next_ms: (d.state == DeliveryState::Pending).then_some(d.next_ms),
            last_error: d.last_error.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_says_what_is_left_and_why() {
        let mut s = Summary { delivered: 2, retrying: 1, ..Summary::default() };
        s.errors.push(("webhook", "POST to $HOOK_URL (127.0.0.1:9): HTTP 500".into()));
        assert_eq!(
            summary_line(&s).unwrap(),
            "notifications: 2 delivered, 1 not yet (POST to $HOOK_URL (127.0.0.1:9): HTTP 500; retried by the \
             daemon or the next run; `dagrun runs --notifications` lists it)"
        );
        let s = Summary { delivered: 3, ..Summary::default() };
        assert_eq!(summary_line(&s), None);
        let s = Summary { not_attempted: 2, gave_up: 0, ..Summary::default() };
        assert!(summary_line(&s).unwrap().contains("0 delivered, 2 not yet (the time for notifications"));
        let mut s = Summary { gave_up: 1, ..Summary::default() };
        s.errors.push(("slack", "x".into()));
        assert_eq!(
            summary_line(&s).unwrap(),
            "notifications: 0 delivered, 1 given up after 12 attempts (x; `dagrun runs --notifications` lists it)"
        );
    }
}
