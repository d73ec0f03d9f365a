//! The one CSV error the `csv` crate does not report: a quoted field that is never closed, which it reads
//! as running to the end of the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use crate::TableError;
use crate::csv::io_error;

/// The `csv` crate reads a quoted field that is never closed as running to the end of the file, silently.
/// This is that error, for the last record of the file, which starts at `last` of a reader that started at
/// byte `base` (its line relative to that reader).
pub(crate) fn unclosed_quote(path: &Path, base: u64, last: &csv::Position) -> Result<(), TableError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(base + last.byte())).map_err(io_error(path))?;
    let mut file = BufReader::with_capacity(64 << 10, file);
    let mut quotes = Quotes::default();
    loop {
        let chunk = file.fill_buf().map_err(io_error(path))?;
        if chunk.is_empty() {
            break;
        }
        quotes.feed(chunk);
        let n = chunk.len();
        file.consume(n);
    }
    match quotes.state {
        Field::Quoted => Err(TableError::Csv {
            path: path.to_path_buf(),
            line: last.line() + quotes.opened_at,
            message: "a quoted field opens here and is never closed, so the rest of the file would be read as one \
                      value; close the quote (a `\"` inside a quoted field is written `\"\"`) or remove it"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// Where a run of CSV records is, as the `csv` crate reads them: a `"` opens a quoted field only at the
/// start of a field; inside one, `""` is a quote and a single `"` closes it (what follows up to the next
/// delimiter is taken as is).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Field {
    #[default]
    Start,
    Unquoted,
    Quoted,
    /// A `"` in a quoted field: closing it, or the first of `""`.
    QuoteInside,
}

/// A [`Field`] state fed bytes, counting newlines.
#[derive(Debug, Default)]
struct Quotes {
    state: Field,
    lines: u64,
    /// Newlines before the last opening quote.
    opened_at: u64,
}

impl Quotes {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (Field::Start, b'"') => {
                    self.opened_at = self.lines;
                    Field::Quoted
                }
                (Field::Quoted, b'"') => Field::QuoteInside,
                (Field::QuoteInside, b'"') => Field::Quoted,
                (Field::Quoted, _) => Field::Quoted,
                (_, b',' | b'\r' | b'\n') => Field::Start,
                _ => Field::Unquoted,
            };
            self.lines += u64::from(b == b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::csv::read_in_parts;
    use crate::{ReadOptions, TableError};

    #[test]
    fn a_quote_never_closed_is_an_error_at_its_line_in_any_part() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.csv");
        for nl in ["\n", "\r\n"] {
            for bad in [0, 1, 250, 499, 998, 999] {
                let mut text = format!("x,s{nl}");
                for r in 0..1000 {
                    match r {
                        _ if r == bad => text.push_str(&format!("0.5,\"p{nl}")),
                        // (A quote after the unclosed one would close it: there are none.)
                        _ if r % 7 == 0 && r < bad => text.push_str(&format!("{r},\"two{nl}lines, \"\"q\"\"\"{nl}")),
                        _ => text.push_str(&format!("{r},a b{nl}")),
                    }
                }
                std::fs::write(&p, &text).unwrap();
                // Line of row `bad`: the header, then two lines for each row before it that is a multiple of 7.
                let line = 2 + bad as u64 + (0..bad).filter(|r| r % 7 == 0).count() as u64;
                for parts in [1, 2, 3, 5] {
                    let e = read_in_parts(&p, &ReadOptions::default(), parts, 0).unwrap_err();
                    match &e {
                        TableError::Csv { line: l, message, .. } => {
                            assert_eq!(*l, line, "{nl:?} row {bad}, {parts} parts: {e}");
                            assert!(message.contains("never closed"), "{message}");
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn quotes_closed_at_the_end_of_the_file_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.csv");
        for end in ["1,\"a\nb\"", "1,\"a\nb\"\n", "1,\"a\"\"\"", "1,5\"", "1,\"a\"b\"", "1,\"\"", "\"1\",x\n\n"] {
            let text = format!("x,s\n2,\"c\nd\"\n{end}");
            std::fs::write(&p, &text).unwrap();
            for parts in [1, 2] {
                let t = read_in_parts(&p, &ReadOptions::default(), parts, 0).unwrap_or_else(|e| panic!("{end:?}: {e}"));
                assert_eq!(t.rows, 2, "{end:?}");
            }
        }
    }
}
