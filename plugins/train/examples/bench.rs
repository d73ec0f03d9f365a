//! Times the train plugin's code built natively, for comparison with the same run in WASM.
//!
//! ```sh
//! cargo run --release --manifest-path plugins/Cargo.toml -p dagrun-train --example bench -- \
//!     data.csv '{"model": "gbdt", "label": "label"}' [RUNS] [OUT_DIR]
//! ```
//!
//! Prints the time of each stage (best of `runs`, default 3) and the model's SHA-256, which equals
//! the `model_sha256` of the WASM run's metrics (the training is bit-for-bit the same). With
//! OUT_DIR, also writes model.onnx, metrics.json and predictions.csv there (for check_onnx.py).

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, params, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bench DATA.csv PARAMS_JSON [RUNS] [OUT_DIR]");
        std::process::exit(2);
    };
    let runs: usize = rest.first().map_or(3, |r| r.parse().expect("RUNS is a number"));
    let params: dagrun_train::Params = serde_json::from_str(params).expect("PARAMS_JSON");
    let mut best: Option<(f64, dagrun_train::Trained)> = None;
    for run in 0..runs {
        let start = Instant::now();
        // Reading the file is part of the plugin's run too.
        let csv = std::fs::read_to_string(data).expect("readable DATA.csv");
        let trained = dagrun_train::train(&csv, &params, &mut |_, _, _| {}).unwrap_or_else(|e| panic!("{e}"));
        let secs = start.elapsed().as_secs_f64();
        let t = trained.timings;
        println!(
            "run {}: total {secs:.3}s (parse {:.3}s, fit {:.3}s, predict {:.3}s, encode {:.3}s)",
            run + 1,
            t.parse.as_secs_f64(),
            t.fit.as_secs_f64(),
            t.predict.as_secs_f64(),
            t.encode.as_secs_f64()
        );
        if best.as_ref().is_none_or(|(b, _)| secs < *b) {
            best = Some((secs, trained));
        }
    }
    let (secs, trained) = best.expect("at least one run");
    let m = &trained.metrics;
    println!("best {secs:.3}s: {:?} on {} rows × {} features; train {:?}", m.model, m.rows, m.features.len(), m.train);
    println!("model_sha256 {}", m.model_sha256);
    println!("predictions_sha256 {}", m.predictions_sha256);
    if let Some(out) = rest.get(1) {
        let out = std::path::Path::new(out);
        std::fs::create_dir_all(out).expect("OUT_DIR can be created");
        std::fs::write(out.join("model.onnx"), &trained.onnx).expect("writable OUT_DIR");
        let json = serde_json::to_string_pretty(&trained.metrics).expect("serializable") + "\n";
        std::fs::write(out.join("metrics.json"), json).expect("writable OUT_DIR");
        std::fs::write(out.join("predictions.csv"), &trained.predictions_csv).expect("writable OUT_DIR");
    }
}
