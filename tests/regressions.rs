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

    let reason = "`model` reads every partition up to the latest, and this run covers older partitions only \
        (a model is never retrained or deployed on a truncated history); what depends on it is left out too. \
        Run the latest partition (no --partition) or a range that includes it to update them";
    assert_eq!(left[0]["reason"], reason);
    let plan = s.dagrun(&["plan", "wf.ron", "--partition", "2025-01-05"]);
    assert!(stdout(&plan).ends_with(&format!("  left out model, deploy: {reason}\n")), "{}", stdout(&plan));
    // Asking for a left-out task by name is an error, not a silent no-op.
    let only = s.dagrun(&["run", "wf.ron", "--partition", "2025-01-05", "--only", "model"]);
    assert_eq!(only.status.code(), Some(2));
    assert_eq!(stderr(&only), format!("error: `model` cannot run in this run: {reason}\n"));
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
            Task(name: "a", kind: Command(run: "printf '%4999s\\n' hello > $DAGRUN_OUT_O"), outputs: {"o": "a.txt"}),
        ])"#,
    );
    // 5,000 bytes: an object (a smaller output lives in its entry).
    let hello = format!("{:>4999}\n", "hello");
    assert_eq!(s.run_json(&[]).2, 0);
    let hex = blake3::hash(hello.as_bytes()).to_hex().to_string();
    let object = s.object(&hex);
    std::fs::write(&object, "tampered\n").unwrap();
    std::fs::remove_file(s.path("a.txt")).unwrap();
    let (st, events, code) = s.run_json(&[]);
    assert_eq!((code, st["a"].as_str()), (0, "succeeded"));
    let corrupt: Vec<&Value> = events.iter().filter(|e| e["event"] == "cache_corrupt").collect();
    assert_eq!(corrupt.len(), 1, "{events:?}");
    assert_eq!(corrupt[0]["task"], "a");
    assert!(corrupt[0]["error"].as_str().unwrap().contains(&format!("object {hex} is corrupt")), "{corrupt:?}");
    assert_eq!(s.read("a.txt"), hello);

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
    let row = show.lines().find(|l| l.starts_with("bad ")).unwrap();
    assert!(row.ends_with("  exit code 3"), "the note is the failure, not a dangling 'last output:': {row}");
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
    let missing = err.split("Usage:").next().unwrap();
    assert!(missing.ends_with("the following required arguments were not provided:\n  --from <DATE>\n\n"), "{err}");
    let out = s.dagrun(&["run", "wf.ron", "--force", "train"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).ends_with("hint: to force one task, write `--force=train` (a bare `--force` forces every task)\n"),
        "{}",
        stderr(&out)
    );
    assert!(std::process::Command::new(BIN).arg("--help").output().unwrap().status.success());
}

// Issue #9: hardening.

/// Regression (issue #9, item 4): with `link -> /outside`, an output `link/x.txt` made dagrun
/// delete `/outside/x.txt` before the run and let the task write through the link.
#[cfg(unix)]
#[test]
fn an_output_behind_a_link_out_of_the_workflow_directory_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.txt"), "precious\n").unwrap();
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "echo new > $DAGRUN_OUT_O"), outputs: {"o": "link/x.txt"}),
        ])"#,
    );
    std::os::unix::fs::symlink(outside.path(), s.path("link")).unwrap();
    let (st, events, code) = s.run_json(&[]);
    assert_eq!((st["a"].as_str(), code), ("failed", 1), "{events:?}");
    let done = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(done["failure"], serde_json::json!({"kind": "output_path", "output": "o"}));
    assert!(done["error"].as_str().unwrap().contains("leads outside the workflow directory"), "{done}");
    assert_eq!(std::fs::read_to_string(outside.path().join("x.txt")).unwrap(), "precious\n");
}

/// Regression (issue #9, item 4): with `--state-dir` inside the workflow directory, an output
/// inside it (here its `layout` file) was deleted and overwritten.
#[test]
fn an_output_inside_a_custom_state_directory_is_refused() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "echo oops > $DAGRUN_OUT_O"), outputs: {"o": "st/layout"}),
        ])"#,
    );
    let (st, events, code) = s.run_json(&["--state-dir", "st"]);
    assert_eq!((st["a"].as_str(), code), ("failed", 1), "{events:?}");
    let done = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(done["failure"]["kind"], "output_path");
    assert!(done["error"].as_str().unwrap().contains("inside the state directory"), "{done}");
    assert_ne!(s.read("st/layout"), "oops\n", "the state directory is untouched");
}

/// Regression (issue #9, item 5): a command's log grew without bound.
#[test]
fn a_command_log_is_capped_with_a_marker() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "echo first; head -c 300000 /dev/zero | tr '\\0' x; echo; echo err >&2")),
        ])"#,
    );
    let out = s.cmd(&["run", "wf.ron", "--json"]).env("DAGRUN_LOG_MAX", "10KiB").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out).lines().find(|l| l.contains("task_finished")).unwrap().to_owned();
    let done: Value = serde_json::from_str(&line).unwrap();
    let log = std::fs::read_to_string(done["log"].as_str().unwrap()).unwrap();
    assert!(log.starts_with("first\nxxx"), "{}", &log[..20]);
    assert!(log.len() < 10 * 1024 + 200, "{} bytes", log.len());
    assert!(log.ends_with(
        "[dagrun: log truncated: it reached the 10240-byte limit (DAGRUN_LOG_MAX); further output is dropped]\n"
    ));
    let bad = s.cmd(&["run", "wf.ron"]).env("DAGRUN_LOG_MAX", "lots").output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// Regression (issue #9, item 6): a failing command's last output went verbatim into the
/// error, the JSON event and the run record.
#[test]
fn a_huge_error_text_is_truncated_everywhere() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "a", kind: Command(run: "head -c 2000000 /dev/zero | tr '\\0' x; exit 3")),
        ])"#,
    );
    let (_, events, code) = s.run_json(&[]);
    assert_eq!(code, 1);
    let done = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    let error = done["error"].as_str().unwrap();
    assert!(error.len() <= 64 * 1024 + 200, "{} bytes", error.len());
    assert!(error.contains("[dagrun: truncated: "), "{}", &error[error.len() - 200..]);
    let runs = s.path(".dagrun/runs");
    for e in std::fs::read_dir(runs).unwrap().flatten() {
        assert!(e.metadata().unwrap().len() < 200_000, "{}", e.path().display());
    }
}

/// A key look-up hashes small inputs on the async worker and leaves large ones (over 256 KiB in
/// all) to the blocking pool: either way an input changed in place, at the same size, is seen,
/// and an unchanged one is a hit.
#[test]
fn inputs_changed_in_place_are_seen_whatever_their_size() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
            Task(name: "small", kind: Command(run: "wc -c < $DAGRUN_IN_I > $DAGRUN_OUT_O; head -c 1 $DAGRUN_IN_I >> $DAGRUN_OUT_O"),
                 inputs: {"i": File("small.txt")}, outputs: {"o": "small.out"}),
            Task(name: "large", kind: Command(run: "wc -c < $DAGRUN_IN_I > $DAGRUN_OUT_O; head -c 1 $DAGRUN_IN_I >> $DAGRUN_OUT_O"),
                 inputs: {"i": File("large.txt")}, outputs: {"o": "large.out"}),
            Task(name: "after", kind: Command(run: "cat $DAGRUN_IN_S $DAGRUN_IN_L > $DAGRUN_OUT_O"),
                 inputs: {"s": Output("small", "o"), "l": Output("large", "o")}, outputs: {"o": "after.out"}),
        ])"#,
    );
    let (small, large) = (100, 1 << 20);
    s.write("small.txt", &"a".repeat(small));
    s.write("large.txt", &"a".repeat(large));
    assert_eq!(s.run_json(&[]).2, 0);
    assert_eq!(s.read("after.out"), format!("{small}\na{large}\na"));
    for (file, task, n) in [("small.txt", "small", small), ("large.txt", "large", large)] {
        s.write(file, &"b".repeat(n));
        let (st, _, code) = s.run_json(&[]);
        let other = if task == "small" { "large" } else { "small" };
        assert_eq!((code, st[task].as_str(), st[other].as_str()), (0, "succeeded", "cached"), "{file}: {st:?}");
        assert_eq!(st["after"], "succeeded", "{file}: {st:?}");
        let (st, _, _) = s.run_json(&[]);
        assert!(st.values().all(|v| v == "cached"), "{file} unchanged: {st:?}");
    }
    assert_eq!(s.read("after.out"), format!("{small}\nb{large}\nb"));
}
