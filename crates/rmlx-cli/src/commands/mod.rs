//! One file per subcommand.

mod bench;
mod logits;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Logits of a token sequence as float32 .npy [T, vocab].
    Logits(logits::Args),
    /// Prefill and decode speed on random tokens (like llama-bench).
    Bench(bench::Args),
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Logits(a) => logits::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
