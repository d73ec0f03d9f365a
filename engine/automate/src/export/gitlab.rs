//! The `.gitlab-ci.yml`: pipelines only for schedules and manual runs, one job that installs
//! dagrun, keeps the state directory in the GitLab cache (saved whatever the outcome), runs the
//! workflow, fails with dagrun's exit code and keeps the outputs as artifacts. GitLab reads
//! schedules from its UI, not from the file: the header says what to enter there.

use std::fmt::Write as _;

use dagrun_workflow::Workflow;

use super::yaml::{block, comment, list, quote};
use super::{Export, ExportError, ExportOptions, ONNXRUNTIME, Target, header};

pub(super) const CI: &str = "GitLab CI";

/// The `.gitlab-ci.yml` that runs `wf` (whose file is `workflow_path`, relative to the repository
/// root) on a pipeline schedule and by hand.
pub fn gitlab_ci(wf: &Workflow, workflow_path: &str, opts: &ExportOptions) -> Result<Export, ExportError> {
    if let Some(shards) = opts.shards {
        return super::backfill::gitlab_ci(wf, workflow_path, opts, shards);
    }
    let t = Target::new(wf, workflow_path, CI)?;
    let mut warnings = t.warnings.clone();
    for p in t.persist.iter().chain(&t.outputs).filter(|p| p.contains('$')) {
        warnings.push(format!("GitLab expands `$` in cache and artifact paths: {} may not be found", quote(p)));
    }
    let mut out = header("gitlab-ci", &t.path);
    schedule_help(&mut out, &t);
    top(&mut out);
    job(&mut out, &t, opts);
    let mut notes = Vec::new();
    if let Some((_, fields, _)) = &t.schedule {
        notes.push(format!(
            "create the schedule in GitLab under Build > Pipeline schedules: interval pattern `{fields}`, cron timezone {}",
            t.timezone()
        ));
    }
    notes.push(
        "the file's `workflow: rules` allow only scheduled, web and API pipelines: if the repository has a \
         .gitlab-ci.yml already, merge the job into it instead of replacing it"
            .to_owned(),
    );
    Ok(Export { text: out, warnings, notes, suggested_path: ".gitlab-ci.yml".to_owned() })
}

/// The comment that tells how to create the schedule in GitLab's UI.
fn schedule_help(out: &mut String, t: &Target) {
    out.push_str("#\n");
    match &t.schedule {
        Some((expr, fields, _)) => {
            out.push_str(
                "# GitLab does not read schedules from this file. Create one under\n\
                 # Build > Pipeline schedules > New schedule with:\n",
            );
            let _ = writeln!(out, "#   Interval pattern (custom):  {fields}");
            let _ = writeln!(out, "#   Cron timezone:              {}", t.timezone());
            out.push_str("#   Target branch or tag:       the default branch\n");
            if expr.trim() != fields {
                let _ = writeln!(out, "# (the workflow's schedule is {}, written as five fields).", comment(expr));
            }
        }
        None => {
            out.push_str("# The workflow has no schedule: run it by hand (or add a pipeline schedule in GitLab).\n")
        }
    }
    out.push_str(
        "# Run it by hand under Build > Pipelines > Run pipeline; set DAGRUN_PARTITION to run one partition.\n\
         # The job fails with dagrun's exit code: 1 a task failed, 3 invalid workflow,\n\
         # 4 an evaluation gate refused the model (nothing was deployed), 75 state directory busy.\n\n",
    );
}

/// `workflow: rules` and the variables a person can set when running the pipeline by hand.
fn top(out: &mut String) {
    out.push_str(
        "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"schedule\"\n    \
         - if: $CI_PIPELINE_SOURCE == \"web\"\n    - if: $CI_PIPELINE_SOURCE == \"api\"\n\n",
    );
    out.push_str(
        "variables:\n  DAGRUN_PARTITION:\n    value: \"\"\n    \
         description: \"Partition to run (a key or a date such as 2025-01-31); empty: the latest complete one\"\n  \
         DAGRUN_REASON:\n    value: \"\"\n    description: \"Why this run was started (shown in the job log)\"\n\n",
    );
}

/// The job.
fn job(out: &mut String, t: &Target, opts: &ExportOptions) {
    let _ = writeln!(out, "{}:", quote(&format!("dagrun-{}", t.slug)));
    out.push_str("  image: rust:latest\n");
    out.push_str("  # One run of this workflow at a time, like dagrun: a pipeline started meanwhile waits.\n");
    let _ = writeln!(out, "  resource_group: {}", quote(&t.key()));
    out.push_str("  variables:\n    DAGRUN_WORKFLOW:\n");
    let _ = writeln!(out, "      value: {}\n      expand: false", quote(&t.path));
    out.push_str("    CARGO_HOME: $CI_PROJECT_DIR/.cargo-home\n");
    caches(out, t, opts);
    script(out, t, opts);
    block(out, 4, "-", RUN);
    artifacts(out, t);
}

/// Every declared output kept as an artifact, whatever the outcome.
pub(super) fn artifacts(out: &mut String, t: &Target) {
    if t.outputs.is_empty() {
        out.push_str("  # The workflow declares no outputs: no artifacts.\n");
    } else {
        out.push_str("  artifacts:\n    when: always\n    expire_in: 30 days\n");
        list(out, 4, "paths", &t.outputs);
    }
}

/// `script:` and its first lines: what the task kinds need, then dagrun installed.
pub(super) fn script(out: &mut String, t: &Target, opts: &ExportOptions) {
    out.push_str("  script:\n    - export PATH=\"$CARGO_HOME/bin:$PATH\"\n");
    if t.has_wasm {
        out.push_str("    # The workflow has Wasm tasks.\n    - rustup target add wasm32-wasip2\n");
    }
    if t.has_onnx {
        out.push_str("    # The workflow has OnnxEval/OnnxPredict tasks: ONNX Runtime comes as a Python wheel.\n");
        block(
            out,
            4,
            "-",
            &format!(
                "if ! python3 -m venv --help >/dev/null 2>&1; then\n  \
                 apt-get update -qq && apt-get install -y -qq python3-venv\nfi\n\
                 python3 -m venv .venv-onnxruntime\n\
                 .venv-onnxruntime/bin/pip install --quiet \"{ONNXRUNTIME}\""
            ),
        );
        out.push_str("    - export PATH=\"$CI_PROJECT_DIR/.venv-onnxruntime/bin:$PATH\"\n");
    }
    out.push_str("    # Install dagrun.\n");
    block(out, 4, "-", &opts.install);
}

/// The install cache and the state cache (saved also when the job fails, so a refused run's
/// record and the cache entries of the tasks that succeeded are kept).
pub(super) fn caches(out: &mut String, t: &Target, opts: &ExportOptions) {
    caches_with(out, t, opts, "      when: always\n");
}

/// [`caches`] with the state cache's `when`/`policy` lines.
pub(super) fn caches_with(out: &mut String, t: &Target, opts: &ExportOptions, state: &str) {
    let hash = blake3::hash(opts.install.as_bytes()).to_hex();
    let _ = writeln!(out, "  cache:\n    - key: dagrun-install-{}", &hash[..8]);
    out.push_str(
        "      paths:\n        - .cargo-home/bin/\n        - .cargo-home/registry/index/\n        \
         - .cargo-home/registry/cache/\n        - .cargo-home/git/db/\n        - .cargo-home/.crates.toml\n        \
         - .cargo-home/.crates2.json\n",
    );
    let _ = writeln!(out, "    - key: {}", quote(&t.key()));
    list(out, 6, "paths", &t.persist);
    out.push_str(state);
}

/// `dagrun run`, with `--partition` when one was given, then a line that says what happened;
/// the job ends with dagrun's exit code.
const RUN: &str = r#"if [ -n "${DAGRUN_REASON:-}" ]; then printf 'reason: %s\n' "$DAGRUN_REASON"; fi
code=0
if [ -n "${DAGRUN_PARTITION:-}" ]; then
  dagrun run "$DAGRUN_WORKFLOW" --partition "$DAGRUN_PARTITION" || code=$?
else
  dagrun run "$DAGRUN_WORKFLOW" || code=$?
fi
case "$code" in
  0) echo "dagrun: succeeded" ;;
  4) echo "dagrun: REFUSED: an evaluation gate refused the model (exit code 4); nothing was deployed" ;;
  *) echo "dagrun: FAILED with exit code $code" ;;
esac
dagrun cache gc "$DAGRUN_WORKFLOW" --max-age 30d || echo "dagrun cache gc failed (the state is kept as it is)"
exit "$code""#;
