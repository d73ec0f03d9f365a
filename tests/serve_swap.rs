//! `dagrun serve` under load: hot swap while requests run (every answer comes from a version that
//! was current while its request ran, with that version's predictions), and a graceful shutdown
//! that answers the requests in flight.

mod common;
mod serve_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::serve::{Serve, add_version, set_current};
use serde_json::Value;
use serve_support::*;

/// What one request of the load saw.
#[derive(Debug)]
struct Sent {
    sent: Instant,
    answered: Instant,
    first_row: usize,
    rows: usize,
    outcome: Result<(u16, Option<String>, Value), String>,
}

/// A move of `current`: to `version`, between `start` and `end`.
#[derive(Debug, Clone)]
struct Move {
    version: String,
    start: Instant,
    end: Instant,
}

/// Moves `current` with `how` a little after the last move, timing it.
fn timed(moves: &mut Vec<Move>, version: &str, how: impl FnOnce()) {
    std::thread::sleep(Duration::from_millis(150));
    let start = Instant::now();
    how();
    moves.push(Move { version: version.to_owned(), start, end: Instant::now() });
}

/// `dagrun models rollback NAME --to VERSION --registry REG`, the real command.
fn rollback(reg: &Path, name: &str, version: &str) {
    let out = std::process::Command::new(common::BIN)
        .args(["models", "rollback", name, "--to", version, "--registry"])
        .arg(reg)
        .output()
        .unwrap();
    assert!(out.status.success(), "rollback: {}", String::from_utf8_lossy(&out.stderr));
}

/// The acceptance test of hot swap: 16 clients send requests in a loop while `current` moves 10
/// times (deploys of new versions, rollbacks by the real command). No request fails; each answer
/// names (header and body) a version that was current at some point while its request ran, and
/// carries that version's predictions for the request's rows.
#[test]
fn hot_swap_under_load_answers_every_request_from_a_version_current_during_it() {
    let rows = fixture_rows(40);
    let (logreg, gb) = (model8("logreg_binary"), model8("gb_binary"));
    let reference = reference_answers(&[("logreg", &logreg), ("gb", &gb)], &rows);
    let differ = (0..rows.len()).filter(|&i| !same(&reference["logreg"][i], &reference["gb"][i])).count();
    assert_eq!(differ, rows.len(), "the two models must answer every row differently");
    // Odd versions are logreg_binary, even ones gb_binary.
    let model_of =
        |version: &str| if version.trim_start_matches('v').parse::<u32>().unwrap() % 2 == 1 { "logreg" } else { "gb" };
    let digest_of =
        |version: &str| blake3::hash(if model_of(version) == "logreg" { &logreg } else { &gb }).to_hex().to_string();

    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &logreg);
    add_version(&reg, "churn", "v0002", &gb);
    set_current(&reg, "churn", "v0001");
    let start = Instant::now();
    let serve = Serve::start(&reg, &["--workers", "2"]);
    let url = serve.url("/predict/churn");

    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (client, url, stop, n) = (client.clone(), url.clone(), stop.clone(), rows.len());
            let rows = rows.clone();
            rt.spawn(async move {
                let mut seen = Vec::new();
                for i in 0..5000 {
                    if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(120) {
                        break;
                    }
                    let (first_row, count) = ((t * 7 + i * 3) % n, 1 + (t + i) % 4);
                    let body = records((0..count).map(|k| &rows[(first_row + k) % n]));
                    let sent = Instant::now();
                    let outcome = async {
                        let r = client.post(&url).body(body).send().await.map_err(|e| e.to_string())?;
                        let status = r.status().as_u16();
                        let header = r.headers().get("dagrun-model-version").map(|v| v.to_str().unwrap().to_owned());
                        let body: Value = r.json().await.map_err(|e| e.to_string())?;
                        Ok((status, header, body))
                    }
                    .await;
                    seen.push(Sent { sent, answered: Instant::now(), first_row, rows: count, outcome });
                }
                seen
            })
        })
        .collect();

    // The moves: v0001 is current from before the start.
    let mut moves = vec![Move { version: "v0001".into(), start, end: start }];
    let mut next = 3;
    for k in 0..10 {
        if k % 2 == 0 {
            // A deploy: v0002 the first time, then a new version each time.
            let v = if k == 0 { "v0002".to_owned() } else { format!("v{next:04}") };
            if k > 0 {
                add_version(&reg, "churn", &v, if model_of(&v) == "logreg" { &logreg } else { &gb });
                next += 1;
            }
            timed(&mut moves, &v, || set_current(&reg, "churn", &v));
        } else {
            // A rollback to the version before the one just deployed.
            let last = moves.last().unwrap().version.clone();
            let n: u32 = last.trim_start_matches('v').parse().unwrap();
            let v = format!("v{:04}", n - 1);
            timed(&mut moves, &v, || rollback(&reg, "churn", &v));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<Sent> = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });

    // Version `moves[k].version` may be current from `moves[k].start` to `moves[k + 1].end`.
    let current_during = |version: &str, from: Instant, to: Instant| {
        moves.iter().enumerate().any(|(k, m)| {
            let until = moves.get(k + 1).map(|n| n.end);
            m.version == version && m.start <= to && until.is_none_or(|u| from <= u)
        })
    };
    let mut problems = Vec::new();
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sent {
        let (status, header, body) = match &s.outcome {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("request failed: {e}"));
                continue;
            }
        };
        if *status != 200 {
            problems.push(format!("status {status}: {body}"));
            continue;
        }
        let version = body["version"].as_str().unwrap_or_default();
        *versions.entry(version.to_owned()).or_default() += 1;
        if header.as_deref() != Some(version) {
            problems.push(format!("header {header:?}, body {version}"));
        }
        if body["digest"] != digest_of(version).as_str() {
            problems.push(format!("{version} answered with digest {}", body["digest"]));
        }
        let expected = &reference[model_of(version)];
        let got = row_answers(body);
        let wrong =
            (0..s.rows).filter(|&k| !got.get(k).is_some_and(|g| same(g, &expected[(s.first_row + k) % rows.len()])));
        if got.len() != s.rows || wrong.count() > 0 {
            problems.push(format!("{version} answered rows {}+{} with {got:?}", s.first_row, s.rows));
        }
        if !current_during(version, s.sent, s.answered) {
            let at = |i: Instant| i.duration_since(start).as_secs_f64() * 1000.0;
            let timeline: Vec<String> =
                moves.iter().map(|m| format!("{} at {:.1}..{:.1}ms", m.version, at(m.start), at(m.end))).collect();
            problems.push(format!(
                "{version} was not current between {:.1}ms and {:.1}ms; moves: {}",
                at(s.sent),
                at(s.answered),
                timeline.join(", ")
            ));
        }
    }
    let total = sent.len();
    problems.truncate(10);
    assert!(
        problems.is_empty(),
        "{total} requests, by version {versions:?}; problems:\n{}\nserver: {:#?}",
        problems.join("\n"),
        serve.lines()
    );
    assert!(versions.len() >= 2, "the swaps happened under load: {versions:?} ({total} requests)");
    let lines = serve.lines();
    assert!(!lines.iter().any(|l| l.contains("panicked") || l.contains("not served")), "{lines:#?}");
    // A rollback to the version just replaced swaps to it without loading it again.
    assert!(lines.iter().any(|l| l.contains("kept loaded since it was replaced")), "{lines:#?}");
    // The replaced versions' workers end once their last request is answered: only the serving
    // version's two and the previous version's two (kept loaded for an instant rollback) remain
    // (no thread leak per swap).
    let workers = || {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", serve.child.id())).unwrap();
        let comm = |t: std::fs::DirEntry| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        tasks.filter_map(Result::ok).map(comm).filter(|c| c.starts_with("serve-churn")).count()
    };
    let since = Instant::now();
    while workers() != 4 {
        assert!(since.elapsed() < WAIT, "{} worker threads after the swaps, 4 expected", workers());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(serve.terminate(), Some(0));
}

/// SIGTERM while requests run: the requests in flight are answered (those whose head the server
/// had read and whose body it was waiting for, sent only after the shutdown began, and a load of
/// concurrent ones), later ones find no server (a connection error, never an error status), and
/// the exit code is 0.
#[test]
fn sigterm_answers_the_requests_in_flight_and_exits_0() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &model8("logreg_binary"));
    set_current(&reg, "churn", "v0001");
    let mut serve = Serve::start(&reg, &["--workers", "1"]);
    let rows = fixture_rows(40);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // In flight for certain: the server read the head and asked for the body (100 Continue).
    let body = records(&rows[..3]);
    let held: Vec<tokio::net::TcpStream> = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut s = tokio::net::TcpStream::connect(serve.addr).await.unwrap();
            let head = format!(
                "POST /predict/churn HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
                serve.addr,
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let answer = read_head(&mut s).await;
            assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer}");
            held.push(s);
        }
        held
    });

    // A load of concurrent requests, each client until its first connection error.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = serve.url("/predict/churn");
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            // A client (and connection pool) per task, each request bounded: one shared pool
            // once left a task waiting forever on a connection that had died with the server.
            let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
            let (url, answered) = (url.clone(), answered.clone());
            let body = records(rows.iter().cycle().skip(t).take(1 + t % 5));
            rt.spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..20_000 {
                    match client.post(&url).body(body.clone()).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let ok = r.json::<Value>().await.is_ok_and(|b| b["version"] == "v0001");
                            statuses.push((status, ok));
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert!(!e.is_timeout(), "a request got no answer for {WAIT:?}: {e}");
                            return (statuses, Some(e.to_string()));
                        }
                    }
                }
                (statuses, None)
            })
        })
        .collect();
    let since = Instant::now();
    while answered.load(Ordering::Relaxed) < 200 {
        assert!(since.elapsed() < WAIT, "the load got no answers: {:?}", serve.lines());
        std::thread::sleep(Duration::from_millis(5));
    }
    #[allow(unsafe_code)]
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(serve.child.id() as i32, libc::SIGTERM);
    }
    serve.wait_for_line("shutting down", WAIT);

    let finished: Vec<String> = rt.block_on(async {
        let mut out = Vec::new();
        for mut s in held {
            s.write_all(body.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            let _ = s.read_to_end(&mut response).await;
            out.push(String::from_utf8_lossy(&response).into_owned());
        }
        out
    });
    for r in &finished {
        assert!(r.starts_with("HTTP/1.1 200"), "a request in flight at SIGTERM: {r:?}");
        assert!(r.contains("\"version\":\"v0001\"") && r.contains("\"rows\":3"), "{r}");
    }
    let outcomes = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    let mut statuses: BTreeMap<(u16, bool), usize> = BTreeMap::new();
    for (s, _) in &outcomes {
        s.iter().for_each(|k| *statuses.entry(*k).or_default() += 1);
    }
    assert_eq!(statuses.keys().collect::<Vec<_>>(), [&(200, true)], "{statuses:?}");
    assert!(
        outcomes.iter().all(|(_, e)| e.is_some()),
        "every client ends on a connection error once the server is gone"
    );
    let start = Instant::now();
    let code = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(start.elapsed() < WAIT, "dagrun serve did not stop after SIGTERM: {:?}", serve.lines());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0), "{:?}", serve.lines());
    let lines = serve.lines();
    assert!(lines.last().is_some_and(|l| l == "stopped"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:?}");
}

/// A second SIGTERM while a request in flight holds the shutdown up (its body never comes) stops
/// the service at once, with the exit code of an interrupt, instead of after the drain deadline.
#[test]
fn a_second_sigterm_stops_at_once() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &model8("logreg_binary"));
    set_current(&reg, "churn", "v0001");
    let mut serve = Serve::start(&reg, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _stalled = rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(serve.addr).await.unwrap();
        let head = "POST /predict/churn HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nexpect: 100-continue\r\n\r\n";
        s.write_all(head.as_bytes()).await.unwrap();
        assert!(read_head(&mut s).await.starts_with("HTTP/1.1 100 Continue"));
        s
    });
    let sigterm = |serve: &Serve| {
        #[allow(unsafe_code)]
        // SAFETY: sends a signal to our own child process.
        unsafe {
            libc::kill(serve.child.id() as i32, libc::SIGTERM);
        }
    };
    sigterm(&serve);
    serve.wait_for_line("shutting down", WAIT);
    sigterm(&serve);
    let start = Instant::now();
    let code = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(start.elapsed() < 2 * WAIT, "dagrun serve did not stop: {:?}", serve.lines());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(130), "{:?}", serve.lines());
    let lines = serve.lines();
    assert!(lines.iter().any(|l| l.contains("interrupted again")), "{lines:?}");
}

/// Requests waiting together run as one batch (`--max-wait` holds the first one for the others, up
/// to `--max-batch` rows): each still gets the predictions of its own rows, and `/metrics` counts
/// the combined batch.
#[test]
fn requests_run_as_one_batch_each_get_their_own_rows() {
    let rows = fixture_rows(16);
    let logreg = model8("logreg_binary");
    let reference = reference_answers(&[("logreg", &logreg)], &rows);
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &logreg);
    set_current(&reg, "churn", "v0001");
    let serve = Serve::start(&reg, &["--workers", "1", "--max-wait", "10s", "--max-batch", "16"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let answers: Vec<Value> = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (client, url, body) =
                    (client.clone(), serve.url("/predict/churn"), records(&rows[2 * i..2 * i + 2]));
                tokio::spawn(
                    async move { client.post(url).body(body).send().await.unwrap().json::<Value>().await.unwrap() },
                )
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (i, a) in answers.iter().enumerate() {
        let got = row_answers(a);
        assert_eq!(got.len(), 2, "{a}");
        for (k, g) in got.iter().enumerate() {
            assert!(
                same(g, &reference["logreg"][2 * i + k]),
                "request {i} row {k}: {g:?}, expected {:?}",
                reference["logreg"][2 * i + k]
            );
        }
    }
    let text = rt.block_on(async { reqwest::get(serve.url("/metrics")).await.unwrap().text().await.unwrap() });
    let value = |series: &str| text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok());
    assert!(value("dagrun_serve_combined_batches_total").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(value(r#"dagrun_serve_rows_total{model="churn",version="v0001"}"#), Some(16.0), "{text}");
    assert_eq!(serve.terminate(), Some(0));
}
