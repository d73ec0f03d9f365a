//! The watcher end to end: real files in temporary directories, real inotify, short settle
//! times. Every wait for an emission has a generous timeout; "nothing else" is asserted by
//! waiting three settle times after a positive control has landed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::{Receiver, channel};
use tokio::time::{Instant, timeout};

use super::*;

/// The longest any test waits for something that must happen.
const WAIT: Duration = Duration::from_secs(10);

fn spec(id: usize, dir: &Path, glob: &str, settle_ms: u64) -> WatchSpec {
    WatchSpec { id, dir: dir.to_path_buf(), glob: glob.to_owned(), settle: Duration::from_millis(settle_ms) }
}

fn start(specs: Vec<WatchSpec>, known: HashMap<PathBuf, FileStat>, capacity: usize) -> (Watcher, Receiver<Landed>) {
    let (tx, rx) = channel(capacity);
    let watcher = Watcher::start(specs, known, Duration::from_secs(30), tx).expect("watcher starts");
    (watcher, rx)
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn digest(content: &str) -> String {
    blake3::hash(content.as_bytes()).to_hex().to_string()
}

/// What the watcher would record for the file now.
fn stat_of(path: &Path, content: &str) -> FileStat {
    let (size, mtime_ns) = super::scan::file_stat(path).unwrap();
    FileStat { size, mtime_ns, digest: digest(content) }
}

async fn next(rx: &mut Receiver<Landed>) -> Landed {
    timeout(WAIT, rx.recv()).await.expect("nothing landed in time").expect("the watcher ended")
}

/// The next `n` emissions' relative paths, sorted.
async fn next_n(rx: &mut Receiver<Landed>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(next(rx).await.rel_path);
    }
    got.sort();
    got
}

/// Asserts nothing is emitted for `d`.
async fn quiet(rx: &mut Receiver<Landed>, d: Duration) {
    if let Ok(got) = timeout(d, rx.recv()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_scan_emits_new_and_changed_content_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let f = |name: &str| dir.join("landing").join(name);
    for (name, content) in [("new.csv", "new"), ("same.csv", "same"), ("touched.csv", "t"), ("changed.csv", "v2")] {
        write(&f(name), content);
    }
    write(&f("notes.txt"), "not selected");
    write(&f(".partial.csv"), "hidden temporaries need a literal dot");
    std::fs::create_dir_all(f("dir.csv")).unwrap();
    std::os::unix::fs::symlink(f("dir.csv"), f("link.csv")).unwrap();
    let mut touched = stat_of(&f("touched.csv"), "t");
    touched.mtime_ns -= 1_000_000_000;
    let known = HashMap::from([
        // Same stat: trusted without hashing (the bogus digest proves it is not re-hashed).
        (f("same.csv"), FileStat { digest: "bogus".into(), ..stat_of(&f("same.csv"), "same") }),
        (f("touched.csv"), touched),
        (f("changed.csv"), FileStat { size: 2, mtime_ns: 1, digest: digest("v1") }),
    ]);
    let (_w, mut rx) = start(vec![spec(7, dir, "landing/*.csv", 100)], known, 16);
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    let mut got = [first, second];
    got.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    assert_eq!(
        got[0],
        Landed { id: 7, rel_path: "landing/changed.csv".into(), stat: stat_of(&f("changed.csv"), "v2") }
    );
    assert_eq!(got[1], Landed { id: 7, rel_path: "landing/new.csv".into(), stat: stat_of(&f("new.csv"), "new") });
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_directories_and_linked_directories_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in ["a.csv", "x/b.csv", ".dagrun/c.csv", "x/.dagrun/d.csv"] {
        write(&dir.join(name), name);
    }
    write(&outside.path().join("e.csv"), "e");
    std::os::unix::fs::symlink(outside.path(), dir.join("linked")).unwrap();
    let (_w, mut rx) = start(vec![spec(0, dir, "**/*.csv", 100)], HashMap::new(), 16);
    assert_eq!(next_n(&mut rx, 2).await, ["a.csv", "x/b.csv"]);
    write(&dir.join(".dagrun/new.csv"), "state");
    write(&dir.join("x/.dagrun/new.csv"), "state");
    write(&dir.join("y/f.csv"), "f");
    assert_eq!(next(&mut rx).await.rel_path, "y/f.csv");
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_lands_once_settled_with_its_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("landing")).unwrap();
    let glob = "landing/{date}.csv";
    let (_w, mut rx) = start(vec![spec(1, dir, glob, 150)], HashMap::new(), 16);
    let written = Instant::now();
    write(&dir.join("landing/2025-03-05.csv"), "a,b\n1,2\n");
    let landed = next(&mut rx).await;
    assert!(written.elapsed() >= Duration::from_millis(150), "landed before it settled");
    assert_eq!(landed.rel_path, "landing/2025-03-05.csv");
    assert_eq!(landed.stat, stat_of(&dir.join(&landed.rel_path), "a,b\n1,2\n"));
    let vars = partition_vars(glob, &landed.rel_path).unwrap();
    assert_eq!(partition_instant(&vars).as_deref(), Some("2025-03-05"));
    quiet(&mut rx, Duration::from_millis(450)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_for_a_second_lands_once_after_it_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir(dir.join("in")).unwrap();
    let (_w, mut rx) = start(vec![spec(0, &dir, "in/*.log", 200)], HashMap::new(), 16);
    let path = dir.join("in/growing.log");
    let writer = tokio::spawn(async move {
        use std::io::Write;
        let mut file = std::fs::File::create(&path).unwrap();
        for i in 0..20 {
            writeln!(file, "line {i}").unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Instant::now()
    });
    let landed = next(&mut rx).await;
    let stopped = writer.await.unwrap();
    assert!(Instant::now() >= stopped, "landed while still being written");
    let content: String = (0..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(landed.stat, stat_of(&dir.join("in/growing.log"), &content));
    quiet(&mut rx, Duration::from_millis(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_vanishes_before_settling_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    let (_w, mut rx) = start(vec![spec(0, dir, "in/*.csv", 300)], HashMap::new(), 16);
    write(&dir.join("in/gone.csv"), "soon gone");
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::remove_file(dir.join("in/gone.csv")).unwrap();
    write(&dir.join("in/control.csv"), "stays");
    assert_eq!(next(&mut rx).await.rel_path, "in/control.csv");
    quiet(&mut rx, Duration::from_millis(900)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_is_no_event_but_new_content_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    let (_w, mut rx) = start(vec![spec(0, dir, "in/*.csv", 100)], HashMap::new(), 16);
    let a = dir.join("in/a.csv");
    write(&a, "one");
    assert_eq!(next(&mut rx).await.stat.digest, digest("one"));
    // A touch, then the same content written again: new stat, known digest.
    let file = std::fs::File::options().write(true).open(&a).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    drop(file);
    tokio::time::sleep(Duration::from_millis(150)).await;
    write(&a, "one");
    write(&dir.join("in/control.csv"), "control");
    assert_eq!(next(&mut rx).await.rel_path, "in/control.csv");
    quiet(&mut rx, Duration::from_millis(300)).await;
    write(&a, "two");
    let landed = next(&mut rx).await;
    assert_eq!((landed.rel_path.as_str(), landed.stat.digest), ("in/a.csv", digest("two")));
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_directory_created_later_is_found_watched_and_rewatched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (tx, mut rx) = channel(16);
    let specs = vec![spec(0, dir, "late/*.csv", 100)];
    let _w = Watcher::start(specs, HashMap::new(), Duration::from_millis(300), tx).unwrap();
    write(&dir.join("late/a.csv"), "a");
    assert_eq!(next(&mut rx).await.rel_path, "late/a.csv");
    write(&dir.join("late/b.csv"), "b");
    assert_eq!(next(&mut rx).await.rel_path, "late/b.csv");
    std::fs::remove_dir_all(dir.join("late")).unwrap();
    write(&dir.join("late/c.csv"), "c");
    assert_eq!(next(&mut rx).await.rel_path, "late/c.csv");
    write(&dir.join("late/d.csv"), "d");
    assert_eq!(next(&mut rx).await.rel_path, "late/d.csv");
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_moved_in_is_scanned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("data")).unwrap();
    for name in ["x/1.csv", "x/2.csv", "x/deeper/3.csv"] {
        write(&dir.join("staging").join(name), name);
    }
    let (_w, mut rx) = start(vec![spec(0, dir, "data/**/*.csv", 100)], HashMap::new(), 16);
    // The start scan has nothing to find; give inotify a positive control first.
    write(&dir.join("data/0.csv"), "0");
    assert_eq!(next(&mut rx).await.rel_path, "data/0.csv");
    std::fs::rename(dir.join("staging/x"), dir.join("data/x")).unwrap();
    assert_eq!(next_n(&mut rx, 3).await, ["data/x/1.csv", "data/x/2.csv", "data/x/deeper/3.csv"]);
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_files_at_once_land_exactly_once_through_a_small_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir(dir.join("bulk")).unwrap();
    let (_w, mut rx) = start(vec![spec(0, &dir, "bulk/*.csv", 100)], HashMap::new(), 4);
    let bulk = dir.join("bulk");
    tokio::task::spawn_blocking(move || {
        for i in 0..1000 {
            std::fs::write(bulk.join(format!("{i:04}.csv")), format!("row {i}\n")).unwrap();
        }
    })
    .await
    .unwrap();
    let mut seen = HashSet::new();
    for n in 0..1000 {
        let landed = next(&mut rx).await;
        assert!(seen.insert(landed.rel_path.clone()), "{} landed twice", landed.rel_path);
        if n % 100 == 0 {
            // A slow consumer: the watcher must wait, not drop.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(seen.len(), 1000);
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trigger_selecting_a_file_gets_its_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    let specs = vec![spec(1, dir, "in/*.csv", 100), spec(2, dir, "in/a.*", 50), spec(3, dir, "in/*.txt", 50)];
    let (_w, mut rx) = start(specs, HashMap::new(), 16);
    write(&dir.join("in/a.csv"), "a");
    let mut ids = [next(&mut rx).await.id, next(&mut rx).await.id];
    ids.sort();
    assert_eq!(ids, [1, 2]);
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, mut rx) = start(vec![spec(0, tmp.path(), "*.csv", 100)], HashMap::new(), 16);
    w.stop();
    assert!(timeout(WAIT, rx.recv()).await.expect("the watcher did not stop").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_ends_when_the_receiver_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (tx, rx) = channel(1);
    let probe = tx.clone();
    let w = Watcher::start(vec![spec(0, tmp.path(), "*.csv", 100)], HashMap::new(), WAIT, tx).unwrap();
    drop(rx);
    assert!(probe.is_closed());
    timeout(WAIT, async {
        while !w.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the watcher did not end");
}

#[tokio::test]
async fn an_invalid_glob_is_an_error_naming_it() {
    let (tx, _rx) = channel(1);
    let err = Watcher::start(vec![spec(0, Path::new("/w"), "in/[x", 100)], HashMap::new(), WAIT, tx).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`in/[x`") && msg.contains("/w"), "{msg}");
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let (tx, _rx) = channel(1);
    let err = Watcher::start(vec![], HashMap::new(), WAIT, tx).unwrap_err();
    assert!(matches!(err, WatchError::NoRuntime), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_renamed_into_place_lands_and_its_temporary_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("in")).unwrap();
    let (_w, mut rx) = start(vec![spec(0, dir, "in/*.csv", 100)], HashMap::new(), 16);
    write(&dir.join("in/.upload.csv"), "partial");
    write(&dir.join("in/upload.csv.part"), "complete");
    std::fs::rename(dir.join("in/upload.csv.part"), dir.join("in/upload.csv")).unwrap();
    let landed = next(&mut rx).await;
    assert_eq!((landed.rel_path.as_str(), landed.stat.digest), ("in/upload.csv", digest("complete")));
    quiet(&mut rx, Duration::from_millis(300)).await;
}

/// CPU time (user + system) of this whole process, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Idle cost, measured alone: `cargo test -p dagrun-automate idle_cost -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures this process's CPU time: run alone"]
async fn idle_cost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..500 {
        write(&dir.join(format!("in/{i:03}.csv")), &format!("{i}"));
    }
    let (tx, mut rx) = channel(1000);
    let specs = vec![spec(0, dir, "in/*.csv", 100), spec(1, dir, "deep/**/*.csv", 100)];
    let _w = Watcher::start(specs, HashMap::new(), Duration::from_secs(5), tx).unwrap();
    for _ in 0..500 {
        next(&mut rx).await;
    }
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let share = cpu.as_secs_f64().mul_add(-1.0, cpu_time().as_secs_f64()) / wall.elapsed().as_secs_f64();
    println!("idle: {:.3} % of a core (500 files, rescan every 5 s)", share * 100.0);
    assert!(share < 0.005, "idle cost {:.3} % of a core", share * 100.0);
}

/// A base directory that does not exist when the daemon starts (`landing/` made later, two
/// levels deep) is watched as soon as it appears: its files land within the settle time, not at
/// the next rescan (30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_directory_created_later_is_watched_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_w, mut rx) = start(vec![spec(0, dir, "data/landing/*.csv", 50)], HashMap::new(), 16);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::create_dir(dir.join("data/landing")).unwrap();
    write(&dir.join("data/landing/2025-03-02.csv"), "a,b\n1,2\n");
    let got = next(&mut rx).await;
    assert_eq!(got.rel_path, "data/landing/2025-03-02.csv");
    assert!(started.elapsed() < Duration::from_secs(5), "landed after {:?}", started.elapsed());
}
