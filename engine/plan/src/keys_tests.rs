//! Tests of key resolution: the pinned code digests, partial runs, and the files a task receives.

use super::*;
use crate::{Selection, TaskGraph};
use dagrun_cache::Durability;
use dagrun_workflow::Source as Text;

fn workflow(dir: &Path, src: &str) -> Workflow {
    Workflow::from_source(Text::new("wf.ron", src), dir.to_owned()).unwrap()
}

const KINDS: &str = r#"Workflow(name: "k", tasks: [
    Task(name: "cmd", kind: Command(run: "python train.py", env: {"SEED": "7"}), outputs: {"m": "m.onnx"}),
    Task(name: "eval", kind: OnnxEval(model: "m", data: "d", label: "y",
         gate: Gate(min: {"accuracy": 0.7}, champion: Champion(registry: "reg", name: "churn", metric: "accuracy", margin: 0.01))),
         inputs: {"m": Output("cmd", "m"), "d": File("d.csv")}, outputs: {"metrics": "vm.json", "verdict": "v.json"}),
    Task(name: "strict", kind: OnnxEval(model: "m", data: "d", label: "y",
         gate: Gate(champion: Champion(registry: "reg", name: "churn", metric: "accuracy", strict: true))),
         inputs: {"m": Output("cmd", "m"), "d": File("d.csv")}, outputs: {"metrics": "sm.json", "verdict": "s.json"}),
    Task(name: "predict", kind: OnnxPredict(data: "d", deployed: Deployed(registry: "reg", name: "churn")),
         inputs: {"d": File("d.csv")}, outputs: {"predictions": "p.csv"}),
])"#;

/// What goes into a task's code digest is part of the key contract: a change here changes
/// every key of that kind, so it must be deliberate (bump `KEY_SCHEMA` or accept the reruns).
#[test]
fn pinned_code_digests() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(dir.path(), KINDS);
    let store = Store::absent(dir.path());
    let stat = StatCache::load(&store);
    let plugins = HashMap::new();
    let ctx = KeyContext::new(&wf, &stat, &plugins);
    let hex: Vec<String> = wf.tasks.iter().map(|t| code_digest(&ctx, t).unwrap().to_hex()).collect();
    assert_eq!(
        hex,
        [
            "cd7c9f5a4655e901f5680687e59a82ae2ca633cb885671f33e86497faf23f6c6",
            "54c03a7bf27e6d3bd9e0b944532cca5136816a7024620b300c0871285c5f0665",
            "c1c7e2b5fdf723e5a3762bcd409bbba1660153f55f26389247cabba027109a35",
            "a34368207ebfae488cedb0d8fb41788f3f3fe6344533cede5246f53a258f026b",
        ]
    );
}

/// Ten daily partitions; `model` reads them all.
const DAYS: &str = r#"Workflow(name: "h", partitions: {"days": Daily(start: "2025-01-01", end: "2025-01-10")}, tasks: [
    Task(name: "prep", partitioned: "days", kind: Command(run: "x"), inputs: {"raw": File("data/{date}.csv")}, outputs: {"o": "out/{date}.txt"}),
    Task(name: "model", kind: Command(run: "x"), inputs: {"days": Partitions(task: "prep", output: "o")}, outputs: {"m": "m.txt"}),
    Task(name: "week", partitioned: "days", kind: Command(run: "x"), inputs: {"w": Partitions(task: "prep", output: "o", last: 3)}, outputs: {"o": "w/{date}.txt"}),
])"#;

fn expand(wf: &Workflow, sel: &PartitionSelectionArg) -> Instances {
    let graph = TaskGraph::build(wf).unwrap();
    let now = 1_800_000_000; // 2027: every partition is complete
    Instances::expand(wf, &graph, &Selection::all(wf.tasks.len()), sel, None, now).unwrap()
}

type PartitionSelectionArg = crate::PartitionSelection;

#[test]
fn an_older_partition_leaves_whole_history_tasks_out() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(dir.path(), DAYS);
    let partial = expand(&wf, &crate::PartitionSelection::Keys(vec!["2025-01-05".into()]));
    assert_eq!((partial.left_out.as_slice(), partial.whole_history.as_slice()), ([1].as_slice(), [1].as_slice()));
    assert!(partial.nodes.iter().all(|n| wf.tasks[n.task].name != "model"));
    assert!(partial.nodes.iter().any(|n| n.name == "week@2025-01-05"), "partitioned windows still run");
    let latest = expand(&wf, &crate::PartitionSelection::Latest);
    assert!(latest.left_out.is_empty());
    let model = latest.nodes.iter().position(|n| n.name == "model").unwrap();
    let Source::Partitions { instances, .. } = &latest.sources[model]["days"] else { panic!() };
    assert_eq!(instances.len(), 10, "the whole history");
}

/// A shard keeps every 3rd day and leaves out what reads the days: `model` reads them all, and a
/// task `after` a partitioned one would see only this shard's (its key would be a partial one).
#[test]
fn a_shard_keeps_its_slice_and_leaves_out_readers_of_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let src = DAYS.replace(
        "])",
        r#"Task(name: "report", kind: Command(run: "x"), after: ["prep"], outputs: {"r": "r.txt"}),
    Task(name: "score", partitioned: "days", kind: Command(run: "x"), inputs: {"m": Output("model", "m")}, outputs: {"s": "s/{date}.txt"}),
    Task(name: "setup", kind: Command(run: "x"), outputs: {"t": "t.txt"}),
])"#,
    );
    let wf = workflow(dir.path(), &src);
    let graph = TaskGraph::build(&wf).unwrap();
    let range = crate::PartitionSelection::Range { from: 1_735_689_600, to: 1_736_553_599 }; // 2025-01-01..=10
    let shard = |s: &str| {
        Instances::expand(&wf, &graph, &Selection::all(wf.tasks.len()), &range, Some(s.parse().unwrap()), 1_800_000_000)
    };
    let two = shard("2/3").unwrap();
    let prep: Vec<&str> = two.nodes.iter().filter(|n| n.name.starts_with("prep@")).map(|n| n.name.as_str()).collect();
    // `week@...` reads the 3 days up to its own: those are run here too, as in any backfill.
    assert!(["prep@2025-01-02", "prep@2025-01-05", "prep@2025-01-08"].iter().all(|p| prep.contains(p)), "{prep:?}");
    let weeks: Vec<&str> = two.nodes.iter().filter(|n| n.name.starts_with("week@")).map(|n| n.name.as_str()).collect();
    assert_eq!(weeks, ["week@2025-01-02", "week@2025-01-05", "week@2025-01-08"]);
    let names = |ts: &[usize]| ts.iter().map(|&t| wf.tasks[t].name.as_str()).collect::<Vec<_>>();
    assert_eq!(names(&two.whole_history), ["model", "report"]);
    assert_eq!(names(&two.left_out), ["model", "report", "score"], "with what depends on them");
    assert!(two.nodes.iter().any(|n| n.name == "setup"), "an unpartitioned task reading no partition runs");
    assert_eq!(two.shard, Some("2/3".parse().unwrap()));
    // 1/1 is the whole run: nothing left out, the unsharded instances.
    let whole = shard("1/1").unwrap();
    assert!(whole.left_out.is_empty() && whole.shard.is_none());
    assert_eq!(whole.nodes.len(), expand(&wf, &range).nodes.len());
    // Ten days in eleven shards: the eleventh has none.
    let e = Instances::expand(
        &wf,
        &graph,
        &Selection::all(wf.tasks.len()),
        &range,
        Some("11/11".parse().unwrap()),
        1_800_000_000,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "shard 11/11 has no partition: the selection has 10, fewer than 11 shards");
}

#[test]
fn the_task_receives_the_files_whose_digests_are_in_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    for d in 1..=10 {
        std::fs::write(dir.path().join(format!("data/2025-01-{d:02}.csv")), format!("{d}\n")).unwrap();
    }
    let wf = workflow(dir.path(), DAYS);
    let inst = expand(&wf, &crate::PartitionSelection::Keys(vec!["2025-01-03".into()]));
    let store = Store::open(&dir.path().join(".dagrun"), Durability::NoFsync).unwrap();
    let stat = StatCache::load(&store);
    let plugins = HashMap::new();
    let ctx = KeyContext::new(&wf, &stat, &plugins);
    let prep = inst.nodes.iter().position(|n| n.name == "prep@2025-01-03").unwrap();
    let r = key_inputs(&ctx, &inst, prep, &HashMap::new()).unwrap();
    let file = &r.files["raw"].files[0];
    assert_eq!(file.path, dir.path().join("data/2025-01-03.csv"));
    assert_eq!(r.inputs.inputs["raw"], InputDigest::Files(vec![("data/2025-01-03.csv".into(), file.digest)]));
    assert_eq!(file.digest, dagrun_cache::hash_file(&file.path).unwrap().0);
    // A window's files come from the upstream manifests, in partition order.
    let week = inst.nodes.iter().position(|n| n.name == "week@2025-01-03").unwrap();
    let ups: Vec<usize> = inst.upstream(week).collect();
    let manifests: Vec<Manifest> = ups
        .iter()
        .map(|&u| {
            let rel = format!("out/{}.txt", inst.nodes[u].partition.as_ref().unwrap().key);
            let digest = dagrun_cache::ObjectDigest(Digest::of(rel.as_bytes()));
            let rec = dagrun_cache::OutputRecord { path: rel, digest, size: 1, executable: false, inline: false };
            [("o".to_owned(), rec)].into_iter().collect()
        })
        .collect();
    let upstream: HashMap<usize, &Manifest> = ups.iter().copied().zip(manifests.iter()).collect();
    let r = key_inputs(&ctx, &inst, week, &upstream).unwrap();
    let got: Vec<PathBuf> = r.files["w"].files.iter().map(|f| f.path.clone()).collect();
    let want: Vec<PathBuf> =
        ["2025-01-01", "2025-01-02", "2025-01-03"].iter().map(|d| dir.path().join(format!("out/{d}.txt"))).collect();
    assert_eq!(got, want);
    assert!(r.files["w"].list);
}

/// `n` upstream manifests for `ups`: output `o` of each, whose digest is `salt` and its partition key.
fn manifests(inst: &Instances, ups: &[usize], salt: &str) -> Vec<Manifest> {
    ups.iter()
        .map(|&u| {
            let rel = format!("out/{}.txt", inst.nodes[u].partition.as_ref().unwrap().key);
            let digest = dagrun_cache::ObjectDigest(Digest::of(format!("{salt}{rel}").as_bytes()));
            let rec = dagrun_cache::OutputRecord { path: rel, digest, size: 1, executable: false, inline: false };
            [("o".to_owned(), rec)].into_iter().collect()
        })
        .collect()
}

/// Data files for the ten days of [`DAYS`].
fn days_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    for d in 1..=10 {
        std::fs::write(dir.path().join(format!("data/2025-01-{d:02}.csv")), format!("{d}\n")).unwrap();
    }
    dir
}

#[test]
fn a_partitioned_instance_keys_its_partition_and_its_rendered_outputs() {
    let dir = days_dir();
    let wf = workflow(dir.path(), DAYS);
    let inst = expand(&wf, &crate::PartitionSelection::Keys(vec!["2025-01-03".into(), "2025-01-04".into()]));
    let store = Store::absent(dir.path());
    let stat = StatCache::load(&store);
    let plugins = HashMap::new();
    let ctx = KeyContext::new(&wf, &stat, &plugins);
    let at = |name: &str| inst.nodes.iter().position(|n| n.name == name).unwrap();
    let third = key_inputs(&ctx, &inst, at("prep@2025-01-03"), &HashMap::new()).unwrap().inputs;
    let fourth = key_inputs(&ctx, &inst, at("prep@2025-01-04"), &HashMap::new()).unwrap().inputs;
    assert_eq!(third.partition.as_deref(), Some("2025-01-03"));
    assert_eq!(third.outputs, BTreeMap::from([("o".to_owned(), "out/2025-01-03.txt".to_owned())]));
    assert_eq!((third.kind.as_str(), third.code), ("command", fourth.code), "one task, one code digest");
    assert_ne!(third.key(), fourth.key());
    // The same bytes under another partition are still another key: the partition and the path are in it.
    std::fs::write(dir.path().join("data/2025-01-04.csv"), "3\n").unwrap();
    let ctx = KeyContext { verify: true, ..ctx };
    let fourth = key_inputs(&ctx, &inst, at("prep@2025-01-04"), &HashMap::new()).unwrap().inputs;
    let digest = |k: &KeyInputs| match &k.inputs["raw"] {
        InputDigest::Files(f) => f[0].1,
        other => panic!("{other:?}"),
    };
    assert_eq!(digest(&third), digest(&fourth), "the same bytes");
    assert_ne!(third.key(), fourth.key());
    // Recomputed from the same files: the same key.
    assert_eq!(key_inputs(&ctx, &inst, at("prep@2025-01-03"), &HashMap::new()).unwrap().inputs.key(), third.key());
}

#[test]
fn a_partitions_input_keys_each_partition_by_name_in_order() {
    let dir = days_dir();
    let wf = workflow(dir.path(), DAYS);
    let inst = expand(&wf, &crate::PartitionSelection::Latest);
    let store = Store::absent(dir.path());
    let stat = StatCache::load(&store);
    let plugins = HashMap::new();
    let ctx = KeyContext::new(&wf, &stat, &plugins);
    let model = inst.nodes.iter().position(|n| n.name == "model").unwrap();
    let ups: Vec<usize> = inst.upstream(model).collect();
    let ms = manifests(&inst, &ups, "");
    let upstream: HashMap<usize, &Manifest> = ups.iter().copied().zip(ms.iter()).collect();
    let k = key_inputs(&ctx, &inst, model, &upstream).unwrap().inputs;
    let InputDigest::Partitions { task, output, parts } = &k.inputs["days"] else { panic!("{:?}", k.inputs) };
    assert_eq!((task.as_str(), output.as_str(), k.partition.as_deref()), ("prep", "o", None));
    let days: Vec<String> = (1..=10).map(|d| format!("2025-01-{d:02}")).collect();
    assert_eq!(parts.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), days, "oldest first, by partition key");
    for (p, d) in parts {
        assert_eq!(d.0, Digest::of(format!("out/{p}.txt").as_bytes()), "{p}");
    }
    // One partition's output changed: another key, and the change is explained by that input.
    let mut changed = manifests(&inst, &ups, "");
    changed[4] = manifests(&inst, &ups[4..5], "new").pop().unwrap();
    let upstream: HashMap<usize, &Manifest> = ups.iter().copied().zip(changed.iter()).collect();
    let k2 = key_inputs(&ctx, &inst, model, &upstream).unwrap().inputs;
    assert_ne!(k2.key(), k.key());
    let why: Vec<String> = k2.changes_since(&k).iter().map(ToString::to_string).collect();
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(why[0].starts_with("input `days` changed"), "{why:?}");
    // A missing partition output is an error, not a shorter list.
    let upstream: HashMap<usize, &Manifest> = ups[1..].iter().copied().zip(ms[1..].iter()).collect();
    let err = key_inputs(&ctx, &inst, model, &upstream).unwrap_err();
    assert!(matches!(err, KeyError::MissingUpstream { .. }), "{err}");
}

#[test]
fn command_env_params_and_after_upstreams_are_in_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "x").unwrap();
    let store = Store::absent(dir.path());
    let stat = StatCache::load(&store);
    let plugins = HashMap::new();
    let key = |env: &str, lr: f64, first_digest: &[u8]| {
        let src = format!(
            r#"Workflow(name: "a", tasks: [
            Task(name: "first", kind: Command(run: "true"), outputs: {{"o": "o.txt"}}),
            Task(name: "second", kind: Command(run: "run", env: {{"SEED": "{env}"}}), after: ["first"],
                 inputs: {{"i": File("in.txt")}}, params: {{"lr": {lr}}}, outputs: {{"p": "p.txt"}}),
        ])"#
        );
        let wf = workflow(dir.path(), &src);
        let inst = expand(&wf, &crate::PartitionSelection::Latest);
        let ctx = KeyContext::new(&wf, &stat, &plugins);
        let digest = dagrun_cache::ObjectDigest(Digest::of(first_digest));
        let rec =
            dagrun_cache::OutputRecord { path: "o.txt".into(), digest, size: 1, executable: false, inline: false };
        let first: Manifest = [("o".to_owned(), rec)].into_iter().collect();
        let k = key_inputs(&ctx, &inst, 1, &HashMap::from([(0, &first)])).unwrap().inputs;
        assert_eq!(k.upstream, BTreeMap::from([("first".to_owned(), manifest_digest(&first))]));
        assert_eq!(k.params, Digest::of(canonical_json(&serde_json::json!({"lr": lr})).as_bytes()));
        k.key()
    };
    let base = key("7", 0.1, b"a");
    assert_eq!(key("7", 0.1, b"a"), base, "deterministic");
    assert_ne!(key("8", 0.1, b"a"), base, "the command's env");
    assert_ne!(key("7", 0.2, b"a"), base, "params");
    assert_ne!(key("7", 0.1, b"b"), base, "an `after` upstream's outputs");
}

#[test]
fn params_are_keyed_as_the_canonical_json_of_what_the_task_receives() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(".dagrun"), dagrun_cache::Durability::NoFsync).unwrap();
    let stat = StatCache::load(&store);
    let plugins = HashMap::new();
    let src = r#"Workflow(name: "p", tasks: [Task(name: "t", kind: Command(run: "true"), outputs: {"o": "o.txt"},
        params: {"b": {"z": 1, "a": [{"y": 2.5, "x": "é\"q"}]}, "a": "s", "c": [3, -1e300, true, ()]})])"#;
    let wf = workflow(dir.path(), src);
    let inst = expand(&wf, &crate::PartitionSelection::Latest);
    let ctx = KeyContext::new(&wf, &stat, &plugins);
    let k = key_inputs(&ctx, &inst, 0, &HashMap::new()).unwrap().inputs;
    let received = serde_json::Value::Object(crate::instance_params(&wf, &inst, 0));
    assert_eq!(k.params, Digest::of(canonical_json(&received).as_bytes()));
    assert_eq!(received["b"]["a"][0]["x"], "é\"q");
}
