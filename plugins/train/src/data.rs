//! Reading the training CSV (RFC 4180, through the shared `dagrun_contracts::table` reader):
//! a header row, then numbers; other columns are not features.

use dagrun_contracts::table::{Table, TableError};
use dagrun_sdk::Error;

/// The training data: features as float32 (what the ONNX model's input is) and the label column.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Feature column names, in model input order.
    pub features: Vec<String>,
    /// Features, row-major `rows × features.len()`. Parsed as f64 and rounded to f32, as
    /// numpy's `astype(np.float32)` and most CSV readers do.
    pub x: Vec<f32>,
    /// Label column values.
    pub y: Vec<f64>,
}

impl Dataset {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        let f = self.features.len();
        &self.x[i * f..(i + 1) * f]
    }
}

/// A value that counts as missing: empty, `NA`, `NaN`, `null` (any case).
fn is_missing(field: &str) -> bool {
    field.is_empty()
        || field.eq_ignore_ascii_case("na")
        || field.eq_ignore_ascii_case("nan")
        || field.eq_ignore_ascii_case("null")
}

struct Column {
    values: Vec<f64>,
    /// First missing value (line number).
    missing: Option<u64>,
    /// First value that is not a number (line number, text).
    not_numeric: Option<(u64, String)>,
}

impl Column {
    /// Adds the value on `line` (once a column has text that is not a number, it is not a
    /// feature: the rest is skipped).
    fn push(&mut self, line: u64, field: &str) {
        if self.not_numeric.is_some() {
            return;
        }
        match field.parse::<f64>() {
            Ok(v) if v.is_finite() => self.values.push(v),
            _ if is_missing(field) => {
                self.missing.get_or_insert(line);
                self.values.push(f64::NAN);
            }
            _ => self.not_numeric = Some((line, field.to_owned())),
        }
    }
}

fn bad_input(e: TableError) -> Error {
    Error::bad_input(e.to_string())
}

/// Parses `text` and selects `label` and the features: the named ones, or (when `features` is
/// `None`) every other column whose values are all numbers.
pub fn parse(text: &str, label: &str, features: Option<&[String]>) -> Result<Dataset, Error> {
    let mut table = Table::from_text("input `data`", text).map_err(bad_input)?;
    let names = table.header().to_vec();
    let Some(label_col) = names.iter().position(|n| n == label) else {
        return Err(Error::bad_input(format!("no label column `{label}`; the columns are: {}", names.join(", "))));
    };
    let mut columns: Vec<Column> =
        names.iter().map(|_| Column { values: Vec::new(), missing: None, not_numeric: None }).collect();
    while let Some(row) = table.next_row().map_err(bad_input)? {
        for (col, field) in columns.iter_mut().zip(row.fields()) {
            col.push(row.line, field);
        }
    }
    let numeric = |c: usize, what: &str| -> Result<(), Error> {
        let col = &columns[c];
        if let Some((line, text)) = &col.not_numeric {
            return Err(Error::bad_input(format!("{what} `{}`: line {line}: `{text}` is not a number", names[c])));
        }
        if let Some(line) = col.missing {
            return Err(Error::bad_input(format!(
                "{what} `{}`: line {line}: missing value (fill or drop missing values before training)",
                names[c]
            )));
        }
        Ok(())
    };
    numeric(label_col, "label")?;
    let feature_cols: Vec<usize> = match features {
        Some(list) => {
            if list.is_empty() {
                return Err(Error::invalid_params("`features` is empty"));
            }
            let mut cols = Vec::with_capacity(list.len());
            for (k, f) in list.iter().enumerate() {
                if list[..k].contains(f) {
                    return Err(Error::invalid_params(format!("feature `{f}` is listed twice")));
                }
                let Some(c) = names.iter().position(|n| n == f) else {
                    return Err(Error::bad_input(format!("no column `{f}`; the columns are: {}", names.join(", "))));
                };
                if c == label_col {
                    return Err(Error::invalid_params(format!("`{f}` is the label; it cannot also be a feature")));
                }
                numeric(c, "feature")?;
                cols.push(c);
            }
            cols
        }
        None => {
            let cols: Vec<usize> =
                (0..names.len()).filter(|&c| c != label_col && columns[c].not_numeric.is_none()).collect();
            for &c in &cols {
                numeric(c, "feature")?;
            }
            cols
        }
    };
    if feature_cols.is_empty() {
        return Err(Error::bad_input(format!("no numeric feature columns besides the label `{label}`")));
    }
    let rows = columns[label_col].values.len();
    if rows == 0 {
        return Err(Error::bad_input("input `data` has a header but no rows"));
    }
    let f = feature_cols.len();
    let mut x = vec![0.0f32; rows * f];
    for (j, &c) in feature_cols.iter().enumerate() {
        for (i, &v) in columns[c].values.iter().enumerate() {
            x[i * f + j] = v as f32;
        }
    }
    Ok(Dataset {
        features: feature_cols.iter().map(|&c| names[c].clone()).collect(),
        x,
        y: std::mem::take(&mut columns[label_col].values),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_numeric_columns() {
        let csv = "id,city,a,label,b\n1,x,0.5,1,2\n2,y,1.5,0,3\n\n";
        let d = parse(csv, "label", None).unwrap();
        assert_eq!(d.features, ["id", "a", "b"]);
        assert_eq!(d.x, [1.0, 0.5, 2.0, 2.0, 1.5, 3.0]);
        assert_eq!(d.y, [1.0, 0.0]);
        let d = parse(csv, "label", Some(&["b".into(), "a".into()])).unwrap();
        assert_eq!(d.x, [2.0, 0.5, 3.0, 1.5]);
        assert_eq!(d.row(1), [3.0, 1.5]);
    }

    #[test]
    fn errors() {
        let e = |csv: &str, f: Option<&[String]>| parse(csv, "y", f).unwrap_err().to_string();
        assert!(e("a,b\n1,2\n", None).contains("no label column `y`"));
        assert!(e("a,y\n1,2\n1\n", None).contains("line 3: 1 fields"));
        assert!(e("a,y\n1,\n", None).contains("label `y`: line 2: missing value"));
        assert!(e("a,y\nNA,1\n", None).contains("feature `a`: line 2: missing value"));
        assert!(e("a,y\nx,1\n", Some(&["a".into()])).contains("`x` is not a number"));
        assert!(e("a,y\nx,1\n", None).contains("no numeric feature columns"));
        assert!(e("a,y\n", None).contains("no rows"));
        assert!(e("a,y\n1,1\n", Some(&["z".into()])).contains("no column `z`"));
    }

    /// The engine writes RFC 4180 CSV: a quoted field may hold a comma or a newline.
    #[test]
    fn quoted_commas_and_newlines_do_not_shift_columns() {
        let csv = "city,a,note,label\n\"Paris, FR\",0.5,\"two\nlines\",1\n\"Oslo\",1.5,\"say \"\"hi\"\", ok\",0\n";
        let d = parse(csv, "label", None).unwrap();
        assert_eq!(d.features, ["a"]);
        assert_eq!(d.x, [0.5, 1.5]);
        assert_eq!(d.y, [1.0, 0.0]);
        let e = parse("a,label\n\"1,5\",1\n", "label", Some(&["a".into()])).unwrap_err().to_string();
        assert!(e.contains("feature `a`: line 2: `1,5` is not a number"), "{e}");
        let e = parse("a,b,label\n1,\"x\ny\",1\n2,3\n", "label", None).unwrap_err().to_string();
        assert!(e.contains("line 4: 2 fields, but the header has 3 columns"), "{e}");
    }
}
