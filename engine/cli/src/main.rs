//! The `dagrun` binary: parses arguments and hands over to the commands.

mod args;
mod commands;
mod env;
mod exit;
mod render;
mod reporter;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    commands::dispatch(cli.command).into()
}
