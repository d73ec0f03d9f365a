//! CSV (RFC 4180, a header row first) read into columns. A large file is read in parts, one thread each,
//! split at newlines; a part's start is only trusted once the part before it ends exactly there (so a
//! quoted newline cannot fool the split). A column that turns to text after some numbers has those
//! numbers' original text recounted in a second pass over just the rows concerned.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use crate::accum::{Acc, boolean};
use crate::cell::{Cell, classify};
use crate::quotes::unclosed_quote;
use crate::{Format, ReadOptions, Table, TableError, select};

/// Files smaller than this are read by one thread.
const PARALLEL_BYTES: u64 = 8 << 20;

type CsvReader = csv::Reader<BufReader<File>>;

/// A UTF-8 byte order mark, dropped from the start of the header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TableError + '_ {
    move |source| TableError::Io { path: path.to_path_buf(), source }
}

fn reader(file: File, headers: bool) -> CsvReader {
    csv::ReaderBuilder::new().has_headers(headers).flexible(true).from_reader(BufReader::with_capacity(1 << 20, file))
}

/// Opens `path` and reads its header row.
fn open(path: &Path) -> Result<(CsvReader, Vec<String>), TableError> {
    let mut reader = reader(File::open(path).map_err(io_error(path))?, true);
    let raw = reader.byte_headers().map_err(|e| csv_error(path, e))?.clone();
    let blank = match raw.len() {
        0 => true,
        1 => raw[0].strip_prefix(BOM).unwrap_or(&raw[0]).trim_ascii().is_empty(),
        _ => false,
    };
    if blank {
        return Err(blank_header(path, &mut reader));
    }
    let mut header = Vec::with_capacity(raw.len());
    for (i, field) in raw.iter().enumerate() {
        let field = if i == 0 { field.strip_prefix(BOM).unwrap_or(field) } else { field };
        let name = std::str::from_utf8(field.trim_ascii()).map_err(|_| TableError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: format!("column {} of the header is not valid UTF-8; save the file as UTF-8", i + 1),
        })?;
        header.push(name.to_string());
    }
    Ok((reader, header))
}

/// A file whose first row is blank: empty if nothing else follows, else a blank header.
fn blank_header(path: &Path, reader: &mut CsvReader) -> TableError {
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
        _ => TableError::Csv { path: path.to_path_buf(), line, message },
    }
}

fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

fn wrong_width(path: &Path, record: &csv::ByteRecord, width: usize) -> TableError {
    TableError::Csv {
        path: path.to_path_buf(),
        line: line_of(record),
        message: format!(
            "{}, but the header has {width}; quote values that contain commas (\"1,5\") and give every row {}",
            fields(record.len()),
            fields(width),
        ),
    }
}

/// `1 field`, `2 fields`.
fn fields(n: usize) -> String {
    format!("{n} field{}", if n == 1 { "" } else { "s" })
}

fn not_utf8(path: &Path, record: &csv::ByteRecord, column: &str) -> TableError {
    TableError::Csv {
        path: path.to_path_buf(),
        line: line_of(record),
        message: format!("column `{column}` is not valid UTF-8; save the file as UTF-8"),
    }
}

/// Reads the next data row into `record`: `false` at the end. Blank lines are skipped; a row of the wrong
/// width is an error.
fn next_row(
    path: &Path,
    reader: &mut CsvReader,
    record: &mut csv::ByteRecord,
    width: usize,
) -> Result<bool, TableError> {
    loop {
        if !reader.read_byte_record(record).map_err(|e| csv_error(path, e))? {
            return Ok(false);
        }
        if record.len() == width {
            return Ok(true);
        }
        if !(record.len() == 1 && record[0].trim_ascii().is_empty()) {
            return Err(wrong_width(path, record, width));
        }
    }
}

/// The header's column names.
pub(crate) fn column_names(path: &Path) -> Result<Vec<String>, TableError> {
    Ok(open(path)?.1)
}

/// Reads the columns `opts` selects.
pub(crate) fn read(path: &Path, opts: &ReadOptions) -> Result<Table, TableError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    read_in_parts(path, opts, threads, PARALLEL_BYTES)
}

/// What to read: the selected columns of a file.
struct Plan<'a> {
    path: &'a Path,
    width: usize,
    selected: Vec<usize>,
    /// `selected` is every column, in file order.
    all: bool,
    names: Vec<String>,
    declared: Vec<bool>,
}

impl Plan<'_> {
    /// Empty columns.
    fn accs(&self) -> Vec<Acc> {
        self.names
            .iter()
            .zip(&self.declared)
            .map(|(n, &d)| if d { Acc::declared(n) } else { Acc::new(n, false) })
            .collect()
    }
}

/// [`read`] with up to `parts` threads for a file of at least `min_bytes`.
pub(crate) fn read_in_parts(
    path: &Path,
    opts: &ReadOptions,
    parts: usize,
    min_bytes: u64,
) -> Result<Table, TableError> {
    let (mut first, header) = open(path)?;
    let selected = select(path, &header, opts)?;
    let names: Vec<String> = selected.iter().map(|&i| header[i].clone()).collect();
    let declared = names.iter().map(|n| opts.categorical.contains(n)).collect();
    let all = selected.iter().copied().eq(0..header.len());
    let plan = Plan { path, width: header.len(), selected, all, names, declared };
    let start = first.position().byte();
    let splits = splits(path, start, parts, min_bytes)?;
    // Room for every number of the file in part 0's columns (the others are appended to them), and for
    // its own share in every other part: no reallocation when the estimate holds.
    let len = std::fs::metadata(path).map_err(io_error(path))?.len();
    let bytes_per_row = bytes_per_row(path, start)?;
    let room = |bytes: u64| usize::try_from(bytes / bytes_per_row.max(1) * 21 / 20).unwrap_or(0).min(1 << 28);
    let results: Vec<Result<Part, TableError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..splits.len())
            .map(|i| {
                let (plan, splits) = (&plan, &splits);
                scope.spawn(move || {
                    let mut file = File::open(path).map_err(io_error(path))?;
                    file.seek(SeekFrom::Start(splits[i])).map_err(io_error(path))?;
                    let end = splits.get(i + 1).copied().unwrap_or(len);
                    scan(plan, &mut reader(file, false), splits[i], &splits[i + 1..], room(end - splits[i]))
                })
            })
            .collect();
        let mut results = vec![scan(&plan, &mut first, 0, &splits, room(len - start))];
        results.extend(handles.into_iter().map(|h| h.join().expect("a CSV reader thread panicked")));
        results
    });
    let (mut accs, recount, rows) = merge(&plan, chain(path, &splits, results)?);
    if recount.iter().any(|r| !r.is_empty()) {
        recount_numbers(&plan, &recount, &mut accs)?;
    }
    Ok(Table {
        path: path.to_path_buf(),
        format: Format::Csv,
        rows,
        columns: accs.into_iter().map(Acc::finish).collect(),
    })
}

/// Where parts 2.. start: just after a newline, at equal distances past `start` (the end of the header).
fn splits(path: &Path, start: u64, parts: usize, min_bytes: u64) -> Result<Vec<u64>, TableError> {
    let len = std::fs::metadata(path).map_err(io_error(path))?.len();
    if parts < 2 || len < min_bytes {
        return Ok(Vec::new());
    }
    let mut file = BufReader::with_capacity(64 << 10, File::open(path).map_err(io_error(path))?);
    let mut splits: Vec<u64> = Vec::new();
    let mut skipped = Vec::new();
    for i in 1..parts as u64 {
        let target = (start + (len - start) * i / parts as u64).max(splits.last().copied().unwrap_or(start));
        file.seek(SeekFrom::Start(target)).map_err(io_error(path))?;
        skipped.clear();
        let n = file.read_until(b'\n', &mut skipped).map_err(io_error(path))? as u64;
        let split = target + n;
        if skipped.last() == Some(&b'\n') && split < len && splits.last().is_none_or(|&s| split > s) {
            splits.push(split);
        }
    }
    Ok(splits)
}

/// The average length of the first rows after `start` (up to 256 KiB of them); 0 if no row ends there.
fn bytes_per_row(path: &Path, start: u64) -> Result<u64, TableError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(start)).map_err(io_error(path))?;
    let mut sample = Vec::with_capacity(256 << 10);
    file.take(256 << 10).read_to_end(&mut sample).map_err(io_error(path))?;
    let rows = sample.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((sample.len() as u64).checked_div(rows).unwrap_or(0))
}

/// Rows read by one thread, from one record boundary to where it stopped.
#[derive(Debug)]
struct Part {
    accs: Vec<Acc>,
    /// Per column: the row (within the part) at which a numeric column turned to text.
    flips: Vec<Option<u64>>,
    rows: u64,
    /// The index (into the splits given to `scan`) of the split it stopped on, or `None` at the end.
    end: Option<usize>,
}

/// Reads rows from `reader` (which starts at byte `base` of the file) until it reaches one of `splits`
/// exactly, or the end. A split passed in the middle of a row (a quoted newline) is not a place to stop.
fn scan(plan: &Plan<'_>, reader: &mut CsvReader, base: u64, splits: &[u64], room: usize) -> Result<Part, TableError> {
    let mut part = Part { accs: plan.accs(), flips: vec![None; plan.selected.len()], rows: 0, end: None };
    let mut record = csv::ByteRecord::new();
    let mut next = 0;
    let mut last_start: Option<csv::Position> = None;
    loop {
        let pos = base + reader.position().byte();
        // `pos + 1`: a record ended by CR before the LF the split follows.
        while next < splits.len() && splits[next] < pos {
            next += 1;
        }
        if next < splits.len() && (splits[next] == pos || splits[next] == pos + 1) {
            part.end = Some(next);
            return Ok(part);
        }
        let start = reader.position().clone();
        if !reader.read_byte_record(&mut record).map_err(|e| csv_error(plan.path, e))? {
            if let Some(last) = last_start {
                unclosed_quote(plan.path, base, &last)?;
            }
            return Ok(part);
        }
        last_start = Some(start);
        if record.len() != plan.width {
            if record.len() == 1 && record[0].trim_ascii().is_empty() {
                continue; // a blank line
            }
            return Err(wrong_width(plan.path, &record, plan.width));
        }
        add_row(plan, &mut part, &record)?;
        if part.rows == 1 {
            // Room for `room` numbers in the columns that start with one (not in text columns).
            for acc in part.accs.iter_mut().filter(|a| !a.values.is_empty()) {
                acc.values.reserve(room);
            }
        }
    }
}

fn add_row(plan: &Plan<'_>, part: &mut Part, record: &csv::ByteRecord) -> Result<(), TableError> {
    let row = part.rows;
    let cells = part.accs.iter_mut().zip(&mut part.flips);
    if plan.all {
        for ((acc, flip), field) in cells.zip(record.iter()) {
            add_cell(acc, flip, row, field).map_err(|()| not_utf8(plan.path, record, &acc.name))?;
        }
    } else {
        for ((acc, flip), &i) in cells.zip(&plan.selected) {
            add_cell(acc, flip, row, &record[i]).map_err(|()| not_utf8(plan.path, record, &acc.name))?;
        }
    }
    part.rows += 1;
    Ok(())
}

/// Adds one cell of row `row` (within the part); `Err` when it is text that is not UTF-8.
#[inline(always)]
fn add_cell(acc: &mut Acc, flip: &mut Option<u64>, row: u64, field: &[u8]) -> Result<(), ()> {
    let t = field.trim_ascii();
    match classify(t) {
        Cell::Missing => acc.missing.empty += 1,
        Cell::Nan => acc.missing.nan += 1,
        Cell::Inf => acc.missing.inf += 1,
        Cell::Number(v) if !acc.text => acc.values.push(v),
        Cell::Number(v) if acc.declared => acc.number_category(t, v),
        Cell::Number(_) => {
            let s = std::str::from_utf8(t).map_err(|_| ())?;
            acc.category(s, 1); // a number in a text column: its text as written
        }
        Cell::Text => {
            let s = std::str::from_utf8(t).map_err(|_| ())?;
            if !acc.text {
                if !acc.values.is_empty() {
                    *flip = Some(row);
                }
                acc.become_text();
            }
            acc.category(boolean(s).unwrap_or(s), 1);
        }
    }
    Ok(())
}

/// The parts that tile the file: part 0, then the part starting where it stopped, and so on. The first
/// error on the way is the file's first error (its line made absolute for a part that starts later).
fn chain(path: &Path, splits: &[u64], results: Vec<Result<Part, TableError>>) -> Result<Vec<Part>, TableError> {
    let mut results: Vec<Option<Result<Part, TableError>>> = results.into_iter().map(Some).collect();
    let mut chain = Vec::new();
    let mut at = 0; // index into results: 0 is part 0, i + 1 starts at splits[i]
    loop {
        let part = match results[at].take().expect("each part is used once") {
            Ok(part) => part,
            Err(TableError::Csv { path: p, line, message }) if at > 0 => {
                let before = lines_before(path, splits[at - 1])?;
                return Err(TableError::Csv { path: p, line: line + before, message });
            }
            Err(e) => return Err(e),
        };
        let end = part.end;
        chain.push(part);
        match end {
            // Part `at` was given the splits after its own start.
            Some(i) => at += i + 1,
            None => return Ok(chain),
        }
    }
}

/// Number of newlines in the first `end` bytes of the file.
fn lines_before(path: &Path, end: u64) -> Result<u64, TableError> {
    let mut file = BufReader::new(File::open(path).map_err(io_error(path))?).take(end);
    let mut buf = [0u8; 64 << 10];
    let mut lines = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// Joins the parts' columns; returns them, the rows whose numbers must be recounted as text (per
/// column), and the number of rows.
fn merge(plan: &Plan<'_>, parts: Vec<Part>) -> (Vec<Acc>, Vec<Vec<Range<u64>>>, u64) {
    let width = plan.selected.len();
    let text: Vec<bool> = (0..width).map(|k| parts.iter().any(|p| p.accs[k].text)).collect();
    let mut recount: Vec<Vec<Range<u64>>> = vec![Vec::new(); width];
    let mut rows = 0u64;
    for p in &parts {
        for (k, (acc, flip)) in p.accs.iter().zip(&p.flips).enumerate() {
            match flip {
                Some(f) if acc.text => recount[k].push(rows..rows + f),
                _ if text[k] && !acc.text && !acc.values.is_empty() => recount[k].push(rows..rows + p.rows),
                _ => {}
            }
        }
        rows += p.rows;
    }
    let values: Vec<usize> = (0..width).map(|k| parts.iter().map(|p| p.accs[k].values.len()).sum()).collect();
    let mut parts = parts.into_iter();
    let mut accs = parts.next().map_or_else(|| plan.accs(), |p| p.accs);
    for ((acc, &text), &n) in accs.iter_mut().zip(&text).zip(&values) {
        if text && !acc.text {
            acc.become_text();
        } else if !text {
            acc.values.reserve_exact(n - acc.values.len());
        }
    }
    // Per column, its later parts; appended on as many threads as there were parts (copying numbers is
    // most of the work).
    let mut later: Vec<Vec<Acc>> = (0..width).map(|_| Vec::new()).collect();
    let mut threads = 1;
    for part in parts {
        threads += 1;
        for (column, acc) in later.iter_mut().zip(part.accs) {
            column.push(acc);
        }
    }
    let per_thread = width.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (accs, later) in accs.chunks_mut(per_thread).zip(later.chunks_mut(per_thread)) {
            scope.spawn(move || {
                for (acc, others) in accs.iter_mut().zip(later) {
                    for other in others.drain(..) {
                        acc.absorb(other);
                    }
                }
            });
        }
    });
    (accs, recount, rows)
}

/// Counts, as categories, the original text of the numbers in the `recount` rows of each column (the
/// numbers read before the column turned out to be text).
fn recount_numbers(plan: &Plan<'_>, recount: &[Vec<Range<u64>>], accs: &mut [Acc]) -> Result<(), TableError> {
    let end = recount.iter().flatten().map(|r| r.end).max().unwrap_or(0);
    let (mut reader, _) = open(plan.path)?;
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    while row < end && next_row(plan.path, &mut reader, &mut record, plan.width)? {
        for ((acc, ranges), &i) in accs.iter_mut().zip(recount).zip(&plan.selected) {
            if ranges.iter().any(|r| r.contains(&row)) {
                let t = record[i].trim_ascii();
                if let Cell::Number(_) = classify(t) {
                    let s = std::str::from_utf8(t).map_err(|_| not_utf8(plan.path, &record, &acc.name))?;
                    acc.category(s, 1);
                }
            }
        }
        row += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSV with every hazard for splitting: quoted newlines and commas, CRLF, blank lines, missing
    /// values, columns that turn to text late (in any part).
    fn tricky(rng: &mut fastrand::Rng, rows: usize, crlf: bool) -> String {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut s = format!("id,x,late,quoted,mixed{nl}");
        let late_at = rng.usize(..rows);
        for r in 0..rows {
            let x = match rng.u8(..10) {
                0 => String::new(),
                1 => "NaN".into(),
                2 => "-inf".into(),
                _ => format!("{}", rng.i32(-1000..1000) as f64 / 8.0),
            };
            let late = if r == late_at { "word".to_string() } else { format!("{:03}", rng.u8(..20)) };
            let quoted = match rng.u8(..4) {
                0 => format!("\"a{nl}b, \"\"c\"\"\""),
                1 => "\"x,y\"".into(),
                2 => "\"\"".into(),
                _ => "plain".into(),
            };
            let mixed = if rng.u8(..50) == 0 { "t".to_string() } else { rng.u8(..5).to_string() };
            s.push_str(&format!("{r},{x},{late},{quoted},{mixed}{nl}"));
            if rng.u8(..20) == 0 {
                s.push_str(nl); // a blank line
            }
        }
        s
    }

    #[test]
    fn parts_read_exactly_what_one_pass_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(11);
        let opts = ReadOptions::default();
        let mut used_parts = 0;
        for case in 0..40 {
            let rows = rng.usize(1..400);
            let text = tricky(&mut rng, rows, case % 2 == 1);
            let p = dir.path().join(format!("t{case}.csv"));
            std::fs::write(&p, &text).unwrap();
            let want = read_in_parts(&p, &opts, 1, 0).unwrap();
            assert_eq!(want.rows as usize, rows, "case {case}");
            for parts in 2..6 {
                let got = read_in_parts(&p, &opts, parts, 0).unwrap();
                assert_eq!(got, want, "case {case}, {parts} parts");
            }
            let (_, header) = open(&p).unwrap();
            let start = text.find('\n').unwrap() as u64 + 1;
            let splits = splits(&p, start, 4, 0).unwrap();
            assert!(splits.iter().all(|&s| text.as_bytes()[s as usize - 1] == b'\n'));
            used_parts += splits.len();
            assert_eq!(header.len(), 5);
        }
        assert!(used_parts > 40);
    }

    #[test]
    fn splits_are_trusted_when_they_fall_between_rows() {
        let dir = tempfile::tempdir().unwrap();
        for nl in ["\n", "\r\n"] {
            let text: String =
                std::iter::once(format!("a,b{nl}")).chain((0..1000).map(|i| format!("{i},{}{nl}", i * 2))).collect();
            let p = dir.path().join("s.csv");
            std::fs::write(&p, &text).unwrap();
            let (mut first, header) = open(&p).unwrap();
            let plan = Plan {
                path: &p,
                width: 2,
                selected: vec![0, 1],
                all: true,
                names: header,
                declared: vec![false, false],
            };
            let start = first.position().byte();
            let splits = splits(&p, start, 3, 0).unwrap();
            assert_eq!(splits.len(), 2);
            let part = scan(&plan, &mut first, 0, &splits, 0).unwrap();
            assert_eq!(part.end, Some(0), "{nl:?}: the first part stops at the first split");
        }
    }

    #[test]
    fn field_counts_are_pluralised() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.csv");
        std::fs::write(&p, "a\n1\n2,3\n").unwrap();
        let e = read_in_parts(&p, &ReadOptions::default(), 1, 0).unwrap_err().to_string();
        assert!(e.ends_with(":3: 2 fields, but the header has 1; quote values that contain commas (\"1,5\") and give every row 1 field"), "{e}");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let e = read_in_parts(&p, &ReadOptions::default(), 1, 0).unwrap_err().to_string();
        assert!(e.ends_with(":3: 1 field, but the header has 2; quote values that contain commas (\"1,5\") and give every row 2 fields"), "{e}");
    }

    #[test]
    fn errors_in_later_parts_name_the_absolute_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("a,b\n");
        for i in 0..1000 {
            text.push_str(if i == 900 { "1,2,3\n" } else { "1,2\n" });
        }
        let p = dir.path().join("e.csv");
        std::fs::write(&p, &text).unwrap();
        for parts in [1, 3] {
            let e = read_in_parts(&p, &ReadOptions::default(), parts, 0).unwrap_err();
            assert!(matches!(e, TableError::Csv { line: 902, .. }), "{parts}: {e:?}");
        }
    }
}
