//! The report as text for a terminal: the three payoff numbers first (time saved, time to
//! recovery after drift, deploys prevented), then the run numbers, per workflow and per model.

use std::fmt::Write;

use dagrun_history::Report;
use dagrun_history::report::{Recovery, Saved, Summary};

use crate::{duration, missed, percent, plural, trim, window};

/// The report as aligned text.
pub fn table(r: &Report) -> String {
    let mut o = String::new();
    let scope = r.workflow.as_deref().map_or_else(|| "all workflows".to_owned(), |w| format!("workflow {w}"));
    let _ = writeln!(o, "dagrun report: {scope}, {}", window(r));
    if r.total.runs == 0 && r.prevented.is_empty() && r.drift.incidents.is_empty() {
        let _ = writeln!(o, "\nno runs in the window");
        return o;
    }
    let _ = writeln!(o, "\nTime saved");
    saved(&mut o, &r.total.saved, "  ");
    let _ = writeln!(o, "\nTime to recovery after drift");
    recovery(&mut o, &r.drift, "  ");
    let _ = writeln!(o, "\nBad deploys prevented: {}", r.prevented.len());
    for b in &r.prevented {
        let how = missed(b).unwrap_or_else(|| b.reason.clone());
        let day = dagrun_history::report::utc_day(b.at_ms);
        let _ = writeln!(o, "  {day}  {:<8}  {}  {}  {how}", b.kind, b.workflow, b.task);
    }
    let _ = writeln!(o, "\nRuns");
    runs(&mut o, &r.total, "  ");
    if r.workflows.len() > 1 || r.workflow.is_none() {
        for w in &r.workflows {
            let estimate =
                w.manual_minutes.map_or_else(|| "no manual_minutes".to_owned(), |m| format!("manual_minutes {m}"));
            let _ = writeln!(o, "\nWorkflow {} ({estimate})", w.workflow);
            runs(&mut o, &w.summary, "  ");
            saved(&mut o, &w.summary.saved, "  ");
        }
    }
    for m in &r.models {
        let _ = writeln!(o, "\nModel {} in {}", m.model, m.registry);
        let _ = writeln!(o, "  deploys {}, rollbacks {}", m.deploys, m.rollbacks);
        recovery(&mut o, &m.drift, "  ");
    }
    notifications(&mut o, &r.notifications);
    o
}

/// `Notifications: 4 delivered, 1 pending, 0 given up (... command 3/0/0, slack 1/1/0)`.
fn notifications(o: &mut String, n: &dagrun_history::report::Notifications) {
    if n.sinks.is_empty() {
        let _ = writeln!(o, "\nNotifications: none queued in the window");
        return;
    }
    let sinks: Vec<String> =
        n.sinks.iter().map(|s| format!("{} {}/{}/{}", s.sink, s.delivered, s.pending, s.given_up)).collect();
    let _ = writeln!(
        o,
        "\nNotifications: {} delivered, {} pending, {} given up (per sink delivered/pending/given up: {})",
        n.delivered,
        n.pending,
        n.given_up,
        sinks.join(", ")
    );
}

fn saved(o: &mut String, s: &Saved, pad: &str) {
    let _ = writeln!(o, "{pad}compute saved by the cache  {}", duration(s.cache_saved_ms));
    match &s.manual {
        Some(m) => {
            let without = if m.runs_without_estimate > 0 {
                format!("; {} of workflows without an estimate not counted", plural(m.runs_without_estimate, "run"))
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{pad}manual effort replaced      {} h ({}{without})",
                trim(m.minutes as f64 / 60.0, 2),
                plural(m.runs, "completed run")
            );
        }
        None => {
            let _ = writeln!(o, "{pad}manual effort replaced      no estimate (set manual_minutes in the workflow)");
        }
    }
    match &s.per_cycle {
        Some(c) => {
            let manual =
                c.manual_minutes.map_or_else(|| "no estimate".to_owned(), |m| format!("{} h", trim(m / 60.0, 2)));
            let _ = writeln!(
                o,
                "{pad}per retraining cycle        {} compute, {manual} manual ({})",
                duration(c.cache_saved_ms),
                plural(c.cycles, "cycle")
            );
        }
        None => {
            let _ = writeln!(o, "{pad}per retraining cycle        no retraining cycle (deploy) in the window");
        }
    }
}

fn recovery(o: &mut String, r: &Recovery, pad: &str) {
    if r.incidents.is_empty() {
        let _ = writeln!(o, "{pad}no drift incidents in the window");
        return;
    }
    match (r.median_ms, r.worst_ms) {
        (Some(m), Some(w)) => {
            let _ = writeln!(
                o,
                "{pad}{} resolved: median {}, worst {}; {} open",
                r.resolved,
                duration(m),
                duration(w),
                r.open
            );
        }
        _ => {
            let _ = writeln!(o, "{pad}none resolved yet; {} open", r.open);
        }
    }
    for i in &r.incidents {
        let day = dagrun_history::report::utc_day(i.detected_ms);
        let how = match (i.recovery_ms, &i.resolution) {
            (Some(t), Some(how)) => format!("recovered in {} ({how})", duration(t)),
            (Some(t), None) => format!("recovered in {}", duration(t)),
            (None, _) => "open".to_owned(),
        };
        let _ = writeln!(o, "{pad}  #{} {day} {} ({}): {how}", i.id, i.model, plural(u64::from(i.alerts), "alert"));
    }
}

fn runs(o: &mut String, s: &Summary, pad: &str) {
    let _ = writeln!(
        o,
        "{pad}runs {} (completed {}, failed {}, interrupted {}, unfinished {}{})",
        s.runs,
        s.completed,
        s.failed,
        s.interrupted,
        s.unfinished,
        if s.killed > 0 { format!(": {} killed", s.killed) } else { String::new() }
    );
    let _ = writeln!(o, "{pad}success rate {}, cache hit rate {}", percent(s.success_rate), percent(s.cache.hit_rate));
    let per_week = s.deploys_per_week.map_or_else(|| "n/a".to_owned(), |w| trim(w, 2));
    let _ = writeln!(
        o,
        "{pad}deploys {} ({per_week} per week), rollbacks {}, retraining cycles {}",
        s.deploys, s.rollbacks, s.retraining_cycles
    );
    let f = &s.failures;
    let mttr = f.mean_ms.map_or_else(|| "n/a".to_owned(), duration);
    let _ =
        writeln!(o, "{pad}failed-run streaks {} (recovered {}), mean time to recover {mttr}", f.streaks, f.recovered);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_history::report::{Facts, ReportQuery, compute};

    #[test]
    fn an_empty_window_says_so() {
        let q =
            ReportQuery { workflow: Some("w".into()), since_ms: 0, until_ms: 30 * 86_400_000, manual_minutes: None };
        let t = table(&compute(&Facts::default(), &q));
        assert!(t.starts_with("dagrun report: workflow w, 1970-01-01 → 1970-01-31 (30 days)"), "{t}");
        assert!(t.contains("no runs in the window") && !t.contains("NaN"), "{t}");
    }
}
