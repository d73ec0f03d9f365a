//! `dagrun serve` on registries that cannot (all) be served: `current` naming a missing version, a
//! missing or corrupt model, bytes ONNX Runtime refuses, garbage in `current`. The service says why,
//! keeps serving what it can, stays ready, and serves a good deploy.

mod common;
mod serve_support;

use std::time::Duration;

use common::serve::{Serve, add_version, set_current};
use serve_support::*;

/// While v0001 serves, `current` is moved to versions that cannot be served: a missing directory,
/// a directory without model.onnx, a model.onnx changed after its digest was recorded, bytes that
/// are no ONNX model (with their true digest), and garbage in `current` itself. Each is reported
/// once with the reason, v0001 keeps answering (requests see each move at once), and a good
/// deploy afterwards is served.
#[test]
fn a_version_that_cannot_be_loaded_is_reported_and_the_old_one_keeps_serving() {
    let (_dir, reg) = churn_registry();
    let gb = model8("gb_binary");
    std::fs::create_dir_all(reg.join("churn/v0003")).unwrap();
    std::fs::write(reg.join("churn/v0003/metadata.json"), r#"{"name":"churn"}"#).unwrap();
    add_version(&reg, "churn", "v0004", &gb);
    let mut changed = gb.clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x55;
    std::fs::write(reg.join("churn/v0004/model.onnx"), &changed).unwrap();
    add_version(&reg, "churn", "v0005", b"this is not an ONNX model at all");
    add_version(&reg, "churn", "v0006", &gb);
    // Polling often, so that the poller's retries race with the requests too.
    let serve = Serve::start(&reg, &["--poll", "50ms"]);
    let cases: [(&str, &str, &[&str]); 5] = [
        ("v0002\n", "churn v0002 not served", &["v0002", "model.onnx", "No such file"]),
        ("v0003\n", "churn v0003 not served", &["v0003", "model.onnx", "No such file"]),
        ("v0004\n", "churn v0004 not served", &["is corrupt", "metadata.json records"]),
        ("v0005\n", "churn v0005 not served", &["v0005", "cannot load model", "protobuf parsing failed"]),
        ("../../etc\n", "churn ? not served", &["invalid model version `../../etc`"]),
    ];
    rt().block_on(async {
        for (text, event, says) in cases {
            write_current(&reg, "churn", text);
            answers_with(&serve, "churn", "v0001").await;
            let line = serve.wait_for_line(event, WAIT);
            assert!(line.contains("(still serving v0001)"), "{line}");
            for s in says {
                assert!(line.contains(s), "{line} does not say {s:?}");
            }
            answers_with(&serve, "churn", "v0001").await;
            assert_eq!(get(&serve.url("/v2/health/ready")).await.status, 200);
        }
        // Each failure is reported once, not on every request or retry.
        let lines = serve.lines();
        for (_, event, _) in cases {
            assert_eq!(lines.iter().filter(|l| l.contains(event)).count(), 1, "{event}: {lines:#?}");
        }
        // Counted once each too, however often the poll looks again (20 polls here).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        assert_eq!(metric(&text, r#"dagrun_serve_load_failures_total{model="churn"}"#), Some(5.0), "{text}");
        set_current(&reg, "churn", "v0006");
        answers_with(&serve, "churn", "v0006").await;
        let line = serve.wait_for_line("serving churn v0006", WAIT);
        assert!(line.contains("(was v0001)"), "{line}");
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// The acceptance test of a failed load: the old version keeps answering, the service stays ready,
/// `/metrics` counts the failure and still names the old version; a good deploy is then picked up.
#[test]
fn a_failed_load_keeps_the_old_version_ready_and_counted_until_a_good_deploy() {
    let (_dir, reg) = churn_registry();
    let serve = Serve::start(&reg, &[]);
    rt().block_on(async {
        add_version(&reg, "churn", "v0002", &model8("gb_binary")[..100]);
        std::fs::write(reg.join("churn/v0002/model.onnx"), model8("gb_binary")).unwrap(); // digest mismatch
        set_current(&reg, "churn", "v0002");
        for _ in 0..3 {
            answers_with(&serve, "churn", "v0001").await;
        }
        serve.wait_for_line("churn v0002 not served", WAIT);
        let ready = get(&serve.url("/v2/health/ready")).await;
        assert_eq!(ready.status, 200, "{ready:?}");
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        assert!(
            metric(&text, r#"dagrun_serve_load_failures_total{model="churn"}"#).is_some_and(|n| n >= 1.0),
            "{text}"
        );
        assert!(text.contains(r#"dagrun_serve_model_info{model="churn",version="v0001""#), "{text}");
        assert!(!text.contains(r#"dagrun_serve_model_info{model="churn",version="v0002""#), "{text}");
        add_version(&reg, "churn", "v0003", &model8("gb_binary"));
        set_current(&reg, "churn", "v0003");
        answers_with(&serve, "churn", "v0003").await;
        let text = get(&serve.url("/metrics")).await.body.as_str().unwrap().to_owned();
        assert!(text.contains(r#"dagrun_serve_model_info{model="churn",version="v0003""#), "{text}");
        assert!(!text.contains(r#"dagrun_serve_model_info{model="churn",version="v0001""#), "{text}");
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// Nothing loadable at start (current names a missing version): the service starts, says why,
/// is not ready and refuses with 503 naming the problem; a good deploy makes it serve.
#[test]
fn nothing_loadable_at_start_is_503_until_a_good_version_is_deployed() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    add_version(&reg, "churn", "v0001", &model8("logreg_binary"));
    write_current(&reg, "churn", "v0007\n");
    let serve = Serve::start(&reg, &[]);
    let line = serve.wait_for_line("churn v0007 not served", WAIT);
    assert!(line.contains("nothing to serve yet"), "{line}");
    rt().block_on(async {
        let a = post(&serve.url("/predict/churn"), JSON, records(&fixture_rows(1))).await;
        assert_eq!(a.status, 503, "{a:?}");
        assert!(a.error().contains("v0007") && a.error().contains("model.onnx"), "{a:?}");
        let ready = get(&serve.url("/v2/health/ready")).await;
        assert_eq!(ready.status, 503, "{ready:?}");
        assert_eq!(ready.body["not_loaded"], serde_json::json!(["churn"]));
        set_current(&reg, "churn", "v0001");
        answers_with(&serve, "churn", "v0001").await;
        assert_eq!(get(&serve.url("/v2/health/ready")).await.status, 200);
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}

/// Serving the whole registry, a directory without a deployed model (a stray folder, a model staged
/// but not deployed yet) does not make the service unready: it serves what is deployed. A name
/// asked for with `--name` that is not deployed does, until it is.
#[test]
fn readiness_waits_for_deployed_or_named_models_only() {
    let (_dir, reg) = churn_registry();
    std::fs::create_dir_all(reg.join("notes")).unwrap();
    add_version(&reg, "staged", "v0001", &model8("gb_binary"));
    let all = Serve::start(&reg, &["--poll", "50ms"]);
    let named = Serve::start(&reg, &["--name", "churn", "--name", "staged"]);
    rt().block_on(async {
        let ready = get(&all.url("/v2/health/ready")).await;
        assert_eq!((ready.status, &ready.body["not_loaded"]), (200, &serde_json::json!([])), "{ready:?}");
        let ready = get(&named.url("/v2/health/ready")).await;
        assert_eq!((ready.status, &ready.body["not_loaded"]), (503, &serde_json::json!(["staged"])), "{ready:?}");
        let staged = post(&all.url("/predict/staged"), JSON, records(&fixture_rows(1))).await;
        assert_eq!(staged.status, 503, "{staged:?}");
        assert!(staged.error().contains("model `staged` has no deployed version"), "{staged:?}");
        answers_with(&all, "churn", "v0001").await;

        set_current(&reg, "staged", "v0001");
        for serve in [&all, &named] {
            answers_with(serve, "staged", "v0001").await;
            assert_eq!(get(&serve.url("/v2/health/ready")).await.status, 200);
        }
        // Deployed but not loadable: not ready.
        std::fs::create_dir_all(reg.join("broken")).unwrap();
        write_current(&reg, "broken", "v0001\n");
        all.wait_for_line("broken v0001 not served", WAIT);
        let ready = get(&all.url("/v2/health/ready")).await;
        assert_eq!((ready.status, &ready.body["not_loaded"]), (503, &serde_json::json!(["broken"])), "{ready:?}");
    });
    no_panic(&all);
    no_panic(&named);
    assert_eq!(all.terminate(), Some(0));
    assert_eq!(named.terminate(), Some(0));
}

/// `current` rewritten in place with its modification time put back (`cp -p`, `rsync -t
/// --inplace`, `touch -r`): same inode, size and mtime, yet the next request sees the move (the
/// poll, an hour away here, does not help).
#[test]
fn current_rewritten_in_place_with_its_old_mtime_is_seen_at_once() {
    let (_dir, reg) = churn_registry();
    add_version(&reg, "churn", "v0002", &model8("gb_binary"));
    let serve = Serve::start(&reg, &["--poll", "1h"]);
    let path = reg.join("churn/current");
    // Old enough for its times to be trusted.
    std::thread::sleep(Duration::from_millis(100));
    rt().block_on(async {
        answers_with(&serve, "churn", "v0001").await;
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"v0002\n").unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(mtime)).unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        answers_with(&serve, "churn", "v0002").await;
    });
    no_panic(&serve);
    assert_eq!(serve.terminate(), Some(0));
}
