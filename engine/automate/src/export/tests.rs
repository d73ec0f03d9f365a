//! Unit tests of the CI export: what each file holds for a workflow's schedule, task kinds,
//! registries and outputs, and that text from the workflow file cannot escape its quotes.

use std::path::PathBuf;

use dagrun_workflow::{Source, Workflow};

use super::*;

/// The demo's shape: Wasm plugins, an ONNX gate with a champion registry, a deploy mount.
const RETRAIN: &str = r#"Workflow(
    name: "retrain",
    schedule: Cron(expr: "0 3 * * 1", timezone: "Europe/Berlin"),
    tasks: [
        Task(name: "data", kind: Wasm(plugin: "../plugins/generate"), outputs: {"data": "out/retrain/train.csv"}),
        Task(name: "train", kind: Wasm(plugin: "../plugins/train"), inputs: {"data": Output("data", "data")},
             outputs: {"model": "out/retrain/model.onnx"}),
        Task(name: "evaluate", kind: OnnxEval(model: "model", data: "test", label: "label", gate: Gate(
                min: {"accuracy": 0.6},
                champion: Champion(registry: "registry", name: "churn", metric: "accuracy", margin: 0.0))),
             inputs: {"model": Output("train", "model"), "test": Output("data", "data")},
             outputs: {"metrics": "out/retrain/metrics.json", "verdict": "out/retrain/verdict.json"}),
        Task(name: "deploy", kind: Wasm(plugin: "../plugins/deploy", mounts: {"registry": (path: "registry", writable: true)}),
             inputs: {"verdict": Output("evaluate", "verdict")}, outputs: {"receipt": "./out/retrain/receipt.json"}),
    ],
)"#;

fn load(src: &str) -> Workflow {
    Workflow::from_source(Source::new("w.ron", src), PathBuf::from("/repo/workflows")).unwrap()
}

fn command_workflow(name: &str, extra: &str) -> Workflow {
    load(&format!(
        r#"Workflow(name: {name:?}, {extra} tasks: [Task(name: "t", kind: Command(run: "true"), outputs: {{"o": "out/o.txt"}})])"#
    ))
}

fn github(wf: &Workflow, path: &str) -> Export {
    github_actions(wf, path, &ExportOptions::default()).unwrap()
}

fn gitlab(wf: &Workflow, path: &str) -> Export {
    gitlab_ci(wf, path, &ExportOptions::default()).unwrap()
}

#[test]
fn github_has_the_schedule_its_time_zone_and_what_the_tasks_need() {
    let e = github(&load(RETRAIN), "workflows/retrain.ron");
    let t = &e.text;
    assert!(t.contains("    - cron: \"0 3 * * 1\"\n      # Read in Europe/Berlin"), "{t}");
    assert!(t.contains("      timezone: \"Europe/Berlin\"\n"), "{t}");
    assert!(t.contains("workflow_dispatch:\n    inputs:\n      partition:"), "{t}");
    assert!(t.contains("rustup target add wasm32-wasip2"), "{t}");
    assert!(t.contains("pip install --quiet \"onnxruntime==1.31.1\""), "{t}");
    assert!(
        t.contains("      - name: Install dagrun\n        run: |\n          cargo install --locked dagrun\n"),
        "{t}"
    );
    assert!(t.contains("DAGRUN_WORKFLOW: \"workflows/retrain.ron\""), "{t}");
    assert!(t.contains("cancel-in-progress: false"), "{t}");
    assert_eq!(e.suggested_path, ".github/workflows/dagrun-retrain.yml");
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

#[test]
fn github_keeps_the_state_and_the_registry_in_a_per_run_cache_entry() {
    let e = github(&load(RETRAIN), "workflows/retrain.ron");
    let key = format!("dagrun-retrain-{}", &blake3::hash(b"workflows/retrain.ron").to_hex()[..8]);
    let t = &e.text;
    assert!(t.contains("path: |\n            workflows/.dagrun\n            workflows/registry\n"), "{t}");
    assert!(t.contains(&format!("key: {key}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}\n")), "{t}");
    assert!(t.contains(&format!("restore-keys: {key}-\n")), "{t}");
    assert!(t.contains("uses: actions/cache/save@v5"), "{t}");
    assert!(t.contains("key: ${{ steps.restore.outputs.cache-primary-key }}"), "{t}");
    for out in ["train.csv", "model.onnx", "verdict.json", "receipt.json"] {
        assert!(t.contains(&format!("            workflows/out/retrain/{out}\n")), "{out}: {t}");
    }
}

#[test]
fn the_run_step_keeps_dagruns_exit_code() {
    let t = github(&load(RETRAIN), "workflows/retrain.ron").text;
    let run = t.split("      - name: Run the workflow\n").nth(1).unwrap().split("\n\n").next().unwrap();
    assert!(run.contains("|| code=$?") && run.ends_with("exit \"$code\""), "{run}");
    assert!(!t.contains("|| true") && !t.contains("continue-on-error"), "{t}");
    assert!(run.contains("PARTITION: ${{ inputs.partition }}"), "{run}");
    assert!(!run.contains("run: |\n          ${{"), "inputs reach the script through env only");
    assert!(t.contains("4) echo \"### dagrun: REFUSED"), "{t}");
}

#[test]
fn a_workflow_without_schedule_or_special_tasks_exports_with_a_warning() {
    let e = github(&command_workflow("plain", ""), "wf.ron");
    assert!(!e.text.contains("  schedule:\n") && e.text.contains("workflow_dispatch:"), "{}", e.text);
    assert!(!e.text.contains("wasm32") && !e.text.contains("onnxruntime"), "{}", e.text);
    assert!(e.text.contains("path: |\n            .dagrun\n"), "{}", e.text);
    assert_eq!(
        e.warnings,
        ["workflow `plain` has no schedule: the GitHub Actions file runs it only when started by hand"]
    );
}

#[test]
fn aliases_become_five_fields_and_extensions_are_refused() {
    let e = github(&command_workflow("d", r#"schedule: Cron("@daily"),"#), "wf.ron");
    assert!(
        e.text.contains("schedule is \"@daily\": written as five fields.\n    - cron: \"0 0 * * *\"\n"),
        "{}",
        e.text
    );
    assert!(!e.text.contains("timezone:"), "UTC needs no time zone: {}", e.text);
    let wf = command_workflow("d", r#"schedule: Cron("0 3 L * *"),"#);
    let err = github_actions(&wf, "wf.ron", &ExportOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("the schedule `0 3 L * *` cannot be written for GitHub Actions: `L`"), "{err}");
    let e = github(&command_workflow("d", r#"schedule: Cron("* * * * *"),"#), "wf.ron");
    assert!(e.warnings[0].contains("at most every 5"), "{:?}", e.warnings);
}

#[test]
fn triggers_and_skip_are_reported() {
    let wf = command_workflow(
        "t",
        r#"triggers: [Webhook(name: "new", token_env: "TOKEN")], concurrency: Skip, schedule: Cron("@hourly"),"#,
    );
    let w = github(&wf, "wf.ron").warnings;
    assert!(w[0].starts_with("1 trigger(s) of `t`"), "{w:?}");
    assert!(w[1].starts_with("`concurrency: Skip` has no GitHub Actions equivalent"), "{w:?}");
}

#[test]
fn text_from_the_workflow_cannot_escape_or_be_evaluated() {
    let wf = command_workflow("we\"ird ${{ secrets.TOKEN }}\nname: x", "");
    let e = github(&wf, "my dir/it's \"${{ github.token }}\"/wf.ron");
    let allowed = ["${{ '${{' }}", "${{ inputs.", "${{ steps.", "${{ github.run_", "${{ runner.os }}"];
    for (i, line) in e.text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("${{") {
            let known = allowed.iter().find(|a| rest[at..].starts_with(**a));
            let Some(known) = known else { panic!("line {}: {line}", i + 1) };
            rest = &rest[at + known.len()..];
        }
    }
    assert!(e.text.contains("name: \"dagrun we\\\"ird $ {{ secrets.TOKEN }}\\nname: x\""), "{}", e.text);
    assert!(e.text.contains(r#"DAGRUN_WORKFLOW: "my dir/it's \"${{ '${{' }} github.token }}\"/wf.ron""#), "{}", e.text);
    assert!(e.text.contains("concurrency:\n  group: \"dagrun-we-ird-secrets-token-name-x-"), "{}", e.text);
}

#[test]
fn partitioned_outputs_are_globs_and_glob_characters_in_paths_are_not() {
    let wf = load(
        r#"Workflow(name: "p", partitions: {"daily": Daily(start: "2025-01-01")}, tasks: [
            Task(name: "t", kind: Command(run: "true"), partitioned: "daily", outputs: {"o": "out/{date}.csv"}),
            Task(name: "u", kind: Command(run: "true"), outputs: {"o": "out/a*b.csv"}),
        ])"#,
    );
    let e = gitlab(&wf, "wf.ron");
    assert!(e.text.contains("    paths:\n      - \"out/*.csv\"\n      - \"out/a[*]b.csv\"\n"), "{}", e.text);
}

#[test]
fn gitlab_has_rules_caches_artifacts_and_the_schedule_to_create() {
    let e = gitlab(&load(RETRAIN), "workflows/retrain.ron");
    let t = &e.text;
    assert!(t.contains("workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"schedule\"\n"), "{t}");
    assert!(t.contains("- if: $CI_PIPELINE_SOURCE == \"web\"\n    - if: $CI_PIPELINE_SOURCE == \"api\"\n"), "{t}");
    assert!(
        t.contains("#   Interval pattern (custom):  0 3 * * 1\n#   Cron timezone:              Europe/Berlin\n"),
        "{t}"
    );
    assert!(t.contains("Build > Pipeline schedules"), "{t}");
    assert!(
        t.contains(
            "      paths:\n        - \"workflows/.dagrun\"\n        - \"workflows/registry\"\n      when: always\n"
        ),
        "{t}"
    );
    assert!(t.contains("  artifacts:\n    when: always\n"), "{t}");
    assert!(t.contains("      - \"workflows/out/retrain/model.onnx\"\n"), "{t}");
    assert!(t.contains("rustup target add wasm32-wasip2") && t.contains("onnxruntime==1.31.1"), "{t}");
    assert!(t.contains("      value: \"workflows/retrain.ron\"\n      expand: false\n"), "{t}");
    assert!(t.contains("exit \"$code\"") && !t.contains("|| true"), "{t}");
    assert_eq!(e.suggested_path, ".gitlab-ci.yml");
    assert!(e.notes[0].contains("`0 3 * * 1`, cron timezone Europe/Berlin"), "{:?}", e.notes);
}

#[test]
fn a_custom_install_command_is_used_as_written() {
    let opts = ExportOptions {
        install: "curl -sSfL https://example.invalid/dagrun | sh\ndagrun --version".to_owned(),
        ..ExportOptions::default()
    };
    let e = gitlab_ci(&command_workflow("i", ""), "wf.ron", &opts).unwrap();
    assert!(
        e.text.contains("    - |\n      curl -sSfL https://example.invalid/dagrun | sh\n      dagrun --version\n"),
        "{}",
        e.text
    );
    let e = github_actions(&command_workflow("i", ""), "wf.ron", &opts).unwrap();
    assert!(e.text.contains("        run: |\n          curl -sSfL"), "{}", e.text);
}

#[test]
fn registries_outside_the_repository_are_not_cached() {
    assert_eq!(inside("workflows", "registry").as_deref(), Some("workflows/registry"));
    assert_eq!(inside("workflows", "../models/./reg").as_deref(), Some("models/reg"));
    assert_eq!(inside("", "../reg"), None);
    assert_eq!(inside("w", "/abs/reg"), None);
    assert_eq!(inside("w", ".."), None);
}

#[test]
fn slugs_and_utc_names() {
    assert_eq!(slug("Retrain Churn!"), "retrain-churn");
    assert_eq!(slug("--"), "workflow");
    assert_eq!(slug(&"x".repeat(60)).len(), 40);
    assert!(is_utc("Etc/UTC") && is_utc("UTC") && is_utc("GMT") && !is_utc("Europe/London"));
    assert_eq!(normalise("./a//b/./c.ron"), "a/b/c.ron");
}

#[test]
fn an_absolute_workflow_directory_keeps_its_root_in_registry_paths() {
    assert_eq!(super::inside("/tmp/wf", "registry").as_deref(), Some("/tmp/wf/registry"));
    assert_eq!(super::inside("wf", "../registry").as_deref(), Some("registry"));
    assert_eq!(super::inside("wf", "/abs"), None);
}

/// Two daily tasks and a total over every day.
const DAILY: &str = r#"Workflow(name: "daily", schedule: Cron(expr: "@daily"),
    partitions: {"d": Daily(start: "2025-01-01", end: "2025-03-31")},
    tasks: [
        Task(name: "prep", partitioned: "d", kind: Command(run: "true"), outputs: {"o": "out/{date}.csv"}),
        Task(name: "total", kind: Command(run: "true"), inputs: {"all": Partitions(task: "prep", output: "o")},
             outputs: {"t": "out/total.txt"}),
    ],
)"#;

fn sharded(shards: u32) -> ExportOptions {
    ExportOptions { shards: Some(shards), ..ExportOptions::default() }
}

#[test]
fn github_shards_are_a_matrix_then_the_whole_range() {
    let e = github_actions(&load(DAILY), "flows/daily.ron", &sharded(4)).unwrap();
    let t = &e.text;
    assert!(t.contains("      matrix:\n        shard: [1, 2, 3, 4]\n"), "{t}");
    assert!(t.contains("--from \"$FROM\" --to \"$TO\" --shard \"$SHARD/4\"\n"), "{t}");
    assert!(t.contains("  backfill:\n    name: dagrun backfill (the whole range)\n    needs: shard\n"), "{t}");
    assert!(t.contains("  DAGRUN_REMOTE_CACHE: ${{ vars.DAGRUN_REMOTE_CACHE }}\n"), "{t}");
    assert!(t.contains("  AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n"), "{t}");
    assert!(t.contains("share their work only through dagrun's remote cache"), "{t}");
    assert!(!t.contains("schedule:") && !t.contains("dagrun run"), "a backfill started by hand: {t}");
    assert_eq!(e.suggested_path, ".github/workflows/dagrun-daily-backfill.yml");
    // The plain export passes no remote cache.
    assert!(!github(&load(DAILY), "flows/daily.ron").text.contains("DAGRUN_REMOTE_CACHE"));
}

#[test]
fn gitlab_shards_are_parallel_jobs_then_the_whole_range() {
    let e = gitlab_ci(&load(DAILY), "flows/daily.ron", &sharded(3)).unwrap();
    let t = &e.text;
    assert!(t.contains("  stage: shards\n  image: rust:latest\n  parallel: 3\n"), "{t}");
    assert!(t.contains("--shard \"$CI_NODE_INDEX/$CI_NODE_TOTAL\"\n"), "{t}");
    assert!(t.contains("      policy: pull\n"), "shards do not save the state directory: {t}");
    assert!(t.contains("  needs: [\"dagrun-daily-shard\"]\n"), "{t}");
    assert!(
        t.contains("dagrun backfill \"$DAGRUN_WORKFLOW\" --from \"$DAGRUN_FROM\" --to \"$DAGRUN_TO\" || code=$?"),
        "{t}"
    );
}

#[test]
fn shards_need_partitions_and_a_number_the_ci_can_run() {
    let err = |wf: &Workflow, n: u32, gl: bool| {
        let r = if gl { gitlab_ci(wf, "w.ron", &sharded(n)) } else { github_actions(wf, "w.ron", &sharded(n)) };
        r.unwrap_err().to_string()
    };
    let plain = command_workflow("plain", "");
    assert_eq!(
        err(&plain, 3, false),
        "--shards 3: a sharded export runs `dagrun backfill`, and workflow `plain` has no partitioned task: \
         export it without --shards"
    );
    let daily = load(DAILY);
    assert_eq!(err(&daily, 1, true), "--shards 1: at least 2 shards (one job is the plain backfill)");
    assert_eq!(err(&daily, 257, false), "--shards 257: a GitHub Actions matrix has at most 256 jobs");
    assert_eq!(err(&daily, 201, true), "--shards 201: GitLab's `parallel:` is at most 200");
    assert!(
        github_actions(&daily, "w.ron", &sharded(256)).is_ok() && gitlab_ci(&daily, "w.ron", &sharded(200)).is_ok()
    );
}
