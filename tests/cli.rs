//! End-to-end tests: the real `dagrun` binary on real workflows in a temp dir.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{Sandbox, statuses, stderr, stdout};

/// prepare → features → train → report, plus an independent `lint` task.
const PIPELINE: &str = r#"Workflow(
    name: "pipeline",
    tasks: [
        Task(name: "prepare", kind: Command(run: "tr a-z A-Z < $DAGRUN_IN_RAW > $DAGRUN_OUT_CLEAN"),
             inputs: {"raw": File("data/raw.csv")}, outputs: {"clean": "out/clean.csv"}),
        Task(name: "features", kind: Command(run: "cat $DAGRUN_IN_CLEAN $DAGRUN_IN_EXTRA > $DAGRUN_OUT_FEATS"),
             inputs: {"clean": Output("prepare", "clean"), "extra": File("data/extra.csv")},
             outputs: {"feats": "out/feats.csv"}),
        Task(name: "train", kind: Command(run: "wc -l < $DAGRUN_IN_FEATS > $DAGRUN_OUT_MODEL; echo $DAGRUN_PARAMS >> $DAGRUN_OUT_MODEL"),
             inputs: {"feats": Output("features", "feats")}, outputs: {"model": "out/model.txt"},
             params: {"lr": 0.1, "depth": 3}),
        Task(name: "report", kind: Command(run: "cat out/model.txt > out/report.txt"), after: ["train"],
             outputs: {"report": "out/report.txt"}),
        Task(name: "lint", kind: Command(run: "cat data/extra.csv > out/lint.txt"), outputs: {"lint": "out/lint.txt"}),
    ],
)"#;

fn pipeline() -> Sandbox {
    let s = Sandbox::new(PIPELINE);
    s.write("data/raw.csv", "a,b\n1,2\n");
    s.write("data/extra.csv", "x\n");
    s
}

#[test]
fn second_run_is_fully_cached_and_restores_deleted_outputs() {
    let s = pipeline();
    let (first, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert!(first.values().all(|st| st == "succeeded"), "{first:?}");
    assert_eq!(first.len(), 5);
    let model = s.read("out/model.txt");
    assert_eq!(model, "3\n{\"depth\":3,\"lr\":0.1}\n");

    let (second, events, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert!(second.values().all(|st| st == "cached"), "{second:?}");
    let finished = events.last().unwrap();
    assert_eq!(finished["event"], "run_finished");
    assert_eq!(finished["counts"]["cached"], 5);
    assert!(events.iter().all(|e| e["event"] != "task_started"));

    std::fs::remove_dir_all(s.path("out")).unwrap();
    let (third, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert!(third.values().all(|st| st == "cached"), "{third:?}");
    assert_eq!(s.read("out/model.txt"), model);
    assert_eq!(s.read("out/report.txt"), model);
}

#[test]
fn changing_one_input_reruns_exactly_its_downstream_and_plan_says_why() {
    let s = pipeline();
    assert_eq!(s.run_json(&[]).2, 0);
    s.write("data/raw.csv", "a,b\n1,2\n3,4\n");

    let plan = s.dagrun(&["plan", "wf.ron"]);
    let text = stdout(&plan);
    assert!(text.contains("run     prepare   input `raw` changed: data/raw.csv changed"), "{text}");
    assert!(text.contains("run     features  upstream `prepare` will run"), "{text}");
    assert!(text.contains("cached  lint"), "{text}");

    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        st,
        statuses(&[
            ("prepare", "succeeded"),
            ("features", "succeeded"),
            ("train", "succeeded"),
            ("report", "succeeded"),
            ("lint", "cached"),
        ])
    );
    assert!(s.read("out/model.txt").starts_with("4\n"));
}

#[test]
fn params_and_code_changes_are_explained() {
    let s = pipeline();
    assert_eq!(s.run_json(&[]).2, 0);
    let edited =
        PIPELINE.replace("\"lr\": 0.1", "\"lr\": 0.2").replace("cat data/extra.csv >", "cat data/extra.csv >>");
    s.write("wf.ron", &edited);
    let text = stdout(&s.dagrun(&["plan", "wf.ron", "--json"]));
    let plan: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let reasons = |task: &str| {
        plan.iter().find(|p| p["task"] == task).unwrap()["reasons"].as_array().cloned().unwrap_or_default()
    };
    assert_eq!(reasons("train"), vec![Value::from("params changed")]);
    assert_eq!(reasons("lint"), vec![Value::from("code changed")]);
    assert_eq!(plan.iter().find(|p| p["task"] == "prepare").unwrap()["status"], "cached");
}

#[test]
fn failure_skips_downstream_but_unrelated_tasks_finish() {
    let s = Sandbox::new(
        r#"Workflow(name: "f", tasks: [
        Task(name: "bad", kind: Command(run: "echo boom >&2; exit 3"), outputs: {"o": "o.txt"}),
        Task(name: "after-bad", kind: Command(run: "touch a.txt"), inputs: {"i": Output("bad", "o")}, outputs: {"a": "a.txt"}),
        Task(name: "later", kind: Command(run: "touch l.txt"), after: ["after-bad"]),
        Task(name: "fine", kind: Command(run: "echo ok > fine.txt"), outputs: {"f": "fine.txt"}),
    ])"#,
    );
    let (st, events, code) = s.run_json(&["-j", "1"]);
    assert_eq!(code, 1);
    assert_eq!(
        st,
        statuses(&[("bad", "failed"), ("after-bad", "skipped"), ("later", "skipped"), ("fine", "succeeded")])
    );
    let bad = events.iter().find(|e| e["task"] == "bad" && e["event"] == "task_finished").unwrap();
    assert_eq!(bad["error"], "exit code 3; last output:\nboom");
    let skipped = events.iter().find(|e| e["task"] == "after-bad").unwrap();
    assert_eq!(skipped["error"], "upstream `bad` failed");
    let later = events.iter().find(|e| e["task"] == "later").unwrap();
    assert_eq!(later["error"], "upstream `bad` failed");
}

#[test]
fn missing_declared_output_fails_with_a_clear_message() {
    let s = Sandbox::new(
        r#"Workflow(name: "m", tasks: [
        Task(name: "t", kind: Command(run: "true"), outputs: {"model": "out/model.bin"}),
    ])"#,
    );
    let (_, events, code) = s.run_json(&[]);
    assert_eq!(code, 1);
    let t = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(
        t["error"],
        "the task succeeded but did not write its output `model` (out/model.bin); write it, or fix the path under `outputs`"
    );
    assert_eq!(t["failure"], serde_json::json!({"kind": "missing_output", "output": "model"}));
}

#[test]
fn missing_input_file_fails_the_task_naming_the_file() {
    let s = Sandbox::new(
        r#"Workflow(name: "m", tasks: [
        Task(name: "t", kind: Command(run: "true"), inputs: {"raw": File("data/nope.csv")}),
    ])"#,
    );
    let (_, events, code) = s.run_json(&[]);
    assert_eq!(code, 1);
    let err = events.iter().find(|e| e["event"] == "task_finished").unwrap()["error"].as_str().unwrap().to_owned();
    assert!(err.starts_with("input `raw`: cannot read data/nope.csv: "), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn retries_with_backoff_then_succeeds() {
    let s = Sandbox::new(
        r#"Workflow(name: "r", defaults: (backoff: "10ms"), tasks: [
        Task(name: "flaky", retries: 2,
             kind: Command(run: "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 2 ] && echo done > out.txt"),
             outputs: {"o": "out.txt"}),
    ])"#,
    );
    let (st, events, code) = s.run_json(&[]);
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(st, statuses(&[("flaky", "succeeded")]));
    let retries = events.iter().filter(|e| e["event"] == "task_retrying").count();
    assert_eq!(retries, 2);
    let done = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(done["attempts"], 3);
}

#[test]
fn timeout_kills_the_task() {
    let s = Sandbox::new(
        r#"Workflow(name: "t", tasks: [
        Task(name: "slow", kind: Command(run: "sleep 30"), timeout: "200ms"),
    ])"#,
    );
    let (st, events, code) = s.run_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(st, statuses(&[("slow", "failed")]));
    let done = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(done["error"], "timed out after 200ms (the task's `timeout`)");
}

/// A command that leaves a process behind holding its output pipe ends when the shell does
/// (after a short grace for that output), with what it printed before in its log: the run does
/// not wait for the background process, which is still running when the run has returned.
#[cfg(target_os = "linux")]
#[test]
fn a_background_process_holding_the_output_pipe_does_not_hold_the_task() {
    let s = Sandbox::new(
        r#"Workflow(name: "bg", tasks: [
        Task(name: "leaves", kind: Command(run: "echo before; (sleep 30; echo late) & echo $! > holder.pid; echo after")),
    ])"#,
    );
    let (st, events, code) = s.run_json(&[]);
    let pid = s.read("holder.pid").trim().to_owned();
    let still_running = running(&pid);
    let _ = Command::new("kill").arg(&pid).status();
    assert_eq!((code, st), (0, statuses(&[("leaves", "succeeded")])));
    assert!(still_running, "the run returned before the background process ended");
    let done = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(std::fs::read_to_string(done["log"].as_str().unwrap()).unwrap(), "before\nafter\n");
}

#[test]
fn independent_tasks_run_in_parallel() {
    // Each task waits (up to 10 s) for the other to have started: only parallel execution passes.
    let s = Sandbox::new(
        r#"Workflow(name: "p", tasks: [
        Task(name: "a", kind: Command(run: "touch a.started; i=0; while [ ! -e b.started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e b.started ]")),
        Task(name: "b", kind: Command(run: "touch b.started; i=0; while [ ! -e a.started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e a.started ]")),
    ])"#,
    );
    let (st, _, code) = s.run_json(&["-j", "2"]);
    assert_eq!(code, 0);
    assert_eq!(st, statuses(&[("a", "succeeded"), ("b", "succeeded")]));
}

/// `-j N` bounds the commands running at once (jobs look up keys and store outputs beside
/// them), and a task's time does not count the time it queued for a slot.
#[test]
fn jobs_bound_the_commands_running_at_once() {
    // Each command counts the commands running beside it (a directory each, made atomically).
    let run =
        "mkdir running.$DAGRUN_TASK; ls -d running.* | wc -l > $DAGRUN_OUT_PEAK; sleep 0.3; rmdir running.$DAGRUN_TASK";
    let tasks: Vec<String> = (0..6)
        .map(|k| format!(r#"Task(name: "t{k}", kind: Command(run: "{run}"), outputs: {{"peak": "peak{k}.txt"}})"#))
        .collect();
    let wf = format!("Workflow(name: \"j\", tasks: [{}])", tasks.join(",\n"));
    for (jobs, want) in [("1", 1), ("2", 2)] {
        let s = Sandbox::new(&wf);
        let (st, events, code) = s.run_json(&["-j", jobs]);
        assert_eq!(code, 0, "{st:?}");
        let peaks: Vec<u32> = (0..6)
            .map(|k| std::fs::read_to_string(s.path(&format!("peak{k}.txt"))).unwrap().trim().parse().unwrap())
            .collect();
        assert_eq!(peaks.iter().max(), Some(&want), "-j {jobs}: {peaks:?}");
        // The tasks' times add up to the run's (times `jobs`), not more: a task that queued for
        // a slot behind another does not count that task's time as its own.
        let run_ms = events.iter().find(|e| e["event"] == "run_finished").unwrap()["duration_ms"].as_u64().unwrap();
        let tasks_ms: u64 =
            events.iter().filter(|e| e["event"] == "task_finished").map(|e| e["duration_ms"].as_u64().unwrap()).sum();
        let limit = run_ms * u64::from(want) * 5 / 4;
        assert!(tasks_ms <= limit, "-j {jobs}: tasks {tasks_ms} ms in a run of {run_ms} ms");
    }
}

/// A failed attempt that left its output as a link (inside the workflow directory) does not
/// stop the retry: the link is deleted like any old output, as before a first attempt.
#[test]
fn a_retry_deletes_the_link_a_failed_attempt_left_as_its_output() {
    let s = Sandbox::new(
        r#"Workflow(name: "r", defaults: (backoff: "10ms"), tasks: [
        Task(name: "t", retries: 1, outputs: {"o": "out/o.txt"}, kind: Command(run: "if [ -e tried ]; then echo fresh > $DAGRUN_OUT_O; else touch tried; mkdir -p data; echo old > data/v3; ln -s ../data/v3 $DAGRUN_OUT_O; exit 1; fi")),
    ])"#,
    );
    let (st, events, code) = s.run_json(&[]);
    assert_eq!((code, st), (0, statuses(&[("t", "succeeded")])), "{events:?}");
    let t = events.iter().find(|e| e["event"] == "task_finished").unwrap();
    assert_eq!(t["attempts"], 2);
    assert_eq!(std::fs::read_to_string(s.path("out/o.txt")).unwrap(), "fresh\n");
    assert!(!std::fs::symlink_metadata(s.path("out/o.txt")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(s.path("data/v3")).unwrap(), "old\n", "the link's target is left alone");
}

/// A task whose output directory another task turned into a link while it queued for a slot
/// is refused before anything is deleted or written there. With `-j 1`, whichever of the two
/// runs first links the other's directory elsewhere after 0.5 s (the other resolved its outputs
/// at once, queueing beside it).
#[test]
fn an_output_relinked_while_the_task_queued_is_refused() {
    let run = |other: &str| {
        format!(
            "if [ -e first ]; then echo late > $DAGRUN_OUT_O; else touch first; sleep 0.5; mkdir -p elsewhere/{other}; \
             ln -s ../elsewhere/{other} out/{other}; echo early > $DAGRUN_OUT_O; fi"
        )
    };
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "q", tasks: [
        Task(name: "a", outputs: {{"o": "out/a/o.txt"}}, kind: Command(run: "{}")),
        Task(name: "b", outputs: {{"o": "out/b/o.txt"}}, kind: Command(run: "{}")),
    ])"#,
        run("b"),
        run("a")
    ));
    let (st, events, code) = s.run_json(&["-j", "1"]);
    assert_eq!(code, 1, "{events:?}");
    let (late, _) = st.iter().find(|(_, status)| *status == "failed").expect("one task refused");
    let early = if late == "a" { "b" } else { "a" };
    assert_eq!(st[early], "succeeded");
    let e = events.iter().find(|e| e["event"] == "task_finished" && e["task"] == late.as_str()).unwrap();
    let real = s.path(".").canonicalize().unwrap().join(format!("elsewhere/{late}/o.txt"));
    assert_eq!(
        e["error"],
        format!(
            "output `o` now resolves to {} (a symbolic link changed while the task waited to start); dagrun neither \
             deletes nor writes there: run it again",
            real.display()
        )
    );
    assert_eq!(e["attempts"], 0);
    assert!(!real.exists(), "nothing written through the new link");
}

#[test]
fn force_and_only_select_tasks() {
    let s = pipeline();
    assert_eq!(s.run_json(&[]).2, 0);
    let (st, _, _) = s.run_json(&["--force=train"]);
    assert_eq!(
        st,
        statuses(&[
            ("prepare", "cached"),
            ("features", "cached"),
            ("train", "succeeded"),
            ("report", "succeeded"),
            ("lint", "cached"),
        ])
    );
    let (st, _, _) = s.run_json(&["--force"]);
    assert!(st.values().all(|v| v == "succeeded"), "{st:?}");
    let (st, _, _) = s.run_json(&["--only", "features"]);
    assert_eq!(st, statuses(&[("prepare", "cached"), ("features", "cached")]));
    let out = s.dagrun(&["run", "wf.ron", "--only", "trian"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: no task named `trian` in wf.ron (did you mean `train`?)\n");
}

#[test]
fn history_lists_runs_and_shows_cache_savings() {
    let s = pipeline();
    assert_eq!(s.run_json(&[]).2, 0);
    assert_eq!(s.run_json(&[]).2, 0);
    let runs = stdout(&s.dagrun(&["runs", "wf.ron", "--json"]));
    let runs: Vec<Value> = runs.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["counts"]["cached"], 5, "newest first");
    assert_eq!(runs[1]["counts"]["succeeded"], 5);
    assert_eq!(runs[0]["status"], "succeeded");
    let id = runs[0]["id"].as_str().unwrap();
    let show = s.dagrun(&["show", &id[..id.len() - 1], "wf.ron"]);
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    let text = stdout(&show);
    assert!(text.contains(&format!("run {id} of `pipeline`")), "{text}");
    assert!(text.contains("0 ran, 5 cached, 0 failed, 0 skipped"), "{text}");
    let last = stdout(&s.dagrun(&["show", "last", "wf.ron", "--json"]));
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["id"], id);
    assert_eq!(last["tasks"].as_array().unwrap().len(), 5);
}

#[test]
fn cache_verify_detects_corruption_and_the_task_reruns() {
    let s = pipeline();
    // Over 4,096 bytes: `prepare`'s output is an object (a smaller one lives in its entry).
    s.write("data/raw.csv", &"a,b\n".repeat(1500));
    assert_eq!(s.run_json(&[]).2, 0);
    let ok = s.dagrun(&["cache", "verify", "wf.ron"]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(stdout(&ok).contains("no corruption found"));

    // Corrupt the object holding the cleaned data.
    let clean_digest = blake3::hash(s.read("out/clean.csv").as_bytes()).to_hex().to_string();
    let obj = s.object(&clean_digest);
    let mut perm = std::fs::metadata(&obj).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&obj, perm).unwrap();
    std::fs::write(&obj, "tampered").unwrap();

    let bad = s.dagrun(&["cache", "verify", "wf.ron"]);
    assert_eq!(bad.status.code(), Some(5));
    assert!(stdout(&bad).contains(&format!("corrupt object {clean_digest}: removed")), "{}", stdout(&bad));
    std::fs::remove_file(s.path("out/clean.csv")).unwrap();
    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(st["prepare"], "succeeded", "{st:?}");
    assert_eq!(st["features"], "cached", "the same bytes again: {st:?}");
    assert_eq!(s.read("out/clean.csv"), "A,B\n".repeat(1500));
    assert_eq!(s.dagrun(&["cache", "verify", "wf.ron"]).status.code(), Some(0));
}

#[test]
fn cache_ls_and_gc() {
    let s = pipeline();
    assert_eq!(s.run_json(&[]).2, 0);
    let ls = stdout(&s.dagrun(&["cache", "ls", "wf.ron"]));
    assert!(ls.contains("5 entries"), "{ls}");
    let gc = s.dagrun(&["cache", "gc", "wf.ron"]);
    assert_eq!(stdout(&gc), "removed 0 entries, 0 objects (0 B), 0 temp files, 0 run records, 0 log directories\n");
    let gc = s.dagrun(&["cache", "gc", "wf.ron", "--max-age", "soon"]);
    assert_eq!(gc.status.code(), Some(2));
    assert_eq!(stderr(&gc), "error: invalid --max-age `soon`: not a number (write e.g. \"30d\" or \"12h\")\n");
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let s = pipeline();
    let dot = stdout(&s.dagrun(&["graph", "wf.ron"]));
    assert!(dot.starts_with("digraph \"pipeline\" {"), "{dot}");
    assert!(dot.contains("\"features\" -> \"train\" [label=\"feats\"];"), "{dot}");
    let mermaid = stdout(&s.dagrun(&["graph", "wf.ron", "--format", "mermaid"]));
    assert!(mermaid.contains("t2 -.-> t3"), "{mermaid}");
    assert!(mermaid.contains("t2[\"train (command)\"]"), "{mermaid}");
}

#[test]
fn missing_workflow_file_is_a_usage_error() {
    let s = pipeline();
    let out = s.dagrun(&["run", "nope.ron"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: cannot read workflow nope.ron: "), "{}", stderr(&out));
}

/// Twelve tasks of ~50 ms each in a chain of diamonds: long enough to be killed mid-way.
fn slow_chain() -> Sandbox {
    let mut tasks = String::new();
    for i in 0..12 {
        let input = if i == 0 { "File(\"seed.txt\")".to_owned() } else { format!("Output(\"t{}\", \"o\")", i - 1) };
        tasks.push_str(&format!(
            "Task(name: \"t{i}\", kind: Command(run: \"sleep 0.05; cat $DAGRUN_IN_I > $DAGRUN_OUT_O; echo {i} >> $DAGRUN_OUT_O\"), \
             inputs: {{\"i\": {input}}}, outputs: {{\"o\": \"out/t{i}.txt\"}}),\n"
        ));
    }
    let s = Sandbox::new(&format!("Workflow(name: \"chain\", tasks: [\n{tasks}])"));
    s.write("seed.txt", "seed\n");
    s
}

fn outputs(s: &Sandbox) -> Vec<(String, String)> {
    (0..12).map(|i| (format!("t{i}"), s.read(&format!("out/t{i}.txt")))).collect()
}

/// Waits (at most 30 s) until `path` exists.
fn wait_for(s: &Sandbox, path: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !s.path(path).exists() {
        assert!(std::time::Instant::now() < deadline, "{path} never appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_minus_nine_at_any_moment_then_rerun_matches_a_clean_run() {
    let clean = slow_chain();
    assert_eq!(clean.run_json(&[]).2, 0);
    let expected = outputs(&clean);

    // Kills at fixed delays after the start, and kills anchored to progress (once `out/tN.txt`
    // exists: tasks before N are done, N..11 are not), which land mid-run on a loaded machine too.
    let moments = [(None, 5), (None, 40), (Some(2), 0), (None, 160), (Some(5), 20), (Some(8), 40), (None, 400)];
    let mut mid_run = 0;
    for (after, delay_ms) in moments {
        let ctx = format!("kill {delay_ms} ms after {}", after.map_or("the start".into(), |n| format!("out/t{n}.txt")));
        let s = slow_chain();
        let mut child =
            s.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        if let Some(n) = after {
            wait_for(&s, &format!("out/t{n}.txt"));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Straight after the kill, before a re-run could repair anything.
        let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
        assert_eq!(verify.status.code(), Some(0), "{ctx}: {}", stdout(&verify));
        let (st, _, code) = s.run_json(&[]);
        assert_eq!(code, 0, "{ctx}: {st:?}");
        assert_eq!(outputs(&s), expected, "{ctx}");
        assert_eq!(st.len(), 12, "{ctx}: {st:?}");
        let cached = st.values().filter(|v| *v == "cached").count();
        assert_eq!(cached + st.values().filter(|v| *v == "succeeded").count(), 12, "{ctx}: {st:?}");
        if let Some(n) = after {
            // The tasks before N were committed before N started; the last had not finished.
            assert!(cached >= n && cached < 12, "{ctx}: {st:?}");
        }
        if cached > 0 && cached < 12 {
            mid_run += 1;
        }
        let (st, _, _) = s.run_json(&[]);
        assert!(st.values().all(|v| v == "cached"), "{ctx}: {st:?}");
    }
    assert!(mid_run >= 3, "only {mid_run} kills landed mid-run (some cached, some re-executed tasks)");
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_leaves_no_entry_for_the_interrupted_task() {
    let s = Sandbox::new(
        r#"Workflow(name: "c", tasks: [
        Task(name: "quick", kind: Command(run: "echo q > q.txt"), outputs: {"q": "q.txt"}),
        Task(name: "long", kind: Command(run: "touch started; sleep 30; echo l > l.txt"), outputs: {"l": "l.txt"}, after: ["quick"]),
    ])"#,
    );
    let child = s.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    for _ in 0..200 {
        if s.path("started").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(s.path("started").exists(), "the long task never started");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let events: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let long = events.iter().find(|e| e["event"] == "task_finished" && e["task"] == "long").unwrap();
    assert_eq!(long["status"], "skipped");
    assert_eq!(long["error"], "interrupted");
    assert_eq!(events.last().unwrap()["status"], "interrupted");

    let s2 = s.dagrun(&["plan", "wf.ron"]);
    let plan = stdout(&s2);
    assert!(plan.contains("cached  quick"), "{plan}");
    assert!(plan.contains("run     long   never run"), "{plan}");
}

#[test]
fn state_dir_can_be_moved_by_flag_and_env() {
    let s = pipeline();
    let out = s.dagrun(&["run", "wf.ron", "--state-dir", "elsewhere"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.path("elsewhere/layout").is_file());
    assert!(!s.path(".dagrun").exists());
    let out = s.cmd(&["plan", "wf.ron"]).env("DAGRUN_STATE_DIR", s.path("elsewhere")).output().unwrap();
    assert!(stdout(&out).contains("0 to run, 5 cached"), "{}", stdout(&out));
}

#[test]
fn plain_output_has_a_summary_table() {
    let s = pipeline();
    let out = s.dagrun(&["run", "wf.ron"]);
    let err = stderr(&out);
    assert!(err.contains("task      status         time  cache"), "{err}");
    assert!(err.contains("succeeded: 5 ran, 0 cached, 0 failed, 0 skipped in "), "{err}");
    let out = s.dagrun(&["run", "wf.ron"]);
    assert!(stderr(&out).contains("succeeded: 0 ran, 5 cached, 0 failed, 0 skipped in "), "{}", stderr(&out));
}

/// Whether a process is running (a zombie counts as gone).
#[cfg(target_os = "linux")]
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(target_os = "linux")]
#[test]
fn processes_left_by_a_killed_dagrun_are_reaped_by_the_next_run() {
    let s = Sandbox::new(
        r#"Workflow(name: "orphans", tasks: [
        Task(name: "slow", kind: Command(run: "sleep 30 & echo $! > sleeper.pid; wait")),
        Task(name: "other", kind: Command(run: "true")),
    ])"#,
    );
    let mut child =
        s.cmd(&["run", "wf.ron", "--only", "slow"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until the grandchild runs and dagrun has recorded its process group (a kill between
    // the spawn and that record leaves nothing to reap: a window of microseconds, but real on a
    // loaded machine). The record file exists before its slot is written, so wait for a group
    // id in it, not for the file.
    let recorded = || {
        std::fs::read_dir(s.path(".dagrun/procs")).is_ok_and(|d| {
            d.flatten().any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|t| t.split_whitespace().any(|w| w.parse::<u32>().is_ok()))
            })
        })
    };
    for _ in 0..200 {
        if s.path("sleeper.pid").exists() && !s.read("sleeper.pid").trim().is_empty() && recorded() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(recorded(), "dagrun records the command's process group within 5 s");
    let pid = s.read("sleeper.pid").trim().to_owned();
    child.kill().unwrap(); // SIGKILL: dagrun cannot clean up
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(running(&pid), "the grandchild outlives a SIGKILLed dagrun");
    let out = s.dagrun(&["run", "wf.ron", "--only", "other"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for _ in 0..100 {
        if !running(&pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!running(&pid), "the next run reaps the orphaned process group");
}

#[test]
fn a_second_run_on_the_same_state_directory_is_refused_while_the_first_runs() {
    let s = Sandbox::new(
        r#"Workflow(name: "lock", tasks: [
        Task(name: "long", kind: Command(run: "touch started; sleep 30")),
        Task(name: "quick", kind: Command(run: "true")),
    ])"#,
    );
    let mut first =
        s.cmd(&["run", "wf.ron", "--only", "long"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    for _ in 0..200 {
        if s.path("started").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let second = s.dagrun(&["run", "wf.ron", "--only", "quick"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(75));
    let state = s.path(".dagrun").canonicalize().unwrap();
    assert_eq!(
        stderr(&second),
        format!(
            "error: another dagrun run is using the state directory {} (pid {}): wait for it to finish, or give this run its own --state-dir\n",
            state.display(),
            first.id()
        )
    );
    // The kernel released the lock when the first process died: the next run proceeds.
    let again = s.dagrun(&["run", "wf.ron", "--only", "quick"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
}
