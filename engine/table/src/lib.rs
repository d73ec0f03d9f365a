//! Tabular data for dagrun's native tasks: CSV and Parquet files read column by column into
//! typed columns, with missing, NaN and infinite values counted per column.
//!
//! ```no_run
//! use dagrun_table::{ReadOptions, read_table};
//! # fn main() -> Result<(), dagrun_table::TableError> {
//! let table = read_table("data.parquet".as_ref(), &ReadOptions::default())?;
//! for column in &table.columns {
//!     println!("{}: {} values, {} missing", column.name, column.data.len(), column.missing.total());
//! }
//! # Ok(())
//! # }
//! ```

mod accum;
mod arrow_values;
mod cell;
mod csv;
mod parquet;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The file formats dagrun reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values, RFC 4180, a header row first.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format of a file: Parquet when it starts with the `PAR1` magic bytes (or, when it
    /// cannot be read yet, when its name ends in `.parquet`/`.pq`), else CSV.
    pub fn of(path: &Path) -> Format {
        let mut magic = [0u8; 4];
        let sniffed = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
        if sniffed.is_ok() && &magic == b"PAR1" {
            return Format::Parquet;
        }
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("parquet" | "pq") => Format::Parquet,
            _ => Format::Csv,
        }
    }
}

/// Which columns to read, and how.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Columns to read, in this order; `None`: every column of the file, minus `exclude`.
    /// A listed column that is not in the file is [`TableError::NoColumn`].
    pub columns: Option<Vec<String>>,
    /// Columns never read (ignored when absent from the file).
    pub exclude: Vec<String>,
    /// Columns read as categories even when every value is a number.
    pub categorical: Vec<String>,
}

/// Values that are not usable numbers, counted per column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    /// Empty cells, `NA`, `N/A`, `null`, `None` (any case), Parquet nulls.
    pub empty: u64,
    /// `NaN` values (numeric columns only).
    pub nan: u64,
    /// `inf` / `-inf` values (numeric columns only).
    pub inf: u64,
}

impl Missing {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.empty + self.nan + self.inf
    }
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Every non-missing value is a number: the finite ones, in row order.
    Numeric(Vec<f64>),
    /// Text (or declared categorical): how often each value occurs.
    Categorical(BTreeMap<String, u64>),
}

impl ColumnData {
    /// Number of usable (non-missing) values.
    pub fn len(&self) -> u64 {
        match self {
            ColumnData::Numeric(v) => v.len() as u64,
            ColumnData::Categorical(c) => c.values().sum(),
        }
    }

    /// No usable value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One column as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name in the header / schema.
    pub name: String,
    /// Its usable values.
    pub data: ColumnData,
    /// What was not usable.
    pub missing: Missing,
}

/// A file read into columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Data rows (a header-only CSV has 0).
    pub rows: u64,
    /// The columns asked for, in order.
    pub columns: Vec<Column>,
}

impl Table {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Why a table could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is empty: not even a header row.
    #[error("{} is empty: expected a header row naming the columns", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The CSV is malformed at a line (wrong field count, invalid UTF-8, unterminated quote).
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// What is wrong, and the fix.
        message: String,
    },
    /// The Parquet file could not be decoded.
    #[error("{}: not a readable Parquet file: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// A column has a Parquet type dagrun cannot compare.
    #[error(
        "{}: column `{column}` has type {data_type}, which dagrun cannot read; leave it out with `exclude: [\"{column}\"]` or list the `columns` to read",
        path.display()
    )]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its Arrow type, as Arrow prints it.
        data_type: String,
    },
    /// A requested column is not in the file.
    #[error("{}: no column `{column}` (columns: {})", path.display(), columns.join(", "))]
    NoColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The file's columns.
        columns: Vec<String>,
    },
    /// A column name appears twice.
    #[error("{}: column `{column}` appears twice in the header", path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },
}

/// The column names of a file (CSV header / Parquet schema), without reading its data.
pub fn column_names(path: &Path) -> Result<Vec<String>, TableError> {
    match Format::of(path) {
        Format::Csv => csv::column_names(path),
        Format::Parquet => parquet::column_names(path),
    }
}

/// Reads the columns `opts` asks for.
pub fn read_table(path: &Path, opts: &ReadOptions) -> Result<Table, TableError> {
    match Format::of(path) {
        Format::Csv => csv::read(path, opts),
        Format::Parquet => parquet::read(path, opts),
    }
}

/// The indices (into `names`, the file's columns) of the columns `opts` selects, in the order asked for,
/// each once. A selected name that appears twice in the file is [`TableError::DuplicateColumn`].
pub(crate) fn select(path: &Path, names: &[String], opts: &ReadOptions) -> Result<Vec<usize>, TableError> {
    let keep = |name: &str| !opts.exclude.iter().any(|e| e == name);
    let mut selected: Vec<usize> = match &opts.columns {
        Some(wanted) => wanted
            .iter()
            .filter(|w| keep(w))
            .map(|w| {
                names.iter().position(|n| n == w).ok_or_else(|| TableError::NoColumn {
                    path: path.to_path_buf(),
                    column: w.clone(),
                    columns: names.to_vec(),
                })
            })
            .collect::<Result<_, _>>()?,
        None => (0..names.len()).filter(|&i| keep(&names[i])).collect(),
    };
    let mut seen = std::collections::HashSet::new();
    selected.retain(|&i| seen.insert(i));
    for &i in &selected {
        if names.iter().filter(|n| **n == names[i]).count() > 1 {
            return Err(TableError::DuplicateColumn { path: path.to_path_buf(), column: names[i].clone() });
        }
    }
    Ok(selected)
}
