//! Subcommands, one file each.

pub mod inspect;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Show a model's format, architecture, tensors and metadata (reads headers only).
    Inspect(inspect::Args),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => inspect::run(args),
    }
}
