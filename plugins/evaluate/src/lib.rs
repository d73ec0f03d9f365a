//! `evaluate`: a custom gate written as a plugin. Reads the `predictions.csv` an `OnnxEval` task
//! writes (with the slice column passed through), computes accuracy per slice (group by a
//! column) and fails when a slice is below its threshold.
//!
//! Input: `predictions`. Params: `{"slice": "region", "min": {"*": 0.7, "eu": 0.8}}` (`*` is the
//! default threshold). Output: `metrics` (JSON: rows and accuracy per slice, and the failures).

use std::collections::BTreeMap;

use dagrun_contracts::table::{Table, TableError};
use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

/// Params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The column to group rows by (must be in predictions.csv: pass it through in OnnxEval).
    pub slice: String,
    /// Minimum accuracy per slice value; `*` applies to slices not listed.
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
}

/// One slice's numbers.
#[derive(Debug, Serialize, PartialEq)]
pub struct SliceMetrics {
    /// Rows in the slice.
    pub rows: u64,
    /// Share of rows whose prediction equals the label.
    pub accuracy: f64,
}

/// The plugin's summary and `metrics` output.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    /// The slice column.
    pub slice: String,
    /// Metrics per slice value.
    pub slices: BTreeMap<String, SliceMetrics>,
    /// Slices below their threshold, in words.
    pub failures: Vec<String>,
}

/// Computes per-slice accuracy from predictions.csv text (RFC 4180, read with the shared
/// `dagrun_contracts::table` reader) and checks the thresholds.
pub fn evaluate(csv: &str, params: &Params) -> Result<Report, Error> {
    let bad_input = |e: TableError| Error::bad_input(e.to_string());
    let mut table = Table::from_text("predictions.csv", csv).map_err(bad_input)?;
    let (s, l, p) = (
        table.column(&params.slice).map_err(bad_input)?,
        table.column("label").map_err(bad_input)?,
        table.column("prediction").map_err(bad_input)?,
    );
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    while let Some(row) = table.next_row().map_err(bad_input)? {
        let e = counts.entry(row.get(s).to_owned()).or_default();
        e.0 += 1;
        e.1 += u64::from(row.get(l) == row.get(p));
    }
    let mut slices = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, (rows, correct)) in counts {
        let accuracy = correct as f64 / rows as f64;
        if let Some(min) = params.min.get(&name).or_else(|| params.min.get("*"))
            && accuracy < *min
        {
            failures.push(format!("{}={name}: accuracy {accuracy:.4} < min {min}", params.slice));
        }
        slices.insert(name, SliceMetrics { rows, accuracy });
    }
    Ok(Report { slice: params.slice.clone(), slices, failures })
}

struct Evaluate;

impl Task for Evaluate {
    type Params = Params;
    type Output = Report;

    fn describe() -> Info {
        Info::new("evaluate", env!("CARGO_PKG_VERSION"))
            .description("Accuracy per slice of predictions.csv; fails when a slice is below its threshold.")
            .params_schema(
                r#"{"type":"object","required":["slice"],"properties":{"slice":{"type":"string"},"min":{"type":"object","additionalProperties":{"type":"number"}}}}"#,
            )
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Report, Error> {
        let path = ctx.input("predictions")?;
        let csv = std::fs::read_to_string(&path)?;
        let report = evaluate(&csv, &params)?;
        std::fs::write(ctx.output_file("metrics", "slices.json"), serde_json::to_string_pretty(&report)? + "\n")?;
        if !report.failures.is_empty() {
            return Err(Error::failed(format!("slice gate refused: {}", report.failures.join("; "))));
        }
        Ok(report)
    }
}

dagrun_sdk::export_task!(Evaluate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_per_slice_and_thresholds() {
        let csv = "row,region,label,prediction\n0,eu,1,1\n1,eu,0,1\n2,us,1,1\n3,us,0,0\n";
        let params = Params { slice: "region".into(), min: BTreeMap::from([("*".into(), 0.6)]) };
        let r = evaluate(csv, &params).unwrap();
        assert_eq!(r.slices["eu"], SliceMetrics { rows: 2, accuracy: 0.5 });
        assert_eq!(r.slices["us"].accuracy, 1.0);
        assert_eq!(r.failures, ["region=eu: accuracy 0.5000 < min 0.6"]);
        let missing = Params { slice: "country".into(), min: BTreeMap::new() };
        assert!(evaluate(csv, &missing).unwrap_err().to_string().contains("no column `country`"));
    }

    /// predictions.csv is RFC 4180: a passed-through slice value may hold a comma or a newline.
    #[test]
    fn quoted_commas_and_newlines_do_not_shift_columns() {
        let csv = "row,region,label,prediction\n0,\"eu, west\",1,1\n1,\"eu, west\",0,1\n2,\"us\nnorth\",1,1\n";
        let params = Params { slice: "region".into(), min: BTreeMap::from([("*".into(), 0.6)]) };
        let r = evaluate(csv, &params).unwrap();
        assert_eq!(r.slices.keys().collect::<Vec<_>>(), ["eu, west", "us\nnorth"]);
        assert_eq!(r.slices["eu, west"], SliceMetrics { rows: 2, accuracy: 0.5 });
        assert_eq!(r.slices["us\nnorth"], SliceMetrics { rows: 1, accuracy: 1.0 });
        let e = evaluate("row,region,label,prediction\n0,eu,1\n", &params).unwrap_err().to_string();
        assert!(e.contains("predictions.csv line 2: 3 fields, but the header has 4 columns"), "{e}");
    }
}
