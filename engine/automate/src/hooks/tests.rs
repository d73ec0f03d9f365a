//! Tests of the webhook server: a real server on 127.0.0.1:0, a recording sink, and reqwest or a
//! raw TCP stream as the client.

mod limits;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Answer, Delivery, HookLog, Route, Routes, ServeOptions, Sink, serve_with};

const TOKEN: &str = "s3cret-token";
/// Generous: no test waits this long unless something is broken.
const PATIENCE: Duration = Duration::from_secs(30);

/// Holds `deliver` until the test says so, telling it when a delivery arrived.
struct Gate {
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

#[derive(Default)]
struct TestSink {
    deliveries: Mutex<Vec<Delivery>>,
    logs: Mutex<Vec<HookLog>>,
    wakes: AtomicUsize,
    unavailable: AtomicBool,
    panics: AtomicBool,
    gate: Mutex<Option<Gate>>,
}

impl Sink for TestSink {
    fn deliver(&self, d: Delivery) -> Answer {
        if let Some(gate) = &*self.gate.lock().unwrap() {
            gate.entered.send(()).unwrap();
            gate.release.recv().unwrap();
        }
        if self.panics.load(Ordering::SeqCst) {
            panic!("test sink panics on purpose");
        }
        if self.unavailable.load(Ordering::SeqCst) {
            return Answer::Unavailable("event log: disk full".into());
        }
        let mut all = self.deliveries.lock().unwrap();
        let seen = d.delivery_id.as_ref().and_then(|id| all.iter().position(|x| x.delivery_id.as_ref() == Some(id)));
        if let Some(i) = seen {
            return Answer::Duplicate { event: i as i64 + 1 };
        }
        all.push(d);
        Answer::Accepted { event: all.len() as i64 }
    }

    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }

    fn log(&self, line: HookLog) {
        self.logs.lock().unwrap().push(line);
    }
}

impl TestSink {
    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    fn logs(&self) -> Vec<HookLog> {
        self.logs.lock().unwrap().clone()
    }

    /// Makes `deliver` wait; returns "a delivery entered" and "release it".
    fn gate(&self) -> (tokio::sync::mpsc::UnboundedReceiver<()>, std::sync::mpsc::Sender<()>) {
        let (entered, entered_rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release) = std::sync::mpsc::channel();
        *self.gate.lock().unwrap() = Some(Gate { entered, release });
        (entered_rx, release_tx)
    }
}

fn route(workflow: &str, name: &str, token_env: &str, token: Option<&str>) -> Route {
    Route { workflow: workflow.into(), name: name.into(), token_env: token_env.into(), token: token.map(Into::into) }
}

struct Server {
    addr: SocketAddr,
    sink: Arc<TestSink>,
    routes: Routes,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(options: ServeOptions) -> Server {
        let routes: Routes = Arc::new(RwLock::new(vec![
            route("retrain", "new-data", "NEW_DATA_TOKEN", Some(TOKEN)),
            route("retrain", "manual", "MANUAL_TOKEN", None),
            route("drift", "check", "CHECK_TOKEN", Some("other")),
        ]));
        let sink = Arc::new(TestSink::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_with(listener, routes.clone(), sink.clone(), shutdown, options));
        Server { addr, sink, routes, stop: Some(stop), task }
    }

    async fn default() -> Server {
        Server::start(ServeOptions::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hook(&self, path: &str) -> reqwest::RequestBuilder {
        client().post(self.url(path)).bearer_auth(TOKEN)
    }

    /// Signals shutdown and waits for `serve` to return.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.task).await.unwrap().unwrap().unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(PATIENCE).build().unwrap()
}

/// The status and JSON body of a response, checking its content type.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_type.as_deref(), Some("application/json"), "status {status}");
    (status, response.json().await.unwrap())
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    answer(request.send().await.unwrap()).await
}

/// Writes `request` on a new connection and reads until the server closes it.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_all(&mut stream).await
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await.unwrap().unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn refused(sink: &TestSink) -> Vec<(u16, String)> {
    sink.logs()
        .into_iter()
        .filter_map(|l| match l {
            HookLog::Refused { status, why, .. } => Some((status, why)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn accepts_an_authenticated_hook_and_records_it() {
    let server = Server::default().await;
    let body = r#"{"partition": "2024-01-31", "reason": "new data landed", "repository": {"id": 1}}"#;
    let request = server.hook("/hooks/retrain/new-data").header("X-GitHub-Delivery", " 72d3162e-cc78 ").body(body);
    assert_eq!(send(request).await, (202, json!({"status": "accepted", "event": 1})));
    let expected = Delivery {
        workflow: "retrain".into(),
        name: "new-data".into(),
        delivery_id: Some("72d3162e-cc78".into()),
        body_digest: blake3::hash(body.as_bytes()).to_hex().to_string(),
        partition: Some("2024-01-31".into()),
        reason: Some("new data landed".into()),
    };
    assert_eq!(server.sink.deliveries(), vec![expected]);
    assert!(matches!(&server.sink.logs()[..], [HookLog::Delivered { event: 1, duplicate: false, .. }]));
    server.stop().await;
}

#[tokio::test]
async fn accepts_the_token_header_and_an_empty_body() {
    let server = Server::default().await;
    let request = client().post(server.url("/hooks/retrain/new-data")).header("X-Dagrun-Token", TOKEN);
    assert_eq!(send(request).await, (202, json!({"status": "accepted", "event": 1})));
    let gitlab = client().post(server.url("/hooks/retrain/new-data")).header("X-Gitlab-Token", TOKEN).body("  \n");
    assert_eq!(send(gitlab).await, (202, json!({"status": "accepted", "event": 2})));
    let d = &server.sink.deliveries()[0];
    assert_eq!((d.delivery_id.as_deref(), d.partition.as_deref(), d.reason.as_deref()), (None, None, None));
    assert_eq!(d.body_digest, blake3::hash(b"").to_hex().to_string());
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_delivery_id_is_a_duplicate() {
    let server = Server::default().await;
    let first = server.hook("/hooks/retrain/new-data").header("Idempotency-Key", "k-1");
    assert_eq!(send(first).await, (202, json!({"status": "accepted", "event": 1})));
    let again = server.hook("/hooks/retrain/new-data").header("Idempotency-Key", "k-1").body("{}");
    assert_eq!(send(again).await, (200, json!({"status": "duplicate", "event": 1})));
    assert_eq!(server.sink.deliveries().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_first_delivery_header_wins_and_bad_ids_are_refused() {
    let server = Server::default().await;
    let request = server
        .hook("/hooks/retrain/new-data")
        .header("Idempotency-Key", "last")
        .header("X-Gitlab-Event-UUID", "third")
        .header("X-Delivery-Id", "first");
    assert_eq!(send(request).await.0, 202);
    assert_eq!(server.sink.deliveries()[0].delivery_id.as_deref(), Some("first"));
    for bad in ["x".repeat(201), "a\tb".into(), "   ".into(), "caf\u{e9}".into()] {
        let value = reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap();
        let (status, body) = send(server.hook("/hooks/retrain/new-data").header("X-Delivery-Id", value)).await;
        assert_eq!(status, 400, "{bad:?}");
        assert!(body["error"].as_str().unwrap().contains("x-delivery-id"), "{body}");
    }
    let longest = "y".repeat(200);
    assert_eq!(send(server.hook("/hooks/retrain/new-data").header("X-Delivery-Id", &longest)).await.0, 202);
    assert_eq!(server.sink.deliveries().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_hook_is_404_naming_the_known_ones() {
    let server = Server::default().await;
    let (status, body) = send(server.hook("/hooks/retrain/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(body["known_hooks"], json!(["manual", "new-data"]));
    assert!(body["error"].as_str().unwrap().contains("its webhooks: manual, new-data"), "{body}");
    let (status, body) = send(server.hook("/hooks/elsewhere/new-data")).await;
    assert_eq!((status, &body["known_hooks"]), (404, &json!([])));
    assert!(body["error"].as_str().unwrap().contains("no webhooks"), "{body}");
    assert!(server.sink.deliveries().is_empty());
    assert_eq!(refused(&server.sink).len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_logged_without_the_token() {
    let server = Server::default().await;
    let url = server.url("/hooks/retrain/new-data");
    let attempts = [
        client().post(&url),
        client().post(&url).bearer_auth("wrong-guess"),
        client().post(&url).header("X-Dagrun-Token", "wrong-guess"),
        client().post(&url).basic_auth("user", Some(TOKEN)),
        client().post(&url).bearer_auth(format!("{TOKEN}x")),
        // The token of another hook does not open this one.
        client().post(&url).bearer_auth("other"),
    ];
    for request in attempts {
        let response = request.send().await.unwrap();
        assert_eq!(response.headers().get("www-authenticate").unwrap(), "Bearer");
        let (status, body) = answer(response).await;
        assert_eq!((status, &body["status"]), (401, &json!("error")));
    }
    assert!(server.sink.deliveries().is_empty());
    let logs = server.sink.logs();
    assert_eq!(logs.len(), 6);
    for line in &logs {
        assert!(matches!(line, HookLog::Refused { status: 401, .. }), "{line:?}");
        let printed = format!("{line} {line:?}");
        assert!(!printed.contains("wrong-guess") && !printed.contains(TOKEN), "{printed}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_hook_without_its_token_variable_is_disabled() {
    let server = Server::default().await;
    let (status, body) = send(server.hook("/hooks/retrain/manual")).await;
    assert_eq!(status, 503);
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("disabled") && why.contains("`MANUAL_TOKEN`"), "{why}");
    assert_eq!(refused(&server.sink), vec![(503, why.to_string())]);
    assert!(server.sink.deliveries().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn bodies_other_than_empty_or_an_object_are_400() {
    let server = Server::default().await;
    let cases = [
        ("{\"partition\": \n  \"x\",,}", "line 2 column"),
        ("[1, 2]", "not an array"),
        ("42", "not a number"),
        ("\"text\"", "not a string"),
        ("payload=%7B%7D", "not valid JSON"),
        ("{\"partition\": 20240131}", "`partition` must be a string, not a number"),
        ("{\"reason\": [\"x\"]}", "`reason` must be a string, not an array"),
        ("{\"partition\": \"a\"} trailing", "trailing characters"),
    ];
    for (body, expected) in cases {
        let (status, answer) = send(server.hook("/hooks/retrain/new-data").body(body)).await;
        assert_eq!(status, 400, "{body}");
        let why = answer["error"].as_str().unwrap();
        assert!(why.contains(expected), "{body}: {why}");
    }
    let (_, answer) = send(server.hook("/hooks/retrain/new-data").body("{\n  \"a\": tru }")).await;
    assert_eq!((&answer["line"], &answer["column"]), (&json!(2), &json!(11)));
    assert!(server.sink.deliveries().is_empty());
    assert_eq!(refused(&server.sink).len(), cases.len() + 1);
    server.stop().await;
}

#[tokio::test]
async fn foreign_payloads_are_accepted_and_null_fields_are_absent() {
    let server = Server::default().await;
    let github = json!({"ref": "refs/heads/main", "commits": [{"id": "abc"}], "sender": {"login": "x"}});
    assert_eq!(send(server.hook("/hooks/retrain/new-data").json(&github)).await.0, 202);
    let nulls = json!({"partition": null, "reason": null, "object_kind": "push"});
    assert_eq!(send(server.hook("/hooks/retrain/new-data").json(&nulls)).await.0, 202);
    let all = server.sink.deliveries();
    assert!(all.iter().all(|d| d.partition.is_none() && d.reason.is_none()));
    server.stop().await;
}

#[tokio::test]
async fn wake_health_and_unknown_endpoints() {
    let server = Server::default().await;
    let response = client().post(server.url("/v1/wake")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(server.sink.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(send(client().get(server.url("/v1/health"))).await, (200, json!({"status": "ok"})));
    for (request, status) in [
        (client().get(server.url("/v1/wake")), 405),
        (client().get(server.url("/hooks/retrain/new-data")), 405),
        (client().post(server.url("/v1/health")), 405),
        (client().get(server.url("/nope")), 404),
        (client().post(server.url("/hooks/retrain")), 404),
        (client().post(server.url("/hooks/retrain/new-data/extra")), 404),
    ] {
        let (got, body) = send(request).await;
        assert_eq!((got, &body["status"]), (status, &json!("error")));
    }
    assert!(server.sink.deliveries().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn an_unavailable_or_failing_sink_is_503_or_500() {
    let server = Server::default().await;
    server.sink.unavailable.store(true, Ordering::SeqCst);
    let (status, body) = send(server.hook("/hooks/retrain/new-data")).await;
    assert_eq!(status, 503);
    assert!(body["error"].as_str().unwrap().contains("disk full"), "{body}");
    server.sink.panics.store(true, Ordering::SeqCst);
    assert_eq!(send(server.hook("/hooks/retrain/new-data")).await.0, 500);
    // The server survives it.
    assert_eq!(send(client().get(server.url("/v1/health"))).await.0, 200);
    assert_eq!(refused(&server.sink).iter().map(|r| r.0).collect::<Vec<_>>(), vec![503, 500]);
    server.stop().await;
}

#[tokio::test]
async fn reloaded_routes_take_effect_at_once() {
    let server = Server::default().await;
    assert_eq!(send(client().post(server.url("/hooks/drift/check")).bearer_auth("other")).await.0, 202);
    *server.routes.write().unwrap() = vec![route("drift", "check", "CHECK_TOKEN", Some("rotated"))];
    assert_eq!(send(client().post(server.url("/hooks/drift/check")).bearer_auth("other")).await.0, 401);
    assert_eq!(send(client().post(server.url("/hooks/drift/check")).bearer_auth("rotated")).await.0, 202);
    assert_eq!(send(server.hook("/hooks/retrain/new-data")).await.0, 404);
    server.stop().await;
}
