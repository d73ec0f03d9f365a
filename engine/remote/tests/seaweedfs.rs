//! The remote cache against a real S3 server (SeaweedFS, `DAGRUN_WEED`): create-only
//! publishing, verified downloads, tampering, wrong credentials, a missing bucket and a server
//! that is down.

#[path = "../../../tests/common/s3.rs"]
mod s3;

use std::collections::BTreeMap;

use dagrun_cache::{ActionEntry, Durability, ENTRY_VERSION_PLAIN, KeyInputs, Manifest, OutputRecord, Store};
use dagrun_remote::{Published, RemoteCache, RemoteError, RemoteUrl, Uploaded, connect_with};
use object_store::ObjectStoreExt;

fn remote(server: &s3::Seaweed, url: &str) -> RemoteCache {
    let url: RemoteUrl = url.parse().unwrap();
    RemoteCache::new(connect_with(&url, &server.env()).unwrap())
}

/// A local store holding one object and an entry naming it.
fn local_entry(dir: &std::path::Path, content: &[u8], stamp: u64) -> (Store, ActionEntry) {
    let store = Store::open(&dir.join("state"), Durability::NoFsync).unwrap();
    let file = dir.join("out.bin");
    std::fs::write(&file, content).unwrap();
    let (digest, size) = store.put_file(&file).unwrap();
    let inputs = KeyInputs {
        kind: "command".into(),
        code: dagrun_cache::Digest::of(b"python train.py"),
        params: dagrun_cache::Digest::of(b"{}"),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("model".to_owned(), "out.bin".to_owned())]),
        upstream: BTreeMap::new(),
        partition: None,
    };
    let outputs: Manifest = Manifest::from([(
        "model".to_owned(),
        OutputRecord { path: "out.bin".into(), digest, size, executable: false, inline: false },
    )]);
    let entry = ActionEntry {
        version: ENTRY_VERSION_PLAIN,
        key: inputs.key(),
        task: "train".into(),
        inputs,
        outputs,
        duration_ms: 1000 + stamp,
        created_ms: stamp,
        contents: Default::default(),
        digest: None,
    }
    .sealed();
    store.put_action(&entry).unwrap();
    (store, entry)
}

#[tokio::test]
async fn entries_and_objects_round_trip_and_the_first_publisher_wins() {
    let Some(server) = s3::Seaweed::start("remote round trip", &["cache-a"]) else { return };
    let r = remote(&server, "s3://cache-a/team/ci");
    let a = tempfile::tempdir().unwrap();
    let (store_a, entry) = local_entry(a.path(), &vec![7u8; 9 << 20], 1);
    assert_eq!(r.entry(&entry.key).await.unwrap(), None);
    assert_eq!(r.push(&store_a, &entry).await.unwrap(), Published::Created);
    let digest = entry.outputs["model"].digest;
    assert_eq!(r.upload(&store_a, &digest).await.unwrap(), Uploaded::Present);

    // A second writer with the same key but another record does not replace the first.
    let b = tempfile::tempdir().unwrap();
    let (store_b, rival) = local_entry(b.path(), &vec![7u8; 9 << 20], 2);
    assert_eq!(rival.key, entry.key);
    assert_ne!(rival, entry);
    assert_eq!(r.push(&store_b, &rival).await.unwrap(), Published::Existing);
    assert_eq!(r.entry(&entry.key).await.unwrap().as_ref(), Some(&entry));

    // A third machine pulls it: the object arrives verified and the entry is recorded.
    let c = tempfile::tempdir().unwrap();
    let store_c = Store::open(&c.path().join("state"), Durability::NoFsync).unwrap();
    let pulled = r.pull(&store_c, &entry.key).await.unwrap().unwrap();
    assert_eq!(pulled, entry);
    assert_eq!(store_c.get_action(&entry.key).as_ref(), Some(&entry));
    assert_eq!(std::fs::read(store_c.object_path(&digest)).unwrap(), vec![7u8; 9 << 20]);
}

#[tokio::test]
async fn a_tampered_object_or_entry_is_detected_and_never_used() {
    let Some(server) = s3::Seaweed::start("remote tampering", &["cache-t"]) else { return };
    let r = remote(&server, "s3://cache-t");
    let a = tempfile::tempdir().unwrap();
    let (store_a, entry) = local_entry(a.path(), b"the model bytes", 1);
    r.push(&store_a, &entry).await.unwrap();

    // Overwrite the object on the server with other bytes of the same size.
    let raw = connect_with(&"s3://cache-t".parse().unwrap(), &server.env()).unwrap();
    let hex = entry.outputs["model"].digest.0.to_hex();
    let object = object_store::path::Path::from(format!("v1/objects/{}/{hex}", &hex[..2]));
    raw.store.put(&object, b"THE MODEL BYTES".to_vec().into()).await.unwrap();
    let c = tempfile::tempdir().unwrap();
    let store_c = Store::open(&c.path().join("state"), Durability::NoFsync).unwrap();
    let err = r.pull(&store_c, &entry.key).await.unwrap_err();
    assert!(matches!(err, RemoteError::CorruptObject { .. }), "{err}");
    assert!(err.to_string().contains("corrupt on the remote"), "{err}");
    assert!(!store_c.has_object(&entry.outputs["model"].digest), "a corrupt object entered the store");
    assert_eq!(store_c.get_action(&entry.key), None);

    // An entry edited on the server fails its checks.
    let khex = entry.key.0.to_hex();
    let action = object_store::path::Path::from(format!("v1/actions/{}/{khex}.json", &khex[..2]));
    let text = String::from_utf8(raw.store.get(&action).await.unwrap().bytes().await.unwrap().to_vec()).unwrap();
    let edited = text.replace("\"duration_ms\":1001", "\"duration_ms\":5");
    assert_ne!(edited, text);
    raw.store.put(&action, edited.into_bytes().into()).await.unwrap();
    let err = r.entry(&entry.key).await.unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

#[tokio::test]
async fn wrong_credentials_a_missing_bucket_and_a_stopped_server_are_errors_that_say_so() {
    let Some(mut server) = s3::Seaweed::start("remote faults", &["cache-f"]) else { return };
    let url: RemoteUrl = "s3://cache-f".parse().unwrap();
    let mut env = server.env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()));
    let wrong = RemoteCache::new(connect_with(&url, &env).unwrap());
    let a = tempfile::tempdir().unwrap();
    let (store_a, entry) = local_entry(a.path(), b"x", 1);
    let err = wrong.push(&store_a, &entry).await.unwrap_err();
    assert!(err.to_string().contains("s3://cache-f") && !err.to_string().contains("not-the-secret"), "{err}");

    let missing = remote(&server, "s3://no-such-bucket");
    let err = missing.entry(&entry.key).await;
    assert!(err.is_err() || err.as_ref().unwrap().is_none(), "{err:?}");
    let err = missing.push(&store_a, &entry).await.unwrap_err();
    assert!(err.to_string().contains("s3://no-such-bucket"), "{err}");

    let r = remote(&server, "s3://cache-f");
    let probe = dagrun_remote::probe(&connect_with(&url, &server.env()).unwrap()).await.unwrap();
    assert!(probe.reachable && probe.writable, "{probe:?}");
    assert!(probe.conditional_put, "SeaweedFS honours If-None-Match: the probe must see it");
    server.stop();
    let started = std::time::Instant::now();
    let err = r.entry(&entry.key).await.unwrap_err();
    assert!(matches!(err, RemoteError::Request { .. }), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "a stopped server took {:?}", started.elapsed());
    server.restart();
    assert_eq!(r.entry(&entry.key).await.unwrap(), None);
}

/// A small output travels inside its entry: pushing sends no object, pulling records the entry
/// with its bytes and no object. An entry of another format version is a miss, not damage.
#[tokio::test]
async fn inline_outputs_travel_in_the_entry_and_another_version_is_a_miss() {
    let Some(server) = s3::Seaweed::start("remote inline", &["cache-i"]) else { return };
    let r = remote(&server, "s3://cache-i/team");
    let a = tempfile::tempdir().unwrap();
    let (store_a, object_entry) = local_entry(a.path(), b"{\"auc\": 0.91}", 3);
    std::fs::remove_file(store_a.object_path(&object_entry.outputs["model"].digest)).unwrap();
    let (mut outputs, mut contents) = (Manifest::new(), dagrun_cache::Contents::new());
    let stored = store_a.put_output(&a.path().join("out.bin"), dagrun_cache::INLINE_ENTRY_MAX).unwrap();
    stored.record(&mut outputs, &mut contents, "model", "out.bin".into(), false);
    let entry =
        ActionEntry { version: dagrun_cache::entry_version(&contents), outputs, contents, ..object_entry.clone() }
            .sealed();
    assert_eq!(entry.version, dagrun_cache::ENTRY_VERSION);
    store_a.put_action(&entry).unwrap();
    assert_eq!(r.push(&store_a, &entry).await.unwrap(), Published::Created);
    let digest = entry.outputs["model"].digest;
    assert!(!r.has_object(&digest).await.unwrap(), "no object sent for an inline output");

    let c = tempfile::tempdir().unwrap();
    let store_c = Store::open(&c.path().join("state"), Durability::NoFsync).unwrap();
    let pulled = r.pull(&store_c, &entry.key).await.unwrap().unwrap();
    assert_eq!(pulled, entry);
    assert_eq!(pulled.inline_bytes(&pulled.outputs["model"]), Some(&b"{\"auc\": 0.91}"[..]));
    assert!(!store_c.has_object(&digest));
    assert_eq!(store_c.get_action(&entry.key).as_ref(), Some(&entry));

    // Published by a dagrun of another entry format: read as none, never reported corrupt.
    let other = tempfile::tempdir().unwrap();
    let (_, mut newer) = local_entry(other.path(), b"newer", 4);
    newer.version = 9;
    let newer = newer.sealed();
    let r2 = remote(&server, "s3://cache-i/other");
    assert_eq!(r2.publish(&newer).await.unwrap(), Published::Created);
    assert_eq!(r2.entry(&newer.key).await.unwrap(), None);
}
