//! Quick hits (issue #16): a re-run in which nothing changed confirms its hits from the
//! last-keys index without reading or touching the entries, and still sees every change — an
//! edited input, an output edited or deleted in the workspace, entries removed from the store.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

mod common;

use common::{Sandbox, statuses};

/// `c` writes 5,000 bytes: its output is an object (smaller ones live in their entry).
const CHAIN: &str = r#"Workflow(name: "w", tasks: [
    Task(name: "a", kind: Command(run: "cat $DAGRUN_IN_SRC > $DAGRUN_OUT_O"),
         inputs: {"src": File("in.txt")}, outputs: {"o": "out/a.txt"}),
    Task(name: "b", kind: Command(run: "cat $DAGRUN_IN_A $DAGRUN_IN_A > $DAGRUN_OUT_O"),
         inputs: {"a": Output("a", "o")}, outputs: {"o": "out/b.txt"}),
    Task(name: "c", kind: Command(run: "printf '%4999s\\n' c > $DAGRUN_OUT_O"), outputs: {"o": "out/c.txt"}),
])"#;

/// Every action entry file of the sandbox's state directory.
fn entries(s: &Sandbox) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(s.path(".dagrun/actions")).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            found.push(f.unwrap().path());
        }
    }
    found
}

fn set_age(paths: &[PathBuf], age: Duration) -> SystemTime {
    let t = SystemTime::now() - age;
    for p in paths {
        std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
    }
    t
}

fn mtime(p: &PathBuf) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// Runs until every task is cached, past the stat cache's racy window (files written in the
/// last 100 ms are hashed again, never trusted), so that the next run can take quick hits.
fn settle(s: &Sandbox) {
    std::thread::sleep(Duration::from_millis(150));
    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert!(st.values().all(|v| v == "cached"), "{st:?}");
}

#[test]
fn an_unchanged_rerun_confirms_hits_without_reading_entries_and_sees_every_change() {
    let s = Sandbox::new(CHAIN);
    s.write("in.txt", "one\n");
    assert_eq!(s.run_json(&[]).2, 0);
    settle(&s);

    // Quick hits: the entries are neither read nor marked used when they were marked within the
    // hour; an entry marked longer ago is marked again (`cache gc --max-age` keeps it).
    let files = entries(&s);
    assert_eq!(files.len(), 3);
    let recent = set_age(&files[..2], Duration::from_secs(1800));
    set_age(&files[2..], Duration::from_secs(7200));
    let (st, _, code) = s.run_json(&[]);
    assert_eq!((code, st), (0, statuses(&[("a", "cached"), ("b", "cached"), ("c", "cached")])));
    assert_eq!((mtime(&files[0]), mtime(&files[1])), (recent, recent), "a fresh entry is not touched");
    assert!(mtime(&files[2]).elapsed().unwrap() < Duration::from_secs(600), "a stale entry is marked used");

    // An input edited in place (same size): `a` and what reads it run again.
    s.write("in.txt", "two\n");
    let (st, _, _) = s.run_json(&[]);
    assert_eq!(st, statuses(&[("a", "succeeded"), ("b", "succeeded"), ("c", "cached")]));
    assert_eq!(s.read("out/b.txt"), "two\ntwo\n");
    settle(&s);

    // An output edited or deleted in the workspace is restored from the cache.
    s.write("out/b.txt", "tampered\n");
    std::fs::remove_file(s.path("out/c.txt")).unwrap();
    let (st, _, _) = s.run_json(&[]);
    assert_eq!(st, statuses(&[("a", "cached"), ("b", "cached"), ("c", "cached")]));
    assert_eq!((s.read("out/b.txt"), s.read("out/c.txt")), ("two\ntwo\n".into(), format!("{:>4999}\n", "c")));
    settle(&s);

    // Entries removed from the store (as `cache gc` or `cache verify` do): every task runs.
    std::fs::remove_dir_all(s.path(".dagrun/actions")).unwrap();
    let (st, _, code) = s.run_json(&[]);
    assert_eq!((code, st), (0, statuses(&[("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")])));
    settle(&s);

    // An object removed from the store: the hit is no longer complete, `c` runs again.
    let c = blake3::hash(format!("{:>4999}\n", "c").as_bytes()).to_hex().to_string();
    let object = s.object(&c);
    assert!(object.is_file(), "{object:?}");
    std::fs::remove_file(&object).unwrap();
    let (st, _, _) = s.run_json(&[]);
    assert_eq!(st["c"], "succeeded");
    assert!(object.is_file(), "stored again");
}

/// The JSON lines of cache hits are written in batches (issue #16): still one line per event,
/// in event order, none lost — past the 64 KiB batch limit and at exit.
#[test]
fn batched_json_lines_of_hits_keep_every_event_in_order() {
    let tasks: Vec<String> = (0..600)
        .map(|i| {
            format!(
                r#"Task(name: "t{i}", kind: Command(run: "echo {i} > $DAGRUN_OUT_O"), outputs: {{"o": "out/{i}.txt"}})"#
            )
        })
        .collect();
    let s = Sandbox::new(&format!("Workflow(name: \"w\", tasks: [{}])", tasks.join(",\n")));
    assert_eq!(s.run_json(&[]).2, 0);
    settle(&s);
    let (st, events, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(st.len(), 600);
    assert!(st.values().all(|v| v == "cached"), "{st:?}");
    let lines: usize = events.iter().map(|e| serde_json::to_string(e).unwrap().len() + 1).sum();
    assert!(lines > 2 * 64 * 1024, "enough output to pass the batch limit: {lines} bytes");
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"), "every hit's line comes before the run's end");
    assert_eq!(kinds.iter().filter(|k| **k == "task_finished").count(), 600, "one line per hit");
}

/// Past 256 instances the quick-hit checks are made ahead on two threads: a re-run still sees
/// an edited input (the task and what reads it run), an edited and a deleted output (restored),
/// and leaves every other instance cached.
#[test]
fn checks_made_ahead_in_a_large_run_still_see_every_change() {
    let mut tasks = Vec::new();
    for g in 0..100 {
        tasks.push(format!(
            r#"Task(name: "s{g}", kind: Command(run: "cat $DAGRUN_IN_I > $DAGRUN_OUT_O"), inputs: {{"i": File("in/{g}.txt")}}, outputs: {{"o": "out/s{g}.txt"}})"#
        ));
        tasks.push(format!(
            r#"Task(name: "m{g}", kind: Command(run: "cat $DAGRUN_IN_I $DAGRUN_IN_I > $DAGRUN_OUT_O"), inputs: {{"i": Output("s{g}", "o")}}, outputs: {{"o": "out/m{g}.txt"}})"#
        ));
        tasks.push(format!(
            r#"Task(name: "t{g}", kind: Command(run: "wc -c < $DAGRUN_IN_I > $DAGRUN_OUT_O"), inputs: {{"i": Output("m{g}", "o")}}, outputs: {{"o": "out/t{g}.txt"}})"#
        ));
    }
    let s = Sandbox::new(&format!("Workflow(name: \"w\", tasks: [{}])", tasks.join(",\n")));
    for g in 0..100 {
        s.write(&format!("in/{g}.txt"), &format!("in {g:02}\n"));
    }
    assert_eq!(s.run_json(&[]).2, 0);
    settle(&s);
    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(st.len(), 300);
    assert!(st.values().all(|v| v == "cached"), "{st:?}");

    s.write("in/7.txt", "in 99\n"); // same size
    std::fs::remove_file(s.path("out/m50.txt")).unwrap();
    s.write("out/t60.txt", "tampered\n");
    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    for (name, status) in &st {
        let want = if ["s7", "m7", "t7"].contains(&name.as_str()) { "succeeded" } else { "cached" };
        assert_eq!(status, want, "{name}: {st:?}");
    }
    assert_eq!(s.read("out/m7.txt"), "in 99\nin 99\n");
    assert_eq!(s.read("out/t7.txt").trim(), "12");
    assert_eq!(s.read("out/m50.txt"), "in 50\nin 50\n", "restored");
    assert_eq!(s.read("out/t60.txt").trim(), "12", "restored");
}

/// Every directory and file below `dir` with its size and mtime, but SQLite's shared-memory
/// index (which a reader maps and may mark).
fn files_below(dir: &std::path::Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let (path, meta) = (e.as_ref().unwrap().path(), e.unwrap().metadata().unwrap());
        if meta.is_dir() {
            out.push((path.clone(), 0, meta.modified().unwrap()));
            out.extend(files_below(&path));
        } else if !path.to_string_lossy().ends_with("-shm") {
            out.push((path, meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// `run` opens an existing state directory while it reads the workflow: when the workflow then
/// proves invalid (or missing), nothing in the state directory has changed. Once it is valid
/// again, the run makes what it missed.
#[test]
fn an_invalid_workflow_leaves_an_existing_state_directory_as_it_was() {
    let s = Sandbox::new(CHAIN);
    s.write("in.txt", "1\n");
    assert_eq!(s.dagrun(&["run", "wf.ron"]).status.code(), Some(0));
    let unchanged_by_invalid_runs = |s: &Sandbox| {
        let before = files_below(&s.path(".dagrun"));
        // What the early open asks of the history store (`-shm` is left out of the listing).
        assert!(before.iter().any(|(p, ..)| p.ends_with("history.sqlite-wal")), "{before:?}");
        assert!(s.path(".dagrun/history.sqlite-shm").is_file());
        for args in [["run", "wf.ron"], ["run", "nope.ron"], ["backfill", "wf.ron"]] {
            let out = s.dagrun(&args);
            assert_ne!(out.status.code(), Some(0), "{args:?}");
            assert_eq!(files_below(&s.path(".dagrun")), before, "{args:?}");
        }
    };
    s.write("wf.ron", &CHAIN.replace("tasks: [", "tasks: [[["));
    // Whole: opened (history store included) while the workflow is read.
    unchanged_by_invalid_runs(&s);
    // A run makes the directories it misses: but not before the workflow proved valid.
    std::fs::remove_dir(s.path(".dagrun/tmp")).unwrap();
    unchanged_by_invalid_runs(&s);
    s.write("wf.ron", CHAIN);
    let (st, _, code) = s.run_json(&[]);
    assert_eq!((code, st.values().filter(|v| *v == "cached").count()), (0, 3), "{st:?}");
    assert!(s.path(".dagrun/tmp").is_dir());
}
