//! A CSV file parsed by several threads: one thread cuts the file into chunks of whole records (at most a
//! batch of them each, cut only at a newline outside quotes, as the CSV reader would read it), the others parse
//! the chunks into batches, and the consumer receives them in file order. Memory stays bounded: a few chunks
//! and batches are in flight at a time, and their buffers are reused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use super::{Batch, CsvColumns, Fields, Spawned, csv_err};
use crate::error::{Result, io_err};

/// A run of whole records from the file.
struct Chunk {
    seq: u64,
    bytes: Vec<u8>,
    /// The line (1-based) the chunk starts on.
    first_line: u64,
}

/// A parsed chunk, its rows numbered from 0 (the consumer knows where they start).
struct Parsed {
    seq: u64,
    batch: Result<Batch>,
    /// Data rows read (blank lines are not rows), including unlabelled ones left out.
    rows: u64,
}

/// Where a CSV file's records start, and how to read them.
#[derive(Debug)]
pub(crate) struct CsvSource {
    pub path: PathBuf,
    /// Byte offset of the first record after the header.
    pub offset: u64,
    /// The line that offset is on.
    pub line: u64,
}

/// Starts reading `source` in `scope`; returns the batches, in file order, each with at most `batch_size` rows,
/// and where to return batches for reuse. Unlabelled rows left out come as batches with no rows (they are
/// counted).
pub(crate) fn spawn<'s>(
    scope: &'s Scope<'s, '_>,
    source: CsvSource,
    cols: CsvColumns,
    batch_size: usize,
    workers: usize,
) -> Spawned {
    let workers = workers.max(1);
    let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(workers);
    let (spare_tx, spare_rx) = channel::<Vec<u8>>();
    let (parsed_tx, parsed_rx) = sync_channel::<Parsed>(workers);
    let (out_tx, out_rx) = sync_channel::<Result<Batch>>(2);
    let (empty_tx, empty_rx) = channel::<Batch>();
    let failed_tx = parsed_tx.clone();
    scope.spawn(move || cut(source, batch_size, &chunk_tx, &spare_rx, &failed_tx));
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let empty_rx = Arc::new(Mutex::new(empty_rx));
    let cols = Arc::new(cols);
    for _ in 0..workers {
        let (chunk_rx, empty_rx, cols) = (chunk_rx.clone(), empty_rx.clone(), cols.clone());
        let (parsed_tx, spare_tx) = (parsed_tx.clone(), spare_tx.clone());
        scope.spawn(move || {
            loop {
                let Ok(chunk) = chunk_rx.lock().expect("not poisoned").recv() else { return };
                let batch = empty_rx.lock().expect("not poisoned").try_recv().unwrap_or_default();
                let (batch, rows) = parse(&cols, &chunk, batch);
                let _ = spare_tx.send(chunk.bytes);
                if parsed_tx.send(Parsed { seq: chunk.seq, batch, rows }).is_err() {
                    return;
                }
            }
        });
    }
    drop(parsed_tx);
    scope.spawn(move || order(parsed_rx, &out_tx));
    (out_rx, empty_tx)
}

/// Hands the parsed chunks on in file order, numbering their rows.
fn order(parsed: Receiver<Parsed>, out: &SyncSender<Result<Batch>>) {
    let mut waiting = BTreeMap::new();
    let (mut next, mut first_row) = (0u64, 0u64);
    for p in parsed {
        waiting.insert(p.seq, p);
        while let Some(p) = waiting.remove(&next) {
            next += 1;
            let batch = p.batch.map(|mut b| {
                b.renumber(first_row);
                b
            });
            first_row += p.rows;
            let failed = batch.is_err();
            if out.send(batch).is_err() || failed {
                return; // the consumer stopped, or the file is bad from here on
            }
        }
    }
}

/// Reads the file and cuts it into chunks of at most `batch_size` records (the last may be shorter).
/// A read error is sent on as a parse result of its own, in order.
fn cut(
    source: CsvSource,
    batch_size: usize,
    chunks: &SyncSender<Chunk>,
    spare: &Receiver<Vec<u8>>,
    parsed: &SyncSender<Parsed>,
) {
    let mut reader = Cutter::new(batch_size);
    let (mut seq, mut line) = (0u64, source.line);
    let fail = |seq, e| {
        let _ = parsed.send(Parsed { seq, batch: Err(e), rows: 0 });
    };
    let mut file = match File::open(&source.path).and_then(|mut f| f.seek(SeekFrom::Start(source.offset)).map(|_| f)) {
        Ok(f) => f,
        Err(e) => return fail(0, io_err(&source.path)(e)),
    };
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&carry);
        let end = match reader.fill(&mut file, &mut buf) {
            Ok(end) => end,
            Err(e) => return fail(seq, io_err(&source.path)(e)),
        };
        carry.clear();
        carry.extend_from_slice(&buf[end..]);
        buf.truncate(end);
        if buf.is_empty() {
            return;
        }
        let newlines = memchr::memchr_iter(b'\n', &buf).count() as u64;
        if chunks.send(Chunk { seq, bytes: buf, first_line: line }).is_err() {
            return;
        }
        (seq, line) = (seq + 1, line + newlines);
    }
}

/// Finds where records end: at a newline outside a quoted field. A quote opens a quoted field only at the
/// start of a field; in one, `""` is a quote and a lone `"` closes it (the CSV reader's rules).
struct Cutter {
    batch_size: usize,
    /// Bytes read per read call (grows to the size of a batch).
    read_size: usize,
}

impl Cutter {
    fn new(batch_size: usize) -> Cutter {
        Cutter { batch_size, read_size: 256 << 10 }
    }

    /// Reads into `buf` (which starts at a record) until it holds `batch_size` records or the file ends; returns
    /// where the last whole record ends (everything, at the end of the file).
    fn fill(&mut self, file: &mut File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let (mut scanned, mut records, mut quoted) = (0, 0, false);
        loop {
            let stop = if buf.is_empty() { None } else { self.scan(buf, &mut scanned, &mut records, &mut quoted) };
            if let Some(end) = stop {
                self.read_size = self.read_size.max(end + end / 8);
                return Ok(end);
            }
            let len = buf.len();
            buf.resize(len + self.read_size, 0);
            let n = read_full(file, &mut buf[len..])?;
            buf.truncate(len + n);
            if n == 0 {
                return Ok(buf.len());
            }
        }
    }

    /// Scans `buf[*scanned..]`; `Some(end)` after the `batch_size`-th record. Stops at a quote in a quoted
    /// field when the byte after it (another quote, or the field's end) is not read yet.
    fn scan(&self, buf: &[u8], scanned: &mut usize, records: &mut usize, quoted: &mut bool) -> Option<usize> {
        let mut at = *scanned;
        while let Some(i) = memchr::memchr2(b'\n', b'"', &buf[at..]).map(|i| at + i) {
            at = i + 1;
            if buf[i] == b'\n' {
                if !*quoted {
                    *records += 1;
                    if *records == self.batch_size {
                        *scanned = at;
                        return Some(at);
                    }
                }
            } else if *quoted {
                match buf.get(i + 1) {
                    None => {
                        *scanned = i; // decided once the next byte is read
                        return None;
                    }
                    Some(b'"') => at = i + 2, // an escaped quote
                    Some(_) => *quoted = false,
                }
            } else {
                // A quote opens a quoted field only at the start of a field; elsewhere it is a plain character.
                *quoted = i == 0 || matches!(buf[i - 1], b',' | b'\n' | b'\r');
            }
        }
        *scanned = buf.len();
        None
    }
}

fn read_full(file: &mut File, mut buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while !buf.is_empty() {
        match file.read(buf) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                buf = &mut buf[k..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Parses one chunk into `batch`: its rows numbered from 0, lines from the chunk's first line. Returns the
/// batch and the number of data rows read (blank lines are not rows).
fn parse(cols: &CsvColumns, chunk: &Chunk, mut batch: Batch) -> (Result<Batch>, u64) {
    cols.reset(&mut batch, 0);
    let mut rows = 0u64;
    let plain = memchr::memchr(b'"', &chunk.bytes).is_none();
    let result = match plain.then(|| parse_plain(cols, chunk, &mut batch, &mut rows)).flatten() {
        Some(result) => result,
        None => {
            rows = 0;
            cols.reset(&mut batch, 0);
            parse_csv(cols, chunk, &mut batch, &mut rows)
        }
    };
    batch.set_first_row();
    (result.map(|()| batch), rows)
}

/// Parses a chunk with the CSV reader.
fn parse_csv(cols: &CsvColumns, chunk: &Chunk, batch: &mut Batch, rows: &mut u64) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&chunk.bytes[..]);
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(|e| csv_err(&cols.path, e))? {
        let line = chunk.first_line + record.position().map_or(1, |p| p.line()) - 1;
        cols.check_width(&record, line)?;
        if cols.add(batch, &record, line, *rows)? {
            *rows += 1;
        }
    }
    Ok(())
}

/// The fields of a line without quotes: field `i` ends at `ends[i]`, the next starts after its comma.
struct Plain<'a> {
    line: &'a [u8],
    ends: &'a [usize],
}

impl Fields for Plain<'_> {
    fn count(&self) -> usize {
        self.ends.len()
    }

    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.line[start..self.ends[i]]
    }
}

/// Parses a chunk that holds no quote by splitting lines at newlines and fields at commas, which is what the
/// CSV reader would do. `None` when a line holds a carriage return other than before its newline (the CSV
/// reader ends a record there too): the CSV reader then reads the chunk again from its start.
fn parse_plain(cols: &CsvColumns, chunk: &Chunk, batch: &mut Batch, rows: &mut u64) -> Option<Result<()>> {
    let bytes = &chunk.bytes[..];
    let mut ends = Vec::with_capacity(64);
    let (mut start, mut line_no) = (0, chunk.first_line);
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = bytes[start..end].strip_suffix(b"\r").unwrap_or(&bytes[start..end]);
        (start, line_no) = (end + 1, line_no + 1);
        if memchr::memchr(b'\r', line).is_some() {
            return None;
        }
        ends.clear();
        ends.extend(memchr::memchr_iter(b',', line));
        ends.push(line.len());
        if line.is_empty() {
            continue; // a blank line
        }
        let record = Plain { line, ends: &ends };
        let line = line_no - 1;
        if let Err(e) = cols.check_width(&record, line) {
            return Some(Err(e));
        }
        match cols.add(batch, &record, line, *rows) {
            Ok(true) => *rows += 1,
            Ok(false) => {}
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(()))
}

#[cfg(test)]
#[path = "parallel_tests.rs"]
mod tests;
