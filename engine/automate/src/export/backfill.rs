//! The sharded backfill (`dagrun export ... --shards N`): a CI file started by hand with a range
//! (`from`, `to`) that runs `dagrun backfill --shard I/N` as N parallel jobs (a GitHub Actions
//! matrix, GitLab's `parallel:`), then one job that runs the whole range unsharded: the shards'
//! partitions are cache hits there, and it runs what reads every partition (which shards leave
//! out). The jobs share work only through dagrun's remote cache (`DAGRUN_REMOTE_CACHE`), whose
//! location and credentials come from the CI's variables and secrets.

use std::fmt::Write as _;

use dagrun_workflow::Workflow;

use super::github::{artifacts, keep, setup, state, step};
use super::yaml::{block, defang, gh_quote, quote};
use super::{Export, ExportError, ExportOptions, Target, header};

/// GitHub runs at most 256 jobs of one matrix.
const GITHUB_MAX: (u32, &str) = (256, "a GitHub Actions matrix has at most 256 jobs");
/// GitLab's `parallel:` takes 2 to 200.
const GITLAB_MAX: (u32, &str) = (200, "GitLab's `parallel:` is at most 200");

/// Why the jobs share their work, said in both files.
const SHARED: &str = "The shards share their work only through dagrun's remote cache: DAGRUN_REMOTE_CACHE \
                      (s3://bucket/prefix) with the AWS credentials. Without it each job computes its slice \
                      alone and the final job runs the whole range again.";

/// The number of shards, checked: the workflow has partitions and the CI can run that many jobs.
fn check(wf: &Workflow, shards: u32, (max, limit): (u32, &str)) -> Result<(), ExportError> {
    let why = if wf.tasks.iter().all(|t| t.partitioned.is_none()) {
        format!(
            "a sharded export runs `dagrun backfill`, and workflow `{}` has no partitioned task: export it without --shards",
            wf.name
        )
    } else if shards < 2 {
        "at least 2 shards (one job is the plain backfill)".to_owned()
    } else if shards > max {
        limit.to_owned()
    } else {
        return Ok(());
    };
    Err(ExportError::Shards { shards, why })
}

/// Warnings of the plain export that still hold: the schedule and triggers are not exported here.
fn warnings(t: &Target) -> Vec<String> {
    t.warnings.iter().filter(|w| w.starts_with("model registry")).cloned().collect()
}

/// The GitHub Actions workflow of a backfill in `shards` shards.
pub(super) fn github_actions(
    wf: &Workflow,
    workflow_path: &str,
    opts: &ExportOptions,
    shards: u32,
) -> Result<Export, ExportError> {
    check(wf, shards, GITHUB_MAX)?;
    let t = Target::new(wf, workflow_path, super::github::CI)?;
    let title = format!("dagrun backfill {}", defang(&t.name));
    let mut out = header("github-actions", &t.path);
    let _ = writeln!(out, "name: {}\n", quote(&title));
    let _ = writeln!(
        out,
        "# A backfill in {shards} shards, started by hand with its range: {shards} jobs each run one shard of the\n\
         # partitions (`dagrun backfill --shard I/{shards}`), then one job runs the whole range: the shards'\n\
         # partitions are cache hits there, and it runs the tasks that read every partition.\n\
         # The workflow's schedule is not exported here: export it without --shards for that."
    );
    out.push_str("on:\n  workflow_dispatch:\n    inputs:\n");
    for (name, what, example) in [("from", "First", "2025-01-01"), ("to", "Last", "2025-03-31")] {
        let _ = writeln!(
            out,
            "      {name}:\n        description: \"{what} partition of the range, inclusive (a date such as {example})\"\n        \
             required: true\n        type: string"
        );
    }
    out.push_str("\npermissions:\n  contents: read\n\n");
    out.push_str("# One backfill of this workflow at a time: one started meanwhile waits (it is not cancelled).\n");
    let _ = writeln!(
        out,
        "concurrency:\n  group: {}\n  cancel-in-progress: false\n",
        quote(&format!("{}-backfill", t.key()))
    );
    for line in wrap(SHARED) {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str(
        "# Set the repository variable DAGRUN_REMOTE_CACHE and the secrets AWS_ACCESS_KEY_ID and\n\
         # AWS_SECRET_ACCESS_KEY (Settings > Secrets and variables > Actions); add AWS_REGION, and\n\
         # AWS_ENDPOINT_URL for an S3-compatible server (MinIO, SeaweedFS, R2), here when the bucket needs them.\nenv:\n",
    );
    let _ = writeln!(out, "  DAGRUN_WORKFLOW: {}", gh_quote(&t.path));
    out.push_str(
        "  DAGRUN_REMOTE_CACHE: ${{ vars.DAGRUN_REMOTE_CACHE }}\n  \
         AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}\n  \
         AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n  \
         FROM: ${{ inputs.from }}\n  TO: ${{ inputs.to }}\n\njobs:\n",
    );
    shard_job(&mut out, &t, opts, shards);
    final_job(&mut out, &t, opts);
    let suggested_path = format!(".github/workflows/dagrun-{}-backfill.yml", t.slug);
    let notes = vec![
        format!(
            "commit it as {suggested_path}; start it under Actions > {} > Run workflow with the range",
            quote(&title)
        ),
        "set the repository variable DAGRUN_REMOTE_CACHE and the secrets AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY: the shards share their work only through the remote cache"
            .to_owned(),
    ];
    Ok(Export { text: out, warnings: warnings(&t), notes, suggested_path })
}

/// The matrix: one job per shard, each starting from the newest saved state directory.
fn shard_job(out: &mut String, t: &Target, opts: &ExportOptions, shards: u32) {
    let list: Vec<String> = (1..=shards).map(|i| i.to_string()).collect();
    let _ = writeln!(
        out,
        "  shard:\n    name: dagrun backfill shard ${{{{ matrix.shard }}}}/{shards}\n    runs-on: ubuntu-latest\n    \
         strategy:\n      # Every shard finishes even when another fails: what it ran is cached for the retry.\n      \
         fail-fast: false\n      matrix:\n        shard: [{}]\n    steps:",
        list.join(", ")
    );
    setup(out, t, opts);
    state(out, t, "Restore the state directory (the newest saved one)", "actions/cache/restore@v5", None);
    let _ = writeln!(
        out,
        "      - name: Run shard ${{{{ matrix.shard }}}} of {shards}\n        env:\n          SHARD: ${{{{ matrix.shard }}}}"
    );
    block(
        out,
        8,
        "run:",
        &format!("dagrun backfill \"$DAGRUN_WORKFLOW\" --from \"$FROM\" --to \"$TO\" --shard \"$SHARD/{shards}\""),
    );
    out.push('\n');
}

/// After every shard: the whole range (all cache hits but the unpartitioned tasks), the state
/// directory saved, the outputs uploaded.
fn final_job(out: &mut String, t: &Target, opts: &ExportOptions) {
    out.push_str("  backfill:\n    name: dagrun backfill (the whole range)\n    needs: shard\n    runs-on: ubuntu-latest\n    steps:\n");
    setup(out, t, opts);
    state(out, t, "Restore the state directory", "actions/cache/restore@v5", None);
    step(
        out,
        "Run the whole range (the shards' partitions are cache hits)",
        Some("run"),
        "code=0\ndagrun backfill \"$DAGRUN_WORKFLOW\" --from \"$FROM\" --to \"$TO\" || code=$?\n\
         echo \"exit-code=$code\" >> \"$GITHUB_OUTPUT\"\nexit \"$code\"",
    );
    keep(out, t);
    artifacts(out, t);
}

/// The `.gitlab-ci.yml` of a backfill in `shards` shards.
pub(super) fn gitlab_ci(
    wf: &Workflow,
    workflow_path: &str,
    opts: &ExportOptions,
    shards: u32,
) -> Result<Export, ExportError> {
    use super::gitlab::{artifacts, caches, caches_with, script};
    check(wf, shards, GITLAB_MAX)?;
    let t = Target::new(wf, workflow_path, super::gitlab::CI)?;
    let mut out = header("gitlab-ci", &t.path);
    let _ = writeln!(
        out,
        "#\n# A backfill in {shards} shards: run the pipeline by hand (Build > Pipelines > Run pipeline) with\n\
         # DAGRUN_FROM and DAGRUN_TO. {shards} parallel jobs each run one shard of the partitions\n\
         # (`dagrun backfill --shard $CI_NODE_INDEX/$CI_NODE_TOTAL`), then one job runs the whole range: the\n\
         # shards' partitions are cache hits there, and it runs the tasks that read every partition."
    );
    for line in wrap(SHARED) {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str(
        "# Set DAGRUN_REMOTE_CACHE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (masked) under\n\
         # Settings > CI/CD > Variables: GitLab passes them to every job.\n\n\
         workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"web\"\n    - if: $CI_PIPELINE_SOURCE == \"api\"\n\n\
         variables:\n  DAGRUN_FROM:\n    value: \"\"\n    description: \"First partition of the range, inclusive (a date such as 2025-01-01)\"\n  \
         DAGRUN_TO:\n    value: \"\"\n    description: \"Last partition of the range, inclusive (a date such as 2025-03-31)\"\n\n\
         stages:\n  - shards\n  - backfill\n\n",
    );
    let shard_name = format!("dagrun-{}-shard", t.slug);
    let _ = writeln!(out, "{}:\n  stage: shards\n  image: rust:latest\n  parallel: {shards}", quote(&shard_name));
    variables(&mut out, &t);
    // The shards start from the saved state directory but do not save theirs (the final job does).
    caches_with(&mut out, &t, opts, "      policy: pull\n");
    script(&mut out, &t, opts);
    block(
        &mut out,
        4,
        "-",
        "dagrun backfill \"$DAGRUN_WORKFLOW\" --from \"$DAGRUN_FROM\" --to \"$DAGRUN_TO\" --shard \"$CI_NODE_INDEX/$CI_NODE_TOTAL\"",
    );
    let _ =
        writeln!(out, "\n{}:\n  stage: backfill\n  image: rust:latest", quote(&format!("dagrun-{}-backfill", t.slug)));
    let _ = writeln!(out, "  needs: [{}]", quote(&shard_name));
    out.push_str("  # One backfill of this workflow at a time.\n");
    let _ = writeln!(out, "  resource_group: {}", quote(&format!("{}-backfill", t.key())));
    variables(&mut out, &t);
    caches(&mut out, &t, opts);
    script(&mut out, &t, opts);
    block(
        &mut out,
        4,
        "-",
        "code=0\ndagrun backfill \"$DAGRUN_WORKFLOW\" --from \"$DAGRUN_FROM\" --to \"$DAGRUN_TO\" || code=$?\n\
         dagrun cache gc \"$DAGRUN_WORKFLOW\" --max-age 30d || echo \"dagrun cache gc failed (the state is kept as it is)\"\n\
         exit \"$code\"",
    );
    artifacts(&mut out, &t);
    let notes = vec![
        "set DAGRUN_REMOTE_CACHE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY under Settings > CI/CD > Variables: \
         the shards share their work only through the remote cache"
            .to_owned(),
        "the file's `workflow: rules` allow only web and API pipelines: if the repository has a .gitlab-ci.yml \
         already, merge the jobs into it instead of replacing it"
            .to_owned(),
    ];
    Ok(Export { text: out, warnings: warnings(&t), notes, suggested_path: ".gitlab-ci.yml".to_owned() })
}

/// A GitLab job's `variables:` (the workflow path, not expanded; cargo's home in the project).
fn variables(out: &mut String, t: &Target) {
    out.push_str("  variables:\n    DAGRUN_WORKFLOW:\n");
    let _ = writeln!(out, "      value: {}\n      expand: false", quote(&t.path));
    out.push_str("    CARGO_HOME: $CI_PROJECT_DIR/.cargo-home\n");
}

/// `text` in lines of at most 96 characters, broken at spaces.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.len() + 1 + word.len() > 96 {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}
