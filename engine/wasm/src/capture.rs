//! Bounded output: the task log (capped, with one truncation marker), the plugin's captured
//! stdout/stderr (excess dropped and counted instead of failing the plugin), and texts the
//! guest hands the host (errors, panic messages, summaries) cut to a documented size.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Default cap of one task's log file (`DAGRUN_LOG_MAX`), in bytes: 64 MiB.
pub const DEFAULT_LOG_BYTES: u64 = 64 << 20;
/// How much of a plugin's stdout, and of its stderr, is kept (the rest is counted and dropped).
pub const CAPTURE_BYTES: usize = 1 << 20;
/// The longest error message kept (task errors, plugin errors, panic messages): 64 KiB.
pub const MAX_ERROR_BYTES: usize = 64 << 10;
/// The longest plugin summary kept: 1 MiB (a longer one is replaced, see [`bound_summary`]).
pub const MAX_SUMMARY_BYTES: usize = 1 << 20;

/// Cuts `text` to at most `max` bytes (on a character boundary) and appends a marker saying
/// how much was dropped. Short texts are returned unchanged.
pub fn truncate_text(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.shrink_to_fit();
    text.push_str(&format!("… [dagrun: truncated: {} of {total} bytes dropped (limit {max} bytes)]", total - end));
    text
}

/// A plugin summary over [`MAX_SUMMARY_BYTES`] becomes a small JSON object that says so and
/// keeps the start of the text: `{"dagrun_truncated": "...", "head": "..."}`.
pub fn bound_summary(summary: String) -> String {
    if summary.len() <= MAX_SUMMARY_BYTES {
        return summary;
    }
    let note = format!(
        "the plugin's summary was {} bytes, over the {MAX_SUMMARY_BYTES}-byte limit: only its start is kept",
        summary.len()
    );
    let head = truncate_text(summary, 4096);
    serde_json::json!({ "dagrun_truncated": note, "head": head }).to_string()
}

/// A task log that stops growing at `cap` bytes and then writes one marker line.
#[derive(Debug)]
pub struct CappedLog {
    sink: Sink,
    written: u64,
    cap: u64,
    dropped: u64,
}

/// Where a log's bytes go.
#[derive(Debug)]
enum Sink {
    Open(fs::File),
    /// A [`CappedLog::on_first_write`] log before its first byte: created there (its directory
    /// too) then.
    Lazy(PathBuf),
    /// Creating the lazy log failed (what was written is lost); why, until taken.
    Failed(Option<std::io::Error>),
}

impl CappedLog {
    /// Opens `path` for appending; bytes already in it count against the cap.
    pub fn append(path: &Path, cap: u64) -> std::io::Result<CappedLog> {
        let file = fs::OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(CappedLog { sink: Sink::Open(file), written, cap, dropped: 0 })
    }

    /// A log that is only created (with its directory) when something is written to it: a
    /// command that prints nothing leaves no file. A file already at `path` (an earlier
    /// attempt's) is removed now.
    pub fn on_first_write(path: &Path, cap: u64) -> std::io::Result<CappedLog> {
        match fs::remove_file(path) {
            Err(e) if !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Err(e);
            }
            _ => {}
        }
        Ok(CappedLog::on_first_write_new(path, cap))
    }

    /// [`CappedLog::on_first_write`] where no file can be yet (a first attempt's log, in its
    /// run's own directory): nothing is removed.
    pub fn on_first_write_new(path: &Path, cap: u64) -> CappedLog {
        CappedLog { sink: Sink::Lazy(path.to_owned()), written: 0, cap, dropped: 0 }
    }

    /// The open file, creating a lazy log now; `None` once creating it failed.
    fn file(&mut self) -> Option<&mut fs::File> {
        if let Sink::Lazy(path) = &self.sink {
            let made = path.parent().map_or(Ok(()), fs::create_dir_all).and_then(|()| fs::File::create(path));
            self.sink = match made {
                Ok(f) => Sink::Open(f),
                Err(e) => Sink::Failed(Some(e)),
            };
        }
        match &mut self.sink {
            Sink::Open(f) => Some(f),
            Sink::Lazy(_) | Sink::Failed(_) => None,
        }
    }

    /// Why the log could not be created, if it could not (see [`CappedLog::on_first_write`]).
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        match &mut self.sink {
            Sink::Failed(e) => e.take(),
            Sink::Open(_) | Sink::Lazy(_) => None,
        }
    }

    /// Appends as much of `bytes` as the cap allows; the first time something is dropped the
    /// marker line is written (it is not counted against the cap).
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let room = self.cap.saturating_sub(self.written);
        let keep = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let first_drop = keep < bytes.len() && self.dropped == 0;
        let cap = self.cap;
        let Some(file) = self.file() else { return };
        let wrote = keep > 0 && file.write_all(&bytes[..keep]).is_ok();
        if first_drop {
            let _ = write!(file, "{}", log_marker(cap));
        }
        if wrote {
            self.written += keep as u64;
        }
        self.dropped += (bytes.len() - keep) as u64;
    }

    /// Bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The line written once into a log that reached its cap.
pub fn log_marker(cap: u64) -> String {
    format!("\n[dagrun: log truncated: it reached the {cap}-byte limit (DAGRUN_LOG_MAX); further output is dropped]\n")
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

/// A plugin's stdout or stderr: keeps the first [`CAPTURE_BYTES`], counts the rest. Writes
/// never fail, so a chatty plugin is not killed by a broken pipe.
#[derive(Debug, Clone, Default)]
pub struct CappedPipe {
    inner: Arc<Mutex<Captured>>,
}

impl CappedPipe {
    fn push(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().expect("capture lock");
        let keep = bytes.len().min(CAPTURE_BYTES - c.kept.len());
        c.kept.extend_from_slice(&bytes[..keep]);
        c.dropped += (bytes.len() - keep) as u64;
    }

    /// What was kept and how many bytes were dropped.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut c = self.inner.lock().expect("capture lock");
        (std::mem::take(&mut c.kept), c.dropped)
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_a_char_boundary_with_a_marker() {
        assert_eq!(truncate_text("short".into(), 10), "short");
        let t = truncate_text("é".repeat(10), 5);
        assert!(t.starts_with("éé…"), "{t}");
        assert!(t.contains("16 of 20 bytes dropped"), "{t}");
    }

    #[test]
    fn a_huge_summary_becomes_a_small_object() {
        let s = bound_summary(format!("\"{}\"", "x".repeat(MAX_SUMMARY_BYTES + 1)));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v["dagrun_truncated"].as_str().unwrap().contains("limit"));
        assert!(s.len() < 10_000);
    }

    #[test]
    fn the_log_stops_at_its_cap_with_one_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut log = CappedLog::append(&path, 10).unwrap();
        log.write(b"12345678");
        log.write(b"abcdef");
        log.write(b"more");
        assert_eq!(log.dropped(), 8);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("12345678ab{}", log_marker(10)));
    }

    #[test]
    fn a_lazy_log_is_created_on_its_first_byte_and_replaces_an_earlier_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/run/t.log");
        let mut silent = CappedLog::on_first_write(&path, 10).unwrap();
        silent.write(b"");
        assert!(!path.exists(), "nothing written: no file, no directory");
        let mut log = CappedLog::on_first_write(&path, 10).unwrap();
        log.write(b"first attempt");
        drop(log);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("first atte{}", log_marker(10)));
        let _retry = CappedLog::on_first_write(&path, 10).unwrap();
        assert!(!path.exists(), "a retry that prints nothing leaves no log of the attempt before it");
        fs::write(&path, "kept").unwrap();
        let mut new = CappedLog::on_first_write_new(&path, 10);
        assert_eq!(fs::read_to_string(&path).unwrap(), "kept", "a log known to be new removes nothing");
        new.write(b"x");
        drop(new);
        assert_eq!(fs::read_to_string(&path).unwrap(), "x");
    }

    #[test]
    fn a_lazy_log_that_cannot_be_created_says_why() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        let mut log = CappedLog::on_first_write(&dir.path().join("file/t.log"), 10).unwrap();
        log.write(b"x");
        assert!(log.take_error().is_some());
    }

    #[test]
    fn the_capture_keeps_its_start_and_counts_the_rest() {
        let mut pipe = CappedPipe::default();
        pipe.write(Bytes::from(vec![b'x'; CAPTURE_BYTES + 5])).unwrap();
        assert_eq!(pipe.check_write().unwrap(), 64 << 10);
        let (kept, dropped) = pipe.take();
        assert_eq!((kept.len(), dropped), (CAPTURE_BYTES, 5));
    }
}
