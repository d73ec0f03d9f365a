//! The self-healing loop end to end with the real binary (`workflows/self-heal.ron`): drift on
//! a landed day → retrain → gate → an automatic deploy; the cooldown holding a second alert;
//! the circuit breaker asking a person; a rejection that never deploys; an approval that
//! does; and a post-deploy regression rolled back. Notifications go to a real HTTP receiver.
//!
//! Needs ONNX Runtime and the wasm32-wasip2 target (as tests/monitor.rs).

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::HttpReceiver;
use dagrun_workflow::heal::NotifyEvent;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Landing days `(day, generated as date, label noise)`: the generate plugin's concept drifts
/// after 2025-03-01; 03-04 carries a pre-drift day's data; on 03-07 the features look as
/// before but the labels are much noisier (the model's accuracy falls, nothing drifts).
const DAYS: [(&str, &str, f64); 7] = [
    ("2025-02-27", "2025-02-27", 1.0),
    ("2025-03-02", "2025-03-02", 1.0),
    ("2025-03-03", "2025-03-03", 1.0),
    ("2025-03-04", "2025-02-25", 1.0),
    ("2025-03-05", "2025-03-05", 1.0),
    ("2025-03-06", "2025-03-06", 1.0),
    ("2025-03-07", "2025-03-07", 4.0),
];

/// Generates the landing days into `dir/<day>.csv`.
fn landing_workflow(plugins: &Path, dir: &str) -> String {
    let tasks: Vec<String> = DAYS
        .iter()
        .map(|(day, date, noise)| {
            format!(
                r#"Task(name: "d{day}", kind: Wasm(plugin: "{}/generate"), params: {{"rows": 4000, "features": 10, "seed": 1, "date": "{date}", "drift_after": "2025-03-01", "noise": {noise:.1}}}, outputs: {{"data": "{dir}/{day}.csv"}})"#,
                plugins.display()
            )
        })
        .collect();
    format!("Workflow(name: \"landing\", tasks: [{}])", tasks.join(",\n"))
}

/// A copy of the repository's workflows in a temp dir, with notifications to a receiver.
struct Loop {
    dir: tempfile::TempDir,
    hook: HttpReceiver,
}

impl Loop {
    /// `cooldown` replaces the shipped `1d` so the test need not wait a day.
    fn new(cooldown: &str) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let plugins = repo().join("plugins");
        for name in ["retrain.ron", "self-heal.ron"] {
            let text = std::fs::read_to_string(repo().join("workflows").join(name)).unwrap();
            let text = text.replace("\"../plugins/", &format!("\"{}/", plugins.display()));
            let text = text.replace("cooldown: \"1d\"", &format!("cooldown: \"{cooldown}\""));
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::write(dir.path().join("landing.ron"), landing_workflow(&plugins, "landing")).unwrap();
        std::fs::write(dir.path().join("staging.ron"), landing_workflow(&plugins, "staging")).unwrap();
        Loop { dir, hook: HttpReceiver::start() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn dagrun(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::BIN);
        for var in dagrun_wasm::OUTER_CARGO_ENV {
            cmd.env_remove(var);
        }
        cmd.env("NO_COLOR", "1")
            .env_remove("DAGRUN_STATE_DIR")
            .env("SLACK_WEBHOOK_URL", self.hook.url("/slack/T000/B000/secret"))
            .env("DAGRUN_WEBHOOK_URL", self.hook.url("/hook"))
            .env("USER", "tester")
            .env("DAGRUN_FSYNC", "0")
            .env_remove("DAGRUN_LISTEN");
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Starts `dagrun daemon self-heal.ron`; its output lines arrive on a channel.
    fn daemon(&self) -> Daemon {
        let mut child = self
            .command(&["daemon", "self-heal.ron", "--listen", "127.0.0.1:0", "--rescan", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let outs =
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())];
        for out in outs {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        // Only the readers keep senders: the channel disconnects when the daemon's output ends.
        drop(tx);
        let d = Daemon { child, lines, seen: RefCell::new(Vec::new()), state: self.path(".dagrun") };
        // The banner itself (`[hh:mm:ss] dagrun daemon (pid N): ...`), not any line naming a
        // daemon: the refusal `another dagrun daemon (pid N) is running ...` contains the same words.
        d.expect_line(|l| l.starts_with('[') && l.contains("] dagrun daemon (pid"), "the start banner");
        d
    }

    /// Moves a generated day into `landing/` whole (rename), as a careful uploader does.
    fn land(&self, day: &str) {
        std::fs::create_dir_all(self.path("landing")).unwrap();
        std::fs::rename(self.path(&format!("staging/{day}.csv")), self.path(&format!("landing/{day}.csv"))).unwrap();
    }

    /// The daemon's event states for `self-heal`, oldest first.
    fn event_states(&self) -> Vec<String> {
        let out = self.dagrun(&["daemon", "status", "self-heal.ron", "--json", "--last", "100"]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut recent: Vec<Value> = v["workflows"][0]["recent"].as_array().cloned().unwrap_or_default();
        recent.reverse();
        recent.iter().map(|e| e["state"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

/// A daemon child and its output lines.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line received so far, shown when a wait fails.
    seen: RefCell<Vec<String>>,
    /// Its state directory.
    state: PathBuf,
}

impl Daemon {
    /// Waits (up to 120 s) for an output line containing `text`.
    fn expect(&self, text: &str) -> String {
        self.expect_line(|l| l.contains(text), &format!("a line containing `{text}`"))
    }

    /// Waits (up to 120 s) for an output line that `wanted` accepts; panics with the daemon's
    /// whole output if it exits first (a daemon that died cannot print the line later).
    fn expect_line(&self, wanted: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.seen.borrow_mut().push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the daemon closed its output before {what}:\n{}\ndaemon.lock: {}",
                    self.output(),
                    lock_holders(&self.state.join("daemon.lock"))
                ),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            assert!(Instant::now() < deadline, "no daemon output line with {what} within 120 s:\n{}", self.output());
        }
    }

    /// Whether the daemon still runs, and everything it printed so far (for failure messages).
    fn output(&self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.borrow_mut().push(line);
        }
        // `try_wait` needs `&mut`; the pid's /proc entry says the same without reaping it.
        let pid = self.child.id();
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_owned)));
        let alive = match state.as_deref() {
            None | Some("Z" | "X") => "has exited",
            Some(_) => "still runs",
        };
        format!("daemon pid {pid} {alive}; its output:\n  {}", self.seen.borrow().join("\n  "))
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0));
    }
}

/// Who keeps `path` locked now: the `/proc/locks` entries on its inode (their pid is the
/// process that took the lock, which may be gone while a process it started still has the file
/// open) and every process with the file open, with its command line.
fn lock_holders(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(inode) = std::fs::metadata(path).map(|m| m.ino().to_string()) else {
        return format!("{} is missing", path.display());
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let locks: Vec<&str> = locks
        .lines()
        .filter(|l| l.split_whitespace().nth(5).and_then(|f| f.rsplit(':').next()) == Some(&inode))
        .collect();
    let command = |pid: &str| {
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " ")
    };
    let mut open = Vec::new();
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = proc.file_name().to_string_lossy().into_owned();
        let fds = std::fs::read_dir(proc.path().join("fd")).into_iter().flatten().flatten();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && fds.into_iter().any(|f| std::fs::read_link(f.path()).is_ok_and(|t| t == path))
        {
            open.push(format!("pid {pid} ({})", command(&pid)));
        }
    }
    format!("locks {locks:?}; open in {open:?}")
}

impl Loop {
    /// Runs the loop on one landed day: task → status, and the exit code.
    fn day(&self, day: &str) -> (BTreeMap<String, String>, Vec<Value>, i32) {
        let out = self.dagrun(&["run", "self-heal.ron", "--partition", day, "--json"]);
        let events: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (common::task_statuses(&events), events, out.status.code().unwrap_or(-1))
    }

    fn current(&self) -> String {
        std::fs::read_to_string(self.path("registry/churn/current")).unwrap().trim().to_owned()
    }

    fn metadata(&self, version: &str) -> Value {
        json(&self.path(&format!("registry/churn/{version}/metadata.json")))
    }

    fn edit(&self, from: &str, to: &str) {
        let path = self.path("self-heal.ron");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in self-heal.ron");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// The run id of the one request `dagrun approvals` lists as waiting.
    fn waiting_run(&self) -> Value {
        let out = self.dagrun(&["approvals", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        let lines: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "one request waits: {lines:?}");
        lines[0].clone()
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn status<'a>(st: &'a BTreeMap<String, String>, task: &str) -> &'a str {
    st.get(task).map_or("<none>", String::as_str)
}

fn error_of(events: &[Value], task: &str) -> String {
    let e = events.iter().find(|e| e["event"] == "task_finished" && e["task"] == task).unwrap();
    e["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_loop_deploys_holds_escalates_rejects_approves_and_rolls_back() {
    let l = Loop::new("4s");
    for wf in ["retrain.ron", "landing.ron"] {
        let out = l.dagrun(&["run", wf]);
        assert_eq!(out.status.code(), Some(0), "{wf}: {}", common::stderr(&out));
    }
    assert_eq!(l.current(), "v0001", "the first model, deployed without an Approval step");

    // A quiet day: the chain after the drift check is skipped; the model is scored on the day.
    let (st, ev, code) = l.day("2025-02-27");
    assert_eq!((code, status(&st, "drift@2025-02-27"), status(&st, "train")), (0, "succeeded", "skipped"), "{ev:?}");
    assert_eq!(status(&st, "performance@2025-02-27"), "succeeded");

    // The first drifted day: retrain, gate, and an automatic deploy (36% of predictions change,
    // under the 40% limit; no promotion by the loop yet).
    let (st, ev, code) = l.day("2025-03-02");
    assert_eq!(code, 6, "drift is still reported: {ev:?}");
    for (task, want) in
        [("drift@2025-03-02", "alerted"), ("train", "succeeded"), ("approve", "succeeded"), ("deploy", "succeeded")]
    {
        assert_eq!(status(&st, task), want, "{task}: {ev:?}");
    }
    assert_eq!(l.current(), "v0002");
    assert_eq!(l.metadata("v0002")["approval"]["decision"], "automatic");
    assert_eq!(l.metadata("v0002")["previous"], "v0001");

    // The next day compares with the new model's reference: quiet again.
    let (st, ev, code) = l.day("2025-03-03");
    assert_eq!((code, status(&st, "drift@2025-03-03")), (0, "succeeded"), "{ev:?}");
    assert_eq!(status(&st, "performance@2025-03-03"), "succeeded", "{ev:?}");

    // Drift within the cooldown after a deploy: held, notified, no retrain.
    let (st, ev, code) = l.day("2025-03-04");
    assert_eq!((code, status(&st, "drift@2025-03-04"), status(&st, "train")), (6, "held", "skipped"), "{ev:?}");
    assert!(error_of(&ev, "drift@2025-03-04").contains("(held: churn v0002 was deployed "), "{ev:?}");
    std::thread::sleep(Duration::from_secs(4));
    let (st, ev, code) = l.day("2025-03-04");
    assert_eq!((code, status(&st, "deploy")), (6, "succeeded"), "after the cooldown: retrained: {ev:?}");
    assert_eq!(l.current(), "v0003");

    // A third automatic promotion within 7 days: the breaker asks a person; rejected: never deployed.
    std::thread::sleep(Duration::from_secs(4));
    let (st, ev, code) = l.day("2025-03-05");
    assert_eq!((code, status(&st, "approve"), status(&st, "deploy")), (7, "waiting", "skipped"), "{ev:?}");
    let req = l.waiting_run();
    assert_eq!(
        req["reasons"],
        serde_json::json!([
            "circuit breaker: 2 automatic promotion(s) of `churn` in the last 7d (v0002, v0003; max 2)"
        ])
    );
    let run = req["run_id"].as_str().unwrap().to_owned();
    let out = l.dagrun(&["reject", &run, "--by", "ana", "--note", "two retrains this week already"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let again = l.dagrun(&["reject", &run, "--by", "bo"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        common::stderr(&again).contains(&format!("run {run} was already rejected by ana")),
        "{}",
        common::stderr(&again)
    );
    let (st, ev, code) = l.day("2025-03-05");
    assert_eq!((code, status(&st, "approve"), status(&st, "deploy")), (4, "refused", "skipped"), "{ev:?}");
    assert!(error_of(&ev, "approve").starts_with("rejected by ana: two retrains this week already"), "{ev:?}");
    assert_eq!(l.current(), "v0003", "a rejected model is never deployed");

    // The team tightens the behaviour limit to 25%: the next retrain waits for both reasons;
    // approved, it is deployed (the run resumes from the cache).
    l.edit("max_label_change: 0.4", "max_label_change: 0.25");
    let (st, ev, code) = l.day("2025-03-06");
    assert_eq!((code, status(&st, "approve")), (7, "waiting"), "{ev:?}");
    let req = l.waiting_run();
    let reasons: Vec<&str> = req["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("of predictions change (") && reasons[0].ends_with("rows; max 25%)"), "{reasons:?}");
    assert!(reasons[1].starts_with("circuit breaker: 2 automatic promotion(s)"), "{reasons:?}");
    let run = req["run_id"].as_str().unwrap().to_owned();
    let out = l.dagrun(&["approve", &run, "--by", "ana", "--note", "checked the slices"]);
    assert_eq!(out.status.code(), Some(0), "deployed: {}", common::stderr(&out));
    assert!(common::stdout(&out).contains("deployed: churn v0004 is the approved model "), "{}", common::stdout(&out));
    assert_eq!(l.current(), "v0004");
    let approval = &l.metadata("v0004")["approval"];
    assert_eq!((approval["decision"].as_str(), approval["by"].as_str()), (Some("approved"), Some("ana")));
    let again = l.dagrun(&["approve", &run, "--by", "bo"]);
    assert_eq!(again.status.code(), Some(2), "a deployed approval is not approved twice: {}", common::stdout(&again));
    assert!(common::stderr(&again).contains("was already approved by ana"), "{}", common::stderr(&again));

    // A day whose features look the same but whose labels are much noisier: no drift,
    // but the new model does worse than its verdict promised: rolled back.
    let (st, ev, code) = l.day("2025-03-07");
    assert_eq!(code, 6, "{ev:?}");
    assert_eq!((status(&st, "drift@2025-03-07"), status(&st, "performance@2025-03-07")), ("succeeded", "alerted"));
    assert!(error_of(&ev, "performance@2025-03-07").contains("v0004"), "{ev:?}");
    assert_eq!(l.current(), "v0003", "rolled back to the version before");
    check_notifications(&l);
    check_report(&l);
}

/// `dagrun report` on the scenario: non-zero time to recovery from the real drift incidents, the
/// deploys and the rollback the run records show, the rejection listed once with its note.
fn check_report(l: &Loop) {
    let out = l.dagrun(&["report", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let r: Value = serde_json::from_str(&common::stdout(&out)).unwrap();

    let history = dagrun_history::History::open(&l.path(".dagrun")).unwrap();
    let mut incidents = history.incidents(100).unwrap();
    incidents.reverse();
    let listed: Vec<(i64, Option<i64>)> = r["drift"]["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["recovery_ms"].as_i64()))
        .collect();
    let stored: Vec<(i64, Option<i64>)> = incidents.iter().map(|i| (i.id, i.time_to_recovery_ms())).collect();
    assert_eq!(listed, stored, "every incident, with its time to recovery");
    assert!(r["drift"]["resolved"].as_u64().unwrap() >= 1, "{}", r["drift"]);
    assert!(r["drift"]["median_ms"].as_i64().unwrap() > 0 && r["drift"]["worst_ms"].as_i64().unwrap() > 0);

    // Deploys and rollbacks, counted from the run records themselves.
    let records = common::stdout(&l.dagrun(&["runs", "--json", "-n", "1000"]));
    let (mut up, mut down) = (0, 0);
    for line in records.lines() {
        let run: Value = serde_json::from_str(line).unwrap();
        for c in run["registry"].as_array().unwrap() {
            match (c["before"].as_str(), c["after"].as_str()) {
                (b, Some(a)) if b.is_none_or(|b| a > b) => up += 1,
                (Some(b), Some(a)) if a < b => down += 1,
                _ => {}
            }
        }
    }
    assert_eq!((up, down), (4, 1), "v0001 to v0004 deployed, one rollback");
    assert_eq!((r["total"]["deploys"].as_u64(), r["total"]["rollbacks"].as_u64()), (Some(up), Some(down)));
    // One registry, one model: its deploys, rollback and incidents under one entry, whether the
    // workflow names the registry by a relative path (run records) or resolved (incidents).
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!((models[0]["deploys"].as_u64(), models[0]["rollbacks"].as_u64()), (Some(up), Some(down)));
    let approvals: Vec<&Value> =
        r["prevented"].as_array().unwrap().iter().filter(|b| b["kind"] == "approval").collect();
    assert_eq!(approvals.len(), 1, "the rejection, once (not again as the resumed run's refused step)");
    assert!(approvals[0]["reason"].as_str().unwrap().starts_with("rejected by ana: two retrains this week already"));

    // The notification deliveries: per sink, what its receiver got.
    let n = &r["notifications"];
    let sink = |name: &str| n["sinks"].as_array().unwrap().iter().find(|s| s["sink"] == name).cloned().unwrap();
    let received = [("webhook", l.hook.json("/hook").len()), ("slack", l.hook.json("/slack/T000/B000/secret").len())];
    for (name, got) in received {
        assert!(got > 0, "{name} received nothing");
        assert_eq!(sink(name)["delivered"].as_u64(), Some(got as u64), "{name}: {n}");
    }
    let per_sink: u64 = n["sinks"].as_array().unwrap().iter().map(|s| s["delivered"].as_u64().unwrap()).sum();
    assert_eq!(n["delivered"].as_u64(), Some(per_sink), "{n}");
    let text = common::stdout(&l.dagrun(&["report"]));
    assert!(text.contains(&format!("Notifications: {per_sink} delivered, ")), "{text}");
}

/// Every notification of the scenario reached both sinks, once, in the documented shapes:
/// the webhook body is exactly `webhook_body` of the notification, the Slack message exactly
/// `slack_payload`; per run, the events are the ones that happened.
fn check_notifications(l: &Loop) {
    let hooks = l.hook.json("/hook");
    let slacks = l.hook.json("/slack/T000/B000/secret");
    assert_eq!(hooks.len(), slacks.len(), "each notification goes to both sinks");
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &hooks {
        // The webhook names the event in snake_case; the notification type by its variant.
        let event = NotifyEvent::ALL.into_iter().find(|e| h["event"] == e.as_str()).unwrap();
        let mut typed = h.clone();
        typed["event"] = serde_json::to_value(event).unwrap();
        let n: dagrun_history::Notification = serde_json::from_value(typed).unwrap();
        assert_eq!(h, &serde_json::from_str::<Value>(&dagrun_notify::webhook_body(&n)).unwrap(), "webhook shape");
        let slack = dagrun_notify::slack_payload(&n);
        assert_eq!(slacks.iter().filter(|s| **s == slack).count(), 1, "the Slack message of {h}");
        let event = h["event"].as_str().unwrap().to_owned();
        by_run.entry(h["run_id"].as_str().unwrap().to_owned()).or_default().push(event);
    }
    for events in by_run.values_mut() {
        events.sort();
    }
    let expected: Vec<Vec<&str>> = vec![
        vec!["drift_detected", "model_deployed"], // 03-02: automatic deploy
        vec!["drift_detected"],                   // 03-04: held
        vec!["drift_detected", "model_deployed"], // 03-04: after the cooldown
        vec!["approval_needed", "approval_rejected", "drift_detected"], // 03-05: breaker, rejected
        // 03-05 again: refused; the same finding is not told twice
        vec!["approval_granted", "approval_needed", "drift_detected"], // 03-06: asked, approved
        vec!["model_deployed"], // the resumed run deploys (its drift was told already)
        vec!["rolled_back"],    // 03-07
    ];
    assert_eq!(by_run.values().cloned().collect::<Vec<_>>(), expected, "{hooks:#?}");
    let titles: Vec<&str> = hooks.iter().map(|h| h["title"].as_str().unwrap()).collect();
    for title in [
        "self-heal: model churn v0002 deployed (was v0001)",
        "self-heal: model churn v0004 deployed (was v0003) — approved by ana",
    ] {
        assert!(titles.contains(&title), "{title}: {titles:?}");
    }
    assert!(
        titles.iter().any(|t| t.starts_with("self-heal: churn rolled back v0004 → v0003 — accuracy ")),
        "{titles:?}"
    );
    assert!(titles.iter().any(|t| t.contains("(held: cooldown until ")), "{titles:?}");
    let asked: Vec<&Value> = hooks.iter().filter(|h| h["event"] == "approval_needed").collect();
    for a in asked {
        let run = a["run_id"].as_str().unwrap();
        assert_eq!(a["action"], format!("dagrun approve {run}"));
        assert_eq!(a["details"]["approval"]["reject"], format!("dagrun reject {run}"));
    }
    // Secrets (the Slack URL's path) appear nowhere dagrun writes or prints.
    let listed = l.dagrun(&["runs", "--notifications"]);
    assert!(!common::stdout(&listed).contains("secret"), "{}", common::stdout(&listed));
    // The database and its write-ahead log (kept between runs).
    for file in ["history.sqlite", "history.sqlite-wal"] {
        let db = std::fs::read(l.path(&format!(".dagrun/{file}"))).unwrap_or_default();
        assert!(!db.windows(6).any(|w| w == b"secret"), "{file} holds no secret");
    }
}

#[test]
fn the_daemon_runs_the_loop_on_a_landed_day_and_a_parked_run_survives_a_restart() {
    let l = Loop::new("1d");
    l.edit("max_label_change: 0.4", "max_label_change: 0.25");
    // A required sink: the daemon has its secret; the person approving does not need it.
    l.edit("Webhook(url_env: \"DAGRUN_WEBHOOK_URL\", optional: true)", "Webhook(url_env: \"DAGRUN_WEBHOOK_URL\")");
    for wf in ["retrain.ron", "staging.ron"] {
        let out = l.dagrun(&["run", wf]);
        assert_eq!(out.status.code(), Some(0), "{wf}: {}", common::stderr(&out));
    }
    let d = l.daemon();
    l.land("2025-03-02");
    let line = d.expect("of self-heal: WAITING for approval");
    assert!(line.contains("run "), "{line}");
    // Killed while the run waits: nothing is lost; the request is still there after a restart.
    d.kill9();
    let d = l.daemon();
    let req = l.waiting_run();
    assert_eq!(req["state"], "pending");
    assert!(req["reasons"][0].as_str().unwrap().ends_with("rows; max 25%)"), "{req}");
    let run = req["run_id"].as_str().unwrap().to_owned();
    let out = l
        .command(&["approve", &run, "--by", "ana", "--note", "ok"])
        .env_remove("DAGRUN_WEBHOOK_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", common::stderr(&out), d.output());
    assert!(common::stdout(&out).contains("queued for self-heal; the daemon"), "{}", common::stdout(&out));
    d.expect("of self-heal: ALERT");
    assert_eq!(l.current(), "v0002", "deployed after the approval");
    assert_eq!(l.metadata("v0002")["approval"]["by"], "ana");
    let none = l.dagrun(&["approvals"]);
    assert!(common::stdout(&none).starts_with("no run waits for approval"), "{}", common::stdout(&none));
    d.stop();
}

#[test]
fn a_drift_storm_retrains_once_and_holds_the_other_alerts() {
    let l = Loop::new("1d");
    // Twenty days land within seconds, alternating between the drifted and the old data: every
    // day drifts from what one of the two models learned.
    let days: Vec<String> = (2..=21).map(|d| format!("2025-03-{d:02}")).collect();
    let plugins = repo().join("plugins");
    let tasks: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let date = if i % 2 == 0 { day.clone() } else { format!("2025-02-{:02}", i + 1) };
            format!(
                r#"Task(name: "d{day}", kind: Wasm(plugin: "{}/generate"), params: {{"rows": 4000, "features": 10, "seed": 1, "date": "{date}", "drift_after": "2025-03-01"}}, outputs: {{"data": "staging/{day}.csv"}})"#,
                plugins.display()
            )
        })
        .collect();
    std::fs::write(l.path("storm.ron"), format!("Workflow(name: \"storm\", tasks: [{}])", tasks.join(",\n"))).unwrap();
    for wf in ["retrain.ron", "storm.ron"] {
        let out = l.dagrun(&["run", wf]);
        assert_eq!(out.status.code(), Some(0), "{wf}: {}", common::stderr(&out));
    }
    let d = l.daemon();
    for day in &days {
        l.land(day);
        std::thread::sleep(Duration::from_millis(150));
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let states = l.event_states();
        if states.len() == days.len() && states.iter().all(|s| s == "done") {
            break;
        }
        assert!(Instant::now() < deadline, "the storm was not handled within 240 s: {states:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    d.stop();
    let versions: Vec<String> = std::fs::read_dir(l.path("registry/churn"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('v'))
        .collect();
    assert_eq!(versions.len(), 2, "one retrain for the whole storm: {versions:?}");
    assert_eq!(l.current(), "v0002");
    // Every day was checked; after the deploy the drifted days are quiet or held, never retrained.
    let runs = l.dagrun(&["runs", "self-heal.ron", "--json", "-n", "100"]);
    let records: Vec<Value> =
        String::from_utf8_lossy(&runs.stdout).lines().map(|x| serde_json::from_str(x).unwrap()).collect();
    let tasks: Vec<Value> = records
        .iter()
        .filter(|r| r["workflow_name"] == "self-heal")
        .flat_map(|r| r["tasks"].as_array().cloned().unwrap_or_default())
        .collect();
    let count = |name: &str, status: &str| {
        tasks
            .iter()
            .filter(|t| t["task"].as_str().is_some_and(|n| n.starts_with(name)) && t["status"] == status)
            .count()
    };
    assert_eq!(count("train", "succeeded"), 1, "{records:?}");
    assert_eq!(count("drift@", "alerted") + count("drift@", "held") + count("drift@", "succeeded"), days.len());
    assert!(count("drift@", "held") >= 5, "the alerts after the deploy are held: {records:?}");
}
