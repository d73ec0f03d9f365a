//! Unit tests of loading and validation: each problem is found, with its location.

use super::*;

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
    assert_eq!(&wf.source.text[wf.dependency_span(2, "train").unwrap()], "\"train\"");
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
    let text = |span: Option<Range<usize>>| span.map(|s| wf.source.text[s].to_owned());
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
