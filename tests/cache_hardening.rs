//! Regression tests for the cache items of issue #9 (entries decide nothing, entries are
//! self-verifying, gc and verify respect a running run, gc prunes history): each one failed on
//! the code before its fix.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use dagrun_cache::ActionEntry;
use serde_json::Value;

mod common;

use common::{Sandbox, stderr, stdout};

/// `a` writes `hello`, `b` writes `world`: two valid objects to swap between entries.
const TWO: &str = r#"Workflow(name: "w", tasks: [
    Task(name: "a", kind: Command(run: "echo hello > $DAGRUN_OUT_O"), outputs: {"o": "out/a.txt"}),
    Task(name: "b", kind: Command(run: "echo world > $DAGRUN_OUT_O"), outputs: {"o": "out/b.txt"}),
])"#;

/// The entry file of task `task` (the only entry naming it).
fn entry_file(s: &Sandbox, task: &str) -> PathBuf {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(s.path(".dagrun/actions")).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            if v["task"] == task {
                found.push(p);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// Edits `task`'s entry as JSON; `reseal` recomputes its digest (a tamperer who knows the format).
fn edit_entry(s: &Sandbox, task: &str, reseal: bool, f: impl FnOnce(&mut Value)) {
    let path = entry_file(s, task);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    let bytes = if reseal {
        let e: ActionEntry = serde_json::from_value(v).unwrap();
        serde_json::to_vec_pretty(&e.sealed()).unwrap()
    } else {
        serde_json::to_vec_pretty(&v).unwrap()
    };
    std::fs::write(&path, bytes).unwrap();
}

/// Rots `task`'s entry in place (the same file, so a task record linked to it too): its task
/// name changes from `a` to `c`, which only the entry's digest tells.
fn rot_entry_of_a(s: &Sandbox) {
    let p = entry_file(s, "a");
    // Entries are written compact: `"task":"a"`.
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("\"task\":\"a\""), "{text}");
    std::fs::write(&p, text.replace("\"task\":\"a\"", "\"task\":\"c\"")).unwrap();
}

fn corrupt_events(events: &[Value]) -> Vec<String> {
    events.iter().filter(|e| e["event"] == "cache_corrupt").map(|e| e["error"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_cache_entry_never_decides_where_restored_bytes_go() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    let abs = victim.to_str().unwrap();
    // `../<outside>/escaped.txt` from the sandbox: both are temp dirs in the same directory.
    let up = format!("../{}/escaped.txt", outside.path().file_name().unwrap().to_str().unwrap());
    for (path, reseal) in [(abs, false), (abs, true), (up.as_str(), false), (up.as_str(), true)] {
        let s = Sandbox::new(TWO);
        assert_eq!(s.run_json(&[]).2, 0);
        edit_entry(&s, "a", reseal, |v| v["outputs"]["o"]["path"] = path.into());
        std::fs::remove_file(s.path("out/a.txt")).unwrap();
        let case = format!("path {path}, resealed {reseal}");
        let plan = stdout(&s.dagrun(&["plan", "wf.ron"]));
        assert!(plan.contains("cache entry corrupt: "), "{case}: {plan}");
        let (st, events, code) = s.run_json(&[]);
        assert_eq!((code, st["a"].as_str()), (0, "succeeded"), "{case}: {st:?}");
        assert_eq!(st["b"], "cached", "{case}");
        let corrupt = corrupt_events(&events);
        assert_eq!(corrupt.len(), 1, "{case}: {events:?}");
        assert!(corrupt[0].starts_with("cache entry "), "{case}: {corrupt:?}");
        assert!(corrupt[0].ends_with("it was removed and `a` runs again"), "{case}: {corrupt:?}");
        assert!(!victim.exists(), "{case}");
        assert!(!outside.path().join("escaped.txt").exists(), "{case}");
        assert_eq!(s.read("out/a.txt"), "hello\n", "{case}");

        // `cache verify` finds such an entry too.
        edit_entry(&s, "a", reseal, |v| v["outputs"]["o"]["path"] = path.into());
        let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
        assert_eq!(verify.status.code(), Some(5), "{case}: {}", stdout(&verify));
        assert!(stdout(&verify).contains("corrupt cache entry "), "{case}: {}", stdout(&verify));
        assert_eq!(s.dagrun(&["cache", "verify", "wf.ron"]).status.code(), Some(0), "{case}");
    }
}

#[test]
fn a_swapped_output_digest_or_bit_rot_in_an_entry_is_detected() {
    let s = Sandbox::new(TWO);
    assert_eq!(s.run_json(&[]).2, 0);
    let damage = |s: &Sandbox, case: &str| {
        if case == "swap" {
            let world = blake3::hash(b"world\n").to_hex().to_string();
            edit_entry(s, "a", false, |v| v["outputs"]["o"]["digest"] = world.into());
        } else {
            rot_entry_of_a(s);
        }
    };
    for case in ["swap", "bit rot"] {
        damage(&s, case);
        std::fs::remove_file(s.path("out/a.txt")).unwrap();
        let (st, events, code) = s.run_json(&[]);
        assert_eq!((code, st["a"].as_str()), (0, "succeeded"), "{case}: {st:?}");
        assert_eq!(corrupt_events(&events).len(), 1, "{case}: {events:?}");
        assert_eq!(s.read("out/a.txt"), "hello\n", "{case}: restored the wrong bytes");
        damage(&s, case);
        let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
        assert_eq!(verify.status.code(), Some(5), "{case}: {}", stdout(&verify));
        assert!(stdout(&verify).contains("not to its recorded digest"), "{case}: {}", stdout(&verify));
        assert_eq!(s.run_json(&[]).0["a"], "succeeded", "{case}");
    }
}

/// A task's record (what `plan` explains a change against) is a hard link to its cache entry, so
/// damage to the entry reaches it. The run that replaces the entry must mend the record too, or
/// `plan` would say `never run` until the task's key next changed.
#[test]
fn a_damaged_entry_leaves_the_task_explainable_once_it_ran_again() {
    let s = Sandbox::new(TWO);
    assert_eq!(s.run_json(&[]).2, 0);
    for how in ["found by the run", "removed by cache verify"] {
        rot_entry_of_a(&s);
        if how == "removed by cache verify" {
            assert_eq!(s.dagrun(&["cache", "verify", "wf.ron"]).status.code(), Some(5), "{how}");
        }
        let (st, _, code) = s.run_json(&[]);
        assert_eq!((code, st["a"].as_str()), (0, "succeeded"), "{how}: {st:?}");
        s.write("wf.ron", &TWO.replace("echo hello", "echo hi"));
        let plan = stdout(&s.dagrun(&["plan", "wf.ron"]));
        assert!(plan.contains("code changed") && !plan.contains("never run"), "{how}: {plan}");
        s.write("wf.ron", TWO);
    }
}

/// `a` writes 5,000 bytes: too many to keep in its entry, so its output is an object.
const LARGE: &str = r#"Workflow(name: "w", tasks: [
    Task(name: "a", kind: Command(run: "printf '%5000s' hello > $DAGRUN_OUT_O"), outputs: {"o": "out/a.txt"}),
])"#;

#[test]
fn a_recorded_size_that_disagrees_with_the_object_or_the_inline_bytes_is_a_corrupt_entry() {
    for (wf, why) in [
        (LARGE, "output `o` is recorded as 1000 bytes but its object has 5000"),
        (TWO, "the inline bytes of output `o` are not its recorded 1000 bytes"),
    ] {
        let s = Sandbox::new(wf);
        assert_eq!(s.run_json(&[]).2, 0);
        edit_entry(&s, "a", true, |v| v["outputs"]["o"]["size"] = 1000.into());
        std::fs::remove_file(s.path("out/a.txt")).unwrap();
        let (st, events, _) = s.run_json(&[]);
        assert_eq!(st["a"], "succeeded");
        let corrupt = corrupt_events(&events);
        assert!(corrupt[0].contains(why), "{corrupt:?}");
        edit_entry(&s, "a", true, |v| v["outputs"]["o"]["size"] = 1000.into());
        let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
        assert_eq!(verify.status.code(), Some(5), "{}", stdout(&verify));
        assert!(stdout(&verify).contains(why), "{}", stdout(&verify));
    }
}

/// Files under `.dagrun/objects`.
fn objects(s: &Sandbox) -> Vec<PathBuf> {
    let shards = std::fs::read_dir(s.path(".dagrun/objects")).unwrap();
    shards.flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().map(|f| f.unwrap().path())).collect()
}

/// A small output is kept in its entry (no object), a large one in an object; both come back
/// when deleted, the small one with its executable bit, and `cache gc` and `verify` keep both.
#[test]
fn small_outputs_live_in_their_entry_and_come_back_from_it() {
    let wf = r#"Workflow(name: "w", tasks: [
        Task(name: "small", kind: Command(run: "printf '#!/bin/sh\necho hi\n' > $DAGRUN_OUT_O && chmod +x $DAGRUN_OUT_O"),
             outputs: {"o": "out/small.sh"}),
        Task(name: "large", kind: Command(run: "printf '%5000s' x > $DAGRUN_OUT_O"), outputs: {"o": "out/large.txt"}),
    ])"#;
    let s = Sandbox::new(wf);
    assert_eq!(s.run_json(&[]).2, 0);
    let small: Value = serde_json::from_slice(&std::fs::read(entry_file(&s, "small")).unwrap()).unwrap();
    assert_eq!((small["version"].as_u64(), small["outputs"]["o"]["inline"].as_bool()), (Some(3), Some(true)));
    let large: Value = serde_json::from_slice(&std::fs::read(entry_file(&s, "large")).unwrap()).unwrap();
    assert_eq!(large["version"], 2, "an entry with nothing inline keeps the older version: {large}");
    assert_eq!(large["outputs"]["o"].get("inline"), None);
    let digest = large["outputs"]["o"]["digest"].as_str().unwrap();
    assert_eq!(objects(&s).iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(), [digest]);

    for f in ["out/small.sh", "out/large.txt"] {
        std::fs::remove_file(s.path(f)).unwrap();
    }
    let (st, _, code) = s.run_json(&[]);
    assert_eq!((code, st["small"].as_str(), st["large"].as_str()), (0, "cached", "cached"), "{st:?}");
    assert_eq!(s.read("out/small.sh"), "#!/bin/sh\necho hi\n");
    assert_eq!(s.read("out/large.txt").len(), 5000);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.path("out/small.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "restored executable: {mode:o}");
    }
    // `cache gc` keeps the large output's object and takes an object of the small output's bytes
    // (as an older dagrun stored it): no entry needs it. Both are past gc's grace for new objects.
    let small_hex = small["outputs"]["o"]["digest"].as_str().unwrap();
    let stray = s.object(small_hex);
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, "#!/bin/sh\necho hi\n").unwrap();
    let old = SystemTime::now() - Duration::from_secs(600);
    for p in objects(&s) {
        std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
    }
    let gc = s.dagrun(&["cache", "gc", "wf.ron"]);
    assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
    assert!(stdout(&gc).contains("1 objects"), "{}", stdout(&gc));
    assert!(!stray.exists(), "an object no entry names is removed");
    assert_eq!(objects(&s).len(), 1, "the large output's object is kept");
    let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));

    // Unchanged, past the stat cache's racy window: both are quick hits (the small one needs no
    // object to be one), which neither read nor mark entries marked within the hour.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(s.run_json(&[]).2, 0);
    let marked = SystemTime::now() - Duration::from_secs(1800);
    let entries = [entry_file(&s, "small"), entry_file(&s, "large")];
    for p in &entries {
        std::fs::File::open(p).unwrap().set_modified(marked).unwrap();
    }
    let (st, _, _) = s.run_json(&[]);
    assert_eq!((st["small"].as_str(), st["large"].as_str()), ("cached", "cached"));
    for p in &entries {
        assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), marked, "{p:?} was read as a full hit");
    }
    let out = std::process::Command::new(s.path("out/small.sh")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

#[test]
fn gc_and_verify_refuse_while_a_run_holds_the_state_directory() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [Task(name: "long", kind: Command(run: "touch started; sleep 30"))])"#,
    );
    let mut run = s.cmd(&["run", "wf.ron"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    for _ in 0..400 {
        if s.path("started").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let gc = s.dagrun(&["cache", "gc", "wf.ron"]);
    let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
    run.kill().unwrap();
    run.wait().unwrap();
    let state = s.path(".dagrun").canonicalize().unwrap();
    let busy = format!(
        "error: another dagrun run is using the state directory {} (pid {}): wait for it to finish, or give this run its own --state-dir\n",
        state.display(),
        run.id()
    );
    for out in [&gc, &verify] {
        assert_eq!(out.status.code(), Some(75), "{}", stdout(out));
        assert_eq!(stderr(out), busy);
    }
    assert_eq!(s.dagrun(&["cache", "gc", "wf.ron"]).status.code(), Some(0), "the lock died with the run");
}

#[test]
fn gc_prunes_old_run_records_and_their_logs() {
    let s = Sandbox::new(r#"Workflow(name: "w", tasks: [Task(name: "t", kind: Command(run: "echo $RANDOM"))])"#);
    for _ in 0..4 {
        assert_eq!(s.run_json(&["--force"]).2, 0);
    }
    let count = |d: &str| std::fs::read_dir(s.path(d)).unwrap().count();
    assert_eq!((count(".dagrun/runs"), count(".dagrun/logs")), (4, 4));
    let gc = s.dagrun(&["cache", "gc", "wf.ron", "--keep-runs", "1"]);
    assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
    assert!(stdout(&gc).ends_with(", 3 run records, 3 log directories\n"), "{}", stdout(&gc));
    assert_eq!((count(".dagrun/runs"), count(".dagrun/logs")), (1, 1));
    let last = s.dagrun(&["show", "last", "wf.ron"]);
    assert_eq!(last.status.code(), Some(0), "the newest run is kept: {}", stderr(&last));
}

/// A state directory made before layout 1.1 (its `layout` says `1`) keeps two hex digits per
/// shard directory: runs store and hit there, and `cache verify` and `cache gc` find everything.
#[test]
fn a_layout_1_state_directory_keeps_its_two_digit_shards() {
    let s = Sandbox::new(
        r#"Workflow(name: "w", tasks: [
        Task(name: "big", kind: Command(run: "printf '%5000s' x > $DAGRUN_OUT_O"), outputs: {"o": "out/big.txt"}),
        Task(name: "small", kind: Command(run: "echo hi > $DAGRUN_OUT_O"), outputs: {"o": "out/small.txt"}),
    ])"#,
    );
    s.write(".dagrun/layout", "1\n");
    let ran = common::statuses(&[("big", "succeeded"), ("small", "succeeded")]);
    let hit = common::statuses(&[("big", "cached"), ("small", "cached")]);
    let (st, events, code) = s.run_json(&[]);
    assert_eq!((code, st), (0, ran), "{events:?}");
    let hex = blake3::hash(format!("{:>5000}", "x").as_bytes()).to_hex().to_string();
    assert!(s.path(&format!(".dagrun/objects/{}/{hex}", &hex[..2])).is_file());
    let shards = |dir: &str| -> Vec<usize> {
        let dirs = std::fs::read_dir(s.path(dir)).unwrap();
        dirs.map(|d| d.unwrap().file_name().len()).collect()
    };
    assert_eq!(shards(".dagrun/actions"), [2, 2]);
    assert_eq!(s.read(".dagrun/layout"), "1\n");
    assert_eq!(s.run_json(&[]).0, hit);
    let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(stdout(&verify).contains("no corruption found"), "{}", stdout(&verify));
    let gc = s.dagrun(&["cache", "gc", "wf.ron"]);
    assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
    assert_eq!(s.run_json(&[]).0, hit);
}
