//! `dagrun serve` end to end: the real binary on a registry in a temp dir.

mod common;

use common::serve::{Serve, add_version, fixture_model, set_current, with_feature_names};

#[test]
fn serves_the_current_version_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    let model = std::fs::read(fixture_model("logreg_binary")).unwrap();
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    add_version(&reg, "churn", "v0001", &with_feature_names(&model, &names));
    set_current(&reg, "churn", "v0001");
    let serve = Serve::start(&reg, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, version, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(serve.url("/predict/churn"))
            .body(r#"[{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":1}]"#)
            .send()
            .await
            .unwrap();
        let v = r.headers()["dagrun-model-version"].to_str().unwrap().to_owned();
        (r.status().as_u16(), v, r.json::<serde_json::Value>().await.unwrap())
    });
    assert_eq!((status, version.as_str()), (200, "v0001"), "{body}");
    assert_eq!(body["version"], "v0001");
    assert_eq!(body["rows"], 1);
    assert_eq!(serve.terminate(), Some(0));
}
