//! The `dagrun` binary: parses arguments and hands over to the commands.

mod approve;
mod args;
mod commands;
mod daemon;
mod env;
mod exec_task;
mod exit;
mod export;
mod history;
mod maintenance;
mod notifications;
mod plugin;
mod printer;
mod remote;
mod remote_args;
mod remote_registry;
mod render;
mod report;
mod reporter;
mod run;
mod serve;
mod ui;

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match args::parse() {
        Ok(cli) => cli.command,
        Err(exit) => return exit.into(),
    };
    // A run must survive a closed stdout (`dagrun run --json | head -1`): its output goes
    // through the printer, which stops writing instead. Other commands exit quietly on SIGPIPE
    // like other command-line tools (`dagrun plan | head`).
    if !command.survives_closed_pipe() {
        restore_sigpipe();
    }
    let code = commands::dispatch(command);
    printer::flush_out();
    code.into()
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
