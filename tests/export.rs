//! End-to-end tests of `dagrun export`: the real binary on workflows in a temporary git
//! repository. The GitHub file must pass `actionlint`, the GitLab file must parse as YAML with
//! the expected keys, and the generated run steps, executed with bash, must end with dagrun's
//! exit code (4 when the gate refuses) and pass a partition without it reaching the shell.
//!
//! `actionlint` is found through `DAGRUN_ACTIONLINT` or `PATH`; PyYAML in the Python next to it
//! (the venv `./scripts/test.sh` creates) or in `python3`. A missing tool fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The demo's shape (`workflows/retrain.ron`) with a schedule.
const RETRAIN: &str = r#"Workflow(
    name: "retrain",
    schedule: Cron(expr: "@daily", timezone: "Europe/Berlin"),
    tasks: [
        Task(name: "train-data", kind: Wasm(plugin: "../plugins/generate"),
             params: {"rows": 200, "seed": 1}, outputs: {"data": "out/retrain/train.csv"}),
        Task(name: "test-data", kind: Wasm(plugin: "../plugins/generate"),
             params: {"rows": 50, "seed": 2}, outputs: {"data": "out/retrain/test.csv"}),
        Task(name: "train", kind: Wasm(plugin: "../plugins/train"), inputs: {"data": Output("train-data", "data")},
             outputs: {"model": "out/retrain/model.onnx", "metrics": "out/retrain/train-metrics.json"}),
        Task(name: "evaluate",
             kind: OnnxEval(model: "model", data: "test", label: "label", gate: Gate(
                 min: {"accuracy": 0.6},
                 champion: Champion(registry: "registry", name: "churn", metric: "accuracy", margin: 0.0))),
             inputs: {"model": Output("train", "model"), "test": Output("test-data", "data")},
             outputs: {"metrics": "out/retrain/metrics.json", "verdict": "out/retrain/verdict.json"}),
        Task(name: "deploy", kind: Wasm(plugin: "../plugins/deploy", mounts: {"registry": (path: "registry", writable: true)}),
             inputs: {"model": Output("train", "model"), "verdict": Output("evaluate", "verdict")},
             params: {"name": "churn"}, outputs: {"receipt": "out/retrain/receipt.json"}),
    ],
)"#;

/// A temporary git repository (a `.git` directory is all dagrun looks for).
struct Repo(tempfile::TempDir);

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        Repo(dir)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.path().join(p)
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `dagrun ARGS` run in `cwd` (relative to the repository).
    fn dagrun(&self, cwd: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dagrun")).args(args).current_dir(self.path(cwd)).output().unwrap()
    }

    /// Exports `workflow` for `target` with `--out FILE`, checks it succeeded, returns stderr.
    fn export(&self, target: &str, workflow: &str, out: &str) -> String {
        let o = self.dagrun("", &["export", target, workflow, "--out", out]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        text(&o.stderr)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const INSTALL_HINT: &str = "run ./scripts/test.sh once: it installs actionlint and PyYAML into a venv and sets \
                            DAGRUN_ACTIONLINT (or set DAGRUN_ACTIONLINT=/path/to/actionlint yourself)";

/// The `actionlint` binary: `DAGRUN_ACTIONLINT`, else the first on `PATH`. Missing: the test fails.
fn actionlint() -> PathBuf {
    if let Some(p) = std::env::var_os("DAGRUN_ACTIONLINT") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "DAGRUN_ACTIONLINT={} is not a file: {INSTALL_HINT}", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|d| d.join("actionlint")).find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("actionlint not found (DAGRUN_ACTIONLINT unset, none on PATH): {INSTALL_HINT}"))
}

/// Runs actionlint on `file` (with the ShellCheck beside it, when there is one, for `run:` scripts).
fn lint(file: &Path) {
    let bin = actionlint();
    let mut cmd = Command::new(&bin);
    if let Some(sc) = bin.parent().map(|d| d.join("shellcheck")).filter(|p| p.is_file()) {
        cmd.arg("-shellcheck").arg(sc);
    }
    let o = cmd.arg("-no-color").arg(file).output().unwrap();
    let file_text = std::fs::read_to_string(file).unwrap();
    assert!(
        o.status.success(),
        "actionlint rejects {}:\n{}{}\n{file_text}",
        file.display(),
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// `file` parsed by PyYAML, as JSON (YAML 1.1: GitHub's `on` key reads as `true`).
fn yaml(file: &Path) -> Value {
    let beside = actionlint().parent().map(|d| d.join("python3")).filter(|p| p.is_file());
    let python = beside.unwrap_or_else(|| PathBuf::from("python3"));
    let script = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sys.stdout)";
    let o = Command::new(&python).args(["-c", script]).arg(file).output();
    let o = o.unwrap_or_else(|e| panic!("cannot run {}: {e}: {INSTALL_HINT}", python.display()));
    assert!(
        o.status.success(),
        "PyYAML could not read {} with {}: {}\n{INSTALL_HINT}",
        file.display(),
        python.display(),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The GitHub job's step with `id`.
fn step<'a>(gh: &'a Value, id: &str) -> &'a Value {
    let steps = gh["jobs"]["run"]["steps"].as_array().unwrap();
    steps.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no step `{id}`"))
}

/// Runs `script` as CI would (`bash -e`) in `dir` with `env`, and `dagrun` on `PATH` being `dagrun_bin`.
fn bash(dir: &Path, script: &str, dagrun_bin: &Path, env: &[(&str, &str)]) -> Output {
    let bin = dir.join(".test-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("dagrun");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(dagrun_bin, &link).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", script]).current_dir(dir).env("PATH", path);
    cmd.envs(env.iter().copied()).output().unwrap()
}

/// A stand-in for dagrun that records its arguments (one per line) and exits with `$FAKE_CODE`.
fn fake_dagrun(dir: &Path) -> PathBuf {
    let p = dir.join("fake-dagrun");
    std::fs::write(
        &p,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> \"$FAKE_ARGS\"\nexit \"${FAKE_CODE:-0}\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&p, perms).unwrap();
    p
}

#[test]
fn the_github_file_passes_actionlint_and_names_the_workflow_from_the_repository_root() {
    let repo = Repo::new();
    repo.write("workflows/retrain.ron", RETRAIN);
    // Run from inside `workflows/`: the file still names `workflows/retrain.ron`.
    let o = repo.dagrun(
        "workflows",
        &["export", "github-actions", "retrain.ron", "--out", "../.github/workflows/dagrun-retrain.yml"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "with --out nothing goes to stdout");
    let file = repo.path(".github/workflows/dagrun-retrain.yml");
    lint(&file);
    let gh = yaml(&file);
    assert_eq!(gh["jobs"]["run"]["env"]["DAGRUN_WORKFLOW"], "workflows/retrain.ron");
    assert_eq!(gh["true"]["schedule"][0], serde_json::json!({"cron": "0 0 * * *", "timezone": "Europe/Berlin"}));
    let restore = step(&gh, "restore");
    assert_eq!(restore["with"]["path"], "workflows/.dagrun\nworkflows/registry\n");
    let runs: Vec<&str> =
        gh["jobs"]["run"]["steps"].as_array().unwrap().iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(runs.iter().any(|r| r.contains("rustup target add wasm32-wasip2")), "{runs:?}");
    assert!(runs.iter().any(|r| r.contains("onnxruntime==1.31.1")), "{runs:?}");
}

#[test]
fn without_out_the_file_goes_to_stdout_and_a_missing_schedule_is_a_warning() {
    let repo = Repo::new();
    repo.write("wf.ron", r#"Workflow(name: "plain", tasks: [Task(name: "t", kind: Command(run: "true"))])"#);
    let o = repo.dagrun("", &["export", "github-actions", "wf.ron", "--install", "pip install dagrun-bin"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        out.starts_with("# Generated by `dagrun export github-actions`") && out.contains("workflow_dispatch:"),
        "{out}"
    );
    assert!(!out.contains("  schedule:\n") && !out.contains("wasm32") && !out.contains("onnxruntime"), "{out}");
    assert!(out.contains("run: |\n          pip install dagrun-bin\n"), "{out}");
    assert!(
        err.contains(
            "warning: workflow `plain` has no schedule: the GitHub Actions file runs it only when started by hand"
        ),
        "{err}"
    );
    assert!(err.contains("note: commit it as .github/workflows/dagrun-plain.yml"), "{err}");
    repo.write(".github/workflows/plain.yml", &out);
    lint(&repo.path(".github/workflows/plain.yml"));
}

#[test]
fn the_gitlab_file_is_yaml_with_the_expected_keys() {
    let repo = Repo::new();
    repo.write("workflows/retrain.ron", RETRAIN);
    let err = repo.export("gitlab-ci", "workflows/retrain.ron", "ci/.gitlab-ci.yml");
    assert!(err.contains("note: create the schedule in GitLab under Build > Pipeline schedules: interval pattern `0 0 * * *`, cron timezone Europe/Berlin"), "{err}");
    let file = repo.path("ci/.gitlab-ci.yml");
    let gl = yaml(&file);
    let sources: Vec<&str> =
        gl["workflow"]["rules"].as_array().unwrap().iter().map(|r| r["if"].as_str().unwrap()).collect();
    assert_eq!(
        sources,
        ["$CI_PIPELINE_SOURCE == \"schedule\"", "$CI_PIPELINE_SOURCE == \"web\"", "$CI_PIPELINE_SOURCE == \"api\""]
    );
    let job = &gl["dagrun-retrain"];
    assert_eq!(
        job["variables"]["DAGRUN_WORKFLOW"],
        serde_json::json!({"value": "workflows/retrain.ron", "expand": false})
    );
    let state = &job["cache"][1];
    assert_eq!(state["paths"], serde_json::json!(["workflows/.dagrun", "workflows/registry"]));
    assert_eq!(state["when"], "always");
    assert!(state["key"].as_str().unwrap().starts_with("dagrun-retrain-"));
    assert_eq!(job["artifacts"]["when"], "always");
    assert!(job["artifacts"]["paths"].as_array().unwrap().contains(&"workflows/out/retrain/model.onnx".into()));
    assert!(job["resource_group"].as_str().unwrap().starts_with("dagrun-retrain-"));
    let script = job["script"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(script.contains("rustup target add wasm32-wasip2") && script.contains("onnxruntime==1.31.1"), "{script}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("#   Cron timezone:              Europe/Berlin"), "{text}");
    assert!(gl["variables"]["DAGRUN_PARTITION"]["description"].is_string());
}

#[test]
fn a_refusing_gate_fails_the_job_with_exit_code_4_and_partitions_never_reach_the_shell() {
    let repo = Repo::new();
    repo.write("workflows/retrain.ron", RETRAIN);
    repo.export("github-actions", "workflows/retrain.ron", ".github/workflows/d.yml");
    repo.export("gitlab-ci", "workflows/retrain.ron", ".gitlab-ci.yml");
    let gh = yaml(&repo.path(".github/workflows/d.yml"));
    let gl = yaml(&repo.path(".gitlab-ci.yml"));
    let run = step(&gh, "run");
    let script = run["run"].as_str().unwrap();
    assert!(
        !script.contains("|| true") && run.get("continue-on-error").is_none(),
        "the exit code is not swallowed: {run}"
    );
    let fake = fake_dagrun(repo.0.path());
    let (args, output, summary) = (repo.path("args"), repo.path("gh-output"), repo.path("summary.md"));
    let evil = "$(touch pwned); `touch pwned2` ${{ x }}";
    let env = [
        ("DAGRUN_WORKFLOW", "workflows/retrain.ron"),
        ("PARTITION", evil),
        ("REASON", "nightly"),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("FAKE_ARGS", args.to_str().unwrap()),
        ("FAKE_CODE", "4"),
    ];
    let o = bash(repo.0.path(), script, &fake, &env);
    assert_eq!(o.status.code(), Some(4), "the job fails with the gate's exit code: {}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&args).unwrap(), format!("run\nworkflows/retrain.ron\n--partition\n{evil}\n"));
    assert!(!repo.path("pwned").exists() && !repo.path("pwned2").exists());
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "exit-code=4\n");
    assert!(text(&o.stdout).contains("::error title=Gate refused::"), "{}", text(&o.stdout));

    let summary_step = gh["jobs"]["run"]["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Summary").unwrap();
    let env = [
        ("CODE", "4"),
        ("REASON", ""),
        ("DAGRUN_WORKFLOW", "w.ron"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let o = bash(repo.0.path(), summary_step["run"].as_str().unwrap(), &fake, &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("REFUSED: an evaluation gate refused the model (exit code 4)")
    );

    let gl_script = gl["dagrun-retrain"]["script"].as_array().unwrap().last().unwrap().as_str().unwrap();
    std::fs::remove_file(&args).unwrap();
    let env = [
        ("DAGRUN_WORKFLOW", "workflows/retrain.ron"),
        ("DAGRUN_PARTITION", evil),
        ("FAKE_ARGS", args.to_str().unwrap()),
        ("FAKE_CODE", "4"),
    ];
    let o = bash(repo.0.path(), gl_script, &fake, &env);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("dagrun: REFUSED"), "{}", text(&o.stdout));
    assert!(
        std::fs::read_to_string(&args)
            .unwrap()
            .starts_with(&format!("run\nworkflows/retrain.ron\n--partition\n{evil}\n"))
    );
    assert!(!repo.path("pwned").exists());
}

#[test]
fn the_generated_run_step_runs_the_real_dagrun() {
    let repo = Repo::new();
    repo.write("flows/wf.ron", r#"Workflow(name: "hello", tasks: [Task(name: "t", kind: Command(run: "echo hi > out/hi.txt"), outputs: {"o": "out/hi.txt"})])"#);
    repo.export("github-actions", "flows/wf.ron", ".github/workflows/hello.yml");
    let gh = yaml(&repo.path(".github/workflows/hello.yml"));
    let output = repo.path("gh-output");
    let env = [
        ("DAGRUN_WORKFLOW", "flows/wf.ron"),
        ("PARTITION", ""),
        ("REASON", ""),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
    ];
    let o =
        bash(repo.0.path(), step(&gh, "run")["run"].as_str().unwrap(), Path::new(env!("CARGO_BIN_EXE_dagrun")), &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(repo.path("flows/out/hi.txt")).unwrap(), "hi\n");
    assert!(repo.path("flows/.dagrun").is_dir(), "the state directory is where the cache step looks");
    assert_eq!(step(&gh, "restore")["with"]["path"], "flows/.dagrun\n");
}

#[test]
fn weird_names_and_paths_are_quoted_and_still_pass_actionlint() {
    let repo = Repo::new();
    let dir = "we ird/it's \"${{ github.token }}\"";
    repo.write(
        &format!("{dir}/wf.ron"),
        r##"Workflow(
            name: "we\"ird ${{ secrets.TOKEN }} 'x' # no comment: a",
            schedule: Cron("0 3 * * 7"),
            tasks: [Task(name: "t", kind: Command(run: "true"), outputs: {"o": "out/a b ${{ x }}.txt", "p": "#o/!x*.txt"})],
        )"##,
    );
    let wf = format!("{dir}/wf.ron");
    repo.export("github-actions", &wf, ".github/workflows/weird.yml");
    let file = repo.path(".github/workflows/weird.yml");
    lint(&file);
    let gh = yaml(&file);
    assert_eq!(gh["name"], "dagrun we\"ird $ {{ secrets.TOKEN }} 'x' # no comment: a");
    assert_eq!(gh["jobs"]["run"]["env"]["DAGRUN_WORKFLOW"], "we ird/it's \"${{ '${{' }} github.token }}\"/wf.ron");
    assert_eq!(gh["true"]["schedule"][0]["cron"], "0 3 * * 0");
    let upload =
        gh["jobs"]["run"]["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Upload the outputs").unwrap();
    assert_eq!(
        upload["with"]["path"],
        "we ird/it's \"$[{][{] github.token [}][}]\"/out/a b $[{][{] x [}][}].txt\nwe ird/it's \"$[{][{] github.token [}][}]\"/#o/!x[*].txt\n"
    );

    let err = repo.export("gitlab-ci", &wf, "weird.gitlab-ci.yml");
    assert!(err.contains("warning: GitLab expands `$`"), "{err}");
    let gl = yaml(&repo.path("weird.gitlab-ci.yml"));
    let (name, job) = gl.as_object().unwrap().iter().find(|(k, _)| k.starts_with("dagrun-")).unwrap();
    assert!(name.starts_with("dagrun-we-ird-secrets-token-x-no-comment-a"), "{name}");
    assert_eq!(job["variables"]["DAGRUN_WORKFLOW"]["value"], wf);
}

#[test]
fn invalid_workflows_and_untranslatable_schedules_fail_without_writing() {
    let repo = Repo::new();
    repo.write("bad.ron", r#"Workflow(name: "bad", tasks: [Task(name: "t", kind: Command(run: "true"), bogus: 1)])"#);
    let o = repo.dagrun("", &["export", "gitlab-ci", "bad.ron", "--out", "out/ci.yml"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("bogus"), "{}", text(&o.stderr));
    assert!(!repo.path("out").exists());

    repo.write("last.ron", r#"Workflow(name: "l", schedule: Cron("0 3 L * *"), tasks: [])"#);
    let o = repo.dagrun("", &["export", "github-actions", "last.ron", "--out", "ci.yml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("error: the schedule `0 3 L * *` cannot be written for GitHub Actions"),
        "{}",
        text(&o.stderr)
    );
    assert!(!repo.path("ci.yml").exists());
}

/// Ten days of `prep` (each logs that it ran) and `total`, which reads every day.
const DAYS: &str = r#"Workflow(name: "days",
    partitions: {"d": Daily(start: "2025-01-01", end: "2025-01-10")},
    tasks: [
        Task(name: "prep", partitioned: "d", kind: Command(run: "echo prep $DAGRUN_PARTITION >> ran.log; echo $DAGRUN_PARTITION > $DAGRUN_OUT_O"),
             outputs: {"o": "out/{date}.txt"}),
        Task(name: "total", kind: Command(run: "echo total >> ran.log; cat $DAGRUN_IN_ALL | wc -l > $DAGRUN_OUT_T"),
             inputs: {"all": Partitions(task: "prep", output: "o")}, outputs: {"t": "out/total.txt"}),
    ],
)"#;

/// `ran.log` of the workflow in `flows/`: how often each line is there.
fn ran_counts(repo: &Repo) -> std::collections::BTreeMap<String, usize> {
    let log = std::fs::read_to_string(repo.path("flows/ran.log")).unwrap_or_default();
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines() {
        *counts.entry(line.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// After the shards: every day ran once, `total` not yet; after the final job: `total` once too.
fn assert_shards_then_total(repo: &Repo, after_shards: bool) {
    let counts = ran_counts(repo);
    let days: Vec<String> = (1..=10).map(|d| format!("prep 2025-01-{d:02}")).collect();
    assert!(days.iter().all(|d| counts.get(d) == Some(&1)), "each day ran exactly once: {counts:?}");
    assert_eq!(counts.get("total").copied().unwrap_or(0), usize::from(!after_shards), "{counts:?}");
    assert_eq!(counts.len(), if after_shards { 10 } else { 11 }, "{counts:?}");
}

#[test]
fn the_sharded_github_file_passes_actionlint_and_its_jobs_complete_the_range_with_the_real_dagrun() {
    let repo = Repo::new();
    repo.write("flows/wf.ron", DAYS);
    let o = repo
        .dagrun("", &["export", "github-actions", "flows/wf.ron", "--shards", "3", "--out", ".github/workflows/b.yml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("the shards share their work only through the remote cache"),
        "{}",
        text(&o.stderr)
    );
    let file = repo.path(".github/workflows/b.yml");
    lint(&file);
    let gh = yaml(&file);
    assert_eq!(gh["jobs"]["shard"]["strategy"]["matrix"]["shard"], serde_json::json!([1, 2, 3]));
    assert_eq!(gh["jobs"]["backfill"]["needs"], "shard");
    assert_eq!(gh["env"]["DAGRUN_REMOTE_CACHE"], "${{ vars.DAGRUN_REMOTE_CACHE }}");
    assert_eq!(gh["env"]["AWS_ACCESS_KEY_ID"], "${{ secrets.AWS_ACCESS_KEY_ID }}");
    assert_eq!(gh["true"]["workflow_dispatch"]["inputs"]["from"]["required"], true);
    let shard_step = gh["jobs"]["shard"]["steps"].as_array().unwrap().iter().find(|s| s["env"]["SHARD"].is_string());
    let shard_script = shard_step.expect("the step that runs a shard")["run"].as_str().unwrap();
    let final_step = gh["jobs"]["backfill"]["steps"].as_array().unwrap().iter().find(|s| s["id"] == "run");
    let final_script = final_step.expect("the final run step")["run"].as_str().unwrap();
    // The jobs' scripts run here with one state directory, standing in for the remote cache
    // the CI jobs share.
    let dagrun = Path::new(env!("CARGO_BIN_EXE_dagrun"));
    let range = [("DAGRUN_WORKFLOW", "flows/wf.ron"), ("FROM", "2025-01-01"), ("TO", "2025-01-10")];
    for shard in ["1", "2", "3"] {
        let env: Vec<(&str, &str)> = range.iter().copied().chain([("SHARD", shard)]).collect();
        let o = bash(repo.0.path(), shard_script, dagrun, &env);
        assert_eq!(o.status.code(), Some(0), "shard {shard}: {}", text(&o.stderr));
    }
    assert_shards_then_total(&repo, true);
    let output = repo.path("gh-output");
    let env: Vec<(&str, &str)> = range.iter().copied().chain([("GITHUB_OUTPUT", output.to_str().unwrap())]).collect();
    let o = bash(repo.0.path(), final_script, dagrun, &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "exit-code=0\n");
    assert_shards_then_total(&repo, false);
    assert_eq!(std::fs::read_to_string(repo.path("flows/out/total.txt")).unwrap().trim(), "10");
}

#[test]
fn the_sharded_gitlab_file_runs_parallel_shards_then_the_whole_range_with_the_real_dagrun() {
    let repo = Repo::new();
    repo.write("flows/wf.ron", DAYS);
    let o = repo.dagrun("", &["export", "gitlab-ci", "flows/wf.ron", "--shards", "3", "--out", ".gitlab-ci.yml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let gl = yaml(&repo.path(".gitlab-ci.yml"));
    let (shards, whole) = (&gl["dagrun-days-shard"], &gl["dagrun-days-backfill"]);
    assert_eq!(shards["parallel"], 3);
    assert_eq!(whole["needs"], serde_json::json!(["dagrun-days-shard"]));
    assert_eq!(gl["stages"], serde_json::json!(["shards", "backfill"]));
    let last = |job: &Value| job["script"].as_array().unwrap().last().unwrap().as_str().unwrap().to_owned();
    let dagrun = Path::new(env!("CARGO_BIN_EXE_dagrun"));
    let range = [("DAGRUN_WORKFLOW", "flows/wf.ron"), ("DAGRUN_FROM", "2025-01-01"), ("DAGRUN_TO", "2025-01-10")];
    for index in ["1", "2", "3"] {
        let env: Vec<(&str, &str)> =
            range.iter().copied().chain([("CI_NODE_INDEX", index), ("CI_NODE_TOTAL", "3")]).collect();
        let o = bash(repo.0.path(), &last(shards), dagrun, &env);
        assert_eq!(o.status.code(), Some(0), "shard {index}: {}", text(&o.stderr));
    }
    assert_shards_then_total(&repo, true);
    let o = bash(repo.0.path(), &last(whole), dagrun, &range);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_shards_then_total(&repo, false);
}

#[test]
fn shards_of_a_workflow_without_partitions_are_refused() {
    let repo = Repo::new();
    repo.write(
        "flows/wf.ron",
        r#"Workflow(name: "hello", tasks: [Task(name: "t", kind: Command(run: "true"), outputs: {"o": "o.txt"})])"#,
    );
    let o = repo.dagrun("", &["export", "github-actions", "flows/wf.ron", "--shards", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "error: --shards 3: a sharded export runs `dagrun backfill`, and workflow `hello` has no partitioned task: \
         export it without --shards\n"
    );
    assert!(o.stdout.is_empty());
}
