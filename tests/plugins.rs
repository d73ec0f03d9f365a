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

    fn dagrun(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        clean_cargo_env(&mut cmd)
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("DAGRUN_PLUGIN_TARGET_DIR", repo().join("tests/plugins/target"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
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

/// Every way out of the sandbox is denied, each with its own message, and the run goes on.
#[test]
fn the_sandbox_denies_escapes_and_the_run_goes_on() {
    let escape = plugin("escape");
    let task = |name: &str, attempt: &str| {
        format!(
            r#"Task(name: "{name}", kind: Wasm(plugin: "{escape}"), params: {{"attempt": "{attempt}"}},
                    inputs: {{"data": File("data.csv")}}),"#
        )
    };
    let s = Sandbox::new(&format!(
        r#"Workflow(name: "escapes", tasks: [
        {}
        {}
        {}
        {}
        Task(name: "net", kind: Wasm(plugin: "{}")),
        Task(name: "fine", kind: Command(run: "echo ok > fine.txt"), outputs: {{"f": "fine.txt"}}),
    ])"#,
        task("etc-passwd", "read-etc-passwd"),
        task("traverse", "traverse"),
        task("write-input", "write-input"),
        task("env", "env"),
        plugin("net"),
    ));
    let (tasks, _, code) = s.run(&["-j", "2"]);
    assert_eq!(code, 1, "a failed task gives the task-failure exit code");
    let error = |t: &str| tasks[t]["error"].as_str().unwrap_or("").to_owned();
    assert_eq!(error("etc-passwd"), "read-etc-passwd denied: No such file or directory (os error 44)");
    assert_eq!(error("traverse"), "traverse denied: Operation not permitted (os error 63)");
    assert_eq!(error("write-input"), "write-input denied: Operation not permitted (os error 63)");
    assert_eq!(
        error("net"),
        format!(
            "{} imports `wasi:sockets/network@0.2.6` (network access), which dagrun plugins may not use",
            plugin("net")
        )
    );
    assert_eq!(tasks["env"]["status"], "succeeded", "no host environment variable is visible");
    assert_eq!(tasks["env"]["summary"], serde_json::json!({"home": null}));
    assert_eq!(tasks["fine"]["status"], "succeeded", "unrelated tasks finish");
    assert_eq!(std::fs::read_to_string(s.path("data.csv")).unwrap(), "x,y\n1,2\n3.5,4\n", "the input is untouched");
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
