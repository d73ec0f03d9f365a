//! Partitions and backfills end to end: a 365-day workflow run by the real `dagrun` binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

/// Per day: `prep` copies `data/<date>.csv` (and logs that it ran); `week` reads the last 7
/// days of `prep`; `total` (not partitioned) reads every day.
const YEAR: &str = r#"Workflow(
    name: "year",
    partitions: {"daily": Daily(start: "2025-01-01", end: "2025-12-31")},
    tasks: [
        Task(name: "prep", partitioned: "daily",
             kind: Command(run: "echo $DAGRUN_PARTITION >> ran.log; cat $DAGRUN_IN_RAW > $DAGRUN_OUT_CLEAN"),
             inputs: {"raw": File("data/{date}.csv")}, outputs: {"clean": "out/prep/{date}.csv"}),
        Task(name: "week", partitioned: "daily",
             kind: Command(run: "cat $DAGRUN_IN_DAYS | wc -l > $DAGRUN_OUT_N; echo $DAGRUN_PARAMS >> $DAGRUN_OUT_N"),
             inputs: {"days": Partitions(task: "prep", output: "clean", last: 7)},
             outputs: {"n": "out/week/{date}.txt"}, params: {"label": "week ending {date}"}),
        Task(name: "total", kind: Command(run: "cat $DAGRUN_IN_ALL | wc -l > $DAGRUN_OUT_M"),
             inputs: {"all": Partitions(task: "prep", output: "clean")}, outputs: {"m": "out/total.txt"}),
    ],
)"#;

struct Sandbox {
    dir: tempfile::TempDir,
}

/// Every day of 2025, `YYYY-MM-DD`.
fn dates() -> Vec<String> {
    use dagrun_workflow::partition::{civil, days_from_civil};
    let days = days_from_civil(2025, 1, 1)..days_from_civil(2026, 1, 1);
    days.map(|day| civil(day * 86_400)).map(|(y, m, d, _)| format!("{y}-{m:02}-{d:02}")).collect()
}

impl Sandbox {
    fn year() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.ron"), YEAR).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        for (i, d) in dates().iter().enumerate() {
            std::fs::write(dir.path().join(format!("data/{d}.csv")), format!("{d},{i}\n")).unwrap();
        }
        Sandbox { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.dir.path()).env("NO_COLOR", "1").stdin(Stdio::null());
        c
    }

    fn dagrun(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `backfill` over the whole year with `--json`: instance → status, and the exit code.
    fn backfill(&self, extra: &[&str]) -> (BTreeMap<String, String>, Vec<Value>, i32) {
        let mut args = vec!["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-12-31", "--json"];
        args.extend_from_slice(extra);
        let out = self.dagrun(&args);
        let events: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let st = events
            .iter()
            .filter(|e| e["event"] == "task_finished")
            .map(|e| (e["task"].as_str().unwrap().to_owned(), e["status"].as_str().unwrap().to_owned()))
            .collect();
        (st, events, out.status.code().unwrap_or(-1))
    }

    fn ran_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("ran.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

fn ran(st: &BTreeMap<String, String>) -> Vec<String> {
    st.iter().filter(|(_, s)| *s == "succeeded").map(|(t, _)| t.clone()).collect()
}

#[test]
fn backfill_reruns_exactly_what_changed() {
    let s = Sandbox::year();
    let (st, events, code) = s.backfill(&["-j", "2"]);
    assert_eq!(code, 0);
    assert_eq!(st.len(), 365 * 2 + 1);
    assert!(st.values().all(|v| v == "succeeded"), "first backfill runs every partition");
    assert_eq!(events.iter().filter(|e| e["event"] == "partition_finished").count(), 365);
    assert_eq!(std::fs::read_to_string(s.path("out/total.txt")).unwrap().trim(), "365");
    let week = std::fs::read_to_string(s.path("out/week/2025-03-10.txt")).unwrap();
    assert_eq!(week, "7\n{\"label\":\"week ending 2025-03-10\"}\n", "a 7-day window, params templated");

    let (st, _, code) = s.backfill(&[]);
    assert_eq!(code, 0);
    assert!(ran(&st).is_empty(), "an immediate re-run runs nothing");

    // Change the input files of 3 days.
    for d in ["2025-03-03", "2025-06-10", "2025-12-30"] {
        std::fs::write(s.path(&format!("data/{d}.csv")), format!("{d},changed\n")).unwrap();
    }
    let plan = String::from_utf8_lossy(
        &s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-12-31", "--plan"]).stdout,
    )
    .into_owned();
    let changed: Vec<&str> = plan.lines().filter(|l| l.contains("input `raw` changed")).collect();
    assert_eq!(changed.len(), 3, "{plan}");
    for d in ["2025-03-03", "2025-06-10", "2025-12-30"] {
        assert!(
            plan.contains(&format!("  run     {d}  prep: input `raw` changed: data/{d}.csv changed; week: ")),
            "{plan}"
        );
    }
    let mut expected: Vec<String> = vec!["total".to_owned()];
    for (d, window) in [("2025-03-03", 0..7), ("2025-06-10", 0..7), ("2025-12-30", 0..2)] {
        let i = dates().iter().position(|x| x == d).unwrap();
        expected.push(format!("prep@{d}"));
        expected.extend(window.map(|k| format!("week@{}", dates()[i + k])));
    }
    expected.sort();
    let (st, _, code) = s.backfill(&[]);
    assert_eq!(code, 0);
    assert_eq!(ran(&st), expected, "exactly the changed days, the windows containing them, and `total`");

    // A param of `week` changes: `week` re-runs in every partition, nothing upstream of it.
    std::fs::write(s.path("wf.ron"), YEAR.replace("week ending {date}", "7 days to {date}")).unwrap();
    let (st, _, _) = s.backfill(&[]);
    let reran = ran(&st);
    assert_eq!(reran.len(), 365);
    assert!(reran.iter().all(|t| t.starts_with("week@")), "{reran:?}");
}

#[test]
fn a_killed_backfill_resumes_without_rerunning_finished_partitions() {
    let s = Sandbox::year();
    let mut child = s.cmd(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-12-31", "-j", "2"]);
    let mut child = child.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Bounded: a backfill that crashes or stalls fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while s.ran_log().len() < 120 {
        assert!(child.try_wait().unwrap().is_none(), "the backfill exited before 120 days ran");
        assert!(std::time::Instant::now() < deadline, "120 days did not run within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = s.ran_log().len();
    assert!(before < 365, "killed halfway ({before} days done)");
    let (_, _, code) = s.backfill(&["-j", "2"]);
    assert_eq!(code, 0);
    let log = s.ran_log();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &log {
        *counts.entry(d.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 365, "every day ran");
    // In flight at the kill: up to 2 commands running (-j 2), and as many whose command had
    // ended but whose outputs were still being stored (on another thread, while the next job
    // starts its command): up to twice -j, as `RunOptions::jobs` says.
    let twice: Vec<&&str> = counts.iter().filter(|(_, n)| **n > 1).map(|(d, _)| d).collect();
    assert!(twice.len() <= 4, "only the partitions in flight at the kill (up to twice -j 2) may run twice: {twice:?}");
    let (st, _, _) = s.backfill(&[]);
    assert!(ran(&st).is_empty());
}

#[test]
fn run_picks_one_partition_and_reverse_starts_with_the_newest() {
    let s = Sandbox::year();
    let out = s.dagrun(&["run", "wf.ron", "--partition", "2025-02-14", "--only", "week", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Day 2025-02-14 plus the 6 days its week window needs.
    let log = s.ran_log();
    assert_eq!(log.len(), 7);
    assert!(log.contains(&"2025-02-14".to_owned()) && log.contains(&"2025-02-08".to_owned()));
    assert!(s.path("out/week/2025-02-14.txt").is_file());
    assert!(!s.path("out/week/2025-02-13.txt").exists());
    // `total` reads the whole history: an older partition is a partial run, which leaves it out
    // rather than computing it on Jan 1 to Feb 14 only.
    let out = s.dagrun(&["run", "wf.ron", "--partition", "2025-02-14"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(s.ran_log().len(), 7, "nothing more ran");
    assert!(!s.path("out/total.txt").exists());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("  left out total: `total` reads every partition up to the latest")
    );

    // Without --partition: the latest complete partition (the scheme ends 2025-12-31), and
    // `total` over the whole year.
    let out = s.dagrun(&["run", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(s.path("out/week/2025-12-31.txt").is_file());
    assert_eq!(std::fs::read_to_string(s.path("out/total.txt")).unwrap().trim(), "365");

    let out = s.dagrun(&["run", "wf.ron", "--partition", "2026-01-05"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no partition `2026-01-05` in scheme `daily` (outside its range, or not a date)\n"
    );

    let s = Sandbox::year();
    let (_, events, code) = s.backfill(&["--reverse", "-j", "1"]);
    assert_eq!(code, 0);
    let first = events.iter().find(|e| e["event"] == "task_started").unwrap();
    assert_eq!(first["task"], "prep@2025-12-31", "newest first");
}
