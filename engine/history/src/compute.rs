//! The payoff report's numbers, computed from [`Facts`]: pure and synchronous (no store, no
//! clock), so every definition is unit-tested on a constructed history with known answers.
//! No rate divides by zero: a rate with nothing to count is `None` ("no data"), never NaN.

use std::collections::{BTreeMap, BTreeSet};

use crate::Incident;
use crate::report::{
    Block, Day, Facts, FailureRecovery, IncidentLine, Manual, ModelSummary, Move, PerCycle, REPORT_VERSION, Recovery,
    Report, ReportQuery, Summary, WorkflowSummary,
};
use crate::runs::RunRow;

const DAY_MS: i64 = 86_400_000;

/// Ended without a failed task or an interruption: the pipeline did its job (a refusal, an
/// alert or a wait for approval is a decision, not a failure).
pub fn completed(status: &str) -> bool {
    matches!(status, "succeeded" | "refused" | "alerted" | "waiting")
}

/// The report for `q` from `facts`.
pub fn compute(facts: &Facts, q: &ReportQuery) -> Report {
    let window_days = (q.until_ms - q.since_ms).max(0) as f64 / DAY_MS as f64;
    let names: BTreeSet<&str> = facts
        .runs
        .iter()
        .map(|r| r.workflow.as_str())
        .chain(facts.blocks.iter().map(|b| b.workflow.as_str()))
        .chain(q.workflow.as_deref())
        .collect();
    let workflows: Vec<WorkflowSummary> = names
        .iter()
        .map(|w| {
            let manual = facts.manual_minutes.get(*w).copied();
            WorkflowSummary {
                workflow: (*w).to_owned(),
                manual_minutes: manual,
                summary: summary(facts, Some(w), window_days),
            }
        })
        .collect();
    let mut models: BTreeMap<(&str, &str), Vec<&Incident>> = BTreeMap::new();
    for m in &facts.moves {
        models.entry((&m.registry, &m.model)).or_default();
    }
    for i in &facts.incidents {
        models.entry((&i.registry, &i.model)).or_default().push(i);
    }
    let models = models
        .into_iter()
        .map(|((registry, model), incidents)| {
            let mine = |m: &&Move| m.registry == registry && m.model == model;
            ModelSummary {
                registry: registry.to_owned(),
                model: model.to_owned(),
                deploys: facts.moves.iter().filter(mine).filter(|m| m.moved > 0).count() as u64,
                rollbacks: facts.moves.iter().filter(mine).filter(|m| m.moved < 0).count() as u64,
                drift: recovery(incidents),
            }
        })
        .collect();
    Report {
        version: REPORT_VERSION,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        workflow: q.workflow.clone(),
        total: summary(facts, None, window_days),
        workflows,
        models,
        drift: recovery(facts.incidents.iter().collect()),
        prevented: facts.blocks.clone(),
        days: days(facts, q),
        notifications: facts.notifications.clone(),
    }
}

/// The numbers of workflow `w` (all when `None`).
fn summary(facts: &Facts, w: Option<&str>, window_days: f64) -> Summary {
    let mine = |name: &str| w.is_none_or(|w| w == name);
    let runs: Vec<&RunRow> = facts.runs.iter().filter(|r| mine(&r.workflow)).collect();
    let mut s = Summary { runs: runs.len() as u64, ..Summary::default() };
    for r in &runs {
        match r.status_now() {
            "killed" => {
                s.unfinished += 1;
                s.killed += 1;
            }
            _ if r.finished_ms.is_none() || r.status == "running" => s.unfinished += 1,
            "failed" => s.failed += 1,
            "interrupted" => s.interrupted += 1,
            st if completed(st) => s.completed += 1,
            _ => s.unfinished += 1,
        }
        s.cache.hits += u64::from(r.counts.cached);
        let executed = r.counts.tasks.saturating_sub(r.counts.cached + r.counts.skipped);
        s.cache.executed += u64::from(executed);
        s.saved.cache_saved_ms += r.saved_ms;
    }
    s.success_rate = ratio(s.completed, s.completed + s.failed + s.interrupted);
    s.cache.hit_rate = ratio(s.cache.hits, s.cache.hits + s.cache.executed);

    let moves: Vec<&Move> = facts.moves.iter().filter(|m| mine(&m.workflow)).collect();
    s.deploys = moves.iter().filter(|m| m.moved > 0).count() as u64;
    s.rollbacks = moves.iter().filter(|m| m.moved < 0).count() as u64;
    s.retraining_cycles = moves.iter().filter(|m| m.moved > 0).map(|m| &m.run_id).collect::<BTreeSet<_>>().len() as u64;
    s.deploys_per_week = (window_days > 0.0).then(|| s.deploys as f64 * 7.0 / window_days);

    let mut manual = Manual::default();
    for r in runs.iter().filter(|r| r.finished_ms.is_some() && completed(&r.status)) {
        match facts.manual_minutes.get(&r.workflow) {
            Some(m) => {
                manual.runs += 1;
                manual.minutes += u64::from(*m);
            }
            None => manual.runs_without_estimate += 1,
        }
    }
    let any_estimate = facts.manual_minutes.keys().any(|k| mine(k));
    s.saved.manual = any_estimate.then_some(manual);
    s.saved.per_cycle = (s.retraining_cycles > 0).then(|| PerCycle {
        cycles: s.retraining_cycles,
        cache_saved_ms: s.saved.cache_saved_ms / s.retraining_cycles as i64,
        manual_minutes: s.saved.manual.as_ref().map(|m| m.minutes as f64 / s.retraining_cycles as f64),
    });
    s.failures = failures(&runs);
    s.prevented = facts.blocks.iter().filter(|b| mine(&b.workflow)).count() as u64;
    s
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// Failure streaks per workflow: the first failed run after a run that did not fail, up to the
/// next completed run (runs oldest first). Unfinished and interrupted runs neither start nor
/// end a streak.
fn failures(runs: &[&RunRow]) -> FailureRecovery {
    let mut out = FailureRecovery::default();
    let mut open: BTreeMap<&str, i64> = BTreeMap::new();
    let mut total: i64 = 0;
    for r in runs {
        let Some(end) = r.finished_ms else { continue };
        if r.status == "failed" {
            if !open.contains_key(r.workflow.as_str()) {
                open.insert(&r.workflow, end);
                out.streaks += 1;
            }
        } else if completed(&r.status)
            && let Some(failed_at) = open.remove(r.workflow.as_str())
        {
            out.recovered += 1;
            total += (end - failed_at).max(0);
        }
    }
    out.mean_ms = (out.recovered > 0).then(|| total / out.recovered as i64);
    out
}

/// Time to recovery over `incidents`: median and worst of the resolved ones; open ones counted.
pub fn recovery(mut incidents: Vec<&Incident>) -> Recovery {
    incidents.sort_by_key(|i| (i.detected_ms, i.id));
    let lines: Vec<IncidentLine> = incidents
        .iter()
        .map(|i| IncidentLine {
            id: i.id,
            workflow: i.workflow.clone(),
            registry: i.registry.clone(),
            model: i.model.clone(),
            detected_ms: i.detected_ms,
            resolved_ms: i.resolved_ms,
            resolution: i.resolution.clone(),
            recovery_ms: i.time_to_recovery_ms(),
            alerts: i.alerts,
        })
        .collect();
    let mut times: Vec<i64> = lines.iter().filter_map(|l| l.recovery_ms).collect();
    times.sort_unstable();
    Recovery {
        resolved: times.len() as u64,
        open: (lines.len() - times.len()) as u64,
        median_ms: median(&times),
        worst_ms: times.last().copied(),
        incidents: lines,
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(sorted[n / 2 - 1] + (sorted[n / 2] - sorted[n / 2 - 1]) / 2),
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time in ms.
pub fn utc_day(ms: i64) -> String {
    let (y, m, d, _) = dagrun_workflow::partition::civil(ms.div_euclid(1000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// One entry per UTC day from the first day with activity (or the window's start, if later)
/// to the window's end.
fn days(facts: &Facts, q: &ReportQuery) -> Vec<Day> {
    let first = facts.runs.iter().map(|r| r.started_ms).chain(facts.blocks.iter().map(|b| b.at_ms)).min();
    let Some(first) = first else { return Vec::new() };
    let start = first.max(q.since_ms).div_euclid(DAY_MS);
    let end = q.until_ms.div_euclid(DAY_MS).max(start);
    let mut out: Vec<Day> = (start..=end).map(|d| Day { day: utc_day(d * DAY_MS), ..Day::default() }).collect();
    let len = out.len();
    let slot = |ms: i64| usize::try_from(ms.div_euclid(DAY_MS) - start).ok().filter(|&i| i < len);
    for r in &facts.runs {
        let Some(i) = slot(r.started_ms) else { continue };
        let d = &mut out[i];
        d.runs += 1;
        d.cache_saved_ms += r.saved_ms;
        if r.finished_ms.is_some() && completed(&r.status) {
            d.manual_minutes += u64::from(facts.manual_minutes.get(&r.workflow).copied().unwrap_or(0));
        }
    }
    for i in facts.blocks.iter().filter_map(|b: &Block| slot(b.at_ms)) {
        out[i].prevented += 1;
    }
    out
}

#[cfg(test)]
#[path = "compute_tests.rs"]
mod tests;
