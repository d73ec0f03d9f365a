//! The `dagrun` binary: parses arguments and hands over to the commands.

mod args;
mod commands;
mod env;
mod exit;
mod plugin;
mod render;
mod reporter;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = args::Cli::parse();
    commands::dispatch(cli.command).into()
}

/// Rust ignores SIGPIPE, which makes `dagrun plan | head` panic on a closed pipe; restore the
/// default so dagrun exits quietly like other command-line tools.
#[cfg(unix)]
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; only resets a disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}
