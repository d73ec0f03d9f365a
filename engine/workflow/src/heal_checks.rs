//! Checks of the self-healing settings: `only_if` conditions, `Approval` steps, `Drift`
//! cooldowns, `Performance` rollbacks and the `notify` sinks (whose environment variables
//! must be set where the workflow runs).

use std::ops::Range;

use crate::diag::{Diagnostic, Source};
use crate::heal::{ApprovalTask, Condition, NotifyDef};
use crate::model::{DataSource, TaskDef, TaskKind};
use crate::spans::Node;
use crate::validate::{TaskSpans, parse_duration};

/// `only_if: Alerted("x")`: `x` is an upstream of the task and can raise an alert.
pub(crate) fn check_only_if(
    source: &Source,
    def: &TaskDef,
    sp: &TaskSpans<'_>,
    defs: &[Option<TaskDef>],
    by_name: &foldhash::HashMap<&str, usize>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(cond) = &def.only_if else { return };
    let span = sp.field("only_if");
    let name = cond.task();
    let Some(&j) = by_name.get(name) else {
        let mut d = Diagnostic::new(
            "dagrun::unknown-task",
            format!("`only_if` of task `{}` names no task `{name}`", def.name),
            source,
        )
        .label(span, "no such task");
        if let Some(close) = crate::diag::did_you_mean(name, by_name.keys().copied()) {
            d = d.help(format!("did you mean `{close}`?"));
        }
        diags.push(d);
        return;
    };
    let upstream = def.after.iter().any(|a| a == name)
        || def
            .inputs
            .values()
            .any(|i| matches!(i, crate::Input::Output(t, _) | crate::Input::Partitions { task: t, .. } if t == name));
    if !upstream {
        diags.push(
            Diagnostic::new(
                "dagrun::condition-not-upstream",
                format!("`only_if` of task `{}` looks at `{name}`, which it does not depend on", def.name),
                source,
            )
            .label(span.clone(), "not an upstream task")
            .help(format!("add after: [\"{name}\"] so that `{}` waits for `{name}`", def.name)),
        );
    }
    let Condition::Alerted(_) = cond;
    let alerts = match defs.get(j).and_then(Option::as_ref).map(|d| &d.kind) {
        Some(TaskKind::Drift(d)) => d.fail_on_drift,
        Some(TaskKind::Performance(p)) => p.fail_on_regression,
        None => true, // its own errors are reported already
        Some(_) => false,
    };
    if !alerts {
        diags.push(
            Diagnostic::new(
                "dagrun::condition-never-met",
                format!("`only_if: Alerted(\"{name}\")` of task `{}` can never be met", def.name),
                source,
            )
            .label(span, "never alerts")
            .help(match defs.get(j).and_then(Option::as_ref).map(|d| &d.kind) {
                Some(TaskKind::Drift(_)) => format!("set `fail_on_drift: true` on `{name}`: only then does drift raise an alert"),
                Some(TaskKind::Performance(_)) => {
                    format!("set `fail_on_regression: true` on `{name}`: only then does a regression raise an alert")
                }
                _ => format!(
                    "only a Drift task with `fail_on_drift: true` or a Performance task with `fail_on_regression: true` raises alerts, and `{name}` is neither"
                ),
            }),
        );
    }
}

/// An `Approval` step: its inputs exist, thresholds are shares, durations parse.
pub(crate) fn check_approval(
    source: &Source,
    def: &TaskDef,
    a: &ApprovalTask,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    crate::kinds_monitor::check_inputs(source, def, &[("model", &a.model), ("verdict", &a.verdict)], sp, diags);
    crate::kinds_monitor::check_source(source, def, "deploys", &DataSource::Deployed(a.deploys.clone()), sp, diags);
    crate::kinds_monitor::check_outputs(
        source,
        def,
        "Approval",
        &["approval"],
        "`approval` (approval.json, for the deploy task's `approval` input)",
        sp,
        diags,
    );
    if let Some(v) = a.max_label_change
        && !(0.0..=1.0).contains(&v)
    {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-threshold",
                format!("max_label_change {v} of task `{}` is not in [0, 1]", def.name),
                source,
            )
            .label(sp.kind_field("max_label_change"), "not a share")
            .help(
                "the share of evaluation rows whose predicted label may change without a person's approval, e.g. 0.1",
            ),
        );
    }
    if let Some(v) = a.max_score_change
        && !(v >= 0.0 && v.is_finite())
    {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-threshold",
                format!("max_score_change {v} of task `{}` is not a finite number ≥ 0", def.name),
                source,
            )
            .label(sp.kind_field("max_score_change"), "out of range"),
        );
    }
    if let Some(t) = &a.timeout {
        parse_duration(source, t, sp.kind_field("timeout"), diags);
    }
    if let Some(b) = &a.breaker {
        let node = sp.node.and_then(|n| n.field("kind")).and_then(|k| k.field("breaker"));
        parse_duration(source, &b.window, node.and_then(|n| n.field("window")).map(|n| n.span.clone()), diags);
    }
}

/// `Drift(cooldown: ...)` needs a deployed reference; `Performance(rollback: true)` a deployed model.
pub(crate) fn check_monitor_heal(source: &Source, def: &TaskDef, sp: &TaskSpans<'_>, diags: &mut Vec<Diagnostic>) {
    match &def.kind {
        TaskKind::Drift(d) if d.cooldown.is_some() => {
            let c = d.cooldown.as_deref().unwrap_or_default();
            parse_duration(source, c, sp.kind_field("cooldown"), diags);
            if !matches!(d.reference, DataSource::Deployed(_)) {
                diags.push(
                    Diagnostic::new(
                        "dagrun::cooldown-without-model",
                        format!("`cooldown` of task `{}` needs `reference: Deployed(...)`", def.name),
                        source,
                    )
                    .label(sp.kind_field("cooldown"), "no deployed model to cool down after")
                    .help("the cooldown starts when the deployed model was promoted: write reference: Deployed(registry: \"registry\", name: \"churn\")"),
                );
            }
        }
        TaskKind::Performance(p) if p.rollback && !matches!(p.model, DataSource::Deployed(_)) => diags.push(
            Diagnostic::new(
                "dagrun::rollback-without-model",
                format!("`rollback` of task `{}` needs `model: Deployed(...)`", def.name),
                source,
            )
            .label(sp.kind_field("rollback"), "nothing deployed to roll back")
            .help("write model: Deployed(registry: \"registry\", name: \"churn\"), or remove `rollback`"),
        ),
        _ => {}
    }
}

/// The `notify` sinks: events listed, commands non-empty, and every environment variable they
/// read set (its value is never shown).
pub(crate) fn check_notify(
    source: &Source,
    sinks: &[NotifyDef],
    doc: Option<&Node>,
    check_env: bool,
    diags: &mut Vec<Diagnostic>,
) {
    let node = |i: usize| doc.and_then(|d| d.field("notify")).and_then(|n| n.index(i));
    let span = |i: usize, f: &str| -> Option<Range<usize>> {
        node(i).and_then(|n| n.field(f).or(Some(n))).map(|n| n.span.clone())
    };
    for (i, sink) in sinks.iter().enumerate() {
        if sink.events().is_empty() {
            diags.push(
                Diagnostic::new("dagrun::no-events", format!("notify sink #{} ({}) lists no events", i + 1, sink.label()), source)
                    .label(span(i, "events"), "empty")
                    .help("leave `events` out for every event but FileLanded, or list some, e.g. events: [ApprovalNeeded, RolledBack]"),
            );
        }
        if let NotifyDef::Command(c) = sink
            && c.run.trim().is_empty()
        {
            diags.push(
                Diagnostic::new(
                    "dagrun::empty-command",
                    format!("notify sink #{} has an empty command", i + 1),
                    source,
                )
                .label(span(i, "run"), "empty"),
            );
        }
        let fields: &[&str] = match sink {
            NotifyDef::Slack(_) => &["webhook_env"],
            NotifyDef::Webhook(_) => &["url_env", "headers_env"],
            NotifyDef::Command(_) => &[],
        };
        if sink.optional() || !check_env {
            continue;
        }
        for (var, field) in sink.env_vars().into_iter().zip(fields) {
            if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
                diags.push(
                    Diagnostic::new(
                        "dagrun::missing-env",
                        format!("environment variable {var} (`{field}` of the {} sink) is not set", sink.label()),
                        source,
                    )
                    .label(span(i, field), "not set")
                    .help(format!(
                        "export {var}=... where dagrun runs (the daemon's environment); secrets live only in the environment, never in the workflow file"
                    )),
                );
            }
        }
    }
}

/// Every `Approval` step gates something: its `approval` output is an input of another task (the
/// deploy). Otherwise the deploy would go ahead whatever the person decides.
pub(crate) fn check_approvals_gate(
    source: &Source,
    defs: &[Option<TaskDef>],
    doc: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) {
    for (i, def) in defs.iter().enumerate() {
        let Some(def) = def else { continue };
        if !matches!(def.kind, TaskKind::Approval(_)) {
            continue;
        }
        let consumed = defs.iter().flatten().any(|d| {
            d.inputs
                .values()
                .any(|input| matches!(input, crate::Input::Output(t, o) if *t == def.name && o == "approval"))
        });
        if !consumed {
            let sp = TaskSpans::new(doc, i);
            diags.push(
                Diagnostic::new(
                    "dagrun::approval-gates-nothing",
                    format!("the Approval step `{}` gates nothing: no task reads its `approval` output", def.name),
                    source,
                )
                .label(sp.field("name"), "its decision is not used")
                .help(format!(
                    "give the deploy task its decision, so that it deploys only what was approved: inputs: {{..., \"approval\": Output(\"{}\", \"approval\")}}",
                    def.name
                )),
            );
        }
    }
}
