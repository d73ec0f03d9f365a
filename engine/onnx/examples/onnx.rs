//! A tiny command line over dagrun-onnx, for trying models by hand:
//!
//! ```text
//! cargo run -p dagrun-onnx --example onnx -- doctor
//! cargo run -p dagrun-onnx --example onnx -- eval MODEL DATA OUT_DIR label=COL [features=a,b] [kind=classifier]
//!     [batch_size=N] [passthrough=id,region] [class_labels=a,b] [positive_class=X] [threads=N] [predictions=false]
//! cargo run -p dagrun-onnx --example onnx -- predict MODEL DATA OUT.csv [features=..] [label=COL] [passthrough=..]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use dagrun_onnx::{EvalOptions, PredictOptions};

fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (positional, kv): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| !a.contains('='));
    let kv: BTreeMap<&str, &str> = kv.iter().filter_map(|a| a.split_once('=')).collect();
    let result = match positional.as_slice() {
        [cmd] if cmd.as_str() == "doctor" => match dagrun_onnx::discover() {
            Ok(info) => {
                println!("ONNX Runtime {} at {} (found via {})", info.version, info.path.display(), info.source);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        },
        [cmd, model, data, out] if cmd.as_str() == "eval" => {
            let Some(label) = kv.get("label") else {
                eprintln!("eval needs label=COLUMN");
                return ExitCode::from(2);
            };
            let mut o = EvalOptions::new(*label);
            o.features = kv.get("features").map(|v| list(v));
            o.kind = kv.get("kind").map(|v| v.parse().expect("kind=classifier|regressor"));
            o.batch_size = kv.get("batch_size").map_or(o.batch_size, |v| v.parse().expect("batch_size=N"));
            o.passthrough = kv.get("passthrough").map(|v| list(v)).unwrap_or_default();
            o.class_labels = kv.get("class_labels").map(|v| list(v));
            o.positive_class = kv.get("positive_class").map(|v| v.to_string());
            o.intra_threads = kv.get("threads").map(|v| v.parse().expect("threads=N"));
            o.write_predictions = kv.get("predictions") != Some(&"false");
            dagrun_onnx::evaluate(Path::new(model), Path::new(data), Path::new(out), &o)
                .map(|e| {
                    println!("{}", serde_json::to_string_pretty(&e.metrics).unwrap());
                    eprintln!(
                        "{} rows in {:.3}s ({:.0} rows/s); model: {:?} ({} classes via {:?}; scores: {:?}, {})",
                        e.rows,
                        e.elapsed.as_secs_f64(),
                        e.rows as f64 / e.elapsed.as_secs_f64(),
                        e.model.kind,
                        e.model.classes.as_ref().map_or(0, Vec::len),
                        e.model.class_source,
                        e.model.score_transform,
                        e.model.score_transform_reason.as_deref().unwrap_or("-"),
                    );
                })
                .map_err(|e| e.to_string())
        }
        [cmd, model, data, out] if cmd.as_str() == "predict" => {
            let o = PredictOptions {
                features: kv.get("features").map(|v| list(v)),
                label: kv.get("label").map(|v| v.to_string()),
                kind: kv.get("kind").map(|v| v.parse().expect("kind=classifier|regressor")),
                passthrough: kv.get("passthrough").map(|v| list(v)).unwrap_or_default(),
                batch_size: kv.get("batch_size").map_or(0, |v| v.parse().expect("batch_size=N")),
                ..Default::default()
            };
            dagrun_onnx::predict(Path::new(model), Path::new(data), Path::new(out), &o)
                .map(|p| eprintln!("{} rows → {}", p.rows, p.output.display()))
                .map_err(|e| e.to_string())
        }
        _ => {
            eprintln!(
                "usage: onnx doctor | onnx eval MODEL DATA OUT_DIR label=COL [..] | onnx predict MODEL DATA OUT.csv [..]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
