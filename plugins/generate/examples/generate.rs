//! The generator without dagrun: prints the CSV for PARAMS_JSON to stdout.
//!
//! ```sh
//! cargo run --release --manifest-path plugins/Cargo.toml -p dagrun-generate --example generate -- \
//!     '{"rows": 1000, "seed": 1, "date": "2025-01-31"}' > data.csv
//! ```

fn main() {
    let params = std::env::args().nth(1).unwrap_or_else(|| "{}".into());
    let params: dagrun_generate::Params = serde_json::from_str(&params).expect("PARAMS_JSON");
    let (csv, _, _) = dagrun_generate::generate(&params).unwrap_or_else(|e| panic!("{e}"));
    print!("{csv}");
}
