//! Checks of each task kind's own settings: commands, plugins, ONNX evaluation and prediction.

use crate::diag::{Diagnostic, Source, did_you_mean};
use crate::model::{TaskDef, TaskKind};
use crate::size;
use crate::validate::{TaskSpans, valid_name};

pub(crate) fn check_kind(source: &Source, def: &TaskDef, sp: &TaskSpans<'_>, diags: &mut Vec<Diagnostic>) {
    match &def.kind {
        TaskKind::Command(c) if c.run.trim().is_empty() => diags.push(
            Diagnostic::new("dagrun::empty-command", format!("task `{}` has an empty command", def.name), source)
                .label(sp.kind_field("run"), "nothing to run")
                .help("write the shell command to run, e.g. run: \"python train.py\""),
        ),
        TaskKind::Command(c) => {
            for key in c.env.keys().filter(|k| k.starts_with("DAGRUN_")) {
                diags.push(
                    Diagnostic::new(
                        "dagrun::reserved-env",
                        format!("task `{}` sets `{key}`, which dagrun sets itself", def.name),
                        source,
                    )
                    .label(sp.kind_field("env"), "in here")
                    .help("variables starting with DAGRUN_ are reserved; choose another name"),
                );
            }
        }
        TaskKind::Wasm(w) if w.plugin.is_empty() => diags.push(
            Diagnostic::new("dagrun::empty-path", format!("task `{}` names no plugin", def.name), source)
                .label(sp.kind_field("plugin"), "empty path")
                .help("give a .wasm file or a plugin crate directory"),
        ),
        TaskKind::Wasm(w) => {
            if let Some(m) = &w.memory
                && let Err(why) = size::parse(m)
            {
                diags.push(
                    Diagnostic::new("dagrun::invalid-size", format!("invalid memory size `{m}`: {why}"), source)
                        .label(sp.kind_field("memory"), "not a size")
                        .help("write a number and a unit: \"256MiB\", \"1GiB\""),
                );
            }
            for (name, m) in &w.mounts {
                if !valid_name(name) {
                    diags.push(
                        Diagnostic::new("dagrun::invalid-name", format!("invalid mount name `{name}`"), source)
                            .label(sp.kind_field("mounts"), "in here")
                            .help("mount names use only letters, digits, `_` and `-`; the plugin sees /mnt/<name>"),
                    );
                }
                if m.path.is_empty() {
                    diags.push(
                        Diagnostic::new("dagrun::empty-path", format!("mount `{name}` has an empty path"), source)
                            .label(sp.kind_field("mounts"), "in here")
                            .help("give a host directory relative to the workflow file"),
                    );
                }
            }
        }
        TaskKind::OnnxPredict(p) => check_predict(source, def, p, sp, diags),
        TaskKind::Drift(d) => crate::kinds_monitor::check_drift(source, def, d, sp, diags),
        TaskKind::Performance(p) => crate::kinds_monitor::check_performance(source, def, p, sp, diags),
        TaskKind::Approval(a) => crate::heal_checks::check_approval(source, def, a, sp, diags),
        TaskKind::OnnxEval(o) => {
            for (field, input) in [("model", &o.model), ("data", &o.data)] {
                if !def.inputs.contains_key(input) {
                    let known: Vec<&str> = def.inputs.keys().map(String::as_str).collect();
                    diags.push(
                        Diagnostic::new(
                            "dagrun::unknown-input",
                            format!("`{field}` of task `{}` names no input `{input}`", def.name),
                            source,
                        )
                        .label(sp.kind_field(field), "no such input")
                        .help(if known.is_empty() {
                            "declare it under `inputs`".to_owned()
                        } else {
                            format!("inputs of this task: {}", known.join(", "))
                        }),
                    );
                }
            }
            for name in def.outputs.keys().filter(|n| !EVAL_OUTPUTS.contains(&n.as_str())) {
                diags.push(
                    Diagnostic::new("dagrun::unknown-output", format!("OnnxEval task `{}` cannot write an output `{name}`", def.name), source)
                        .label(sp.map_key("outputs", name), "not an OnnxEval output")
                        .help("OnnxEval writes `metrics` (metrics.json), `predictions` (predictions.csv) and `verdict` (verdict.json)"),
                );
            }
            let needs: &[&str] = if o.gate.is_some() { &["metrics", "verdict"] } else { &["metrics"] };
            for name in needs.iter().filter(|n| !def.outputs.contains_key(**n)) {
                diags.push(
                    Diagnostic::new(
                        "dagrun::missing-output",
                        format!("OnnxEval task `{}` must declare output `{name}`", def.name),
                        source,
                    )
                    .label(sp.field("name"), "in this task")
                    .help(format!("add it under `outputs`, e.g. \"{name}\": \"out/{name}.json\"")),
                );
            }
            if let Some(gate) = &o.gate {
                let champion = gate.champion.as_ref().map(|c| c.metric.as_str());
                for metric in gate.min.keys().chain(gate.max.keys()).map(String::as_str).chain(champion) {
                    if !KNOWN_METRICS.contains(&metric) {
                        let mut d = Diagnostic::new(
                            "dagrun::unknown-metric",
                            format!("unknown metric `{metric}` in the gate of task `{}`", def.name),
                            source,
                        )
                        .label(sp.kind_field("gate"), "in this gate");
                        d.help = Some(match did_you_mean(metric, KNOWN_METRICS.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("metrics: {}", KNOWN_METRICS.join(", ")),
                        });
                        diags.push(d);
                    }
                }
            }
        }
    }
}

fn check_predict(
    source: &Source,
    def: &TaskDef,
    p: &crate::model::OnnxPredictTask,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    if p.model.is_some() == p.deployed.is_some() {
        diags.push(
            Diagnostic::new("dagrun::predict-model", format!("OnnxPredict task `{}` needs exactly one of `model` and `deployed`", def.name), source)
                .label(sp.field("kind"), "here")
                .help("score with a model input (`model: \"model\"`) or with the deployed one (`deployed: Deployed(registry: \"registry\", name: \"churn\")`)"),
        );
    }
    let inputs = p.model.iter().map(|m| ("model", m)).chain(std::iter::once(("data", &p.data)));
    for (field, input) in inputs {
        if !def.inputs.contains_key(input) {
            diags.push(
                Diagnostic::new(
                    "dagrun::unknown-input",
                    format!("`{field}` of task `{}` names no input `{input}`", def.name),
                    source,
                )
                .label(sp.kind_field(field), "no such input")
                .help("declare it under `inputs`"),
            );
        }
    }
    if def.outputs.keys().map(String::as_str).ne(["predictions"]) {
        diags.push(
            Diagnostic::new(
                "dagrun::missing-output",
                format!("OnnxPredict task `{}` writes exactly one output, `predictions`", def.name),
                source,
            )
            .label(sp.field("outputs").or(sp.field("name")), "here")
            .help("outputs: {\"predictions\": \"out/predictions.csv\"}"),
        );
    }
}

/// The outputs an `OnnxEval` task can write.
const EVAL_OUTPUTS: [&str; 3] = ["metrics", "predictions", "verdict"];

/// Every metric an `OnnxEval` task computes (classifiers, then regressors).
pub const KNOWN_METRICS: [&str; 12] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
];
