//! The only place that writes to stdout and stderr. A closed pipe (`dagrun run --json | head -1`)
//! stops the output, never the run: writes after it are dropped.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Stdout lines written with [`out_batched`] and not yet written out.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Pending stdout bytes are written once there are this many.
const PENDING_MAX: usize = 64 * 1024;

fn write(closed: &AtomicBool, mut w: impl Write, args: Arguments<'_>) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if w.write_fmt(args).and_then(|()| w.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to stdout; after a write error (a closed pipe) further output is dropped. Lines
/// pending from [`out_batched`] go first.
pub fn out(args: Arguments<'_>) {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    let mut w = std::io::stdout().lock();
    write_pending(&mut pending, &mut w);
    write(&STDOUT_CLOSED, w, args);
}

/// Writes to stdout with the next [`out`] or [`flush_out`], or once 64 KiB are pending: for
/// lines that come by the thousand in a burst (the JSON events of a large run's cache hits),
/// one write instead of one per line.
pub fn out_batched(args: Arguments<'_>) {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    let _ = pending.write_fmt(args);
    if pending.len() >= PENDING_MAX {
        write_pending(&mut pending, &mut std::io::stdout().lock());
    }
}

/// Writes what [`out_batched`] left pending (before the process exits).
pub fn flush_out() {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    write_pending(&mut pending, &mut std::io::stdout().lock());
}

fn write_pending(pending: &mut Vec<u8>, w: &mut impl Write) {
    if pending.is_empty() {
        return;
    }
    if !STDOUT_CLOSED.load(Ordering::Relaxed) && w.write_all(pending).and_then(|()| w.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    pending.clear();
}

/// Writes to stderr; after a write error further output is dropped.
pub fn err(args: Arguments<'_>) {
    // Formatted first: stderr is unbuffered, and would take one `write(2)` per piece.
    let line = args.to_string();
    write(&STDERR_CLOSED, std::io::stderr().lock(), format_args!("{line}"));
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($t:tt)*) => { $crate::printer::out(format_args!("{}\n", format_args!($($t)*))) };
}

/// `println!` through [`out_batched`].
macro_rules! outln_batched {
    ($($t:tt)*) => { $crate::printer::out_batched(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprintln!` through [`err`].
macro_rules! errln {
    ($($t:tt)*) => { $crate::printer::err(format_args!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {errln, outln, outln_batched};
