//! CSV (RFC 4180, a header row first) read in one pass into columns; a column that turns out to be
//! text after some numbers has those numbers' original text recounted in a second, partial pass.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::accum::Acc;
use crate::cell::{Cell, classify};
use crate::{Format, ReadOptions, Table, TableError, select};

/// An open CSV file whose header has been read.
struct Source<'a> {
    path: &'a Path,
    reader: csv::Reader<BufReader<File>>,
    header: Vec<String>,
}

impl<'a> Source<'a> {
    fn open(path: &'a Path) -> Result<Source<'a>, TableError> {
        let file = File::open(path).map_err(|source| TableError::Io { path: path.to_path_buf(), source })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let raw = reader.byte_headers().map_err(|e| csv_error(path, e))?.clone();
        if raw.is_empty() || (raw.len() == 1 && raw[0].trim_ascii().is_empty()) {
            return Err(blank_header(path, &mut reader));
        }
        let mut header = Vec::with_capacity(raw.len());
        for (i, field) in raw.iter().enumerate() {
            let field = if i == 0 { field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field) } else { field };
            let name = std::str::from_utf8(field.trim_ascii()).map_err(|_| TableError::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: format!("column {} of the header is not valid UTF-8; save the file as UTF-8", i + 1),
            })?;
            header.push(name.to_string());
        }
        Ok(Source { path, reader, header })
    }

    /// Reads the next data row into `record`; `false` at the end. Blank lines are skipped.
    fn next(&mut self, record: &mut csv::ByteRecord) -> Result<bool, TableError> {
        loop {
            if !self.reader.read_byte_record(record).map_err(|e| csv_error(self.path, e))? {
                return Ok(false);
            }
            let blank = record.len() == 1 && self.header.len() > 1 && record[0].trim_ascii().is_empty();
            if !blank {
                return Ok(true);
            }
        }
    }
}

/// A file whose first row is blank: empty if nothing else follows, else a blank header.
fn blank_header(path: &Path, reader: &mut csv::Reader<BufReader<File>>) -> TableError {
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return TableError::Empty { path: path.to_path_buf() },
            Ok(true) if record.len() == 1 && record[0].trim_ascii().is_empty() => {}
            Ok(true) | Err(_) => {
                return TableError::Csv {
                    path: path.to_path_buf(),
                    line: 1,
                    message: "the header row is blank; the first row must name the columns".into(),
                };
            }
        }
    }
}

fn csv_error(path: &Path, e: csv::Error) -> TableError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => TableError::Io { path: path.to_path_buf(), source },
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => TableError::Csv {
            path: path.to_path_buf(),
            line: pos.map_or(line, |p| p.line()),
            message: format!(
                "{len} fields, but the header has {expected_len}; quote values that contain commas (\"1,5\") \
                 and give every row {expected_len} fields"
            ),
        },
        _ => TableError::Csv { path: path.to_path_buf(), line, message },
    }
}

fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

fn not_utf8(path: &Path, record: &csv::ByteRecord, column: &str) -> TableError {
    TableError::Csv {
        path: path.to_path_buf(),
        line: line_of(record),
        message: format!("column `{column}` is not valid UTF-8; save the file as UTF-8"),
    }
}

/// The header's column names.
pub(crate) fn column_names(path: &Path) -> Result<Vec<String>, TableError> {
    Ok(Source::open(path)?.header)
}

/// Reads the columns `opts` selects.
pub(crate) fn read(path: &Path, opts: &ReadOptions) -> Result<Table, TableError> {
    let mut source = Source::open(path)?;
    let selected = select(path, &source.header, opts)?;
    let mut accs: Vec<Acc> =
        selected.iter().map(|&i| Acc::new(&source.header[i], opts.categorical.contains(&source.header[i]))).collect();
    // Per column: the row at which a numeric column turned to text (its earlier numbers need recounting).
    let mut flips: Vec<Option<u64>> = vec![None; selected.len()];
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while source.next(&mut record)? {
        for ((acc, flip), &i) in accs.iter_mut().zip(&mut flips).zip(&selected) {
            let t = record[i].trim_ascii();
            match classify(t) {
                Cell::Missing => acc.missing.empty += 1,
                Cell::Nan => acc.missing.nan += 1,
                Cell::Inf => acc.missing.inf += 1,
                Cell::Number(v) if !acc.text => acc.values.push(v),
                Cell::Number(_) | Cell::Text => {
                    let s = std::str::from_utf8(t).map_err(|_| not_utf8(path, &record, &acc.name))?;
                    if !acc.text {
                        if !acc.values.is_empty() {
                            *flip = Some(rows);
                        }
                        acc.become_text();
                    }
                    acc.category(s, 1);
                }
            }
        }
        rows += 1;
    }
    if flips.iter().any(Option::is_some) {
        recount(path, &selected, &flips, &mut accs)?;
    }
    Ok(Table {
        path: path.to_path_buf(),
        format: Format::Csv,
        rows,
        columns: accs.into_iter().map(Acc::finish).collect(),
    })
}

/// Counts, as categories, the original text of the numbers that came before each column turned to text.
fn recount(path: &Path, selected: &[usize], flips: &[Option<u64>], accs: &mut [Acc]) -> Result<(), TableError> {
    let end = flips.iter().flatten().copied().max().unwrap_or(0);
    let mut source = Source::open(path)?;
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    while row < end && source.next(&mut record)? {
        for ((acc, flip), &i) in accs.iter_mut().zip(flips).zip(selected) {
            if flip.is_some_and(|f| row < f) {
                let t = record[i].trim_ascii();
                if let Cell::Number(_) = classify(t) {
                    let s = std::str::from_utf8(t).map_err(|_| not_utf8(path, &record, &acc.name))?;
                    acc.category(s, 1);
                }
            }
        }
        row += 1;
    }
    Ok(())
}
