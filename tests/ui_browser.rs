//! `dagrun ui` in a real headless browser: Debian's `chromium` driven by `chromedriver` over the
//! WebDriver HTTP protocol (reqwest, JSON). Runs when `DAGRUN_BROWSER_TESTS=1` (the last stage of
//! scripts/test.sh, which installs both); then a missing chromedriver fails the test. A
//! screenshot of each page goes to `<target dir>/ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ui::Ui;
use common::{Sandbox, stderr};
use dagrun_history::{ApprovalState, History};
use serde_json::{Value, json};

/// A chromedriver process and one headless chromium session, both ended on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian: apt-get install chromium chromium-driver)");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::new(),
            rt,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]}}}});
        let made = b.call("POST", "/session", Some(caps)).expect("a chromium session");
        b.session = made["sessionId"].as_str().expect("a session id").to_owned();
        b
    }

    /// One WebDriver command: its `value`, or the error it answered.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        self.rt.block_on(async {
            let resp = req.timeout(Duration::from_secs(120)).send().await.map_err(|e| e.to_string())?;
            let ok = resp.status().is_success();
            let v: Value = resp.json().await.map_err(|e| e.to_string())?;
            if ok { Ok(v["value"].clone()) } else { Err(v.to_string()) }
        })
    }

    fn session(&self, what: &str, body: Option<Value>) -> Value {
        let method = if body.is_some() { "POST" } else { "GET" };
        self.call(method, &format!("/session/{}{what}", self.session), body).unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    fn open(&self, url: &str) {
        self.session("/url", Some(json!({"url": url})));
    }

    /// The element ids matching a CSS selector.
    fn find(&self, css: &str) -> Vec<String> {
        let found = self.session("/elements", Some(json!({"using": "css selector", "value": css})));
        let ids = found.as_array().cloned().unwrap_or_default();
        ids.iter().filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned)).collect()
    }

    /// Waits (up to 300 s) for an element: a form's POST answers after the decision is made.
    fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while self.find(css).is_empty() {
            let source = self.session("/source", None);
            assert!(Instant::now() < deadline, "no {css} within 300 s on: {source}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).into_iter().next().unwrap_or_else(|| panic!("no element {css}"));
        self.session(&format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css).into_iter().next().unwrap_or_else(|| panic!("no element {css}"));
        self.session(&format!("/element/{id}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.find(css).into_iter().next().unwrap_or_else(|| panic!("no element {css}"));
        self.session(&format!("/element/{id}/click"), Some(json!({})));
    }

    fn screenshot(&self, name: &str) {
        let png = base64(self.session("/screenshot", None).as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `<target dir>/ui-screenshots`: this test executable is `<target>/debug/deps/ui_browser-…`.
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap_or(Path::new(".")).join("ui-screenshots")
}

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    sextets
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |acc, &s| acc << 6 | u32::from(s)) << (6 * (4 - c.len()));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len() * 3 / 4)
        })
        .collect()
}

fn enabled() -> bool {
    if std::env::var("DAGRUN_BROWSER_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: set DAGRUN_BROWSER_TESTS=1 (scripts/test.sh does, after installing chromium)");
    false
}

/// A sandbox with copies of the repository's `workflows/` files and scripts.
fn workflows(names: &[&str]) -> Sandbox {
    let s = Sandbox::new("Workflow(name: \"unused\", tasks: [])");
    let dir = common::repo_workflows(names);
    for n in names {
        std::fs::copy(dir.path().join(n), s.path(n)).unwrap();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows/scripts");
    std::fs::create_dir_all(s.path("scripts")).unwrap();
    for f in std::fs::read_dir(repo).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), s.path("scripts").join(f.file_name())).unwrap();
    }
    s
}

#[test]
fn the_pages_in_a_headless_browser() {
    if !enabled() {
        return;
    }
    let s = workflows(&["backfill.ron", "retrain.ron"]);
    let out = s.dagrun(&["backfill", "backfill.ron", "--from", "2025-01-01", "--to", "2025-03-31"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = History::open(&s.path(".dagrun")).unwrap().runs(None, 1).unwrap().remove(0);
    let ui = Ui::start(&s, &["backfill.ron", "retrain.ron"]);
    let b = Browser::start();
    let base = format!("http://{}", ui.addr);

    // The DAG of retrain.ron: every task of the file is a box.
    b.open(&format!("{base}/workflows/retrain"));
    let text = std::fs::read_to_string(s.path("retrain.ron")).unwrap();
    let tasks: Vec<&str> =
        text.lines().filter_map(|l| l.trim().strip_prefix("name: \"")?.split('"').next()).skip(1).collect();
    assert!(tasks.len() >= 5, "{tasks:?}");
    assert_eq!(b.find("#dag g.task").len(), tasks.len(), "{tasks:?}");
    for t in &tasks {
        assert_eq!(b.find(&format!("#dag g.task[data-task=\"{t}\"]")).len(), 1, "{t}");
    }
    b.screenshot("dag-retrain");

    // The backfill run's page lists its tasks; the grid shows the 90 days.
    b.open(&format!("{base}/runs/{}", run.id));
    assert_eq!(b.find("#tasks tr.task").len(), run.counts.tasks as usize);
    assert!(b.text("#tasks").contains("features@2025-03-31"));
    b.screenshot("run-backfill");
    b.open(&format!("{base}/workflows/backfill/backfill"));
    assert_eq!(b.text("span.count[data-scheme=\"daily\"]"), "90");
    assert_eq!(b.find("table.grid[data-scheme=\"daily\"] tr.partition").len(), 90);
    b.screenshot("backfill-grid");
    b.open(&format!("{base}/workflows/backfill/backfill?from=2025-03-01&to=2025-03-31"));
    assert_eq!(b.text("span.count[data-scheme=\"daily\"]"), "31");

    for page in ["runs", "drift", "payoff"] {
        b.open(&format!("{base}/{page}"));
        b.screenshot(page);
    }
    decide_through_the_page(&s, &b, &base);
}

/// A waiting request on the models page; its reject button records what `dagrun reject` does.
fn decide_through_the_page(s: &Sandbox, b: &Browser, base: &str) {
    let h = History::open(&s.path(".dagrun")).unwrap();
    let mut request = common::approval_request("r-waiting", "bbbbbbbbbbbbbbbb");
    request.binding.workflow = "backfill".into();
    request.workflow_path = s.path("backfill.ron");
    h.ask(&request, 0).unwrap();
    b.open(&format!("{base}/models"));
    assert_eq!(b.find("div.approval[data-run=\"r-waiting\"] form.decide").len(), 1);
    b.screenshot("models");
    b.click("div.approval[data-run=\"r-waiting\"] button.reject");
    b.wait_for("#outcome");
    assert_eq!(b.text("#outcome"), "done");
    b.screenshot("rejected");
    assert_eq!(h.approvals_of_run("r-waiting").unwrap()[0].state, ApprovalState::Rejected);
}

/// The self-heal loop of `workflows/`: the first model deployed by retrain.ron, then a drifted
/// day whose retrained model changes more predictions than a (tightened) 1% limit allows, so
/// its run waits for a person. Approving it on the models page deploys it.
#[test]
fn approving_a_waiting_run_through_the_page_deploys_it() {
    if !enabled() {
        return;
    }
    let s = workflows(&["retrain.ron", "self-heal.ron"]);
    let heal = std::fs::read_to_string(s.path("self-heal.ron")).unwrap();
    assert!(heal.contains("max_label_change: 0.4"), "self-heal.ron changed: adapt this test");
    std::fs::write(s.path("self-heal.ron"), heal.replace("max_label_change: 0.4", "max_label_change: 0.01")).unwrap();
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins").canonicalize().unwrap();
    s.write(
        "landing.ron",
        &format!(
            r#"Workflow(name: "landing", tasks: [Task(name: "d", kind: Wasm(plugin: "{}/generate"), params: {{"rows": 4000, "features": 10, "seed": 1, "date": "2025-03-02", "drift_after": "2025-03-01", "noise": 1.0}}, outputs: {{"data": "landing/2025-03-02.csv"}})])"#,
            plugins.display()
        ),
    );
    let dagrun = |args: &[&str]| {
        let mut cmd = s.cmd(args);
        for var in dagrun_wasm::OUTER_CARGO_ENV {
            cmd.env_remove(var);
        }
        cmd.env("DAGRUN_FSYNC", "0");
        cmd
    };
    for wf in ["retrain.ron", "landing.ron"] {
        let out = dagrun(&["run", wf]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{wf}: {}", stderr(&out));
    }
    let current = || std::fs::read_to_string(s.path("registry/churn/current")).unwrap().trim().to_owned();
    assert_eq!(current(), "v0001");
    let out = dagrun(&["run", "self-heal.ron", "--partition", "2025-03-02"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "the run waits for approval: {}", stderr(&out));
    let h = History::open(&s.path(".dagrun")).unwrap();
    let waiting = h.approvals(None, 10, 0).unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let run = waiting[0].run_id.clone();

    let ui = Ui::spawn(dagrun(&["ui", "self-heal.ron", "retrain.ron", "--addr", "127.0.0.1:0"]));
    let b = Browser::start();
    let base = format!("http://{}", ui.addr);
    b.open(&format!("{base}/runs/{run}"));
    assert!(b.text("#tasks").contains("waiting"));
    b.open(&format!("{base}/models"));
    let form = format!("div.approval[data-run=\"{run}\"]");
    b.type_into(&format!("{form} input[name=\"by\"]"), "ana");
    b.screenshot("models-waiting");
    b.click(&format!("{form} button.approve"));
    b.wait_for("#outcome");
    let said = b.text("pre");
    b.screenshot("approved");
    assert_eq!(b.text("#outcome"), "done", "{said}");
    assert!(said.contains("approved by ana") && said.contains("deployed: churn v0002"), "{said}");
    assert_eq!(current(), "v0002", "approved through the page: deployed");
    let decided = &h.approvals_of_run(&run).unwrap()[0];
    assert_eq!((decided.state, decided.decided_by.as_deref()), (ApprovalState::Approved, Some("ana")));
    b.open(&format!("{base}/workflows/self-heal"));
    assert_eq!(b.find("#dag g.task[data-task=\"deploy\"][data-status=\"succeeded\"]").len(), 1);
    b.screenshot("dag-self-heal");

    // The drifted day per column: the drift check of the deployed churn model, a chart per
    // compared column, the drifted ones marked; the incident below.
    b.open(&format!("{base}/drift"));
    let section = "section.drift[data-workflow=\"self-heal\"][data-task=\"drift\"]";
    let charts = b.find(&format!("{section} figure.drift-column"));
    assert!(charts.len() >= 10, "10 features and region: {}", b.text(section));
    assert!(!b.find(&format!("{section} circle.drifted")).is_empty(), "the drifted day is marked");
    assert!(b.text(section).contains("checks churn"), "{}", b.text(section));
    assert!(b.text("#incidents").contains("churn"), "the incident stays listed");
    b.screenshot("drift-self-heal");
}
