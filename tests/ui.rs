//! `dagrun ui` end to end: the real binary on port 0, its pages over HTTP (a plain std client, so
//! every header is the test's choice), 404 pages for unknown ids, the token and cross-site checks
//! on approve/reject, the token for every page on a non-loopback address, an empty history, a
//! run killed mid-run.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::ui::Ui;
use common::{Sandbox, stderr};
use dagrun_history::{ApprovalState, History, RunRow};

const WF: &str = r#"Workflow(
    name: "wf",
    partitions: {"daily": Daily(start: "2025-01-01", end: "2025-01-31")},
    tasks: [
        Task(name: "prep", partitioned: "daily", kind: Command(run: "echo $DAGRUN_PARTITION > $DAGRUN_OUT_X"),
             outputs: {"x": "out/{date}.txt"}),
        Task(name: "total", kind: Command(run: "cat $DAGRUN_IN_ALL > $DAGRUN_OUT_T"),
             inputs: {"all": Partitions(task: "prep", output: "x")}, outputs: {"t": "out/total.txt"}),
        Task(name: "after", kind: Command(run: "true"), after: ["total"]),
    ],
)"#;

#[test]
fn an_empty_history_renders_and_unknown_ids_are_404_pages() {
    let s = Sandbox::new(WF);
    let ui = Ui::start(&s, &[]);
    for page in ["/", "/runs", "/models", "/drift", "/payoff"] {
        let (status, body) = ui.get(page);
        assert_eq!(status, 200, "{page}: {body}");
        assert!(body.contains("</html>"), "{page}: {body}");
    }
    assert!(ui.get("/runs").1.contains("No runs recorded."));
    assert!(ui.get("/drift").1.contains("No drift incidents recorded."));
    let unknown = [
        "/runs/20990101-000000000-aa",
        "/runs?workflow=nope",
        "/workflows/nope",
        "/workflows/nope/backfill",
        "/models?model=nope",
        "/no/such/page",
    ];
    for page in unknown {
        let (status, body) = ui.get(page);
        assert_eq!(status, 404, "{page}: {body}");
        assert!(body.contains("<h1>Not found</h1>"), "{page}: {body}");
    }
    assert!(ui.get("/runs/x%3Cscript%3E").1.contains("no run `x&lt;script&gt;`"), "escaped");
    // DNS rebinding: another name for 127.0.0.1 gets no page (it would be same-origin with a foreign site).
    let mut c = TcpStream::connect(&ui.addr).unwrap();
    write!(c, "GET /models HTTP/1.1\r\nHost: rebound.example:8765\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 403") && out.contains("not this machine"), "{out}");
}

#[test]
fn a_run_its_dag_its_timeline_and_its_backfill_grid() {
    let s = Sandbox::new(WF);
    let out = s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-05"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ui = Ui::start(&s, &["wf.ron"]);
    let (status, dag) = ui.get("/workflows/wf");
    assert_eq!(status, 200, "{dag}");
    assert_eq!(dag.matches("<g class=\"task\"").count(), 3, "{dag}");
    assert_eq!(dag.matches("<line ").count(), 2, "prep → total → after: {dag}");
    // A backfill runs the partitioned tasks of its range only.
    for (task, st) in [("prep", "succeeded"), ("total", "not run"), ("after", "not run")] {
        assert!(dag.contains(&format!("data-task=\"{task}\" data-status=\"{st}\"")), "{task}: {dag}");
    }
    let runs = History::open(&s.path(".dagrun")).unwrap().runs(None, 10).unwrap();
    assert_eq!(runs.len(), 1);
    let (status, page) = ui.get(&format!("/runs/{}", runs[0].id));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<tr class=\"task\">").count(), 5, "5 days of prep: {page}");
    for day in 1..=5 {
        assert!(page.contains(&format!("<td>prep@2025-01-0{day}</td>")), "{day}: {page}");
    }
    assert!(ui.get("/runs").1.contains(&runs[0].id));
    let (status, grid) = ui.get("/workflows/wf/backfill");
    assert_eq!(status, 200, "{grid}");
    assert!(grid.contains("data-scheme=\"daily\">5</span> partitions"), "{grid}");
    assert_eq!(grid.matches("class=\"s-ran\" title=\"prep").count(), 5, "{grid}");
    let (_, part) = ui.get("/workflows/wf/backfill?from=2025-01-02&to=2025-01-03");
    assert!(part.contains("data-scheme=\"daily\">2</span> partitions"), "{part}");
    // Run again: every day is a cache hit, and the grid says so.
    let again = s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-05"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let grid = ui.get("/workflows/wf/backfill").1;
    assert_eq!(grid.matches("class=\"s-cached\" title=\"prep").count(), 5, "{grid}");
}

#[test]
fn deciding_needs_the_token_and_this_origin_then_does_what_dagrun_reject_does() {
    let s = Sandbox::new(WF);
    let out = s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let h = History::open(&s.path(".dagrun")).unwrap();
    let mut req = common::approval_request("r1", "aaaaaaaaaaaaaaaa");
    req.workflow_path = s.path("wf.ron");
    h.ask(&req, 0).unwrap();
    let ui = Ui::start(&s, &[]);
    let models = ui.get("/models").1;
    assert!(models.contains("<div class=\"approval\" data-run=\"r1\">"), "{models}");
    assert!(models.contains(&format!("name=\"token\" value=\"{}\"", ui.token)), "the form carries the token");
    // A name starting with `-` is a name, not an option of the `dagrun reject` the UI runs.
    let token = format!("token={}&by=-ana", ui.token);
    let refused = [
        ui.post("/runs/r1/approve", &[], "by=ana"),
        ui.post("/runs/r1/reject", &[], "token=0123&by=ana"),
        ui.post("/runs/r1/approve", &[("Origin", "http://evil.example")], &token),
        ui.post("/runs/r1/approve", &[("Sec-Fetch-Site", "cross-site")], &token),
    ];
    for (i, (status, body)) in refused.iter().enumerate() {
        assert_eq!(*status, 403, "{i}: {body}");
    }
    assert!(refused[0].1.contains("need the token"), "{}", refused[0].1);
    assert!(refused[2].1.contains("http://evil.example cannot approve"), "{}", refused[2].1);
    assert_eq!(h.approvals_of_run("r1").unwrap()[0].state, ApprovalState::Pending, "nothing decided yet");
    let (status, body) = ui.post("/runs/nobody/reject", &[], &token);
    assert_eq!(status, 404, "{body}");
    let origin = format!("http://{}", ui.addr);
    let (status, body) = ui.post("/runs/r1/reject", &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")], &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("request #1 rejected by -ana"), "dagrun reject's own words: {body}");
    let decided = &h.approvals_of_run("r1").unwrap()[0];
    assert_eq!((decided.state, decided.decided_by.as_deref()), (ApprovalState::Rejected, Some("-ana")));
    let (status, body) = ui.post("/runs/r1/approve", &[], &token);
    assert_eq!(status, 409, "decided already: {body}");
}

#[test]
fn a_non_loopback_address_needs_the_token_for_every_page() {
    let s = Sandbox::new(WF);
    let mut ui = Ui::start(&s, &["--addr", "0.0.0.0:0"]);
    ui.addr = ui.addr.replace("0.0.0.0", "127.0.0.1");
    let (status, body) = ui.get("/runs");
    assert_eq!(status, 403, "{body}");
    assert_eq!(ui.get("/runs?token=wrong").0, 403);
    let (status, head) = ui.get(&format!("/runs?token={}", ui.token));
    assert_eq!(status, 200, "{head}");
    assert!(head.contains(&format!("dagrun_ui_token={}", ui.token)), "a cookie keeps it: {head}");
    let cookie = format!("dagrun_ui_token={}", ui.token);
    assert_eq!(ui.request("GET", "/models", &[("Cookie", &cookie)], "").0, 200);
}

#[test]
fn a_run_killed_mid_run_shows_as_unfinished_and_its_events_stream() {
    let s = Sandbox::new(WF);
    let h = History::open(&s.path(".dagrun")).unwrap();
    let run = RunRow {
        id: "20250101-000000000-aa".into(),
        workflow: "wf".into(),
        started_ms: 1_735_689_600_000,
        status: "running".into(),
        ..Default::default()
    };
    h.record_run(&run).unwrap();
    let ui = Ui::start(&s, &[]);
    let page = ui.get(&format!("/runs/{}", run.id)).1;
    assert!(page.contains("data-live=\"1\"") && page.contains("Still going (or killed mid-run)"), "{page}");
    assert!(page.contains("No task finished in this run (yet)."), "{page}");
    let mut c = TcpStream::connect(&ui.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET /runs/{}/events HTTP/1.1\r\nHost: {}\r\n\r\n", run.id, ui.addr).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains("data: running 0") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
}

/// A `Drift` task over two files the test writes.
const DRIFT_WF: &str = r#"Workflow(
    name: "watch",
    tasks: [
        Task(name: "drift", kind: Drift(reference: "ref", current: "cur", categorical: ["city"]),
             inputs: {"ref": File("ref.csv"), "cur": File("cur.csv")}, outputs: {"report": "out/drift.json"}),
    ],
)"#;

/// 300 rows of `age,income,city`; `shift` is added to every income.
fn rows(order: impl Fn(usize) -> usize, shift: usize) -> String {
    let mut s = String::from("age,income,city\n");
    for i in (0..300).map(order) {
        s.push_str(&format!("{},{},{}\n", 20 + i % 45, 1000 + (i * 37) % 500 + shift, ["lyon", "nice", "caen"][i % 3]));
    }
    s
}

#[test]
fn the_drift_page_charts_each_column_over_real_runs_and_marks_the_drifted_one() {
    let s = Sandbox::new(DRIFT_WF);
    s.write("ref.csv", &rows(|i| i, 0));
    // The same rows in another order: no drift.
    s.write("cur.csv", &rows(|i| (i * 7) % 300, 0));
    let (tasks, events, code) = s.run_json(&[]);
    assert_eq!((code, tasks["drift"].as_str()), (0, "succeeded"), "{events:?}");
    // Incomes shifted by 400: only `income` drifts.
    s.write("cur.csv", &rows(|i| (i * 7) % 300, 400));
    let (_, events, code) = s.run_json(&[]);
    assert_eq!(code, 0, "{events:?}");
    let summary = &events.iter().find(|e| e["event"] == "task_finished").unwrap()["summary"];
    assert_eq!(summary["drifted_columns"], serde_json::json!(["income"]), "{summary}");

    let ui = Ui::start(&s, &["wf.ron"]);
    let (status, page) = ui.get("/drift");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<section class=\"drift\" data-workflow=\"watch\" data-task=\"drift\">"), "{page}");
    for (column, drifted) in [("age", 0), ("income", 1), ("city", 0)] {
        let figure = format!("class=\"drift-column\" data-column=\"{column}\"");
        let at = page.find(&figure).unwrap_or_else(|| panic!("no chart of {column}: {page}"));
        let chart = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(chart.contains(&format!("data-points=\"2\" data-drifted=\"{drifted}\"")), "{column}: {chart}");
        assert_eq!(chart.matches("<circle ").count(), 2, "{column}: one point per run: {chart}");
        assert_eq!(chart.matches("<circle class=\"point drifted\"").count(), drifted, "{column}: {chart}");
        assert!(chart.contains("class=\"threshold\""), "{column}: {chart}");
        assert!(page.contains(&format!("<tr data-column=\"{column}\">")), "{column} in the table: {page}");
    }
    let test = |c: &str| page.split(&format!("data-column=\"{c}\" data-test=\"")).nth(1).unwrap()[..2].to_owned();
    assert_eq!(
        (test("income"), test("city")),
        ("ks".to_owned(), "ch".to_owned()),
        "KS for numbers, chi-square for categories"
    );
    assert!(page.contains("No drift incidents recorded."), "the incidents stay listed: {page}");

    // The store rebuilt from the run records has the same points.
    drop(ui);
    for file in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
        let _ = std::fs::remove_file(s.path(".dagrun").join(file));
    }
    assert!(!s.path(".dagrun/history.sqlite").exists());
    let ui = Ui::start(&s, &[]);
    let again = ui.get("/drift").1;
    assert!(again.contains("data-column=\"income\" data-test=\"ks\" data-points=\"2\" data-drifted=\"1\""), "{again}");
}

/// Two independent tasks of about a second, then one after both.
const PARALLEL_WF: &str = r#"Workflow(
    name: "fan",
    tasks: [
        Task(name: "left", kind: Command(run: "sleep 1")),
        Task(name: "right", kind: Command(run: "sleep 1")),
        Task(name: "join", kind: Command(run: "true"), after: ["left", "right"]),
    ],
)"#;

/// `(offset, duration)` of a task's bar on the run page.
fn bar(page: &str, task: &str) -> (i64, i64) {
    let row = page.split(&format!("<td>{task}</td>")).nth(1).unwrap_or_else(|| panic!("no row of {task}: {page}"));
    let attr = |name: &str| -> i64 {
        let from =
            row.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("{task}: no {name}: {row}")) + name.len() + 2;
        row[from..from + row[from..].find('"').unwrap()].parse().unwrap()
    };
    (attr("data-offset-ms"), attr("data-duration-ms"))
}

#[test]
fn the_run_timeline_draws_tasks_at_their_start_so_parallel_tasks_overlap() {
    let s = Sandbox::new(PARALLEL_WF);
    let (tasks, events, code) = s.run_json(&["-j", "2"]);
    assert_eq!((code, tasks.len()), (0, 3), "{events:?}");
    // The run record (version 3) and the store carry each task's start.
    let record = s.read(&format!(".dagrun/runs/{}.json", events[0]["run_id"].as_str().unwrap()));
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["version"], 3);
    assert!(record["tasks"].as_array().unwrap().iter().all(|t| t["started_ms"].as_u64().is_some()), "{record}");
    let run = History::open(&s.path(".dagrun")).unwrap().runs(None, 1).unwrap().remove(0);

    let ui = Ui::start(&s, &["wf.ron"]);
    let page = ui.get(&format!("/runs/{}", run.id)).1;
    assert!(page.contains("data-timed=\"1\"") && page.contains("task (by start time)"), "{page}");
    let (left, right, join) = (bar(&page, "left"), bar(&page, "right"), bar(&page, "join"));
    for (name, (start, took)) in [("left", left), ("right", right)] {
        assert!(start < 700 && took >= 900, "{name} starts at once and takes a second: {start} {took}");
    }
    assert!(left.0 < right.0 + right.1 && right.0 < left.0 + left.1, "they overlap: {left:?} {right:?}");
    assert!(join.0 + 50 >= (left.0 + left.1).max(right.0 + right.1), "join starts after both: {join:?}");
    // Start order: the two sleepers (either first), then join.
    let at = |t: &str| page.find(&format!("<td>{t}</td>")).unwrap();
    assert!(at("left") < at("join") && at("right") < at("join"), "{page}");
}

#[test]
fn a_run_recorded_without_start_times_keeps_its_completion_order() {
    let s = Sandbox::new(PARALLEL_WF);
    let h = History::open(&s.path(".dagrun")).unwrap();
    let task = |name: &str, ms: i64| dagrun_history::TaskRow {
        task: name.into(),
        status: "succeeded".into(),
        duration_ms: ms,
        ..Default::default()
    };
    let run = RunRow {
        id: "20250101-000000000-aa".into(),
        workflow: "fan".into(),
        started_ms: 1_735_689_600_000,
        finished_ms: Some(1_735_689_602_000),
        status: "succeeded".into(),
        tasks: vec![task("right", 1_000), task("left", 1_100), task("join", 5)],
        ..Default::default()
    };
    h.record_run(&run).unwrap();
    let ui = Ui::start(&s, &[]);
    let page = ui.get(&format!("/runs/{}", run.id)).1;
    assert!(page.contains("data-timed=\"0\"") && page.contains("task (in completion order)"), "{page}");
    assert!(!page.contains("data-offset-ms"), "no start, no offset: {page}");
    let at = |t: &str| page.find(&format!("<td>{t}</td>")).unwrap();
    assert!(at("right") < at("left") && at("left") < at("join"), "{page}");
}

/// A `dagrun run` killed with SIGKILL mid-run: `dagrun runs`, the UI and the report say
/// `killed`; while it ran they said `running`.
#[test]
fn a_run_killed_with_kill_9_shows_as_killed_not_running() {
    let s = Sandbox::new(r#"Workflow(name: "slow", tasks: [Task(name: "wait", kind: Command(run: "sleep 8"))])"#);
    let mut child = s
        .cmd(&["run", "wf.ron"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let id = loop {
        let found = std::fs::read_dir(s.path(".dagrun/runs")).ok().and_then(|d| d.flatten().next());
        if let Some(e) = found {
            break e.file_name().to_string_lossy().trim_end_matches(".json").to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the run never wrote its record");
        std::thread::sleep(Duration::from_millis(50));
    };
    let runs = |s: &Sandbox| common::stdout(&s.dagrun(&["runs"]));
    let listed = runs(&s);
    assert!(listed.contains(&id) && listed.contains("running ") && !listed.contains("killed"), "{listed}");
    let ui = Ui::start(&s, &[]);
    let page = ui.get(&format!("/runs/{id}")).1;
    assert!(page.contains("data-status=\"running\" data-live=\"1\"") && page.contains("Still going:"), "{page}");
    drop(ui);

    child.kill().unwrap(); // SIGKILL: no cleanup, the record stays `running`
    child.wait().unwrap();
    let record = s.read(&format!(".dagrun/runs/{id}.json"));
    assert!(record.contains("\"status\": \"running\"") && record.contains("\"pid\""), "{record}");
    let listed = runs(&s);
    assert!(listed.contains("killed") && !listed.contains("running"), "{listed}");
    let ui = Ui::start(&s, &[]);
    let page = ui.get(&format!("/runs/{id}")).1;
    assert!(page.contains("data-status=\"killed\">") && page.contains("Killed mid-run"), "{page}");
    assert!(!page.contains("data-live"), "nothing to wait for: {page}");
    assert!(ui.get("/runs").1.contains("<td class=\"s-failed\">killed</td>"));
    let out = s.dagrun(&["report", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!((report["total"]["unfinished"].as_u64(), report["total"]["killed"].as_u64()), (Some(1), Some(1)));
    let text = common::stdout(&s.dagrun(&["report"]));
    assert!(text.contains("unfinished 1: 1 killed"), "{text}");
}
