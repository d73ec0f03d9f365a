//! Sharded backfills end to end (`dagrun backfill --shard I/N`) with the real binary: shards
//! split a range exactly, leave out what reads every partition, and an unsharded run after them
//! finds every partition cached.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{Sandbox, stderr, stdout, task_statuses};
use serde_json::Value;

/// Ten days: `setup` (reads no partition) feeds each day's `prep`; `score` per day; `total`
/// reads every day's `prep`, `report` runs after every `score`: neither is partitioned.
const DAYS: &str = r#"Workflow(
    name: "shards",
    partitions: {"daily": Daily(start: "2025-01-01", end: "2025-01-10")},
    tasks: [
        Task(name: "setup", kind: Command(run: "echo setup >> ran.log; echo v1 > $DAGRUN_OUT_T"),
             outputs: {"t": "out/setup.txt"}),
        Task(name: "prep", partitioned: "daily",
             kind: Command(run: "echo prep $DAGRUN_PARTITION >> ran.log; cat $DAGRUN_IN_RAW $DAGRUN_IN_SETUP > $DAGRUN_OUT_CLEAN"),
             inputs: {"raw": File("data/{date}.csv"), "setup": Output("setup", "t")},
             outputs: {"clean": "out/prep/{date}.csv"}),
        Task(name: "score", partitioned: "daily", kind: Command(run: "wc -l < $DAGRUN_IN_C > $DAGRUN_OUT_S"),
             inputs: {"c": Output("prep", "clean")}, outputs: {"s": "out/score/{date}.txt"}),
        Task(name: "total", kind: Command(run: "cat $DAGRUN_IN_ALL | wc -l > $DAGRUN_OUT_M"),
             inputs: {"all": Partitions(task: "prep", output: "clean")}, outputs: {"m": "out/total.txt"}),
        Task(name: "report", kind: Command(run: "ls out/score | wc -l > $DAGRUN_OUT_R"), after: ["score"],
             outputs: {"r": "out/report.txt"}),
    ],
)"#;

const RANGE: [&str; 4] = ["--from", "2025-01-01", "--to", "2025-01-10"];

fn day(d: u32) -> String {
    format!("2025-01-{d:02}")
}

/// A sandbox ("machine") with the workflow and ten days of data.
fn machine() -> Sandbox {
    let s = Sandbox::new(DAYS);
    for d in 1..=10 {
        s.write(&format!("data/{}.csv", day(d)), &format!("{},{d}\n", day(d)));
    }
    s
}

/// `backfill wf.ron --from .. --to .. --json EXTRA`: instance → status, the events, the exit code.
fn backfill(s: &Sandbox, extra: &[&str]) -> (BTreeMap<String, String>, Vec<Value>, i32) {
    let mut args = vec!["backfill", "wf.ron", "--json"];
    args.extend_from_slice(&RANGE);
    args.extend_from_slice(extra);
    let out = s.dagrun(&args);
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    (task_statuses(&events), events, out.status.code().unwrap_or(-1))
}

fn with_status(st: &BTreeMap<String, String>, status: &str) -> BTreeSet<String> {
    st.iter().filter(|(_, s)| *s == status).map(|(t, _)| t.clone()).collect()
}

/// `prep@D` and `score@D` for each day D.
fn instances(days: &[u32]) -> BTreeSet<String> {
    days.iter().flat_map(|&d| [format!("prep@{}", day(d)), format!("score@{}", day(d))]).collect()
}

/// The slices of 3 shards of the ten days: round-robin by position.
const SLICES: [&[u32]; 3] = [&[1, 4, 7, 10], &[2, 5, 8], &[3, 6, 9]];

fn left_out(events: &[Value]) -> Vec<String> {
    let e = events.iter().find(|e| e["event"] == "tasks_left_out").expect("a tasks_left_out event");
    e["tasks"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

#[test]
fn shards_in_one_state_directory_leave_the_unsharded_run_only_the_unpartitioned_tasks() {
    let s = machine();
    let plan =
        s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-10", "--shard", "2/3", "--plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(text.starts_with("backfill plan for `shards`: 3 partitions: 3 to run, 0 cached\n"), "{text}");
    let planned: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  run     "))
        .map(|l| &l[..10])
        .filter(|k| k.starts_with("2025"))
        .collect();
    assert_eq!(planned, ["2025-01-02", "2025-01-05", "2025-01-08"], "{text}");
    assert!(text.contains("left out total, report: `total`, `report` read partitioned tasks, and shard 2/3"), "{text}");

    let mut executed: Vec<String> = Vec::new();
    for (i, slice) in SLICES.iter().enumerate() {
        let shard = format!("{}/3", i + 1);
        let (st, events, code) = backfill(&s, &["--shard", &shard]);
        assert_eq!(code, 0, "shard {shard}");
        let ran = with_status(&st, "succeeded");
        let partitioned: BTreeSet<String> = ran.iter().filter(|t| t.contains('@')).cloned().collect();
        assert_eq!(partitioned, instances(slice), "shard {shard} runs exactly its slice");
        assert_eq!(
            ran.contains("setup"),
            i == 0,
            "`setup` reads no partition: the first shard runs it, then it is cached"
        );
        assert_eq!(left_out(&events), ["total", "report"], "shard {shard}");
        assert!(!st.contains_key("total") && !st.contains_key("report"));
        executed.extend(partitioned);
    }
    let unique: BTreeSet<String> = executed.iter().cloned().collect();
    assert_eq!(unique.len(), executed.len(), "no instance ran in two shards: {executed:?}");
    assert_eq!(unique, instances(&(1..=10).collect::<Vec<_>>()), "together the shards cover the range");
    let log = s.read("ran.log");
    for d in 1..=10 {
        assert_eq!(log.matches(&format!("prep {}\n", day(d))).count(), 1, "{log}");
    }
    assert!(!s.path("out/total.txt").exists(), "no shard computed a partial total");

    let (st, events, code) = backfill(&s, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        with_status(&st, "succeeded"),
        ["report", "total"].map(str::to_owned).into(),
        "only the unpartitioned tasks run"
    );
    assert_eq!(with_status(&st, "cached").len(), 21, "setup and every partition are cache hits");
    assert!(events.iter().all(|e| e["event"] != "tasks_left_out"));
    assert_eq!(s.read("out/total.txt").trim(), "20", "2 lines from each of the 10 days");
    assert_eq!(s.read("out/report.txt").trim(), "10");
}

#[test]
fn shards_on_separate_machines_each_run_exactly_their_slice() {
    let states = tempfile::tempdir().unwrap();
    for (i, slice) in SLICES.iter().enumerate() {
        let m = machine();
        let state = states.path().join(format!("machine-{}", i + 1));
        let shard = format!("{}/3", i + 1);
        let (st, _, code) = backfill(&m, &["--shard", &shard, "--state-dir", state.to_str().unwrap()]);
        assert_eq!(code, 0, "shard {shard}");
        let mut expected = instances(slice);
        expected.insert("setup".to_owned());
        assert_eq!(with_status(&st, "succeeded"), expected, "shard {shard}: its slice, nothing cached");
        assert_eq!(st.len(), expected.len(), "shard {shard} ran nothing else");
        assert!(state.join("history.sqlite").exists() && !m.path(".dagrun").exists(), "the given state directory");
        assert_outputs(m.dir.path(), slice);
    }
    // Without a remote cache separate state directories share nothing: the machines meet
    // through one in `three_shards_on_three_machines_leave_a_fourth_only_the_unpartitioned_tasks`.
}

/// [`backfill`] on a machine that shares the remote cache `s3://shards/ci` on `server`.
fn backfill_shared(
    s: &Sandbox,
    server: &common::s3::Seaweed,
    extra: &[&str],
) -> (BTreeMap<String, String>, Vec<Value>) {
    let mut args = vec!["backfill", "wf.ron", "--json"];
    args.extend_from_slice(&RANGE);
    args.extend_from_slice(extra);
    let mut cmd = s.cmd(&args);
    server.apply(&mut cmd);
    cmd.env("DAGRUN_REMOTE_CACHE", "s3://shards/ci").env("AWS_SHARED_CREDENTIALS_FILE", s.path("none"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().all(|e| e["event"] != "remote_warning"), "{events:?}");
    (task_statuses(&events), events)
}

/// Instances served by the remote cache in a run.
fn remote_hits(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["event"] == "task_finished" && e["remote"] == true)
        .map(|e| e["task"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue #15: three CI jobs (three machines, three state directories) each run one shard and
/// publish to one remote cache; a fourth machine's unsharded backfill gets every partition
/// from it and runs only what the shards leave out; a second run there has nothing to do.
/// Needs SeaweedFS (`DAGRUN_WEED`, set by scripts/test-infra.sh).
#[test]
fn three_shards_on_three_machines_leave_a_fourth_only_the_unpartitioned_tasks() {
    let Some(server) = common::s3::Seaweed::start("sharded backfill across machines", &["shards"]) else { return };
    for (i, slice) in SLICES.iter().enumerate() {
        let m = machine();
        let shard = format!("{}/3", i + 1);
        let (st, events) = backfill_shared(&m, &server, &["--shard", &shard]);
        let ran: BTreeSet<String> = with_status(&st, "succeeded").into_iter().filter(|t| t.contains('@')).collect();
        assert_eq!(ran, instances(slice), "shard {shard} runs exactly its slice");
        // `setup` reads no partition: the first machine runs it, the others get it remotely.
        let setup_remote = remote_hits(&events).contains("setup");
        assert_eq!(setup_remote, i > 0, "shard {shard}: {st:?}");
        assert_outputs(m.dir.path(), slice);
    }
    let last = machine();
    let (st, events) = backfill_shared(&last, &server, &[]);
    assert_eq!(with_status(&st, "succeeded"), ["report", "total"].map(str::to_owned).into(), "{st:?}");
    let mut every = instances(&(1..=10).collect::<Vec<_>>());
    every.insert("setup".to_owned());
    assert_eq!(remote_hits(&events), every, "every partition and setup come from the remote cache");
    assert_eq!(last.read("out/total.txt").trim(), "20");
    assert_eq!(last.read("out/report.txt").trim(), "10");
    for d in 1..=10 {
        let want = format!("{},{d}\nv1\n", day(d));
        assert_eq!(last.read(&format!("out/prep/{}.csv", day(d))), want, "day {d} restored byte for byte");
    }
    let (st, _) = backfill_shared(&last, &server, &[]);
    assert!(st.values().all(|s| s == "cached"), "nothing left to do: {st:?}");
}

/// The shard's days have their outputs; the other days have none.
fn assert_outputs(dir: &Path, slice: &[u32]) {
    for d in 1..=10 {
        let exists = dir.join(format!("out/score/{}.txt", day(d))).exists();
        assert_eq!(exists, slice.contains(&d), "out/score/{}.txt", day(d));
    }
}

#[test]
fn bad_shards_are_usage_errors_and_an_empty_shard_has_nothing_to_do() {
    let s = machine();
    let cases = [
        ("0/3", "`0/3`: shards are numbered 1 to 3 (1/3 to 3/3)"),
        ("4/3", "`4/3`: shards are numbered 1 to 3 (1/3 to 3/3)"),
        ("1/0", "`1/0`: the number of shards must be at least 1 (e.g. 1/1)"),
        ("abc", "`abc` is not a shard: write I/N, shard I of N shards (e.g. 2/3)"),
        ("1/3/4", "`1/3/4` is not a shard: write I/N, shard I of N shards (e.g. 2/3)"),
    ];
    for (shard, why) in cases {
        let out = s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-10", "--shard", shard]);
        assert_eq!(out.status.code(), Some(2), "{shard}");
        let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
        assert_eq!(first, format!("error: invalid value '{shard}' for '--shard <I/N>': {why}"));
    }
    // Ten days, eleven shards: a CI matrix job with nothing to do does not fail.
    let out = s.dagrun(&["backfill", "wf.ron", "--from", "2025-01-01", "--to", "2025-01-10", "--shard", "11/11"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stderr(&out),
        "note: shard 11/11 has no partition: the selection has 10, fewer than 11 shards: nothing to do\n"
    );
    assert_eq!(stdout(&out), "");
    assert!(!s.path("ran.log").exists() && !s.path(".dagrun").exists(), "nothing ran, no state written");
    // A task a shard leaves out cannot be asked for.
    let out = s.dagrun(&[
        "backfill",
        "wf.ron",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-10",
        "--shard",
        "1/3",
        "--only",
        "total",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "`total` cannot run in this run: `total` reads partitioned tasks, and shard 1/3 has only its own share"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_listed_selection_is_sharded_in_time_order_whatever_order_it_is_given_in() {
    let s = machine();
    for list in ["2025-01-09,2025-01-02,2025-01-05,2025-01-07", "2025-01-02,2025-01-05,2025-01-07,2025-01-09"] {
        let out = s.dagrun(&["backfill", "wf.ron", "--partitions", list, "--shard", "2/2", "--plan"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  run     "))
            .filter(|l| l.starts_with("2025"))
            .map(|l| &l[..10])
            .collect();
        assert_eq!(keys, ["2025-01-05", "2025-01-09"], "{text}");
    }
}

/// Ten days of `prep` and a per-day `week` over the last 3 days of `prep`: a shard's `week`
/// reads days of other shards.
const WINDOWS: &str = r#"Workflow(
    name: "windows",
    partitions: {"daily": Daily(start: "2025-01-01", end: "2025-01-10")},
    tasks: [
        Task(name: "prep", partitioned: "daily",
             kind: Command(run: "echo prep $DAGRUN_PARTITION >> ran.log; echo $DAGRUN_PARTITION > $DAGRUN_OUT_O"),
             outputs: {"o": "out/prep/{date}.txt"}),
        Task(name: "week", partitioned: "daily", kind: Command(run: "cat $DAGRUN_IN_DAYS > $DAGRUN_OUT_W"),
             inputs: {"days": Partitions(task: "prep", output: "o", last: 3)}, outputs: {"w": "out/week/{date}.txt"}),
    ],
)"#;

#[test]
fn a_shard_runs_the_window_days_it_reads_and_the_unsharded_run_after_the_shards_runs_nothing() {
    let s = Sandbox::new(WINDOWS);
    let mut executed: Vec<String> = Vec::new();
    for (i, slice) in SLICES.iter().enumerate() {
        let (st, _, code) = backfill(&s, &["--shard", &format!("{}/3", i + 1)]);
        assert_eq!(code, 0);
        let ran = with_status(&st, "succeeded");
        let weeks: BTreeSet<String> = ran.iter().filter(|t| t.starts_with("week@")).cloned().collect();
        assert_eq!(weeks, slice.iter().map(|&d| format!("week@{}", day(d))).collect(), "shard {}/3", i + 1);
        if i == 0 {
            assert!(ran.contains("prep@2025-01-02") && ran.contains("prep@2025-01-03"), "{ran:?}");
        }
        executed.extend(ran);
    }
    // Shard 1/3's `week@2025-01-04` reads 01-02 and 01-03 too: shard 1 runs them, shards 2 and 3
    // (in the same state directory) find them cached.
    let unique: BTreeSet<String> = executed.iter().cloned().collect();
    assert_eq!(unique.len(), executed.len(), "nothing ran twice: {executed:?}");
    assert_eq!(unique.len(), 20, "every prep and week instance of the range: {unique:?}");
    let (st, _, code) = backfill(&s, &[]);
    assert_eq!(code, 0);
    assert!(with_status(&st, "succeeded").is_empty(), "all cached: {st:?}");
    assert_eq!(with_status(&st, "cached").len(), 20);
    assert_eq!(s.read("out/week/2025-01-04.txt"), "2025-01-02\n2025-01-03\n2025-01-04\n");
}
