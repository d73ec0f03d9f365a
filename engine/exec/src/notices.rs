//! The notifications a finished run gives rise to, as a pure function of its record (task
//! outcomes and summaries, registry changes), the workflow, and what the run's aftermath read
//! from the registry and the refused gates' verdicts ([`Found`]): `run_failed`,
//! `gate_refused`, `drift_detected`, `model_deployed`, `rolled_back`, `approval_needed`.
//! Each has a subject that names the occurrence (the outbox's dedup key, with the run id).

use std::collections::{BTreeMap, BTreeSet};

use dagrun_contracts::ApprovalRecord;
use dagrun_history::{Fact, Notification};
use dagrun_workflow::heal::NotifyEvent;
use dagrun_workflow::{DataSource, DeployedDef, Task, TaskKind, Workflow};
use serde_json::{Value, json};

use crate::events::{RunStatus, TaskStatus};
use crate::history::{RegistryChange, RunRecord, TaskRecord};
use crate::when;

/// What the aftermath read besides the record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    /// Per version a run made current — (registry as written, name, version) — what it holds.
    pub versions: BTreeMap<(String, String, String), VersionFacts>,
    /// Per refused task instance: the verdict.json it wrote, when it wrote one.
    pub verdicts: BTreeMap<String, Value>,
}

/// A registry version's digest, verdict and approval.
#[derive(Debug, Clone, Default)]
pub(crate) struct VersionFacts {
    /// blake3 of its model (metadata.json).
    pub digest: Option<String>,
    /// Its verdict.json.
    pub verdict: Option<Value>,
    /// How it was let through (metadata.json).
    pub approval: Option<ApprovalRecord>,
}

/// A notification and the occurrence it is about (the outbox's dedup key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    /// `drift_detected/drift@2025-03-02`, ...; unique within the run.
    pub subject: String,
    /// What goes out.
    pub notification: Notification,
    /// Dedup across runs rather than within one (an approval request is notified once, however
    /// many runs find it still waiting).
    pub once: bool,
}

/// Every notification of a finished run, in a stable order.
pub(crate) fn notices(record: &RunRecord, wf: &Workflow, found: &Found) -> Vec<Notice> {
    let ctx = Ctx { record, wf, at_ms: record.finished_ms.unwrap_or(record.started_ms) as i64 };
    let mut out = Vec::new();
    if record.status == RunStatus::Failed {
        out.push(ctx.run_failed());
    }
    for t in &record.tasks {
        match (t.status, ctx.task(t).map(|d| &d.kind)) {
            // A rejected approval is a refusal too: `approval_rejected` tells it (queued where
            // the decision is made).
            (TaskStatus::Refused, Some(TaskKind::Approval(_))) => {}
            (TaskStatus::Refused, _) => out.push(ctx.gate_refused(t, found.verdicts.get(&t.task))),
            (TaskStatus::Alerted | TaskStatus::Held, Some(TaskKind::Drift(d))) => {
                out.push(ctx.drift_detected(t, deployed(&d.reference)));
            }
            (TaskStatus::Waiting, _) => out.extend(ctx.approval_needed(t)),
            _ => {}
        }
    }
    let rolled = ctx.performance_rollbacks();
    let done: BTreeSet<String> = rolled.iter().map(|n| n.subject.clone()).collect();
    for c in &record.registry {
        match c.moved_up() {
            Some(true) => out.push(ctx.model_deployed(c, found)),
            Some(false) => {
                let n = ctx.rolled_back(c, None);
                if !done.contains(&n.subject) {
                    out.push(n);
                }
            }
            None => {}
        }
    }
    out.extend(rolled);
    out
}

/// The registry model a `Deployed(...)` source names.
fn deployed(s: &DataSource) -> Option<&DeployedDef> {
    match s {
        DataSource::Deployed(d) => Some(d),
        DataSource::Input(_) => None,
    }
}

struct Ctx<'a> {
    record: &'a RunRecord,
    wf: &'a Workflow,
    at_ms: i64,
}

impl Ctx<'_> {
    /// The definition of a task instance (`drift@2025-03-02` → `drift`).
    fn task(&self, t: &TaskRecord) -> Option<&Task> {
        let base = t.task.split('@').next().unwrap_or(&t.task);
        self.wf.task_index(base).map(|i| &self.wf.tasks[i])
    }

    fn notice(&self, event: NotifyEvent, subject: String, title: String, facts: Vec<Fact>, details: Value) -> Notice {
        let notification = Notification {
            event,
            workflow: self.wf.name.clone(),
            run_id: Some(self.record.id.clone()),
            at_ms: self.at_ms,
            title: one_line(&title),
            facts,
            action: None,
            details,
        };
        Notice { subject, notification, once: false }
    }

    fn run_failed(&self) -> Notice {
        let failed: Vec<&TaskRecord> = self.record.tasks.iter().filter(|t| t.status == TaskStatus::Failed).collect();
        let names: Vec<&str> = failed.iter().map(|t| t.task.as_str()).collect();
        let error = |t: &TaskRecord| failure_line(t.error.as_deref().unwrap_or("failed"));
        let title = match failed.as_slice() {
            [one] => format!("{}: run failed — {} failed: {}", self.wf.name, one.task, error(one)),
            _ => format!("{}: run failed — {} tasks failed: {}", self.wf.name, failed.len(), names.join(", ")),
        };
        let facts = failed.iter().map(|t| fact(&t.task, error(t))).collect();
        let details = json!({
            "status": self.record.status.as_str(),
            "failed": failed.iter().map(|t| json!({"task": t.task, "error": error(t), "failure": t.failure})).collect::<Vec<_>>(),
        });
        let mut n = self.notice(NotifyEvent::RunFailed, "run_failed".into(), title, facts, details);
        n.notification.action = Some(format!("dagrun show {}", self.record.id));
        n
    }

    fn gate_refused(&self, t: &TaskRecord, verdict: Option<&Value>) -> Notice {
        let reason = t.error.as_deref().unwrap_or("refused");
        let why = reason.strip_prefix("gate refused: ").unwrap_or(reason);
        let title = format!("{}: gate refused the model in {} — {}", self.wf.name, t.task, first_line(why));
        let mut facts = vec![fact("reason", first_line(why))];
        facts.extend(verdict.map(metric_facts).unwrap_or_default());
        let details = json!({
            "task": t.task,
            "reason": why,
            "candidate": verdict.and_then(|v| v.get("candidate")),
            "champion": verdict.and_then(|v| v.get("champion")),
        });
        self.notice(NotifyEvent::GateRefused, format!("gate_refused/{}", t.task), title, facts, details)
    }

    fn drift_detected(&self, t: &TaskRecord, model: Option<&DeployedDef>) -> Notice {
        let s = t.summary.as_deref().cloned().unwrap_or(Value::Null);
        let on = model.map_or_else(|| format!("in {}", t.task), |m| format!("on {}", m.name));
        let reason = s["reason"].as_str().map_or_else(|| first_line(t.error.as_deref().unwrap_or("drift")), first_line);
        let held = &s["held"];
        let mut title = format!("{}: drift detected {on} — {reason}", self.wf.name);
        let columns: Vec<&str> =
            s["drifted_columns"].as_array().map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect());
        let mut facts = vec![fact("task", t.task.clone())];
        if let Some(share) = s["share"].as_f64() {
            let threshold = s["drift_share"].as_f64().map_or(String::new(), |d| format!(" (threshold {})", percent(d)));
            facts.push(fact("drifted share", format!("{}{threshold}", percent(share))));
        }
        facts.push(fact("drifted columns", if columns.is_empty() { "none".to_owned() } else { columns.join(", ") }));
        if let Some(until) = held["until_ms"].as_i64() {
            title.push_str(&format!(" (held: cooldown until {})", when::utc(until)));
            let since = held["version"].as_str().unwrap_or("the last version");
            facts.push(fact(
                "held",
                format!(
                    "cooldown {} after {since}, until {}",
                    held["cooldown"].as_str().unwrap_or("?"),
                    when::utc(until)
                ),
            ));
        }
        let details = json!({
            "task": t.task,
            "model": model.map(|m| &m.name),
            "registry": model.map(|m| &m.registry),
            "reason": s["reason"],
            "share": s["share"],
            "drift_share": s["drift_share"],
            "drifted_columns": columns,
            "held": held.is_object().then_some(held),
        });
        // Once per finding: the same check (same data, same reference: the same key) alerting
        // again — a run resumed after an approval, a re-run — is not news.
        let key = t.key.map_or_else(|| "-".to_owned(), |k| k.to_string());
        let subject = format!("drift_detected/{}/{}/{key}", t.task, t.status.as_str());
        let mut n = self.notice(NotifyEvent::DriftDetected, subject, title, facts, details);
        n.once = t.key.is_some();
        n
    }

    fn approval_needed(&self, t: &TaskRecord) -> Option<Notice> {
        let a = t.summary.as_ref()?.get("approval")?;
        let model = a["model"].as_str().unwrap_or("the model");
        let digest = a["model_digest"].as_str().unwrap_or("");
        let reasons: Vec<&str> =
            a["reasons"].as_array().map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        let mut title = format!("{}: approval needed for {model} (model {})", self.wf.name, short(digest));
        if !reasons.is_empty() {
            title.push_str(&format!(" — {}", reasons.join("; ")));
        }
        let mut facts: Vec<Fact> = reasons.iter().map(|r| fact("why", (*r).to_owned())).collect();
        facts.push(fact("model digest", short(digest).to_owned()));
        if let Some(expires) = a["expires_ms"].as_i64() {
            facts.push(fact("expires", when::utc(expires)));
        }
        if let Some(reject) = a["reject"].as_str() {
            facts.push(fact("reject", reject.to_owned()));
        }
        let details = json!({"task": t.task, "approval": a});
        let id = a["id"].as_i64().map_or_else(|| format!("{}/{digest}", t.task), |id| format!("request {id}"));
        let mut n = self.notice(NotifyEvent::ApprovalNeeded, format!("approval_needed/{id}"), title, facts, details);
        n.notification.action = a["approve"].as_str().map(str::to_owned);
        n.once = true;
        Some(n)
    }

    fn model_deployed(&self, c: &RegistryChange, found: &Found) -> Notice {
        let version = c.after.clone().unwrap_or_default();
        let key = (c.registry.clone(), c.name.clone(), version.clone());
        let v = found.versions.get(&key).cloned().unwrap_or_default();
        let by =
            v.approval.as_ref().filter(|a| a.by_person()).map(|a| a.by.clone().unwrap_or_else(|| "a person".into()));
        let mut title = format!("{}: model {} {version} deployed", self.wf.name, c.name);
        if let Some(before) = &c.before {
            title.push_str(&format!(" (was {before})"));
        }
        if let Some(by) = &by {
            title.push_str(&format!(" — approved by {by}"));
        }
        let reason = v.verdict.as_ref().and_then(|j| j["reason"].as_str()).map(first_line);
        let mut facts = vec![fact("version", version.clone())];
        facts.push(fact("previous", c.before.clone().unwrap_or_else(|| "none".into())));
        if let Some(d) = &v.digest {
            facts.push(fact("digest", short(d).to_owned()));
        }
        if let Some(r) = &reason {
            facts.push(fact("verdict", r.clone()));
        }
        facts.extend(v.verdict.as_ref().map(metric_facts).unwrap_or_default());
        let approval = match &v.approval {
            Some(a) if a.by_person() => format!("approved by {}", by.clone().unwrap_or_default()),
            _ => "automatic".to_owned(),
        };
        facts.push(fact("approval", approval));
        let details = json!({
            "registry": c.registry,
            "model": c.name,
            "version": version,
            "previous": c.before,
            "digest": v.digest,
            "reason": reason,
            "metrics": v.verdict.as_ref().map(|j| &j["candidate"]["metrics"]),
            "champion_metrics": v.verdict.as_ref().and_then(|j| j["champion"].get("metrics")),
            "approved_by": by,
            "approval": v.approval,
        });
        let subject = format!("model_deployed/{}/{}/{version}", c.registry, c.name);
        self.notice(NotifyEvent::ModelDeployed, subject, title, facts, details)
    }

    /// Rollbacks the `Performance` tasks of the run report in their summaries.
    fn performance_rollbacks(&self) -> Vec<Notice> {
        let mut out = Vec::new();
        for t in &self.record.tasks {
            let Some(TaskKind::Performance(p)) = self.task(t).map(|d| &d.kind) else { continue };
            let (Some(d), Some(s)) = (deployed(&p.model), t.summary.as_ref()) else { continue };
            let r = &s["rolled_back"];
            let (Some(from), Some(to)) = (r["from"].as_str(), r["to"].as_str()) else { continue };
            let c = RegistryChange {
                registry: d.registry.clone(),
                name: d.name.clone(),
                before: Some(from.to_owned()),
                after: Some(to.to_owned()),
            };
            out.push(self.rolled_back(&c, Some((t, s))));
        }
        out
    }

    /// `current` of `c` moved down; `by`: the `Performance` task that did it, with its summary.
    fn rolled_back(&self, c: &RegistryChange, by: Option<(&TaskRecord, &Value)>) -> Notice {
        let from = c.before.clone().unwrap_or_default();
        let to = c.after.clone().unwrap_or_default();
        let metrics: Vec<Value> = by.and_then(|(_, s)| s["regressed_metrics"].as_array().cloned()).unwrap_or_default();
        let mut title = format!("{}: {} rolled back {from} → {to}", self.wf.name, c.name);
        let mut facts = vec![fact("from", from.clone()), fact("to", to.clone())];
        for m in &metrics {
            let name = m["metric"].as_str().unwrap_or("?");
            let (cur, base) = (num(&m["current"]), num(&m["baseline"]));
            facts.push(fact(name, format!("{cur} (verdict promised {base}, tolerance {})", num(&m["tolerance"]))));
        }
        if let Some(m) = metrics.first() {
            title.push_str(&format!(
                " — {} {} vs {} promised",
                m["metric"].as_str().unwrap_or("?"),
                num(&m["current"]),
                num(&m["baseline"])
            ));
        }
        if let Some((t, _)) = by {
            facts.insert(0, fact("task", t.task.clone()));
        }
        let details = json!({
            "registry": c.registry,
            "model": c.name,
            "from": from,
            "to": to,
            "task": by.map(|(t, _)| &t.task),
            "reason": by.and_then(|(_, s)| s.get("reason")),
            "regressed_metrics": metrics,
        });
        let subject = format!("rolled_back/{}/{}/{from}->{to}", c.registry, c.name);
        self.notice(NotifyEvent::RolledBack, subject, title, facts, details)
    }
}

/// The gate's metrics (those it checked, else every numeric one) of a verdict, with the
/// champion's alongside: `accuracy` → `0.912 (champion 0.874)`.
fn metric_facts(verdict: &Value) -> Vec<Fact> {
    let candidate = &verdict["candidate"]["metrics"];
    let champion = &verdict["champion"]["metrics"];
    let gate = &verdict["gate"];
    let mut names: BTreeSet<String> = ["min", "max"]
        .iter()
        .filter_map(|k| gate[k].as_object())
        .flat_map(|m| m.keys().cloned())
        .chain(gate["champion"]["metric"].as_str().map(str::to_owned))
        .collect();
    if names.is_empty() {
        names = candidate.as_object().map_or_else(BTreeSet::new, |m| m.keys().cloned().collect());
    }
    names
        .into_iter()
        .filter(|n| candidate[n].is_number())
        .map(|n| {
            let mut v = num(&candidate[&n]);
            if champion[&n].is_number() {
                v.push_str(&format!(" (champion {})", num(&champion[&n])));
            }
            fact(&n, v)
        })
        .collect()
}

fn fact(name: &str, value: String) -> Fact {
    Fact { name: name.to_owned(), value }
}

/// A number for people: up to 4 decimals, trailing zeros dropped.
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => {
            let s = format!("{f:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        None => v.to_string(),
    }
}

/// `0.4` → `40%`.
fn percent(share: f64) -> String {
    let p = format!("{:.1}", share * 100.0);
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

/// The first 12 hex digits of a digest.
fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

/// The first non-empty line of a text.
fn first_line(s: &str) -> String {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_owned()
}

/// A failure in one line: its first line, and for a command's `…; last output:` the last line
/// it printed (`exit code 1; last output: … KeyError: 'income'`).
fn failure_line(s: &str) -> String {
    let head = first_line(s);
    let Some(stem) = head.strip_suffix("; last output:") else { return head };
    let last = s.lines().map(str::trim).rev().find(|l| !l.is_empty()).unwrap_or("");
    let last: String = last.chars().take(200).collect();
    if last.is_empty() || last == head { stem.to_owned() } else { format!("{stem}; last output: … {last}") }
}

/// A title on one line, at most 300 characters.
fn one_line(s: &str) -> String {
    let line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 300 { format!("{}…", line.chars().take(299).collect::<String>()) } else { line }
}

#[cfg(test)]
#[path = "notices_tests.rs"]
mod tests;
