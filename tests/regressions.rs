//! Regression tests for bugs found by testing dagrun as a new user would (issue #8): each one
//! failed on the code before its fix.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

mod common;

use common::{BIN, Sandbox, statuses, stderr, stdout};

/// Ten days of data; `model` trains on every day, `deploy` publishes it.
const WHOLE_HISTORY: &str = r#"Workflow(
    name: "history",
    partitions: {"days": Daily(start: "2025-01-01", end: "2025-01-10")},
    tasks: [
        Task(name: "prep", partitioned: "days", kind: Command(run: "echo {date} > $DAGRUN_OUT_DAY"),
             outputs: {"day": "out/days/{date}.txt"}),
        Task(name: "model", kind: Command(run: "cat $DAGRUN_IN_DAYS > $DAGRUN_OUT_MODEL"),
             inputs: {"days": Partitions(task: "prep", output: "day")}, outputs: {"model": "out/model.txt"}),
        Task(name: "deploy", kind: Command(run: "mkdir -p registry && cp $DAGRUN_IN_MODEL registry/model.txt && cp $DAGRUN_IN_MODEL $DAGRUN_OUT_RECEIPT"),
             inputs: {"model": Output("model", "model")}, outputs: {"receipt": "out/receipt.txt"}),
    ],
)"#;

#[test]
fn a_one_partition_run_never_retrains_or_deploys_on_a_truncated_history() {
    let s = Sandbox::new(WHOLE_HISTORY);
    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(st["deploy"], "succeeded");
    assert_eq!(s.read("registry/model.txt").lines().count(), 10, "the whole history");

    let (st, events, code) = s.run_json(&["--partition", "2025-01-05"]);
    assert_eq!(code, 0);
    assert_eq!(st, statuses(&[("prep@2025-01-05", "cached")]), "only the asked partition: {st:?}");
    let left: Vec<&Value> = events.iter().filter(|e| e["event"] == "tasks_left_out").collect();
    assert_eq!(left.len(), 1, "{events:?}");
    assert_eq!(left[0]["tasks"], serde_json::json!(["model", "deploy"]));
    assert_eq!(s.read("registry/model.txt").lines().count(), 10, "production is untouched");

    let plan = s.dagrun(&["plan", "wf.ron", "--partition", "2025-01-05"]);
    assert!(
        stdout(&plan).contains("  left out  model, deploy: they read every partition up to the latest"),
        "{}",
        stdout(&plan)
    );
    // The latest partition is a full run again.
    let (st, _, _) = s.run_json(&["--partition", "2025-01-10"]);
    assert_eq!(st["deploy"], "cached");
}

#[test]
fn after_gc_plan_says_the_entry_is_missing_not_that_an_input_changed() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "cp in.txt $DAGRUN_OUT_O"), inputs: {"i": File("in.txt")}, outputs: {"o": "out.txt"}),
        ])"#,
    );
    s.write("in.txt", "one\n");
    assert_eq!(s.run_json(&[]).2, 0);
    s.write("in.txt", "two\n");
    assert_eq!(s.run_json(&[]).0["a"], "succeeded");
    s.write("in.txt", "one\n");
    assert_eq!(s.run_json(&[]).0["a"], "cached", "back to the first content: a hit");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let gc = s.dagrun(&["cache", "gc", "wf.ron", "--max-age", "1ms"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let plan = s.dagrun(&["plan", "wf.ron"]);
    assert_eq!(
        stdout(&plan),
        "plan for `w`: 1 task(s): 1 to run, 0 cached\n  run     a  cache entry missing (removed by gc or verify)\n"
    );
}

#[test]
fn a_closed_stdout_does_not_stop_the_run() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "sleep 0.3; echo a > $DAGRUN_OUT_O"), outputs: {"o": "a.txt"}),
            Task(name: "b", kind: Command(run: "cp $DAGRUN_IN_A $DAGRUN_OUT_O"), inputs: {"a": Output("a", "o")}, outputs: {"o": "b.txt"}),
        ])"#,
    );
    // `dagrun run --json | head -1`: read one line, then close the pipe.
    let mut child = s.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("\"run_started\""), "{first}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the run finished ({status:?})");
    assert_eq!(s.read("b.txt"), "a\n");
    let runs = stdout(&s.dagrun(&["runs", "wf.ron"]));
    assert!(runs.lines().nth(1).unwrap().contains(" succeeded "), "{runs}");
}

#[test]
fn a_corrupt_object_met_during_restore_is_reported_and_the_task_reruns() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "echo hello > $DAGRUN_OUT_O"), outputs: {"o": "a.txt"}),
        ])"#,
    );
    assert_eq!(s.run_json(&[]).2, 0);
    let hex = blake3::hash(b"hello\n").to_hex().to_string();
    let object = s.path(&format!(".dagrun/objects/{}/{hex}", &hex[..2]));
    std::fs::write(&object, "tampered\n").unwrap();
    std::fs::remove_file(s.path("a.txt")).unwrap();
    let (st, events, code) = s.run_json(&[]);
    assert_eq!((code, st["a"].as_str()), (0, "succeeded"));
    let corrupt: Vec<&Value> = events.iter().filter(|e| e["event"] == "cache_corrupt").collect();
    assert_eq!(corrupt.len(), 1, "{events:?}");
    assert_eq!(corrupt[0]["task"], "a");
    assert!(corrupt[0]["error"].as_str().unwrap().contains(&format!("object {hex} is corrupt")), "{corrupt:?}");
    assert_eq!(s.read("a.txt"), "hello\n");

    std::fs::write(&object, "tampered again\n").unwrap();
    std::fs::remove_file(s.path("a.txt")).unwrap();
    let plain = s.dagrun(&["run", "wf.ron"]);
    assert!(
        stderr(&plain).contains(&format!("  warning  corrupt cache: object {hex} is corrupt")),
        "{}",
        stderr(&plain)
    );
}

#[test]
fn a_failed_task_says_where_its_log_is_and_how_it_failed() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "bad", kind: Command(run: "echo oops; exit 3"), outputs: {"o": "o.txt"}),
        ])"#,
    );
    let out = s.dagrun(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let log = err.lines().find_map(|l| l.trim().strip_prefix("log: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(log.ends_with("/bad.log"), "{log}");
    assert_eq!(std::fs::read_to_string(log).unwrap(), "oops\n");
    let (_, events, _) = s.run_json(&[]);
    let finished = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(finished["failure"], serde_json::json!({"kind": "exit_code", "code": 3}));
    let show = stdout(&s.dagrun(&["show", "last", "wf.ron"]));
    assert!(show.contains("log of bad: ") && show.contains("/bad.log"), "{show}");
}

#[test]
fn usage_errors_name_the_fix() {
    let s = Sandbox::new(
        r#"Workflow(name: "flat", tasks: [Task(name: "train", kind: Command(run: "true"), outputs: {"o": "o"})])"#,
    );
    let out = s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-31"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: `flat` has no partitioned task: there is nothing to backfill (run it with `dagrun run wf.ron`)\n"
    );
    let out = s.dagrun(&["backfill", "wf.ron", "--to", "2025-01-31"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("the following required arguments were not provided:\n  --from <DATE>"), "{err}");
    assert!(!err.contains("--partitions"), "{err}");
    let out = s.dagrun(&["run", "wf.ron", "--force", "train"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).ends_with("hint: to force one task, write `--force=train` (a bare `--force` forces every task)\n"),
        "{}",
        stderr(&out)
    );
    assert!(std::process::Command::new(BIN).arg("--help").output().unwrap().status.success());
}
