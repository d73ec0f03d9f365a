//! Checks of the monitoring kinds' settings: `Drift` (inputs, outputs, thresholds, tests that
//! fit their columns) and `Performance` (model, baseline, tolerances).

use crate::diag::{Diagnostic, Source as File, did_you_mean};
use crate::kinds::KNOWN_METRICS;
use crate::model::{DataSource as Source, DriftMethod, DriftTask, PerformanceTask, TaskDef, TestDef};
use crate::validate::TaskSpans;

/// The outputs a `Drift` task can write, and what each holds.
const DRIFT_OUTPUTS: [&str; 2] = ["report", "html"];

pub(crate) fn check_drift(file: &File, def: &TaskDef, d: &DriftTask, sp: &TaskSpans<'_>, diags: &mut Vec<Diagnostic>) {
    let mut named: Vec<(&str, &str)> = vec![("current", d.current.as_str())];
    if let Source::Input(name) = &d.reference {
        named.push(("reference", name));
    }
    if let Some(Source::Input(name)) = &d.model {
        named.push(("model", name));
    }
    check_inputs(file, def, &named, sp, diags);
    for (field, source) in [("reference", Some(&d.reference)), ("model", d.model.as_ref())] {
        if let Some(source) = source {
            check_source(file, def, field, source, sp, diags);
        }
    }
    check_outputs(file, def, "Drift", &DRIFT_OUTPUTS, "`report` (drift.json) and `html` (the HTML report)", sp, diags);
    if let Some(share) = d.drift_share
        && !(share > 0.0 && share <= 1.0)
    {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-threshold",
                format!("drift_share {share} of task `{}` is not in (0, 1]", def.name),
                file,
            )
            .label(sp.kind_field("drift_share"), "not a share")
            .help("the share of compared columns that must drift for the dataset to count as drifted, e.g. 0.5"),
        );
    }
    check_min_rows(
        file,
        def,
        d.min_rows,
        "the usable values a column needs on each side before it can be judged; default 30",
        sp,
        diags,
    );
    if let Some(bins) = d.bins
        && !(2..=1000).contains(&bins)
    {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-threshold",
                format!("bins {bins} of task `{}` is not in 2..=1000", def.name),
                file,
            )
            .label(sp.kind_field("bins"), "out of range")
            .help("the number of reference-quantile bins for PSI and Jensen–Shannon; default 10"),
        );
    }
    let tests = d.numeric_test.iter().map(|t| ("numeric_test", None, t, true));
    let tests = tests.chain(d.categorical_test.iter().map(|t| ("categorical_test", None, t, false)));
    let per_column = d.tests.iter().map(|(col, t)| ("tests", Some(col.as_str()), t, !d.categorical.contains(col)));
    for (field, column, test, numeric) in tests.chain(per_column) {
        check_test(file, def, field, column, test, numeric, sp, diags);
    }
    for col in &d.critical {
        let left_out = d.exclude.contains(col) || d.columns.as_ref().is_some_and(|c| !c.contains(col));
        if left_out {
            diags.push(
                Diagnostic::new(
                    "dagrun::critical-column",
                    format!("critical column `{col}` of task `{}` is not compared", def.name),
                    file,
                )
                .label(sp.kind_field("critical"), "in here")
                .help("a critical column must be compared: remove it from `exclude`, or add it to `columns`"),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_test(
    file: &File,
    def: &TaskDef,
    field: &str,
    column: Option<&str>,
    t: &TestDef,
    numeric: bool,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let span = || match column {
        Some(c) => sp.map_value_in_kind("tests", c),
        None => sp.kind_field(field),
    };
    let what = column.map_or_else(|| format!("`{field}`"), |c| format!("the test of column `{c}`"));
    if let Some(m) = t.method
        && !numeric
        && matches!(m, DriftMethod::Ks | DriftMethod::Wasserstein)
    {
        diags.push(
            Diagnostic::new(
                "dagrun::drift-method",
                format!("{what} of task `{}` uses {m:?} on categories", def.name),
                file,
            )
            .label(span(), "needs numbers")
            .help("categorical columns take ChiSquare, Psi or JensenShannon"),
        );
    }
    if let Some(m) = t.method
        && numeric
        && field == "numeric_test"
        && m == DriftMethod::ChiSquare
    {
        diags.push(
            Diagnostic::new("dagrun::drift-method", format!("{what} of task `{}` uses ChiSquare on numbers", def.name), file)
                .label(span(), "needs categories")
                .help("numeric columns take Ks, Wasserstein, Psi or JensenShannon; list a column under `categorical` to use ChiSquare"),
        );
    }
    let p_value = matches!(t.method, Some(DriftMethod::Ks | DriftMethod::ChiSquare));
    if let Some(th) = t.threshold {
        let ok = th.is_finite() && th > 0.0 && (!p_value || th < 1.0);
        if !ok {
            let range =
                if p_value { "a p-value threshold in (0, 1), e.g. 0.05" } else { "a positive number, e.g. 0.1" };
            diags.push(
                Diagnostic::new(
                    "dagrun::invalid-threshold",
                    format!("threshold {th} in {what} of task `{}` is invalid", def.name),
                    file,
                )
                .label(span(), "here")
                .help(format!("write {range}")),
            );
        }
    }
}

pub(crate) fn check_performance(
    file: &File,
    def: &TaskDef,
    p: &PerformanceTask,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut named: Vec<(&str, &str)> = vec![("data", p.data.as_str())];
    if let Source::Input(name) = &p.model {
        named.push(("model", name));
        if p.baseline.is_none() {
            diags.push(
                Diagnostic::new("dagrun::missing-baseline", format!("Performance task `{}` has no baseline to compare with", def.name), file)
                    .label(sp.kind_field("model"), "a model input has no recorded metrics")
                    .help("add `baseline: \"verdict\"` (an input holding the model's verdict.json or metrics.json), or use `model: Deployed(registry: \"registry\", name: \"churn\")`"),
            );
        }
    }
    if let Some(b) = &p.baseline {
        named.push(("baseline", b));
    }
    check_inputs(file, def, &named, sp, diags);
    check_source(file, def, "model", &p.model, sp, diags);
    check_outputs(file, def, "Performance", &["report"], "`report` (performance.json)", sp, diags);
    for (metric, tol) in &p.tolerance {
        if !KNOWN_METRICS.contains(&metric.as_str()) {
            let mut d = Diagnostic::new(
                "dagrun::unknown-metric",
                format!("unknown metric `{metric}` in the tolerance of task `{}`", def.name),
                file,
            )
            .label(sp.map_key_in_kind("tolerance", metric), "not a metric");
            d.help = Some(match did_you_mean(metric, KNOWN_METRICS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("metrics: {}", KNOWN_METRICS.join(", ")),
            });
            diags.push(d);
        } else if !(tol.is_finite() && *tol >= 0.0) {
            diags.push(
                Diagnostic::new(
                    "dagrun::invalid-threshold",
                    format!("tolerance {tol} for `{metric}` in task `{}` is invalid", def.name),
                    file,
                )
                .label(sp.map_key_in_kind("tolerance", metric), "here")
                .help("a tolerance is how far the metric may fall behind its baseline: a number ≥ 0, e.g. 0.05"),
            );
        }
    }
    check_min_rows(
        file,
        def,
        p.min_rows,
        "the labelled rows needed before the model is judged; default 100",
        sp,
        diags,
    );
}

/// `min_rows: 0` would judge a column (or a model) on no data at all.
fn check_min_rows(
    file: &File,
    def: &TaskDef,
    min_rows: Option<u64>,
    meaning: &str,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    if min_rows == Some(0) {
        diags.push(
            Diagnostic::new(
                "dagrun::invalid-threshold",
                format!("min_rows of task `{}` must be at least 1", def.name),
                file,
            )
            .label(sp.kind_field("min_rows"), "zero")
            .help(meaning.to_owned()),
        );
    }
}

/// Every `(field, input)` must name a declared input.
pub(crate) fn check_inputs(
    file: &File,
    def: &TaskDef,
    named: &[(&str, &str)],
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    for (field, input) in named {
        if !def.inputs.contains_key(*input) {
            let known: Vec<&str> = def.inputs.keys().map(String::as_str).collect();
            diags.push(
                Diagnostic::new(
                    "dagrun::unknown-input",
                    format!("`{field}` of task `{}` names no input `{input}`", def.name),
                    file,
                )
                .label(sp.kind_field(field), "no such input")
                .help(if known.is_empty() {
                    format!("declare it under `inputs`, e.g. inputs: {{\"{input}\": File(\"data/{input}.csv\")}}")
                } else {
                    format!("inputs of this task: {}", known.join(", "))
                }),
            );
        }
    }
}

/// A `Deployed(...)` source: written with that name (RON reads any struct name there), with a
/// registry and a valid model name.
pub(crate) fn check_source(
    file: &File,
    def: &TaskDef,
    field: &str,
    source: &Source,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let Source::Deployed(d) = source else { return };
    let span = sp.kind_field(field);
    let written = span.clone().and_then(|s| file.text.get(s)).unwrap_or("Deployed");
    if !written.trim_start().starts_with("Deployed") {
        let found: String = written.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        diags.push(
            Diagnostic::new(
                "dagrun::unknown-variant",
                format!("`{field}` of task `{}` is `{found}(...)`", def.name),
                file,
            )
            .label(span, "not an input name or Deployed(...)")
            .help(format!("write an input name (\"{field}\") or Deployed(registry: \"registry\", name: \"churn\")")),
        );
        return;
    }
    let valid = !d.name.is_empty() && d.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if d.registry.is_empty() || !valid {
        diags.push(
            Diagnostic::new("dagrun::invalid-name", format!("task `{}` names an invalid deployed model", def.name), file)
                .label(sp.field("kind"), "here")
                .help("Deployed(registry: \"registry\", name: \"churn\"): a registry directory and a model name of letters, digits, `-` and `_`"),
        );
    }
}

/// Outputs of a native kind: only `allowed` ones, and the first of them is required.
pub(crate) fn check_outputs(
    file: &File,
    def: &TaskDef,
    kind: &str,
    allowed: &[&str],
    what: &str,
    sp: &TaskSpans<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    for name in def.outputs.keys().filter(|n| !allowed.contains(&n.as_str())) {
        diags.push(
            Diagnostic::new(
                "dagrun::unknown-output",
                format!("{kind} task `{}` cannot write an output `{name}`", def.name),
                file,
            )
            .label(
                sp.map_key("outputs", name),
                format!("not {} {kind} output", if kind.starts_with('A') { "an" } else { "a" }),
            )
            .help(format!("{kind} writes {what}")),
        );
    }
    let required = allowed[0];
    if !def.outputs.contains_key(required) {
        diags.push(
            Diagnostic::new(
                "dagrun::missing-output",
                format!("{kind} task `{}` must declare output `{required}`", def.name),
                file,
            )
            .label(sp.field("outputs").or(sp.field("name")), "in this task")
            .help(format!("add it under `outputs`, e.g. \"{required}\": \"out/{required}.json\"")),
        );
    }
}
