//! Remote execution end to end: the real `dagrun` binary runs tasks as jobs on a real Slurm
//! cluster and a real Ray cluster, exchanging inputs and outputs through a real S3 server
//! (SeaweedFS). `scripts/test-infra.sh` starts the clusters and sets `DAGRUN_TEST_SLURM`
//! (with `SLURM_CONF`), `DAGRUN_TEST_RAY_ADDRESS` and `DAGRUN_WEED`; a test whose
//! infrastructure is missing prints SKIPPED and passes.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::s3::Seaweed;
use serde_json::Value;

const BUCKET: &str = "remote-exec";

/// One test at a time: each starts its own S3 server and jobs, and on a small machine a dozen
/// servers starting at once (beside Ray) miss their start-up deadlines.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the Slurm cluster is there (else SKIPPED is printed).
fn slurm(test: &str) -> bool {
    let there = std::env::var_os("DAGRUN_TEST_SLURM").is_some();
    if !there {
        eprintln!("SKIPPED {test}: DAGRUN_TEST_SLURM is not set (scripts/test-infra.sh starts Slurm and sets it)");
    }
    there
}

/// The Ray Jobs API address (else SKIPPED is printed).
fn ray(test: &str) -> Option<String> {
    let address = std::env::var("DAGRUN_TEST_RAY_ADDRESS").ok();
    if address.is_none() {
        eprintln!("SKIPPED {test}: DAGRUN_TEST_RAY_ADDRESS is not set (scripts/test-infra.sh starts Ray and sets it)");
    }
    address
}

/// `dagrun` in `dir` with the remote cache of `s3` (when given) and a fresh prefix.
fn dagrun(dir: &Path, s3: Option<&Seaweed>, args: &[&str]) -> Command {
    let mut cmd = common::dagrun_for_plugins();
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1").env_remove("DAGRUN_STATE_DIR").stdin(Stdio::null());
    cmd.env_remove("DAGRUN_REMOTE_CACHE");
    if let Some(s3) = s3 {
        s3.apply(&mut cmd);
        cmd.env("DAGRUN_REMOTE_CACHE", format!("s3://{BUCKET}/{}", prefix(dir)));
    }
    cmd
}

/// The remote cache prefix of the runs in `dir`.
fn prefix(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().to_lowercase().replace(['_', '.'], "-")
}

/// The body of `GET path` on the S3 server's filer (HTTP/1.0, no signing), if it answers 200.
fn filer_get(s3: &Seaweed, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(s3.filer()).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", s3.filer()).as_bytes()).ok()?;
    let mut all = Vec::new();
    conn.read_to_end(&mut all).ok()?;
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    if !all.starts_with(b"HTTP/1.1 200") && !all.starts_with(b"HTTP/1.0 200") {
        panic!("GET {path}: {}", String::from_utf8_lossy(&all[..end]));
    }
    Some(all[end + 4..].to_vec())
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn finished<'a>(events: &'a [Value], task: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == task)
        .unwrap_or_else(|| panic!("no task_finished for {task}: {events:#?}"))
}

/// The retrain workflow with `executor` set on its train task.
fn retrain_with(executor: &str) -> tempfile::TempDir {
    let dir = common::repo_workflows(&["retrain.ron"]);
    let path = dir.path().join("retrain.ron");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = "name: \"train\",";
    assert!(text.contains(at), "workflows/retrain.ron has a train task");
    std::fs::write(&path, text.replacen(at, &format!("{at}\n            executor: {executor},"), 1)).unwrap();
    dir
}

/// The train task run locally and with `executor`: same key, byte-identical outputs.
fn same_as_local(executor: &str, s3: &Seaweed, says: &str) {
    let local = common::repo_workflows(&["retrain.ron"]);
    let out = dagrun(local.path(), None, &["run", "retrain.ron", "--only", "train", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "local run: {}", common::stderr(&out));
    let local_events = events(&out);

    let remote = retrain_with(executor);
    let started = Instant::now();
    let out = dagrun(remote.path(), Some(s3), &["run", "retrain.ron", "--only", "train", "--json"]).output().unwrap();
    let remote_events = events(&out);
    let train = finished(&remote_events, "train");
    assert_eq!(out.status.code(), Some(0), "{train:#?}\n{}", common::stderr(&out));
    assert_eq!(train["status"], "succeeded");
    assert_eq!(train["key"], finished(&local_events, "train")["key"], "running remotely never changes the key");
    for f in ["out/retrain/model.onnx", "out/retrain/train-metrics.json"] {
        let (a, b) = (std::fs::read(local.path().join(f)).unwrap(), std::fs::read(remote.path().join(f)).unwrap());
        assert!(a == b && !a.is_empty(), "{f} differs between the local and the remote run");
    }
    let log = std::fs::read_to_string(train["log"].as_str().unwrap()).unwrap();
    assert!(log.contains(says) && log.contains("--- the log of"), "{log}");
    eprintln!("remote train ({executor}) took {:?}", started.elapsed());

    // The job published the entry under the local key, naming the very bytes restored here.
    let key = train["key"].as_str().unwrap();
    let path = format!("/buckets/{BUCKET}/{}/v1/actions/{}/{key}.json", prefix(remote.path()), &key[..2]);
    let entry: Value = serde_json::from_slice(&filer_get(s3, &path).expect("the remote entry")).unwrap();
    assert_eq!(entry["key"], key);
    assert_eq!(entry["task"], "train");
    let model = std::fs::read(remote.path().join("out/retrain/model.onnx")).unwrap();
    assert_eq!(entry["outputs"]["model"]["digest"], blake3::hash(&model).to_hex().as_str());
}

#[test]
fn the_retrain_train_task_runs_as_a_slurm_job_with_the_local_key_and_outputs() {
    let _serial = serial();
    let test = "the_retrain_train_task_runs_as_a_slurm_job";
    if !slurm(test) {
        return;
    }
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    same_as_local(r#"Slurm(partition: "debug", cpus: 1, mem: "1GiB", time: "10m")"#, &s3, "submitted Slurm job");
}

#[test]
fn the_retrain_train_task_runs_as_a_ray_job_with_the_local_key_and_outputs() {
    let _serial = serial();
    let test = "the_retrain_train_task_runs_as_a_ray_job";
    let Some(address) = ray(test) else { return };
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    same_as_local(&format!(r#"Ray(address: "{address}", num_cpus: 1)"#), &s3, "submitted Ray job");
}

/// A workflow of one `Command` task with `executor` in its own temp dir.
fn one_task(executor: &str, run: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wf = format!(
        r#"Workflow(name: "remote", tasks: [
            Task(name: "t", kind: Command(run: "{run}"), executor: {executor}, outputs: {{"o": "out/o.txt"}}{extra}),
        ])"#
    );
    std::fs::write(dir.path().join("wf.ron"), wf).unwrap();
    dir
}

#[test]
fn a_remote_task_without_a_remote_cache_fails_naming_the_setting() {
    let _serial = serial();
    let dir = one_task(r#"Slurm(partition: "debug")"#, "echo hi > $DAGRUN_OUT_O", "");
    let out = dagrun(dir.path(), None, &["run", "wf.ron", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = finished(&events(&out), "t").clone();
    let error = t["error"].as_str().unwrap();
    assert!(
        error.contains("runs on slurm, which needs a remote cache") && error.contains("DAGRUN_REMOTE_CACHE=s3://"),
        "{error}"
    );
}

#[test]
fn a_slurm_job_that_cannot_start_fails_with_sbatchs_message() {
    let _serial = serial();
    let test = "a_slurm_job_that_cannot_start";
    if !slurm(test) {
        return;
    }
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    let dir = one_task(r#"Slurm(partition: "no-such-partition")"#, "echo hi > $DAGRUN_OUT_O", "");
    let out = dagrun(dir.path(), Some(&s3), &["run", "wf.ron", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let t = finished(&events(&out), "t").clone();
    let error = t["error"].as_str().unwrap();
    assert!(
        error.starts_with("Slurm refused the job: ")
            && error.contains("invalid partition specified: no-such-partition"),
        "{error}"
    );
    assert_eq!(t["failure"]["kind"], "remote");
}

#[test]
fn a_failed_slurm_job_is_a_failed_attempt_and_is_retried() {
    let _serial = serial();
    let test = "a_failed_slurm_job_is_retried";
    if !slurm(test) {
        return;
    }
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    let dir = one_task(r#"Slurm(partition: "debug")"#, "echo broken >&2; exit 3", r#", retries: 1"#);
    let out = dagrun(dir.path(), Some(&s3), &["run", "wf.ron", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let evs = events(&out);
    let t = finished(&evs, "t");
    let error = t["error"].as_str().unwrap();
    assert_eq!(t["attempts"], 2, "{t:#?}");
    assert!(
        error.contains("failed (JobState=FAILED")
            && error.contains("exit code 3")
            && error.contains("(after 2 attempts)"),
        "{error}"
    );
    assert!(evs.iter().any(|e| e["event"] == "task_retrying"));
}

/// The id of the job a running task submitted, from its log (`[dagrun] submitted X job ID`).
fn submitted_job(dir: &Path, task: &str, what: &str, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let logs = dir.join(".dagrun/logs");
        for run in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(run.path().join(format!("{task}.log"))).unwrap_or_default();
            let marker = format!("[dagrun] submitted {what} job ");
            if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(&marker)) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        assert!(started.elapsed() < within, "task {task} submitted no {what} job within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn slurm_state(id: &str) -> String {
    let out = Command::new("scontrol").args(["show", "job", "-o", id]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().find_map(|w| w.strip_prefix("JobState=")).unwrap_or("").to_owned()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_slurm_job_cancelled_from_outside_fails_the_task() {
    let _serial = serial();
    let test = "a_slurm_job_cancelled_from_outside";
    if !slurm(test) {
        return;
    }
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    let dir = one_task(r#"Slurm(partition: "debug")"#, "sleep 120", "");
    let child = dagrun(dir.path(), Some(&s3), &["run", "wf.ron", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    let id = submitted_job(dir.path(), "t", "Slurm", Duration::from_secs(60));
    wait_for("the job runs", Duration::from_secs(30), || slurm_state(&id) == "RUNNING");
    assert!(Command::new("scancel").arg(&id).status().unwrap().success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "the run noticed within seconds");
    assert_eq!(out.status.code(), Some(1));
    let t = finished(&events(&out), "t").clone();
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("Slurm job {id} was cancelled by Slurm (JobState=CANCELLED")), "{error}");
}

#[test]
fn a_ray_cluster_that_is_down_fails_the_task_within_seconds() {
    let _serial = serial();
    let test = "a_ray_cluster_that_is_down";
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("http://127.0.0.1:{port}");
    let dir = one_task(&format!(r#"Ray(address: "{address}")"#), "echo hi > $DAGRUN_OUT_O", "");
    let started = Instant::now();
    let out = dagrun(dir.path(), Some(&s3), &["run", "wf.ron", "--json"]).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let t = finished(&events(&out), "t").clone();
    let error = t["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("the Ray cluster at {address} is not reachable (POST /api/jobs/: "))
            && error.contains("start it (`ray start --head`) or fix `executor: Ray(address: ...)`"),
        "{error}"
    );
}

fn ray_status(address: &str, id: &str) -> String {
    let out = Command::new("curl").args(["-fsS", &format!("{address}/api/jobs/{id}")]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["status"].as_str().unwrap_or("").to_owned()
}

#[test]
fn ctrl_c_cancels_the_running_slurm_and_ray_jobs() {
    let _serial = serial();
    let test = "ctrl_c_cancels_remote_jobs";
    if !slurm(test) {
        return;
    }
    let Some(address) = ray(test) else { return };
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let wf = format!(
        r#"Workflow(name: "remote", tasks: [
            Task(name: "on-slurm", kind: Command(run: "sleep 120"), executor: Slurm(partition: "debug"), outputs: {{"o": "out/a.txt"}}),
            Task(name: "on-ray", kind: Command(run: "sleep 120"), executor: Ray(address: "{address}"), outputs: {{"o": "out/b.txt"}}),
        ])"#
    );
    std::fs::write(dir.path().join("wf.ron"), wf).unwrap();
    let mut cmd = dagrun(dir.path(), Some(&s3), &["run", "wf.ron", "--json", "-j", "2"]);
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let slurm_id = submitted_job(dir.path(), "on-slurm", "Slurm", Duration::from_secs(60));
    let ray_id = submitted_job(dir.path(), "on-ray", "Ray", Duration::from_secs(60));
    wait_for("the Slurm job runs", Duration::from_secs(30), || slurm_state(&slurm_id) == "RUNNING");
    wait_for("the Ray job runs", Duration::from_secs(60), || ray_status(&address, &ray_id) == "RUNNING");
    // Ctrl-C, as a terminal sends it.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(130), "{}", common::stderr(&out));
    assert_eq!(slurm_state(&slurm_id), "CANCELLED");
    wait_for("the Ray job is stopped", Duration::from_secs(20), || ray_status(&address, &ray_id) == "STOPPED");
}

#[test]
fn a_remote_task_past_its_timeout_fails_and_its_job_is_cancelled() {
    let _serial = serial();
    let test = "a_remote_task_past_its_timeout";
    if !slurm(test) {
        return;
    }
    let Some(s3) = Seaweed::start(test, &[BUCKET]) else { return };
    let dir = one_task(r#"Slurm(partition: "debug")"#, "sleep 120", r#", timeout: "3s""#);
    let started = Instant::now();
    let out = dagrun(dir.path(), Some(&s3), &["run", "wf.ron", "--json"]).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let t = finished(&events(&out), "t").clone();
    let error = t["error"].as_str().unwrap();
    let id = submitted_job(dir.path(), "t", "Slurm", Duration::from_secs(1));
    assert_eq!(error, format!("timed out after 3.0s (the task's `timeout`); Slurm job {id} was cancelled"));
    assert_eq!(t["failure"]["kind"], "timeout");
    assert_eq!(slurm_state(&id), "CANCELLED");
}
