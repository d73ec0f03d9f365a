//! Gathering small requests on the thread that read them, polled by hand: who runs the batch, and
//! what happens to those who joined when the leader is dropped first.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};

use super::*;

/// A registry holding the `logreg_binary` fixture as `m` v0001, and the fixture's first rows.
fn fixture(dir: &Path) -> Vec<Vec<f64>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx/logreg_binary");
    let bytes = std::fs::read(fixtures.join("model.onnx")).unwrap();
    let version = dir.join("m/v0001");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("model.onnx"), &bytes).unwrap();
    let meta = registry::Metadata {
        version: registry::REGISTRY_VERSION,
        name: "m".into(),
        model_version: "v0001".into(),
        digest: blake3::hash(&bytes).to_hex().to_string(),
        reference: None,
        promoted_ms: None,
        previous: None,
        approval: None,
    };
    std::fs::write(version.join("metadata.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    let csv = std::fs::read_to_string(fixtures.join("test.csv")).unwrap();
    let row = |l: &str| l.split(',').take(8).map(|v| v.parse().unwrap()).collect::<Vec<f64>>();
    csv.lines().skip(1).take(3).map(row).collect()
}

fn load(dir: &Path, workers: usize) -> (Served, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let batching = Batching { workers, max_batch: 64, max_wait: Duration::ZERO };
    (Served::load(dir, "m", "v0001", batching, metrics.clone()).unwrap(), metrics)
}

fn rows(served: &Served, values: &[f64]) -> Rows {
    let mut r = Rows::new(values.len(), served.schema.single_precision);
    values.iter().for_each(|&v| r.values.push(v));
    r.rows = 1;
    r
}

fn poll<F: Future>(f: &mut Pin<Box<F>>) -> Poll<F::Output> {
    f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn labels(out: &Output) -> Vec<usize> {
    match &out.predictions {
        Predictions::Classes { predicted, .. } => predicted.clone(),
        other => panic!("a classifier: {other:?}"),
    }
}

/// Each row alone, through the worker queue.
fn alone(served: &Served, row: &[f64]) -> Vec<usize> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let (reply, answer) = oneshot::channel();
        served.queue.send(Job { rows: rows(served, row), reply }).unwrap();
        labels(&answer.await.unwrap().unwrap())
    })
}

/// Waits until every session is back in the pool (a worker gives its session back just after
/// answering).
fn settle(served: &Served, sessions: usize) {
    let start = std::time::Instant::now();
    while served.sessions.take.len() < sessions {
        assert!(start.elapsed() < Duration::from_secs(10), "a session was never given back");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_first_request_leads_and_runs_those_that_joined_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let (served, metrics) = load(dir.path(), 1);
    let want: Vec<Vec<usize>> = data.iter().map(|r| alone(&served, r)).collect();
    settle(&served, 1);
    let mut lead = Box::pin(served.infer(rows(&served, &data[0])));
    assert!(poll(&mut lead).is_pending(), "the leader yields once");
    let mut joined: Vec<_> = data[1..].iter().map(|r| Box::pin(served.infer(rows(&served, r)))).collect();
    for j in &mut joined {
        assert!(poll(j).is_pending(), "joins the gathering batch");
    }
    let Poll::Ready(first) = poll(&mut lead) else { panic!("the leader runs the batch when polled again") };
    assert_eq!(labels(&first.unwrap()), want[0]);
    for (i, j) in joined.iter_mut().enumerate() {
        let Poll::Ready(out) = poll(j) else { panic!("answered by the leader's batch") };
        let out = out.unwrap();
        assert_eq!(labels(&out), want[i + 1]);
        assert_eq!(out.rows.get(0, 0), data[i + 1][0], "its own rows come back");
    }
    assert_eq!(metrics.combined_batches.load(Relaxed), 1);
    assert!(served.gathering.lock().unwrap().is_none());
}

#[test]
fn a_leader_dropped_before_its_batch_ran_hands_it_to_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let (served, _) = load(dir.path(), 1);
    let want = alone(&served, &data[1]);
    let mut lead = Box::pin(served.infer(rows(&served, &data[0])));
    assert!(poll(&mut lead).is_pending());
    let follower = served.infer(rows(&served, &data[1]));
    let mut follower = Box::pin(follower);
    assert!(poll(&mut follower).is_pending());
    drop(lead); // its client went away
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let out = rt.block_on(follower).unwrap();
    assert_eq!(labels(&out), want);
    // A new request leads a new batch.
    let out = rt.block_on(served.infer(rows(&served, &data[2]))).unwrap();
    assert_eq!(labels(&out), alone(&served, &data[2]));
}

#[test]
fn a_request_that_does_not_fit_goes_to_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let (served, _) = load(dir.path(), 1);
    let mut lead = Box::pin(served.infer(rows(&served, &data[0])));
    assert!(poll(&mut lead).is_pending());
    // 64 rows: over the batch's room (63 left) — queued, answered by a worker while the leader waits.
    let mut big = Rows::new(8, served.schema.single_precision);
    for _ in 0..64 {
        data[1].iter().for_each(|&v| big.values.push(v));
        big.rows += 1;
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let out = rt.block_on(served.infer(big)).unwrap();
    assert_eq!(labels(&out), vec![alone(&served, &data[1])[0]; 64]);
    // The leader runs its batch (inline, or by a worker if the worker still holds the session).
    assert_eq!(labels(&rt.block_on(lead).unwrap()), alone(&served, &data[0]));
}
