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
    let opts = ExportOptions { install: "curl -sSfL https://example.invalid/dagrun | sh\ndagrun --version".to_owned() };
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
