//! The native `OnnxEval` gate end to end: scikit-learn fixtures scored through ONNX Runtime by
//! the real `dagrun` binary, thresholds, the deployed champion, verdicts and exit codes.
//!
//! Needs the ONNX Runtime library (`pip install onnxruntime==1.31.1`, or `ORT_DYLIB_PATH`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::BIN;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx").join(name).canonicalize().unwrap()
}

fn workflow(gate: &str) -> String {
    format!(
        r#"Workflow(name: "gate", tasks: [
        Task(name: "evaluate",
             kind: OnnxEval(model: "model", data: "test", label: "label", gate: {gate}),
             inputs: {{"model": File("{}"), "test": File("{}")}},
             outputs: {{"metrics": "out/metrics.json", "predictions": "out/predictions.csv", "verdict": "out/verdict.json"}}),
        Task(name: "deploy", kind: Command(run: "cp $DAGRUN_IN_M deployed.onnx"),
             inputs: {{"m": File("{}"), "v": Output("evaluate", "verdict")}}, outputs: {{"d": "deployed.onnx"}}),
    ])"#,
        fixture("logreg_binary/model.onnx").display(),
        fixture("logreg_binary/test.csv").display(),
        fixture("logreg_binary/model.onnx").display(),
    )
}

fn run(dir: &Path) -> (Vec<Value>, Output) {
    let out =
        Command::new(BIN).args(["run", "wf.ron", "--json"]).current_dir(dir).stdin(Stdio::null()).output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (events, out)
}

fn finished<'a>(events: &'a [Value], task: &str) -> &'a Value {
    events.iter().find(|e| e["event"] == "task_finished" && e["task"] == task).unwrap()
}

/// A registry in `dir` whose `churn` model is `v0001`: the fixture's model.
fn deploy_fixture(dir: &Path, name: &str) {
    let v1 = dir.join("registry/churn/v0001");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::copy(fixture(&format!("{name}/model.onnx")), v1.join("model.onnx")).unwrap();
    std::fs::write(dir.join("registry/churn/current"), "v0001\n").unwrap();
}

fn verdict(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("out/verdict.json")).unwrap()).unwrap()
}

#[test]
fn metrics_match_scikit_learn_and_a_passing_gate_lets_deploy_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.ron"), workflow(r#"Gate(min: {"accuracy": 0.7})"#)).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(finished(&events, "deploy")["status"], "succeeded");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/metrics.json")).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("logreg_binary/expected_metrics.json")).unwrap())
            .unwrap();
    for name in ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"] {
        let (got, want) = (metrics[name].as_f64().unwrap(), expected["metrics"][name].as_f64().unwrap());
        assert!((got - want).abs() < 1e-6, "{name}: dagrun {got} vs scikit-learn {want}");
    }
    let v = verdict(dir.path());
    assert_eq!(v["decision"], "pass");
    assert_eq!(v["reason"], "thresholds met");
    assert_eq!(v["candidate"]["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn a_refused_model_blocks_deploy_with_the_gate_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.ron"), workflow(r#"Gate(min: {"accuracy": 0.9})"#)).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(4), "the documented gate-refused exit code");
    let eval = finished(&events, "evaluate");
    assert_eq!(eval["error"], "gate refused: accuracy 0.768 < min 0.9");
    assert_eq!(eval["status"], "refused", "a refusal is its own status, not a failure");
    assert_eq!(finished(&events, "deploy")["status"], "skipped");
    assert!(!dir.path().join("deployed.onnx").exists());
    let v = verdict(dir.path());
    assert_eq!(v["decision"], "refuse");
    assert_eq!(v["reason"], "accuracy 0.768 < min 0.9");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "refused");
    assert_eq!((last["counts"]["refused"].as_u64(), last["counts"]["failed"].as_u64()), (Some(1), Some(0)));
    let dagrun = |args: &[&str]| Command::new(BIN).args(args).current_dir(dir.path()).output().unwrap();
    let runs = String::from_utf8_lossy(&dagrun(&["runs", "wf.ron"]).stdout).into_owned();
    assert!(runs.lines().nth(1).unwrap().contains(" refused "), "{runs}");
    let plain = dagrun(&["run", "wf.ron", "--force=evaluate"]);
    let err = String::from_utf8_lossy(&plain.stderr).into_owned();
    assert!(err.contains("  REFUSED  evaluate ("), "{err}");
    assert!(!err.contains("evaluate.log"), "the native gate writes no log, so none is named: {err}");
    assert!(
        err.contains(
            "\nREFUSED (a gate refused a model; nothing else failed): 0 ran, 0 cached, 0 failed, 1 refused, 1 skipped"
        ),
        "{err}"
    );
}

#[test]
fn the_candidate_must_beat_the_deployed_champion() {
    let dir = tempfile::tempdir().unwrap();
    // The champion: the candidate's model with a ZipMap output (other bytes, same predictions).
    deploy_fixture(dir.path(), "logreg_binary_zipmap");
    let gate = |margin: &str| {
        format!(
            r#"Gate(champion: Champion(registry: "registry", name: "churn", metric: "accuracy", margin: {margin}))"#
        )
    };
    std::fs::write(dir.path().join("wf.ron"), workflow(&gate("0.0"))).unwrap();
    let (_, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "as good as the champion passes with margin 0");
    let v = verdict(dir.path());
    assert_eq!(v["champion"]["version"], "v0001");
    // The same predictions (the probabilities, through a ZipMap, to float rounding at most).
    let b = &v["behaviour"];
    assert_eq!((&b["rows"], &b["changed"], &b["changed_share"]), (&1000.into(), &0.into(), &0.0.into()), "{b}");
    assert!(b["mean_abs_change"].as_f64().unwrap() < 1e-7, "{b}");

    std::fs::write(dir.path().join("wf.ron"), workflow(&gate("0.01"))).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        finished(&events, "evaluate")["error"],
        "gate refused: accuracy 0.768 ties champion v0001 0.768 (margin 0.01); 0 of 1000 predictions (0%) differ from the champion's"
    );
}

/// A gate whose candidate is promoted over the champion by a deploy step: the run after it must
/// not evaluate the new champion against itself (nor deploy again), and a tie is not "beats".
#[test]
fn a_promoted_candidate_is_not_evaluated_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    deploy_fixture(dir.path(), "logreg_binary");
    // The candidate: the same model with a ZipMap output (other bytes, same predictions).
    std::fs::copy(fixture("logreg_binary_zipmap/model.onnx"), dir.path().join("candidate.onnx")).unwrap();
    let wf = format!(
        r#"Workflow(name: "promote", tasks: [
        Task(name: "evaluate",
             kind: OnnxEval(model: "model", data: "test", label: "label",
                 gate: Gate(champion: Champion(registry: "registry", name: "churn", metric: "accuracy"))),
             inputs: {{"model": File("candidate.onnx"), "test": File("{}")}},
             outputs: {{"metrics": "out/metrics.json", "verdict": "out/verdict.json"}}),
        Task(name: "deploy",
             kind: Command(run: "mkdir -p registry/churn/v0002 && cp $DAGRUN_IN_M registry/churn/v0002/model.onnx && echo v0002 > registry/churn/current && cp $DAGRUN_IN_V $DAGRUN_OUT_R"),
             inputs: {{"m": File("candidate.onnx"), "v": Output("evaluate", "verdict")}}, outputs: {{"r": "out/receipt.json"}}),
    ])"#,
        fixture("logreg_binary/test.csv").display(),
    );
    std::fs::write(dir.path().join("wf.ron"), wf).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        verdict(dir.path())["reason"],
        "accuracy 0.768 ties champion v0001 0.768; 0 of 1000 predictions (0%) differ from the champion's"
    );
    assert_eq!(finished(&events, "deploy")["status"], "succeeded");
    assert_eq!(std::fs::read_to_string(dir.path().join("registry/churn/current")).unwrap(), "v0002\n");

    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(finished(&events, "evaluate")["status"], "cached", "not evaluated against itself");
    assert_eq!(finished(&events, "deploy")["status"], "cached", "not deployed again");
    let plan = Command::new(BIN).args(["plan", "wf.ron"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&plan.stdout),
        "plan for `promote`: 2 task(s): 0 to run, 2 cached\n  cached  evaluate\n  cached  deploy\n"
    );

    // Forced, it still does not compare the champion with itself.
    let out = Command::new(BIN).args(["run", "wf.ron", "--force=evaluate"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = verdict(dir.path());
    assert_eq!(v["reason"], "the candidate is the deployed champion v0002 (accuracy 0.768)");
    assert_eq!(v["champion"], Value::Null);
    assert_eq!(
        v["behaviour"],
        serde_json::json!({"rows": 1000, "changed": 0, "changed_share": 0.0, "mean_abs_change": 0.0}),
        "compared with itself, nothing changes"
    );
}

#[test]
fn a_strict_gate_refuses_a_tie() {
    let dir = tempfile::tempdir().unwrap();
    deploy_fixture(dir.path(), "logreg_binary_zipmap");
    let gate = r#"Gate(champion: Champion(registry: "registry", name: "churn", metric: "accuracy", strict: true))"#;
    std::fs::write(dir.path().join("wf.ron"), workflow(gate)).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        finished(&events, "evaluate")["error"],
        "gate refused: accuracy 0.768 ties champion v0001 0.768 (margin 0, strict); 0 of 1000 predictions (0%) differ from the champion's"
    );
}

/// The verdict records how differently the candidate behaves from the champion: 118 of the 1000
/// predicted labels differ between these two fixtures (engine/onnx/tests/behaviour.rs counts them
/// from both models' `predict` files). The decision is still the metric's.
#[test]
fn the_verdict_says_how_many_predictions_change() {
    let dir = tempfile::tempdir().unwrap();
    let gate = r#"Gate(champion: Champion(registry: "registry", name: "churn", metric: "accuracy"))"#;
    let note = "; 118 of 1000 predictions (11.8%) differ from the champion's";
    let check = |b: &Value| {
        assert_eq!((&b["rows"], &b["changed"], &b["changed_share"]), (&1000.into(), &118.into(), &0.118.into()), "{b}");
        assert!((b["mean_abs_change"].as_f64().unwrap() - 0.0943).abs() < 1e-4, "{b}");
    };

    // A better candidate (gradient boosting, accuracy 0.818) than the champion (0.768).
    deploy_fixture(dir.path(), "logreg_binary");
    std::fs::write(dir.path().join("wf.ron"), workflow(gate).replace("logreg_binary/model", "gb_binary/model"))
        .unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = verdict(dir.path());
    assert_eq!(v["reason"], format!("accuracy 0.818 beats champion v0001 0.768{note}"));
    check(&v["behaviour"]);
    let summary = &finished(&events, "evaluate")["summary"];
    assert_eq!(summary["reason"], v["reason"]);
    assert_eq!(summary["behaviour"], v["behaviour"]);

    // The other way round: refused, and the same change.
    let dir = tempfile::tempdir().unwrap();
    deploy_fixture(dir.path(), "gb_binary");
    std::fs::write(dir.path().join("wf.ron"), workflow(gate)).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(4));
    let error = format!("gate refused: accuracy 0.768 < champion v0001 0.818 (margin 0){note}");
    assert_eq!(finished(&events, "evaluate")["error"], error);
    let v = verdict(dir.path());
    assert_eq!(v["decision"], "refuse");
    check(&v["behaviour"]);
}

#[test]
fn models_list_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let model = std::fs::read(fixture("logreg_binary/model.onnx")).unwrap();
    let digest = blake3::hash(&model).to_hex().to_string();
    for v in ["v0001", "v0002", "v0003"] {
        let d = dir.path().join("registry/churn").join(v);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.onnx"), &model).unwrap();
        let meta = dagrun_contracts::registry::Metadata::new("churn", v, &digest);
        std::fs::write(d.join("metadata.json"), meta.to_json()).unwrap();
    }
    // v0003's bytes are not the ones its metadata records: no rollback may make it current.
    std::fs::write(dir.path().join("registry/churn/v0003/model.onnx"), b"not a model").unwrap();
    std::fs::write(dir.path().join("registry/churn/current"), "v0002\n").unwrap();
    let dagrun = |args: &[&str]| Command::new(BIN).args(args).current_dir(dir.path()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&dagrun(&["models", "list"]).stdout), "churn: v0001 *v0002 v0003\n");
    let out = dagrun(&["models", "rollback", "churn", "--to", "v0003"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot roll back `churn` to v0003") && err.contains("model.onnx is corrupt"), "{err}");
    let out = dagrun(&["models", "rollback", "churn", "--to", "v0009"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: `churn` has no version v0009; versions: v0001, v0002, v0003\n"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("registry/churn/current")).unwrap(), "v0002\n");
    let out = dagrun(&["models", "rollback", "churn"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "churn: current is now v0001\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("registry/churn/current")).unwrap(), "v0001\n");
    let out = dagrun(&["models", "rollback", "churn"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: v0001 is the first version of `churn`: nothing to roll back to\n"
    );
}

/// The README's retrain demo: plugins (generate, train, deploy) and the native gate. The first
/// run deploys v0001, the second is fully cached, the worse variant is refused with exit code 4
/// and leaves `current` unchanged.
#[test]
fn retrain_deploys_then_caches_then_refuses_a_worse_model() {
    let dir = common::repo_workflows(&["retrain.ron", "retrain-worse.ron"]);
    let dagrun = |wf: &str| {
        let mut cmd = common::dagrun_for_plugins();
        let out = cmd.args(["run", wf, "--json"]).current_dir(dir.path()).stdin(Stdio::null()).output().unwrap();
        let events: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (events, out)
    };
    let (events, out) = dagrun("retrain.ron");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(finished(&events, "deploy")["summary"]["version"], "v0001");
    assert_eq!(std::fs::read_to_string(dir.path().join("registry/churn/current")).unwrap(), "v0001\n");

    let (events, out) = dagrun("retrain.ron");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(events.last().unwrap()["counts"]["cached"], 5, "a second run is fully cached");

    let (events, out) = dagrun("retrain-worse.ron");
    assert_eq!(out.status.code(), Some(4));
    let error = finished(&events, "evaluate")["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("gate refused: accuracy 0.") && error.contains(" < champion v0001 0."), "{error}");
    assert!(error.contains(" predictions (") && error.ends_with("%) differ from the champion's"), "{error}");
    assert_eq!(finished(&events, "deploy")["status"], "skipped");
    assert_eq!(std::fs::read_to_string(dir.path().join("registry/churn/current")).unwrap(), "v0001\n");
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/retrain-worse/verdict.json")).unwrap())
            .unwrap();
    assert_eq!(verdict["decision"], "refuse");
    assert_eq!(verdict["champion"]["version"], "v0001");
    assert_eq!(verdict["behaviour"]["rows"], verdict["candidate"]["metrics"]["rows"]);
}

#[test]
fn onnx_predict_scores_a_batch_with_the_deployed_model() {
    let dir = tempfile::tempdir().unwrap();
    deploy_fixture(dir.path(), "logreg_binary");
    let wf = format!(
        r#"Workflow(name: "predict", tasks: [
        Task(name: "score",
             kind: OnnxPredict(data: "batch", label: "label", deployed: Deployed(registry: "registry", name: "churn")),
             inputs: {{"batch": File("{}")}}, outputs: {{"predictions": "out/predictions.csv"}}),
    ])"#,
        fixture("logreg_binary/test.csv").display()
    );
    std::fs::write(dir.path().join("wf.ron"), wf).unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = std::fs::read_to_string(fixture("logreg_binary/test.csv")).unwrap().lines().count() - 1;
    assert_eq!(finished(&events, "score")["summary"]["rows"], rows);
    let preds = std::fs::read_to_string(dir.path().join("out/predictions.csv")).unwrap();
    assert_eq!(preds.lines().count(), rows + 1);
    assert!(preds.lines().next().unwrap().contains("prediction"), "{}", preds.lines().next().unwrap());

    // Nothing deployed under that name: a clear error.
    std::fs::write(
        dir.path().join("wf.ron"),
        std::fs::read_to_string(dir.path().join("wf.ron")).unwrap().replace("\"churn\"", "\"fraud\""),
    )
    .unwrap();
    let (events, out) = run(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        finished(&events, "score")["error"],
        "no model `fraud` is deployed in registry (deploy one first; `dagrun models list --registry registry`)"
    );
}

/// A custom gate in Rust: the `evaluate` plugin checks accuracy per region from the
/// predictions OnnxEval writes (with `region` passed through).
#[test]
fn a_plugin_gate_checks_accuracy_per_slice() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wf = |min: &str| {
        format!(
            r#"Workflow(name: "slices", tasks: [
        Task(name: "evaluate", kind: OnnxEval(model: "model", data: "test", label: "species",
                                              features: ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"],
                                              passthrough: ["region"]),
             inputs: {{"model": File("{model}"), "test": File("{data}")}},
             outputs: {{"metrics": "out/metrics.json", "predictions": "out/predictions.csv"}}),
        Task(name: "slices", kind: Wasm(plugin: "{plugin}"), params: {{"slice": "region", "min": {min}}},
             inputs: {{"predictions": Output("evaluate", "predictions")}}, outputs: {{"metrics": "out/slices.json"}}),
    ])"#,
            model = fixture("rf_multiclass/model.onnx").display(),
            data = fixture("rf_multiclass/test.csv").display(),
            plugin = repo.join("plugins/evaluate").display(),
        )
    };
    let dagrun = || {
        let mut cmd = common::dagrun_for_plugins();
        let out = cmd.args(["run", "wf.ron", "--json"]).current_dir(dir.path()).stdin(Stdio::null()).output().unwrap();
        let events: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (events, out)
    };
    std::fs::write(dir.path().join("wf.ron"), wf(r#"{"*": 0.5}"#)).unwrap();
    let (events, out) = dagrun();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let slices = &finished(&events, "slices")["summary"]["slices"];
    assert_eq!(slices.as_object().unwrap().len(), 4, "{slices}");
    let total: u64 = slices.as_object().unwrap().values().map(|s| s["rows"].as_u64().unwrap()).sum();
    assert_eq!(total, 1000);

    std::fs::write(dir.path().join("wf.ron"), wf(r#"{"*": 0.5, "north": 0.999}"#)).unwrap();
    let (events, out) = dagrun();
    assert_eq!(out.status.code(), Some(1));
    let error = finished(&events, "slices")["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("slice gate refused: region=north: accuracy 0."), "{error}");
    assert!(error.ends_with("< min 0.999"), "{error}");
}

/// Every model the train plugin writes loads in ONNX Runtime, and ONNX Runtime's predictions
/// (through OnnxPredict) equal the plugin's own in-WASM predictions.
#[test]
fn train_plugin_models_predict_the_same_in_onnx_runtime() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = format!(
        r#"Task(name: "data", kind: Wasm(plugin: "{}/plugins/generate"), params: {{"rows": 3000, "features": 8, "seed": 3}},
               outputs: {{"data": "data.csv"}}),"#,
        repo.display()
    );
    let models = [
        ("logistic", r#""model": "logistic""#),
        ("gbdt", r#""model": "gbdt", "trees": 20, "depth": 3"#),
        ("linear", r#""model": "linear", "label": "age", "features": ["income", "tenure_months", "num_purchases"]"#),
    ];
    for (name, params) in models {
        let label = if name == "linear" { "" } else { r#", "label": "label""# };
        tasks.push_str(&format!(
            r#"
        Task(name: "train-{name}", kind: Wasm(plugin: "{repo}/plugins/train"), inputs: {{"data": Output("data", "data")}},
             params: {{{params}{label}, "write_predictions": true}},
             outputs: {{"model": "out/{name}/model.onnx", "metrics": "out/{name}/metrics.json", "predictions": "out/{name}/wasm.csv"}}),
        Task(name: "predict-{name}", kind: OnnxPredict(model: "model", data: "data"),
             inputs: {{"model": Output("train-{name}", "model"), "data": Output("data", "data")}},
             outputs: {{"predictions": "out/{name}/onnx.csv"}}),"#,
            repo = repo.display()
        ));
    }
    std::fs::write(dir.path().join("wf.ron"), format!("Workflow(name: \"agree\", tasks: [{tasks}])")).unwrap();
    let mut cmd = common::dagrun_for_plugins();
    let out = cmd.args(["run", "wf.ron"]).current_dir(dir.path()).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let table = |p: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let text = std::fs::read_to_string(dir.path().join(p)).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().split(',').map(str::to_owned).collect();
        (header, lines.map(|l| l.split(',').map(str::to_owned).collect()).collect())
    };
    for (name, _) in models {
        let (wh, wasm) = table(&format!("out/{name}/wasm.csv"));
        let (oh, onnx) = table(&format!("out/{name}/onnx.csv"));
        assert_eq!(wasm.len(), 3000, "{name}");
        assert_eq!(onnx.len(), 3000, "{name}");
        let col = |h: &[String], n: &str| {
            h.iter().position(|c| c == n).unwrap_or_else(|| panic!("{name}: no `{n}` in {h:?}"))
        };
        if name == "linear" {
            let (w, o) = (col(&wh, "variable"), col(&oh, "prediction"));
            for (a, b) in wasm.iter().zip(&onnx) {
                let (x, y): (f64, f64) = (a[w].parse().unwrap(), b[o].parse().unwrap());
                assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{name}: {x} vs {y}");
            }
        } else {
            let (wl, wp, ol, op) = (col(&wh, "label"), col(&wh, "p_1"), col(&oh, "prediction"), col(&oh, "proba_1"));
            for (a, b) in wasm.iter().zip(&onnx) {
                assert_eq!(a[wl], b[ol], "{name}: predicted labels agree");
                let (x, y): (f64, f64) = (a[wp].parse().unwrap(), b[op].parse().unwrap());
                assert!((x - y).abs() <= 1e-5, "{name}: p_1 {x} vs {y}");
            }
        }
    }
}
