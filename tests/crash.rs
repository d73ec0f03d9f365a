//! Crash consistency at random moments: `kill -9` a run at a moment drawn from a seeded PRNG,
//! then `cache verify` must find nothing wrong and a re-run must produce a clean run's outputs.
//!
//! The seed is printed (see the test's output) and can be replayed with `DAGRUN_CRASH_SEED=N`;
//! `DAGRUN_CRASH_KILLS=N` changes the number of kills (default 30).

use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::{Sandbox, stdout};

/// Two chains of six ~40 ms tasks joined by a last one, so kills land while tasks run, while
/// outputs are stored and while entries are written, with two tasks at a time.
fn workflow() -> Sandbox {
    let mut tasks = String::new();
    for chain in ["a", "b"] {
        for i in 0..6 {
            let input =
                if i == 0 { "File(\"seed.txt\")".to_owned() } else { format!("Output(\"{chain}{}\", \"o\")", i - 1) };
            tasks.push_str(&format!(
                "Task(name: \"{chain}{i}\", kind: Command(run: \"sleep 0.04; cat $DAGRUN_IN_I > $DAGRUN_OUT_O; echo {chain}{i} >> $DAGRUN_OUT_O\"), \
                 inputs: {{\"i\": {input}}}, outputs: {{\"o\": \"out/{chain}{i}.txt\"}}),\n"
            ));
        }
    }
    tasks.push_str(
        "Task(name: \"join\", kind: Command(run: \"cat $DAGRUN_IN_A $DAGRUN_IN_B > $DAGRUN_OUT_O\"), \
         inputs: {\"a\": Output(\"a5\", \"o\"), \"b\": Output(\"b5\", \"o\")}, outputs: {\"o\": \"out/join.txt\"}),\n",
    );
    let s = Sandbox::new(&format!("Workflow(name: \"crash\", tasks: [\n{tasks}])"));
    s.write("seed.txt", "seed\n");
    s
}

fn outputs(s: &Sandbox) -> Vec<String> {
    let names = ["a", "b"].iter().flat_map(|c| (0..6).map(move |i| format!("{c}{i}")));
    names.chain(["join".to_owned()]).map(|n| s.read(&format!("out/{n}.txt"))).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

#[test]
fn kill_minus_nine_at_random_moments_never_corrupts_the_cache() {
    let started = Instant::now();
    let seed = env_u64("DAGRUN_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let kills = env_u64("DAGRUN_CRASH_KILLS").unwrap_or(30);
    println!("crash test seed: {seed} (replay with DAGRUN_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let clean = workflow();
    assert_eq!(clean.run_json(&[]).2, 0);
    let expected = outputs(&clean);

    let (mut mid_run, mut before_any, mut after_all) = (0, 0, 0);
    for n in 0..kills {
        let s = workflow();
        // The moment is anchored to the run's progress, not to a clock (a loaded machine would
        // shift every kill past the end): after the `after`-th task finished (0: right after the
        // run started; 13: after the last), plus up to 60 ms, which lands inside the next
        // tasks' commands, output stores and entry writes.
        let after = rng.usize(0..=13);
        let delay_ms = rng.u64(0..60);
        let ctx = format!("kill {n} {delay_ms} ms after task {after} finished (DAGRUN_CRASH_SEED={seed})");
        let mut child =
            s.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let events = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let mut finished = 0;
        for line in events.map_while(Result::ok) {
            if line.contains("\"event\":\"task_finished\"") {
                finished += 1;
            }
            if finished >= after && (after > 0 || line.contains("\"event\":\"run_started\"")) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
        assert_eq!(verify.status.code(), Some(0), "{ctx}: {}", stdout(&verify));
        let (st, _, code) = s.run_json(&[]);
        assert_eq!(code, 0, "{ctx}: {st:?}");
        assert_eq!(st.len(), 13, "{ctx}: {st:?}");
        assert_eq!(outputs(&s), expected, "{ctx}");
        let cached = st.values().filter(|v| *v == "cached").count();
        let ran = st.values().filter(|v| *v == "succeeded").count();
        assert_eq!(cached + ran, 13, "{ctx}: {st:?}");
        match (cached, ran) {
            (0, _) => before_any += 1,
            (_, 0) => after_all += 1,
            _ => mid_run += 1,
        }
        let (again, _, _) = s.run_json(&[]);
        assert!(again.values().all(|v| v == "cached"), "{ctx}: {again:?}");
    }
    println!(
        "{kills} kills: {mid_run} mid-run, {before_any} before any task finished, {after_all} after the last; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        mid_run * 3 >= kills as usize,
        "only {mid_run} of {kills} kills landed mid-run (DAGRUN_CRASH_SEED={seed}): the run is too fast for the kill moments"
    );
}

/// Six independent tasks with 16 MB outputs: restoring them from the cache (copied and re-hashed)
/// takes long enough to be killed part-way.
fn big_outputs() -> Sandbox {
    let tasks: String = (0..6)
        .map(|i| {
            format!(
                "Task(name: \"big{i}\", kind: Command(run: \"yes {i} | head -c 16000000 > $DAGRUN_OUT_O\"), \
                 outputs: {{\"o\": \"out/big{i}.bin\"}}),\n"
            )
        })
        .collect();
    Sandbox::new(&format!("Workflow(name: \"big\", tasks: [\n{tasks}])"))
}

/// The outputs that are in place with their final content.
fn restored(s: &Sandbox, expected: &[Vec<u8>]) -> usize {
    (0..6).filter(|i| std::fs::read(s.path(&format!("out/big{i}.bin"))).ok().as_ref() == Some(&expected[*i])).count()
}

#[test]
fn kill_minus_nine_during_output_restore_never_corrupts_the_cache() {
    let seed = env_u64("DAGRUN_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("restore crash test seed: {seed} (replay with DAGRUN_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let s = big_outputs();
    assert_eq!(s.run_json(&[]).2, 0);
    let expected: Vec<Vec<u8>> = (0..6).map(|i| std::fs::read(s.path(&format!("out/big{i}.bin"))).unwrap()).collect();

    // Anchored to the restore's progress: `out/` appears when the first restore starts. Returns the
    // running `dagrun run` and when that was.
    let start_restore = || {
        std::fs::remove_dir_all(s.path("out")).unwrap();
        let child = s.cmd(&["run", "wf.ron", "--json"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.path("out").exists() {
            assert!(Instant::now() < deadline, "the run never started restoring");
            std::thread::sleep(Duration::from_millis(1));
        }
        (child, Instant::now())
    };
    // How long restoring the six outputs takes here (debug or release build, loaded machine or not),
    // until the last is renamed into place; the shorter of two restores (the first may read a cold
    // cache). The kills land within its first two thirds.
    let restore_ms = (0..2)
        .map(|_| {
            let (mut child, started) = start_restore();
            while !(0..6).all(|i| s.path(&format!("out/big{i}.bin")).exists()) {
                assert!(child.try_wait().unwrap().is_none(), "the run ended before restoring every output");
                std::thread::sleep(Duration::from_micros(200));
            }
            let took = started.elapsed().as_millis() as u64;
            assert!(child.wait().unwrap().success());
            took
        })
        .min()
        .unwrap();
    println!("restoring the outputs took {restore_ms} ms");
    let restore_ms = (restore_ms * 2 / 3).max(2);

    let mut partial = 0;
    for n in 0..8 {
        let (mut child, _) = start_restore();
        let delay_ms = rng.u64(0..restore_ms);
        let ctx = format!("kill {n}, {delay_ms} ms into the restore (DAGRUN_CRASH_SEED={seed})");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let done = restored(&s, &expected);
        println!("{ctx}: {done} restored");
        if done < 6 {
            partial += 1;
        }

        // Straight after the kill: the restore only reads the cache, which must still verify.
        let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
        assert_eq!(verify.status.code(), Some(0), "{ctx}: {}", stdout(&verify));
        assert!(stdout(&verify).contains("no corruption found"), "{ctx}: {}", stdout(&verify));
        let (st, _, code) = s.run_json(&[]);
        assert_eq!(code, 0, "{ctx}: {st:?}");
        assert_eq!(st.len(), 6, "{ctx}: {st:?}");
        assert!(st.values().all(|v| v == "cached"), "{ctx} ({done} of 6 restored before it): {st:?}");
        assert_eq!(restored(&s, &expected), 6, "{ctx}");
        // What docs/cli.md ("What a crash leaves behind") says a kill during a restore may leave.
        for name in std::fs::read_dir(s.path("out")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()) {
            let declared = name.starts_with("big") && name.ends_with(".bin");
            let leftover = name.starts_with(".restore.") && name.ends_with(".dagrun-tmp");
            assert!(declared || leftover, "{ctx}: unexpected file out/{name}");
        }
    }
    assert!(partial >= 3, "only {partial} of 8 kills landed before the restore finished (DAGRUN_CRASH_SEED={seed})");
}

/// The files under `dir`, recursively.
#[cfg(target_os = "linux")]
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

/// A power loss right after a run, as the next boot sees it: entry files cut short or gone, and
/// the run's journal written in another boot. The next run replays the journal before anything
/// else: every entry is back, every task a cache hit, and the journal is removed.
#[cfg(target_os = "linux")]
#[test]
fn after_a_power_loss_the_runs_journal_brings_its_cache_entries_back() {
    let s = workflow();
    assert_eq!(s.run_json(&[]).2, 0);
    let expected = outputs(&s);
    let journals = files_under(&s.path(".dagrun/journal"));
    assert_eq!(journals.len(), 1, "one journal per run: {journals:?}");
    let entries = files_under(&s.path(".dagrun/actions"));
    assert_eq!(entries.len(), 13);
    let whole: Vec<Vec<u8>> = entries.iter().map(|e| std::fs::read(e).unwrap()).collect();
    for (i, (e, bytes)) in entries.iter().zip(&whole).enumerate() {
        if i % 2 == 0 {
            std::fs::remove_file(e).unwrap();
        } else {
            std::fs::write(e, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    // After a restart the stat cache is not trusted (it names the boot it was written in).
    std::fs::remove_file(s.path(".dagrun/statcache.idx")).unwrap();
    let name = journals[0].file_name().unwrap().to_str().unwrap();
    let (_, rest) = name.split_once('.').unwrap();
    std::fs::rename(&journals[0], journals[0].with_file_name(format!("another-boot.{rest}"))).unwrap();

    let (st, _, code) = s.run_json(&[]);
    assert_eq!(code, 0, "{st:?}");
    assert!(st.len() == 13 && st.values().all(|v| v == "cached"), "{st:?}");
    assert_eq!(outputs(&s), expected);
    let back: Vec<Vec<u8>> = entries.iter().map(|e| std::fs::read(e).unwrap()).collect();
    assert!(back == whole, "every entry file is back as it was written");
    assert!(
        files_under(&s.path(".dagrun/journal")).is_empty(),
        "the replayed journal is removed; a run of hits writes none"
    );
    let verify = s.dagrun(&["cache", "verify", "wf.ron"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
}
