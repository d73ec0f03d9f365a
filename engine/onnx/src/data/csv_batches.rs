//! CSV files read batch by batch: the columns read and what a record adds to a batch ([`CsvColumns`], shared
//! with the parallel reader), the sequential reader ([`CsvBatches`]), and number parsing.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{Batch, ColumnSpec, Resolved, missing_label, parallel, resolve, trim};
use crate::error::{Error, Result, io_err};

/// A record's fields: from the CSV reader, or split by hand ([`parallel`], for lines without quotes).
pub(crate) trait Fields {
    /// Number of fields.
    fn count(&self) -> usize;
    /// Field `i`, as written (unquoted).
    fn field(&self, i: usize) -> &[u8];
}

impl Fields for csv::ByteRecord {
    fn count(&self) -> usize {
        self.len()
    }

    fn field(&self, i: usize) -> &[u8] {
        &self[i]
    }
}

/// The columns of a CSV file that are read, and how: what one record adds to a batch. Shared by the
/// sequential reader ([`CsvBatches::fill`]) and the parallel one ([`parallel`]).
#[derive(Debug, Clone)]
pub(crate) struct CsvColumns {
    pub(super) path: PathBuf,
    header: Vec<String>,
    features: Vec<usize>,
    label: Option<usize>,
    passthrough: Vec<usize>,
    single_precision: bool,
    skip_unlabelled: bool,
}

impl CsvColumns {
    /// Empties `batch` for rows from `first_row` on.
    pub(super) fn reset(&self, batch: &mut Batch, first_row: u64) {
        batch.reset(first_row, self.single_precision, self.passthrough.len(), false);
    }

    /// Adds `record` (on line `line`, data row `row`) to `batch`, or counts it as unlabelled. `Ok(false)`: a
    /// blank line, which is not a row.
    pub(super) fn add(&self, batch: &mut Batch, record: &impl Fields, line: u64, row: u64) -> Result<bool> {
        if record.count() == 1 && record.field(0).is_empty() {
            return Ok(false);
        }
        if self.skip_unlabelled && self.label.is_some_and(|l| missing_label(record.field(l))) {
            batch.unlabelled += 1;
            return Ok(true);
        }
        for &i in &self.features {
            let field = record.field(i);
            match parse_f64(field) {
                Some(v) => batch.features.push(v),
                None => {
                    return Err(Error::Data {
                        path: self.path.clone(),
                        reason: format!(
                            "line {line}: column `{}`: `{}` is not a number",
                            self.header[i],
                            String::from_utf8_lossy(field)
                        ),
                    });
                }
            }
        }
        if let Some(l) = self.label {
            batch.labels.push(trim(record.field(l)));
        }
        for (col, &i) in batch.passthrough.iter_mut().zip(&self.passthrough) {
            col.push(record.field(i));
        }
        batch.lines.push(line);
        batch.row_ids.push(row);
        Ok(true)
    }

    /// A record must have as many fields as the header (the sequential reader's CSV parser checks this itself).
    pub(super) fn check_width(&self, record: &impl Fields, line: u64) -> Result<()> {
        let n = record.count();
        if n == self.header.len() || (n == 1 && record.field(0).is_empty()) {
            return Ok(());
        }
        Err(Error::Data {
            path: self.path.clone(),
            reason: format!("line {line}: found record with {n} fields, but the header has {}", self.header.len()),
        })
    }
}

/// A CSV file being read batch by batch.
pub(crate) struct CsvBatches {
    reader: csv::Reader<Box<dyn Read + Send>>,
    record: csv::ByteRecord,
    pub(super) cols: CsvColumns,
    next_row: u64,
    /// For a file: where its records start (it can then be read in parallel, [`super::Batches::spawn`]).
    pub(super) source: Option<parallel::CsvSource>,
}

impl std::fmt::Debug for CsvBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvBatches").field("cols", &self.cols).finish_non_exhaustive()
    }
}

impl CsvBatches {
    /// Opens `path`, reads its header and resolves the columns.
    pub fn open(path: &Path, spec: &ColumnSpec<'_>) -> Result<CsvBatches> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut batches = CsvBatches::from_reader(path, Box::new(BufReader::with_capacity(1 << 20, file)), spec)?;
        let at = batches.reader.position();
        batches.source = Some(parallel::CsvSource { path: path.to_path_buf(), offset: at.byte(), line: at.line() });
        Ok(batches)
    }

    /// Reads CSV text from `input` (e.g. a request body); `name` stands for it in error messages.
    pub fn from_reader(name: &Path, input: Box<dyn Read + Send>, spec: &ColumnSpec<'_>) -> Result<CsvBatches> {
        let path = name;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
        let header: Vec<String> = reader
            .byte_headers()
            .map_err(|e| csv_err(path, e))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = String::from_utf8_lossy(h);
                let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { &h };
                h.trim().to_string()
            })
            .collect();
        if header.is_empty() || header.iter().all(String::is_empty) {
            return Err(Error::Data { path: path.to_path_buf(), reason: "empty file: no header row".into() });
        }
        let Resolved { features, label, passthrough } = resolve(path, &header, spec)?;
        let cols = CsvColumns {
            path: path.to_path_buf(),
            header,
            features,
            label,
            passthrough,
            single_precision: false,
            skip_unlabelled: spec.skip_unlabelled && label.is_some(),
        };
        Ok(CsvBatches { reader, record: csv::ByteRecord::new(), cols, next_row: 0, source: None })
    }

    /// Parse features into `f32` (for a model that takes floats) instead of `f64`.
    pub fn set_single_precision(&mut self, single: bool) {
        self.cols.single_precision = single;
    }

    /// The names of the selected feature columns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.cols.features.iter().map(|&i| self.cols.header[i].clone()).collect()
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.cols.features.len()
    }

    /// A feature whose name the header holds more than once (only the first is read).
    pub fn duplicate_feature(&self) -> Option<&str> {
        let header = &self.cols.header;
        self.cols
            .features
            .iter()
            .map(|&i| header[i].as_str())
            .find(|name| header.iter().filter(|h| h == name).count() > 1)
    }

    pub fn path(&self) -> &Path {
        &self.cols.path
    }

    /// Reads up to `max_rows` rows into `batch` (reusing its buffers). Returns the number of rows read; 0 at
    /// the end of the file.
    pub fn fill(&mut self, batch: &mut Batch, max_rows: usize) -> Result<usize> {
        self.cols.reset(batch, self.next_row);
        while batch.lines.len() < max_rows {
            if !self.reader.read_byte_record(&mut self.record).map_err(|e| csv_err(&self.cols.path, e))? {
                break;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            if self.cols.add(batch, &self.record, line, self.next_row)? {
                self.next_row += 1;
            }
        }
        batch.set_first_row();
        Ok(batch.lines.len())
    }
}

pub(crate) fn csv_err(path: &Path, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(source) => Error::Io { path: path.to_path_buf(), source },
            _ => unreachable!(),
        },
        _ => Error::Data { path: path.to_path_buf(), reason: e.to_string() },
    }
}

/// A number; an empty field is a missing value (NaN). Correctly rounded, like the standard library's parser:
/// short decimals (`-1.234567`) by [`parse_short_decimal`], others by `lexical-core`, and anything it refuses
/// (`inf`, ...) by the standard library.
#[inline]
pub(crate) fn parse_f64(field: &[u8]) -> Option<f64> {
    let t = trim(field);
    if t.is_empty() {
        return Some(f64::NAN);
    }
    parse_short_decimal(t)
        .or_else(|| lexical_core::parse::<f64>(t).ok())
        .or_else(|| std::str::from_utf8(t).ok()?.parse().ok())
}

/// Powers of ten exactly representable as `f64`.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// `[-+]digits[.digits]` with at most 15 digits in all, else `None`. Exact: the digits form an integer below
/// 2^53 and the divisor a power of ten below 2^53, both exact as `f64`, so the one division rounds correctly
/// (Clinger's fast path, as the standard library takes it).
#[inline]
fn parse_short_decimal(t: &[u8]) -> Option<f64> {
    let (negative, s) = match t.first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    // Wrapping: a long run of digits overflows, and is then refused by its length.
    let (mut mantissa, mut i) = (0u64, 0);
    while let Some(d) = s.get(i).and_then(|b| b.checked_sub(b'0')).filter(|d| *d < 10) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let whole = i;
    let mut fraction = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = s.get(i).and_then(|b| b.checked_sub(b'0')).filter(|d| *d < 10) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        fraction = i - whole - 1;
    }
    if i != s.len() || whole + fraction == 0 || whole + fraction > 15 {
        return None;
    }
    let v = mantissa as f64 / POW10[fraction];
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FeatureBuf;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("data.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn batches_with_selected_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "id, a ,y,b\n1,0.5,yes,2\n2,,no,3e2\n\n3,-1,yes,4\n");
        let features = vec!["a".to_string(), "b".to_string()];
        let pass = vec!["id".to_string()];
        let spec = ColumnSpec {
            features: Some(&features),
            label: Some("y"),
            label_required: true,
            passthrough: &pass,
            ..Default::default()
        };
        let mut r = CsvBatches::open(&p, &spec).unwrap();
        assert_eq!(r.feature_names(), ["a", "b"]);
        let mut b = Batch::default();
        assert_eq!(r.fill(&mut b, 2).unwrap(), 2);
        assert_eq!(b.first_row, 0);
        let FeatureBuf::F64(f) = &b.features else { panic!("f64 by default") };
        assert_eq!(f[0], 0.5);
        assert!(f[2].is_nan());
        assert_eq!(f[3], 300.0);
        assert_eq!(b.labels.get(1), b"no");
        assert_eq!(b.passthrough[0].get(0), b"1");
        assert_eq!(r.fill(&mut b, 2).unwrap(), 1);
        assert_eq!(b.first_row, 2);
        assert_eq!(b.features, FeatureBuf::F64(vec![-1.0, 4.0])); // the blank line is skipped
        assert_eq!(r.fill(&mut b, 2).unwrap(), 0);

        let mut r = CsvBatches::open(&p, &spec).unwrap();
        r.set_single_precision(true);
        r.fill(&mut b, 1).unwrap();
        assert_eq!(b.features, FeatureBuf::F32(vec![0.5, 2.0]));
    }

    #[test]
    fn unlabelled_rows_are_skipped_and_counted() {
        for m in ["", " ", "NA", "na", "N/A", "null", "NULL", "None", "NaN", " nan "] {
            assert!(missing_label(m.as_bytes()), "{m:?}");
        }
        for l in ["0", "no", "nana", "n", "Nope"] {
            assert!(!missing_label(l.as_bytes()), "{l:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x,y\n1,a\nbad,NA\n\n2,\n3,b\n4,null\n");
        let spec = ColumnSpec { label: Some("y"), label_required: true, skip_unlabelled: true, ..Default::default() };
        let mut r = CsvBatches::open(&p, &spec).unwrap();
        let mut b = Batch::default();
        assert_eq!(r.fill(&mut b, 2).unwrap(), 2);
        assert_eq!(
            (b.first_row, b.row_ids.as_slice(), b.lines.as_slice(), b.unlabelled),
            (0, &[0, 3][..], &[2, 6][..], 2)
        );
        assert_eq!(b.end_row(), 4);
        assert_eq!(b.features, FeatureBuf::F64(vec![1.0, 3.0]));
        assert_eq!(r.fill(&mut b, 2).unwrap(), 0); // only an unlabelled row left: counted
        assert_eq!(b.unlabelled, 1);
    }

    #[test]
    fn numbers_parse_as_the_standard_library_parses_them() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "+1",
            "1.",
            ".5",
            "-.5",
            "007",
            "0.1",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "9007199254740993",
            "1e5",
            "-2.5E-3",
            "3.4028235e38",
            "NaN",
            "inf",
            "-infinity",
            "1_0",
            "1..2",
            "-",
            ".",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 17) as usize + 1;
            let text = format!("{:0digits$}", x % 10u64.pow(digits.min(19) as u32));
            let at = (x >> 40) as usize % (digits + 1);
            let sign = ["", "-", "+"][(x >> 20) as usize % 3];
            cases.push(format!("{sign}{}.{}", &text[..at], &text[at..]));
        }
        for c in cases {
            let want = c.parse::<f64>().ok();
            let have = parse_f64(c.as_bytes());
            assert_eq!(have.map(f64::to_bits), want.map(f64::to_bits), "{c:?}");
        }
    }

    #[test]
    fn default_features_are_all_but_the_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x1,label,x2\n1,0,2\n");
        let spec = ColumnSpec { label: Some("label"), label_required: true, ..Default::default() };
        assert_eq!(CsvBatches::open(&p, &spec).unwrap().feature_names(), ["x1", "x2"]);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x,label\n1,0\nabc,1\n");
        let spec = ColumnSpec { label: Some("label"), label_required: true, ..Default::default() };
        let mut r = CsvBatches::open(&p, &spec).unwrap();
        let err = r.fill(&mut Batch::default(), 10).unwrap_err().to_string();
        assert!(err.contains("line 3: column `x`: `abc` is not a number"), "{err}");

        let spec = ColumnSpec { label: Some("target"), label_required: true, ..Default::default() };
        let err = CsvBatches::open(&p, &spec).unwrap_err().to_string();
        assert!(err.contains("no column `target` (the label column); columns are: x, label"), "{err}");
    }
}
