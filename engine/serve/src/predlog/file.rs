//! One log file being appended to: opened with its torn last line (a write cut short by a crash)
//! cut off and its header checked, then whole lines gathered in memory and written with one call;
//! a failed write leaves only whole lines behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// How much of a file is read at a time when looking for its last line end.
const CHUNK: u64 = 64 << 10;

/// A log file open for appending lines under one header.
#[derive(Debug)]
pub(crate) struct Sink {
    /// Its header line (`\n` included).
    pub header: String,
    file: File,
    /// Whole lines not written yet.
    buf: Vec<u8>,
    /// Rows in `buf`.
    rows: u64,
    /// Whether `buf` starts with the header (a new or empty file).
    header_in_buf: bool,
    /// Its length after the last write.
    len: u64,
}

/// A write that failed: what reached the file anyway, what did not, and why.
#[derive(Debug)]
pub(crate) struct Failed {
    pub written: u64,
    pub lost: u64,
    pub error: io::Error,
}

impl Sink {
    /// Opens `path` to append lines under `header`: a missing or empty file gets the header first;
    /// an existing one loses its unfinished last line, if any. `None`: the file has another
    /// header (it is left as it was, but for a torn last line).
    pub fn open(path: &Path, header: &str) -> io::Result<Option<Sink>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let len = repair(&mut file)?;
        if len > 0 && !starts_with(&mut file, len, header.as_bytes())? {
            return Ok(None);
        }
        let mut sink = Sink {
            header: header.to_owned(),
            file,
            buf: Vec::with_capacity(64 << 10),
            rows: 0,
            header_in_buf: len == 0,
            len,
        };
        if sink.header_in_buf {
            sink.buf.extend_from_slice(header.as_bytes());
        }
        Ok(Some(sink))
    }

    /// The buffer to append whole lines to; `rows` of them are added.
    pub fn lines(&mut self, rows: usize, push: impl FnOnce(&mut Vec<u8>)) {
        push(&mut self.buf);
        self.rows += rows as u64;
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes the lines gathered so far with one call; the rows written. After a failure, the
    /// file is cut back to its last whole line and the sink should be dropped (a reopened one
    /// writes the header again if it did not make it).
    pub fn flush(&mut self) -> Result<u64, Failed> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        let rows = std::mem::take(&mut self.rows);
        let header = std::mem::take(&mut self.header_in_buf);
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.buf.clear();
                Ok(rows)
            }
            Err(error) => {
                let after = repair(&mut self.file).unwrap_or(self.len);
                let reached = (after.saturating_sub(self.len) as usize).min(self.buf.len());
                let lines = self.buf[..reached].iter().filter(|&&b| b == b'\n').count() as u64;
                let written = lines.saturating_sub(u64::from(header)).min(rows);
                self.len = after;
                self.buf.clear();
                Err(Failed { written, lost: rows - written, error })
            }
        }
    }

    /// Writes what is left and asks the system to keep it on disk.
    pub fn close(mut self) -> Result<u64, Failed> {
        let rows = self.flush()?;
        let _ = self.file.sync_data();
        Ok(rows)
    }
}

/// Cuts `file` after its last `\n` (nothing, if it has none); its length after.
pub(crate) fn repair(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut chunk = Vec::new();
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(CHUNK);
        chunk.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        file.set_len(keep)?;
    }
    Ok(keep)
}

/// Whether the `len` bytes of `file` start with `prefix`.
fn starts_with(file: &mut File, len: u64, prefix: &[u8]) -> io::Result<bool> {
    if len < prefix.len() as u64 {
        return Ok(false);
    }
    let mut head = vec![0; prefix.len()];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    Ok(head == prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "a,b,prediction\n";

    fn append(path: &Path, rows: &[&str]) -> Option<u64> {
        let mut sink = Sink::open(path, HEADER).unwrap()?;
        for row in rows {
            sink.lines(1, |b| b.extend_from_slice(row.as_bytes()));
        }
        Some(sink.close().unwrap())
    }

    #[test]
    fn a_new_file_gets_the_header_and_an_existing_one_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("churn/2025-03-02.csv");
        assert_eq!(append(&path, &["1,2,0\n", "3,4,1\n"]), Some(2));
        assert_eq!(append(&path, &["5,6,1\n"]), Some(1));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,prediction\n1,2,0\n3,4,1\n5,6,1\n");
        std::fs::write(&path, "").unwrap();
        assert_eq!(append(&path, &["7,8,0\n"]), Some(1));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,prediction\n7,8,0\n", "an empty file gets a header");
    }

    #[test]
    fn a_file_with_another_header_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2025-03-02.csv");
        for other in ["a,b,c,prediction\n1,2,3,0\n", "a,b,prediction,proba_1\n", "a,b\n"] {
            std::fs::write(&path, other).unwrap();
            assert_eq!(append(&path, &["1,2,0\n"]), None, "{other:?}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), other);
        }
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2025-03-02.csv");
        std::fs::write(&path, "a,b,prediction\n1,2,0\n3,4").unwrap();
        assert_eq!(append(&path, &["5,6,1\n"]), Some(1));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,prediction\n1,2,0\n5,6,1\n");
        // A torn header: the file starts again.
        std::fs::write(&path, "a,b,pre").unwrap();
        assert_eq!(append(&path, &["7,8,0\n"]), Some(1));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,prediction\n7,8,0\n");
    }

    #[test]
    fn repair_finds_the_last_line_end_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.csv");
        let whole = "x\n".repeat(10);
        let torn = "y".repeat(3 * CHUNK as usize + 17);
        std::fs::write(&path, format!("{whole}{torn}")).unwrap();
        let mut file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        assert_eq!(repair(&mut file).unwrap(), whole.len() as u64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        std::fs::write(&path, &torn).unwrap();
        let mut file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        assert_eq!(repair(&mut file).unwrap(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_loses_its_rows_and_leaves_whole_lines() {
        // /dev/full refuses every write with ENOSPC, as a full disk does.
        let Ok(file) = OpenOptions::new().read(true).append(true).open("/dev/full") else { return };
        let mut sink =
            Sink { header: HEADER.into(), file, buf: HEADER.as_bytes().to_vec(), rows: 0, header_in_buf: true, len: 0 };
        sink.lines(2, |b| b.extend_from_slice(b"1,2,0\n3,4,1\n"));
        let failed = sink.flush().unwrap_err();
        assert_eq!((failed.written, failed.lost), (0, 2));
        assert_eq!(failed.error.raw_os_error(), Some(28), "ENOSPC: {}", failed.error);
        assert_eq!(sink.pending(), 0);
    }
}
