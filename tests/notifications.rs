//! Notifications as a user meets them: the real `dagrun` binary delivers what is due after a
//! run (within its budget, never changing the run's exit code), `dagrun runs` says what is not
//! delivered, and the daemon notifies landed files and shows undelivered ones in its status.
//! Receivers are small HTTP servers on 127.0.0.1 in this file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use dagrun_history::{Fact, History, Notification};
use dagrun_workflow::heal::{NotifyDef, NotifyEvent, WebhookSink};
use serde_json::Value;

mod common;

use common::{Sandbox, stderr, stdout};

/// A receiver answering every request with `status` after `delay`; the bodies it got.
struct Receiver {
    addr: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

fn receiver(status: u16, delay: Duration) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                seen.lock().unwrap().push(String::from_utf8(body).unwrap());
                std::thread::sleep(delay);
                let _ = write!(conn, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            });
        }
    });
    Receiver { addr, bodies }
}

const WORKFLOW: &str = r#"Workflow(
    name: "notified",
    notify: [Webhook(url_env: "HOOK_URL")],
    tasks: [Task(name: "t", kind: Command(run: "echo hi > out.txt"), outputs: {"o": "out.txt"})],
)"#;

fn note(run_id: &str) -> Notification {
    Notification {
        event: NotifyEvent::ModelDeployed,
        workflow: "notified".into(),
        run_id: Some(run_id.into()),
        at_ms: 1_795_867_380_000,
        title: "notified: model churn v0004 deployed".into(),
        facts: vec![Fact { name: "version".into(), value: "v0004".into() }],
        action: None,
        details: serde_json::json!({}),
    }
}

/// Queues `note(run_id)` for the workflow's webhook, as the engine does when a run ends.
fn enqueue(s: &Sandbox, run_id: &str) {
    let h = History::open(&s.path(".dagrun")).unwrap();
    let sink = NotifyDef::Webhook(WebhookSink {
        url_env: "HOOK_URL".into(),
        optional: false,
        headers_env: None,
        events: vec![NotifyEvent::ModelDeployed],
    });
    assert_eq!(h.enqueue(&note(run_id), &[sink], s.dir.path(), run_id, 0).unwrap(), 1);
}

/// `dagrun run wf.ron` with `HOOK_URL` pointing at `r`; (stderr, exit code, wall time).
fn run(s: &Sandbox, r: &Receiver, budget_ms: Option<&str>) -> (String, i32, Duration) {
    let mut c = s.cmd(&["run", "wf.ron"]);
    c.env("HOOK_URL", format!("http://{}/hook/s3cret-path", r.addr)).env_remove("DAGRUN_NOTIFY_BUDGET_MS");
    if let Some(b) = budget_ms {
        c.env("DAGRUN_NOTIFY_BUDGET_MS", b);
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    (stderr(&out), out.status.code().unwrap(), t.elapsed())
}

fn first_run_id(s: &Sandbox) -> String {
    let runs = stdout(&s.dagrun(&["runs", "wf.ron", "--json"]));
    let last: Value = serde_json::from_str(runs.lines().last().unwrap()).unwrap();
    last["id"].as_str().unwrap().to_owned()
}

fn undelivered(s: &Sandbox) -> Vec<Value> {
    let out = stdout(&s.dagrun(&["runs", "wf.ron", "--notifications", "--json"]));
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn after_a_run_what_is_due_is_delivered_quietly() {
    let s = Sandbox::new(WORKFLOW);
    let r = receiver(200, Duration::ZERO);
    let (err, code, _) = run(&s, &r, None);
    assert_eq!(code, 0, "{err}");
    enqueue(&s, &first_run_id(&s));
    let (err, code, _) = run(&s, &r, None);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("notifications"), "{err}");
    let bodies = r.bodies.lock().unwrap().clone();
    assert_eq!(bodies, vec![dagrun_notify::webhook_body(&note(&first_run_id(&s)))]);
    assert!(undelivered(&s).is_empty());
    let runs = stdout(&s.dagrun(&["runs", "wf.ron"]));
    assert!(!runs.contains("not delivered"), "{runs}");
    assert_eq!(stdout(&s.dagrun(&["runs", "wf.ron", "--notifications"])), "no undelivered notifications\n");
}

#[test]
fn a_failing_receiver_leaves_the_run_green_and_is_listed_by_runs() {
    let s = Sandbox::new(WORKFLOW);
    let r = receiver(500, Duration::ZERO);
    assert_eq!(run(&s, &r, None).1, 0);
    let id = first_run_id(&s);
    enqueue(&s, &id);
    let (err, code, _) = run(&s, &r, None);
    assert_eq!(code, 0, "the run's exit code is its own: {err}");
    let why = format!("POST to $HOOK_URL ({}): HTTP 500", r.addr);
    let line = format!(
        "notifications: 0 delivered, 1 not yet ({why}; retried by the daemon or the next run; \
         `dagrun runs --notifications` lists it)"
    );
    assert!(err.lines().any(|l| l == line), "{err}");
    assert!(err.find("succeeded:").unwrap() < err.find("notifications:").unwrap(), "after the summary: {err}");
    let runs = stdout(&s.dagrun(&["runs", "wf.ron"]));
    assert!(runs.contains(&format!("run {id}: 1 notification not delivered ({why})")), "{runs}");
    let list = stdout(&s.dagrun(&["runs", "wf.ron", "--notifications"]));
    let row = list.lines().nth(1).unwrap();
    for part in ["model_deployed", "webhook $HOOK_URL", id.as_str(), why.as_str()] {
        assert!(row.contains(part), "`{part}` in {list}");
    }
    let rows = undelivered(&s);
    assert_eq!((rows.len(), &rows[0]["attempts"], &rows[0]["state"]), (1, &Value::from(1), &Value::from("pending")));
    for text in [err, runs, list] {
        assert!(!text.contains("s3cret"), "a secret leaked: {text}");
    }
}

#[test]
fn a_slow_receiver_does_not_keep_the_cli_past_the_budget_and_nothing_is_lost() {
    let s = Sandbox::new(WORKFLOW);
    let r = receiver(200, Duration::from_secs(30));
    assert_eq!(run(&s, &r, Some("0")).1, 0, "budget 0: nothing is tried");
    enqueue(&s, &first_run_id(&s));
    let (err, code, took) = run(&s, &r, Some("700"));
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(6), "the attempt alone would take 10 s: {took:?}");
    assert!(err.contains(&format!("1 not yet (POST to $HOOK_URL ({}): timed out after 0.7s;", r.addr)), "{err}");
    let rows = undelivered(&s);
    assert_eq!(
        (&rows[0]["attempts"], &rows[0]["last_error"]),
        (&Value::from(1), &Value::from(format!("POST to $HOOK_URL ({}): timed out after 0.7s", r.addr)))
    );
    let (err, code, _) = run(&s, &r, Some("soon"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid DAGRUN_NOTIFY_BUDGET_MS=\"soon\""), "{err}");
}

/// A daemon child with its output lines.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        let mut c = std::process::Command::new(common::BIN);
        c.args(["daemon", ".", "--no-http", "--rescan", "1s"]).current_dir(dir).env("DAGRUN_FSYNC", "0");
        c.env_remove("DAGRUN_STATE_DIR").envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let outs: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        for out in outs {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Daemon { child, lines }
    }

    fn expect(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line containing `{text}` within 30 s"),
            }
        }
    }

    fn stop(mut self) {
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(self.child.wait().unwrap().success());
    }
}

const LANDING: &str = r#"Workflow(
    name: "landed",
    partitions: {"day": Daily(start: "2025-01-01")},
    triggers: [FileLanded(glob: "landing/{date}.csv", settle: "200ms")],
    notify: [
        Command(run: "cat > notified-$DAGRUN_EVENT.json", events: [FileLanded]),
        Webhook(url_env: "HOOK_URL", events: [FileLanded]),
        Slack(webhook_env: "SLACK_URL"),
    ],
    tasks: [Task(
        name: "ingest",
        kind: Command(run: "wc -l < $DAGRUN_IN_DATA > $DAGRUN_OUT_ROWS"),
        inputs: {"data": File("landing/{date}.csv")},
        outputs: {"rows": "out/rows-{date}.txt"},
        partitioned: "day",
    )],
)"#;

#[test]
fn the_daemon_notifies_a_landed_file_and_its_status_shows_what_is_undelivered() {
    let s = Sandbox::new(LANDING);
    let (hook, slack) = (receiver(500, Duration::ZERO), receiver(200, Duration::ZERO));
    let (hook_url, slack_url) = (format!("http://{}/h", hook.addr), format!("http://{}/s", slack.addr));
    let env = [("HOOK_URL", hook_url.as_str()), ("SLACK_URL", slack_url.as_str())];
    s.write("landing/.keep", "");
    let d = Daemon::start(s.dir.path(), &env);
    d.expect("] dagrun daemon (pid"); // the banner, not `another dagrun daemon (pid N) is running`
    s.write("landing/2025-03-02.csv", "a\nb\n");
    d.expect("file landed: landing/2025-03-02.csv");
    let line = d.expect("notifications: 1 delivered, 1 to retry");
    assert!(line.ends_with(&format!(": POST to $HOOK_URL ({}): HTTP 500", hook.addr)), "{line}");
    let got: Value = serde_json::from_str(&s.read("notified-file_landed.json")).unwrap();
    assert_eq!(
        (&got["event"], &got["workflow"], &got["run_id"]),
        (&"file_landed".into(), &"landed".into(), &Value::Null)
    );
    assert_eq!(got["title"], "landed: landing/2025-03-02.csv landed");
    assert_eq!(got["facts"][0], serde_json::json!({"name": "file", "value": "landing/2025-03-02.csv"}));
    assert_eq!(got["facts"][1], serde_json::json!({"name": "partition", "value": "2025-03-02"}));
    assert_eq!(hook.bodies.lock().unwrap().len(), 1);
    assert!(slack.bodies.lock().unwrap().is_empty(), "Slack's default events leave FileLanded out");
    d.expect("of landed: succeeded");

    let status_of = |args: &[&str]| stdout(&s.cmd(args).envs(env).output().unwrap());
    let status = status_of(&["daemon", "status", "."]);
    assert!(status.contains("notifications: 1 not delivered; next try "), "{status}");
    assert!(status.contains(&format!("  last error  POST to $HOOK_URL ({}): HTTP 500", hook.addr)), "{status}");
    let json: Value = serde_json::from_str(&status_of(&["daemon", "status", ".", "--json"])).unwrap();
    assert_eq!((&json["notifications"]["undelivered"], &json["notifications"]["given_up"]), (&1.into(), &0.into()));
    d.stop();
}
