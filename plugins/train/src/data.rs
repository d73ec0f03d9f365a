//! Reading the training CSV: header row, comma-separated numbers, one row per line.

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

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"').and_then(|f| f.strip_suffix('"')).unwrap_or(f)
}

struct Column {
    values: Vec<f64>,
    /// First missing value (line number).
    missing: Option<usize>,
    /// First value that is not a number (line number, text).
    not_numeric: Option<(usize, String)>,
}

/// Parses `text` and selects `label` and the features: the named ones, or (when `features` is
/// `None`) every other column whose values are all numbers.
pub fn parse(text: &str, label: &str, features: Option<&[String]>) -> Result<Dataset, Error> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(Error::bad_input("input `data` is empty (expected a CSV file with a header row)"));
    };
    let names: Vec<String> = header.split(',').map(|h| unquote(h).to_owned()).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(Error::bad_input(format!("column `{n}` appears twice in the header")));
        }
    }
    let Some(label_col) = names.iter().position(|n| n == label) else {
        return Err(Error::bad_input(format!("no label column `{label}`; the columns are: {}", names.join(", "))));
    };
    let mut columns: Vec<Column> =
        names.iter().map(|_| Column { values: Vec::new(), missing: None, not_numeric: None }).collect();
    for (i, line) in lines {
        let line_no = i + 1;
        let mut count = 0;
        for (c, field) in line.split(',').enumerate() {
            count += 1;
            let Some(col) = columns.get_mut(c) else { continue };
            if col.not_numeric.is_some() {
                continue;
            }
            let field = unquote(field);
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() => col.values.push(v),
                _ if is_missing(field) => {
                    col.missing.get_or_insert(line_no);
                    col.values.push(f64::NAN);
                }
                _ => col.not_numeric = Some((line_no, field.to_owned())),
            }
        }
        if count != names.len() {
            return Err(Error::bad_input(format!(
                "line {line_no}: {count} fields, but the header has {} columns",
                names.len()
            )));
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
}
