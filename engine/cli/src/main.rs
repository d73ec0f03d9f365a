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
    fixed_mmap_threshold();
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

/// Keeps glibc handing out blocks of 128 KiB and more as their own mappings, returned to the
/// system when freed. By default each such block freed raises that threshold to its size (up
/// to 32 MiB), so later large buffers (a state file read whole, a hash table being resized)
/// come from the heap, whose pages stay resident after they are freed: ~1 MiB of a
/// 10,000-task run's peak memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fixed_mmap_threshold() {
    // SAFETY: called first thing in main, before any thread exists or allocates; mallopt only
    // sets a tunable of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}
