//! Delivery against real receivers on 127.0.0.1 (a small HTTP/1.1 server in this file that
//! records what it gets and answers as told) and real shell commands: exact bodies, headers,
//! refused connections, retries, timeouts, giving up, and no secret in any recorded error.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dagrun_history::{DeliveryState, Fact, History, Notification};
use dagrun_notify::{DeliverOptions, EnvSource, MAX_ATTEMPTS, deliver_due, run_loop, slack_payload, webhook_body};
use dagrun_workflow::heal::{CommandSink, NotifyDef, NotifyEvent, SlackSink, WebhookSink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// How the receiver answers its n-th request (the last entry repeats).
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    Sleep(Duration),
    /// Closes the connection without answering.
    Hangup,
}

struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Got>>>,
}

async fn receiver(answers: Vec<Answer>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let (seen, answers) = (seen.clone(), answers.clone());
            tokio::spawn(async move {
                let Some(req) = read_request(&mut conn).await else { return };
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(req);
                    seen.len() - 1
                };
                let status = match answers[n.min(answers.len() - 1)] {
                    Answer::Status(s) => s,
                    Answer::Sleep(d) => {
                        tokio::time::sleep(d).await;
                        200
                    }
                    Answer::Hangup => return,
                };
                let body = if status == 200 { "ok" } else { "no_service" };
                let resp =
                    format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    Receiver { addr, got }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Got> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned())).collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    Some(Got { path, headers, body })
}

fn note() -> Notification {
    Notification {
        event: NotifyEvent::ModelDeployed,
        workflow: "self-heal".into(),
        run_id: Some("20261128T1203-ab12".into()),
        at_ms: 1_795_867_380_000,
        title: "self-heal: model churn v0004 deployed".into(),
        facts: vec![
            Fact { name: "accuracy".into(), value: "0.912 (champion 0.874)".into() },
            Fact { name: "version".into(), value: "v0004".into() },
        ],
        action: Some("dagrun models rollback churn".into()),
        details: serde_json::json!({"version": "v0004"}),
    }
}

fn slack(var: &str) -> NotifyDef {
    NotifyDef::Slack(SlackSink { webhook_env: var.into(), optional: false, events: vec![NotifyEvent::ModelDeployed] })
}

fn webhook(var: &str, headers: Option<&str>) -> NotifyDef {
    NotifyDef::Webhook(WebhookSink {
        url_env: var.into(),
        optional: false,
        headers_env: headers.map(str::to_owned),
        events: vec![NotifyEvent::ModelDeployed],
    })
}

fn command(run: &str) -> NotifyDef {
    NotifyDef::Command(CommandSink { run: run.into(), events: vec![NotifyEvent::ModelDeployed] })
}

/// A history with `note()` queued for `sinks` at time 0.
fn queued(dir: &Path, sinks: &[NotifyDef]) -> History {
    let h = History::open(&dir.join("state")).unwrap();
    assert_eq!(h.enqueue(&note(), sinks, dir, "run 1", 0).unwrap(), sinks.len());
    h
}

fn opts(env: &[(&str, &str)]) -> DeliverOptions {
    DeliverOptions {
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        env: EnvSource::map(env.iter().copied()),
        ..DeliverOptions::default()
    }
}

#[tokio::test]
async fn slack_and_webhook_get_their_exact_bodies_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Status(200)]).await;
    let h = queued(dir.path(), &[slack("SLACK_URL"), webhook("HOOK_URL", Some("HOOK_HEADERS"))]);
    let (s_url, w_url) = (format!("http://{}/slack/T0/B0", r.addr), format!("http://{}/hook?k=1", r.addr));
    let headers = "Authorization: Bearer tok-123\nX-Team: ml\n";
    let env = [("SLACK_URL", s_url.as_str()), ("HOOK_URL", w_url.as_str()), ("HOOK_HEADERS", headers)];
    let s = deliver_due(&h, 0, &opts(&env)).await;
    assert_eq!((s.delivered, s.undelivered(), s.errors.len()), (2, 0, 0), "{s:?}");
    let mut got = r.got.lock().unwrap().clone();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let (hook, slack) = (&got[0], &got[1]);
    assert_eq!((slack.path.as_str(), hook.path.as_str()), ("/slack/T0/B0", "/hook?k=1"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&slack.body).unwrap(), slack_payload(&note()));
    assert_eq!(slack.body, slack_payload(&note()).to_string());
    assert_eq!(hook.body, webhook_body(&note()));
    assert_eq!(
        hook.body,
        "{\"version\":1,\"event\":\"model_deployed\",\"workflow\":\"self-heal\",\"run_id\":\"20261128T1203-ab12\",\
         \"at_ms\":1795867380000,\"title\":\"self-heal: model churn v0004 deployed\",\"facts\":[{\"name\":\"accuracy\",\
         \"value\":\"0.912 (champion 0.874)\"},{\"name\":\"version\",\"value\":\"v0004\"}],\
         \"action\":\"dagrun models rollback churn\",\"details\":{\"version\":\"v0004\"}}"
    );
    for g in [slack, hook] {
        assert_eq!(g.header("content-type"), Some("application/json"));
    }
    assert_eq!((hook.header("authorization"), hook.header("x-team")), (Some("Bearer tok-123"), Some("ml")));
    assert_eq!(slack.header("authorization"), None);
    let rows = h.deliveries_of_run("20261128T1203-ab12").unwrap();
    assert!(rows.iter().all(|d| d.state == DeliveryState::Delivered && d.attempts == 1), "{rows:?}");
    assert!(h.undelivered(None, 10).unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_attempt_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = queued(dir.path(), &[webhook("HOOK_URL", None)]);
    let url = format!("http://127.0.0.1:{port}/x");
    let s = deliver_due(&h, 1_000, &opts(&[("HOOK_URL", &url)])).await;
    assert_eq!((s.delivered, s.retrying), (0, 1));
    let d = &h.undelivered(None, 10).unwrap()[0];
    let error = d.last_error.as_deref().unwrap();
    assert!(error.starts_with(&format!("POST to $HOOK_URL (127.0.0.1:{port}): cannot connect: ")), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 1));
    assert!((1_000 + 4_000..=1_000 + 6_000 + 1_000).contains(&d.next_ms), "5 s ± 20%: {}", d.next_ms);
    assert_eq!(s.errors, vec![("webhook", error.to_owned())]);
}

#[tokio::test]
async fn a_500_then_a_200_is_delivered_on_the_second_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Status(500), Answer::Status(200)]).await;
    let h = queued(dir.path(), &[slack("SLACK_URL")]);
    let url = format!("http://{}/services/x", r.addr);
    let o = opts(&[("SLACK_URL", &url)]);
    let s = deliver_due(&h, 0, &o).await;
    let error = format!("POST to $SLACK_URL ({}): HTTP 500 (no_service)", r.addr);
    assert_eq!((s.retrying, s.errors.clone()), (1, vec![("slack", error.clone())]));
    assert!(deliver_due(&h, 3_000, &o).await.is_empty(), "not due before its retry time");
    let next = h.next_due().unwrap().unwrap();
    let s = deliver_due(&h, next, &o).await;
    assert_eq!((s.delivered, s.undelivered()), (1, 0));
    let d = &h.deliveries_of_run("20261128T1203-ab12").unwrap()[0];
    assert_eq!((d.state, d.attempts, d.last_error.as_deref()), (DeliveryState::Delivered, 2, None));
    assert_eq!(r.got.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_slow_receiver_times_out_at_the_timeout_and_is_kept_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Sleep(Duration::from_secs(30))]).await;
    let h = queued(dir.path(), &[webhook("HOOK_URL", None)]);
    let url = format!("http://{}/", r.addr);
    let mut o = opts(&[("HOOK_URL", &url)]);
    o.timeout = Duration::from_millis(300);
    let t = Instant::now();
    let s = deliver_due(&h, 0, &o).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let error = format!("POST to $HOOK_URL ({}): timed out after 0.3s", r.addr);
    assert_eq!(s.errors, vec![("webhook", error.clone())]);
    let d = &h.undelivered(None, 10).unwrap()[0];
    assert_eq!((d.state, d.attempts, d.last_error.clone()), (DeliveryState::Pending, 1, Some(error)));
}

#[tokio::test]
async fn the_budget_bounds_the_whole_call_and_leaves_the_rest_due() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Sleep(Duration::from_secs(30))]).await;
    let h = History::open(&dir.path().join("state")).unwrap();
    for i in 0..3 {
        h.enqueue(&note(), &[webhook("HOOK_URL", None)], dir.path(), &format!("run {i}"), 0).unwrap();
    }
    let url = format!("http://{}/", r.addr);
    let mut o = opts(&[("HOOK_URL", &url)]);
    (o.timeout, o.budget, o.concurrency) = (Duration::from_secs(10), Some(Duration::from_millis(400)), 2);
    let t = Instant::now();
    let s = deliver_due(&h, 0, &o).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!((s.retrying, s.not_attempted, s.undelivered()), (2, 1, 3), "{s:?}");
    assert!(s.errors.iter().all(|(_, e)| e.ends_with("timed out after 0.4s")), "{s:?}");
    assert_eq!(h.due(0, 10).unwrap().len(), 1, "the one not attempted is still due");
    assert_eq!(h.undelivered(None, 10).unwrap().len(), 3, "none lost");
}

#[tokio::test]
async fn secrets_in_the_url_or_headers_never_reach_the_recorded_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Status(500)]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = queued(
        dir.path(),
        &[slack("DOWN_URL"), webhook("HOOK_URL", Some("HDRS")), webhook("BAD_HDRS_URL", Some("BAD"))],
    );
    let down = format!("http://127.0.0.1:{port}/services/T0SECRETT/B0SECRETB/XXsecretXX?token=qsecretq");
    let up = format!("http://user:pwsecret@{}/hooks/TOKsecretTOK?sig=qsecret2", r.addr);
    let env = [
        ("DOWN_URL", down.as_str()),
        ("HOOK_URL", up.as_str()),
        ("HDRS", "Authorization: Bearer hdrsecret"),
        ("BAD_HDRS_URL", up.as_str()),
        ("BAD", "X-Ok: fine\nBearer badsecret"),
    ];
    let s = deliver_due(&h, 0, &opts(&env)).await;
    assert_eq!(s.retrying, 3);
    let errors: Vec<String> = h.undelivered(None, 10).unwrap().iter().filter_map(|d| d.last_error.clone()).collect();
    assert_eq!(errors.len(), 3);
    for e in errors.iter().chain(s.errors.iter().map(|(_, e)| e)) {
        assert!(!e.to_lowercase().contains("secret"), "a secret leaked: {e}");
        assert!(!e.contains("services") && !e.contains("hooks/") && !e.contains("token"), "a path leaked: {e}");
    }
    assert!(errors.contains(&format!("POST to $HOOK_URL ({}): HTTP 500", r.addr)), "{errors:?}");
    let hangup = receiver(vec![Answer::Hangup]).await;
    let h = History::open(&dir.path().join("state2")).unwrap();
    h.enqueue(&note(), &[webhook("HOOK_URL", None)], dir.path(), "run 1", 0).unwrap();
    let url = format!("http://{}/hooks/TOKsecretTOK?sig=qsecret2", hangup.addr);
    let s = deliver_due(&h, 0, &opts(&[("HOOK_URL", &url)])).await;
    let e = &s.errors[0].1;
    assert!(e.starts_with(&format!("POST to $HOOK_URL ({}): ", hangup.addr)), "{e}");
    assert!(!e.contains("secret") && !e.contains("hooks/"), "a secret leaked: {e}");
    assert!(errors.contains(&"line 2 of $BAD: no `:` (expected one `Name: value` per line)".to_owned()), "{errors:?}");
}

#[tokio::test]
async fn a_missing_variable_is_a_failed_attempt_naming_it_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let h = queued(dir.path(), &[slack("SLACK_URL")]);
    let s = deliver_due(&h, 0, &opts(&[])).await;
    assert_eq!(
        s.errors,
        vec![(
            "slack",
            "$SLACK_URL is not set in the environment of the process delivering notifications (`dagrun run`, the daemon)"
                .to_owned()
        )]
    );
    assert_eq!((s.retrying, h.undelivered(None, 10).unwrap()[0].state), (1, DeliveryState::Pending));
}

#[tokio::test]
async fn after_the_last_attempt_a_delivery_is_given_up_and_stays_listed() {
    let dir = tempfile::tempdir().unwrap();
    let h = queued(dir.path(), &[slack("SLACK_URL")]);
    let o = opts(&[]);
    for i in 1..=MAX_ATTEMPTS {
        let now = h.next_due().unwrap().expect("still pending");
        let s = deliver_due(&h, now, &o).await;
        assert_eq!((s.retrying, s.gave_up), if i < MAX_ATTEMPTS { (1, 0) } else { (0, 1) }, "attempt {i}");
    }
    assert_eq!(h.next_due().unwrap(), None);
    let d = &h.undelivered(None, 10).unwrap()[0];
    assert_eq!((d.state, d.attempts), (DeliveryState::Failed, MAX_ATTEMPTS));
}

#[tokio::test]
async fn a_command_gets_the_json_on_stdin_and_its_env_and_fails_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let ok = command("cat > got.json && echo \"$DAGRUN_EVENT $DAGRUN_WORKFLOW $DAGRUN_RUN_ID\" > env.txt");
    let failing = command("echo 'pager: no route to oncall' >&2; echo more >&2; exit 3");
    let h = queued(dir.path(), &[ok, failing]);
    let s = deliver_due(&h, 0, &opts(&[])).await;
    assert_eq!((s.delivered, s.retrying), (1, 1), "{s:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join("got.json")).unwrap(), webhook_body(&note()));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("env.txt")).unwrap(),
        "model_deployed self-heal 20261128T1203-ab12\n"
    );
    assert_eq!(
        s.errors[0].1,
        "command `echo 'pager: no route to oncall' >&2; echo more >&2; exit 3` exited with status 3: \
         pager: no route to oncall"
    );
}

#[tokio::test]
async fn a_hanging_command_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = queued(dir.path(), &[command("sleep 30 & sleep 30")]);
    let mut o = opts(&[]);
    o.timeout = Duration::from_millis(300);
    let t = Instant::now();
    let s = deliver_due(&h, 0, &o).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(s.errors, vec![("command", "command `sleep 30 & sleep 30` timed out after 0.3s".to_owned())]);
}

#[tokio::test]
async fn rows_are_delivered_concurrently_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Sleep(Duration::from_millis(300))]).await;
    let h = History::open(&dir.path().join("state")).unwrap();
    for i in 0..16 {
        h.enqueue(&note(), &[webhook("HOOK_URL", None)], dir.path(), &format!("run {i}"), 0).unwrap();
    }
    let url = format!("http://{}/", r.addr);
    let mut o = opts(&[("HOOK_URL", &url)]);
    o.timeout = Duration::from_secs(5);
    let t = Instant::now();
    let s = deliver_due(&h, 0, &o).await;
    assert_eq!(s.delivered, 16, "{s:?}");
    // 8 at a time: two rounds of 300 ms, not sixteen.
    assert!(t.elapsed() < Duration::from_millis(2_000), "{:?}", t.elapsed());
}

#[tokio::test]
async fn the_loop_delivers_when_woken_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![Answer::Status(200)]).await;
    let h = Arc::new(History::open(&dir.path().join("state")).unwrap());
    let url = format!("http://{}/", r.addr);
    let wake = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let seen = rounds.clone();
    let task = tokio::spawn(run_loop(
        h.clone(),
        opts(&[("HOOK_URL", &url)]),
        wake.clone(),
        stop_rx,
        || 0,
        move |s| seen.lock().unwrap().push(s.delivered),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.enqueue(&note(), &[webhook("HOOK_URL", None)], dir.path(), "run 1", 0).unwrap();
    wake.notify_one();
    let t = Instant::now();
    while rounds.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "not delivered after a wake-up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*rounds.lock().unwrap(), vec![1]);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task).await.expect("the loop stops").unwrap();
}
