//! The shared remote cache end to end, against a real S3 server (SeaweedFS, `DAGRUN_WEED`):
//! "machines" are separate copies of a workflow directory with their own state directories
//! sharing one bucket. Read-through and write-behind, failures that stay warnings (wrong
//! credentials, a missing bucket, a server that dies mid-run), a tampered object, two runners
//! racing to publish, read-only mode, `cache push`/`pull` and `doctor`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::s3::{SECRET, Seaweed};
use dagrun_exec::remote_cache::{RemoteUrl, connect_with};
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use serde_json::Value;

const BUCKET: &str = "team-cache";
const LOCATION: &str = "s3://team-cache/dagrun";

/// A small workflow: two independent tasks and one that joins them; deterministic outputs.
const SMALL: &str = r#"Workflow(name: "small", tasks: [
    Task(name: "a", kind: Command(run: "printf 'alpha %s' $(seq 1 2000 | tr '\n' ,) > out/a.txt"), outputs: {"o": "out/a.txt"}),
    Task(name: "b", kind: Command(run: "printf beta > out/b.txt"), outputs: {"o": "out/b.txt"}),
    Task(name: "c", kind: Command(run: "cat out/a.txt out/b.txt > out/c.txt"),
         inputs: {"a": Output("a", "o"), "b": Output("b", "o")}, outputs: {"o": "out/c.txt"}),
])"#;

/// One "machine": a workflow directory and a state directory of its own.
struct Machine {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Machine {
    /// A machine with `workflow` as `wf.ron`, reaching `server` with its credentials.
    fn new(server: &Seaweed, workflow: &str) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.ron"), workflow).unwrap();
        Machine::at(server, dir)
    }

    fn at(server: &Seaweed, dir: tempfile::TempDir) -> Machine {
        let mut env = server.env();
        env.push(("DAGRUN_REMOTE_CACHE", LOCATION.to_owned()));
        Machine { dir, env }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn set(&mut self, name: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != name);
        self.env.push((name, value.to_owned()));
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::dagrun_for_plugins();
        c.args(args).current_dir(self.dir.path()).stdin(Stdio::null()).env("NO_COLOR", "1");
        for v in ["DAGRUN_STATE_DIR", "DAGRUN_REMOTE_CACHE_MODE", "AWS_PROFILE", "AWS_SESSION_TOKEN"] {
            c.env_remove(v);
        }
        c.env("AWS_SHARED_CREDENTIALS_FILE", self.path("no-credentials-file"));
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn dagrun(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `dagrun ARGS --json`: the events and the output.
    fn json(&self, args: &[&str]) -> (Vec<Value>, Output) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.dagrun(&all);
        (events(&out), out)
    }
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// Task → (status, served by the remote).
fn finished(events: &[Value]) -> BTreeMap<String, (String, bool)> {
    of(events, "task_finished")
        .into_iter()
        .map(|e| {
            let status = e["status"].as_str().unwrap().to_owned();
            (e["task"].as_str().unwrap().to_owned(), (status, e["remote"] == true))
        })
        .collect()
}

fn all_are(events: &[Value], status: &str, remote: bool) -> bool {
    let f = finished(events);
    !f.is_empty() && f.values().all(|(s, r)| s == status && *r == remote)
}

fn explain(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", common::stdout(out), common::stderr(out))
}

/// The bucket's keys under `prefix` (below the location's prefix), with their bytes.
fn listing(server: &Seaweed, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let url: RemoteUrl = LOCATION.parse().unwrap();
    let conn = connect_with(&url, &server.env()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let root = Key::from(url.key(prefix));
        let metas: Vec<_> = conn.store.list(Some(&root)).try_collect().await.unwrap();
        let mut out = BTreeMap::new();
        for m in metas {
            let bytes = conn.store.get(&m.location).await.unwrap().bytes().await.unwrap();
            out.insert(m.location.to_string(), bytes.to_vec());
        }
        out
    })
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A copy of the repository's `workflows/` files named (plugin paths absolute) and its scripts.
fn repo_machine(server: &Seaweed) -> Machine {
    let dir = common::repo_workflows(&["retrain.ron", "backfill.ron"]);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows/scripts");
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    for e in std::fs::read_dir(scripts).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join("scripts").join(e.file_name())).unwrap();
    }
    Machine::at(server, dir)
}

/// The done-when of the remote cache: machine B runs what machine A ran (the retrain workflow
/// with plugins and an ONNX gate, and a backfill over two weeks of partitions) without running
/// a single task, and its outputs are byte for byte A's.
#[test]
fn a_second_machine_gets_every_task_from_the_remote_with_identical_outputs() {
    let Some(server) = Seaweed::start("remote cache: two machines", &[BUCKET]) else { return };
    let (a, b) = (repo_machine(&server), repo_machine(&server));
    let backfill = ["backfill", "backfill.ron", "--from", "2025-01-01", "--to", "2025-01-14"];
    for args in [&["run", "retrain.ron"][..], &backfill[..]] {
        let (ev, out) = a.json(args);
        assert_eq!(out.status.code(), Some(0), "{args:?} on A: {}", explain(&out));
        assert!(all_are(&ev, "succeeded", false), "{args:?}: A runs everything: {:?}", finished(&ev));
        let up = of(&ev, "remote_uploaded");
        assert_eq!(up.len(), 1, "{ev:?}");
        assert_eq!(up[0]["published"].as_u64(), Some(finished(&ev).len() as u64), "{up:?}");
        assert_eq!(up[0]["pending"], 0);

        let (ev, out) = b.json(args);
        assert_eq!(out.status.code(), Some(0), "{args:?} on B: {}", explain(&out));
        assert!(all_are(&ev, "cached", true), "{args:?}: B runs nothing: {:?}", finished(&ev));
        assert_eq!(of(&ev, "remote_hit").len(), finished(&ev).len());
        assert!(of(&ev, "task_started").is_empty());
    }
    let (ta, tb) = (tree(&a.path("out")), tree(&b.path("out")));
    assert!(ta.len() > 20, "{:?}", ta.keys());
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, bytes) in &ta {
        assert!(tb[name] == *bytes, "{name} differs between the machines");
    }
    // B's next run is local: nothing asked of the remote, nothing sent.
    let (ev, out) = b.json(&["run", "retrain.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(all_are(&ev, "cached", false), "{:?}", finished(&ev));
}

#[test]
fn wrong_credentials_are_one_warning_and_the_run_goes_on_locally() {
    let Some(server) = Seaweed::start("remote cache: wrong credentials", &[BUCKET]) else { return };
    let mut m = Machine::new(&server, SMALL);
    let wrong = "wrong-secret-4f1c9e-do-not-print";
    m.set("AWS_SECRET_ACCESS_KEY", wrong);
    let (ev, first) = m.json(&["run", "wf.ron"]);
    assert_eq!(first.status.code(), Some(0), "{}", explain(&first));
    assert!(all_are(&ev, "succeeded", false), "{:?}", finished(&ev));
    let warnings = of(&ev, "remote_warning");
    assert_eq!(warnings.len(), 1, "one warning, then the remote is left alone: {warnings:?}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(message.contains("AWS_SECRET_ACCESS_KEY") && message.contains("local cache"), "{message}");
    // The human form says it too; the secret is nowhere.
    let out = m.dagrun(&["run", "wf.ron", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(common::stderr(&out).contains("warning  remote cache s3://team-cache/dagrun"), "{}", explain(&out));
    for o in [&first, &out] {
        assert!(!explain(o).contains(wrong) && !explain(o).contains(SECRET), "{}", explain(o));
    }
    assert!(!format!("{ev:?}").contains(wrong));
    assert!(listing(&server, "v1").is_empty(), "nothing was written");
}

#[test]
fn a_missing_bucket_is_a_warning_and_the_run_goes_on_locally() {
    let Some(server) = Seaweed::start("remote cache: missing bucket", &[BUCKET]) else { return };
    let mut m = Machine::new(&server, SMALL);
    m.set("DAGRUN_REMOTE_CACHE", "s3://no-such-bucket/dagrun");
    let (ev, out) = m.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(all_are(&ev, "succeeded", false), "{:?}", finished(&ev));
    let warnings = of(&ev, "remote_warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]["message"].as_str().unwrap().contains("bucket exists"), "{warnings:?}");
    assert_eq!(of(&ev, "remote_uploaded")[0]["pending"], 3, "kept for the next run: {ev:?}");
    // An invalid location is a usage error naming the variable.
    m.set("DAGRUN_REMOTE_CACHE", "/srv/cache");
    let out = m.dagrun(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(common::stderr(&out).contains("invalid DAGRUN_REMOTE_CACHE"), "{}", explain(&out));
}

#[test]
fn a_server_that_dies_mid_run_leaves_pending_uploads_the_next_run_sends() {
    let Some(mut server) = Seaweed::start("remote cache: server dies", &[BUCKET]) else { return };
    let wf = r#"Workflow(name: "slow", tasks: [
        Task(name: "first", kind: Command(run: "printf one > out/1.txt"), outputs: {"o": "out/1.txt"}),
        Task(name: "second", kind: Command(run: "sleep 2; cat out/1.txt > out/2.txt; printf two >> out/2.txt"),
             inputs: {"i": Output("first", "o")}, outputs: {"o": "out/2.txt"}),
    ])"#;
    let a = Machine::new(&server, wf);
    let mut child = a.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut seen = Vec::new();
    // Stop the server as soon as the first task is done.
    for line in lines.by_ref() {
        let e: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let first_done = e["event"] == "task_finished" && e["task"] == "first";
        seen.push(e);
        if first_done {
            server.stop();
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{seen:?}");
    }
    seen.extend(lines.map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen:?}");
    assert!(all_are(&seen, "succeeded", false), "{seen:?}");
    assert_eq!(of(&seen, "remote_warning").len(), 1, "{seen:?}");
    assert!(of(&seen, "remote_uploaded")[0]["pending"].as_u64() >= Some(1), "{seen:?}");
    assert!(a.path(".dagrun/remote/pending").is_file());

    server.restart();
    let (ev, out) = a.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(all_are(&ev, "cached", false), "{:?}", finished(&ev));
    let up = of(&ev, "remote_uploaded");
    assert!(up[0]["published"].as_u64() >= Some(1) && up[0]["pending"] == 0, "the pending upload went: {ev:?}");
    assert!(!a.path(".dagrun/remote/pending").exists());
    // Machine C gets both from the remote.
    let c = Machine::new(&server, wf);
    let (ev, out) = c.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(all_are(&ev, "cached", true), "{:?}", finished(&ev));
    assert_eq!(std::fs::read(c.path("out/2.txt")).unwrap(), b"onetwo");
}

#[test]
fn a_tampered_object_is_detected_never_used_and_not_published_over() {
    let Some(server) = Seaweed::start("remote cache: tampered object", &[BUCKET]) else { return };
    let a = Machine::new(&server, SMALL);
    let (_, out) = a.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let c_digest = blake3::hash(&std::fs::read(a.path("out/c.txt")).unwrap()).to_hex().to_string();
    let objects = listing(&server, "v1/objects");
    let target = objects.keys().find(|k| k.ends_with(&c_digest)).expect("c's object was published").clone();
    let url: RemoteUrl = LOCATION.parse().unwrap();
    let conn = connect_with(&url, &server.env()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(conn.store.put(&Key::from(target.as_str()), b"alpha beta, but not quite".to_vec().into())).unwrap();
    let before = listing(&server, "v1/actions");

    let b = Machine::new(&server, SMALL);
    let (ev, out) = b.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let f = finished(&ev);
    assert_eq!(f["c"], ("succeeded".to_owned(), false), "c runs here: {f:?}");
    assert_eq!((f["a"].1, f["b"].1), (true, true), "the intact ones are used: {f:?}");
    let w = of(&ev, "remote_warning");
    assert_eq!(w.len(), 1, "{w:?}");
    let message = w[0]["message"].as_str().unwrap();
    assert!(w[0]["task"] == "c" && message.contains("corrupt") && message.contains(&c_digest[..12]), "{message}");
    assert!(message.contains("remove s3://team-cache/dagrun/v1/actions/"), "{message}");
    assert_eq!(std::fs::read(b.path("out/c.txt")).unwrap(), std::fs::read(a.path("out/c.txt")).unwrap());
    assert_eq!(listing(&server, "v1/actions"), before, "the published entries are left as they are");
}

#[test]
fn two_runners_racing_publish_one_entry_per_key() {
    let Some(server) = Seaweed::start("remote cache: race", &[BUCKET]) else { return };
    let (a, b) = (Machine::new(&server, SMALL), Machine::new(&server, SMALL));
    let spawn = |m: &Machine| m.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    let (ca, cb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (ca.wait_with_output().unwrap(), cb.wait_with_output().unwrap());
    assert_eq!((oa.status.code(), ob.status.code()), (Some(0), Some(0)), "{}\n{}", explain(&oa), explain(&ob));
    let (ea, eb) = (events(&oa), events(&ob));
    let count = |e: &[Value], k: &str| of(e, "remote_uploaded").first().map_or(0, |u| u[k].as_u64().unwrap());
    // Every key was published once; a runner that lost a race found it there (or hit it).
    let published = count(&ea, "published") + count(&eb, "published");
    assert_eq!(published, 3, "{ea:?}\n{eb:?}");
    let actions = listing(&server, "v1/actions");
    assert_eq!(actions.len(), 3, "{:?}", actions.keys());
    assert_eq!(tree(&a.path("out")), tree(&b.path("out")));
    for (key, bytes) in listing(&server, "v1/objects") {
        let name = key.rsplit('/').next().unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), name, "object {key} holds its own bytes");
    }
}

#[test]
fn read_mode_never_writes() {
    let Some(server) = Seaweed::start("remote cache: read mode", &[BUCKET]) else { return };
    let a = Machine::new(&server, SMALL);
    let (ev, out) = a.json(&["run", "wf.ron", "--remote-cache=read"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(all_are(&ev, "succeeded", false), "{:?}", finished(&ev));
    assert!(of(&ev, "remote_uploaded").is_empty() && of(&ev, "remote_warning").is_empty(), "{ev:?}");
    assert!(listing(&server, "").is_empty(), "the bucket stays empty");
    // The mode also comes from the environment; the flag wins over it.
    let mut b = Machine::new(&server, SMALL);
    b.set("DAGRUN_REMOTE_CACHE_MODE", "read");
    let (_, out) = b.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(listing(&server, "").is_empty());
    let (ev, out) = b.json(&["run", "wf.ron", "--force", "--remote-cache=readwrite"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(of(&ev, "remote_uploaded")[0]["published"], 3, "{ev:?}");
}

#[test]
fn push_then_pull_warms_a_fresh_state_directory() {
    let Some(server) = Seaweed::start("remote cache: push and pull", &[BUCKET]) else { return };
    let a = Machine::new(&server, SMALL);
    let (_, out) = a.json(&["run", "wf.ron", "--remote-cache=off"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(listing(&server, "").is_empty(), "off touches nothing");
    let out = a.dagrun(&["cache", "push", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let pushed: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!((pushed["transferred"].as_u64(), pushed["missing"].as_u64()), (Some(3), Some(0)), "{pushed}");
    let out = a.dagrun(&["cache", "push", "wf.ron"]);
    assert!(common::stdout(&out).contains("0 entries published"), "{}", explain(&out));
    assert!(common::stdout(&out).contains("3 there already"), "{}", explain(&out));

    let b = Machine::new(&server, SMALL);
    let out = b.dagrun(&["cache", "pull", "wf.ron", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let pulled: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(pulled["transferred"], 3, "c's key is known once a and b are pulled: {pulled}");
    assert!(pulled["bytes"].as_u64().unwrap() > 8000, "{pulled}");
    assert!(!b.path("out/c.txt").exists(), "pull runs and writes nothing in the workflow directory");
    let (ev, out) = b.json(&["run", "wf.ron", "--remote-cache=off"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(all_are(&ev, "cached", false), "all local hits: {:?}", finished(&ev));
    assert_eq!(tree(&a.path("out")), tree(&b.path("out")));
    // Without a location there is nothing to push to.
    let mut c = Machine::new(&server, SMALL);
    c.env.retain(|(k, _)| *k != "DAGRUN_REMOTE_CACHE");
    let out = c.dagrun(&["cache", "pull", "wf.ron"]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(common::stderr(&out).contains("DAGRUN_REMOTE_CACHE=s3://"), "{}", explain(&out));
}

#[test]
fn the_workflow_names_its_remote_and_the_environment_overrides_it() {
    let Some(server) = Seaweed::start("remote cache: workflow field", &[BUCKET, "other-cache"]) else { return };
    let wf =
        SMALL.replace("Workflow(name: \"small\",", "Workflow(name: \"small\", remote_cache: \"s3://other-cache/x\",");
    let mut a = Machine::new(&server, &wf);
    a.env.retain(|(k, _)| *k != "DAGRUN_REMOTE_CACHE");
    let (ev, out) = a.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(of(&ev, "remote_uploaded")[0]["remote"], "s3://other-cache/x", "{ev:?}");
    assert!(listing(&server, "").is_empty(), "not the team bucket");
    let b = Machine::new(&server, &wf);
    let (ev, out) = b.json(&["run", "wf.ron"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(of(&ev, "remote_uploaded")[0]["remote"], LOCATION, "the environment wins: {ev:?}");
    let bad = SMALL.replace("Workflow(name: \"small\",", "Workflow(name: \"small\", remote_cache: \"gs://elsewhere\",");
    let c = Machine::new(&server, &bad);
    let out = c.dagrun(&["validate", "wf.ron"]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(common::stderr(&out).contains("only S3 locations are supported"), "{}", explain(&out));
}

#[test]
fn doctor_checks_the_remote_and_says_what_to_fix() {
    let Some(server) = Seaweed::start("remote cache: doctor", &[BUCKET]) else { return };
    let mut m = Machine::new(&server, SMALL);
    let out = m.dagrun(&["doctor"]);
    let text = common::stdout(&out);
    for line in [
        "ok       remote cache s3://team-cache/dagrun reachable",
        "ok       remote cache s3://team-cache/dagrun writable",
        "ok       remote cache s3://team-cache/dagrun honours create-only puts",
    ] {
        assert!(text.contains(line), "{line}: {}", explain(&out));
    }
    let wrong = "wrong-secret-77ab-do-not-print";
    m.set("AWS_SECRET_ACCESS_KEY", wrong);
    let out = m.dagrun(&["doctor"]);
    let text = explain(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("missing  remote cache s3://team-cache/dagrun reachable"), "{text}");
    assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(listing(&server, "v1/doctor").is_empty(), "the test object is removed");
}
