//! The model registry on S3 end to end, against a real SeaweedFS (`DAGRUN_WEED`; without it the
//! tests print SKIPPED and pass): a retrain workflow whose gate and deploy name
//! `s3://models/team` deploys, refuses a worse model, loses a race cleanly; `dagrun models
//! list|rollback` on the URL; `dagrun serve` following the remote; a tampered version and an
//! unreachable registry. Each "machine" is its own directory and state directory.
//!
//! Needs ONNX Runtime and the wasm32-wasip2 target (as tests/heal.rs).

mod common;
mod serve_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::s3::Seaweed;
use common::serve::add_version;
use dagrun_remote::{RemoteRegistry, RemoteUrl, connect_with};
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use serde_json::Value;
use serve_support::{answers_with, model8, rt};

const URL: &str = "s3://models/team";

fn plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins").canonicalize().unwrap()
}

/// Generate → train (`trees` × `depth`, `seed`) → evaluate against the champion in `registry`
/// → deploy into it.
fn workflow(registry: &str, trees: u32, depth: u32, seed: u32) -> String {
    let p = plugins().display().to_string();
    format!(
        r#"Workflow(name: "retrain", tasks: [
    Task(name: "train-data", kind: Wasm(plugin: "{p}/generate"),
         params: {{"rows": 4000, "features": 10, "seed": 1, "date": "2025-03-01", "noise": 1.0}},
         outputs: {{"data": "out/train.csv"}}),
    Task(name: "test-data", kind: Wasm(plugin: "{p}/generate"),
         params: {{"rows": 2000, "features": 10, "seed": 2, "date": "2025-03-02", "noise": 1.0}},
         outputs: {{"data": "out/test.csv"}}),
    Task(name: "train", kind: Wasm(plugin: "{p}/train"), inputs: {{"data": Output("train-data", "data")}},
         params: {{"model": "gbdt", "label": "label", "trees": {trees}, "depth": {depth}, "seed": {seed}}},
         outputs: {{"model": "out/model.onnx", "metrics": "out/train-metrics.json"}}),
    Task(name: "evaluate", kind: OnnxEval(model: "model", data: "test", label: "label",
         gate: Gate(min: {{"accuracy": 0.5}}, champion: Champion(registry: "{registry}", name: "churn", metric: "accuracy", margin: 0.0))),
         inputs: {{"model": Output("train", "model"), "test": Output("test-data", "data")}},
         outputs: {{"metrics": "out/metrics.json", "verdict": "out/verdict.json"}}),
    Task(name: "deploy", kind: Wasm(plugin: "{p}/deploy", mounts: {{"registry": (path: "{registry}", writable: true)}}),
         inputs: {{"model": Output("train", "model"), "verdict": Output("evaluate", "verdict"), "reference": Output("train-data", "data")}},
         params: {{"name": "churn"}}, outputs: {{"receipt": "out/receipt.json"}}),
])"#
    )
}

/// A weak model (one stump) and two better ones (different seeds: different bytes).
const WEAK: (u32, u32, u32) = (1, 1, 7);
const STRONG_A: (u32, u32, u32) = (40, 4, 7);
const STRONG_B: (u32, u32, u32) = (40, 4, 8);

/// One machine: a workflow directory with its own state directory.
struct Machine<'a> {
    dir: tempfile::TempDir,
    server: &'a Seaweed,
}

impl<'a> Machine<'a> {
    fn new(server: &'a Seaweed) -> Machine<'a> {
        Machine { dir: tempfile::tempdir().unwrap(), server }
    }

    fn write(&self, (trees, depth, seed): (u32, u32, u32)) {
        std::fs::write(self.dir.path().join("wf.ron"), workflow(URL, trees, depth, seed)).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::dagrun_for_plugins();
        c.args(args).current_dir(self.dir.path()).env("NO_COLOR", "1").env_remove("DAGRUN_STATE_DIR");
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        self.server.apply(&mut c);
        c
    }

    fn dagrun(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `dagrun run wf.ron --json`: (exit code, task → (status, error)).
    fn run(&self) -> Run {
        Run::of(self.dagrun(&["run", "wf.ron", "--json"]))
    }

    fn blake3(&self, p: &str) -> String {
        blake3::hash(&std::fs::read(self.dir.path().join(p)).unwrap()).to_hex().to_string()
    }
}

struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Run {
    fn of(out: Output) -> Run {
        let events =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        Run { code: out.status.code().unwrap_or(-1), events, stderr: common::stderr(&out) }
    }

    fn task(&self, name: &str) -> (String, String) {
        let e = self
            .events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["task"] == name)
            .unwrap_or_else(|| panic!("no task_finished for {name}: {:?}\n{}", self.events, self.stderr));
        (e["status"].as_str().unwrap().to_owned(), e["error"].as_str().unwrap_or_default().to_owned())
    }
}

/// The raw object store, to look at (and tamper with) what the server holds.
struct Server<'a>(&'a Seaweed);

impl Server<'_> {
    fn store(&self) -> Arc<dyn object_store::ObjectStore> {
        connect_with(&URL.parse().unwrap(), &self.0.env()).unwrap().store
    }

    fn get(&self, rel: &str) -> Option<Vec<u8>> {
        let store = self.store();
        rt().block_on(async move {
            match store.get(&Key::from(format!("team/{rel}"))).await {
                Ok(g) => Some(g.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("{rel}: {e}"),
            }
        })
    }

    fn put(&self, rel: &str, bytes: Vec<u8>) {
        let store = self.store();
        rt().block_on(async move { store.put(&Key::from(format!("team/{rel}")), bytes.into()).await.unwrap() });
    }

    fn current(&self) -> Option<String> {
        self.get("churn/current").map(|b| String::from_utf8(b).unwrap().trim().to_owned())
    }

    fn digest(&self, version: &str) -> String {
        blake3::hash(&self.get(&format!("churn/{version}/model.onnx")).unwrap()).to_hex().to_string()
    }

    fn recorded_digest(&self, version: &str) -> String {
        let meta: Value =
            serde_json::from_slice(&self.get(&format!("churn/{version}/metadata.json")).unwrap()).unwrap();
        meta["digest"].as_str().unwrap().to_owned()
    }
}

/// v0001 (weak) is deployed, a better model becomes v0002 on the server, a worse one is
/// refused and `current` stays; `models list` shows the remote, `models rollback` moves it back
/// with a conditional write and refuses a version whose bytes were tampered with.
#[test]
fn deploys_refuses_lists_and_rolls_back_on_s3() {
    let Some(server) = Seaweed::start("s3 registry deploys", &["models"]) else { return };
    let s3 = Server(&server);
    let a = Machine::new(&server);
    a.write(WEAK);
    let r = a.run();
    assert_eq!((r.code, r.task("deploy").0.as_str()), (0, "succeeded"), "{}", r.stderr);
    assert_eq!(s3.current().as_deref(), Some("v0001"));
    assert_eq!(s3.recorded_digest("v0001"), a.blake3("out/model.onnx"));
    assert_eq!(s3.digest("v0001"), a.blake3("out/model.onnx"));

    a.write(STRONG_A);
    let r = a.run();
    assert_eq!((r.code, r.task("deploy").0.as_str()), (0, "succeeded"), "{}", r.stderr);
    assert_eq!(s3.current().as_deref(), Some("v0002"), "current moved on the server");
    assert_eq!(s3.digest("v0002"), a.blake3("out/model.onnx"));

    a.write(WEAK);
    let r = a.run();
    assert_eq!((r.code, r.task("evaluate").0.as_str()), (4, "refused"), "{}", r.stderr);
    assert_eq!(s3.current().as_deref(), Some("v0002"), "a refused model moves nothing");

    let list = a.dagrun(&["models", "list", "--registry", URL]);
    assert_eq!(common::stdout(&list).trim(), "churn: v0001 *v0002", "{}", common::stderr(&list));

    let back = a.dagrun(&["models", "rollback", "churn", "--registry", URL]);
    assert_eq!(back.status.code(), Some(0), "{}", common::stderr(&back));
    assert!(common::stdout(&back).contains("churn: current is now v0001 (published to s3://models/team)"));
    assert_eq!(s3.current().as_deref(), Some("v0001"));

    // Tampered on the server: never mirrored, so it cannot be made current.
    let mut bytes = s3.get("churn/v0002/model.onnx").unwrap();
    bytes[100] ^= 0x55;
    s3.put("churn/v0002/model.onnx", bytes);
    let refused = a.dagrun(&["models", "rollback", "churn", "--to", "v0002", "--registry", URL]);
    assert_eq!(refused.status.code(), Some(2), "{}", common::stderr(&refused));
    let err = common::stderr(&refused);
    assert!(err.contains("`churn` v0002 is not usable on the remote") && err.contains("its metadata records"), "{err}");
    assert_eq!(s3.current().as_deref(), Some("v0001"));
}

/// Two machines, each with a better model than the champion, deploy at once: exactly one
/// wins, the other's deploy fails saying it lost and what is current; `current` names the
/// winner, whose version files are intact.
#[test]
fn two_deploys_racing_one_wins_and_nothing_is_overwritten() {
    let Some(server) = Seaweed::start("s3 registry race", &["models"]) else { return };
    let s3 = Server(&server);
    let first = Machine::new(&server);
    first.write(WEAK);
    assert_eq!(first.run().code, 0);
    assert_eq!(s3.current().as_deref(), Some("v0001"));

    let (b, c) = (Machine::new(&server), Machine::new(&server));
    b.write(STRONG_A);
    c.write(STRONG_B);
    let started = Instant::now();
    let (pb, pc) =
        (b.cmd(&["run", "wf.ron", "--json"]).spawn().unwrap(), c.cmd(&["run", "wf.ron", "--json"]).spawn().unwrap());
    let (rb, rc) = (Run::of(pb.wait_with_output().unwrap()), Run::of(pc.wait_with_output().unwrap()));
    assert!(started.elapsed() < Duration::from_secs(600));
    let ((winner, won), (loser, lost)) = match (rb.code, rc.code) {
        (0, 1) => ((&b, &rb), (&c, &rc)),
        (1, 0) => ((&c, &rc), (&b, &rb)),
        codes => panic!("exactly one deploy must win: {codes:?}\n{}\n{}", rb.stderr, rc.stderr),
    };
    assert_eq!(won.task("deploy").0, "succeeded");
    let (status, error) = lost.task("deploy");
    assert_eq!(status, "failed");
    assert!(
        // The winner may not have moved `current` yet when the loser re-synced: v0001 or v0002.
        error.contains("another deploy changed `churn` first (current there is now v000")
            && error.contains("did not happen")
            && error.contains("run the workflow again"),
        "{error}"
    );
    assert_eq!(s3.current().as_deref(), Some("v0002"));
    assert_eq!(s3.recorded_digest("v0002"), winner.blake3("out/model.onnx"));
    assert_eq!(s3.digest("v0002"), winner.blake3("out/model.onnx"), "the winner's files are intact");
    assert_ne!(loser.blake3("out/model.onnx"), winner.blake3("out/model.onnx"));
    assert_eq!(s3.get("churn/v0003/metadata.json"), None, "the loser published no version");

    // The loser's mirror was re-synced: running again compares with the new champion.
    let again = loser.run();
    assert_ne!(again.task("evaluate").0, "failed", "{}", again.stderr);
    let list = loser.dagrun(&["models", "list", "--registry", URL]);
    let shown = common::stdout(&list);
    assert!(shown.starts_with("churn: v0001 "), "{shown}");
}

/// A registry that cannot be reached fails the tasks that need it, naming the fix; so do
/// `dagrun models` commands. A bad URL in a workflow is a span error.
#[test]
fn an_unreachable_registry_fails_with_the_fix_named() {
    let Some(server) = Seaweed::start("s3 registry unreachable", &["models"]) else { return };
    let a = Machine::new(&server);
    std::fs::write(a.dir.path().join("wf.ron"), workflow("s3://no-such-bucket/team", WEAK.0, WEAK.1, WEAK.2)).unwrap();
    let r = a.run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let (status, error) = r.task("evaluate");
    assert_eq!(status, "failed");
    assert!(error.contains("s3://no-such-bucket/team") && error.contains("check that the bucket exists"), "{error}");
    assert_eq!(r.task("deploy").0, "skipped");
    let warned = r.events.iter().any(|e| {
        e["event"] == "warning" && e["message"].as_str().is_some_and(|m| m.contains("s3://no-such-bucket/team"))
    });
    assert!(warned, "the run warns about the registry up front: {:?}", r.events);

    let mut wrong = a.cmd(&["models", "list", "--registry", URL]);
    wrong.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = wrong.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(err.contains("s3://models/team") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert!(!err.contains(common::s3::SECRET) && !err.contains("not-the-secret"), "no secret in messages: {err}");

    std::fs::write(a.dir.path().join("wf.ron"), workflow("s3://Bad_Bucket/x", 1, 1, 1)).unwrap();
    let out = a.dagrun(&["validate", "wf.ron"]);
    assert_eq!(out.status.code(), Some(3));
    let err = common::stderr(&out);
    assert!(err.contains("names registry \"s3://Bad_Bucket/x\"") && err.contains("wf.ron:"), "{err}");
}

/// A machine deploys into a mirror of its own and publishes (as a run's deploy does).
fn deploy_elsewhere(server: &Seaweed, version: &str, model: &[u8], make_current: bool) {
    let url: RemoteUrl = URL.parse().unwrap();
    let state = tempfile::tempdir().unwrap();
    let remote =
        RemoteRegistry::new(connect_with(&url, &server.env()).unwrap(), dagrun_remote::mirror_dir(state.path(), &url));
    rt().block_on(async {
        remote.sync().await.unwrap();
        add_version(remote.mirror(), "churn", version, model);
        if make_current {
            dagrun_contracts::registry::set_current(remote.mirror(), "churn", version).unwrap();
        }
        remote.publish().await.unwrap();
    });
}

/// `dagrun serve --registry s3://...` serves the remote's current model, swaps to a deploy made
/// on another machine, and does not serve a version tampered with on the server.
#[test]
fn serve_follows_the_remote_registry_and_refuses_a_tampered_version() {
    let Some(server) = Seaweed::start("s3 registry serve", &["models"]) else { return };
    let s3 = Server(&server);
    deploy_elsewhere(&server, "v0001", &model8("logreg_binary"), true);
    let serve = RemoteServe::start(&server, &["--remote-poll", "200ms", "--poll", "100ms"]);
    let wait = Duration::from_secs(30);
    serve.wait_for_line("serving churn v0001", wait);
    rt().block_on(answers_with_remote(&serve, "v0001"));

    deploy_elsewhere(&server, "v0002", &model8("gb_binary"), true);
    serve.wait_for_line("serving churn v0002", wait);
    rt().block_on(answers_with_remote(&serve, "v0002"));

    // v0003 published without becoming current, then changed on the server, then made current
    // there by hand: the mirror refuses it and v0002 keeps serving.
    deploy_elsewhere(&server, "v0003", &model8("logreg_binary"), false);
    let mut bytes = s3.get("churn/v0003/model.onnx").unwrap();
    bytes[200] ^= 0x55;
    s3.put("churn/v0003/model.onnx", bytes);
    s3.put("churn/current", b"v0003\n".to_vec());
    let line = serve.wait_for_line("`churn` v0003 is not usable on the remote", wait);
    assert!(line.contains("model.onnx has blake3"), "{line}");
    rt().block_on(answers_with_remote(&serve, "v0002"));
}

async fn answers_with_remote(serve: &RemoteServe, version: &str) {
    answers_with(&serve.0, "churn", version).await;
}

/// `dagrun serve` with the server's environment (`common::serve::Serve` inherits the test's).
struct RemoteServe(common::serve::Serve);

impl RemoteServe {
    fn start(server: &Seaweed, args: &[&str]) -> RemoteServe {
        let mut cmd = Command::new(common::BIN);
        cmd.args(["serve", "--registry", URL, "--addr", "127.0.0.1:0"]).args(args);
        server.apply(&mut cmd);
        RemoteServe(common::serve::Serve::spawn(cmd, Duration::from_secs(60)))
    }

    fn wait_for_line(&self, text: &str, timeout: Duration) -> String {
        self.0.wait_for_line(text, timeout)
    }
}

/// Two machines synced at the same time move `current` one after the other: the second move is
/// made on a stale ETag, so the server refuses it (`If-Match`), the first one's move stays, and
/// the error names what is current; after its re-sync the second machine can move it.
#[test]
fn a_move_of_current_on_a_stale_etag_is_refused() {
    let Some(server) = Seaweed::start("s3 registry if-match", &["models"]) else { return };
    let s3 = Server(&server);
    for (v, fixture) in [("v0001", "logreg_binary"), ("v0002", "gb_binary"), ("v0003", "logreg_binary")] {
        deploy_elsewhere(&server, v, &model8(fixture), v == "v0002");
    }
    assert_eq!(s3.current().as_deref(), Some("v0002"));
    let url: RemoteUrl = URL.parse().unwrap();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let open = |dir: &Path| {
        RemoteRegistry::new(connect_with(&url, &server.env()).unwrap(), dagrun_remote::mirror_dir(dir, &url))
    };
    let (a, b) = (open(sa.path()), open(sb.path()));
    let lost = rt().block_on(async {
        a.sync().await.unwrap();
        b.sync().await.unwrap();
        dagrun_contracts::registry::set_current(a.mirror(), "churn", "v0001").unwrap();
        let moved = a.publish().await.unwrap();
        let shown: Vec<_> = moved.iter().map(|m| (m.from.as_deref(), m.to.as_str())).collect();
        assert_eq!(shown, [(Some("v0002"), "v0001")]);
        dagrun_contracts::registry::set_current(b.mirror(), "churn", "v0003").unwrap();
        b.publish().await.unwrap_err().to_string()
    });
    assert!(lost.contains("another deploy changed `churn` first (current there is now v0001)"), "{lost}");
    assert!(lost.contains("this change (v0003 as current) was not published"), "{lost}");
    assert_eq!(s3.current().as_deref(), Some("v0001"), "the first move stays");
    let reg = dagrun_contracts::registry::read_current(b.mirror(), "churn").unwrap();
    assert_eq!(reg.as_deref(), Some("v0001"), "the mirror was re-synced");
    dagrun_contracts::registry::set_current(b.mirror(), "churn", "v0003").unwrap();
    rt().block_on(b.publish()).unwrap();
    assert_eq!(s3.current().as_deref(), Some("v0003"), "after its re-sync the move goes through");
}
