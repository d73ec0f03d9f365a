//! WASM plugins end to end: the real `dagrun` binary runs the test plugins in `tests/plugins/`
//! (built by this test) and a plugin crate made by `dagrun plugin new`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Removes the settings of the outer `cargo test` so nested cargo builds behave as for a user.
fn clean_cargo_env(cmd: &mut Command) -> &mut Command {
    for var in dagrun_wasm::OUTER_CARGO_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Builds every test plugin once (cargo, wasm32-wasip2, release); returns their directory.
fn plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = repo().join("tests/plugins/Cargo.toml");
        let status = clean_cargo_env(Command::new(env!("CARGO")).args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ]))
        .arg(&manifest)
        .status()
        .expect("run cargo");
        assert!(status.success(), "building the test plugins failed (is the wasm32-wasip2 target installed?)");
        repo().join("tests/plugins/target/wasm32-wasip2/release")
    })
}

fn plugin(name: &str) -> String {
    plugins().join(format!("{name}.wasm")).display().to_string()
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(workflow: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.ron"), workflow).unwrap();
        std::fs::write(dir.path().join("data.csv"), "x,y\n1,2\n3.5,4\n").unwrap();
        Sandbox { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        clean_cargo_env(&mut cmd)
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("DAGRUN_PLUGIN_TARGET_DIR", repo().join("tests/plugins/target"))
            .stdin(Stdio::null());
        cmd
    }

    fn dagrun(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs with `--json`: task → finished event, plus every event and the exit code.
    fn run(&self, args: &[&str]) -> (BTreeMap<String, Value>, Vec<Value>, i32) {
        let mut all = vec!["run", "wf.ron", "--json"];
        all.extend_from_slice(args);
        let out = self.dagrun(&all);
        let events: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let finished = events
            .iter()
            .filter(|e| e["event"] == "task_finished")
            .map(|e| (e["task"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        (finished, events, out.status.code().unwrap_or(-1))
    }
}

#[test]
fn a_plugin_runs_and_its_output_is_cached() {
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "p", tasks: [
        Task(name: "copy", kind: Wasm(plugin: "{}"), inputs: {{"data": File("data.csv")}},
             outputs: {{"out": "out/copy.csv"}}, params: {{"factor": 2.0}}),
        Task(name: "count", kind: Command(run: "wc -l < $DAGRUN_IN_C > $DAGRUN_OUT_N"),
             inputs: {{"c": Output("copy", "out")}}, outputs: {{"n": "out/n.txt"}}),
    ])"#,
        plugin("copy")
    ));
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 0, "{tasks:?}");
    assert_eq!(tasks["copy"]["status"], "succeeded");
    assert_eq!(tasks["copy"]["summary"], serde_json::json!({"bytes": 12}));
    assert_eq!(std::fs::read_to_string(s.path("out/copy.csv")).unwrap(), "x,y\n2,4\n7,8\n");
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 0);
    assert!(tasks.values().all(|t| t["status"] == "cached"), "{tasks:?}");
}

/// Every way out of the sandbox is denied, each with its own message, and the run goes on. Each
/// row of the table in docs/plugins.md ("What is denied") is one task here.
#[test]
fn the_sandbox_denies_escapes_and_the_run_goes_on() {
    let escape = plugin("escape");
    let task = |name: &str, attempt: &str, extra: &str| {
        format!(
            r#"Task(name: "{name}", kind: Wasm(plugin: "{escape}", mounts: {{"ro": (path: "ro")}}),
                    params: {{"attempt": "{attempt}"}}, inputs: {{"data": File("data.csv")}}{extra}),
"#
        )
    };
    let out = |name: &str| format!(r#", outputs: {{"out": "out/{name}.txt"}}"#);
    let tasks: String = [
        task("etc-passwd", "read-etc-passwd", ""),
        task("traverse", "traverse", ""),
        task("write-input", "write-input", ""),
        task("write-mount", "write-mount", ""),
        task("list-root", "list-root", ""),
        task("symlink-out", "symlink-out", r#", outputs: {"link": "out/link"}"#),
        task("artifact-dir", "artifact-dir", &out("dir")),
        task("artifact-link", "artifact-link", &out("link")),
        task("env", "env", ""),
    ]
    .concat();
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "escapes", tasks: [
        {tasks}
        Task(name: "net", kind: Wasm(plugin: "{}")),
        Task(name: "fine", kind: Command(run: "echo ok > fine.txt"), outputs: {{"f": "fine.txt"}}),
    ])"#,
        plugin("net"),
    ));
    // A variable only dagrun's own process has: the plugin must not see it (nor any other).
    let unique = format!("DAGRUN_ESCAPE_PROBE_{}", std::process::id());
    let out = s.command(&["run", "wf.ron", "--json", "-j", "2"]).env(&unique, "visible").output().unwrap();
    let tasks: BTreeMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "task_finished")
        .map(|e| (e["task"].as_str().unwrap().to_owned(), e))
        .collect();
    assert_eq!(out.status.code(), Some(1), "a failed task gives the task-failure exit code");
    let error = |t: &str| tasks[t]["error"].as_str().unwrap_or("").to_owned();
    assert_eq!(error("etc-passwd"), "read-etc-passwd denied: No such file or directory (os error 44)");
    assert_eq!(error("traverse"), "traverse denied: Operation not permitted (os error 63)");
    assert_eq!(error("write-input"), "write-input denied: Operation not permitted (os error 63)");
    assert_eq!(error("write-mount"), "write-mount denied: Operation not permitted (os error 63)");
    assert_eq!(error("list-root"), "list-root denied: No such file or directory (os error 44)");
    assert_eq!(error("symlink-out"), "symlink-out denied: Operation not permitted (os error 63)");
    for (t, o) in [("artifact-dir", "out"), ("artifact-link", "out")] {
        assert_eq!(
            error(t),
            format!(
                "the plugin returned artifact `{o}` at /out/{o}, which is not a file inside its output directory /out"
            ),
        );
    }
    assert_eq!(
        error("net"),
        format!(
            "{} imports `wasi:sockets/network@0.2.6` (network access), which dagrun plugins may not use",
            plugin("net")
        )
    );
    assert_eq!(tasks["env"]["status"], "succeeded", "no host environment variable is visible: {}", error("env"));
    assert_eq!(tasks["env"]["summary"], serde_json::json!({"home": null}));
    assert_eq!(tasks["fine"]["status"], "succeeded", "unrelated tasks finish");
    assert_eq!(std::fs::read_to_string(s.path("data.csv")).unwrap(), "x,y\n1,2\n3.5,4\n", "the input is untouched");
    assert!(!s.path("ro/escaped.txt").exists(), "nothing was written into the read-only mount");
    assert!(!s.path("out/link").exists() && !s.path("out/link.txt").exists() && !s.path("out/dir.txt").exists());
}

#[test]
fn deadline_memory_cap_panic_and_bad_params_are_reported_plainly() {
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "limits", tasks: [
        Task(name: "spin", kind: Wasm(plugin: "{}"), timeout: "300ms"),
        Task(name: "bomb", kind: Wasm(plugin: "{}", memory: "64MiB")),
        Task(name: "panic", kind: Wasm(plugin: "{}")),
        Task(name: "params", kind: Wasm(plugin: "{}"), params: {{"factor": "x", "name": "n"}}, retries: 3),
        Task(name: "newer", kind: Wasm(plugin: "{}")),
        Task(name: "patch", kind: Wasm(plugin: "{}")),
    ])"#,
        plugin("spin"),
        plugin("membomb"),
        plugin("panics"),
        plugin("badparams"),
        plugin("incompatible"),
        plugin("newer_patch"),
    ));
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 1);
    let error = |t: &str| tasks[t]["error"].as_str().unwrap_or("").to_owned();
    assert_eq!(error("spin"), "deadline exceeded: the plugin ran longer than its limit of 300ms");
    assert_eq!(error("bomb"), "memory limit exceeded: the plugin tried to grow its memory to 65 MiB (limit 64 MiB)");
    assert_eq!(error("panic"), "plugin panicked at panics/src/lib.rs:18: boom: the model exploded");
    // The error points at the param's value in the workflow file: line 5, the column of `"x"`.
    let wf = std::fs::read_to_string(s.path("wf.ron")).unwrap();
    let col = wf.lines().nth(4).unwrap().find("\"factor\": \"x\"").unwrap() + "\"factor\": ".len() + 1;
    assert_eq!(
        error("params"),
        format!("wf.ron:5:{col}: invalid params: param `factor`: invalid type: string \"x\", expected f64")
    );
    assert_eq!(tasks["params"]["attempts"], 1, "invalid params would fail the same way again: no retry");
    assert_eq!(
        error("newer"),
        format!(
            "{} was built against dagrun:task@0.2.0, but this dagrun provides dagrun:task@0.1.0 (plugins must use \
             dagrun:task@0.1.x): rebuild the plugin with this dagrun's SDK, or use a matching dagrun",
            plugin("incompatible")
        )
    );
    assert_eq!(
        error("patch"),
        format!(
            "{} was built against dagrun:task@0.1.1 and needs `host.new-feature`, which this dagrun \
             (dagrun:task@0.1.0) does not provide: rebuild the plugin with this dagrun's SDK, or upgrade dagrun",
            plugin("newer_patch")
        )
    );
}

#[test]
fn a_trap_is_reported_with_a_demangled_backtrace() {
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "trap", tasks: [Task(name: "deep", kind: Wasm(plugin: "{}"))])"#,
        plugin("overflow")
    ));
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 1);
    let error = tasks["deep"]["error"].as_str().unwrap();
    assert!(error.starts_with("plugin trapped: call stack exhausted\nwasm backtrace:\n  "), "{error}");
    assert!(error.contains("overflow::deep_recursion (×"), "recursion is folded into one line: {error}");
    assert!(error.lines().count() <= 10, "the backtrace is short: {error}");
}

/// Regression: a `Glob` of files with the same name in different directories used to be staged
/// through a hard link that wrote one user file over the other.
#[test]
fn glob_inputs_with_equal_file_names_are_staged_apart_and_never_modified() {
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "glob", tasks: [
        Task(name: "env", kind: Wasm(plugin: "{}"), params: {{"attempt": "env"}},
             inputs: {{"data": Glob("data/*/x.csv")}}),
    ])"#,
        plugin("escape")
    ));
    for (d, text) in [("a", "A\n"), ("b", "B\n")] {
        std::fs::create_dir_all(s.path(&format!("data/{d}"))).unwrap();
        std::fs::write(s.path(&format!("data/{d}/x.csv")), text).unwrap();
    }
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 0, "{tasks:?}");
    assert_eq!(std::fs::read_to_string(s.path("data/a/x.csv")).unwrap(), "A\n");
    assert_eq!(std::fs::read_to_string(s.path("data/b/x.csv")).unwrap(), "B\n");
}

#[test]
fn inspect_shows_what_a_plugin_says_about_itself() {
    let s = Sandbox::new("Workflow(name: \"x\", tasks: [])");
    let out = s.dagrun(&["plugin", "inspect", &plugin("describe"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["info"]["name"], "describe");
    assert!(v["imports"].as_array().unwrap().iter().any(|i| i == "dagrun:task/host@0.1.0"));
    assert!(!v["info"]["params_schema"].as_str().unwrap().is_empty());
}

/// `dagrun plugin new`, then: a run builds it; touching its source rebuilds it but stays cached
/// (same wasm); editing its code re-runs it and its downstream only.
#[test]
fn a_new_plugin_crate_runs_and_source_edits_rerun_exactly_its_tasks() {
    let s = Sandbox::new(
        r#"Workflow(name: "crate", tasks: [
        Task(name: "scale", kind: Wasm(plugin: "hello"), inputs: {"data": File("data.csv")},
             outputs: {"out": "out/scaled.csv"}, params: {"scale": 2.0}),
        Task(name: "count", kind: Command(run: "cat $DAGRUN_IN_S > $DAGRUN_OUT_N"),
             inputs: {"s": Output("scale", "out")}, outputs: {"n": "out/n.txt"}),
        Task(name: "other", kind: Command(run: "echo other > other.txt"), outputs: {"o": "other.txt"}),
    ])"#,
    );
    let created = s.dagrun(&["plugin", "new", "hello"]);
    assert_eq!(created.status.code(), Some(0), "{}", String::from_utf8_lossy(&created.stderr));
    let example = s.dagrun(&["run", "hello/workflow.ron"]);
    assert_eq!(
        example.status.code(),
        Some(0),
        "the example workflow of a new plugin runs: {}",
        String::from_utf8_lossy(&example.stderr)
    );

    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 0, "{tasks:?}");
    assert_eq!(std::fs::read_to_string(s.path("out/scaled.csv")).unwrap(), "x,y\n2,4\n7,8\n");

    // Touch: the crate is rebuilt (sources look changed) but the wasm is identical: cached.
    let lib = s.path("hello/src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, &text).unwrap();
    let (tasks, events, code) = s.run(&[]);
    assert_eq!(code, 0);
    assert!(events.iter().any(|e| e["event"] == "plugin_build_finished"), "touching the source rebuilds");
    assert!(tasks.values().all(|t| t["status"] == "cached"), "{tasks:?}");

    // A real code change: the plugin's task and its downstream re-run, nothing else.
    std::fs::write(&lib, text.replace("value * params.scale", "value * params.scale + 1.0")).unwrap();
    let plan = String::from_utf8_lossy(&s.dagrun(&["plan", "wf.ron"]).stdout).into_owned();
    assert!(plan.contains("run     scale  plugin hello changed: it will be rebuilt"), "{plan}");
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 0);
    let status = |t: &str| tasks[t]["status"].as_str().unwrap().to_owned();
    assert_eq!(
        (status("scale"), status("count"), status("other")),
        ("succeeded".into(), "succeeded".into(), "cached".into())
    );
    assert_eq!(std::fs::read_to_string(s.path("out/scaled.csv")).unwrap(), "x,y\n3,5\n8,9\n");
}

/// Regression (issue #9, item 9): a plugin blocked in a host call (a 60 s sleep) ran past its
/// deadline until the call returned.
#[test]
fn the_deadline_interrupts_a_plugin_blocked_in_a_sleep() {
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "s", tasks: [Task(name: "nap", kind: Wasm(plugin: "{}"), timeout: "1s")])"#,
        plugin("sleeps")
    ));
    plugins();
    let started = std::time::Instant::now();
    let (tasks, _, code) = s.run(&[]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(code, 1);
    assert_eq!(tasks["nap"]["failure"]["kind"], "timeout");
    assert_eq!(tasks["nap"]["error"], "deadline exceeded: the plugin ran longer than its limit of 1s");
}

/// Starts `dagrun run` on the `sleeps` plugin and waits until the plugin is asleep.
#[cfg(unix)]
fn start_sleeping(s: &Sandbox) -> std::process::Child {
    let mut child =
        s.command(&["run", "wf.ron", "--json"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let asleep = || {
        let logs = std::fs::read_dir(s.path(".dagrun/logs")).ok()?;
        logs.flatten()
            .any(|run| std::fs::read_to_string(run.path().join("nap.log")).is_ok_and(|l| l.contains("going to sleep")))
            .then_some(())
    };
    while asleep().is_none() {
        assert!(std::time::Instant::now() < deadline, "the plugin never started");
        assert!(child.try_wait().unwrap().is_none(), "dagrun ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    child
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn interrupt(child: &std::process::Child) {
    // SAFETY: kill(2) on a child we started and have not reaped; no memory involved. (After a
    // fast first interrupt the child may already be a zombie: the signal is then ignored.)
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

/// Waits at most `secs` for the child; its exit code and how long it took.
#[cfg(unix)]
fn wait_for(child: &mut std::process::Child, secs: u64) -> (Option<i32>, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        if started.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, started.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The run records' statuses and the staging directories left behind.
fn leftovers(s: &Sandbox) -> (Vec<String>, Vec<String>) {
    let names = |dir: &str| -> Vec<PathBuf> {
        std::fs::read_dir(s.path(dir)).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    };
    let statuses = names(".dagrun/runs")
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).unwrap()).unwrap()["status"].to_string())
        .collect();
    let staging = names(".dagrun/tmp").iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    (statuses, staging)
}

/// Regression (issue #9, item 9): Ctrl-C only took effect when the plugin's 60 s sleep
/// returned; a second Ctrl-C exited at once but left `tmp/stage-*` and a `running` record.
#[cfg(unix)]
#[test]
fn ctrl_c_interrupts_a_sleeping_plugin_and_a_second_one_still_closes_the_run() {
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "s", tasks: [Task(name: "nap", kind: Wasm(plugin: "{}"))])"#,
        plugin("sleeps")
    ));
    let mut child = start_sleeping(&s);
    interrupt(&child);
    let (code, took) = wait_for(&mut child, 20);
    assert_eq!(code, Some(130), "took {took:?}");
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
    assert_eq!(leftovers(&s), (vec!["\"interrupted\"".to_owned()], vec![]));

    std::fs::remove_dir_all(s.path(".dagrun/runs")).unwrap();
    let mut child = start_sleeping(&s);
    // Two interrupts in a row (far enough apart not to be merged into one signal).
    interrupt(&child);
    std::thread::sleep(std::time::Duration::from_millis(50));
    interrupt(&child);
    let (code, took) = wait_for(&mut child, 20);
    assert_eq!(code, Some(130), "took {took:?}");
    assert_eq!(leftovers(&s), (vec!["\"interrupted\"".to_owned()], vec![]));
}

/// Regression (issue #9, item 5): a plugin logging in a loop grew its log without bound, and
/// more than 1 MiB on stdout failed the plugin with a broken pipe.
#[test]
fn plugin_logs_are_capped_and_stdout_is_truncated_not_fatal() {
    let chatty = plugin("chatty");
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "c", tasks: [
        Task(name: "logs", kind: Wasm(plugin: "{chatty}"), params: {{"what": "log", "mib": 5}}),
        Task(name: "prints", kind: Wasm(plugin: "{chatty}"), params: {{"what": "stdout", "mib": 2}}),
    ])"#
    ));
    let out = s.command(&["run", "wf.ron", "--json"]).env("DAGRUN_LOG_MAX", "3MiB").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let events: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let log = |task: &str| {
        let e = events.iter().find(|e| e["event"] == "task_finished" && e["task"] == task).unwrap();
        assert_eq!(e["status"], "succeeded", "{e}");
        std::fs::read_to_string(e["log"].as_str().unwrap()).unwrap()
    };
    let logs = log("logs");
    assert!(logs.len() < (3 << 20) + 200, "{} bytes", logs.len());
    assert!(logs.ends_with(
        "[dagrun: log truncated: it reached the 3145728-byte limit (DAGRUN_LOG_MAX); further output is dropped]\n"
    ));
    let prints = log("prints");
    assert!(prints.contains("--- plugin stdout ---\nyyy"));
    assert!(
        prints.contains(
            "[dagrun: plugin stdout truncated: 1048576 more bytes dropped (only the first 1048576 are kept)]"
        ),
        "{}",
        &prints[prints.len() - 300..]
    );
}

/// Regression (issue #9, item 6): a 100 MiB panic message or summary went verbatim into the
/// terminal, the JSON event and the run record.
#[test]
fn huge_plugin_errors_and_summaries_are_bounded() {
    let chatty = plugin("chatty");
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "c", tasks: [
        Task(name: "panics", kind: Wasm(plugin: "{chatty}"), params: {{"what": "panic", "mib": 8}}),
        Task(name: "fails", kind: Wasm(plugin: "{chatty}"), params: {{"what": "fail", "mib": 8}}),
        Task(name: "summary", kind: Wasm(plugin: "{chatty}"), params: {{"what": "summary", "mib": 3}}),
    ])"#
    ));
    let (tasks, _, code) = s.run(&[]);
    assert_eq!(code, 1);
    for t in ["panics", "fails"] {
        let error = tasks[t]["error"].as_str().unwrap();
        assert!(error.len() < 64 * 1024 + 300, "{t}: {} bytes", error.len());
        assert!(error.contains("[dagrun: truncated: "), "{t}");
    }
    assert!(tasks["panics"]["error"].as_str().unwrap().starts_with("plugin panicked at chatty/src/lib.rs:"));
    let summary = &tasks["summary"]["summary"];
    assert!(summary["dagrun_truncated"].as_str().unwrap().contains("over the 1048576-byte limit"), "{summary}");
    for e in std::fs::read_dir(s.path(".dagrun/runs")).unwrap().flatten() {
        assert!(e.metadata().unwrap().len() < 300_000, "{}", e.path().display());
    }
}
