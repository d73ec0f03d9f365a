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
    let ctx = KeyContext { workflow: &wf, stat: &stat, verify: false, hash: true, plugins: &plugins };
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
    Instances::expand(wf, &graph, &Selection::all(wf.tasks.len()), sel, now).unwrap()
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
    let ctx = KeyContext { workflow: &wf, stat: &stat, verify: false, hash: true, plugins: &plugins };
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
            let rec = dagrun_cache::OutputRecord { path: rel, digest, size: 1, executable: false };
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
