//! The GitHub Actions workflow: the schedule (with its time zone), manual dispatch with a
//! partition, one job at a time per workflow, dagrun installed (and cached), the state directory
//! restored from and saved to the Actions cache, `dagrun run`, the outputs as an artifact, and a
//! step summary that says when the gate refused.

use std::fmt::Write as _;

use dagrun_workflow::Workflow;

use super::yaml::{block, comment, defang, gh_quote, quote};
use super::{Export, ExportError, ExportOptions, ONNXRUNTIME, Target, header};

pub(super) const CI: &str = "GitHub Actions";

/// The GitHub Actions workflow that runs `wf` (whose file is `workflow_path`, relative to the
/// repository root) on its schedule and by hand.
pub fn github_actions(wf: &Workflow, workflow_path: &str, opts: &ExportOptions) -> Result<Export, ExportError> {
    if let Some(shards) = opts.shards {
        return super::backfill::github_actions(wf, workflow_path, opts, shards);
    }
    let t = Target::new(wf, workflow_path, CI)?;
    let mut warnings = t.warnings.clone();
    if let Some((_, fields, _)) = &t.schedule
        && super::cron::more_often_than_5_minutes(fields)
    {
        warnings.push(format!(
            "the schedule `{fields}` runs more often than every 5 minutes: GitHub runs it at most every 5 minutes"
        ));
    }
    let mut out = header("github-actions", &t.path);
    top(&mut out, &t);
    job(&mut out, &t, opts);
    let suggested_path = format!(".github/workflows/dagrun-{}.yml", t.slug);
    let notes = vec![format!(
        "commit it as {suggested_path} on the default branch (GitHub runs schedules from there only); \
         start it by hand under Actions > {}",
        quote(&format!("dagrun {}", defang(&t.name)))
    )];
    Ok(Export { text: out, warnings, notes, suggested_path })
}

/// `name`, `on` (schedule and dispatch), `permissions` and `concurrency`.
fn top(out: &mut String, t: &Target) {
    let _ = writeln!(out, "name: {}\n", quote(&format!("dagrun {}", defang(&t.name))));
    out.push_str("on:\n");
    match &t.schedule {
        Some((expr, fields, tz)) => {
            out.push_str("  schedule:\n");
            if expr.trim() != fields {
                let _ = writeln!(out, "    # The workflow's schedule is {}: written as five fields.", comment(expr));
            }
            let _ = writeln!(out, "    - cron: {}", quote(fields));
            if let Some(tz) = tz {
                let _ = writeln!(
                    out,
                    "      # Read in {tz}, as the workflow says (GitHub versions without `timezone` read cron in UTC)."
                );
                let _ = writeln!(out, "      timezone: {}", quote(tz));
            }
        }
        None => out.push_str("  # The workflow has no schedule: it runs only when started by hand.\n"),
    }
    out.push_str(
        "  workflow_dispatch:\n    inputs:\n      partition:\n        \
         description: \"Partition to run (a key or a date such as 2025-01-31); empty: the latest complete one\"\n        \
         required: false\n        default: \"\"\n        type: string\n      reason:\n        \
         description: \"Why this run was started (shown in the log and the summary)\"\n        \
         required: false\n        default: \"\"\n        type: string\n\n",
    );
    out.push_str("permissions:\n  contents: read\n\n");
    out.push_str(
        "# One run of this workflow at a time, like dagrun: a run started meanwhile waits (it is not cancelled).\n",
    );
    let _ = writeln!(out, "concurrency:\n  group: {}\n  cancel-in-progress: false\n", quote(&t.key()));
}

/// The job and its steps.
fn job(out: &mut String, t: &Target, opts: &ExportOptions) {
    out.push_str("jobs:\n  run:\n    name: dagrun run\n    runs-on: ubuntu-latest\n    env:\n");
    let _ = writeln!(out, "      DAGRUN_WORKFLOW: {}", gh_quote(&t.path));
    out.push_str("    steps:\n");
    setup(out, t, opts);
    state(out, t, "Restore the state directory", "actions/cache/restore@v5", None);
    run_step(out);
    keep(out, t);
    artifacts(out, t);
    summary(out);
}

/// The steps before dagrun runs: the checkout, Rust (and what the task kinds need), dagrun.
pub(super) fn setup(out: &mut String, t: &Target, opts: &ExportOptions) {
    out.push_str("      - name: Check out the repository\n        uses: actions/checkout@v5\n\n");
    step(
        out,
        "Install Rust",
        None,
        "rustup toolchain install stable --profile minimal --no-self-update\nrustup default stable",
    );
    if t.has_wasm {
        step(
            out,
            "Add the wasm32-wasip2 target (the workflow has Wasm tasks)",
            None,
            "rustup target add wasm32-wasip2",
        );
    }
    if t.has_onnx {
        out.push_str(
            "      - name: Set up Python (ONNX Runtime comes as a Python wheel)\n        \
             uses: actions/setup-python@v6\n        with:\n          python-version: \"3.12\"\n\n",
        );
        step(
            out,
            "Install ONNX Runtime (the workflow has OnnxEval/OnnxPredict tasks)",
            None,
            &format!("python -m pip install --quiet \"{ONNXRUNTIME}\""),
        );
    }
    install(out, opts);
}

/// After the step `run` (which sets `exit-code`), whatever its outcome: the state directory
/// pruned, then saved.
pub(super) fn keep(out: &mut String, t: &Target) {
    let saved = "always() && steps.run.outputs.exit-code != ''";
    let _ = writeln!(out, "      - name: Prune the state directory (entries unused for 30 days)\n        if: {saved}");
    block(out, 8, "run:", "dagrun cache gc \"$DAGRUN_WORKFLOW\" --max-age 30d");
    out.push('\n');
    state(out, t, "Save the state directory", "actions/cache/save@v5", Some(saved));
}

/// A `run:` step (the script is ours, never text from the workflow file).
pub(super) fn step(out: &mut String, name: &str, id: Option<&str>, script: &str) {
    let _ = writeln!(out, "      - name: {name}");
    if let Some(id) = id {
        let _ = writeln!(out, "        id: {id}");
    }
    block(out, 8, "run:", script);
    out.push('\n');
}

/// Cache `~/.cargo` for the install, then run the install command.
fn install(out: &mut String, opts: &ExportOptions) {
    let hash = blake3::hash(opts.install.as_bytes()).to_hex();
    out.push_str(
        "      - name: Cache the dagrun install\n        uses: actions/cache@v5\n        with:\n          path: |\n            \
         ~/.cargo/bin/\n            ~/.cargo/registry/index/\n            ~/.cargo/registry/cache/\n            \
         ~/.cargo/git/db/\n            ~/.cargo/.crates.toml\n            ~/.cargo/.crates2.json\n",
    );
    let _ = writeln!(out, "          key: dagrun-install-${{{{ runner.os }}}}-{}\n", &hash[..8]);
    out.push_str("      - name: Install dagrun\n");
    block(out, 8, "run:", &opts.install);
    out.push('\n');
}

/// Restore (keyed per run, falling back to the newest earlier entry) or save the state
/// directory and the model registries.
pub(super) fn state(out: &mut String, t: &Target, name: &str, action: &str, condition: Option<&str>) {
    let _ = writeln!(out, "      - name: {name}");
    match condition {
        Some(c) => {
            let _ = writeln!(out, "        if: {c}");
        }
        None => out.push_str("        id: restore\n"),
    }
    let _ = writeln!(out, "        uses: {action}\n        with:");
    paths(out, &t.persist);
    if condition.is_some() {
        out.push_str("          key: ${{ steps.restore.outputs.cache-primary-key }}\n\n");
        return;
    }
    out.push_str(
        "          # A new entry per run; each run starts from the newest one (the restore key is a prefix).\n",
    );
    let _ = writeln!(out, "          key: {}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}", t.key());
    let _ = writeln!(out, "          restore-keys: {}-\n", t.key());
}

/// `path:` with one literal path per line (GitHub reads it as globs: see `yaml::glob_literal`).
fn paths(out: &mut String, paths: &[String]) {
    let lines: Vec<String> = paths.iter().map(|p| super::yaml::gh_literal(p)).collect();
    let text = lines.join("\n");
    let one_per_line = paths.iter().all(|p| !p.contains(['\n', '\r']));
    if one_per_line {
        block(out, 10, "path:", &text);
    } else {
        let _ = writeln!(out, "          path: {}", quote(&text));
    }
}

/// `dagrun run`, with `--partition` when one was given; the exit code is kept for the summary
/// and is the step's own, so a refusing gate (4) fails the job.
fn run_step(out: &mut String) {
    out.push_str(
        "      - name: Run the workflow\n        id: run\n        env:\n          \
         PARTITION: ${{ inputs.partition }}\n          REASON: ${{ inputs.reason }}\n",
    );
    block(
        out,
        8,
        "run:",
        r#"if [ -n "$REASON" ]; then printf 'reason: %s\n' "$REASON"; fi
code=0
if [ -n "$PARTITION" ]; then
  dagrun run "$DAGRUN_WORKFLOW" --partition "$PARTITION" || code=$?
else
  dagrun run "$DAGRUN_WORKFLOW" || code=$?
fi
echo "exit-code=$code" >> "$GITHUB_OUTPUT"
if [ "$code" -eq 4 ]; then
  echo "::error title=Gate refused::an evaluation gate refused the model: nothing was deployed (dagrun exit code 4)"
fi
exit "$code""#,
    );
    out.push('\n');
}

/// Every declared output, uploaded whatever the outcome.
pub(super) fn artifacts(out: &mut String, t: &Target) {
    if t.outputs.is_empty() {
        out.push_str("      # The workflow declares no outputs: nothing to upload.\n\n");
        return;
    }
    out.push_str("      - name: Upload the outputs\n        if: always()\n        uses: actions/upload-artifact@v6\n        with:\n");
    let _ = writeln!(out, "          name: {}", quote(&format!("dagrun-{}-outputs", t.slug)));
    paths(out, &t.outputs);
    out.push_str("          if-no-files-found: warn\n\n");
}

/// The step summary: what happened, in words, and the run's table.
fn summary(out: &mut String) {
    out.push_str(
        "      - name: Summary\n        if: always()\n        env:\n          \
         CODE: ${{ steps.run.outputs.exit-code }}\n          REASON: ${{ inputs.reason }}\n",
    );
    block(
        out,
        8,
        "run:",
        r####"{
  case "$CODE" in
    0) echo "### dagrun: succeeded" ;;
    1) echo "### dagrun: FAILED: a task failed (exit code 1)" ;;
    3) echo "### dagrun: the workflow file is invalid (exit code 3)" ;;
    4) echo "### dagrun: REFUSED: an evaluation gate refused the model (exit code 4); nothing was deployed" ;;
    75) echo "### dagrun: another run held the state directory (exit code 75)" ;;
    130) echo "### dagrun: interrupted (exit code 130)" ;;
    "") echo "### dagrun did not run: an earlier step failed" ;;
    *) echo "### dagrun: failed with exit code $CODE" ;;
  esac
  if [ -n "$REASON" ]; then printf '\nStarted by hand: %s\n' "$REASON"; fi
  if [ -n "$CODE" ]; then
    echo
    echo '```text'
    dagrun show last "$DAGRUN_WORKFLOW" 2>&1 || echo "(no run record)"
    echo '```'
  fi
} >> "$GITHUB_STEP_SUMMARY""####,
    );
}
