//! `dagrun daemon`, `daemon status` and `trigger` as a user runs them: the real binary on
//! workflows in a temp dir, webhooks over real HTTP on 127.0.0.1, `kill -9` and a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn dagrun() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dagrun"));
    c.env("DAGRUN_FSYNC", "0").env_remove("DAGRUN_STATE_DIR").env_remove("DAGRUN_LISTEN");
    c
}

/// A daemon child with its stdout lines.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

const TOKEN: &str = "s3cret-token";

fn start(dir: &Path) -> Daemon {
    let mut child = dagrun()
        .args(["daemon", ".", "--listen", "127.0.0.1:0", "--rescan", "1s"])
        .current_dir(dir)
        .env("HOOK_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    for out in [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let info = dir.join(".dagrun/daemon.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        // A daemon killed with -9 leaves its daemon.json behind: wait for this one's.
        let v = std::fs::read(&info).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if let Some(v) = v.filter(|v| v["pid"] == child.id())
            && let Some(addr) = v["addr"].as_str()
        {
            break addr.to_owned();
        }
        assert!(Instant::now() < deadline, "the daemon did not publish its address");
        std::thread::sleep(Duration::from_millis(20));
    };
    Daemon { child, lines, addr }
}

impl Daemon {
    /// Waits (up to 30 s) for an output line containing `text`.
    fn expect(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line containing `{text}` within 30 s"),
            }
        }
    }

    /// No line containing `text` within `d`.
    fn quiet(&self, text: &str, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            assert!(!line.contains(text), "unexpected: {line}");
        }
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        http(&self.addr, "POST", path, headers, body)
    }

    fn stop(mut self) {
        // SAFETY-free: a plain SIGTERM through kill(1).
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = wait(&mut self.child, Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "SIGTERM must stop the daemon cleanly with exit 0");
    }
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request; (status, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn workflow(dir: &Path, run: &str) -> PathBuf {
    let p = dir.join("hooked.ron");
    std::fs::write(
        &p,
        format!(
            r#"Workflow(
    name: "hooked",
    triggers: [Webhook(name: "new-data", token_env: "HOOK_TOKEN")],
    tasks: [Task(name: "work", kind: Command(run: "{run}"), outputs: {{"out": "out.txt"}})],
)"#
        ),
    )
    .unwrap();
    p
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = dagrun().args(["daemon", "status", ".", "--json", "--last", "50"]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    status_json(dir)["workflows"][0]["recent"].as_array().unwrap().clone()
}

#[test]
fn webhooks_are_authenticated_checked_and_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "date +%s%N > out.txt");
    let d = start(dir.path());
    d.expect("] dagrun daemon (pid"); // the banner, not `another dagrun daemon (pid N) is running`
    let auth = ("Authorization", "Bearer s3cret-token");
    let (code, _) = d.post("/hooks/hooked/new-data", &[("Authorization", "Bearer wrong")], "{}");
    assert_eq!(code, 401);
    d.expect("refused (401)");
    assert_eq!(d.post("/hooks/hooked/new-data", &[], "{}").0, 401);
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth], "{not json").0, 400);
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth], &"x".repeat(100_000)).0, 413);
    assert_eq!(d.post("/hooks/hooked/nope", &[auth], "{}").0, 404);
    // This workflow has no partitions: asking for one is refused, not queued.
    let (code, body) = d.post("/hooks/hooked/new-data", &[auth], r#"{"partition": "2025-01-01"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("has no partitioned task"), "{body}");
    assert!(events(dir.path()).is_empty(), "refused requests must not be events");

    let delivery = ("X-GitHub-Delivery", "abc-1");
    let (code, body) = d.post("/hooks/hooked/new-data", &[auth, delivery], r#"{"reason": "fresh data"}"#);
    assert_eq!(code, 202, "{body}");
    d.expect("webhook `new-data`: fresh data");
    d.expect("of hooked: succeeded");
    // A redelivery of the same id is a duplicate: no second event, no second run.
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth, delivery], "{}").0, 200);
    d.quiet("starts for event", Duration::from_millis(800));
    let ev = events(dir.path());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["state"], "done");
    assert_eq!(ev[0]["outcome"], "succeeded");
    // Without a delivery id: a retry of the same body at once is one event; a different body
    // is another (the same body much later is a new event too: see the log's unit tests).
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth], r#"{"reason": "ping"}"#).0, 202);
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth], r#"{"reason": "ping"}"#).0, 200);
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth], r#"{"reason": "pong"}"#).0, 202);
    d.stop();
}

#[test]
fn a_second_daemon_on_the_same_state_directory_refuses_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "echo 1 > out.txt");
    let d = start(dir.path());
    let out = dagrun().args(["daemon", ".", "--listen", "127.0.0.1:0"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", d.child.id())), "{err}");
    d.stop();
}

#[test]
fn trigger_hands_the_event_to_the_daemon_or_runs_it_here() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "date +%s%N > out.txt");
    // No daemon: it runs here, and the event is closed.
    let out = dagrun().args(["trigger", "hooked.ron", "--reason", "by hand"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon is running"));
    assert_eq!(events(dir.path())[0]["state"], "done");
    // With a daemon: queued there and run by it.
    let d = start(dir.path());
    let out = dagrun().args(["trigger", "hooked.ron", "--reason", "again"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("runs it now"), "{}", String::from_utf8_lossy(&out.stdout));
    d.expect("manual trigger: again");
    d.expect("of hooked: succeeded");
    let st = status_json(dir.path());
    assert_eq!(st["daemon"]["pid"], d.child.id());
    // A partition the workflow does not have: refused here, not queued.
    let out =
        dagrun().args(["trigger", "hooked.ron", "--partition", "bogus"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A workflow file added while the daemon runs is picked up (within the 2 s reload).
    std::fs::write(
        dir.path().join("late.ron"),
        r#"Workflow(name: "late", tasks: [Task(name: "t", kind: Command(run: "echo late > late.txt"), outputs: {"o": "late.txt"})])"#,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status_json(dir.path())["daemon"]["workflows"].as_array().unwrap().iter().any(|w| w == "late") {
        assert!(Instant::now() < deadline, "the new workflow file was not loaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = dagrun().args(["trigger", "late.ron"]).current_dir(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("runs it now"));
    d.expect("of late: succeeded");
    d.stop();
    assert!(status_json(dir.path())["daemon"].is_null());
}

#[test]
fn a_daemon_killed_during_a_run_completes_the_event_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The task waits for a file, so the kill lands while it runs.
    workflow(dir.path(), "while [ ! -f go ]; do sleep 0.05; done; date +%s%N > out.txt");
    let mut d = start(dir.path());
    let auth = ("Authorization", "Bearer s3cret-token");
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth, ("Idempotency-Key", "k1")], "{}").0, 202);
    d.expect("starts for event(s) #1");
    // Once the run's record is written (the run is under way), kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(dir.path().join(".dagrun/runs")).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill").args(["-KILL", &d.child.id().to_string()]).status().unwrap();
    wait(&mut d.child, Duration::from_secs(10));
    // The task (a child of the killed daemon) may still wait for `go`: let it finish.
    std::fs::write(dir.path().join("go"), "").unwrap();
    let ev = events(dir.path());
    assert_eq!(ev[0]["state"], "running");

    let d = start(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    d.expect("starts for event(s) #1");
    d.expect("of hooked: succeeded");
    // Redelivered after the restart: still one event; restarting again runs nothing.
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth, ("Idempotency-Key", "k1")], "{}").0, 200);
    d.stop();
    let d = start(dir.path());
    d.quiet("starts for event", Duration::from_millis(1500));
    d.stop();
    let ev = events(dir.path());
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0]["state"].as_str(), ev[0]["outcome"].as_str()), (Some("done"), Some("succeeded")));
    let verify = dagrun().args(["cache", "verify", "hooked.ron"]).current_dir(dir.path()).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    // The killed run is closed in the history too, not left `running?` forever.
    let runs = dagrun().args(["runs", "hooked.ron", "--json"]).current_dir(dir.path()).output().unwrap();
    let runs = String::from_utf8_lossy(&runs.stdout).into_owned();
    assert!(runs.contains("\"status\":\"interrupted\"") && !runs.contains("\"status\":\"running\""), "{runs}");
}

fn landing_workflow(dir: &Path) {
    std::fs::create_dir_all(dir.join("landing")).unwrap();
    std::fs::write(
        dir.join("landed.ron"),
        r#"Workflow(
    name: "landed",
    partitions: {"day": Daily(start: "2025-01-01")},
    triggers: [FileLanded(glob: "landing/{date}.csv", settle: "200ms")],
    tasks: [Task(
        name: "ingest",
        kind: Command(run: "wc -l < $DAGRUN_IN_DATA > $DAGRUN_OUT_ROWS"),
        inputs: {"data": File("landing/{date}.csv")},
        outputs: {"rows": "out/rows-{date}.txt"},
        partitioned: "day",
    )],
)"#,
    )
    .unwrap();
}

/// Writes a file so that it appears whole (temp file + rename), like a careful uploader.
fn land(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!("landing/.{name}.part"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("landing").join(name)).unwrap();
}

fn file_events(dir: &Path) -> Vec<serde_json::Value> {
    events(dir).into_iter().filter(|e| e["source"] == "file").collect()
}

#[test]
fn a_landed_file_runs_its_partition_once_per_new_content() {
    let dir = tempfile::tempdir().unwrap();
    landing_workflow(dir.path());
    // Landed while no daemon ran: found at start.
    land(dir.path(), "2025-03-04.csv", "a\nb\n");
    let d = start(dir.path());
    d.expect("file landed: landing/2025-03-04.csv");
    d.expect("partitions 2025-03-04");
    d.expect("of landed: succeeded");
    assert_eq!(std::fs::read_to_string(dir.path().join("out/rows-2025-03-04.txt")).unwrap().trim(), "2");

    land(dir.path(), "2025-03-05.csv", "a\n");
    d.expect("file landed: landing/2025-03-05.csv");
    d.expect("of landed: succeeded");
    // Touched, and rewritten with the same bytes: not events.
    let f = dir.path().join("landing/2025-03-05.csv");
    std::fs::File::options().write(true).open(&f).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
    land(dir.path(), "2025-03-05.csv", "a\n");
    // A file that does not fit the template is ignored, with a word.
    land(dir.path(), "notes.csv", "hello\n");
    d.expect("notes.csv does not fit");
    d.quiet("file landed", Duration::from_millis(1500));
    // New content: an event again.
    land(dir.path(), "2025-03-05.csv", "a\nb\nc\n");
    d.expect("file landed: landing/2025-03-05.csv");
    d.expect("of landed: succeeded");
    assert_eq!(std::fs::read_to_string(dir.path().join("out/rows-2025-03-05.txt")).unwrap().trim(), "3");
    assert_eq!(file_events(dir.path()).len(), 3);
    d.stop();
}

#[test]
fn a_file_still_being_written_lands_once_when_it_settles() {
    let dir = tempfile::tempdir().unwrap();
    landing_workflow(dir.path());
    let d = start(dir.path());
    d.expect("] dagrun daemon (pid"); // the banner, not `another dagrun daemon (pid N) is running`
    let path = dir.path().join("landing/2025-03-06.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..20 {
        writeln!(f, "row {i}").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(f);
    d.expect("file landed: landing/2025-03-06.csv");
    d.expect("of landed: succeeded");
    d.quiet("file landed", Duration::from_millis(1000));
    let ev = file_events(dir.path());
    assert_eq!(ev.len(), 1);
    assert_eq!(std::fs::read_to_string(dir.path().join("out/rows-2025-03-06.txt")).unwrap().trim(), "20");
    d.stop();
}

#[test]
fn a_thousand_files_at_once_are_all_recorded_and_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("landing")).unwrap();
    std::fs::write(
        dir.path().join("bulk.ron"),
        r#"Workflow(
    name: "bulk",
    triggers: [FileLanded(glob: "landing/*.csv", settle: "200ms")],
    tasks: [Task(name: "count", kind: Command(run: "ls landing | wc -l > out.txt"), inputs: {"all": Glob("landing/*.csv")}, outputs: {"n": "out.txt"})],
)"#,
    )
    .unwrap();
    let d = start(dir.path());
    d.expect("] dagrun daemon (pid"); // the banner, not `another dagrun daemon (pid N) is running`
    for i in 0..1000 {
        land(dir.path(), &format!("f{i:04}.csv"), &format!("{i}\n"));
    }
    // Every file is an event; the runs that handle them are far fewer.
    let deadline = Instant::now() + Duration::from_secs(120);
    let st = loop {
        let st = status_json(dir.path());
        let w = &st["workflows"][0];
        if w["queued"] == 0 && w["recent"].as_array().unwrap().iter().all(|e| e["state"] == "done") {
            let log = dagrun_automate::log::EventLog::open(&dir.path().join(".dagrun")).unwrap();
            let all = log.recent(Some("bulk"), 5000).unwrap();
            if all.len() == 1000 && all.iter().all(|e| e.state == dagrun_automate::log::State::Done) {
                break all;
            }
        }
        assert!(Instant::now() < deadline, "not all 1,000 files were handled within 120 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    let runs: std::collections::BTreeSet<_> = st.iter().filter_map(|e| e.run_id.clone()).collect();
    assert!(runs.len() < 50, "1,000 events took {} runs: they were not coalesced", runs.len());
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap().trim(), "1000");
    d.stop();
}

/// `kill -9` at random moments (while files land, while runs run, while events are recorded),
/// then one last clean start: every file is an event, every event ran exactly once to the end
/// (a run that finished is never repeated; one that was cut off is redone), and the log and the
/// cache are sound. Seeded from `DAGRUN_CRASH_SEED` or the clock; the seed is printed.
#[test]
fn kill_9_at_random_moments_never_loses_or_doubles_an_event() {
    let seed =
        std::env::var("DAGRUN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("DAGRUN_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("landing")).unwrap();
    std::fs::write(
        dir.path().join("crashy.ron"),
        r#"Workflow(
    name: "crashy",
    triggers: [FileLanded(glob: "landing/*.csv", settle: "50ms")],
    tasks: [Task(name: "count", kind: Command(run: "sleep 0.2; cat landing/*.csv | wc -l > out.txt"), inputs: {"all": Glob("landing/*.csv")}, outputs: {"n": "out.txt"})],
)"#,
    )
    .unwrap();
    let mut landed = 0;
    for _ in 0..8 {
        let mut d = start(dir.path());
        for _ in 0..rng.usize(1..=4) {
            land(dir.path(), &format!("f{landed:03}.csv"), &format!("{landed}\n"));
            landed += 1;
            std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..600)));
        Command::new("kill").args(["-KILL", &d.child.id().to_string()]).status().unwrap();
        wait(&mut d.child, Duration::from_secs(10));
    }
    let d = start(dir.path());
    let log = dagrun_automate::log::EventLog::open(&dir.path().join(".dagrun")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let all = loop {
        let all = log.recent(Some("crashy"), 1000).unwrap();
        if all.len() == landed && all.iter().all(|e| e.state == dagrun_automate::log::State::Done) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: {} of {landed} files recorded and done after 120 s",
            all.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    d.stop();
    for e in &all {
        assert_eq!(e.outcome.as_deref(), Some("succeeded"), "seed {seed}: event {e:?}");
        let runs = log.runs_of_event(e.id).unwrap();
        let finished: Vec<_> = runs.iter().filter(|(_, s)| s == "succeeded").collect();
        assert_eq!(finished.len(), 1, "seed {seed}: event #{} ran to the end {} times: {runs:?}", e.id, finished.len());
    }
    let cut = all.iter().filter(|e| log.runs_of_event(e.id).unwrap().len() > 1).count();
    eprintln!("{landed} events; {cut} of them had a run cut off by kill -9 and redone");
    assert_eq!(log.integrity().unwrap(), "ok");
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap().trim(), landed.to_string());
    let verify = dagrun().args(["cache", "verify", "crashy.ron"]).current_dir(dir.path()).output().unwrap();
    assert!(verify.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&verify.stderr));
}

#[test]
fn sigterm_during_a_run_cancels_it_cleanly_exits_0_and_the_event_runs_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "while [ ! -f go ]; do sleep 0.05; done; date +%s%N > out.txt");
    let d = start(dir.path());
    let auth = ("Authorization", "Bearer s3cret-token");
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth, ("X-Delivery-Id", "t1")], "{}").0, 202);
    d.expect("starts for event(s) #1");
    d.stop(); // SIGTERM, asserts exit 0
    let ev = events(dir.path());
    assert_eq!(ev[0]["state"], "pending", "a cancelled run gives its event back: {ev:?}");
    assert!(!dir.path().join("out.txt").exists(), "nothing half-done is kept");
    std::fs::write(dir.path().join("go"), "").unwrap();
    let d = start(dir.path());
    d.expect("starts for event(s) #1");
    d.expect("of hooked: succeeded");
    d.stop();
    assert_eq!(events(dir.path())[0]["state"], "done");
}

#[test]
fn two_files_with_one_workflow_name_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let wf = |file: &str, out: &str| {
        std::fs::write(
            dir.path().join(file),
            format!(r#"Workflow(name: "a", tasks: [Task(name: "t", kind: Command(run: "echo {out} > {out}.txt"), outputs: {{"o": "{out}.txt"}})])"#),
        )
        .unwrap();
    };
    wf("a.ron", "first");
    wf("dup.ron", "second");
    let d = start(dir.path());
    d.expect("is already used by");
    // `trigger` names the file: it must not run the other file's workflow of the same name.
    let out = dagrun().args(["trigger", "dup.ron"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("names must be unique"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once the first file is gone, the second one loads.
    std::fs::remove_file(dir.path().join("a.ron")).unwrap();
    d.expect("a.ron was removed");
    d.expect("loaded a from");
    let out = dagrun().args(["trigger", "dup.ron"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.expect("of a: succeeded");
    assert!(dir.path().join("second.txt").exists() && !dir.path().join("first.txt").exists());
    d.stop();
}

#[test]
fn while_a_manual_run_holds_the_state_directory_the_daemon_waits_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "date +%s%N > out.txt");
    let slow = dir.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(
        slow.join("slow.ron"),
        r#"Workflow(name: "slow", tasks: [Task(name: "t", kind: Command(run: "while [ ! -f go ]; do sleep 0.05; done; echo > o.txt"), outputs: {"o": "o.txt"})])"#,
    )
    .unwrap();
    let d = start(dir.path());
    let state = dir.path().join(".dagrun");
    let mut manual = dagrun()
        .args(["run", "slow/slow.ron", "--state-dir"])
        .arg(&state)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The manual run holds the lock once its task runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(state.join("runs")).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the manual run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let auth = ("Authorization", "Bearer s3cret-token");
    assert_eq!(d.post("/hooks/hooked/new-data", &[auth], "{}").0, 202);
    assert!(d.expect("waiting:").contains(&format!("pid {}", manual.id())));
    d.quiet("starts for event", Duration::from_millis(3000));
    std::fs::write(slow.join("go"), "").unwrap();
    assert!(manual.wait().unwrap().success());
    d.expect("starts for event(s) #1");
    d.expect("of hooked: succeeded");
    d.stop();
}

#[test]
fn sigterm_stops_a_manual_run_like_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    workflow(dir.path(), "sleep 30; date > out.txt");
    let mut run = dagrun().args(["run", "hooked.ron"]).current_dir(dir.path()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join(".dagrun/procs").read_dir().is_ok_and(|mut d| d.next().is_some()) {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap();
    let status = wait(&mut run, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "SIGTERM is an interruption, like Ctrl-C");
    let runs = dagrun().args(["runs", "hooked.ron", "--json"]).current_dir(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&runs.stdout).contains("\"status\":\"interrupted\""));
    // Its command was killed with it, not left behind.
    assert!(dir.path().join(".dagrun/procs").read_dir().unwrap().next().is_none());
}
