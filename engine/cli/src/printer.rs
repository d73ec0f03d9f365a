//! The only place that writes to stdout and stderr. A closed pipe (`dagrun run --json | head -1`)
//! stops the output, never the run: writes after it are dropped.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write(closed: &AtomicBool, mut w: impl Write, args: Arguments<'_>) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if w.write_fmt(args).and_then(|()| w.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to stdout; after a write error (a closed pipe) further output is dropped.
pub fn out(args: Arguments<'_>) {
    write(&STDOUT_CLOSED, std::io::stdout().lock(), args);
}

/// Writes to stderr; after a write error further output is dropped.
pub fn err(args: Arguments<'_>) {
    write(&STDERR_CLOSED, std::io::stderr().lock(), args);
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($t:tt)*) => { $crate::printer::out(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprintln!` through [`err`].
macro_rules! errln {
    ($($t:tt)*) => { $crate::printer::err(format_args!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {errln, outln};
