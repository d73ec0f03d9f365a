//! What the end-to-end tests of the `dagrun` binary share: a temp-dir sandbox and output helpers.
#![allow(dead_code)] // each test binary uses some of these helpers

pub mod s3;
pub mod serve;
pub mod ui;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(workflow: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.ron"), workflow).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The object file of the content digest `hex` in the sandbox's state directory (sharded by
    /// its first hex digit, as a new state directory is).
    pub fn object(&self, hex: &str) -> PathBuf {
        self.path(&format!(".dagrun/objects/{}/{hex}", &hex[..1]))
    }

    pub fn write(&self, p: &str, content: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.dir.path()).env("NO_COLOR", "1").env_remove("DAGRUN_STATE_DIR");
        c.stdin(Stdio::null());
        c
    }

    pub fn dagrun(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `dagrun run wf.ron --json ARGS`: task → status, plus the exit code.
    pub fn run_json(&self, args: &[&str]) -> (BTreeMap<String, String>, Vec<Value>, i32) {
        let mut all = vec!["run", "wf.ron", "--json"];
        all.extend_from_slice(args);
        let out = self.dagrun(&all);
        let events: Vec<Value> = String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        (task_statuses(&events), events, out.status.code().unwrap_or(-1))
    }
}

/// The binary, without the outer `cargo test` settings, for workflows that build plugin crates
/// (nested cargo builds behave as for a user).
pub fn dagrun_for_plugins() -> Command {
    let mut cmd = Command::new(BIN);
    for var in dagrun_wasm::OUTER_CARGO_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// A temp dir holding copies of the repository's `workflows/NAME` files, their `../plugins/`
/// paths made absolute.
pub fn repo_workflows(names: &[&str]) -> tempfile::TempDir {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        let text = std::fs::read_to_string(repo.join("workflows").join(name)).unwrap();
        let text = text.replace("\"../plugins/", &format!("\"{}/plugins/", repo.display()));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Task → final status, from a run's `--json` events.
pub fn task_statuses(events: &[Value]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter(|e| e["event"] == "task_finished")
        .map(|e| (e["task"].as_str().unwrap().to_owned(), e["status"].as_str().unwrap().to_owned()))
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// A request an [`HttpReceiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// A real HTTP/1.1 receiver on 127.0.0.1 that records every request and answers 200.
pub struct HttpReceiver {
    pub addr: std::net::SocketAddr,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl HttpReceiver {
    pub fn start() -> HttpReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    if let Some(r) = read_request(&mut conn) {
                        seen.lock().unwrap().push(r);
                        let _ = std::io::Write::write_all(
                            &mut conn,
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        );
                    }
                });
            }
        });
        HttpReceiver { addr, got }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The bodies received on `path`, parsed as JSON, in arrival order.
    pub fn json(&self, path: &str) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).map(|r| serde_json::from_str(&r.body).unwrap()).collect()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Received> {
    use std::io::Read;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).ok().filter(|n| *n > 0)?;
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
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap_or(0));
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received { path, headers, body: String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string() })
}

/// A pending approval request of workflow `wf` (task `approve`, model `churn`, never expiring)
/// for run `run`, bound to model digest `model`, to put in a history store directly.
pub fn approval_request(run: &str, model: &str) -> dagrun_history::NewApproval {
    dagrun_history::NewApproval {
        binding: dagrun_history::Binding {
            workflow: "wf".into(),
            task: "approve".into(),
            model_digest: model.into(),
            verdict_digest: format!("verdict-of-{model}"),
        },
        workflow_path: "/nowhere/wf.ron".into(),
        partition: None,
        run_id: run.into(),
        registry: "registry".into(),
        model: "churn".into(),
        reasons: vec!["always".into()],
        detail: serde_json::Value::Null,
        requested_ms: 0,
        expires_ms: i64::MAX,
        on_timeout: dagrun_workflow::heal::OnTimeout::Reject,
        sinks: vec![],
        workflow_dir: "/w".into(),
    }
}
