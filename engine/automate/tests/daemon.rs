//! The daemon in-process on a manual clock: cron ticks, catch-up after downtime and clock
//! jumps, coalescing and skipping while a run is in progress, task-outcome triggers and
//! reloads. No test waits for a cron minute: the clock is moved by hand.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dagrun_automate::clock::{Clock, ManualClock};
use dagrun_automate::daemon::{self, Change, Config, Notice, Observer, Shutdown};
use dagrun_automate::log::{EventLog, Source, State};
use dagrun_exec::{Event, Reporter};
use tokio::sync::mpsc;

/// Collects notices; runs report nothing.
struct Collect {
    tx: mpsc::UnboundedSender<String>,
    all: Mutex<Vec<String>>,
}

struct Quiet;
impl Reporter for Quiet {
    fn report(&self, _: &Event) {}
}

impl Observer for Collect {
    fn notice(&self, n: Notice) {
        let line = match n {
            Notice::Started { .. } => "started".to_owned(),
            Notice::Recorded(e) => {
                format!(
                    "event {} {} {}",
                    e.event.workflow,
                    e.event.source.as_str(),
                    e.event.partition.unwrap_or_default()
                )
            }
            Notice::RunStarting { workflow, events, partitions, .. } => {
                format!("start {workflow} {} {}", events.len(), partitions.join(","))
            }
            Notice::RunFinished { workflow, status, .. } => format!("finish {workflow} {}", status.as_str()),
            Notice::Missed { workflow, skipped, .. } => format!("missed {workflow} {skipped}"),
            Notice::NotRun { workflow, events, why } => format!("notrun {workflow} {} {why}", events.len()),
            Notice::Workflow(Change::Invalid { kept, .. }) => format!("invalid kept={kept}"),
            Notice::Workflow(Change::Loaded { name, reloaded, .. }) => format!("loaded {name} {reloaded}"),
            other => format!("{other:?}"),
        };
        self.all.lock().unwrap().push(line.clone());
        let _ = self.tx.send(line);
    }
    fn run_reporter(&self, _: &str, _: &str) -> Arc<dyn Reporter> {
        Arc::new(Quiet)
    }
}

struct Daemon {
    dir: tempfile::TempDir,
    clock: ManualClock,
    rx: mpsc::UnboundedReceiver<String>,
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
}

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

fn config(dir: &Path) -> Config {
    Config {
        paths: vec![dir.to_owned()],
        state_dir: dir.join(".dagrun"),
        listen: None,
        jobs: 2,
        rescan: Duration::from_secs(60),
        reload: Duration::from_millis(100),
        durability: dagrun_cache::Durability::NoFsync,
        log_bytes: 1 << 20,
        remote: dagrun_exec::RemoteOptions::default(),
        remote_bin: None,
    }
}

fn start(dir: tempfile::TempDir, now: i64) -> Daemon {
    let clock = ManualClock::new(now);
    let (tx, rx) = mpsc::unbounded_channel();
    let obs = Arc::new(Collect { tx, all: Mutex::new(Vec::new()) });
    let shutdown = Shutdown::new();
    let (cfg, c, s) = (config(dir.path()), clock.clone(), shutdown.clone());
    let handle = tokio::spawn(async move { daemon::run(cfg, Arc::new(c) as Arc<dyn Clock>, obs, s).await });
    Daemon { dir, clock, rx, shutdown, handle }
}

impl Daemon {
    /// Waits (up to 20 s) for a notice starting with `prefix`; returns it.
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => continue,
                _ => panic!("no notice starting with `{prefix}` within 20 s"),
            }
        }
    }

    /// Asserts nothing starting with `prefix` arrives within `d` (after a positive control).
    async fn quiet(&mut self, prefix: &str, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            assert!(!line.starts_with(prefix), "unexpected `{line}`");
        }
    }

    async fn stop(self) -> tempfile::TempDir {
        self.shutdown.stop();
        tokio::time::timeout(Duration::from_secs(20), self.handle).await.unwrap().unwrap().unwrap();
        self.dir
    }

    fn log(&self) -> EventLog {
        EventLog::open(&self.dir.path().join(".dagrun")).unwrap()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const DAILY: &str = r#"Workflow(
    name: "daily",
    schedule: Cron(expr: "0 3 * * *", catchup: CATCHUP),
    partitions: {"day": Daily(start: "2025-01-01")},
    tasks: [Task(name: "t", kind: Command(run: "echo $DAGRUN_PARTITION > out-$DAGRUN_PARTITION.txt"), outputs: {"o": "out-{date}.txt"}, partitioned: "day")],
)"#;

fn daily(catchup: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "daily.ron", &DAILY.replace("CATCHUP", catchup));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_runs_the_partition_that_just_closed() {
    let mut d = start(daily("Latest"), ms("2025-03-05T02:59:00Z"));
    d.expect("started").await;
    d.clock.set(ms("2025-03-05T03:00:00Z"));
    assert_eq!(d.expect("event").await, "event daily tick 2025-03-04");
    assert_eq!(d.expect("start").await, "start daily 1 2025-03-04");
    assert_eq!(d.expect("finish").await, "finish daily succeeded");
    assert!(d.dir.path().join("out-2025-03-04.txt").exists());
    // Nothing more until the next tick.
    d.clock.set(ms("2025-03-05T12:00:00Z"));
    d.quiet("event", Duration::from_millis(500)).await;
    d.clock.set(ms("2025-03-06T03:00:00Z"));
    assert_eq!(d.expect("event").await, "event daily tick 2025-03-05");
    d.expect("finish").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_latest_runs_once_and_all_is_bounded() {
    // Latest: the daemon was down for 5 days; one run, for the newest missed tick.
    let mut d = start(daily("Latest"), ms("2025-03-01T12:00:00Z"));
    d.expect("started").await;
    let dir = d.stop().await;
    let mut d = start(dir, ms("2025-03-06T12:00:00Z"));
    assert_eq!(d.expect("event").await, "event daily tick 2025-03-05");
    assert_eq!(d.expect("missed").await, "missed daily 4");
    d.expect("finish").await;
    d.quiet("event", Duration::from_millis(500)).await;
    d.stop().await;

    // All(max: 3): the clock jumps 10 days ahead while running: three runs' worth, oldest first,
    // coalesced into one run over their partitions.
    let mut d = start(daily("All(max: 3)"), ms("2025-03-01T12:00:00Z"));
    d.expect("started").await;
    d.clock.set(ms("2025-03-11T12:00:00Z"));
    for day in ["2025-03-08", "2025-03-09", "2025-03-10"] {
        assert_eq!(d.expect("event").await, format!("event daily tick {day}"));
    }
    assert_eq!(d.expect("missed").await, "missed daily 7");
    assert_eq!(d.expect("start").await, "start daily 3 2025-03-08,2025-03-09,2025-03-10");
    d.expect("finish").await;
    let dir = d.stop().await;
    // Restarted at the same time: nothing fires twice.
    let mut d = start(dir, ms("2025-03-11T12:00:00Z"));
    d.expect("started").await;
    d.quiet("event", Duration::from_millis(500)).await;
    let log = d.log();
    let ticks = log.recent(Some("daily"), 100).unwrap().into_iter().filter(|e| e.event.source == Source::Tick).count();
    assert_eq!(ticks, 3);
    d.stop().await;
}

const SLOW: &str = r#"Workflow(
    name: "slow",
    concurrency: POLICY,
    tasks: [Task(name: "t", kind: Command(run: "while [ ! -f go ]; do sleep 0.05; done; rm go; date +%s%N > out.txt"), outputs: {"o": "out.txt"})],
)"#;

fn manual(d: &Daemon, workflow: &str, reason: &str) {
    let now = d.clock.now_ms();
    dagrun_automate::trigger::record_manual(&d.dir.path().join(".dagrun"), workflow, None, Some(reason), now).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_during_a_run_are_coalesced_into_one_follow_up() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "slow.ron", &SLOW.replace("POLICY", "Coalesce"));
    let mut d = start(dir, ms("2025-03-01T00:00:00Z"));
    d.expect("started").await;
    manual(&d, "slow", "first");
    assert_eq!(d.expect("start").await, "start slow 1 ");
    for i in 0..5 {
        manual(&d, "slow", &format!("during {i}"));
    }
    std::fs::write(d.dir.path().join("go"), "").unwrap();
    d.expect("finish slow succeeded").await;
    assert_eq!(d.expect("start").await, "start slow 5 ");
    std::fs::write(d.dir.path().join("go"), "").unwrap();
    d.expect("finish slow succeeded").await;
    d.quiet("start", Duration::from_millis(500)).await;
    let log = d.log();
    assert!(log.recent(Some("slow"), 10).unwrap().iter().all(|e| e.state == State::Done));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_skip_events_during_a_run_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "slow.ron", &SLOW.replace("POLICY", "Skip"));
    let mut d = start(dir, ms("2025-03-01T00:00:00Z"));
    d.expect("started").await;
    manual(&d, "slow", "first");
    d.expect("start slow 1").await;
    d.clock.advance(Duration::from_secs(1));
    manual(&d, "slow", "during");
    std::fs::write(d.dir.path().join("go"), "").unwrap();
    d.expect("finish slow succeeded").await;
    assert!(d.expect("notrun").await.contains("concurrency: Skip"));
    d.quiet("start", Duration::from_millis(500)).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outcome_starts_another_workflow_and_reloads_keep_the_last_valid_version() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "check.ron",
        r#"Workflow(name: "check", tasks: [Task(name: "drift", kind: Command(run: "echo '{\"drifted\": true}' > drift.json"), outputs: {"report": "drift.json"})])"#,
    );
    let retrain = r#"Workflow(name: "retrain",
        triggers: [TaskOutcome(workflow: "check", task: "drift", when: Json(output: "report", pointer: "/drifted", equals: true))],
        tasks: [Task(name: "fit", kind: Command(run: "echo fit > model.txt"), outputs: {"m": "model.txt"})])"#;
    let path = write(dir.path(), "retrain.ron", retrain);
    let mut d = start(dir, ms("2025-03-01T00:00:00Z"));
    d.expect("started").await;
    manual(&d, "check", "look");
    d.expect("finish check succeeded").await;
    assert_eq!(d.expect("event").await, "event retrain outcome ");
    d.expect("finish retrain succeeded").await;
    // Invalid edit: reported, the last valid version keeps running.
    std::fs::write(&path, "Workflow(name: \"retrain\", tasks: [").unwrap();
    assert_eq!(d.expect("invalid").await, "invalid kept=true");
    manual(&d, "retrain", "still runs");
    d.expect("finish retrain").await;
    d.stop().await;
}
