//! The one CSV reader for the tables dagrun writes and plugins read (`predictions.csv`,
//! training data): RFC 4180, so a quoted field may hold commas, quotes (`""`) and newlines;
//! a header row names the columns; fields are trimmed; blank lines are skipped. Errors name
//! the file, the line and the column.

use std::fmt;

/// A problem reading a table; every variant names the file (or input) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// No header row.
    Empty {
        /// The file or input.
        source: String,
    },
    /// A column name appears twice in the header.
    DuplicateColumn {
        /// The file or input.
        source: String,
        /// The column.
        column: String,
    },
    /// A column the caller needs is not in the header.
    NoColumn {
        /// The file or input.
        source: String,
        /// The column asked for.
        column: String,
        /// The header.
        columns: Vec<String>,
    },
    /// A row with more or fewer fields than the header.
    FieldCount {
        /// The file or input.
        source: String,
        /// 1-based line the row starts on.
        line: u64,
        /// Fields in the row.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// Not readable as CSV text (invalid UTF-8, an I/O error).
    Malformed {
        /// The file or input.
        source: String,
        /// 1-based line, when known.
        line: Option<u64>,
        /// The reader's message.
        message: String,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Empty { source } => write!(f, "{source} is empty (expected a CSV file with a header row)"),
            TableError::DuplicateColumn { source, column } => {
                write!(f, "{source}: column `{column}` appears twice in the header")
            }
            TableError::NoColumn { source, column, columns } => {
                write!(f, "{source} has no column `{column}`; the columns are: {}", columns.join(", "))
            }
            TableError::FieldCount { source, line, found, expected } => {
                write!(f, "{source} line {line}: {found} fields, but the header has {expected} columns")
            }
            TableError::Malformed { source, line: Some(line), message } => write!(f, "{source} line {line}: {message}"),
            TableError::Malformed { source, line: None, message } => write!(f, "{source}: {message}"),
        }
    }
}

impl std::error::Error for TableError {}

/// One data row: its fields (trimmed, unquoted) and the line it starts on.
#[derive(Debug)]
pub struct Row<'r> {
    /// 1-based line the row starts on (the header is line 1, unless blank lines precede it).
    pub line: u64,
    record: &'r csv::StringRecord,
}

impl<'r> Row<'r> {
    /// The field in column `col` (an index from [`Table::column`]); rows have exactly as many
    /// fields as the header.
    pub fn get(&self, col: usize) -> &'r str {
        &self.record[col]
    }

    /// Every field, in column order.
    pub fn fields(&self) -> impl Iterator<Item = &'r str> {
        self.record.iter()
    }
}

/// A CSV table (in memory) being read row by row.
pub struct Table<'t> {
    source: String,
    text: &'t [u8],
    reader: csv::Reader<&'t [u8]>,
    header: Vec<String>,
    record: csv::StringRecord,
    /// Line numbers are counted here, not taken from the csv crate, whose line positions are
    /// off after blank lines and CRLF endings: `line` is the line at byte `offset`.
    offset: usize,
    line: u64,
}

impl fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table").field("source", &self.source).field("header", &self.header).finish_non_exhaustive()
    }
}

impl<'t> Table<'t> {
    /// A table from text; `source` names it in errors (`predictions.csv`, "input `data`").
    /// Reads the header row.
    pub fn from_text(source: &str, text: &'t str) -> Result<Self, TableError> {
        Table::from_bytes(source, text.as_bytes())
    }

    /// A table from bytes that should be UTF-8 (a field that is not is an error).
    pub fn from_bytes(source: &str, text: &'t [u8]) -> Result<Self, TableError> {
        let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text);
        let mut table = Table {
            source: source.to_owned(),
            text,
            reader,
            header: Vec::new(),
            record: csv::StringRecord::new(),
            offset: 0,
            line: 1,
        };
        if !table.next_record()? {
            return Err(TableError::Empty { source: table.source });
        }
        let header: Vec<String> = table.record.iter().map(str::to_owned).collect();
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(TableError::DuplicateColumn { source: table.source, column: name.clone() });
            }
        }
        table.header = header;
        Ok(table)
    }

    /// The column names.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The file or input name used in errors.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The index of column `name`, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<usize, TableError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| TableError::NoColumn {
            source: self.source.clone(),
            column: name.to_owned(),
            columns: self.header.clone(),
        })
    }

    /// The next data row, `None` at the end; a row whose field count differs from the header's
    /// is an error.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, TableError> {
        if !self.next_record()? {
            return Ok(None);
        }
        let start = self.record.position().map_or(0, csv::Position::byte);
        let line = self.line_at(start);
        if self.record.len() != self.header.len() {
            return Err(TableError::FieldCount {
                source: self.source.clone(),
                line,
                found: self.record.len(),
                expected: self.header.len(),
            });
        }
        Ok(Some(Row { line, record: &self.record }))
    }

    /// Reads the next record that is not a blank line into `self.record`.
    fn next_record(&mut self) -> Result<bool, TableError> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(false),
                // A line of spaces is one empty field after trimming.
                Ok(true) if self.record.len() == 1 && self.record[0].is_empty() && self.header.len() != 1 => {}
                Ok(true) => return Ok(true),
                Err(e) => {
                    let line = e.position().map(|p| self.line_at(p.byte()));
                    return Err(TableError::Malformed { source: self.source.clone(), line, message: csv_message(&e) });
                }
            }
        }
    }

    /// The line of the record whose parse began at byte `start` (the csv crate's record
    /// position, which may sit on the line endings before the record); `start` never decreases.
    fn line_at(&mut self, start: u64) -> u64 {
        let mut start = usize::try_from(start).unwrap_or(usize::MAX).min(self.text.len());
        while start < self.text.len() && matches!(self.text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.offset {
            self.line += self.text[self.offset..start].iter().filter(|&&b| b == b'\n').count() as u64;
            self.offset = start;
        }
        self.line
    }
}

/// The csv crate's message without its own position prefix (we add file and line).
fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not valid UTF-8", err.field() + 1),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Result<Vec<(u64, Vec<String>)>, TableError> {
        let mut t = Table::from_text("t.csv", text)?;
        let mut out = Vec::new();
        while let Some(r) = t.next_row()? {
            out.push((r.line, r.fields().map(str::to_owned).collect()));
        }
        Ok(out)
    }

    #[test]
    fn quoted_commas_quotes_and_newlines_stay_in_their_field() {
        let text = "id,city,note\n1,\"Paris, FR\",plain\n2,\"Sao \"\"Paulo\"\"\",\"two\nlines\"\n3, Oslo ,x\n";
        let got = rows(text).unwrap();
        assert_eq!(got[0], (2, vec!["1".into(), "Paris, FR".into(), "plain".into()]));
        assert_eq!(got[1], (3, vec!["2".into(), "Sao \"Paulo\"".into(), "two\nlines".into()]));
        assert_eq!(got[2], (5, vec!["3".into(), "Oslo".into(), "x".into()]), "line counts the quoted newline; trimmed");
    }

    #[test]
    fn header_columns_and_blank_lines() {
        let mut t = Table::from_text("t.csv", "\n a ,\"b\"\r\n1,2\r\n\r\n   \n3,4").unwrap();
        assert_eq!(t.header(), ["a", "b"]);
        assert_eq!(t.column("b").unwrap(), 1);
        assert_eq!(t.column("z").unwrap_err().to_string(), "t.csv has no column `z`; the columns are: a, b");
        let first = t.next_row().unwrap().unwrap();
        assert_eq!((first.line, first.get(0), first.get(1)), (3, "1", "2"));
        let last = t.next_row().unwrap().unwrap();
        assert_eq!((last.line, last.get(1)), (6, "4"));
        assert!(t.next_row().unwrap().is_none());
        let lines: Vec<u64> = rows("a,b\n1,2\n\n\n3,4\r\n\r\n5,6\n").unwrap().iter().map(|r| r.0).collect();
        assert_eq!(lines, [2, 5, 7], "blank lines and CRLF count as lines");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = |text: &str| rows(text).unwrap_err().to_string();
        assert_eq!(e(""), "t.csv is empty (expected a CSV file with a header row)");
        assert_eq!(e("\n\n"), "t.csv is empty (expected a CSV file with a header row)");
        assert_eq!(e("a,b,a\n"), "t.csv: column `a` appears twice in the header");
        assert_eq!(e("a,b\n1,2\n1\n"), "t.csv line 3: 1 fields, but the header has 2 columns");
        assert_eq!(e("a,b\n1,\"2,3\",4\n"), "t.csv line 2: 3 fields, but the header has 2 columns");
        let bad = rows_bytes(b"a,b\n1,\xff\n").unwrap_err().to_string();
        assert_eq!(bad, "t.csv line 2: field 2 is not valid UTF-8");
    }

    fn rows_bytes(bytes: &[u8]) -> Result<usize, TableError> {
        let mut t = Table::from_bytes("t.csv", bytes)?;
        let mut n = 0;
        while t.next_row()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_single_column_keeps_its_empty_values() {
        assert_eq!(rows("y\n1\n\"\"\n2\n").unwrap().len(), 3);
    }
}
