//! Unit tests of loading and validation: each problem is found, with its location.

use super::*;
use crate::validate::MAX_NAME_LEN;

fn load(src: &str) -> Result<Workflow, Vec<Diagnostic>> {
    Workflow::from_source(Source::new("w.ron", src), PathBuf::from("/wf"))
}

fn errors(src: &str) -> Vec<String> {
    load(src).unwrap_err().iter().map(|d| format!("{d}")).collect()
}

#[test]
fn loads_a_complete_workflow() {
    let wf = load(
        r#"Workflow(
    name: "demo",
    defaults: (retries: 2, timeout: "1m"),
    tasks: [
        Task(name: "prep", kind: Command(run: "cp a b", env: {"X": "1"}),
             inputs: {"raw": File("a"), "all": Glob("data/*.csv")}, outputs: {"clean": "b"}),
        Task(name: "train", kind: Command(run: "true"), inputs: {"data": Output("prep", "clean")},
             params: {"lr": 0.1, "layers": [1, 2], "opt": (name: "adam")}, retries: 0, timeout: "5s"),
        Task(name: "report", kind: Command(run: "true"), after: ["train"]),
    ],
)"#,
    )
    .unwrap();
    assert_eq!(wf.tasks.len(), 3);
    let prep = &wf.tasks[0];
    assert_eq!(prep.retries, 2);
    assert_eq!(prep.timeout, Some(Duration::from_secs(60)));
    let train = &wf.tasks[1];
    assert_eq!(train.retries, 0);
    assert_eq!(train.upstream(), vec!["prep"]);
    assert_eq!(train.params["opt"], serde_json::json!({"name": "adam"}));
    assert_eq!(wf.tasks[2].upstream(), vec!["train"]);
    assert_eq!(&wf.source().text[wf.dependency_span(2, "train").unwrap()], "\"train\"");
}

#[test]
fn reports_every_task_error_at_once() {
    let errs = errors(
        r#"Workflow(name: "x", tasks: [
    Task(name: "a", kind: Command(run: "true"), colour: "red"),
    Task(name: "b", kind: Shell(run: "true")),
    Task(name: "c", kind: Command(run: "true"), after: ["d"]),
])"#,
    );
    assert_eq!(
        errors_sorted(errs),
        vec![
            "w.ron:2:49: unknown field `colour` in task `a`",
            "w.ron:3:27: unknown task kind `Shell`",
            "w.ron:4:57: task `c` runs after unknown task `d`",
        ]
    );
}

fn errors_sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn syntax_error_points_at_the_line() {
    let errs = errors("Workflow(name: \"x\",\n  tasks: [\n  Task(name: \"a\" kind: Command(run: \"true\")),\n])");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("w.ron:3:"), "{errs:?}");
}

#[test]
fn duplicate_names_and_bad_outputs() {
    let errs = errors(
        r#"Workflow(name: "x", tasks: [
    Task(name: "a", kind: Command(run: "true"), outputs: {"o": "../escape"}),
    Task(name: "a", kind: Command(run: ""), timeout: "soon"),
])"#,
    );
    assert_eq!(
        errs,
        vec![
            "w.ron:2:64: output `o` of task `a` leaves the workflow directory with `..`",
            "w.ron:3:16: task `a` is defined twice",
            "w.ron:3:40: task `a` has an empty command",
            "w.ron:3:54: invalid duration `soon`: not a number",
        ]
    );
}

#[test]
fn unknown_output_suggests_the_right_one() {
    let d = load(
        r#"Workflow(name: "x", tasks: [
    Task(name: "a", kind: Command(run: "true"), outputs: {"model": "m.bin"}),
    Task(name: "b", kind: Command(run: "true"), inputs: {"m": Output("a", "modle")}),
])"#,
    )
    .unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].message, "task `a` has no output named `modle`");
    assert_eq!(d[0].help.as_deref(), Some("did you mean `model`?"));
}

#[test]
fn a_task_that_fails_to_parse_still_defines_its_name() {
    let errs = errors(
        r#"Workflow(name: "x", tasks: [
    Task(name: "a", kind: Command(run: "true"), retires: 1),
    Task(name: "b", kind: Command(run: "true"), after: ["a"]),
])"#,
    );
    assert_eq!(errs, vec!["w.ron:2:49: unknown field `retires` in task `a`"]);
}

#[test]
fn wrong_types_name_the_field_and_underline_the_value() {
    let d = load("Workflow(name: \"x\", tasks: [Task(name: \"a\", kind: Command(run: \"true\"), retries: \"3\")])")
        .unwrap_err();
    assert_eq!(d[0].message, "`retries` expects a whole number, found `\"3\"`");
    assert_eq!(&d[0].source.text[d[0].labels[0].span.clone()], "\"3\"");
    assert_eq!(d[0].help.as_deref(), Some("write it like `retries: 3`"));
}

#[test]
fn param_location_points_at_the_param_a_plugin_named() {
    let wf = load(
        r#"Workflow(name: "p", tasks: [
    Task(name: "a", kind: Command(run: "true")),
    Task(
        name: "b",
        kind: Command(run: "true"),
        params: {
            "columns": "charges",
            "split": {"ratio": "half"},
        },
    ),
])"#,
    )
    .unwrap();
    let text = |span: Option<Range<usize>>| span.map(|s| wf.source().text[s].to_owned());
    assert_eq!(wf.param_location(1, "columns"), Some((7, 24)));
    assert_eq!(text(wf.param_span(1, "columns")).as_deref(), Some(r#""charges""#));
    assert_eq!(wf.param_location(1, "split.ratio"), Some((8, 32)));
    assert_eq!(text(wf.param_span(1, "split.ratio")).as_deref(), Some(r#""half""#));
    // Not written (e.g. a missing param): the `params` map, then the task's name.
    assert_eq!(wf.param_location(1, "factor"), Some((6, 17)));
    assert_eq!(wf.param_location(1, ""), Some((6, 17)));
    assert_eq!(wf.param_location(0, "columns"), Some((2, 16)));
    assert_eq!(wf.param_location(2, "columns"), None);
}

#[test]
fn a_released_text_is_read_again_and_not_trusted_once_the_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.ron");
    let src = r#"Workflow(name: "p", tasks: [
    Task(name: "a", kind: Command(run: "true"), params: {"columns": "charges"}),
])"#;
    std::fs::write(&file, src).unwrap();
    let mut wf = Workflow::load(&file).unwrap();
    wf.release_text(&file);
    assert!(wf.source.text.is_empty(), "the text is dropped");
    assert_eq!(wf.param_location(0, "columns"), Some((2, 69)));
    assert_eq!(&*wf.source().text, src);

    // Edited since it was loaded (same length): no location rather than a wrong one.
    let mut wf = Workflow::load(&file).unwrap();
    wf.release_text(&file);
    std::fs::write(&file, src.replace("charges", "chargez")).unwrap();
    assert_eq!(wf.param_location(0, "columns"), None);
    assert_eq!(wf.task_name_span(0), None);
    assert_eq!(&*wf.source().text, "");
    assert_eq!(wf.source_name(), file.display().to_string());

    // A file with a drift task is read with spans while loading: those go with the text too.
    let src = r#"Workflow(name: "m", tasks: [
    Task(name: "drift", kind: Drift(reference: "ref", current: "cur"),
         inputs: {"cur": File("c.csv"), "ref": File("r.csv")}, outputs: {"report": "d.json"}),
])"#;
    std::fs::write(&file, src).unwrap();
    let mut wf = Workflow::load(&file).unwrap();
    assert_eq!(wf.task_name_span(0).map(|s| &src[s]), Some(r#""drift""#));
    wf.release_text(&file);
    std::fs::write(&file, src.replace("drift", "drifT")).unwrap();
    assert_eq!(wf.task_name_span(0), None, "no span into a text that is gone");
}

#[test]
fn task_index_finds_each_task_and_stays_right_when_the_list_is_edited() {
    let mut wf = load(
        r#"Workflow(name: "w", tasks: [
    Task(name: "a", kind: Command(run: "x")),
    Task(name: "b", kind: Command(run: "x")),
    Task(name: "c", kind: Command(run: "x")),
])"#,
    )
    .unwrap();
    for (i, t) in wf.tasks.iter().enumerate() {
        assert_eq!(wf.task_index(&t.name), Some(i));
    }
    assert_eq!(wf.task_index("d"), None);
    wf.tasks.swap(0, 2);
    assert_eq!((wf.task_index("a"), wf.task_index("c"), wf.task_index("b")), (Some(2), Some(0), Some(1)));
}

#[test]
fn without_spans_tasks_are_read_in_one_go() {
    // A byte literal is RON the span reader does not know: the file is read without spans.
    let src = r#"Workflow(name: "w", defaults: (retries: 2), tasks: [
        Task(name: "a", kind: Command(run: "x"), params: {"p": b'a'}),
        Task(name: "b", kind: Command(run: "x"), after: ["a"]),
    ])"#;
    assert!(spans::parse(src).is_err());
    let wf = load(src).unwrap();
    assert_eq!(wf.tasks.iter().map(|t| (t.name.as_str(), t.retries)).collect::<Vec<_>>(), [("a", 2), ("b", 2)]);
    assert_eq!(wf.param_location(0, "p"), None);
    let errors = errors(&src.replace("after: [\"a\"]", "after: \"a\""));
    assert_eq!(errors, ["w.ron:3:57: expected a list `[...]`, found `\"a\"),`"]);
}

fn one_task(task: &str) -> String {
    format!("Workflow(name: \"w\", tasks: [\n{task},\n])")
}

#[test]
fn the_workflows_in_the_repository_stay_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Err(d) = Workflow::from_source(Source::new(name, text), dir.clone()) {
                panic!("{} is invalid: {d:?}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 3, "expected the example workflows, found {n}");
}

#[test]
fn outputs_must_not_overlap_inputs_outputs_the_workflow_or_the_state_dir() {
    let cmd = "kind: Command(run: \"x\")";
    let cases = [
        (
            format!("Task(name: \"a\", {cmd}, outputs: {{\"o\": \"out/d\", \"p\": \"out/d/x.txt\"}})"),
            "is inside output",
        ),
        (
            format!(
                "Task(name: \"a\", {cmd}, inputs: {{\"i\": File(\"d/in.csv\")}}, outputs: {{\"o\": \"./d/in.csv\"}})"
            ),
            "is the same path as input",
        ),
        (
            format!("Task(name: \"a\", {cmd}, inputs: {{\"i\": File(\"d/in.csv\")}}, outputs: {{\"o\": \"d\"}})"),
            "contains input",
        ),
        (format!("Task(name: \"a\", {cmd}, outputs: {{\"o\": \".dagrun/layout\"}})"), "inside the state directory"),
        (format!("Task(name: \"a\", {cmd}, outputs: {{\"o\": \"w.ron\"}})"), "the workflow file `w.ron`"),
        (format!("Task(name: \"a\", {cmd}, outputs: {{\"o\": \"./\"}})"), "ends with `/`"),
        (format!("Task(name: \"a\", {cmd}, outputs: {{\"o\": \".\"}})"), "is the workflow directory itself"),
        (
            format!(
                "Task(name: \"a\", {cmd}, outputs: {{\"o\": \"out/d\"}}),\nTask(name: \"b\", partitioned: \"p\", {cmd}, outputs: {{\"o\": \"out/d/{{partition}}.txt\"}})"
            ),
            "is inside output",
        ),
    ];
    for (task, expected) in cases {
        let src = one_task(&task).replace("tasks:", "partitions: {\"p\": List([\"x\"])}, tasks:");
        let errs = errors(&src);
        assert!(errs.iter().any(|e| e.contains(expected) && e.starts_with("w.ron:")), "{task}: {errs:?}");
    }
}

#[test]
fn templated_outputs_that_may_differ_are_accepted() {
    let src = r#"Workflow(name: "w", partitions: {"p": List(["x"])}, tasks: [
        Task(name: "a", partitioned: "p", kind: Command(run: "x"), inputs: {"i": File("in/{partition}.csv")},
             outputs: {"o": "out/{partition}.txt", "q": "out/{partition}.csv", "r": "in/{partition}.txt"}),
        Task(name: "b", kind: Command(run: "x"), outputs: {"o": "out/all.txt"}),
    ])"#;
    load(src).unwrap();
}

#[test]
fn names_longer_than_100_bytes_are_refused() {
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let errs = errors(&one_task(&format!("Task(name: \"{long}\", kind: Command(run: \"x\"))")));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("w.ron:2:12: task name `xxxxxxxxxxxxxxxxxxxx…` is 101 bytes long"), "{errs:?}");
    let src = format!("Workflow(name: \"{long}\", tasks: [])");
    assert!(errors(&src)[0].contains("workflow name `xxxxxxxxxxxxxxxxxxxx…` is 101 bytes long"));
    load(&one_task(&format!("Task(name: \"{}\", kind: Command(run: \"x\"))", &long[1..]))).unwrap();
}

#[test]
fn unusual_whitespace_keeps_every_location() {
    for ws in ["\u{2028}", "\u{2029}", "\u{85}", "\u{b}", "\u{c}", "\u{200e}"] {
        let src = format!(
            "Workflow({ws}name: \"w\",{ws}tasks: [Task(name: \"a\",{ws}kind: Command(run: \"x\"), after: [\"b\"])])"
        );
        let errs = errors(&src);
        assert!(errs.len() == 1 && errs[0].starts_with("w.ron:1:"), "{ws:?}: {errs:?}");
    }
}

#[test]
fn a_byte_order_mark_is_skipped_and_locations_stay_right() {
    load(&format!("\u{feff}{}", one_task("Task(name: \"a\", kind: Command(run: \"x\"))"))).unwrap();
    let errs = errors(&format!("\u{feff}{}", one_task("Task(name: \"a\", kind: Command(run: \"x\"), retries: -1)")));
    assert_eq!(errs, ["w.ron:2:51: `retries` expects a whole number, found `-1`"]);
}

#[test]
fn deep_nesting_is_refused_before_recursing() {
    let errs = errors(&"[".repeat(200_000));
    assert_eq!(errs, ["w.ron:1:129: brackets nest more than 128 levels deep"]);
}

#[test]
fn invalid_utf8_is_located() {
    let dir = std::env::temp_dir().join(format!("dagrun-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.ron");
    std::fs::write(&path, b"Workflow(\n  name: \"caf\xe9\", tasks: [])").unwrap();
    let err = Workflow::load(&path).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let LoadError::Invalid(diags) = err else { panic!("expected a diagnostic, got {err}") };
    assert_eq!(
        diags[0].to_string(),
        format!("{}:2:13: the file is not valid UTF-8 (byte 22, line 2, column 13)", path.display())
    );
}

#[test]
fn drift_and_performance_tasks_load() {
    let wf = load(
        r#"Workflow(name: "m", tasks: [
    Task(name: "drift", kind: Drift(reference: Deployed(registry: "reg", name: "churn"), current: "cur",
         model: "model", categorical: ["region"], critical: ["income"], drift_share: 0.3,
         tests: {"income": (method: Psi, threshold: 0.2), "region": (threshold: 0.01)}),
         inputs: {"cur": File("c.csv"), "model": File("m.onnx")}, outputs: {"report": "d.json", "html": "d.html"}),
    Task(name: "drift2", kind: Drift(reference: "ref", current: "cur", fail_on_drift: true),
         inputs: {"cur": File("c.csv"), "ref": File("r.parquet")}, outputs: {"report": "d2.json"}),
    Task(name: "perf", kind: Performance(model: Deployed(registry: "reg", name: "churn"), data: "labelled",
         tolerance: {"accuracy": 0.02}), inputs: {"labelled": File("l.csv")}, outputs: {"report": "p.json"}),
])"#,
    )
    .unwrap();
    let TaskKind::Drift(d) = &wf.tasks[0].kind else { panic!("not a drift task") };
    assert_eq!(d.reference, DataSource::Deployed(DeployedDef { registry: "reg".into(), name: "churn".into() }));
    assert_eq!(d.model, Some(DataSource::Input("model".into())));
    assert_eq!(d.tests["income"].method, Some(DriftMethod::Psi));
    assert_eq!(d.tests["region"].threshold, Some(0.01));
    let TaskKind::Drift(d2) = &wf.tasks[1].kind else { panic!("not a drift task") };
    assert_eq!(d2.reference, DataSource::Input("ref".into()));
    assert!(d2.fail_on_drift);
    assert!(matches!(&wf.tasks[2].kind, TaskKind::Performance(p) if p.tolerance["accuracy"] == 0.02));
}

#[test]
fn drift_and_performance_settings_are_checked() {
    let errs = errors(
        r#"Workflow(name: "m", tasks: [
    Task(name: "a", kind: Drift(reference: "ref", current: "cur", drift_share: 1.5, critical: ["id"], exclude: ["id"],
         categorical: ["region"], tests: {"region": (method: Ks), "x": (method: Ks, threshold: 2.0)}),
         inputs: {"cur": File("c.csv")}, outputs: {"report": "a.json", "plot": "a.png"}),
    Task(name: "b", kind: Performance(model: "m", data: "d", tolerance: {"acuracy": 0.1}),
         inputs: {"m": File("m.onnx"), "d": File("d.csv")}),
])"#,
    );
    let errs = errors_sorted(errs).join("\n");
    for expected in [
        "`reference` of task `a` names no input `ref`",
        "Drift task `a` cannot write an output `plot`",
        "drift_share 1.5 of task `a` is not in (0, 1]",
        "the test of column `region` of task `a` uses Ks on categories",
        "threshold 2 in the test of column `x` of task `a` is invalid",
        "critical column `id` of task `a` is not compared",
        "Performance task `b` has no baseline to compare with",
        "Performance task `b` must declare output `report`",
        "unknown metric `acuracy` in the tolerance of task `b`",
    ] {
        assert!(errs.contains(expected), "missing {expected:?} in:\n{errs}");
    }
}

#[test]
fn notification_secrets_are_required_to_run_but_not_to_look() {
    let src = r#"Workflow(
    name: "w",
    notify: [Webhook(url_env: "DAGRUN_TEST_NEVER_SET_HOOK")],
    tasks: [Task(name: "a", kind: Command(run: "true"))],
)"#;
    let strict = Workflow::from_source(Source::new("w.ron", src), "/tmp".into()).unwrap_err();
    assert_eq!(strict[0].code, "dagrun::missing-env");
    let look = crate::LoadOptions { check_env: false };
    let wf = Workflow::from_source_with(Source::new("w.ron", src), "/tmp".into(), look).unwrap();
    assert_eq!(wf.notify.len(), 1);
}

#[test]
fn manual_minutes_is_read_and_must_be_positive() {
    let src = |m: &str| format!("Workflow(name: \"w\", {m} tasks: [Task(name: \"a\", kind: Command(run: \"true\"))])");
    let wf = Workflow::from_source(Source::new("w.ron", src("manual_minutes: 45,")), "/tmp".into()).unwrap();
    assert_eq!(wf.manual_minutes, Some(45));
    let wf = Workflow::from_source(Source::new("w.ron", src("")), "/tmp".into()).unwrap();
    assert_eq!(wf.manual_minutes, None, "optional");
    let errs = Workflow::from_source(Source::new("w.ron", src("manual_minutes: 0,")), "/tmp".into()).unwrap_err();
    assert_eq!(errs[0].code, "dagrun::invalid-estimate");
    assert!(errs[0].labels.first().is_some_and(|l| &src("manual_minutes: 0,")[l.span.clone()] == "0"), "{errs:?}");
    let errs = Workflow::from_source(Source::new("w.ron", src("manual_minutes: -5,")), "/tmp".into()).unwrap_err();
    assert_eq!(errs[0].code, "dagrun::wrong-type", "a negative estimate is not a whole number: {errs:?}");
}

#[test]
fn remote_cache_is_an_s3_location_checked_at_load() {
    let src = |m: &str| format!("Workflow(name: \"w\", {m} tasks: [Task(name: \"a\", kind: Command(run: \"true\"))])");
    let ok = src("remote_cache: \"s3://team-cache/dagrun\",");
    let wf = Workflow::from_source(Source::new("w.ron", ok), "/tmp".into()).unwrap();
    assert_eq!(wf.remote_cache.as_deref(), Some("s3://team-cache/dagrun"));
    let wf = Workflow::from_source(Source::new("w.ron", src("")), "/tmp".into()).unwrap();
    assert_eq!(wf.remote_cache, None, "optional");
    for (bad, says) in [("/srv/cache", "only S3 locations"), ("s3://UP", "bucket name"), ("s3://abc/a/../b", "prefix")]
    {
        let text = src(&format!("remote_cache: \"{bad}\","));
        let errs = Workflow::from_source(Source::new("w.ron", text.clone()), "/tmp".into()).unwrap_err();
        assert_eq!(errs[0].code, "dagrun::invalid-remote-cache", "{bad}: {errs:?}");
        let label = errs[0].labels.first().expect("points at the value");
        assert_eq!(&text[label.span.clone()], format!("\"{bad}\""));
        assert!(label.text.contains(says), "{bad}: {errs:?}");
    }
}

/// A file large enough that ron reads its tasks in two halves (`load::PARALLEL_BYTES`).
fn large(tasks: usize, edit: impl Fn(usize) -> Option<String>) -> String {
    let mut s = String::from("#![enable(implicit_some)]\nWorkflow(\n    name: \"big\",\n    tasks: [\n");
    for i in 0..tasks {
        let line = edit(i).unwrap_or_else(|| {
            let up = if i == 0 { String::new() } else { format!(", after: [\"t{}\"]", i - 1) };
            format!("        Task(name: \"t{i}\", kind: Command(run: \"echo {i} > o\"), params: {{\"i\": {i}}}{up}),\n")
        });
        s.push_str(&line);
    }
    s + "    ],\n)\n"
}

#[test]
fn a_large_file_read_in_halves_keeps_every_task_in_order() {
    let src = large(600, |_| None);
    assert!(src.len() > crate::load::PARALLEL_BYTES, "{} bytes: not split", src.len());
    assert!(crate::load::halves(&src, 0, &crate::spans::scan(&src).unwrap()).is_some(), "read in halves");
    let wf = load(&src).unwrap();
    assert_eq!(wf.tasks.len(), 600);
    assert!(wf.tasks.iter().enumerate().all(|(i, t)| t.name == format!("t{i}") && t.params["i"] == i));
    assert_eq!(wf.tasks[599].upstream(), vec!["t598"]);
}

#[test]
fn errors_in_either_half_of_a_large_file_point_at_their_line() {
    let bad = |at: usize| {
        move |i: usize| (i == at).then(|| format!("        Task(name: \"t{i}\", kind: Command(run: {i})),\n"))
    };
    for at in [3, 450] {
        let errs = errors(&large(600, bad(at)));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with(&format!("w.ron:{}:", at + 5)), "{errs:?}");
    }
    let dup = |i: usize| {
        (i == 500).then(|| {
            format!("        Task(name: \"t{i}\", kind: Command(run: \"x\"), params: {{\"a\": 1, \"a\": 2}}),\n")
        })
    };
    let errs = errors(&large(600, dup));
    assert!(errs.iter().any(|e| e.starts_with("w.ron:505:") && e.contains("`a`")), "{errs:?}");
}
