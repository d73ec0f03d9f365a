//! Plugin benchmark: per-task overhead of a trivial WASM plugin with a warm compiled module,
//! first-compile vs cached-compile time, and a 200-task workflow of trivial plugins end to end.
//!
//! Run with `cargo bench -p dagrun --bench plugins` (release build; builds tests/plugins first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use dagrun_wasm::{InputMount, Limits, PluginHost, PluginRun};

const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn build_plugins() -> PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    for var in dagrun_wasm::OUTER_CARGO_ENV {
        cmd.env_remove(var);
    }
    let status = cmd
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(repo().join("tests/plugins/Cargo.toml"))
        .status()
        .unwrap();
    assert!(status.success());
    repo().join("tests/plugins/target/wasm32-wasip2/release")
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let plugins = build_plugins();
    let copy = plugins.join("copy.wasm");
    println!("dagrun plugin benchmark ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));

    // 1. Compile (cold) vs load from the on-disk compiled cache.
    let cache = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let host = PluginHost::new(cache.path()).unwrap();
    let engine_start = t.elapsed();
    let t = Instant::now();
    let loaded = host.load(&copy).unwrap();
    let cold = t.elapsed();
    assert!(loaded.compiled);
    let host2 = PluginHost::new(cache.path()).unwrap();
    let t = Instant::now();
    let loaded2 = host2.load(&copy).unwrap();
    let warm = t.elapsed();
    assert!(!loaded2.compiled, "second load must come from the compiled cache");
    println!("engine start:                          {}", ms(engine_start));
    println!("first compile of copy.wasm ({} KiB):   {}", std::fs::metadata(&copy).unwrap().len() / 1024, ms(cold));
    println!("load from compiled cache:              {}", ms(warm));

    // 2. Per-task overhead with a warm module: a fresh sandbox, staged input, run, collect.
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("data.csv");
    std::fs::write(&input, "x,y\n1,2\n").unwrap();
    let n = 2000;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let run = PluginRun {
            task: "copy".into(),
            run_id: "bench".into(),
            partition: None,
            params_json: "{}".into(),
            inputs: vec![InputMount { name: "data".into(), files: vec![input.clone()], directory: false }],
            mounts: vec![],
            stage_dir: work.path().join(format!("stage-{i}")),
            log: work.path().join("log.txt"),
            limits: Limits {
                memory_bytes: 1 << 30,
                deadline: Duration::from_secs(60),
                log_bytes: dagrun_wasm::DEFAULT_LOG_BYTES,
            },
            cancel: Arc::new(AtomicBool::new(false)),
        };
        let t = Instant::now();
        let out = dagrun_wasm::run(&host, &loaded, &run).unwrap();
        samples.push(t.elapsed());
        assert_eq!(out.artifacts.len(), 1);
        let _ = std::fs::remove_dir_all(&run.stage_dir);
    }
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let p50 = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!("per-task run, warm module (n={n}):      p50 {}  mean {}  p99 {}", ms(p50), ms(mean), ms(p99));

    // 3. A 200-task workflow of trivial plugins, end to end through the dagrun binary.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "x,y\n1,2\n").unwrap();
    let mut wf = String::from("Workflow(name: \"plugins\", tasks: [\n");
    for i in 0..200 {
        wf.push_str(&format!(
            "  Task(name: \"t{i}\", kind: Wasm(plugin: \"{}\"), inputs: {{\"data\": File(\"data.csv\")}}, \
             outputs: {{\"out\": \"out/t{i}.csv\"}}, params: {{\"factor\": {i}.0}}),\n",
            copy.display()
        ));
    }
    wf.push_str("])\n");
    std::fs::write(dir.path().join("wf.ron"), wf).unwrap();
    // A private compiled cache, so the first run really compiles.
    let compiled = tempfile::tempdir().unwrap();
    let time_run = |dir: &Path, args: &[&str]| {
        let start = Instant::now();
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env("DAGRUN_WASM_CACHE", compiled.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        start.elapsed()
    };
    let fresh = time_run(dir.path(), &["run", "wf.ron", "--json"]);
    let _ = time_run(dir.path(), &["run", "wf.ron", "--json"]);
    let mut cached: Vec<Duration> = (0..5).map(|_| time_run(dir.path(), &["run", "wf.ron", "--json"])).collect();
    let cached = percentile(&mut cached, 0.5);
    // Fresh again (a new state directory), with the compiled module in the user's cache.
    std::fs::remove_dir_all(dir.path().join(".dagrun")).unwrap();
    let fresh_warm = time_run(dir.path(), &["run", "wf.ron", "--json"]);
    println!("200-task workflow, fresh (incl. first compile): {}", ms(fresh));
    println!("200-task workflow, fresh, compiled module cached: {}", ms(fresh_warm));
    println!("200-task workflow, cached re-run (median of 5):  {}", ms(cached));
}
