//! Tests of the parallel CSV reader: it must read exactly what the sequential reader reads.

use std::path::Path;

use super::super::{Batch, Batches, ColumnSpec, CsvBatches, FeatureBuf};
use super::*;

/// A small deterministic generator (xorshift), so the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Rows that make cutting hard: quoted fields holding newlines, commas and escaped quotes (also right at the
/// start of a field after a newline), quotes inside unquoted fields, blank lines, CRLF, missing labels.
fn tricky(rng: &mut Rng, rows: usize, crlf: bool, blanks: bool) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut s = format!("id,x,note,y{nl}");
    for i in 0..rows {
        let note = match rng.below(7) {
            0 => "\"two\nlines\"".to_owned(),
            1 => "\"say \"\"hi\"\", then\nbye\"".to_owned(),
            2 => "5\" tall".to_owned(),
            3 => "\"\"\"\"".to_owned(),
            4 => format!("\"{nl}{nl}\""),
            _ => format!("n{i}"),
        };
        let y = if rng.below(9) == 0 {
            "NA"
        } else if rng.below(2) == 0 {
            "a"
        } else {
            "b"
        };
        s.push_str(&format!("{i},{}.5,{note},{y}{nl}", rng.below(1000)));
        if blanks && rng.below(13) == 0 {
            s.push_str(nl); // a blank line
        }
    }
    s
}

type Rows = (Vec<u64>, Vec<u64>, Vec<f64>, Vec<Vec<u8>>, Vec<Vec<u8>>, u64);

/// Every batch's rows, concatenated: row ids, lines, features, labels, the `note` column, and the unlabelled count.
fn collect(batches: impl Iterator<Item = Result<Batch>>) -> Result<Rows> {
    let mut all: Rows = Default::default();
    for b in batches {
        let b = b?;
        assert_eq!(b.first_row, b.row_ids.first().copied().unwrap_or(b.first_row));
        all.0.extend(&b.row_ids);
        all.1.extend(&b.lines);
        let FeatureBuf::F64(f) = &b.features else { panic!("f64") };
        all.2.extend(f);
        all.3.extend((0..b.rows()).map(|i| b.labels.get(i).to_vec()));
        all.4.extend((0..b.rows()).map(|i| b.passthrough[0].get(i).to_vec()));
        all.5 += b.unlabelled;
    }
    Ok(all)
}

fn read(path: &Path, skip: bool, f: impl FnOnce(Batches) -> Result<Rows>) -> Result<Rows> {
    let (features, pass) = (["x".to_string()], ["note".to_string()]);
    let s = ColumnSpec {
        features: Some(&features),
        label: Some("y"),
        label_required: true,
        passthrough: &pass,
        skip_unlabelled: skip,
    };
    f(Batches::open(path, &s)?)
}

/// What the sequential reader reads, in batches of 1,000 rows.
fn sequential(path: &Path, skip: bool) -> Result<Rows> {
    read(path, skip, |mut r| {
        let mut batches = Vec::new();
        loop {
            let mut b = Batch::default();
            let n = r.fill(&mut b, 1000)?;
            if n > 0 || b.unlabelled > 0 {
                batches.push(Ok(b));
            }
            if n == 0 {
                return collect(batches.into_iter());
            }
        }
    })
}

/// What the parallel reader reads.
fn parallel(path: &Path, skip: bool, batch_size: usize, workers: usize) -> Result<Rows> {
    read(path, skip, |r| {
        let Batches::Csv(CsvBatches { source: Some(source), cols, .. }) = r else { panic!("a CSV file") };
        std::thread::scope(|scope| {
            let (rx, _) = spawn(scope, source, cols, batch_size, workers);
            let batches: Vec<Result<Batch>> = rx.iter().collect();
            for b in batches.iter().flatten() {
                assert!(b.rows() as u64 + b.unlabelled <= batch_size as u64, "at most a batch of records");
            }
            collect(batches.into_iter())
        })
    })
}

#[test]
fn parallel_reads_exactly_what_one_pass_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..12 {
        // The CSV reader numbers a record after a blank line, and every record of a CRLF file, one line early
        // (it counts from the end of the previous record); the parallel reader's chunks without quotes do not:
        // line numbers are compared in LF files without blank lines.
        let (blanks, crlf) = (case % 2 == 0, case % 3 == 1);
        let text = tricky(&mut rng, 20 + case * 37, crlf, blanks);
        let text = if case % 4 == 3 { text.trim_end().to_owned() } else { text }; // no final newline
        let path = dir.path().join(format!("{case}.csv"));
        std::fs::write(&path, &text).unwrap();
        for skip in [false, true] {
            let lines = |mut rows: Rows| {
                if blanks || crlf {
                    rows.1.clear();
                }
                rows
            };
            let want = match sequential(&path, skip) {
                Ok(rows) => lines(rows),
                Err(e) => panic!("case {case}: {e}"),
            };
            assert!(want.0.len() > 10, "case {case}");
            for (batch_size, workers) in [(1, 1), (2, 3), (3, 2), (7, 4), (64, 2), (4096, 2)] {
                let got = lines(parallel(&path, skip, batch_size, workers).unwrap());
                assert_eq!(got, want, "case {case}, skip {skip}, batch {batch_size}, {workers} workers");
            }
        }
    }
}

#[test]
fn a_quote_at_the_end_of_a_read_waits_for_the_next_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let text = tricky(&mut rng, 300, false, true);
    let path = dir.path().join("t.csv");
    std::fs::write(&path, &text).unwrap();
    let ends = |read_size: usize| {
        let mut cutter = Cutter { batch_size: 5, read_size };
        let mut file = File::open(&path).unwrap();
        let mut rest = Vec::new();
        let mut at = Vec::new();
        let mut total = 0;
        loop {
            let mut buf = std::mem::take(&mut rest);
            cutter.read_size = read_size; // never grow: keep the reads tiny
            let end = cutter.fill(&mut file, &mut buf).unwrap();
            rest = buf[end..].to_vec();
            if end == 0 {
                return at;
            }
            total += end;
            at.push(total);
        }
    };
    let want = ends(1 << 20);
    assert!(want.len() > 50);
    for read_size in 1..9 {
        assert_eq!(ends(read_size), want, "reads of {read_size} bytes");
    }
}

#[test]
fn errors_name_the_absolute_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,x,note,y\n");
    for i in 0..5000 {
        text.push_str(&format!("{i},1.5,\"a\nb\",a\n"));
    }
    let bad = |row: &str| {
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, format!("{text}{row}\n1,2,3,a\n")).unwrap();
        let seq = sequential(&path, false).unwrap_err().to_string();
        let par = parallel(&path, false, 64, 3).unwrap_err().to_string();
        (seq, par)
    };
    // 5000 rows of two lines each after the header: the bad row is on line 10002.
    let (seq, par) = bad("9,x,n,a");
    assert!(seq.ends_with("line 10002: column `x`: `x` is not a number"), "{seq}");
    assert_eq!(par, seq);
    let (_, par) = bad("9,1,n");
    assert!(par.ends_with("line 10002: found record with 3 fields, but the header has 4"), "{par}");
}
